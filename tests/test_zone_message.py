"""The reason given for a timestamp zone polars cannot read names what is wrong with it: an offset
('+05:30') is told to be written as a zone's name; a name no zone database knows is not called an
offset (seen failing first: 'Mars/Olympus' was reported as "an offset")."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chute.core.errors import ChuteError
from chute.core.reader import open_source, reader_for


@pytest.mark.parametrize(("zone", "offset"), [("+05:30", True), ("Mars/Olympus", False)])
def test_the_zone_polars_cannot_read_is_named_for_what_it_is(tmp_path: Path, zone: str, offset: bool) -> None:
    out = io.BytesIO()
    pq.write_table(pa.table({"t": pa.array([1, None], pa.timestamp("us", zone))}), out)
    path = tmp_path / "z.parquet"
    path.write_bytes(out.getvalue())
    with pytest.raises(ChuteError) as err, open_source(path, None) as src:
        reader = reader_for(src, "parquet", {})
        reader.plan()
        list(reader.batches(10))
    reason = str(err.value)
    assert repr(zone) in reason and "corrupt" not in reason, reason
    assert ("an offset" in reason) == offset, reason


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("compressed", [False, True])
def test_a_zone_polars_cannot_read_prints_nothing_on_stderr(tmp_path: Path, capfd: pytest.CaptureFixture,
                                                            nested: bool, compressed: bool) -> None:
    """polars panicked on it, and the panic's text (a stack trace with RUST_BACKTRACE) went to the
    process's stderr: over the console's screen, into a JSON log. The zone is checked first now."""
    import gzip

    kind = pa.timestamp("ms", "Mars/Olympus")
    column = (pa.array([{"t": 1}], pa.struct([("t", kind)])) if nested else pa.array([1], kind))
    out = io.BytesIO()
    pq.write_table(pa.table({"t": column, "ok": pa.array([1], pa.timestamp("us", "Asia/Kolkata"))}), out)
    path = tmp_path / ("z.parquet.gz" if compressed else "z.parquet")
    path.write_bytes(gzip.compress(out.getvalue()) if compressed else out.getvalue())
    capfd.readouterr()
    with pytest.raises(ChuteError) as err, open_source(path, "gzip" if compressed else None) as src:
        reader_for(src, "parquet", {}).plan()
    assert "'Mars/Olympus' is not one polars can read" in str(err.value), err.value
    assert "panicked" not in capfd.readouterr().err
