"""NDJSON inputs found by the round-9 review (rv7) that the reader got wrong."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from chute.core.errors import InputError
from chute.core.formats.ndjson import NdjsonReader
from chute.core.reader import Reader, open_source


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("compressed", [False, True])
def test_a_first_line_longer_than_the_sample_is_read(tmp_path: Path, streamed: bool, compressed: bool) -> None:
    """A first object longer than the first MiB (SAMPLE_BYTES; a record may be up to 64 MiB) was cut
    to a partial line, read as no object at all, and the file quarantined as 'no fields: every line
    is an empty object'."""
    long = "x" * (Reader.SAMPLE_BYTES + 1000)
    text = '{"a":1,"s":"' + long + '"}\n' + "".join(f'{{"a":{i},"s":1.50}}\n' for i in range(2, 6))
    path = tmp_path / ("a.ndjson.gz" if compressed else "a.ndjson")
    if compressed:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    with open_source(path, "gzip" if compressed else None) as src:
        reader = NdjsonReader(src)
        if streamed:
            reader.IN_MEMORY_BYTES = 0
        plan = reader.plan()
        frame = pl.concat([df for _, df in reader.batches(2)])
    assert plan.rows == 5
    assert frame["s"].to_list() == [long, "1.50", "1.50", "1.50", "1.50"]
    assert frame["a"].to_list() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("value", ["1e400", "-1E+999", "NaN", "Infinity", "-Infinity"])
def test_a_number_polars_cannot_read_is_named_by_its_line(tmp_path: Path, value: str) -> None:
    """Polars refuses a number beyond a double's range (valid JSON) and the non-JSON NaN/Infinity;
    the slow path that names the line (diagnose, Python's parser) took both, so the quarantine said
    only 'error parsing line: InvalidNumber at character 12' for a file of any length."""
    path = tmp_path / "a.ndjson"
    path.write_text('{"a":1,"s":"x"}\n{"a":2,"s":"y"}\n{"a":3,"s":' + value + '}\n{"a":4,"s":"z"}\n')
    with open_source(path, None) as src, pytest.raises(InputError) as caught:
        NdjsonReader(src).plan()
    assert caught.value.line == 3
    assert "line 3" in str(caught.value) and value in str(caught.value)
