"""Parquet timestamp zones judged before polars reads the file (core/formats/parquet_zones.py), as
the review found them (round 9): the zone database Python knows is not the one polars reads.
- 'right/UTC', 'posix/Asia/Tokyo', 'Factory' are files of the system's zone database, so they
  passed, and polars panicked on them (its stack trace on stderr) as before the check;
- '+01:00', '-05:00', '+0100', 'utc' are no names of it, so such a file was refused, yet polars
  reads each (an offset of whole hours as Etc/GMT-1) and the file loaded before the check;
- the footer was searched for the bytes 'ARROW:schema': a column of that name (or a metadata
  value holding it) came first, the check read no schema and polars panicked."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chute.core.errors import ChuteError
from chute.core.reader import open_source, reader_for


def _write(tmp_path: Path, table: pa.Table) -> Path:
    out = io.BytesIO()
    pq.write_table(table, out)
    path = tmp_path / "z.parquet"
    path.write_bytes(out.getvalue())
    return path


def _stamps(zone: str) -> pa.Array:
    return pa.array([1, None], pa.timestamp("us", zone))


UNREADABLE = {
    "right_utc": pa.table({"t": _stamps("right/UTC")}),
    "posix_zone": pa.table({"t": _stamps("posix/Asia/Tokyo")}),
    "factory": pa.table({"t": _stamps("Factory")}),
    "column_named_like_the_key": pa.table({"ARROW:schema": [1, 2], "t": _stamps("Mars/Olympus")}),
    "metadata_value_like_the_key": pa.table({"t": _stamps("Mars/Olympus")}).replace_schema_metadata(
        {"note": "ARROW:schema"}),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_a_zone_polars_cannot_read_is_refused_without_a_panic(case: str, tmp_path: Path,
                                                              capfd: pytest.CaptureFixture) -> None:
    table = UNREADABLE[case]
    zone = table.schema.field("t").type.tz
    path = _write(tmp_path, table)
    capfd.readouterr()
    with pytest.raises(ChuteError) as err, open_source(path, None) as src:
        reader_for(src, "parquet", {}).plan()
    assert f"{zone!r} is not one polars can read" in str(err.value), err.value
    assert "panicked" not in capfd.readouterr().err


@pytest.mark.parametrize("zone", ["+01:00", "-05:00", "+0100", "utc", "Etc/GMT+5"])
def test_a_zone_polars_reads_is_read(zone: str, tmp_path: Path) -> None:
    path = _write(tmp_path, pa.table({"t": _stamps(zone)}))
    with open_source(path, None) as src:
        reader = reader_for(src, "parquet", {})
        assert reader.plan().rows == 2
        assert sum(len(df) for _, df in reader.batches(10)) == 2
