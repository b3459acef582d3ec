"""Hostile cases for small files sharing one insert (core/groups.py): failures at the worst
moments of a group, made deterministic with failpoints (``pause_at``, ``kill_at``), never timers.
One worker: the paused group is the first, so a table dropped at the pause held no rows yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from chute.core import actions, failpoints
from chute.core.states import State
from tests.conftest import make_config, query, run_chute, state_of, wait_for
from tests.invariants import counts_via, disagreements
from tests.test_crash import kill_at
from tests.test_groups import ROWS, _args, ledger, small_files


def _pause(monkeypatch: pytest.MonkeyPatch, gate: Path, step: str, nth: int = 1) -> None:
    monkeypatch.setitem(failpoints._spec, "pause_at", f"{step}:{nth}")
    monkeypatch.setitem(failpoints._spec, "gate", str(gate))
    monkeypatch.setattr(failpoints, "_hits", {})  # counted per process: start from zero for this test


def _paused_group(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chdb_path: Path, engine_factory, step: str,
                  files: int, **overrides: object):
    """A daemon loading ``files`` small files as one group, held at ``step`` until the returned gate exists."""
    gate = tmp_path / "gate"
    _pause(monkeypatch, gate, step)
    # settle_seconds = 0: the files, written before the start, are all queued by the first scan, in one group.
    cfg = make_config(tmp_path, chdb_path, workers=1, group_max_files=50, settle_seconds=0, **overrides)
    small_files(cfg.data_dir, files)
    engine = engine_factory(cfg)
    wait_for(lambda: Path(f"{gate}.reached").exists(), timeout=120, what=f"the group at {step}")
    return cfg, engine, gate


def test_a_failed_verification_query_leaves_no_member_loading(engine_factory, tmp_path: Path, chdb_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The group's insert is acknowledged, then ClickHouse fails the verification query (here: the
    table is gone). Every member must get an outcome (not stay `loading` in a running daemon) and
    load again once."""
    cfg, engine, gate = _paused_group(monkeypatch, tmp_path, chdb_path, engine_factory, "group_done", 6)
    engine.target.client().command(f"DROP TABLE `{cfg.database}`.part SYNC")
    gate.touch()
    wait_for(lambda: engine.idle(), timeout=120, what="idle")
    assert ledger(cfg.state_dir, "SELECT count(*) FROM files WHERE state = 'loading'") == [(0,)]
    wait_for(lambda: all(state_of(engine, f"part_{i:04d}.csv") == State.LOADED for i in range(6)),
             timeout=120, what="every member loaded again")
    assert query(engine, f"SELECT count(), uniqExact(_source_sha256, _source_row) FROM `{cfg.database}`.part") \
        == [(6 * ROWS, 6 * ROWS)]


def _agree(engine, cfg) -> list[str]:
    return disagreements(cfg.state_dir, counts=counts_via(engine.target.client(), cfg.database))


