"""A file of a type chute cannot read is only moved aside once it has been quiet for
settle_seconds: a writer's temporary name (`x.csv.t`), closed and then renamed, is never moved
from under the rename and leaves no `failed` row (docs/ARCHITECTURE.md#complete-files). Driven
through the watcher's own rounds (events handed in), so nothing depends on timing."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.core.watcher import Hint, Watcher


def _watcher(tmp_path: Path, settle: float) -> tuple[Watcher, Ledger, Path]:
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    state.mkdir()
    cfg = dataclasses.replace(Config(), data_dir=data, state_dir=state, settle_seconds=settle, rescan_seconds=60)
    ledger = Ledger(state)
    watcher = Watcher(cfg, ledger, on_queued=threading.Event().set)
    watcher.scan()
    return watcher, ledger, data


def _written(watcher: Watcher, path: Path, text: str) -> None:
    """An in-place write, as watchdog reports it: Created, Opened, Modified, Closed."""
    path.write_text(text)
    watcher._handle([(str(path), h) for h in (Hint.CREATED, Hint.OPENED, Hint.MODIFIED, Hint.CLOSED)])
    watcher._settle()


def _states(ledger: Ledger) -> dict[str, str]:
    return {r.path: str(r.state) for r in ledger.list_files()}


def test_a_writers_temporary_name_is_left_alone_until_renamed(tmp_path: Path) -> None:
    watcher, ledger, data = _watcher(tmp_path, settle=60)
    try:
        temp = data / "sales.csv.t"
        _written(watcher, temp, "id,v\n1,2\n")
        # Closed, no writer left: a readable file would be queued now. This one would be moved
        # to _quarantine at once, and the writer's rename a moment later would fail.
        assert _states(ledger) == {}
        assert watcher.settling == 1  # `--once` and the console count it as settling
        os.rename(temp, data / "sales.csv")
        watcher._handle([(str(data / "sales.csv"), Hint.MOVED)])
        watcher._settle()
        assert _states(ledger) == {"sales.csv": "queued"}
        watcher.cfg = dataclasses.replace(watcher.cfg, settle_seconds=0)  # its settle time has passed
        watcher._settle()
        assert _states(ledger) == {"sales.csv": "queued"}  # the temporary name left no row at all
        assert watcher.settling == 0
    finally:
        ledger.close()


def test_an_unreadable_file_left_in_place_is_recorded_once_quiet(tmp_path: Path) -> None:
    watcher, ledger, data = _watcher(tmp_path, settle=60)
    try:
        _written(watcher, data / "notes.xml", "<a>1</a>\n")
        assert _states(ledger) == {}
        watcher.cfg = dataclasses.replace(watcher.cfg, settle_seconds=0)
        watcher._settle()
        assert _states(ledger) == {"notes.xml": "queued"}  # the loader quarantines it, with its reason
        assert watcher.settling == 0
    finally:
        ledger.close()


def test_an_unreadable_file_held_by_a_writer_waits_for_it(tmp_path: Path) -> None:
    watcher, ledger, data = _watcher(tmp_path, settle=0)
    try:
        path = data / "growing.bin"
        path.write_text("a")
        with open(path, "a"):  # a writer still holds it: not recorded, however quiet
            watcher._handle([(str(path), Hint.CREATED), (str(path), Hint.OPENED)])
            watcher._settle()
            assert _states(ledger) == {}
            assert watcher.settling == 1
        watcher.writers.invalidate()  # (as the watcher's round does when events arrive)
        watcher._handle([(str(path), Hint.CLOSED)])
        watcher._settle()
        assert _states(ledger) == {"growing.bin": "queued"}
    finally:
        ledger.close()
