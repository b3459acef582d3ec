"""Notice files in DATA_DIR and decide when each is complete (docs/ARCHITECTURE.md#complete-files).

A file is complete when no process holds it open for writing (core/writers.py reads /proc)
and one of these says the writer is done:

- it was renamed into place (Moved), or moved in from outside the tree (Created with no
  Opened right after it: watchdog reports nothing else for a move-in);
- its writer closed it (Closed = inotify close-write);
- nothing changed its size, mtime or ctime for ``settle_seconds``: the fallback for files
  found by a scan and for filesystems without these events (NFS, SMB);
- and, when its route asks for one, its done-marker exists (core/routing.py ``done_marker``).

The thread sleeps on the event queue: an event wakes it at once, and a timeout only when a
settle period, an Opened grace or a re-check of a file still open for writing falls due.
Watch events are only hints: a full rescan runs at start and on a timer, because events are
lost on queue overflow and on network filesystems.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path, PurePosixPath

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.core.routing import format_of, is_ignored, options_for, table_for
from chute.core.sources import Admission, Source, primary_source
from chute.core.states import State
from chute.core.writers import OpenWriters

log = logging.getLogger("chute.watcher")

# How long a Created file waits for the Opened event that tells an in-place write from a
# move-in. Both are queued by the same open(2), so this only covers a writer preempted in
# between; it is the whole added latency of a move-in from outside the tree.
OPEN_GRACE = 0.03
# A file held open for writing is looked at again this often even without events (a writer
# that was open before chute started closes without us being told when events are lost).
WRITER_RECHECK = 1.0
# Files waiting for a done-marker: the marker's own event wakes us; this is the fallback.
MARKER_RECHECK = 1.0
_MARKER_NOTE = "waiting for its done-marker"
_MARKER_CAME = "its done-marker came"


def walk(root: Path) -> Iterator[str]:
    """The names under ``root`` (relative, POSIX) that are not ignored, lazily; ignored folders
    are not entered (the watcher's scan, core/early.py's look for one file)."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if not is_ignored((rel_dir / d).as_posix())]
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if not is_ignored(rel):
                yield rel


class Hint(Enum):
    RESCAN = "rescan"
    CREATED = "created"
    OPENED = "opened"
    MODIFIED = "modified"
    CLOSED = "closed"  # close-write
    MOVED = "moved"  # renamed inside the tree: dest path


@dataclass
class _Pending:
    file_id: int
    ident: tuple[int, int, int, int, int]  # dev, inode, size, mtime_ns, ctime_ns
    quiet_since: float  # wall clock
    complete: bool  # closed after writing, or renamed in
    created_at: float | None = None  # monotonic: Created seen, Opened not (yet)
    opened: bool = False
    recheck_at: float = 0.0  # monotonic: blocked by a writer or a marker until then
    note: str | None = None  # why it waits, as last written to the ledger


@dataclass
class _Untyped:
    """A file of a type chute cannot read, not yet in the ledger (docs/ARCHITECTURE.md#complete-files)."""

    ident: tuple[int, int, int, int, int]  # dev, inode, size, mtime_ns, ctime_ns
    quiet_since: float  # wall clock
    recheck_at: float = 0.0  # monotonic: a writer holds it until then


@dataclass
class _Sighting:
    """A file looked at whose version the ledger may not know yet."""

    rel: str
    st: os.stat_result
    complete: bool
    from_scan: bool
    created: bool
    recorded: bool = False  # an untyped file that waited its settle time: to the ledger now

    @property
    def ident(self) -> tuple[int, int, int, int, int]:
        return _ident(self.st)


class _Handler(FileSystemEventHandler):
    def __init__(self, put: Callable[[str, Hint], None]) -> None:
        self.put = put

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirMovedEvent | DirCreatedEvent):
            self.put("", Hint.RESCAN)  # a whole folder arrived
        elif isinstance(event, FileMovedEvent):
            self.put(os.fsdecode(event.dest_path), Hint.MOVED)
        elif isinstance(event, FileClosedEvent):
            self.put(os.fsdecode(event.src_path), Hint.CLOSED)
        elif isinstance(event, FileOpenedEvent):
            self.put(os.fsdecode(event.src_path), Hint.OPENED)
        elif isinstance(event, FileCreatedEvent):
            self.put(os.fsdecode(event.src_path), Hint.CREATED)
        elif isinstance(event, FileModifiedEvent | FileAttribEvent):
            self.put(os.fsdecode(event.src_path), Hint.MODIFIED)


