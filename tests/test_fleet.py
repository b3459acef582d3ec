"""The fleet mirror, remote commands and fleet-wide duplicates, in-process against the real engine (chDB).

The three-daemon tests over HTTP are in tests/test_fleet_daemons.py.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from chute.core.config import Config, load
from chute.core.errors import UsageError
from chute.core.fleet import FILES, FleetStore
from chute.core.routing import table_for
from chute.core.target import Target
from tests.conftest import make_config, query, state_of, wait_for

CSV = "id,name\n1,a\n2,b\n3,c\n"


def fleet_config(tmp: Path, chdb: Path, host: str, **overrides) -> Config:
    return make_config(tmp, chdb, **{"fleet_mirror": True, "fleet_host": host, "fleet_interval": 0.3, **overrides})


def store_for(cfg: Config) -> tuple[FleetStore, Target]:
    target = Target(cfg)
    return FleetStore(dataclasses.replace(cfg, fleet_host="reader"), target), target


def test_fleet_is_on_by_default_and_one_setting_turns_it_off(tmp_path: Path) -> None:
    assert Config().fleet_mirror is True and Config().dedup_scope == "host"
    off = tmp_path / "c.toml"
    off.write_text("fleet_mirror = false\n")
    assert load(off, {}).fleet_mirror is False
    both = tmp_path / "d.toml"
    both.write_text('fleet_mirror = false\ndedup_scope = "fleet"\n')
    with pytest.raises(UsageError, match="dedup_scope = fleet needs fleet_mirror"):
        load(both, {})


def test_own_tables_are_never_data_tables() -> None:
    assert table_for("-chute-files.csv") != FILES
    assert not table_for("-chute-hosts.csv").startswith("_chute_")


def test_mirror_shows_states_heartbeat_and_problem_files(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = fleet_config(tmp_path, chdb_path, "alpha")
    engine = engine_factory(cfg)
    (cfg.data_dir / "good.csv").write_text(CSV)
    (cfg.data_dir / "bad.csv").write_bytes(b"id,name\n1,a\n2\x00,b\n")
    wait_for(lambda: state_of(engine, "good.csv") == "loaded" and state_of(engine, "bad.csv") == "quarantined",
             timeout=60)
    wait_for(lambda: engine.fleet.store._ready, timeout=30, what="the fleet tables")
    store, target = store_for(cfg)
    try:
        host = wait_for(lambda: next((h for h in store.hosts() if h.counts.get("loaded") == 1
                                      and h.counts.get("quarantined") == 1), None), timeout=30, what="heartbeat")
        assert host.host == "alpha" and host.status == "running" and not host.stale
        assert host.data_dir == str(cfg.data_dir)
        problems = wait_for(lambda: store.host_files("alpha"), timeout=30)
        assert [(f.path, f.state) for f in problems] == [("bad.csv", "quarantined")]
        assert "NUL" in problems[0].reason or problems[0].reason
        # The data table listing is untouched: the fleet tables are chute's own.
        tables = {r[0] for r in query(engine, "SELECT name FROM system.tables WHERE database = {db:String}",
                                      db=cfg.database)}
        assert {"good", "_chute_files", "_chute_hosts", "_chute_commands"} <= tables
    finally:
        target.close()
    engine.stop()
    # A clean stop says so: stopped, not stale.
    store, target = store_for(cfg)
    try:
        assert [h.status for h in store.hosts()] == ["stopped"]
    finally:
        target.close()


def test_mirror_is_write_behind_an_absent_clickhouse_never_stalls_loading(engine_factory, tmp_path: Path,
                                                                           chdb_path: Path) -> None:
    cfg = fleet_config(tmp_path, chdb_path, "beta")
    engine = engine_factory(cfg)
    mirror = engine.fleet
    wait_for(lambda: mirror.store._ready, timeout=30, what="the fleet tables")
    real_store, real_target = mirror.store, mirror.target
    # The mirror's own connection goes to a port where nothing listens (the loads keep theirs).
    dead = dataclasses.replace(cfg, clickhouse_url="http://chute@127.0.0.1:9", connect_timeout=1.0,
                               password_file=None)
    mirror.target = Target(dead)
    mirror.store = FleetStore(cfg, mirror.target)
    t0 = time.monotonic()
    for i in range(5):
        (cfg.data_dir / f"f{i}.csv").write_text(f"id\n{i}\n")
    wait_for(lambda: all(state_of(engine, f"f{i}.csv") == "loaded" for i in range(5)), timeout=60)
    assert time.monotonic() - t0 < 45
    wait_for(lambda: mirror.error, timeout=30, what="the mirror to notice ClickHouse is gone")
    # `chute status` (reading the ledger) says so, and that loads go on.
    from tests.conftest import run_chute

    assert json.loads(engine.ledger.meta("fleet"))["error"] == "ClickHouse unreachable: connection refused"
    status = run_chute("status", "--state-dir", str(cfg.state_dir))
    assert "fleet: host beta, mirror paused: ClickHouse unreachable" in status.stdout, status.stdout + status.stderr
    # Back: everything the ledger changed meanwhile arrives (the watermark waited).
    mirror.target.close()
    mirror.store, mirror.target = real_store, real_target
    store, target = store_for(cfg)
    try:
        def mirrored() -> int:
            return query(engine, f"SELECT count() FROM `{cfg.database}`.`{FILES}` FINAL WHERE state = 'loaded'"
                                 " AND host = 'beta'")[0][0]
        wait_for(lambda: mirrored() == 5, timeout=30, what="the mirror to catch up")
        wait_for(lambda: mirror.error is None, timeout=30)
        assert json.loads(engine.ledger.meta("fleet"))["error"] is None
    finally:
        target.close()


def test_command_from_the_fleet_runs_through_the_hosts_own_channel(engine_factory, tmp_path: Path,
                                                                   chdb_path: Path) -> None:
    cfg = fleet_config(tmp_path, chdb_path, "gamma", require_approval=True)
    engine = engine_factory(cfg)
    (cfg.data_dir / "wait.csv").write_text(CSV)
    wait_for(lambda: state_of(engine, "wait.csv") == "held", timeout=60)
    store, target = store_for(cfg)
    try:
        cid = store.send_command("gamma", "approve", "wait.csv", "ops")
        done = wait_for(lambda: (c := store.command(cid)) and c["status"] in ("done", "error") and c, timeout=30)
        assert done == {"status": "done", "result": "approved wait.csv", "host": "gamma"}
        wait_for(lambda: state_of(engine, "wait.csv") == "loaded", timeout=60)
        actors = [e.actor for e in engine.ledger.events() if e.from_state == "held"]
        assert actors == ["ops@reader (fleet)"]
        # Ran once: the host remembers the fleet command it took.
        time.sleep(cfg.fleet_interval * 3)
        assert len([c for c in engine.ledger._q("SELECT * FROM commands")]) == 1
        with pytest.raises(UsageError):
            store.send_command("gamma", "format-disk", "x", "ops")
    finally:
        target.close()


@pytest.mark.parametrize("scope, a_mirrors", [("fleet", True), ("fleet", False), ("host", True)],
                         ids=["fleet-mirror-lookup", "fleet-table-lookup", "host-scope-negative-control"])
def test_fleet_scope_finds_content_another_host_loaded_after_its_tokens_expired(
        engine_factory, tmp_path: Path, chdb_path: Path, scope: str, a_mirrors: bool) -> None:
    """Two engines, one database, separate data and state dirs. A dedup window of 1 block means the
    tokens of the first load are gone once another file loads: only the sha lookup can catch it
    (the host-scope control loads it twice, so the window really had passed)."""
    db = f"t_fleet_{time.time_ns() % 10**12}"
    a = fleet_config(tmp_path / "a", chdb_path, "a", database=db, dedup_window=1, fleet_mirror=a_mirrors)
    b = fleet_config(tmp_path / "b", chdb_path, "b", database=db, dedup_window=1, dedup_scope=scope)
    ea, eb = engine_factory(a), engine_factory(b)
    body = "".join(f"{i},x{i}\n" for i in range(1000))
    (a.data_dir / "orders.csv").write_text("id,name\n" + body)
    wait_for(lambda: state_of(ea, "orders.csv") == "loaded", timeout=60)
    (a.data_dir / "orders-0002.csv").write_text("id,name\n1,other\n")  # pushes the first file's token out
    wait_for(lambda: state_of(ea, "orders-0002.csv") == "loaded", timeout=60)
    if a_mirrors:
        wait_for(lambda: ea.fleet.store._ready, timeout=60, what="a's fleet tables")  # a loaded machine is slow
        store, target = store_for(b)
        try:
            wait_for(lambda: store.loaded_elsewhere(ea.ledger.current("orders.csv").sha256), timeout=30)
        finally:
            target.close()
    (b.data_dir / "orders-0003.csv").write_text("id,name\n" + body)
    wait_for(lambda: state_of(eb, "orders-0003.csv") in ("duplicate", "loaded"), timeout=60)
    row = eb.ledger.current("orders-0003.csv")
    count = query(ea, f"SELECT count() FROM `{db}`.orders")[0][0]
    if scope == "host":
        assert (row.state, count) == ("loaded", 2001)
        return
    assert (row.state, count) == ("duplicate", 1001)
    if a_mirrors:
        assert row.reason.startswith("same content as orders.csv on host a (loaded 20")
    else:
        assert row.reason.startswith("same content is already in table orders")


def test_cluster_ddl_is_on_cluster_and_replicated() -> None:
    """What --cluster creates (no multi-replica cluster with Keeper can run here; see README)."""
    from chute.core.fleet import ddl

    plain = ddl(Config(database="ingest"))
    assert all("ON CLUSTER" not in s and "ENGINE = ReplacingMergeTree(" in s for s in plain)
    clustered = ddl(Config(database="ingest", cluster="main"))
    assert all(" ON CLUSTER `main` (" in s for s in clustered)
    assert "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', "\
           "updated_at)" in clustered[0]
    assert "'{replica}', heartbeat)" in clustered[1] and "'{replica}', rank)" in clustered[2]


def test_mirror_writes_only_what_changed(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = fleet_config(tmp_path, chdb_path, "delta")
    engine = engine_factory(cfg)
    (cfg.data_dir / "one.csv").write_text(CSV)
    wait_for(lambda: state_of(engine, "one.csv") == "loaded", timeout=60)

    wait_for(lambda: engine.fleet.store._ready, timeout=30, what="the fleet tables")
    wait_for(lambda: query(engine, f"SELECT count() FROM `{cfg.database}`.`{FILES}` FINAL WHERE state = 'loaded'")
             [0][0] == 1, timeout=30)
    engine.fleet.tick()
    before = engine.fleet.rows_written
    for _ in range(3):
        engine.fleet.tick()  # inside the resend overlap: the loaded row is already there, unchanged
    assert engine.fleet.rows_written == before


def test_fleet_command_line_errors_are_one_line(tmp_path: Path) -> None:
    from tests.conftest import run_chute

    out = run_chute("fleet", "--clickhouse", "http://chute@127.0.0.1:9", env={"CHUTE_CONNECT_TIMEOUT": "1"})
    assert out.returncode == 2 and out.stderr.startswith("chute: error: ") and "Traceback" not in out.stderr
    out = run_chute("fleet", "retry", "x.csv", "--clickhouse", "http://chute@127.0.0.1:9")
    assert out.returncode == 2 and "needs --host" in out.stderr


def test_table_lookup_does_not_mistake_this_hosts_own_partial_rows(tmp_path: Path, chdb_path: Path) -> None:
    """Rows of this content in the table may be this host's own (a version here that sent batches and
    did not finish): then only the mirror lookup counts, never "loaded by another host"."""
    import os

    from chute.core.fleet import FleetDedup
    from chute.core.ledger import Ledger

    cfg = fleet_config(tmp_path, chdb_path, "eps", dedup_scope="fleet")
    cfg.state_dir.mkdir(parents=True)
    ledger, target = Ledger(cfg.state_dir), Target(cfg)
    try:
        target.check()
        sha = "ab" * 32
        target._call("command", f"CREATE TABLE `{cfg.database}`.t (x Int64, _source_sha256 String,"
                                " _source_path String) ENGINE = MergeTree ORDER BY x")
        target._call("command", f"INSERT INTO `{cfg.database}`.t VALUES (1, '{sha}', 'old.csv')")
        st = os.stat(tmp_path)
        old, _ = ledger.observe("old.csv", st, "t", "csv", None, True)
        new, _ = ledger.observe("new.csv", os.stat(cfg.data_dir), "t", "csv", None, True)
        ledger.update(old.id, sha256=sha)
        ledger.update(new.id, sha256=sha)
        dedup = FleetDedup(cfg, target, ledger)
        dedup.store.ensure()
        new = ledger.get(new.id)
        # The old version never sent a batch: the rows are someone else's.
        assert dedup.check(new, sha)[0] == "duplicate"
        # It sent one (and did not finish): they may be ours.
        ledger.intent(old.id, 0, 0, f"{sha}:1:0", 1)
        assert dedup.check(new, sha) is None
    finally:
        target.close()
        ledger.close()


def test_waits_while_a_live_host_loads_the_same_content_then_is_a_duplicate(engine_factory, tmp_path: Path,
                                                                            chdb_path: Path) -> None:
    import dataclasses as dc
    import hashlib

    from chute.core.ledger import Ledger

    b = fleet_config(tmp_path / "b", chdb_path, "b", dedup_scope="fleet")
    eb = engine_factory(b)
    wait_for(lambda: eb.fleet.store._ready, timeout=30, what="the fleet tables")
    body = "id,name\n7,seven\n"
    sha = hashlib.sha256(body.encode()).hexdigest()
    # Host "a" (sorts before "b"), alive, is loading this content: its mirror says so.
    a = dc.replace(b, fleet_host="a", state_dir=tmp_path / "a" / "state")
    a.state_dir.mkdir(parents=True)
    ledger_a, target = Ledger(a.state_dir), Target(a)
    store_a = FleetStore(a, target)
    try:
        import os

        row, _ = ledger_a.observe("seven.csv", os.stat(tmp_path), "seven", "csv", None, True)
        ledger_a.update(row.id, sha256=sha, state="loading")
        store_a.write_files([ledger_a.get(row.id)])
        beat = {"data_dir": "/a", "started_at": time.time(), "stopped": False, "paused": False, "target_ok": True,
                "counts": {"loading": 1}, "rows_per_s": 0, "mb_per_s": 0, "files_per_min": 0, "alerts": []}
        store_a.write_heartbeat(beat)
        (b.data_dir / "seven-0002.csv").write_text(body)
        wait_for(lambda: any("waiting: host a is loading" in (e.detail or "") for e in eb.ledger.events()),
                 timeout=60, what="b to wait for a")
        assert state_of(eb, "seven-0002.csv") in ("queued", "loading")
        # a finishes: b's next look finds it loaded there.
        ledger_a.update(row.id, state="loaded", loaded_at=time.time())
        store_a.write_files([ledger_a.get(row.id)])
        store_a.write_heartbeat(beat)
        wait_for(lambda: state_of(eb, "seven-0002.csv") == "duplicate", timeout=60)
        assert eb.ledger.current("seven-0002.csv").reason.startswith("same content as seven.csv on host a")
    finally:
        target.close()
        ledger_a.close()


def test_mirror_pages_through_a_burst_bigger_than_its_batch(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """More changes within the resend overlap than one page holds (a first scan of many files): the
    mirror must page on, not read the same page forever."""
    cfg = fleet_config(tmp_path, chdb_path, "zeta")
    engine = engine_factory(cfg)
    engine.fleet.BATCH = 3
    for i in range(10):
        (cfg.data_dir / f"b{i}.csv").write_text(f"id\n{i}\n")

    def mirrored() -> int:
        if not engine.fleet.store._ready:
            return 0
        return query(engine, f"SELECT count() FROM `{cfg.database}`.`{FILES}` FINAL WHERE state = 'loaded'")[0][0]

    wait_for(lambda: mirrored() == 10, timeout=90, what="all ten mirrored")
    assert engine.fleet.error is None


def test_two_live_chutes_under_one_fleet_name_are_told(engine_factory, tmp_path: Path, chdb_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    db = f"t_name_{time.time_ns() % 10**12}"
    first = engine_factory(fleet_config(tmp_path / "one", chdb_path, "same", database=db))
    wait_for(lambda: first.fleet.store._ready and store_for_hosts(first.cfg), timeout=30, what="a heartbeat")
    second = engine_factory(fleet_config(tmp_path / "two", chdb_path, "same", database=db))
    wait_for(lambda: second.fleet.store._ready, timeout=30)
    wait_for(lambda: "another chute reports as host 'same'" in caplog.text, timeout=30)


def store_for_hosts(cfg: Config) -> bool:
    store, target = store_for(cfg)
    try:
        return bool(store.hosts())
    finally:
        target.close()


def test_content_wide_verification_verdicts(tmp_path: Path, chdb_path: Path) -> None:
    """What a host concludes after sending, from the rows of its content under its path and under any."""
    import os

    from chute.core.fleet import FleetDedup
    from chute.core.ledger import Ledger

    cfg = fleet_config(tmp_path, chdb_path, "eta", dedup_scope="fleet")
    cfg.state_dir.mkdir(parents=True)
    ledger, target = Ledger(cfg.state_dir), Target(cfg)
    try:
        target.check()
        target._call("command", f"CREATE TABLE `{cfg.database}`.t (x Int64, _source_sha256 String,"
                                " _source_path String) ENGINE = MergeTree ORDER BY x")
        mine, _ = ledger.observe("mine.csv", os.stat(tmp_path), "t", "csv", None, True)
        dedup = FleetDedup(cfg, target, ledger)

        def rows(sha: str, path: str, n: int) -> None:
            target._call("command", f"INSERT INTO `{cfg.database}`.t SELECT number, '{sha}', '{path}'"
                                    f" FROM numbers({n})")

        rows("s1", "theirs.csv", 2)
        rows("s1", "mine.csv", 1)  # interleaved: one copy of 3 rows, shared out between two paths
        assert dedup.verify(mine, "s1", 3, 1) == "loaded"
        rows("s2", "theirs.csv", 3)  # every batch of ours was dropped as theirs
        assert dedup.verify(mine, "s2", 3, 0) == "duplicate"
        rows("s3", "theirs.csv", 3)
        rows("s3", "mine.csv", 3)  # a whole copy besides ours (other batch_rows): ours must go
        assert dedup.verify(mine, "s3", 3, 3) == "extra"
        rows("s4", "mine.csv", 2)  # short, nobody else's: a real verification failure
        assert dedup.verify(mine, "s4", 3, 2) == "mismatch"
    finally:
        target.close()
        ledger.close()
