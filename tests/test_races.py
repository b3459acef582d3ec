"""Regressions for races and edge cases found in review: files replaced mid-load, purge of a
renamed-over path, quoted-looking headers, keys repeated inside one file."""

from __future__ import annotations

import os
from pathlib import Path

from chute.core.routing import Route
from chute.core.states import State
from tests.conftest import make_config, query, state_of, wait_for
from tests.test_engine import csv_bytes, make_rows


def test_file_renamed_over_while_loading(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """The version being loaded finishes from its open descriptor; the new file at the path is a
    new version (changed content at a known path: held)."""
    cfg = make_config(tmp_path, chdb_path, batch_rows=100, insert_parallel=1)
    (cfg.data_dir / "ev.csv").write_bytes(csv_bytes(make_rows(20_000)))
    engine = engine_factory(cfg)
    wait_for(lambda: (r := engine.ledger.current("ev.csv")) and r.state == State.LOADING and r.rows_loaded > 0,
             what="loading part-way")
    first = engine.ledger.current("ev.csv").id
    (cfg.data_dir / "ev.csv.tmp").write_bytes(csv_bytes(make_rows(300, seed=77)))
    os.replace(cfg.data_dir / "ev.csv.tmp", cfg.data_dir / "ev.csv")
    wait_for(lambda: engine.ledger.get(first).state == State.LOADED, timeout=60, what="old version loaded")
    wait_for(lambda: state_of(engine, "ev.csv") == State.HELD, timeout=30, what="new version held")
    assert engine.ledger.current("ev.csv").id != first
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.ev")[0][0] == 20_000
    engine.command("approve", "ev.csv", actor="test")
    wait_for(lambda: state_of(engine, "ev.csv") == State.LOADED, what="new version loaded")
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.ev")[0][0] == 20_300


def test_file_rewritten_in_place_while_loading(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """Written to while loading: the partial rows of the old content are removed and the new
    content loads as a new version; never a mix."""
    cfg = make_config(tmp_path, chdb_path, batch_rows=100, insert_parallel=1)
    path = cfg.data_dir / "ip.csv"
    path.write_bytes(csv_bytes(make_rows(20_000)))
    engine = engine_factory(cfg)
    wait_for(lambda: (r := engine.ledger.current("ip.csv")) and r.state == State.LOADING and r.rows_loaded > 0,
             what="loading part-way")
    first = engine.ledger.current("ip.csv")
    with open(path, "ab") as f:  # same inode, more content
        f.write(b"".join(f"{90000 + i},extra,1.0,2026-11-01T00:00:00,true,\n".encode() for i in range(50)))
    wait_for(lambda: (r := engine.ledger.current("ip.csv")) and r.id != first.id and r.state in (
        State.LOADED, State.HELD), timeout=60, what="new version settled")
    row = engine.ledger.current("ip.csv")
    if row.state == State.HELD:  # the first version had finished: changed content at a known path
        engine.command("approve", "ip.csv", actor="test")
        wait_for(lambda: state_of(engine, "ip.csv") == State.LOADED, what="approved")
    db = cfg.database
    by_sha = dict(query(engine, f"SELECT _source_sha256, count() FROM `{db}`.ip GROUP BY 1"))
    new = engine.ledger.current("ip.csv")
    if new.base_id == first.id:  # the first version had finished: the new one loaded only the appended rows
        assert (by_sha[new.sha256], by_sha[first.sha256 or engine.ledger.get(first.id).sha256]) == (50, 20_000)
        return
    assert by_sha[new.sha256] == 20_050
    old = engine.ledger.get(first.id)
    assert by_sha.get(old.sha256, 0) in (0, 20_000) and (old.state == State.LOADED) == (old.sha256 in by_sha)


def test_purge_never_deletes_a_newer_file_at_the_same_path(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "p.csv").write_bytes(csv_bytes(make_rows(5)))
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "p.csv") == State.LOADED)
    engine.command("pause", actor="test")
    old = engine.ledger.current("p.csv")  # (taken first: the watcher sees the new file within milliseconds)
    (cfg.data_dir / "p.csv").write_bytes(csv_bytes(make_rows(6, seed=9)))  # new content at the same path
    from chute.core import actions

    result = actions.purge(cfg, engine.ledger, engine.target, old, "test")
    assert "5 rows deleted" in result and "newer file" in result
    assert (cfg.data_dir / "p.csv").exists()


