import os
import sqlite3
from pathlib import Path

import pytest

from chute.core.ledger import Ledger
from chute.core.states import State


def _stat(tmp: Path, name: str, content: bytes) -> os.stat_result:
    p = tmp / name
    p.write_bytes(content)
    return os.stat(p)


def test_events_are_append_only(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    row, _ = ledger.observe("a.csv", _stat(tmp_path, "a.csv", b"x\n1\n"), "a", "csv", None, False)
    ledger.transition(row.id, State.SETTLING)
    conn = sqlite3.connect(ledger.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE events SET detail = 'rewritten'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM events")
    assert [e.to_state for e in ledger.events(file_id=row.id)] == ["seen", "settling"]


def test_new_content_at_known_path_is_a_new_version(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    first, _ = ledger.observe("a.csv", _stat(tmp_path, "a.csv", b"x\n1\n"), "a", "csv", None, False)
    ledger.transition(first.id, State.LOADED)
    second, changed = ledger.observe("a.csv", _stat(tmp_path, "a.csv", b"x\n1\n2\n"), "a", "csv", None, False)
    assert changed and second.id != first.id
    assert [v.id for v in ledger.versions("a.csv")] == [first.id, second.id]
    assert ledger.current("a.csv").id == second.id  # type: ignore[union-attr]
    assert ledger.get(first.id).state == State.LOADED  # type: ignore[union-attr]  # the old version is kept


def test_growing_file_updates_the_waiting_version(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    first, _ = ledger.observe("a.csv", _stat(tmp_path, "a.csv", b"x\n"), "a", "csv", None, False)
    ledger.transition(first.id, State.SETTLING)
    again, changed = ledger.observe("a.csv", _stat(tmp_path, "a.csv", b"x\n1\n"), "a", "csv", None, False)
    assert changed and again.id == first.id and again.size == 4


def test_runnable_respects_backoff(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    row, _ = ledger.observe("a.csv", _stat(tmp_path, "a.csv", b"x\n1\n"), "a", "csv", None, False)
    ledger.transition(row.id, State.FAILED, next_attempt=2000.0)
    assert ledger.runnable(now=1000.0) == []
    assert [r.id for r in ledger.runnable(now=3000.0)] == [row.id]
    assert ledger.runnable(now=3000.0, exclude=[row.id]) == []
    ledger.transition(row.id, State.FAILED, next_attempt=None)  # gave up: only an operator retries
    assert ledger.runnable(now=1e12) == []


def test_unreadable_files_wait_behind_readable_ones(tmp_path: Path) -> None:
    """A flood of files chute can only move aside must not hold up data: a CSV queued after 40 of
    them is in the first dispatch (it waited 20.7 s behind 1,000 in a daemon before)."""
    ledger = Ledger(tmp_path)
    for i in range(40):
        junk, _ = ledger.observe(f"j{i}.xml", _stat(tmp_path, f"j{i}.xml", b"<a/>"), f"j{i}_xml", None, None, True)
        ledger.transition(junk.id, State.QUEUED)
    data, _ = ledger.observe("sales.csv", _stat(tmp_path, "sales.csv", b"id\n1\n"), "sales", "csv", None, True)
    ledger.transition(data.id, State.QUEUED)
    first = ledger.runnable(now=1e12, limit=4)
    assert first[0].id == data.id
    assert [r.path for r in first[1:]] == ["j0.xml", "j1.xml", "j2.xml"]  # then the others, oldest first
    ledger.close()


def test_token_generation_never_reuses_tokens_of_same_content(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    a, _ = ledger.observe("a.csv", _stat(tmp_path, "a.csv", b"x\n1\n"), "a", "csv", None, False)
    ledger.update(a.id, sha256="f" * 64)
    ledger.intent(a.id, 0, 0, "tok", 1)
    b, _ = ledger.observe("b.csv", _stat(tmp_path, "b.csv", b"x\n1\n"), "b", "csv", None, False)
    assert ledger.token_generation("f" * 64, b.id, 0) == 1
    assert ledger.token_generation("e" * 64, b.id, 0) == 0


def test_readonly_reader_while_writer_open(tmp_path: Path) -> None:
    writer = Ledger(tmp_path)
    writer.observe("a.csv", _stat(tmp_path, "a.csv", b"x\n1\n"), "a", "csv", None, False)
    reader = Ledger(tmp_path, readonly=True)
    assert reader.counts() == {"seen": 1}
    with pytest.raises(sqlite3.OperationalError):
        reader.set_meta("k", "v")


def test_an_old_ledger_gains_added_columns_in_place(tmp_path, monkeypatch) -> None:
    from chute.core import ledger as ledger_mod

    Ledger(tmp_path).close()
    monkeypatch.setattr(ledger_mod, "ADDED_COLUMNS", [("files", "probe_col", "INTEGER NOT NULL DEFAULT 7")])
    Ledger(tmp_path).close()
    Ledger(tmp_path).close()  # idempotent
    conn = sqlite3.connect(tmp_path / Ledger.FILENAME)
    assert "probe_col" in {r[1] for r in conn.execute("PRAGMA table_info(files)")}


def test_a_file_moved_back_by_a_retry_stays_the_same_version(tmp_path: Path) -> None:
    """A retry moves a quarantined file back into the data folder (its ctime changes) and then
    requeues the version. A watcher sighting in between used to make it a new version, so the
    operator's retry ran on one version and the file loaded as another (seen as a flaky
    test_policies::test_operator_commands_end_to_end under load)."""
    ledger = Ledger(tmp_path)
    row, _ = ledger.observe("q.csv", _stat(tmp_path, "q.csv", b"x\n1\n"), "q", "csv", None, True)
    ledger.transition(row.id, State.QUARANTINED, moved_to="quarantine/q.csv")
    assert ledger.open_intent(row.id, "retry", "ops", "{}", expect=[State.QUARANTINED]) is not None
    os.utime(tmp_path / "q.csv", ns=(1, 1))  # the move back: a new ctime (and here a new mtime)
    seen, changed = ledger.observe("q.csv", os.stat(tmp_path / "q.csv"), "q", "csv", None, True)
    assert (seen.id, changed) == (row.id, False)
    assert [v.id for v in ledger.versions("q.csv")] == [row.id]
