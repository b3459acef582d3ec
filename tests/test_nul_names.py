"""A column name holding a NUL byte is refused by name before anything reads the values (seen
failing first: an NDJSON key "\\u0000rows" made polars panic exporting the batch, a Rust stack trace
on stderr and "the parser crashed"; a Parquet column "\\x00rows" clashed with the plan's own
expression names: "duplicate output name")."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chute.core.errors import ChuteError
from chute.core.reader import open_source, reader_for


def _parquet(name: str) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({name: [1, 2], "b": [3, 4]}), out)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "name", "body"), [
    ("ndjson", "\x00rows", b'{"\\u0000rows": 1, "a": 2}\n{"\\u0000rows": 3, "a": 4}\n'),
    ("ndjson", "a\x00", b'{"a\\u0000": "x"}\n'),
    ("parquet", "\x00rows", _parquet("\x00rows")),
    ("parquet", "x\x00y", _parquet("x\x00y")),
], ids=["ndjson-rows", "ndjson-end", "parquet-rows", "parquet-inside"])
def test_a_column_name_with_a_nul_byte_is_refused_by_name(tmp_path: Path, capfd: pytest.CaptureFixture,
                                                          fmt: str, name: str, body: bytes) -> None:
    path = tmp_path / f"f.{fmt}"
    path.write_bytes(body)
    capfd.readouterr()
    with pytest.raises(ChuteError) as err, open_source(path, None) as src:
        reader = reader_for(src, fmt, {})
        reader.plan()
        list(reader.batches(10))
    assert f"column name {name!r} holds a NUL byte" in str(err.value), err.value
    assert "panicked" not in capfd.readouterr().err


def test_a_name_without_one_loads(tmp_path: Path) -> None:
    """The control: the same files with a plain name plan and read."""
    path = tmp_path / "f.parquet"
    path.write_bytes(_parquet("rows"))
    with open_source(path, None) as src:
        reader = reader_for(src, "parquet", {})
        assert reader.plan().rows == 2
        assert sum(df.height for _, df in reader.batches(10)) == 2
