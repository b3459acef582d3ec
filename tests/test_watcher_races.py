"""Races between the watcher's batched recording (Ledger.observe_many, then transition_many) and
the dispatcher's claim, made deterministic by doing the claim inside the window."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.core.states import State
from chute.core.watcher import Watcher


def test_a_version_claimed_between_observe_and_settling_stays_loading(tmp_path: Path) -> None:
    """A queued file changes (a writer appends); the watcher records the new identity, and before it
    moves the version back to `settling`, the dispatcher claims it. The claim won: the watcher must
    not turn a `loading` version into `settling` under the loader."""
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    state.mkdir()
    f = data / "a.csv"
    f.write_text("id\n1\n")
    cfg = dataclasses.replace(Config(), data_dir=data, state_dir=state, settle_seconds=0, rescan_seconds=60)
    ledger = Ledger(state)
    try:
        watcher = Watcher(cfg, ledger, on_queued=threading.Event().set)
        watcher.scan()
        watcher._settle()
        [row] = ledger.list_files()
        assert row.state == State.QUEUED
        with f.open("a") as out:
            out.write("2\n")
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        real = ledger.observe_many

        def then_claimed(sightings):
            out = real(sightings)
            assert [r.state for r, _ in out] == [State.QUEUED]
            assert ledger.claim(row.id) is not None  # the dispatcher, in the window
            return out

        ledger.observe_many = then_claimed  # type: ignore[method-assign]
        watcher._known.clear()
        watcher.scan()
        assert ledger.get(row.id).state == State.LOADING
    finally:
        ledger.close()


def test_files_moved_in_at_once_are_recorded_in_a_few_transactions(tmp_path: Path) -> None:
    """A daemon sees many files land through events (moved in, closed, modified: several per file),
    not a scan: the round that handles them records them together, each once."""
    from chute.core.watcher import Hint

    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    state.mkdir()
    cfg = dataclasses.replace(Config(), data_dir=data, state_dir=state, settle_seconds=0, rescan_seconds=60)
    ledger = Ledger(state)
    try:
        watcher = Watcher(cfg, ledger, on_queued=threading.Event().set)
        watcher.scan()  # (empty)
        hints = []
        for i in range(100):
            p = data / f"f{i:03d}.csv"
            p.write_text(f"id\n{i}\n")
            hints += [(str(p), Hint.CREATED), (str(p), Hint.MODIFIED), (str(p), Hint.CLOSED)]
        real, count = ledger._tx, [0]

        def counted():
            count[0] += 1
            return real()

        ledger._tx = counted  # type: ignore[method-assign]
        watcher._handle(hints)
        assert count[0] <= 2, count[0]  # was two per file
        watcher._settle()
        rows = ledger.list_files()
        assert sorted(r.path for r in rows) == [f"f{i:03d}.csv" for i in range(100)]
        assert {str(r.state) for r in rows} == {str(State.QUEUED)}
        assert len(ledger.events()) == 300  # seen, settling, queued: once each
    finally:
        ledger.close()
