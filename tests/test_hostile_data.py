"""Hostile data found in review (issue 9): values that cast but would not read back as written."""

from __future__ import annotations

from pathlib import Path

from chute.core.states import State
from tests.conftest import make_config, query, state_of, wait_for

FINAL = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE, State.FAILED}


def test_text_that_an_existing_number_column_would_alter_is_refused(engine_factory, tmp_path: Path,
                                                                    chdb_path: Path) -> None:
    """A second file into a table whose zip column is Int64: '01234' must not become 1234."""
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "zips").mkdir()
    (cfg.data_dir / "zips" / "a.csv").write_bytes(b"zip,f\n12345,1.5\n")
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "zips/a.csv") == State.LOADED, what="base loaded")
    cases = {"lead.csv": b"zip,f\n12,1\n01234,2\n", "plus.csv": b"zip,f\n+5,1\n",
             "space.csv": b"zip,f\n 7,1\n", "floatlead.csv": b"zip,f\n1,01.5\n",
             "fine.csv": b"zip,f\n-3,2e3\n0,-0.25\n"}  # the negative control: these keep their text
    for name, body in cases.items():
        (cfg.data_dir / "zips" / name).write_bytes(body)
    wait_for(lambda: all(state_of(engine, f"zips/{n}") in FINAL for n in cases), what="all final")
    states = {n: (engine.ledger.current(f"zips/{n}").state, engine.ledger.current(f"zips/{n}").last_error)
              for n in cases}
    assert states.pop("fine.csv")[0] == State.LOADED
    for name, (state, reason) in states.items():
        assert state == State.QUARANTINED and ("would not keep it as written" in (reason or "")
                                               or name == "space.csv"), (name, state, reason)
    got = query(engine, f"SELECT zip, f FROM `{cfg.database}`.zips ORDER BY _source_path, _source_row")
    assert sorted(got) == [(-3, 2000.0), (0, -0.25), (12345, 1.5)]


def test_an_append_keeps_the_same_rule(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    path = cfg.data_dir / "grow.csv"
    path.write_bytes(b"id,zip\n1,12345\n2,23456\n")
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "grow.csv") == State.LOADED, what="base loaded")
    first = engine.ledger.current("grow.csv").id
    with open(path, "ab") as f:
        f.write(b"3,01234\n")
    wait_for(lambda: (r := engine.ledger.current("grow.csv")).id != first and r.state in FINAL, what="append final")
    row = engine.ledger.current("grow.csv")
    # ... and names the line in the whole file (it said line 2: the line within the appended part).
    assert row.state == State.QUARANTINED and "'01234' at line 4" in row.last_error, (row.state, row.last_error)
    assert query(engine, f"SELECT zip FROM `{cfg.database}`.grow ORDER BY _source_row") == [(12345,), (23456,)]


def test_a_broken_append_names_its_line_in_the_whole_file(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    base = {"r.csv": b"id,n\n1,5\n2,6\n", "j.ndjson": b'{"a":1}\n{"a":2}\n'}
    for name, body in base.items():
        (cfg.data_dir / name).write_bytes(body)
    engine = engine_factory(cfg)
    wait_for(lambda: all(state_of(engine, n) == State.LOADED for n in base), what="bases loaded")
    firsts = {n: engine.ledger.current(n).id for n in base}
    with open(cfg.data_dir / "r.csv", "ab") as f:
        f.write(b"3,4,5\n")
    with open(cfg.data_dir / "j.ndjson", "ab") as f:
        f.write(b"{bad\n")
    wait_for(lambda: all((r := engine.ledger.current(n)).id != firsts[n] and r.state in FINAL for n in base),
             what="appends final")
    assert "ragged row at line 4:" in engine.ledger.current("r.csv").last_error
    assert "line 3 is not valid JSON" in engine.ledger.current("j.ndjson").last_error
