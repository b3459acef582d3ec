"""Notice files in DATA_DIR and decide when each is complete (docs/ARCHITECTURE.md#complete-files).

Watch events are only hints: a full rescan runs at start and on a timer, because events are
lost on queue overflow and on network filesystems. Close-write and moved-in mean "complete";
created and modified mean "settle first" (size and mtime quiet for ``settle_seconds``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.core.routing import format_of, is_ignored, table_for
from chute.core.states import State

log = logging.getLogger("chute.watcher")


@dataclass
class _Settling:
    file_id: int
    ident: tuple[int, int]  # size, mtime_ns
    quiet_since: float
    complete: bool


class _Handler(FileSystemEventHandler):
    def __init__(self, hints: queue.SimpleQueue[tuple[str, bool]]) -> None:
        self.hints = hints

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirMovedEvent | DirCreatedEvent):
            self.hints.put(("", False))  # a whole folder arrived: rescan
        elif isinstance(event, FileMovedEvent):
            self.hints.put((os.fsdecode(event.dest_path), True))
        elif isinstance(event, FileClosedEvent):
            self.hints.put((os.fsdecode(event.src_path), True))
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent):
            self.hints.put((os.fsdecode(event.src_path), False))


class Watcher:
    """Feeds the ledger: new versions go `seen` -> `settling` -> `queued`."""

    TICK = 0.2

    def __init__(self, cfg: Config, ledger: Ledger, on_queued: Callable[[], None]) -> None:
        self.cfg = cfg
        self.root = Path(cfg.data_dir)
        self.ledger = ledger
        self.on_queued = on_queued
        self._hints: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
        self._settling: dict[str, _Settling] = {}
        self._draining = False
        self._known: dict[str, tuple[int, int, int, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self.last_scan = 0.0
        self.scanned_paths: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, observe: bool = True) -> None:
        self._load_known()
        self.scan()
        if observe:
            observer = Observer()
            observer.schedule(_Handler(self._hints), str(self.root), recursive=True)
            observer.daemon = True
            observer.start()
            self._observer = observer
        self._thread = threading.Thread(target=self._run, name="chute-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def settling(self) -> int:
        """Files waiting to be complete, plus watch events not yet looked at."""
        return len(self._settling) + (0 if self._hints.empty() and not self._draining else 1)

    def _load_known(self) -> None:
        # Known identities are looked up per path as paths show up (_remember), not all at start:
        # start-up must not grow with the ledger's history.
        for row in self.ledger.in_states([State.SEEN, State.SETTLING]):
            self._settling[row.path] = _Settling(row.id, (row.size or 0, row.mtime_ns or 0), time.time(), False)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._drain()
                self._settle()
                if self.cfg.rescan_seconds and time.monotonic() - self.last_scan >= self.cfg.rescan_seconds:
                    self.scan()
            except Exception:  # the watcher must outlive any one bad path
                log.exception("watcher tick failed")
            self._stop.wait(self.TICK)

    # -- intake ---------------------------------------------------------------------------

    def _rel(self, path: str) -> str | None:
        try:
            rel = Path(path).relative_to(self.root)
        except ValueError:
            return None
        text = rel.as_posix()
        return None if text in ("", ".") else text

    def _drain(self) -> None:
        # Counted as busy until each hint is in the ledger: a hint taken off the queue but not
        # yet observed must not let `--once` decide that nothing is left.
        self._draining = True
        try:
            self._drain_hints()
        finally:
            self._draining = False

    def _drain_hints(self) -> None:
        while True:
            try:
                path, complete = self._hints.get_nowait()
            except queue.Empty:
                return
            if path == "":
                self.scan()
                continue
            rel = self._rel(path)
            if rel is not None:
                self.observe(rel, complete)

    def scan(self) -> None:
        """Walk the whole tree: the safety net for lost events and files added while stopped."""
        self.last_scan = time.monotonic()
        found: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = Path(dirpath).relative_to(self.root)
            dirnames[:] = [d for d in dirnames if not is_ignored((rel_dir / d).as_posix())]
            for name in filenames:
                rel = (rel_dir / name).as_posix()
                if is_ignored(rel):
                    continue
                found.add(rel)
                self.observe(rel, complete=False, from_scan=True)
        self.scanned_paths = found

    def observe(self, rel: str, complete: bool, from_scan: bool = False) -> None:
        if is_ignored(rel):
            return
        path = self.root / rel
        try:
            st = os.stat(path, follow_symlinks=False)
            if os.path.islink(path):
                st = os.stat(path)  # the loader refuses links that leave the data folder
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            log.warning("cannot stat %s: %s", rel, exc.strerror)
            return
        if not (os.path.isfile(path) or _is_special(st)):
            return
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if rel not in self._known and rel not in self._settling:
            self._remember(rel)
        if self._known.get(rel) == ident and rel not in self._settling:
            return
        fmt, compression = format_of(rel)
        row, changed = self.ledger.observe(rel, st, table_for(rel, self.cfg.routes), fmt, compression, complete)
        now = time.time()
        if row.state in (State.SEEN, State.SETTLING) or (changed and row.state == State.QUEUED):
            if row.state != State.SETTLING:
                row = self.ledger.transition(row.id, State.SETTLING, actor="watcher") or row
            # A file found by a scan has been quiet since its mtime; one from an event since now.
            quiet = min(now, st.st_mtime_ns / 1e9) if from_scan else now
            entry = self._settling.get(rel)
            if entry is None or entry.file_id != row.id or entry.ident != (st.st_size, st.st_mtime_ns):
                self._settling[rel] = _Settling(row.id, (st.st_size, st.st_mtime_ns), quiet, complete)
            elif complete:
                entry.complete = True
        elif row.state != State.LOADING:
            # (A version being loaded is the loader's to judge; remembering this identity now
            # would hide a newer file at this path from every later scan.)
            self._known[rel] = ident

    def _remember(self, rel: str) -> None:
        """The ledger's identity of ``rel`` when its current version is settled and not loading (a read, no
        write lock); otherwise the sighting goes to the ledger as usual."""
        row = self.ledger.current(rel)
        if row is not None and row.size is not None and row.state not in (State.SEEN, State.SETTLING,
                                                                          State.LOADING):
            self._known[rel] = (row.dev or 0, row.inode or 0, row.size, row.mtime_ns or 0)

    def _settle(self) -> None:
        now = time.time()
        ready = []
        for rel, entry in list(self._settling.items()):
            try:
                st = os.stat(self.root / rel)
            except FileNotFoundError:
                del self._settling[rel]
                self.ledger.transition(entry.file_id, State.FAILED, actor="watcher", error_kind="gone",
                                       last_error="file disappeared before it settled", next_attempt=None,
                                       expect=[State.SEEN, State.SETTLING])
                continue
            except OSError:
                continue
            ident = (st.st_size, st.st_mtime_ns)
            if ident != entry.ident:
                # Still being written: record the new size and start the quiet period again.
                self.observe(rel, complete=False)
                continue
            if entry.complete or now - entry.quiet_since >= self.cfg.settle_seconds:
                ready.append((rel, entry))
        for rel, entry in ready:
            del self._settling[rel]
            row = self.ledger.transition(entry.file_id, State.QUEUED, actor="watcher",
                                         expect=[State.SEEN, State.SETTLING])
            if row is not None:
                self._known[rel] = (row.dev or 0, row.inode or 0, row.size or 0, row.mtime_ns or 0)
        if ready:
            self.on_queued()

    def hint(self, rel: str) -> None:
        """Look at ``rel`` again soon (the loader sent it back to settling)."""
        self._known.pop(rel, None)
        self._hints.put((str(self.root / rel), False))

    def forget(self, rel: str) -> None:
        """Make the next sighting of ``rel`` go to the ledger again (after retry/purge)."""
        self._known.pop(rel, None)


def _is_special(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode) or stat.S_ISCHR(st.st_mode)
