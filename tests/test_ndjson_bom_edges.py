"""Byte-order marks the unmarked copy (core/formats/unmarked.py) does not cover, found by review
rv10: a file with two marks was refused as "the temporary directory has no room" (there was room),
and a mark at the start of a later line (two PowerShell files joined with `cat`) as polars'
"InternalError(TapeError) at character 0" with no line. Each now names its line and the mark; a
group of small marked files loads every row once, as the same files without marks do."""

from __future__ import annotations

from pathlib import Path

import pytest

from chute.core.errors import InputError
from chute.core.reader import open_source, reader_for
from tests.conftest import query, state_of, wait_for

BOM = b"\xef\xbb\xbf"
# (content, line named, words in the reason)
REFUSED = {
    "two_marks": (BOM + BOM + b'{"a":1}\n{"a":2}\n', 1, "two UTF-8 byte-order marks"),
    "a_later_line": (BOM + b'{"a":1}\n{"a":2}\n' + BOM + b'{"a":3}\n', 3, "byte-order mark"),
    "a_later_line_unmarked_file": (b'{"a":1}\n' + BOM + b'{"a":2}\n', 2, "byte-order mark"),
}


@pytest.mark.parametrize("in_memory", [True, False], ids=["in_memory", "streamed"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_mark_the_copy_does_not_take_away_is_named_with_its_line(tmp_path: Path, case: str,
                                                                  in_memory: bool) -> None:
    body, line, words = REFUSED[case]
    path = tmp_path / "a.ndjson"
    path.write_bytes(body)
    with pytest.raises(InputError) as err, open_source(path, None) as src:
        reader = reader_for(src, "ndjson", {})
        if not in_memory:
            reader.IN_MEMORY_BYTES = 0
        reader.plan()
        for _ in reader.batches(7):
            pass
    assert err.value.line == line and words in str(err.value) and "no room" not in str(err.value), err.value


def test_a_group_of_small_marked_files_loads_every_row_once(engine_factory) -> None:
    engine = engine_factory()
    folder = engine.cfg.data_dir / "events"
    folder.mkdir()
    for f in range(6):
        body = b"".join(b'{"id":%d,"s":"x"}\n' % (f * 10 + i) for i in range(10))
        (folder / f"f{f}.ndjson").write_bytes(BOM + body if f % 2 else body)
    wait_for(lambda: all(state_of(engine, f"events/f{f}.ndjson") == "loaded" for f in range(6)),
             what="every file loaded")
    got = query(engine, f"SELECT count(), uniqExact(id), uniqExact(_source_path, _source_row), min(_source_row),"
                        f" max(_source_row) FROM `{engine.cfg.database}`.events")
    assert got == [(60, 60, 60, 1, 10)], got
