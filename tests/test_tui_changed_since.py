"""The Files pane's incremental read (NewestFiles) against a ledger whose writes commit out of the
order of their ``updated_at``: a writer takes its timestamp, then waits for the ledger's lock."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from chute.core.ledger import Ledger
from chute.core.states import State
from chute.tui.view import FileQuery, NewestFiles
from tests.test_tui_boundaries import _row


def _waiting_for_lock(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == "_tx":  # inside the ledger's transaction helper: at its lock
            return True
        frame = frame.f_back
    return False


def test_a_change_committed_after_a_newer_one_is_shown(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    a, b, _c = (_row(ledger, f"f{i}.csv", State.LOADING) for i in range(3))
    newest = NewestFiles(limit=10)
    newest.read(ledger, FileQuery())
    with ledger._lock:  # the engine's other thread is in a transaction
        # A loader takes its timestamp (transition_many does, before the lock), then waits.
        writer = threading.Thread(target=ledger.transition_many, args=([(a.id, {})], State.LOADED))
        writer.start()
        deadline = time.monotonic() + 60
        while not _waiting_for_lock(writer):
            assert time.monotonic() < deadline, "the writer never reached the ledger's lock"
            time.sleep(0.01)
        ledger.transition(b.id, State.LOADED)  # later timestamp, committed first
        shown, _ = newest.read(ledger, FileQuery())  # a refresh between the two commits
        assert {r.path: r.state for r in shown}["f1.csv"] == State.LOADED
    writer.join(60)
    shown, _ = newest.read(ledger, FileQuery())
    assert {r.path: r.state for r in shown}["f0.csv"] == State.LOADED, "a's move to loaded was missed"
    ledger.close()


def test_rows_gc_removed_leave_the_pane_at_the_next_read(tmp_path: Path) -> None:
    from chute.core import gc
    from chute.core.config import Config

    ledger = Ledger(tmp_path)
    cfg = Config(data_dir=tmp_path / "data", state_dir=tmp_path, ledger_keep="1d")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "here.csv").write_text("x\n")  # still in the folder: gc keeps its row
    for name in ("here.csv", "gone.csv", "newest.csv"):  # given up; gc never prunes the newest id
        _row(ledger, name, State.FAILED, next_attempt=None, error_kind="gone")
    newest = NewestFiles(limit=10)
    assert [r.path for r in newest.read(ledger, FileQuery())[0]] == ["newest.csv", "gone.csv", "here.csv"]
    assert gc.run(cfg, ledger, now=time.time() + 2 * 86400).files_pruned == 1
    shown, _ = newest.read(ledger, FileQuery())
    assert [r.path for r in shown] == ["newest.csv", "here.csv"], "a row gc removed is still shown"
    ledger.close()
