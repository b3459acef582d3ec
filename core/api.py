"""chute's public Python API: load files, run once, read status and files, act on versions.

What the CLI does, as calls that return dataclasses and raise typed errors (``chute.core.errors``):
an Airflow task, a Prefect flow or a notebook uses these instead of parsing CLI output. ::

    from chute.core import api
    result = api.run_once("data/", clickhouse_url="chdb:///var/lib/chute/engine")
    result.raise_for_problems()        # LoadProblems (a ChuteError) names every bad file and why

Every call takes either a ready :class:`~chute.core.config.Config` (``config=``) or the same
settings the CLI takes (``config_file=``, plus Config fields as keywords; the environment and
the TOML file apply as for the CLI).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chute.core import config as config_mod
from chute.core import engine_hold
from chute.core.errors import ChuteError, UsageError
from chute.core.states import State

if TYPE_CHECKING:
    from chute.core.engine import Engine
    from chute.core.ledger import FileRow, Ledger

__all__ = [
    "ActionResult", "FileInfo", "LoadProblems", "NotAnswered", "OpenAction", "RunResult", "Status",
    "approve", "files", "load", "make_config", "purge", "retry", "run_once", "status",
]


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileInfo:
    """One version of one file, as the ledger knows it."""

    id: int
    path: str  # relative to the data folder
    table: str
    state: State
    rows: int | None  # rows parsed (None before the file was read)
    rows_loaded: int
    size: int | None
    sha256: str | None
    reason: str | None  # why it is held, quarantined, failed or a duplicate
    attempts: int
    moved_to: str | None  # its quarantine/archive copy, relative to the data folder
    updated_at: float
    loaded_at: float | None

    @classmethod
    def of(cls, row: FileRow) -> FileInfo:
        return cls(id=row.id, path=row.path, table=row.table_name, state=row.state, rows=row.rows,
                   rows_loaded=row.rows_loaded, size=row.size, sha256=row.sha256,
                   reason=row.last_error or row.reason, attempts=row.attempts, moved_to=row.moved_to,
                   updated_at=row.updated_at, loaded_at=row.loaded_at)

    @property
    def ok(self) -> bool:
        """Loaded, or a duplicate of content already loaded: nothing for anyone to do."""
        return self.state in (State.LOADED, State.DUPLICATE)

    def as_dict(self) -> dict[str, Any]:
        return dict(dataclasses.asdict(self), state=str(self.state))


@dataclass(frozen=True)
class RunResult:
    """Where each file of a run ended. ``exit_code`` is what `chute --no-ui --once` exits with."""

    files: list[FileInfo]
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    @property
    def problems(self) -> list[FileInfo]:
        return [f for f in self.files if not f.ok]

    def in_state(self, *states: State) -> list[FileInfo]:
        return [f for f in self.files if f.state in states]

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[str(f.state)] = out.get(str(f.state), 0) + 1
        return dict(sorted(out.items()))

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 3  # (the chute program exits 128 + N when signal N stopped it first)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.counts.items()) or "no files"
        return counts + (" (stopped before the end)" if self.interrupted and not self.ok else "")

    def raise_for_problems(self) -> RunResult:
        """Raise :class:`LoadProblems` unless every file is loaded or a duplicate; else return self."""
        if self.problems:
            raise LoadProblems(self.problems)
        return self


@dataclass(frozen=True)
class OpenAction:
    """A write-ahead action (core/intents.py) that began and has not finished: it runs right now, or a
    crash interrupted it and the same command again, or the next engine start, finishes it."""

    id: int  # the intent's id
    action: str  # purge | retry | archive | delete
    version_id: int  # the file version it acts on (ledger id)
    path: str
    actor: str
    from_state: str  # the version's state when the action began
    since: float  # when it began (epoch seconds)

    @classmethod
    def of(cls, row: Any) -> OpenAction:
        import json

        path = str(json.loads(row["args"]).get("path") or "")
        return cls(id=row["id"], action=row["action"], version_id=row["file_id"], path=path, actor=row["actor"],
                   from_state=row["from_state"], since=row["created"])

    @property
    def way_forward(self) -> str:
        if self.action in ("purge", "retry"):
            return f"`chute {self.action} {self.path}` again, or a restart, finishes it"
        return "the engine finishes it right after the load, or at its next start"


@dataclass(frozen=True)
class Status:
    """What `chute status` shows: counts per state, rates, recent errors, firing alerts."""

    data_dir: str | None
    running: str | None  # "pid N mode" of the engine holding the state dir, or None
    counts: dict[str, int]
    rows_per_s_1m: float
    rows_last_hour: int
    files_loaded_last_hour: int
    recent_errors: list[FileInfo] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    open_actions: list[OpenAction] = field(default_factory=list)  # write-ahead actions not finished

    def as_dict(self) -> dict[str, Any]:
        """The `chute status --json` document."""
        return {
            "data_dir": self.data_dir,
            "running": self.running,
            "counts": self.counts,
            "rows_per_s_1m": self.rows_per_s_1m,
            "rows_last_hour": self.rows_last_hour,
            "files_loaded_last_hour": self.files_loaded_last_hour,
            "recent_errors": [{"path": e.path, "state": str(e.state), "error": e.reason, "at": e.updated_at}
                              for e in self.recent_errors],
            "alerts": self.alerts,
            "open_actions": [{**dataclasses.asdict(a), "way_forward": a.way_forward} for a in self.open_actions],
        }


@dataclass(frozen=True)
class ActionResult:
    action: str
    path: str
    message: str  # the one line the CLI prints
    via_daemon: bool  # run by the engine holding the state dir (else here)


# -- errors -------------------------------------------------------------------------------


class LoadProblems(ChuteError):
    """Some files did not load: each is failed, quarantined or held (``files``, with reasons)."""

    def __init__(self, files: Sequence[FileInfo]) -> None:
        self.files = list(files)
        lines = [f"{f.path}: {f.state}: {f.reason or 'no reason recorded'}" for f in self.files]
        super().__init__(f"{len(self.files)} file(s) not loaded:\n  " + "\n  ".join(lines))

    @property
    def held_only(self) -> bool:
        """Every problem waits for an operator (held): nothing is broken, nothing is lost."""
        return all(f.state == State.HELD for f in self.files)


class NotAnswered(ChuteError):
    """The running engine has not taken the queued action in time (it stays queued)."""


# -- configuration ------------------------------------------------------------------------


def make_config(data_dir: str | os.PathLike[str] | None = None, *, config: config_mod.Config | None = None,
                config_file: str | os.PathLike[str] | None = None, **settings: Any) -> config_mod.Config:
    """A Config as the CLI builds it: defaults < TOML file < environment < these keywords."""
    if config is not None:
        if settings or config_file:
            raise UsageError("pass either config= or settings, not both")
        return dataclasses.replace(config, data_dir=Path(data_dir).resolve()) if data_dir else config
    overrides = dict(settings)
    if data_dir is not None:
        overrides["data_dir"] = str(Path(data_dir).resolve())
    cfg = config_mod.load(Path(config_file) if config_file else None, overrides)
    if data_dir is None and cfg.data_dir == Path("data"):
        cfg = dataclasses.replace(cfg, data_dir=Path("data").resolve())
    return cfg


# -- running ------------------------------------------------------------------------------


def run_once(data_dir: str | os.PathLike[str] | None = None, *, config: config_mod.Config | None = None,
             timeout: float | None = None, **settings: Any) -> RunResult:
    """`chute --no-ui --once`: load every file present now and wait until each reaches a final state.

    Raises UsageError when another chute holds the state dir (use :func:`load` to wait on it),
    TimeoutError when ``timeout`` passes first (files still loading resume at the next start).
    """
    from chute.core.engine import Engine

    cfg = make_config(data_dir, config=config, **settings)
    engine = Engine(cfg, once=True, mode="once")
    engine.start()
    engine_hold.keep(cfg)  # a process that calls again must not start chDB again (core/engine_hold.py)
    try:
        if not engine.wait_idle(timeout=timeout):
            raise TimeoutError(f"files still loading after {timeout}s")
        return once_result(engine)
    finally:
        engine.stop()


def load(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
         data_dir: str | os.PathLike[str] | None = None, *,
         config: config_mod.Config | None = None, timeout: float | None = None, **settings: Any) -> RunResult:
    """Load these files (inside the data folder; one path or several) and return where each ended.

    With no chute running on the state dir this runs once, as :func:`run_once` (which loads every
    new file in the folder: chute loads each file exactly once, whoever asked); with a daemon
    running it waits for the daemon to finish them. Raises UsageError for a path outside the data
    folder or one that is not there, TimeoutError when ``timeout`` passes first.
    """
    from chute.core.engine import StateLock

    cfg = make_config(data_dir, config=config, **settings)
    if isinstance(paths, str | os.PathLike):  # one path, not its characters
        paths = [paths]
    wanted = [_relative(cfg, p) for p in paths]
    for rel in wanted:
        if not (cfg.data_dir / rel).exists():
            raise UsageError(f"{rel} is not in the data folder {cfg.data_dir}")
    deadline = None if timeout is None else time.monotonic() + timeout
    if not StateLock.holder(cfg.state_dir):
        from chute.core.engine import Engine

        engine = Engine(cfg, once=True, mode="once")
        engine.start()
        engine_hold.keep(cfg)
        try:
            if not engine.wait_idle(timeout=None if deadline is None else max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"files still loading after {timeout}s")
            assert engine.ledger is not None
            return RunResult(_final_rows(engine.ledger, wanted))
        finally:
            engine.stop()
    from chute.core.ledger import Ledger

    ledger = Ledger(cfg.state_dir, readonly=True)
    try:
        while True:
            infos = _final_rows(ledger, wanted)
            if len(infos) == len(wanted):
                return RunResult(infos)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the running chute has not finished {len(wanted) - len(infos)} file(s) "
                                   f"after {timeout}s")
            time.sleep(0.2)
    finally:
        ledger.close()


def once_result(engine: Engine) -> RunResult:
    """Where each file the once-run found ended (the CLI's `--once` exit code comes from this)."""
    assert engine.ledger is not None and engine.watcher is not None
    found = engine.ledger.current_many(sorted(engine.watcher.scanned_paths))
    return RunResult([FileInfo.of(found[p]) for p in sorted(found)], interrupted=engine.stopping)


def _final(row: FileRow) -> bool:
    from chute.core.states import FINAL

    return row.state in FINAL or (row.state == State.FAILED and row.next_attempt is None)


def _final_rows(ledger: Ledger, wanted: list[str]) -> list[FileInfo]:
    out = []
    for rel in wanted:
        row = ledger.current(rel)
        if row is not None and _final(row):
            out.append(FileInfo.of(row))
    return out


def _relative(cfg: config_mod.Config, path: str | os.PathLike[str]) -> str:
    from chute.core.actions import _relative as relative

    return relative(cfg, os.fspath(path))


# -- reading ------------------------------------------------------------------------------


def _read_ledger(cfg: config_mod.Config) -> Ledger:
    from chute.core.ledger import Ledger

    if not (cfg.state_dir / Ledger.FILENAME).exists():
        raise UsageError(f"no ledger in {cfg.state_dir}: chute has not run with this state dir (see --state-dir)")
    return Ledger(cfg.state_dir, readonly=True)


def status(*, config: config_mod.Config | None = None, **settings: Any) -> Status:
    """Counts per state, rates, the last ten errors and firing alerts (`chute status`)."""
    from chute.core import alerts
    from chute.core.engine import StateLock

    cfg = make_config(config=config, **settings)
    ledger = _read_ledger(cfg)
    try:
        now = time.time()
        counts = ledger.counts()
        running = StateLock.holder(cfg.state_dir)
        owner = ledger.meta("data_dir")
        alert_cfg = dataclasses.replace(cfg, data_dir=Path(owner)) if owner else cfg  # the daemon's folders
        return Status(
            data_dir=owner,
            running=running,
            counts={s.value: counts.get(s.value, 0) for s in State},
            rows_per_s_1m=round(ledger.rows_acked_since(now - 60) / 60, 1),
            rows_last_hour=ledger.rows_acked_since(now - 3600),
            files_loaded_last_hour=ledger.loaded_since(now - 3600),
            recent_errors=[FileInfo.of(r) for r in ledger.recent_errors(10)],
            alerts=[a.as_dict() for a in alerts.from_ledger(alert_cfg, ledger, now, running is not None)],
            open_actions=_open_actions(ledger),
        )
    finally:
        ledger.close()


def _open_actions(ledger: Ledger) -> list[OpenAction]:
    import sqlite3

    try:
        return [OpenAction.of(r) for r in ledger.open_intents()]
    except sqlite3.OperationalError:  # a ledger from before write-ahead actions: no intents table yet
        return []


def files(state: State | str | None = None, *, limit: int | None = None, path: str | None = None,
          config: config_mod.Config | None = None, **settings: Any) -> list[FileInfo]:
    """Versions in the ledger, newest first (`chute files`); ``path`` keeps every version of one file."""
    cfg = make_config(config=config, **settings)
    if state is not None and str(state) not in {s.value for s in State}:
        raise UsageError(f"unknown state {state!r} (one of {', '.join(s.value for s in State)})")
    ledger = _read_ledger(cfg)
    try:
        if path is not None:
            rows = [r for r in reversed(ledger.versions(_relative(cfg, path))) if state is None or r.state == state]
            return [FileInfo.of(r) for r in rows[:limit]]
        return [FileInfo.of(r) for r in ledger.list_files(state=str(state) if state else None, limit=limit)]
    finally:
        ledger.close()


# -- operator actions ---------------------------------------------------------------------


def approve(path: str | os.PathLike[str] | None = None, *, id: int | None = None, **kwargs: Any) -> ActionResult:
    """Let a held version load."""
    return act("approve", path, id=id, **kwargs)


def retry(path: str | os.PathLike[str] | None = None, *, id: int | None = None, **kwargs: Any) -> ActionResult:
    """Load a failed or quarantined version again (a quarantined file moves back first)."""
    return act("retry", path, id=id, **kwargs)


def purge(path: str | os.PathLike[str] | None = None, *, id: int | None = None, **kwargs: Any) -> ActionResult:
    """Delete a version's rows from ClickHouse and its file from disk."""
    return act("purge", path, id=id, **kwargs)


def act(action: str, path: str | os.PathLike[str] | None = None, *, id: int | None = None,
        data_dir: str | os.PathLike[str] | None = None, actor: str | None = None, wait: float = 60.0,
        config: config_mod.Config | None = None, **settings: Any) -> ActionResult:
    """Run an action through the running engine's command channel if there is one, else here and now.

    ``path`` means the newest version at that path; ``id`` (a FileInfo id) one exact version.
    The data folder is the one the ledger belongs to unless ``data_dir`` is given.
    Raises UsageError when the action does not apply (the message says why), NotAnswered when a
    running engine does not take it within ``wait`` seconds.
    """
    from chute.core import action_cli
    from chute.core.engine import StateLock, open_ledger, prepare_dirs
    from chute.core.ledger import Ledger

    if action not in ("approve", "retry", "purge"):
        raise UsageError(f"unknown action {action!r}")
    if (path is None) == (id is None):
        raise UsageError(f"{action}: give a path or an id (one of them)")
    if id is not None and not (isinstance(id, int) and 1 <= id < 2**63):  # SQLite INTEGER, else OverflowError
        raise UsageError(f"no file with id {id!r} in the ledger (see `chute files`)")
    cfg = make_config(data_dir, config=config, **settings)
    ledger = _read_ledger(cfg)
    try:
        owner = ledger.meta("data_dir")
        if owner and data_dir is None:
            cfg = dataclasses.replace(cfg, data_dir=Path(owner))
        target_path = os.fspath(path) if path is not None else _path_of_version(ledger, id)  # type: ignore[arg-type]
    finally:
        ledger.close()
    actor = actor or action_cli.actor().replace("cli:", "api:", 1)
    if StateLock.holder(cfg.state_dir):
        ledger = Ledger(cfg.state_dir)
        try:
            cid = ledger.enqueue_command(action, None if id is not None else target_path, actor, file_id=id)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                cmd = ledger.command(cid)
                if cmd is not None and cmd["status"] != "pending":
                    if cmd["status"] == "done":
                        return ActionResult(action, target_path, cmd["result"], via_daemon=True)
                    raise UsageError(cmd["result"])
                time.sleep(0.1)
            raise NotAnswered(f"the running engine has not answered in {wait:.0f}s; the command stays queued")
        finally:
            ledger.close()
    from chute.core import actions
    from chute.core.target import Target

    prepare_dirs(cfg)
    lock = StateLock(cfg.state_dir)
    lock.acquire("cli")
    ledger = open_ledger(cfg)
    target = Target(cfg)
    try:
        return ActionResult(action, target_path,
                            actions.run(cfg, ledger, target, action, target_path, actor, file_id=id,
                                        engine_running=False), via_daemon=False)
    finally:
        target.close()
        ledger.close()
        lock.release()


def _path_of_version(ledger: Ledger, file_id: int) -> str:
    """The path of version ``file_id`` (any version, not only the newest: actions take ids)."""
    from chute.core.actions import find_id

    return find_id(ledger, file_id).path
