"""Issue 9.1: a later row that disagrees with the first rows widens the column; it never
quarantines the file (CSV and NDJSON), and mixed JSON scalars load."""

from __future__ import annotations

import json
from pathlib import Path

from chute.core.states import State
from tests.conftest import make_config, query, wait_for


def test_late_disagreement_widens_instead_of_quarantining(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    data = cfg.data_dir
    ints = [str(i) for i in range(12_000)]
    (data / "late_text.csv").write_text("n,x\n" + "".join(f"{v},{i}\n" for i, v in enumerate([*ints, "abc"])))
    (data / "late_float.csv").write_text("n\n" + "".join(f"{v}\n" for v in [*ints, "2.5"]))
    (data / "late_json.ndjson").write_text("".join(json.dumps({"n": v}) + "\n" for v in [*range(12_000), "abc"]))
    mixed = [1, 1.5, None, True, "x", 2]
    (data / "mixed.ndjson").write_text("".join(json.dumps({"m": v, "k": i}) + "\n" for i, v in enumerate(mixed)))
    engine = engine_factory(cfg)
    names = ["late_text.csv", "late_float.csv", "late_json.ndjson", "mixed.ndjson"]
    final = (State.LOADED, State.QUARANTINED, State.FAILED, State.HELD)
    wait_for(lambda: all((r := engine.ledger.current(n)) and r.state in final for n in names), timeout=90,
             what="final")
    for name in names:
        row = engine.ledger.current(name)
        assert row.state == State.LOADED, (name, row.state, row.last_error)
    db = cfg.database

    def kind(table: str, column: str) -> str:
        return query(engine, "SELECT type FROM system.columns WHERE database = {d:String} AND table = {t:String} "
                             "AND name = {c:String}", d=db, t=table, c=column)[0][0]

    assert "String" in kind("late_text", "n")
    assert query(engine, f"SELECT n FROM `{db}`.late_text WHERE x = 12000") == [("abc",)]
    assert kind("late_float", "n") == "Float64"
    assert query(engine, f"SELECT count(), max(n) FROM `{db}`.late_float") == [(12_001, 11_999.0)]
    got = [r[0] for r in query(engine, f"SELECT m FROM `{db}`.mixed ORDER BY k")]
    assert got == ["1", "1.5", None, "true", "x", "2"]


def test_text_into_a_bool_column_is_a_quarantine_not_a_retry(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """Found by tests/fuzz.py: a file whose column is text, into a table where it is Bool, was
    retried six times as "unexpected" (polars has no String -> Boolean cast)."""
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "flags").mkdir()
    (cfg.data_dir / "flags" / "a.csv").write_text("id,ok\n1,true\n2,false\n")
    engine = engine_factory(cfg)
    wait_for(lambda: engine.ledger.current("flags/a.csv").state == State.LOADED, what="table created")
    (cfg.data_dir / "flags" / "b.csv").write_text("id,ok\n3,TRUE\n4,maybe\n")
    final = (State.LOADED, State.QUARANTINED, State.FAILED)
    row = wait_for(lambda: (r := engine.ledger.current("flags/b.csv")) and r.state in final and r, what="final")
    assert row.state == State.QUARANTINED and row.attempts <= 1, (row.state, row.attempts, row.last_error)
    assert "'maybe' at line 3" in row.last_error, row.last_error
