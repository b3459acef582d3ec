"""The writer check (core/writers.py) both ways, and the watcher without the engine: a file
held open for writing is never queued, and the negative control shows the watcher test would
catch a watcher that does not look."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.core.states import State
from chute.core.watcher import Watcher
from chute.core.writers import OpenWriters
from tests.conftest import wait_for


@pytest.fixture(params=["lease", "proc"])
def writers(request: pytest.FixtureRequest, tmp_path: Path) -> OpenWriters:
    w = OpenWriters(tmp_path, max_age=0)
    if request.param == "lease":
        assert w.enable_leases(), "pytest runs tests in the main thread"
    return w


@pytest.mark.parametrize("mode", ["wb", "ab", "r+b"])
def test_a_writer_in_this_process_is_seen(writers: OpenWriters, tmp_path: Path, mode: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"a\n1\n")
    with open(path, mode):
        found = writers.of(path)
        assert found and found[0].pid == os.getpid()
    assert writers.of(path) == []


def test_readers_are_not_writers(writers: OpenWriters, tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"a\n1\n")
    with open(path, "rb"):
        assert writers.of(path) == []


def test_a_writer_in_another_process_is_seen(writers: OpenWriters, tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"a\n")
    code = "import sys; f = open(sys.argv[1], 'ab'); print('open', flush=True); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        found = writers.of(path)
        assert [w.pid for w in found] == [proc.pid] and found[0].name.startswith("python")
    finally:
        proc.communicate("")
    assert writers.of(path) == []


# -- the watcher on its own ------------------------------------------------------------------


class _Blind(OpenWriters):
    """A writer check that sees nothing: the watcher as it was before (negative control)."""

    def of(self, path):
        return []


def _watcher(tmp_path: Path, blind: bool) -> tuple[Watcher, Ledger, Path, threading.Event]:
    data = tmp_path / "data"
    data.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    cfg = dataclasses.replace(Config(), data_dir=data, state_dir=state, settle_seconds=0.2, rescan_seconds=0.5)
    ledger = Ledger(state)
    queued = threading.Event()
    watcher = Watcher(cfg, ledger, on_queued=queued.set)
    if blind:
        watcher.writers = _Blind(data)
    watcher.start()
    return watcher, ledger, data, queued


@pytest.mark.parametrize("blind", [False, True], ids=["watcher", "negative-control"])
def test_open_writer_pausing_beyond_settle_is_not_queued(tmp_path: Path, blind: bool) -> None:
    watcher, ledger, data, queued = _watcher(tmp_path, blind)
    try:
        with open(data / "w.csv", "wb") as f:
            f.write(b"a,b\n1,2\n")
            f.flush()
            # Judged: waiting on the writer, or (blind) queued half-written.
            wait_for(lambda: queued.is_set() or "open for writing" in ((ledger.current("w.csv") or None) and
                                                                       ledger.current("w.csv").reason or ""))
            if blind:
                assert ledger.current("w.csv").state == State.QUEUED  # the test catches a blind watcher
                return
            assert ledger.current("w.csv").state == State.SETTLING and not queued.is_set()
            f.write(b"3,4\n")
        wait_for(queued.is_set, what="queued once closed")
        row = ledger.current("w.csv")
        assert row.state == State.QUEUED and row.size == (data / "w.csv").stat().st_size
    finally:
        watcher.stop()
        ledger.close()


def test_settling_file_written_many_times_is_queued_with_its_final_identity(tmp_path: Path) -> None:
    """Changes while settling stay in memory; the ledger gets the identity the loader will check."""
    watcher, ledger, data, queued = _watcher(tmp_path, blind=False)
    try:
        with open(data / "s.csv", "wb") as f:
            for i in range(200):
                f.write(f"{i},x\n".encode())
                f.flush()
        wait_for(queued.is_set, what="queued")
        row = ledger.current("s.csv")
        st = (data / "s.csv").stat()
        assert (row.size, row.mtime_ns, row.ctime_ns, row.inode) == (st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                                                       st.st_ino)
    finally:
        watcher.stop()
        ledger.close()


def test_lease_alone_sees_a_writer_that_proc_does_not_show(tmp_path: Path) -> None:
    """Without /proc (another user's process, another container) the lease still says "writer"."""
    writers = OpenWriters(tmp_path, max_age=0, proc=str(tmp_path / "no-proc"))
    assert writers.enable_leases() and not writers.available
    path = tmp_path / "f.csv"
    path.write_bytes(b"a\n")
    with open(path, "ab"):
        assert [w.pid for w in writers.of(path)] == [0]
    assert writers.of(path) == []


def test_empty_file_touched_then_written_is_not_taken_empty(tmp_path: Path) -> None:
    """`touch x; cat > x`: the first close-write leaves an empty file; it settles, and the
    written content is what gets queued."""
    watcher, ledger, data, queued = _watcher(tmp_path, blind=False)
    try:
        (data / "t.csv").touch()
        wait_for(lambda: ledger.current("t.csv") is not None, what="seen")
        (data / "t.csv").write_bytes(b"a,b\n1,2\n")
        wait_for(queued.is_set, what="queued")
        row = ledger.current("t.csv")
        assert row.size == 8
        assert [e.to_state for e in ledger.events(file_id=row.id)].count(State.QUEUED) == 1  # never queued empty
    finally:
        watcher.stop()
        ledger.close()
