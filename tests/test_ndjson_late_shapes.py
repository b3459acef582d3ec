"""A key first seen past the first lines, whose values have no common type (a bool and an
object): polars' key scan gives up ("failed to determine supertype"), and the file's keys must
still all be found; seen failing before the fix: the key was dropped and its values were lost
while the file loaded as a success."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from chute.core.reader import Reader, open_source, reader_for

_HEAD = [json.dumps({"a": f"x{i}", "b": i}) for i in range(Reader.INFER_ROWS + 5)]


@pytest.mark.parametrize("tail", [
    ['{"z":true}', '{"z":{"q":1}}'],  # a bool, then an object
    ['{"a":"s","z":[1,2]}', '{"z":{"r":1},"y":false}'],  # a list, then an object, and a key after them
])
def test_a_late_key_without_a_common_type_is_kept(tmp_path: Path, tail: list[str]) -> None:
    path = tmp_path / "a.ndjson"
    path.write_text("\n".join([*_HEAD, *tail]) + "\n")
    want = {k for line in tail for k in json.loads(line)}
    with open_source(path, None) as src:
        reader = reader_for(src, "ndjson", {})
        plan = reader.plan()
        frame = pl.concat([df for _, df in reader.batches(100_000)])
    assert want <= set(plan.schema), f"keys lost: {sorted(want - set(plan.schema))}"
    assert frame.height == len(_HEAD) + len(tail)
    got = frame.tail(len(tail)).to_dicts()
    for line, row in zip(tail, got, strict=True):
        for key, value in json.loads(line).items():
            assert row[key] is not None, f"{key!r} of {line} lost"
            if isinstance(value, dict):
                assert json.loads(row[key]) == value


def test_a_late_key_without_a_common_type_is_kept_in_a_gzip_file(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "a.ndjson.gz"
    path.write_bytes(gzip.compress(("\n".join([*_HEAD, '{"z":true}', '{"z":{"q":1}}']) + "\n").encode()))
    with open_source(path, "gzip") as src:
        plan = reader_for(src, "ndjson", {}).plan()
    assert "z" in plan.schema

