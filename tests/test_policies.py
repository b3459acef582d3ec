"""Schema drift under each policy, record-level dedup with `key`, bad-row skipping, and the
operator commands end to end."""

from __future__ import annotations

import csv
from pathlib import Path

from chute.core.routing import Route
from chute.core.states import State
from tests.conftest import make_config, query, state_of, wait_for


def _settled(engine, rel: str, state: str) -> None:
    wait_for(lambda: state_of(engine, rel) == state, what=f"{rel} {state}")


def test_drift_hold_then_approve_adds_the_column(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "m").mkdir()
    (cfg.data_dir / "m" / "1.csv").write_bytes(b"a,b\n1,x\n2,y\n")
    engine = engine_factory(cfg)
    _settled(engine, "m/1.csv", State.LOADED)
    (cfg.data_dir / "m" / "2.csv").write_bytes(b"a,b,c\n3,z,true\n")
    _settled(engine, "m/2.csv", State.HELD)
    row = engine.ledger.current("m/2.csv")
    assert "schema drift: new column(s) c (Bool) not in table m" in row.last_error
    assert [r[0] for r in query(engine, f"DESCRIBE `{cfg.database}`.m")][:2] == ["a", "b"]
    engine.command("approve", "m/2.csv", actor="ops")
    _settled(engine, "m/2.csv", State.LOADED)
    rows = query(engine, f"SELECT a, b, c FROM `{cfg.database}`.m ORDER BY a")
    assert rows == [(1, "x", None), (2, "y", None), (3, "z", True)]
    # Missing columns: a Nullable one gets NULL; a non-Nullable one without DEFAULT quarantines.
    (cfg.data_dir / "m" / "3.csv").write_bytes(b"a,b\n4,w\n")
    _settled(engine, "m/3.csv", State.LOADED)
    assert query(engine, f"SELECT b, c FROM `{cfg.database}`.m WHERE a = 4") == [("w", None)]
    (cfg.data_dir / "m" / "4.csv").write_bytes(b"a\n5\n")
    _settled(engine, "m/4.csv", State.QUARANTINED)
    assert "lacks column(s) b of table m" in engine.ledger.current("m/4.csv").last_error


