"""A value the table refuses is named by the line it is on, not by its record's number: a quoted
field that spans lines puts every later record further down (seen failing first: a value on line
7 was reported at line 4, in the quarantine reason and in the rejects file)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from chute.core.routing import Route
from chute.core.states import State
from tests.conftest import make_config, wait_for

FINAL = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE, State.FAILED}
# line 1 header; record 1 on lines 2-4; record 2 on line 5; a blank line 6; record 3 (bad) on line 7;
# record 4 on lines 8-9 (bad too: 999 on line 8, where the record starts)
BODY = b'id,note,v\n1,"a\nb\nc",5\n2,x,6\n\n3,"y",300\n4,"two\nlines",999\n'


def test_a_refused_value_is_named_by_its_line(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cols = (("id", "Int64"), ("note", "String"), ("v", "Int8"))
    cfg = make_config(tmp_path, chdb_path, routes=(Route(table="q", columns=cols),
                                                   Route(table="s", columns=cols, on_bad_rows="skip")))
    for table in ("q", "s"):
        (cfg.data_dir / table).mkdir()
        (cfg.data_dir / table / "f.csv").write_bytes(BODY.replace(b"x", table.encode()))  # (not duplicates)
    engine = engine_factory(cfg)
    names = ("q/f.csv", "s/f.csv")
    wait_for(lambda: all(engine.ledger.current(n) and engine.ledger.current(n).state in FINAL for n in names),
             what="both final", timeout=60)
    row = engine.ledger.current("q/f.csv")
    assert row.state == State.QUARANTINED, (row.state, row.last_error)
    assert "'300' at line 7" in (row.last_error or ""), row.last_error
    row = engine.ledger.current("s/f.csv")
    assert row.state == State.LOADED, (row.state, row.last_error)
    rejects = list(csv.reader((cfg.quarantine_dir / "s" / "f.csv.rejects.csv").open()))[1:]
    assert [(r[0], r[2]) for r in rejects] == [("7", "300"), ("8", "999")], rejects


def test_a_refused_value_far_into_a_big_compressed_file_is_named_by_its_line(engine_factory, tmp_path: Path,
                                                                           chdb_path: Path) -> None:
    """Past the first piece of a file read in pieces (core/formats/pieces.py), gzip-compressed."""
    import gzip

    n = 60_000  # records of two lines each, then the bad one
    body = b"id,note,v\n" + b"".join(b'%d,"line\nnext",%d\n' % (i, i % 100) for i in range(n)) + b"%d,z,300\n" % n
    cfg = make_config(tmp_path, chdb_path, routes=(Route(table="q", columns=(
        ("id", "Int64"), ("note", "String"), ("v", "Int8"))),))
    (cfg.data_dir / "q").mkdir()
    (cfg.data_dir / "q" / "big.csv.gz").write_bytes(gzip.compress(body, 1))
    engine = engine_factory(cfg)
    wait_for(lambda: engine.ledger.current("q/big.csv.gz") is not None
             and engine.ledger.current("q/big.csv.gz").state in FINAL, what="final", timeout=120)
    row = engine.ledger.current("q/big.csv.gz")
    assert row.state == State.QUARANTINED, (row.state, row.last_error)
    assert f"'300' at line {2 * n + 2}" in (row.last_error or ""), row.last_error


def test_a_refused_value_in_an_appended_part_is_named_by_its_line(engine_factory, tmp_path: Path,
                                                                  chdb_path: Path) -> None:
    """A growing file: its first version loaded, then two records appended, the second refused.
    Lines: 1 header, 2-3 and 4-5 two-line records, 6 the bad one (reported as line 4)."""
    cfg = make_config(tmp_path, chdb_path, routes=(Route(table="q", columns=(
        ("id", "Int64"), ("note", "String"), ("v", "Int8")), on_bad_rows="skip"),))
    _, path = first_version_loaded(engine_factory, cfg, b'id,note,v\n1,"a\nb",5\n')
    with path.open("ab") as f:
        f.write(b'2,"c\nd",6\n3,z,300\n')
    rejects = cfg.quarantine_dir / "q" / "f.csv.rejects.csv"
    wait_for(lambda: rejects.exists() and len(list(csv.reader(rejects.open()))) > 1,
             what="the appended part's rejects", timeout=60)
    assert [(r[0], r[2]) for r in list(csv.reader(rejects.open()))[1:]] == [("6", "300")]


@pytest.mark.parametrize(("base", "appended", "reason"), [
    # What the plan finds (a ragged row): line 4 of the whole file, after a base whose one record
    # spans lines 2-3 (it was reported as line 3: one line per record of the base).
    (b'id,note,v\n1,"a\nb",5\n', b"2,c,6,7\n", "ragged row at line 4"),
    # A short row (the appended part is small: its check is in the plan): line 6 of the whole
    # file, not line 2 of the part (seen failing: "line 2").
    (b'id,note,v\n1,"a\nb",5\n2,x,\n', b"3,c,6\n4,d\n", "ragged row at line 6: 2 fields"),
], ids=["ragged", "short"])
def test_a_bad_line_in_an_appended_part_is_named_by_its_line(engine_factory, tmp_path: Path, chdb_path: Path,
                                                             base: bytes, appended: bytes, reason: str) -> None:
    cfg = make_config(tmp_path, chdb_path)
    engine, path = first_version_loaded(engine_factory, cfg, base)
    with path.open("ab") as f:
        f.write(appended)
    wait_for(lambda: engine.ledger.current("q/f.csv").state == State.QUARANTINED, what="the grown file quarantined")
    assert reason in (engine.ledger.current("q/f.csv").last_error or "")


def first_version_loaded(engine_factory, cfg, body: bytes):
    """q/f.csv written with ``body`` and loaded: (the engine, the file's path) for appending to."""
    (cfg.data_dir / "q").mkdir()
    path = cfg.data_dir / "q" / "f.csv"
    path.write_bytes(body)
    engine = engine_factory(cfg)
    wait_for(lambda: engine.ledger.current("q/f.csv") is not None
             and engine.ledger.current("q/f.csv").state == State.LOADED, what="first version loaded")
    return engine, path
