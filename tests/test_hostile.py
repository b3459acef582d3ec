"""A corpus of malformed and hostile files: each ends in the expected state with a reason,
leaves zero rows behind, and the engine keeps going while the good files load fully."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pytest
import zstandard

from chute.core.states import State
from tests.conftest import make_config, query, wait_for

GOOD = b"id,name,score\n" + b"".join(f"{i},name {i},{i / 2}\n".encode() for i in range(200))
rng = random.Random(7)

# name -> (content or a callable that creates it, expected state, reason fragment)
CORPUS: dict[str, tuple[object, str, str]] = {
    "empty.csv": (b"", "quarantined", "empty file"),
    "blank.csv": (b"\n\n   \n", "quarantined", "no data"),
    "nul.csv": (b"a,b\n1,x\x00y\n", "quarantined", "NUL byte at line 2"),
    "badutf8.csv": (b"a,b\n1,ok\n2,\xff\xfe\n", "quarantined", "not UTF-8 text: byte 0xff at line 3"),
    "latin1.csv": (b"name\ncaf\xe9\n", "quarantined", "not UTF-8"),
    "binary.csv": (b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(2000)), "quarantined", ""),
    "ragged_more.csv": (b"a,b\n1,2\n3,4,5\n", "quarantined", "ragged row at line 3: 3 fields"),
    "ragged_fewer.csv": (b"a,b,c\n1,2,3\n4,5\n6,7,8\n", "quarantined", "ragged row at line 3: 2 fields"),
    "unbalanced.csv": (b'a,b\n1,"abc\n2,x\n3,y\n', "quarantined", "unbalanced quote"),
    "truncated.csv.gz": (gzip.compress(GOOD)[:-40], "quarantined", "truncated or corrupt gzip"),
    "zero.csv.gz": (b"", "quarantined", "empty file"),
    "plain_as.csv.gz": (GOOD, "quarantined", "not gzip-compressed"),
    "plain_as.csv.zst": (GOOD, "quarantined", "not zstd-compressed"),
    "truncated.csv.zst": (zstandard.ZstdCompressor().compress(GOOD)[:-30], "quarantined", "zstd"),
    "garbage.csv.gz": (b"\x1f\x8b" + bytes(rng.randrange(256) for _ in range(500)), "quarantined", "gzip"),
    "reserved.csv": (b"_source_row,x\n1,2\n", "quarantined", "reserved for chute's lineage"),
    "notjson.ndjson": (b'{"a": 1}\n{not json}\n', "quarantined", "line 2 is not valid JSON"),
    "array.ndjson": (b"[1, 2]\n", "quarantined", "not an object"),
    "text.parquet": (b"a,b\n1,2\n", "quarantined", "not a Parquet file"),
    "broken.parquet": (b"PAR1" + b"\x00" * 64 + b"PAR1", "quarantined", "Parquet"),
    "oversize.csv": (b"a\n" + b"1234567\n" * 200_000, "quarantined", "over the limit"),
    "notes.xml": (b"<a>1</a>\n", "quarantined", "unknown file type"),
    "README": (b"hello\n", "quarantined", "unknown file type"),
    "typed/bad_int.csv": (b"id,name\n1,a\nabc,b\n", "quarantined", "column 'id': 'abc' at line 3"),
    "typed/float_in_int.csv": (b"id,name\n2,x\n2.5,y\n", "quarantined", "'2.5' at line 3"),
    # Empty values where the table (made by typed/base.csv) is not Nullable: schema drift, held by default
    "typed/null_id.csv": (b"id,name\n3,x\n,y\n", "held", "empty values in column(s) id"),
    "typed/no_id.csv": (b"name\nz\n", "quarantined", "lacks column(s) id"),
    "dates/bad_date.csv": (b"d\n2026-01-01\nnot a date\n", "quarantined", "not a date"),
    "hostile_names.csv": (b'"a`b","x\'); DROP TABLE t; --",normal,"",normal\n1,2,3,4,5\n', "loaded", ""),
    "wide.csv": (",".join(f"c{i}" for i in range(400)).encode() + b"\n" + ",".join("1" for _ in range(400)).encode()
                 + b"\n", "loaded", ""),
    "big_field.csv": (b'id,blob\n1,"' + b"x," * 1_000_00 + b'"\n', "loaded", ""),
    "no_final_newline.csv": (b"a,b\n1,2", "loaded", ""),
    "r\xc3\xa9sum\xc3\xa9 final.csv".encode().decode(): (b"k\n1\n", "loaded", ""),
    "emptykey.ndjson": (b'{"":1,"a":2}\n', "quarantined", "a column has an empty name"),  # was retried 6x
    "good_copy.csv": (GOOD, "duplicate", "same content as"),
}


def _special(data: Path, outside: Path) -> dict[str, tuple[str, str]]:
    os.mkfifo(data / "pipe.csv")
    (outside / "secret.csv").write_bytes(b"user,password\nroot,hunter2\n")
    os.symlink(outside / "secret.csv", data / "escape.csv")
    os.link(data / "good.csv", data / "hardlink.csv")
    return {"pipe.csv": ("quarantined", "not a regular file"),
            "escape.csv": ("quarantined", "symlink pointing outside the data folder"),
            "hardlink.csv": ("duplicate", "same content as")}


@pytest.mark.slow
def test_hostile_corpus(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, max_file_bytes=1_000_000)
    data = cfg.data_dir
    # Tables the hostile files must fit: created by good files first.
    (data / "typed").mkdir()
    (data / "typed" / "base.csv").write_bytes(b"id,name\n100,base\n")
    (data / "dates").mkdir()
    (data / "dates" / "base.csv").write_bytes(b"d\n2026-11-28\n")
    (data / "good.csv").write_bytes(GOOD)
    engine = engine_factory(cfg)
    wait_for(engine.idle, what="baseline loaded")
    outside = tmp_path / "outside"
    outside.mkdir()
    expected = {name: (state, reason) for name, (_, state, reason) in CORPUS.items()}
    for name, (content, _, _) in CORPUS.items():
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(content)  # type: ignore[arg-type]
    expected.update(_special(data, outside))
    assert len(expected) >= 30
    finals = {State.LOADED, State.DUPLICATE, State.QUARANTINED, State.HELD}

    def settled() -> bool:
        rows = [engine.ledger.current(n) for n in expected]
        return all(r is not None and r.state in finals for r in rows) and engine.idle()

    wait_for(settled, timeout=120, what="corpus settled")
    (data / "after.csv").write_bytes(b"x\n1\n2\n")  # the engine is still running and still loading
    wait_for(lambda: engine.ledger.current("after.csv") and engine.ledger.current("after.csv").state == "loaded",
             what="after.csv loaded")
    db = cfg.database
    problems = []
    for name, (state, reason) in expected.items():
        row = engine.ledger.current(name)
        if row is None or row.state != state or reason not in (row.last_error or row.reason or ""):
            problems.append((name, row and row.state, row and (row.last_error or row.reason)))
            continue
        if state == State.QUARANTINED:
            if row.moved_to:  # moved aside with its reason
                info = json.loads(Path(str(data / row.moved_to) + ".reason.json").read_text())
                assert info["reason"] == row.last_error and info["path"] == name
            assert not (data / name).exists() and not (data / name).is_symlink(), name
            if row.sha256:  # zero partial rows
                tables = [r[0] for r in query(engine, f"SHOW TABLES FROM `{db}`")]
                for t in tables:
                    n = query(engine, f"SELECT count() FROM `{db}`.`{t}` WHERE _source_sha256 = {{s:String}}",
                              s=row.sha256)[0][0]
                    assert n == 0, (name, t, n)
    assert not problems, "\n".join(map(str, problems))
    # The good files loaded fully, and the hostile names are columns, not SQL.
    assert query(engine, f"SELECT count() FROM `{db}`.good")[0][0] == 200
    cols = [r[0] for r in query(engine, f"DESCRIBE `{db}`.hostile_names")][:5]
    assert cols == ["a`b", "x'); DROP TABLE t; --", "normal", "column_4", "normal_2"]
    assert query(engine, f"SELECT count() FROM `{db}`.typed")[0][0] == 1  # only base.csv's row
    # The symlink's target outside the data folder was never read into ClickHouse, nor moved.
    assert "escape" not in [r[0] for r in query(engine, f"SHOW TABLES FROM `{db}`")]
    assert (outside / "secret.csv").read_bytes() == b"user,password\nroot,hunter2\n"