def test_header_that_looks_quoted(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "q.csv").write_bytes(b"`id`,\"`x`\"\n1,2\n")
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "q.csv") == State.LOADED, what="loaded")
    assert [r[0] for r in query(engine, f"DESCRIBE `{cfg.database}`.q")][:2] == ["`id`", "`x`"]


def test_keyed_file_with_repeated_keys_loads(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, routes=(Route(table="k", key=("id",)),))
    (cfg.data_dir / "k").mkdir()
    (cfg.data_dir / "k" / "1.csv").write_bytes(b"id,v\n1,a\n1,b\n2,c\n")
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "k/1.csv") in (State.LOADED, State.FAILED), what="settled")
    assert state_of(engine, "k/1.csv") == State.LOADED, engine.ledger.current("k/1.csv").last_error
    assert query(engine, f"SELECT id, v FROM `{cfg.database}`.k FINAL ORDER BY id") == [(1, "b"), (2, "c")]


def test_landed_but_unacknowledged_insert_is_not_left_behind_by_a_twin(engine_factory, tmp_path: Path,
                                                                       chdb_path: Path) -> None:
    """An insert that lands but whose answer is lost, then a twin loads first: the partial
    version's rows are taken back when it turns out to be a duplicate."""
    from chute.core.errors import TargetError

    cfg = make_config(tmp_path, chdb_path, workers=1, backoff_base=2.0, backoff_max=2.0)
    body = b"id,name\n" + b"".join(f"{i},n{i}\n".encode() for i in range(10))
    (cfg.data_dir / "s").mkdir()
    engine = engine_factory(cfg)
    real, landed = engine.target.insert, []

    def lost_answer(table, encoded, token):
        real(table, encoded, token)
        if not landed:
            landed.append(token)
            raise TargetError("timed out after the insert landed")

    engine.target.insert = lost_answer
    # Written only now: a file there at start could load before the insert is wrapped.
    (cfg.data_dir / "s" / "a.csv").write_bytes(body)
    wait_for(lambda: state_of(engine, "s/a.csv") == State.FAILED, what="a failed")
    (cfg.data_dir / "s" / "b.csv").write_bytes(body)
    wait_for(lambda: state_of(engine, "s/b.csv") == State.LOADED, what="b loaded")
    wait_for(lambda: state_of(engine, "s/a.csv") == State.DUPLICATE, timeout=30, what="a duplicate")
    assert landed
    assert query(engine, f"SELECT _source_path, count() FROM `{cfg.database}`.s GROUP BY 1") == [("s/b.csv", 10)]


def test_purge_that_fails_in_clickhouse_keeps_the_version(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    from chute.core import actions
    from chute.core.errors import TargetError

    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "p.csv").write_bytes(csv_bytes(make_rows(7)))
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "p.csv") == State.LOADED)
    real = engine.target.delete_source

    def broken(*args: object) -> None:
        raise TargetError("connection reset", unreachable=True)

    engine.target.delete_source = broken  # type: ignore[method-assign]
    row = engine.ledger.current("p.csv")
    try:
        actions.purge(cfg, engine.ledger, engine.target, row, "test")
        raise AssertionError("purge should have failed")
    except TargetError:
        pass
    assert state_of(engine, "p.csv") == State.LOADED and (cfg.data_dir / "p.csv").exists()
    engine.target.delete_source = real  # type: ignore[method-assign]
    assert "7 rows deleted" in actions.purge(cfg, engine.ledger, engine.target, engine.ledger.current("p.csv"), "t")


def test_table_that_cannot_deduplicate_holds_the_file(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    engine = engine_factory(cfg)
    engine.target.client().command(f"CREATE TABLE `{cfg.database}`.mem (id Int64) ENGINE = Memory")
    (cfg.data_dir / "mem.csv").write_bytes(b"id\n1\n2\n")
    wait_for(lambda: state_of(engine, "mem.csv") == State.HELD, what="held")
    assert "engine Memory, which cannot deduplicate" in engine.ledger.current("mem.csv").last_error
