"""Issue 13: retention. gc prunes old ledger rows, events, archive and quarantine, and keeps
every loaded file's sha256 so a copy is still a duplicate after pruning."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from chute.core import gc
from chute.core.config import Config
from chute.core.ledger import GroupMember, Ledger
from chute.core.sources import Keep
from chute.core.states import State
from tests.conftest import query, run_chute, state_of, wait_for
from tests.test_engine import csv_bytes, make_rows

DAY = 86400.0


def _count(engine, table: str) -> int:
    return query(engine, f"SELECT count() FROM {engine.cfg.database}.{table}")[0][0]


def test_duplicates_are_still_caught_after_gc_prunes_the_ledger(engine_factory) -> None:
    engine = engine_factory(after_load="archive", ledger_keep="1d")
    content = csv_bytes(make_rows(40))
    (engine.cfg.data_dir / "orders_1.csv").write_bytes(content)
    wait_for(lambda: state_of(engine, "orders_1.csv") == "loaded", what="loaded")
    (engine.cfg.data_dir / "other.csv").write_bytes(csv_bytes(make_rows(3, seed=9)))  # the newest id stays
    wait_for(lambda: state_of(engine, "other.csv") == "loaded", what="loaded")
    # Archived just after `loaded` (its intent closed then): gc keeps a version whose action is open.
    wait_for(engine.idle, what="both archived")
    assert _count(engine, "orders") == 40
    ledger = engine.ledger

    report = gc.run(engine.cfg, ledger, now=time.time() + 2 * DAY)
    assert report.files_pruned == 1 and report.hashes_kept == 1 and report.events_pruned >= 4
    assert ledger.versions("orders_1.csv") == []
    assert [e.action for e in ledger.events()] == ["gc"]  # the run itself is the audit trail's record
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):  # the trigger is back
        ledger._conn.execute("DELETE FROM events")

    (engine.cfg.data_dir / "orders_2.csv").write_bytes(content)  # the same content again
    wait_for(lambda: state_of(engine, "orders_2.csv") == "duplicate", what="duplicate after gc")
    assert "orders_1.csv" in (ledger.current("orders_2.csv").reason or "")
    assert _count(engine, "orders") == 40

    # Negative control: a gc that forgot the hashes no longer recognises the copy (it is sent
    # again with the old tokens, which ClickHouse drops: the file fails verification instead).
    ledger._conn.execute("DELETE FROM kept_hashes")
    (engine.cfg.data_dir / "orders_3.csv").write_bytes(content)
    wait_for(lambda: state_of(engine, "orders_3.csv") in ("loaded", "duplicate", "failed"), what="outcome")
    assert state_of(engine, "orders_3.csv") != "duplicate"


def test_a_file_still_in_the_folder_keeps_its_row(engine_factory) -> None:
    engine = engine_factory(after_load="keep", ledger_keep="1d")
    (engine.cfg.data_dir / "kept.csv").write_bytes(csv_bytes(make_rows(5)))
    wait_for(lambda: state_of(engine, "kept.csv") == "loaded", what="loaded")
    report = gc.run(engine.cfg, engine.ledger, now=time.time() + 2 * DAY)
    assert report.files_pruned == 0 and state_of(engine, "kept.csv") == "loaded"


def test_given_up_versions_go_once_their_file_is_gone(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    cfg = Config(data_dir=tmp_path / "data", state_dir=tmp_path, ledger_keep="1d")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "still_here.csv").write_text("x\n")
    st = (tmp_path / "data" / "still_here.csv").stat()
    ids = {}
    for name in ("gone.csv", "still_here.csv", "newest.csv"):
        row, _ = ledger.observe(name, st, "t", "csv", None, complete=True)
        ledger.transition(row.id, State.FAILED, next_attempt=None, error_kind="gone")
        ids[name] = row.id
    report = gc.run(cfg, ledger, now=time.time() + 2 * DAY)
    assert report.files_pruned == 1 and ledger.get(ids["gone.csv"]) is None
    assert ledger.get(ids["still_here.csv"]) is not None  # `chute retry` can still take it
    ledger.close()


def test_archive_and_quarantine_by_age_then_size(tmp_path: Path) -> None:
    folder = tmp_path / "_archive"
    (folder / "sub").mkdir(parents=True)
    for i in range(5):
        (folder / "sub" / f"f{i}.csv").write_bytes(b"x" * 1000)
        time.sleep(0.01)  # distinct ctimes: oldest first
    now = time.time()
    assert gc.prune_folder(folder, Keep.parse("30d"), now) == (0, 0)
    assert gc.prune_folder(folder, Keep.parse("2500"), now) == (3, 3000)  # size: the oldest go first
    assert sorted(p.name for p in folder.rglob("*.csv")) == ["f3.csv", "f4.csv"]
    assert gc.prune_folder(folder, Keep.parse("30d 1MiB"), now + 31 * DAY) == (2, 2000)
    assert not (folder / "sub").exists()  # emptied folders go too


def test_chute_gc_command_and_the_daily_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    data = tmp_path / "data"
    data.mkdir()
    state.mkdir()
    ledger = Ledger(state)
    ledger.set_meta("data_dir", str(data))
    ledger.log(None, None, "test", "note", "old")
    ledger.close()
    proc = run_chute("gc", "--state-dir", str(state), env={"CHUTE_LEDGER_KEEP": "1d"})
    assert proc.returncode == 0 and "gc removed" in proc.stdout and "Traceback" not in proc.stderr, proc.stderr
    ledger = Ledger(state)
    assert [e.action for e in ledger.events()] == ["note", "gc"]  # not old enough to prune

    cfg = Config(data_dir=data, state_dir=state, ledger_keep="1d", gc_at="03:30")
    engine = SimpleNamespace(cfg=cfg, ledger=ledger)
    daily = gc.DailyGc(engine)
    day = time.mktime((2026, 11, 28, 3, 29, 0, 0, 0, -1))
    assert not daily.tick(day)
    assert daily.tick(day + 60)
    daily._thread.join(10)
    assert not daily.tick(day + 3600)  # once a day...
    assert not gc.DailyGc(engine).tick(day + 7200)  # ...even across a restart
    assert [e.actor for e in ledger.events()][-1] == "gc:daily"
    ledger.close()


def test_closed_groups_intents_and_commands_are_pruned_open_ones_stay(tmp_path: Path) -> None:
    """The groups, intents and commands tables grew without end: gc takes their closed rows past
    ``ledger_keep`` and never an open one (an unacknowledged group still has to be replayed)."""
    ledger = Ledger(tmp_path)
    cfg = Config(data_dir=tmp_path / "data", state_dir=tmp_path, ledger_keep="1d")
    (tmp_path / "data").mkdir()
    (tmp_path / "marker").write_text("x\n")
    st = (tmp_path / "marker").stat()
    ids = [ledger.observe(f"f{i}.csv", st, "t", "csv", None, complete=True)[0].id for i in range(3)]
    members = [GroupMember(fid, 0, f"h{fid}", 1) for fid in ids]
    done = ledger.group_intent("t", "tok-done", members[:2])
    ledger.group_ack(done)
    still_open = ledger.group_intent("t", "tok-open", members[2:])
    closed_intent = ledger.open_intent(ids[0], "retry", "test", "{}", expect=list(State))
    assert closed_intent is not None
    ledger.close_intent(closed_intent, "done", "ok")
    open_intent = ledger.open_intent(ids[1], "retry", "test", "{}", expect=list(State))
    finished = ledger.enqueue_command("retry", "f0.csv", "test")
    ledger.finish_command(finished, True, "ok")
    pending = ledger.enqueue_command("retry", "f1.csv", "test")

    report = gc.run(cfg, ledger, now=time.time() + 2 * DAY)

    def ids_of(sql: str) -> list[int]:
        return [r[0] for r in ledger._conn.execute(sql).fetchall()]

    assert ids_of("SELECT id FROM groups") == [still_open]
    assert ids_of("SELECT DISTINCT group_id FROM group_members") == [still_open]
    assert ids_of("SELECT id FROM intents") == [open_intent]
    assert ids_of("SELECT id FROM commands") == [pending]
    assert (report.groups_pruned, report.intents_pruned, report.commands_pruned) == (1, 1, 1)
    assert "1 groups, 1 intents, 1 commands" in report.line()
    # Not old enough: nothing closed a moment ago goes.
    ledger.group_ack(still_open)
    assert gc.run(cfg, ledger).groups_pruned == 0
    ledger.close()
