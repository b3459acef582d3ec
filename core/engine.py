"""The engine: watcher + ledger + loader workers, driven by commands, observed by snapshots.

The console, ``chute --no-ui`` and ``chute attach`` all use this one class (or, for attach,
its ledger and command channel). It never calls UI code: UIs pull :meth:`Engine.snapshot`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chute.core import dispatch, intents, private, resources, tracing, untyped_status
from chute.core.alerts import Alert, Monitor
from chute.core.config import Config
from chute.core.errors import TargetError, UsageError
from chute.core.folders import Watchers, watcher_for
from chute.core.gc import DailyGc
from chute.core.ledger import FileRow, Ledger
from chute.core.metrics import Metrics
from chute.core.sources import extra_sources
from chute.core.states import State
from chute.core.target import AccessError, Target
from chute.core.untyped_status import UntypedBoard
from chute.core.watcher import Watcher

if TYPE_CHECKING:
    from chute.core.early import EarlyPlan
    from chute.core.fleet import FleetMirror
    from chute.core.loader import Loader, Progress  # imported when the loader is built (_loader_ready)

log = logging.getLogger("chute.engine")

ACTIONS = ("approve", "retry", "purge", "pause", "resume")


@dataclass(frozen=True)
class Snapshot:
    """Everything a UI shows, taken at one instant. Cheap to build; safe to hand to another thread."""

    ts: float
    data_dir: str
    target: str
    target_ok: bool
    target_error: str | None
    server_version: str
    paused: bool
    counts: dict[str, int]
    inflight: list[Progress]
    rows_per_s: float
    mb_per_s: float
    files_per_min: float
    rows_last_hour: int
    settling: int
    history: list[tuple[float, int, int]] = field(default_factory=list)  # (second, rows, bytes)
    alerts: list[Alert] = field(default_factory=list)  # firing rules, most severe first (core/alerts.py)
    open_actions: int = 0  # write-ahead actions begun and not finished (core/intents.py)


class StateLock:
    """One engine per state dir: an exclusive flock held for the engine's life."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "chute.lock"
        self._fd: int | None = None

    def acquire(self, mode: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, private.FILE_MODE)
        os.fchmod(fd, private.FILE_MODE)  # not the umask's: see core/private.py
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            raise UsageError(f"another chute is running on this state dir ({other or 'unknown pid'}); "
                             "use `chute attach`, or a different --state-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} {mode}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def holder(state_dir: Path) -> str | None:
        """The running engine's 'pid N mode', or None when no engine holds the lock."""
        path = state_dir / "chute.lock"
        if not path.exists():
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.pread(fd, 200, 0).decode(errors="replace").strip() or "running"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def prepare_dirs(cfg: Config) -> None:
    if cfg.data_dir.exists() and not cfg.data_dir.is_dir():
        raise UsageError(f"data folder {cfg.data_dir} is not a folder (DATA_DIR is the folder to watch)")
    if not cfg.data_dir.is_dir():
        raise UsageError(f"data folder {cfg.data_dir} does not exist (create it, or pass another DATA_DIR)")
    try:
        private.private_dir(cfg.state_dir)
        probe = cfg.state_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"state dir {cfg.state_dir} is not writable: {exc.strerror}") from None


def open_ledger(cfg: Config) -> Ledger:
    """The ledger for ``cfg.data_dir``; refuse a state dir that belongs to another data folder."""
    ledger = Ledger(cfg.state_dir)
    data = str(Path(cfg.data_dir).resolve())
    owner = ledger.meta("data_dir")
    if owner is None:
        ledger.set_meta("data_dir", data)
    elif owner != data:
        ledger.close()
        raise UsageError(f"state dir {cfg.state_dir} belongs to data folder {owner}; "
                         f"pass --state-dir for {data}")
    return ledger