def test_a_member_rewritten_then_deleted_after_the_insert_leaves_no_rows(engine_factory, tmp_path: Path,
                                                                         chdb_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The group's rows are in; one member is rewritten in place (its re-check fails) and then
    deleted before chute looks again. Its rows must not stay in the table under a version the
    ledger calls failed."""
    cfg, engine, gate = _paused_group(monkeypatch, tmp_path, chdb_path, engine_factory, "group_done", 6)
    victim = cfg.data_dir / "part_0002.csv"
    with victim.open("a") as f:  # in place: the open descriptor sees it
        f.write("999999,late,1.5\n")
    victim.unlink()
    gate.touch()
    wait_for(lambda: engine.idle(), timeout=120, what="idle")
    assert state_of(engine, "part_0002.csv") == State.FAILED
    for i in (0, 1, 3, 4, 5):
        assert state_of(engine, f"part_{i:04d}.csv") == State.LOADED
    assert _agree(engine, cfg) == []


def test_a_member_rewritten_into_a_twin_after_the_insert_leaves_no_rows(engine_factory, tmp_path: Path,
                                                                        chdb_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The group's rows are in; one member is rewritten in place with a neighbour's content. Its
    old version is superseded with rows in the table, its new version is a duplicate: the old
    rows must still be taken back."""
    cfg, engine, gate = _paused_group(monkeypatch, tmp_path, chdb_path, engine_factory, "group_done", 6)
    twin = (cfg.data_dir / "part_0001.csv").read_bytes()
    with (cfg.data_dir / "part_0002.csv").open("r+b") as f:  # in place: the open descriptor sees it
        f.write(twin)
        f.truncate()
    gate.touch()
    wait_for(lambda: engine.idle() and state_of(engine, "part_0002.csv") == State.DUPLICATE, timeout=120,
             what="the new version a duplicate")
    assert _agree(engine, cfg) == []


def test_files_and_status_explain_an_unacknowledged_group(tmp_path: Path) -> None:
    """Killed after the group's insert, before its ack: with no engine running, `chute files` and
    `chute status` must say why its members show `loading`, not leave an empty reason."""
    small_files(tmp_path / "data", 5)
    kill_at(_args(tmp_path), "group_inserted", 1, tmp_path / "failpoint.log")
    state = ["--state-dir", str(tmp_path / "state")]
    files = run_chute("files", *state)
    assert files.returncode == 0, files.stderr
    lines = [line.split("\t") for line in files.stdout.splitlines()]
    assert len(lines) == 5 and all(f[3] == "loading" and "never acknowledged" in f[5] for f in lines), files.stdout
    status = run_chute("status", *state)
    assert "unacknowledged group inserts: 1 (5 files)" in status.stdout, status.stdout
    done = run_chute(*_args(tmp_path))  # the next start settles it: nothing left to explain
    assert done.returncode == 0, done.stderr[-3000:]
    assert "never acknowledged" not in run_chute("files", *state).stdout
    assert "unacknowledged" not in run_chute("status", *state).stdout


def test_a_member_purged_while_its_group_replays_keeps_no_rows(engine_factory, tmp_path: Path, chdb_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared insert fails: its first member is `failed` (here: gave up), the others replay
    the group. The replay reads the failed member without claiming it, so an operator may purge
    it between the replay's checks and its insert: the purged member's rows must not come back."""
    cfg, engine, gate = _paused_group(monkeypatch, tmp_path, chdb_path, engine_factory, "group_intent", 4,
                                      max_attempts=1)
    engine.target.client().command(f"DROP TABLE `{cfg.database}`.part SYNC")  # the shared insert fails
    [(first,)] = ledger(cfg.state_dir, "SELECT f.path FROM group_members m JOIN files f ON f.id = m.file_id"
                                       " WHERE m.group_id = 1 AND m.pos = 0")
    _pause(monkeypatch, gate := tmp_path / "gate2", "group_replay")
    (tmp_path / "gate").touch()  # the paused insert goes on, and fails
    wait_for(lambda: Path(f"{gate}.reached").exists(), timeout=120, what="the replay rebuilt")
    assert state_of(engine, first) == State.FAILED
    assert engine.ledger is not None
    print(actions.purge(cfg, engine.ledger, engine.target, engine.ledger.current(first), "test"))
    gate.touch()
    others = [f"part_{i:04d}.csv" for i in range(4) if f"part_{i:04d}.csv" != first]
    wait_for(lambda: engine.idle() and all(state_of(engine, p) == State.LOADED for p in others), timeout=120,
             what="the others loaded")
    assert state_of(engine, first) == State.PURGED
    assert _agree(engine, cfg) == []


def test_a_member_that_gave_up_before_its_group_replayed_is_loaded(engine_factory, tmp_path: Path,
                                                                  chdb_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared insert fails and its first member gives up (`failed`, no next attempt); the others
    replay the group, which puts the first member's rows in the table too. It must not stay
    `failed` with rows in ClickHouse the ledger does not count."""
    cfg, engine, gate = _paused_group(monkeypatch, tmp_path, chdb_path, engine_factory, "group_intent", 4,
                                      max_attempts=1)
    engine.target.client().command(f"DROP TABLE `{cfg.database}`.part SYNC")  # the shared insert fails
    gate.touch()
    wait_for(lambda: engine.idle() and ledger(cfg.state_dir, "SELECT state FROM groups WHERE id = 1") == [("done",)],
             timeout=120, what="the group replayed")
    wait_for(lambda: engine.idle() and all(state_of(engine, f"part_{i:04d}.csv") == State.LOADED for i in range(4)),
             timeout=60, what="every member loaded")
    assert _agree(engine, cfg) == []
