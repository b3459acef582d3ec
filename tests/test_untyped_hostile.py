"""A hostile user against the watcher's untyped files (docs/ARCHITECTURE.md#complete-files) and
`--once`'s result: what broke, kept broken-able by these tests."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.core.watcher import Watcher


def _watcher(tmp_path: Path, settle: float) -> tuple[Watcher, Ledger, Path]:
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    state.mkdir()
    cfg = dataclasses.replace(Config(), data_dir=data, state_dir=state, settle_seconds=settle, rescan_seconds=60)
    ledger = Ledger(state)
    return Watcher(cfg, ledger, on_queued=threading.Event().set), ledger, data


def test_once_counts_a_file_quarantined_before_a_later_rescan(tmp_path: Path) -> None:
    """`--once` reads where each file it found ended from ``scanned_paths``. A rescan after an
    unreadable file went to _quarantine (it now waits settle_seconds, so a rescan often comes
    between) dropped it: `--once` said "1 loaded" and exited 0 with a file quarantined."""
    watcher, ledger, data = _watcher(tmp_path, settle=60)
    try:
        (data / "notes.xml").write_text("<a/>\n")
        (data / "ok.csv").write_text("id\n1\n")
        watcher.start(observe=False)  # as `--once` runs it: no events, scans on the timer
        (data / "notes.xml").unlink()  # (moved to _quarantine by the loader)
        watcher.scan()
        assert watcher.scanned_paths == {"notes.xml", "ok.csv"}
    finally:
        watcher.stop()
        ledger.close()


def test_a_daemons_scanned_paths_do_not_grow_with_its_history(tmp_path: Path) -> None:
    """Negative control of the fix above: a daemon (events on) keeps only the last scan's paths, so
    a folder that sees millions of files over months does not grow the set without end."""
    watcher, ledger, data = _watcher(tmp_path, settle=60)
    try:
        (data / "old.csv").write_text("id\n1\n")
        watcher.start(observe=True)
        (data / "old.csv").unlink()
        watcher.scan()
        assert "old.csv" not in watcher.scanned_paths
    finally:
        watcher.stop()
        ledger.close()