def test_drift_evolve_and_freeze(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    routes = (Route(table="evo", drift="evolve"), Route(table="ice", drift="freeze"))
    cfg = make_config(tmp_path, chdb_path, routes=routes)
    for t in ("evo", "ice"):
        (cfg.data_dir / t).mkdir()
        (cfg.data_dir / t / "1.csv").write_bytes(b"a\n1\n" if t == "evo" else b"a\n10\n")
    engine = engine_factory(cfg)
    _settled(engine, "evo/1.csv", State.LOADED)
    _settled(engine, "ice/1.csv", State.LOADED)
    for t in ("evo", "ice"):
        (cfg.data_dir / t / "2.csv").write_bytes(f"a,extra\n2,hello {t}\n".encode())
    _settled(engine, "evo/2.csv", State.LOADED)
    _settled(engine, "ice/2.csv", State.QUARANTINED)
    assert query(engine, f"SELECT a, extra FROM `{cfg.database}`.evo ORDER BY a") == [(1, None), (2, "hello evo")]
    assert "is frozen" in engine.ledger.current("ice/2.csv").last_error
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.ice")[0][0] == 1
    assert "extra" not in [r[0] for r in query(engine, f"DESCRIBE `{cfg.database}`.ice")]


def test_record_level_dedup_with_key(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    routes = (Route(table="users", key=("id",)), Route(table="users2", key=("id",), skip_existing_keys=True))
    cfg = make_config(tmp_path, chdb_path, routes=routes)
    for t in ("users", "users2"):  # distinct content per table: identical files would be duplicates
        (cfg.data_dir / t).mkdir()
        first = "v1" if t == "users" else "w1"
        (cfg.data_dir / t / "1.csv").write_bytes(b"id,name\n" + b"".join(f"{i},{first}\n".encode()
                                                                          for i in range(1, 11)))
    engine = engine_factory(cfg)
    _settled(engine, "users/1.csv", State.LOADED)
    _settled(engine, "users2/1.csv", State.LOADED)
    for t in ("users", "users2"):
        second = "v2" if t == "users" else "w2"
        (cfg.data_dir / t / "2.csv").write_bytes(b"id,name\n" + b"".join(f"{i},{second}\n".encode()
                                                                          for i in range(5, 16)))
    _settled(engine, "users/2.csv", State.LOADED)
    _settled(engine, "users2/2.csv", State.LOADED)
    db = cfg.database
    engine_kind = query(engine, f"SELECT engine FROM system.tables WHERE database = '{db}' AND name = 'users'")
    assert engine_kind == [("ReplacingMergeTree",)]
    # Upsert: the newest version of each key wins.
    final = query(engine, f"SELECT id, name FROM `{db}`.users FINAL ORDER BY id")
    assert final == [(i, "v1" if i < 5 else "v2") for i in range(1, 16)]
    # Anti-join: only the 5 new keys were inserted at all, and verification counted them.
    assert query(engine, f"SELECT count() FROM `{db}`.users2")[0][0] == 15
    assert query(engine, f"SELECT name FROM `{db}`.users2 WHERE id = 7") == [("w1",)]
    assert engine.ledger.current("users2/2.csv").rows_loaded == 5


def test_skip_bad_rows_loads_the_rest_and_writes_rejects(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, routes=(Route(table="skippy", on_bad_rows="skip"),))
    (cfg.data_dir / "skippy").mkdir()
    (cfg.data_dir / "skippy" / "1.csv").write_bytes(b"id,v\n1,a\n")
    engine = engine_factory(cfg)
    _settled(engine, "skippy/1.csv", State.LOADED)
    (cfg.data_dir / "skippy" / "2.csv").write_bytes(b"id,v\n2,b\nnope,c\n4,d\n,e\n6,f\n")
    _settled(engine, "skippy/2.csv", State.LOADED)
    db = cfg.database
    rows = query(engine, f"SELECT id, v, _source_row FROM `{db}`.skippy WHERE _source_path = 'skippy/2.csv' "
                         "ORDER BY id")
    assert rows == [(2, "b", 1), (4, "d", 3), (6, "f", 5)]  # original row numbers kept
    row = engine.ledger.current("skippy/2.csv")
    assert row.reason == "2 row(s) skipped (on_bad_rows = skip)"
    rejects = list(csv.reader((cfg.quarantine_dir / "skippy" / "2.csv.rejects.csv").open()))
    assert rejects[0] == ["line", "column", "value", "reason"]
    assert [r[:3] for r in rejects[1:]] == [["3", "id", "nope"], ["5", "id", ""]]


def test_operator_commands_end_to_end(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """retry brings a quarantined file back once the table can take it; purge removes rows and file."""
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "ops").mkdir()
    (cfg.data_dir / "ops" / "1.csv").write_bytes(b"id,name\n1,a\n")
    engine = engine_factory(cfg)
    _settled(engine, "ops/1.csv", State.LOADED)
    (cfg.data_dir / "ops" / "2.csv").write_bytes(b"name\nb\n")  # lacks the non-Nullable id
    _settled(engine, "ops/2.csv", State.QUARANTINED)
    assert (cfg.quarantine_dir / "ops" / "2.csv").exists()
    # The operator lets id be empty, then retries: the file comes back and loads.
    engine.target.client().command(f"ALTER TABLE `{cfg.database}`.ops MODIFY COLUMN id Nullable(Int64)")
    assert engine.command("retry", "ops/2.csv", actor="ops") == "retrying ops/2.csv"
    _settled(engine, "ops/2.csv", State.LOADED)
    assert not (cfg.quarantine_dir / "ops" / "2.csv.reason.json").exists()
    assert query(engine, f"SELECT id, name FROM `{cfg.database}`.ops ORDER BY name") == [(1, "a"), (None, "b")]
    result = engine.command("purge", "ops/1.csv", actor="ops")
    assert result == "purged ops/1.csv: 1 rows deleted, file removed"
    assert query(engine, f"SELECT name FROM `{cfg.database}`.ops") == [("b",)]
    assert engine.ledger.current("ops/1.csv").state == State.PURGED
    kinds = [(e.actor, e.to_state) for e in engine.ledger.events(file_id=engine.ledger.current("ops/2.csv").id)]
    assert ("ops", "queued") in kinds