class Engine:
    def __init__(self, cfg: Config, *, once: bool = False, mode: str = "daemon") -> None:
        self.cfg = cfg
        self.once = once
        self.mode = mode
        self.ledger: Ledger | None = None
        self.target = Target(cfg)
        self.paused = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._settled = threading.Event()  # a load ended: wait_idle looks again at once
        self._lock = threading.Lock()
        self._inflight: dict[int, Progress | None] = {}
        self._state_lock = StateLock(cfg.state_dir)
        self._pool: ThreadPoolExecutor | None = None
        self._threads: list[threading.Thread] = []
        self.watcher: Watcher | Watchers | None = None
        self.loader: Loader | None = None
        self.early: EarlyPlan | None = None  # `--once`: the one big file, planned while ClickHouse starts
        self.target_ok = False
        self.target_error: str | None = None
        self._history: deque[tuple[int, int, int]] = deque(maxlen=3600)  # per second: rows, bytes
        self.started_at = time.time()  # the fleet heartbeat reports it (core/fleet.py)
        self.metrics = Metrics(self)
        self.monitor = Monitor(self)
        self.untyped_board = UntypedBoard()  # parked untyped files, for `chute status` and attach
        self.gc = DailyGc(self)  # retention (core/gc.py), checked with the health probe
        self.fleet: FleetMirror | None = None  # core/fleet.py, unless fleet_mirror = false
        self.resources = resources.Guard()  # disk full: pause, one alert, resume by itself (core/resources.py)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, wait_for_target: float = 0.0) -> None:
        cfg = self.cfg
        prepare_dirs(cfg)
        self._state_lock.acquire(self.mode)
        try:
            self.ledger = open_ledger(cfg)  # (~1 ms: the early plan skips a file it has finished)
            if self.once:
                from chute.core.early import EarlyPlan

                self.early = EarlyPlan()
                self.early.start(cfg, self.ledger)  # (nothing opened unless the folder is one big text file)
            # What `chute attach` shows (it cannot open this engine's ClickHouse). A new engine starts
            # unpaused; the target is known while --wait-for-clickhouse waits, the version once it answers.
            for key, value in (("paused", "0"), ("target", cfg.masked_url()), ("server_version", ""),
                               (untyped_status.META_KEY, "")):
                self.ledger.set_meta(key, value)
            self._connect(wait_for_target)
            self.ledger.set_meta("server_version", self.target.server_version)
            intents.recover(cfg, self.ledger, self.target)  # actions a crash interrupted: finish or roll back
            recovered = self.ledger.recover_interrupted()
            if recovered:
                log.info("resuming %d file(s) interrupted by the last stop", len(recovered))
            self.target.release()  # the first load's thread takes this thread's client over
            self._pool = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="chute-load")
            self.watcher = watcher = watcher_for(cfg, self.ledger, on_queued=self._wake.set)  # one per source
            watcher.start(observe=not self.once)
            if not self.once:  # a daemon's first file must not wait for the loader's libraries and connections
                self._loader_ready()
            self.metrics.serve(cfg.metrics_addr)
            self._start_fleet()
        except BaseException:
            self.close()
            raise
        self._spawn(self._dispatch_loop, "chute-dispatch")
        self._spawn(self._health_loop, "chute-health")
        log.info("watching %s -> %s (database %s), mode %s", cfg.data_dir, cfg.masked_url(), cfg.database, self.mode)
        for source in extra_sources(cfg):
            log.info("watching %s as @%s/", source.path, source.name)

    def _loader_ready(self) -> Loader:
        """The loader, built on first use: `--once` over an empty folder never imports polars, pyarrow.compute or
        the formats, nor opens the insert connections (issue 12, tests/test_startup.py)."""
        if self.loader is not None:
            return self.loader
        from chute.core.loader import Loader

        assert self.ledger is not None
        loader = Loader(self.cfg, self.ledger, self.target, stop=self._stop, on_progress=self._progress,
                        exhaust_unreachable=self.once)
        loader.on_unreachable = self._mark_unreachable
        loader.on_batch = self._record_batch
        loader.on_full = self._resource_fault
        loader.early = self.early
        if self.watcher is not None:
            loader.on_settle = self.watcher.hint
        if self.cfg.fleet_mirror and self.cfg.dedup_scope == "fleet":
            from chute.core.fleet import FleetDedup

            loader.fleet = FleetDedup(self.cfg, self.target, self.ledger)
        self.loader = loader
        return loader

    def _connect(self, wait: float) -> None:
        """Reach ClickHouse, waiting up to ``wait`` seconds (--wait-for-clickhouse) for it to come up."""
        deadline = time.monotonic() + wait
        said = -60.0
        while True:
            try:
                # Probe first (seconds): check() runs under the insert timeout, so a server that takes
                # the connection and never answers held the start for 300 s, deaf to SIGTERM.
                if not self.cfg.embedded and not self.target.ping():
                    failure = self.target.probe_failure
                    raise failure if isinstance(failure, TargetError) else TargetError(
                        self.target.probe_error or "no answer", unreachable=True)
                version = self.target.check()
                self.target_ok, self.target_error = True, None
                log.info("ClickHouse %s at %s answers", version, self.cfg.masked_url())
                return
            except AccessError as exc:  # a wrong password or certificate does not fix itself
                raise UsageError(f"ClickHouse at {self.cfg.masked_url()}: {exc}") from None
            except TargetError as exc:
                if time.monotonic() >= deadline:
                    raise UsageError(f"cannot reach ClickHouse at {self.cfg.masked_url()}: {exc}") from None
                self.target_error = str(exc)
                if time.monotonic() - said >= 30:  # one line now and then, not one per try
                    said = time.monotonic()
                    log.warning("waiting up to %.0fs for ClickHouse at %s: %s", deadline - said,
                                self.cfg.masked_url(), exc)
                time.sleep(min(1.0, max(0.1, deadline - time.monotonic())))

    def _spawn(self, fn: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=fn, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, close_target: bool = True) -> None:
        """Finish or safely abandon the batch in flight, then release everything. ``close_target``
        False: ClickHouse's clients stay open, and the state dir's lock held, for a process that ends
        at once (`--once`: closing the last chDB client shuts the embedded engine down, ~0.1 s; cli._exit_now)."""
        self._stop.set()
        self._wake.set()
        if self.watcher:
            self.watcher.stop()
        for thread in self._threads:
            thread.join(timeout=30)
        if self._pool:
            self._pool.shutdown(wait=True)
        tracing.flush()
        if self.fleet is not None:
            self.fleet.stop()  # after the last load, so its final state reaches the fleet
        self.close(close_target)

    def close(self, close_target: bool = True) -> None:
        self.metrics.close()
        if self.early is not None:
            self.early.close()
        self.monitor.close()
        if self.loader:
            self.loader.close()
        if close_target:
            self.target.close()
        if self.ledger:
            self.ledger.close()
            self.ledger = None
        if close_target:  # else chDB lives on in this process, which ends at once: the kernel frees the
            self._state_lock.release()  # lock with it (an opener of its folder meanwhile is refused)

    def _start_fleet(self) -> None:
        """The fleet mirror and, with dedup_scope = fleet, the loader's fleet-wide duplicate check."""
        if not self.cfg.fleet_mirror:
            return
        from chute.core.fleet import FleetMirror

        self.fleet = FleetMirror(self)
        self.fleet.start()

    def wake(self) -> None:
        """Run queued commands and dispatch now rather than at the next tick."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the loop -------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        assert self.ledger is not None and self._pool is not None
        while not self._stop.is_set():
            self._wake.wait(0.25)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._run_commands()
                if self.paused or not self.target_ok or self.resources.fault:
                    continue
                with self._lock:
                    busy = list(self._inflight)
                free = self.cfg.workers - len(busy)
                if free <= 0:
                    continue
                runnable = self.ledger.runnable(time.time(), exclude=busy, limit=free * self.cfg.group_max_files)
                for rows in dispatch.dispatch(self.cfg, runnable, free):  # small files of a table: one insert
                    self._loader_ready()
                    with self._lock:
                        self._inflight.update((row.id, None) for row in rows)
                    self._pool.submit(self._work, rows)
            except Exception as exc:  # keep dispatching whatever one tick hit
                if not self._resource_fault(exc):
                    log.exception("dispatch tick failed")

    def _work(self, rows: list[FileRow]) -> None:
        if len(rows) == 1:
            return self._work_one(rows[0])
        try:
            assert self.loader is not None
            for row, outcome in self.loader.run_group(rows):
                self.metrics.on_outcome(row, outcome)
        except Exception as exc:  # as _work_one
            if not self._resource_fault(exc):
                log.exception("loading a group of %d files stopped unexpectedly", len(rows))
        finally:
            with self._lock:
                for row in rows:
                    self._inflight.pop(row.id, None)
            self._wake.set()
            self._settled.set()

    def _work_one(self, row: FileRow) -> None:
        try:
            assert self.loader is not None
            with tracing.file_trace(row) as trace:
                outcome = self.loader.run(row)
                if trace:  # the outcome and its reason on the file's span (one ledger read, only when tracing)
                    fresh = self.ledger.get(row.id) if self.ledger else None
                    trace.finish(outcome and str(outcome), fresh and (fresh.last_error or fresh.reason))
            self.metrics.on_outcome(row, outcome)
        except Exception as exc:  # a pool thread's exception would vanish; say it, keep going
            if not self._resource_fault(exc):  # a full disk strands it in `loading`: requeued when space returns
                log.exception("loading %s stopped unexpectedly", row.path,
                              extra={"event": "load_error", "path": row.path, "table": row.table_name,
                                     "file_id": row.id})
        finally:
            with self._lock:
                self._inflight.pop(row.id, None)
            self._wake.set()
            self._settled.set()

    def _health_loop(self) -> None:
        """While ClickHouse does not answer, files wait; when it returns, they resume at once.

        Probed every second while down and every 5 s while up, so an outage shows in snapshots
        (console, alerts) even when no file is loading.
        """
        while not self._stop.wait(1.0 if not self.target_ok or self.resources.fault else 5.0):
            try:
                self._health_tick()
            except Exception:  # the health thread must outlive any one bad tick
                log.exception("health check failed")

    def _health_tick(self) -> None:
        self._space_tick()
        if self.watcher is not None and self.ledger is not None:
            self.untyped_board.publish(self.ledger, self.watcher.untyped_waiting())
        self.monitor.tick()
        self.gc.tick()
        answers = self.target.ping()
        if self._stop.is_set() or answers == self.target_ok:
            return
        if answers:
            self.target_ok, self.target_error = True, None
            log.info("ClickHouse answers again; resuming")
            self._resume_waiting()
            self._wake.set()
        else:
            self._mark_unreachable(TargetError(self.target.probe_error or "ClickHouse does not answer",
                                               unreachable=True))

    # -- resource faults (core/resources.py) ----------------------------------------------

    def _resource_fault(self, exc: BaseException) -> bool:
        """A disk-full error from anywhere: trip the guard (once). False when ``exc`` is something else."""
        kind = resources.full_kind(exc)
        if kind is None:
            return False
        free = self.target.free_space() if kind == resources.TARGET else None
        self.resources.trip(kind, exc, target_free=free)
        return True

    def _space_tick(self) -> None:
        """Probe for space while a fault holds intake; notice a full state dir no write has hit yet."""
        import shutil

        guard = self.resources
        if guard.fault is None:
            try:
                if shutil.disk_usage(self.cfg.state_dir).free < resources.PROBE_BYTES:
                    guard.trip(resources.STATE, OSError(28, "no space left on device", str(self.cfg.state_dir)))
            except OSError:
                pass
            return
        if guard.fault == resources.STATE:
            if not resources.state_dir_writable(self.cfg.state_dir):
                return
        elif guard.fault == resources.TEMP:
            if resources.temp_free() < guard.temp_need:
                return
        else:
            free = self.target.free_space()
            if free is None or guard.target_free is None:  # the server does not say: try again now and then
                if not guard.target_retry_due():
                    return
            elif free <= guard.target_free + (1 << 20):
                return
        assert self.ledger is not None
        try:
            self._requeue_stranded()
        except Exception as exc:  # noqa: BLE001 - still full after all: stay paused
            self._resource_fault(exc)
            return
        guard.clear()
        self._wake.set()

    def _requeue_stranded(self) -> None:
        """Versions a full disk left in `loading` (no worker has them) go back to the queue; those that
        wait for the target's space are due now."""
        assert self.ledger is not None
        with self._lock:
            busy = set(self._inflight)
        for row in self.ledger.in_states([State.LOADING]):
            if row.id not in busy:
                self.ledger.transition(row.id, State.QUEUED, detail="resumed: a full disk interrupted it",
                                       expect=[State.LOADING])
        for row in self.ledger.in_states([State.FAILED]):
            if row.error_kind == "full" and row.next_attempt is not None:
                self.ledger.update(row.id, next_attempt=time.time())

    def _mark_unreachable(self, exc: TargetError) -> None:
        if self.target_ok:
            log.warning("%s; files wait until it answers", exc)
        self.target_ok, self.target_error = False, str(exc)

    def _resume_waiting(self) -> None:
        assert self.ledger is not None
        for row in self.ledger.in_states([State.FAILED]):
            if row.error_kind == "unreachable" and row.next_attempt is not None:
                self.ledger.update(row.id, next_attempt=time.time())

    # -- progress and rates ---------------------------------------------------------------

    def _progress(self, progress: Progress | None, file_id: int) -> None:
        with self._lock:
            if file_id in self._inflight or progress is not None:
                self._inflight[file_id] = progress

    def _record_batch(self, table: str, rows: int, nbytes: int, secs: float) -> None:
        self.metrics.on_batch(table, rows, nbytes, secs)
        second = int(time.time())
        with self._lock:
            if self._history and self._history[-1][0] == second:
                _, r, b = self._history[-1]
                self._history[-1] = (second, r + rows, b + nbytes)
            else:
                self._history.append((second, rows, nbytes))

    def snapshot(self) -> Snapshot:
        assert self.ledger is not None
        now = time.time()
        with self._lock:
            inflight = [p for p in self._inflight.values() if p is not None]
            history = list(self._history)
        window = 10
        recent = [h for h in history if h[0] >= now - window]
        rows_s = sum(h[1] for h in recent) / window
        mb_s = sum(h[2] for h in recent) / window / 1e6
        hour = [h for h in history if h[0] >= now - 3600]
        loaded_last_min = self.ledger.loaded_since(now - 60)
        return Snapshot(
            ts=now,
            data_dir=str(self.cfg.data_dir) + "".join(f" +@{s.name}" for s in extra_sources(self.cfg)),  # header
            target=self.cfg.masked_url(),
            target_ok=self.target_ok,
            target_error=self.target_error,
            server_version=self.target.server_version,
            paused=self.paused,
            counts=self.ledger.counts(),
            inflight=inflight,
            rows_per_s=rows_s,
            mb_per_s=mb_s,
            files_per_min=float(loaded_last_min),
            rows_last_hour=sum(h[1] for h in hour),
            settling=self.watcher.settling if self.watcher else 0,
            history=[(float(s), r, b) for s, r, b in history[-600:]],
            alerts=self.monitor.current(),
            open_actions=self.ledger.open_intent_count(),
        )

    def idle(self) -> bool:
        """True when nothing more will happen without new files or an operator."""
        assert self.ledger is not None
        if self.watcher and self.watcher.settling:
            return False
        with self._lock:
            if self._inflight:
                return False
        # Files parked until their done-marker appears are not on their way: only a new file moves them.
        parked = self.watcher.waiting_for_marker() if self.watcher else set()
        return not self.ledger.has_pending(exclude_paths=parked)

    def wait_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            self._settled.clear()  # (before looking: a load ending after the look wakes the wait below)
            if self.idle():
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            # A `--once` ends as soon as its last load does (issue 12); the timeout covers the rest
            # (settling files, the dispatcher's next tick).
            self._settled.wait(0.02)
        return False

    # -- operator commands ----------------------------------------------------------------

    def command(self, action: str, path: str | None = None, actor: str = "operator", *,
                file_id: int | None = None, expect: str | None = None) -> str:
        """Run an operator action now (in the caller's thread). Returns a one-line result.

        ``file_id`` names one version (else ``path`` means the newest); ``expect`` is the state
        the operator was shown: the action is refused if the version has left it."""
        assert self.ledger is not None
        if action == "pause":
            self.paused = True
            self.ledger.set_meta("paused", "1")
            self.ledger.set_meta("paused_by", f"{actor} {time.time()}")  # queued files say who, since when
            self.ledger.log(None, None, actor, "pause", "intake paused")
            log.info("intake paused by %s", actor)  # from an attached console too: the daemon's log says who
            return "intake paused"
        if action == "resume":
            self.paused = False
            self.ledger.set_meta("paused", "0")
            self.ledger.log(None, None, actor, "resume", "intake resumed")
            log.info("intake resumed by %s", actor)
            self._wake.set()
            return "intake resumed"
        if action not in ACTIONS or not (path or file_id is not None):
            raise UsageError(f"unknown action {action!r}")
        from chute.core import actions

        result = actions.run(self.cfg, self.ledger, self.target, action, path, actor, file_id=file_id, expect=expect)
        if file_id is not None:
            row = self.ledger.get(file_id)
            path = row.path if row is not None else path
        if self.watcher and path:
            self.watcher.forget(path)
        self._wake.set()
        return result

    def _run_commands(self) -> None:
        """Commands queued by `chute approve|retry|purge` or an attached console."""
        assert self.ledger is not None
        for cmd in self.ledger.pending_commands():
            try:
                result = self.command(cmd["action"], cmd["path"], cmd["actor"], file_id=cmd["file_id"],
                                      expect=cmd["expect"])
                self.ledger.finish_command(cmd["id"], True, result)
            except Exception as exc:  # noqa: BLE001 - report back to the caller, keep running
                self.ledger.finish_command(cmd["id"], False, str(exc))