# Only what we act on: fewer inotify events (no close-nowrite, no deletes) to wake for.
_EVENTS = [DirCreatedEvent, DirMovedEvent, FileMovedEvent, FileClosedEvent, FileOpenedEvent, FileCreatedEvent,
           FileModifiedEvent, FileAttribEvent]


class Watcher:
    """Feeds the ledger: new versions go `seen` -> `settling` -> `queued`."""

    def __init__(self, cfg: Config, ledger: Ledger, on_queued: Callable[[], None],
                 source: Source | None = None) -> None:
        self.cfg = cfg
        # One watcher per folder (core/sources.py): DATA_DIR's paths are plain, an extra source's "@NAME/...".
        source = source or primary_source(cfg)
        self.root, self.prefix, self.routes = Path(cfg.data_dir), "", (source.routes if source else ()) + cfg.routes
        if source is not None and Path(source.path) != self.root:
            self.root, self.prefix = Path(source.path), f"@{source.name}/"
        self.admit = Admission.for_watcher(cfg, ledger, source)  # include/exclude/backfill
        self.ledger = ledger
        self.on_queued = on_queued
        self.writers = OpenWriters(self.root)
        self._hints: queue.SimpleQueue[tuple[str, Hint]] = queue.SimpleQueue()
        self._unhandled = 0  # hints put and not yet in the ledger (for `--once` and idle)
        self._count_lock = threading.Lock()
        self._settling: dict[str, _Pending] = {}
        self._untyped: dict[str, _Untyped] = {}
        self._known: dict[str, tuple[int, int, int, int, int | None]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self.last_scan = 0.0
        self.scanned_paths: set[str] = set()
        self._bad_names: set[str] = set()  # names not UTF-8, warned about once each
        self._keep_scanned = False  # `--once`: every path any scan of the run found (see start)
        self._markers = {r.done_marker for r in self.routes if r.done_marker}

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, observe: bool = True) -> None:
        self.writers.enable_leases()
        # Without events (`--once`) the result is read for every path a scan found: a later rescan
        # must not drop a file that went to _quarantine (or was archived) meanwhile. A daemon keeps
        # only the last scan's paths, so the set does not grow with the folder's history.
        self._keep_scanned = not observe
        self._load_known()
        self.scan()
        if observe:
            observer = Observer()
            observer.schedule(_Handler(self._put), str(self.root), recursive=True, event_filter=_EVENTS)
            observer.daemon = True
            observer.start()
            self._observer = observer
        self._thread = threading.Thread(target=self._run, name="chute-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._put("", Hint.RESCAN)  # wake the thread
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def settling(self) -> int:
        """Files waiting to be complete, plus watch events not yet looked at; not those that
        wait for a done-marker (only a new file, the marker, moves them on)."""
        return (len(self._settling) + len(self._untyped) - len(self.waiting_for_marker())
                + (1 if self._unhandled else 0))

    def untyped_waiting(self) -> list[str]:
        """Ledger paths of files of a type chute cannot read, kept out of the ledger while they settle."""
        return [self.prefix + rel for rel in list(self._untyped)]

    def waiting_for_marker(self) -> set[str]:
        """Ledger paths (with this folder's prefix) of files parked until their done-marker appears."""
        return {self.prefix + rel for rel, e in list(self._settling.items())
                if e.note and e.note.startswith(_MARKER_NOTE)}

    def _put(self, path: str, hint: Hint) -> None:
        with self._count_lock:
            self._unhandled += 1
        self._hints.put((path, hint))

    def _load_known(self) -> None:
        # Known identities are looked up per path as paths show up (_remember), not all at start:
        # start-up must not grow with the ledger's history.
        for row in self.ledger.in_states([State.SEEN, State.SETTLING]):
            if self._mine(row.path):
                ident = (row.dev or 0, row.inode or 0, row.size or 0, row.mtime_ns or 0, row.ctime_ns or 0)
                self._settling[row.path[len(self.prefix):]] = _Pending(row.id, ident, time.time(), False)

    def _mine(self, path: str) -> bool:
        """Is this ledger path one of this watcher's folder?"""
        return self.cfg.split(path)[1] == self.prefix

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._hints.get(timeout=self._sleep())]
            except queue.Empty:
                batch = []
            while True:  # everything that arrived meanwhile, in one round
                try:
                    batch.append(self._hints.get_nowait())
                except queue.Empty:
                    break
            try:
                if batch:
                    self.writers.invalidate()  # opens and closes happened: look at /proc afresh
                self._handle(batch)
                self._settle()
                if self.cfg.rescan_seconds and time.monotonic() - self.last_scan >= self.cfg.rescan_seconds:
                    self.scan()
            except Exception:
                log.exception("watcher round failed")
            finally:
                with self._count_lock:
                    self._unhandled -= len(batch)

    def _sleep(self) -> float:
        """Seconds until something falls due without an event."""
        now, wall = time.monotonic(), time.time()
        due = self.last_scan + self.cfg.rescan_seconds - now if self.cfg.rescan_seconds else 3600.0
        for entry in self._settling.values():
            if entry.recheck_at > now:
                due = min(due, entry.recheck_at - now)
                continue
            due = min(due, entry.quiet_since + self.cfg.settle_seconds - wall)
            if entry.created_at is not None and not entry.opened:
                due = min(due, entry.created_at + OPEN_GRACE - now)
        for untyped in self._untyped.values():
            due = min(due, untyped.recheck_at - now if untyped.recheck_at > now
                      else untyped.quiet_since + self.cfg.settle_seconds - wall)
        return min(max(due, 0.001), 3600.0)

    # -- intake ---------------------------------------------------------------------------

    def _rel(self, path: str) -> str | None:
        try:
            rel = Path(path).relative_to(self.root)
        except ValueError:
            return None
        text = rel.as_posix()
        return None if text in ("", ".") else text

    def _handle(self, batch: list[tuple[str, Hint]]) -> None:
        # New versions of the whole round go to the ledger together (many files landing at once:
        # two transactions, not two per file).
        sightings: list[_Sighting] = []
        try:
            self._handle_hints(batch, sightings)
        finally:
            self._record_many(sightings)

    def _handle_hints(self, batch: list[tuple[str, Hint]], sightings: list[_Sighting]) -> None:
        seen: set[tuple[str, Hint]] = set()
        for path, hint in batch:
            if hint is Hint.RESCAN:
                if not self._stop.is_set():
                    self._record_many(sightings)  # (first: the scan must know them)
                    sightings.clear()
                    self.scan()
                continue
            if (path, hint) in seen and hint in (Hint.MODIFIED, Hint.OPENED):
                continue  # a writer's burst of writes: one look is enough
            seen.add((path, hint))
            rel = self._rel(path)
            if rel is None:
                continue
            if self._is_marker(rel):
                for waiting, entry in self._settling.items():  # look at its files in this round
                    if self._marker_of(waiting) == rel:
                        entry.recheck_at = 0.0
                        # No longer parked on its marker, yet the ledger still says so: a note that is
                        # not the marker's keeps the queueing's reason reset (_settle).
                        if entry.note and entry.note.startswith(_MARKER_NOTE):
                            entry.note = _MARKER_CAME
                continue
            if hint is Hint.OPENED:
                opened = self._settling.get(rel)
                if opened is not None and opened.created_at is not None:
                    opened.opened = True  # written in place: wait for its close
                continue
            self.observe(rel, complete=hint in (Hint.CLOSED, Hint.MOVED), created=hint is Hint.CREATED,
                         batch=sightings)

    def scan(self) -> None:
        """Walk the whole tree: the safety net for lost events and files added while stopped."""
        self.last_scan = time.monotonic()
        found: set[str] = set()
        sightings: list[_Sighting] = []  # new versions: recorded together after the walk
        for rel in walk(self.root):
            if self._is_marker(rel) or not self._utf8(rel):
                continue
            found.add(rel)
            self.observe(rel, complete=False, from_scan=True, batch=sightings)
        self._record_many(sightings)
        for rel in [rel for rel in self._untyped if rel not in found]:
            del self._untyped[rel]  # deleted, or a writer's temporary name renamed: never ours to record
        self.scanned_paths = self.scanned_paths | found if self._keep_scanned else found

    def _known_same(self, rel: str, ident: tuple[int, int, int, int, int]) -> bool:
        known = self._known.get(rel)
        if known is None:
            return False
        # A version recorded before ctimes were kept compares without one.
        return known[:4] == ident[:4] and known[4] in (None, ident[4])

    def observe(self, rel: str, complete: bool, from_scan: bool = False, created: bool = False,
                batch: list[_Sighting] | None = None) -> None:
        """Look at ``rel``; a version the ledger may not know is recorded now, or added to ``batch``
        for ``_record_many``."""
        if is_ignored(rel) or not self._utf8(rel):
            return
        st = self._stat(rel)
        if st is None or not self.admit(rel, st):
            return
        ident = _ident(st)
        if rel not in self._known and rel not in self._settling and rel not in self._untyped:
            self._remember(rel)
        entry = self._settling.get(rel)
        if entry is not None:
            self._seen_again(entry, ident, st, complete, from_scan, created)
        elif self._known_same(rel, ident):
            return
        elif batch is not None:
            batch.append(_Sighting(rel, st, complete, from_scan, created))
        else:
            self._record_many([_Sighting(rel, st, complete, from_scan, created)])

    def _utf8(self, rel: str) -> bool:
        """Can ``rel`` be a ledger path? A name that is not UTF-8 (os gives it with surrogates) cannot:
        recording it raised in the middle of a scan, and so no file that scan found was recorded."""
        try:
            rel.encode()
        except UnicodeEncodeError:
            if rel not in self._bad_names:
                self._bad_names.add(rel)
                log.warning("skipping %s: its name is not valid UTF-8, so chute cannot record it (rename it)",
                            ascii(self.prefix + rel))
            return False
        return True

    def _stat(self, rel: str) -> os.stat_result | None:
        """A regular file's (or FIFO's, socket's, device's) stat; None when it is gone or something else."""
        path = self.root / rel
        try:
            st = os.stat(path, follow_symlinks=False)
            if os.path.islink(path):
                st = os.stat(path)  # the loader refuses links that leave the data folder
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            log.warning("cannot stat %s: %s", rel, exc.strerror)
            return None
        return st if stat.S_ISREG(st.st_mode) or _is_special(st) else None

    def _seen_again(self, entry: _Pending, ident: tuple[int, int, int, int, int], st: os.stat_result,
                    complete: bool, from_scan: bool, created: bool) -> None:
        """A settling file looked at again: the same version (note how it was finished) or a changed one."""
        if entry.ident == ident:
            if complete:  # nothing new to record; closed or renamed: look again now
                entry.complete, entry.recheck_at = True, 0.0
            if created and entry.created_at is None and not entry.opened:
                entry.created_at = time.monotonic()
            return
        # Still being written: the quiet period starts again. The ledger learns the identity
        # when the file is queued: one write then, not one per write(2) of a slow writer.
        entry.ident = ident
        entry.quiet_since = _quiet_since(st, from_scan)
        entry.complete, entry.created_at, entry.opened = complete, time.monotonic() if created else None, False
        if complete:
            entry.recheck_at = 0.0

    def _record_many(self, sightings: list[_Sighting]) -> None:
        """Versions the ledger may not know: record them, and watch each settle unless it is already
        past that. Two transactions for all of them (a scan finds thousands at once), not two each."""
        if not sightings:
            return
        sightings = [s for s in _one_per_path(sightings) if not self._park_untyped(s)]
        if not sightings:
            return
        rows = self.ledger.observe_many([(self.prefix + s.rel, s.st, table_for(s.rel, self.routes), *format_of(s.rel),
                                          s.complete) for s in sightings])
        settle: list[int] = []
        for s, (row, changed) in zip(sightings, rows, strict=True):
            if row.state in (State.SEEN, State.SETTLING) or (changed and row.state == State.QUEUED):
                if row.state != State.SETTLING:
                    settle.append(row.id)
                self._settling[s.rel] = _Pending(row.id, s.ident, _quiet_since(s.st, s.from_scan), s.complete,
                                                 created_at=time.monotonic() if s.created else None)
            elif row.state != State.LOADING:
                # (A version being loaded is the loader's to judge; remembering this identity now
                # would hide a newer file at this path from every later scan.)
                self._known[s.rel] = s.ident
        if settle:
            self._to_settling(settle)

    def _to_settling(self, ids: list[int]) -> None:
        # Only from where they were: a queued version the dispatcher claimed meanwhile is the
        # loader's now (it re-stats the open file), never `settling` under it.
        moved = self.ledger.transition_many([(fid, {}) for fid in ids], State.SETTLING, actor="watcher",
                                            expect=[State.SEEN, State.QUEUED])
        if len(moved) < len(ids):
            taken = set(ids) - set(moved)
            for rel in [rel for rel, p in self._settling.items() if p.file_id in taken]:
                del self._settling[rel]

    def _remember(self, rel: str) -> None:
        """The ledger's identity of ``rel`` when its current version is settled and not loading (a read, no
        write lock); otherwise the sighting goes to the ledger as usual."""
        row = self.ledger.current(self.prefix + rel)
        if row is not None and row.size is not None and row.state not in (State.SEEN, State.SETTLING,
                                                                          State.LOADING):
            self._known[rel] = (row.dev or 0, row.inode or 0, row.size, row.mtime_ns or 0, row.ctime_ns)

    def _park_untyped(self, s: _Sighting) -> bool:
        """Keep a file chute cannot read out of the ledger until it has been quiet for settle_seconds.

        Nothing will be read from it, only moved aside, and a writer's temporary name (`x.csv.t`,
        `x.csv.new`), closed and then renamed, must never be moved from under the writer's rename
        nor leave a `failed` row behind when it goes (docs/ARCHITECTURE.md#complete-files)."""
        if s.recorded or format_of(s.rel)[0] is not None:
            return False
        was = self._untyped.get(s.rel)
        if was is None or was.ident != s.ident:
            self._untyped[s.rel] = _Untyped(s.ident, _quiet_since(s.st, s.from_scan))
        elif s.complete:
            was.recheck_at = 0.0  # its writer closed it: no need to wait for the writer re-check
        return True

    def _settle_untyped(self, now: float, wall: float) -> None:
        """Untyped files quiet for settle_seconds, with no writer, go to the ledger (then quarantine)."""
        due = []
        for rel, u in list(self._untyped.items()):
            if u.recheck_at > now or wall - u.quiet_since < self.cfg.settle_seconds:
                continue
            st = self._stat(rel)
            if st is None:  # renamed or deleted meanwhile: it was never ours to record
                del self._untyped[rel]
                continue
            if _ident(st) != u.ident:
                self._untyped[rel] = _Untyped(_ident(st), wall)
                continue
            if self.writers.of(self.root / rel):
                u.recheck_at = now + WRITER_RECHECK
                continue
            del self._untyped[rel]
            # (from_scan: quiet since it last changed, which it has been for settle_seconds)
            due.append(_Sighting(rel, st, complete=True, from_scan=True, created=False, recorded=True))
        self._record_many(due)

    # -- readiness ------------------------------------------------------------------------

    def _settle(self) -> None:
        now, wall = time.monotonic(), time.time()
        if self._untyped:
            self._settle_untyped(now, wall)
        ready = []
        for rel, entry in list(self._settling.items()):
            if not self._ready(rel, entry, now, wall):
                continue
            ready.append((rel, entry))
        moves, rels = [], {}
        for rel, entry in ready:
            del self._settling[rel]
            extra = {"reason": None} if entry.note else {}
            dev, inode, size, mtime_ns, ctime_ns = entry.ident
            moves.append((entry.file_id, dict(dev=dev, inode=inode, size=size, mtime_ns=mtime_ns, ctime_ns=ctime_ns,
                                              complete_hint=int(entry.complete), sha256=None, **extra)))
            rels[entry.file_id] = (rel, entry.ident)
        # One transaction for every file this tick queues (a scan finds thousands at once).
        for fid in self.ledger.transition_many(moves, State.QUEUED, actor="watcher",
                                               expect=[State.SEEN, State.SETTLING]) if moves else ():
            self._known[rels[fid][0]] = rels[fid][1]
        if ready:
            self.on_queued()

    def _ready(self, rel: str, entry: _Pending, now: float, wall: float) -> bool:
        """Is the file complete: finished by its writer, unchanged, its marker there, no writer left?"""
        if entry.recheck_at > now or not self._due(entry, now, wall):
            return False
        st = self._unchanged(rel, entry, now)
        if st is None:
            return False
        blocked = self._blocker(rel, st)
        if blocked is not None:
            why, wait = blocked
            self._note(rel, entry, why)
            entry.recheck_at = now + wait
            return False
        return True

    def _due(self, entry: _Pending, now: float, wall: float) -> bool:
        """Worth a look: closed, renamed or moved in, or quiet for settle_seconds."""
        quiet = wall - entry.quiet_since >= self.cfg.settle_seconds
        moved_in = entry.created_at is not None and not entry.opened and now - entry.created_at >= OPEN_GRACE
        if not (entry.complete or moved_in or quiet):
            return False  # nothing to decide yet (and no stat: a flood of events must not cost one per file)
        # An empty file closed (`touch`, then written) is about to be written: settle it.
        return entry.ident[2] != 0 or quiet

    def _unchanged(self, rel: str, entry: _Pending, now: float) -> os.stat_result | None:
        """The file's stat when it is still the version being watched; None when it is gone (failed),
        cannot be read now (looked at again later) or changed (observed again)."""
        try:
            st = os.stat(self.root / rel)
        except FileNotFoundError:
            del self._settling[rel]
            self.ledger.transition(entry.file_id, State.FAILED, actor="watcher", error_kind="gone",
                                   last_error="file disappeared before it settled", next_attempt=None,
                                   expect=[State.SEEN, State.SETTLING])
            return None
        except OSError:
            entry.recheck_at = now + WRITER_RECHECK  # (not in a tight loop)
            return None
        if _ident(st) != entry.ident:
            self.observe(rel, complete=False)  # still being written (events may be lost: we stat too)
            return None
        return st

    def _blocker(self, rel: str, st: os.stat_result) -> tuple[str, float] | None:
        """Why a finished file still waits (its done-marker, a writer holding it), and when to look again."""
        missing = self._missing_marker(rel, st)
        if missing is not None:
            return f"{_MARKER_NOTE} {missing}", MARKER_RECHECK
        writers = self.writers.of(self.root / rel)
        if writers:
            return "open for writing by " + ", ".join(str(w) for w in writers[:3]), WRITER_RECHECK
        return None

    def _note(self, rel: str, entry: _Pending, why: str) -> None:
        """Say once (ledger `reason`, log) why a file is not taken yet."""
        if entry.note == why:
            return
        entry.note = why
        self.ledger.update(entry.file_id, reason=why)
        log.info("%s: %s", rel, why)

    # -- done-markers ---------------------------------------------------------------------

    def _marker_of(self, rel: str) -> str | None:
        """The done-marker ``rel`` waits for (relative path), or None when its route has none."""
        if not self._markers:
            return None
        marker = options_for(table_for(rel, self.routes), self.routes).done_marker
        if not marker:
            return None
        if marker.startswith("."):
            return rel + marker
        return (PurePosixPath(rel).parent / marker).as_posix()

    def _is_marker(self, rel: str) -> bool:
        if not self._markers:
            return False
        name = PurePosixPath(rel).name
        for marker in self._markers:
            if marker.startswith(".") and rel.endswith(marker) and self._marker_of(rel[: -len(marker)]) == rel:
                return True
            if name == marker:
                return True
        return False

    def _missing_marker(self, rel: str, st: os.stat_result) -> str | None:
        """The marker's name when it is required and absent, or older than the file (a leftover)."""
        marker = self._marker_of(rel)
        if marker is None:
            return None
        try:
            if os.stat(self.root / marker).st_mtime_ns >= st.st_mtime_ns:
                return None
        except OSError:
            pass
        return PurePosixPath(marker).name

    # -- from the engine ------------------------------------------------------------------

    def hint(self, rel: str) -> None:
        """Look at ``rel`` again soon (the loader sent it back to settling)."""
        self._known.pop(rel, None)
        self._put(str(self.root / rel), Hint.MODIFIED)

    def forget(self, rel: str) -> None:
        """Make the next sighting of ``rel`` go to the ledger again (after retry/purge)."""
        self._known.pop(rel, None)


def _is_special(st: os.stat_result) -> bool:
    return stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode) or stat.S_ISCHR(st.st_mode)


def _ident(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """A version's identity: dev, inode, size, mtime_ns, ctime_ns."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _quiet_since(st: os.stat_result, from_scan: bool) -> float:
    """A file found by a scan has been quiet since it last changed; one from an event since now."""
    now = time.time()
    return min(now, max(st.st_mtime_ns, st.st_ctime_ns) / 1e9) if from_scan else now


def _one_per_path(sightings: list[_Sighting]) -> list[_Sighting]:
    """One sighting per path, folded like the events were (a file seen twice in a round)."""
    last: dict[str, _Sighting] = {}
    for s in sightings:
        was = last.pop(s.rel, None)
        last[s.rel] = s if was is None else replace(
            s, complete=s.complete or (was.complete and was.ident == s.ident), created=s.created or was.created)
    return list(last.values())
