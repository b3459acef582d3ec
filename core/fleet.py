"""Many ingest hosts, one ClickHouse: the fleet mirror, fleet-wide duplicates and remote commands.

Each chute writes, from its own thread and in batches, its file versions' states to
``_chute_files`` and a heartbeat to ``_chute_hosts`` in the target database, and polls
``_chute_commands`` for actions other hosts addressed to it. The local ledger stays the source
of truth: the mirror is write-behind (a slow or absent ClickHouse delays the mirror, never a
load), and a restart resends from a watermark (ReplacingMergeTree makes resends harmless).

No coordinator of our own: ClickHouse holds the shared view. Under ``--cluster`` the tables are
``Replicated*`` and made ``ON CLUSTER``, so every replica has the whole fleet's view.

With ``dedup_scope = "fleet"`` a file whose content (sha256) another host has loaded is a
``duplicate`` (:class:`FleetDedup`): looked up in ``_chute_files`` and in the data table's
``_source_sha256`` column, neither of which expires like insert-deduplication tokens do. Two
hosts that start the same content at the same moment still leave one copy: their batches carry
the same tokens, and verification counts the content across paths.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from chute.core import __version__
from chute.core.config import Config
from chute.core.errors import TargetError, UsageError
from chute.core.routing import RESERVED_PREFIX
from chute.core.schema import qualified, quote_ident, replicated
from chute.core.states import State
from chute.core.target import Target

if TYPE_CHECKING:
    from chute.core.engine import Engine
    from chute.core.ledger import FileRow, Ledger

log = logging.getLogger("chute.fleet")

PREFIX = RESERVED_PREFIX
FILES, HOSTS, COMMANDS = f"{PREFIX}files", f"{PREFIX}hosts", f"{PREFIX}commands"
ACTIONS = ("approve", "retry", "purge", "pause", "resume")
PROBLEM_STATES = (State.HELD, State.FAILED, State.QUARANTINED)
# Command rows are versioned by status so a later status always wins, whatever the hosts' clocks.
_STATUS_RANK = {"pending": 1, "accepted": 2, "done": 3, "error": 3}
# The mirror resends a little before its watermark: two ledger writes may commit out of time order.
_OVERLAP = 2.0
# Many hosts each writing a few rows every interval: the server's async insert buffer gathers them
# into few parts (instead of one part per host per tick); waiting for it keeps each write acknowledged.
_INSERT_SETTINGS = {"async_insert": 1, "wait_for_async_insert": 1}


def host_name(cfg: Config) -> str:
    return cfg.fleet_host or socket.gethostname()


def _engine(base: str, version: str, cfg: Config) -> tuple[str, str]:
    """(ENGINE clause, ON CLUSTER clause) for a fleet table."""
    engine = f"{base}({version})"
    if cfg.cluster:
        return replicated(engine), f" ON CLUSTER {quote_ident(cfg.cluster)}"
    return engine, ""


def ddl(cfg: Config) -> list[str]:
    """CREATE statements of the fleet tables (ReplacingMergeTree; Replicated and ON CLUSTER with ``cluster``)."""
    db = cfg.database
    files_engine, on = _engine("ReplacingMergeTree", "updated_at", cfg)
    hosts_engine, _ = _engine("ReplacingMergeTree", "heartbeat", cfg)
    cmd_engine, _ = _engine("ReplacingMergeTree", "rank", cfg)
    return [
        f"""CREATE TABLE IF NOT EXISTS {qualified(db, FILES)}{on} (
  host LowCardinality(String), file_id UInt64, path String, table_name LowCardinality(String),
  state LowCardinality(String), current UInt8, sha256 String, rows Nullable(UInt64), rows_loaded UInt64,
  size Nullable(UInt64), attempts UInt32, error_kind String, reason String, last_error String,
  first_seen DateTime64(3, 'UTC'), updated_at DateTime64(3, 'UTC'), loaded_at Nullable(DateTime64(3, 'UTC')),
  INDEX sha sha256 TYPE bloom_filter GRANULARITY 4
) ENGINE = {files_engine} ORDER BY (host, file_id)""",
        f"""CREATE TABLE IF NOT EXISTS {qualified(db, HOSTS)}{on} (
  host String, data_dir String, version String, pid UInt32, started_at DateTime64(3, 'UTC'),
  heartbeat DateTime64(3, 'UTC') DEFAULT now64(3), stopped UInt8, paused UInt8, target_ok UInt8,
  counts String, rows_per_s Float64, mb_per_s Float64, files_per_min Float64, alerts String,
  batch_rows UInt32, dedup_scope LowCardinality(String)
) ENGINE = {hosts_engine} ORDER BY host""",
        f"""CREATE TABLE IF NOT EXISTS {qualified(db, COMMANDS)}{on} (
  id String, host String, action LowCardinality(String), path String, actor String, from_host String,
  issued_at DateTime64(3, 'UTC'), status LowCardinality(String), rank UInt8, result String,
  done_at Nullable(DateTime64(3, 'UTC'))
) ENGINE = {cmd_engine} ORDER BY (host, id)""",
    ]


def _ts(values: list[float | None]) -> pa.Array:
    return pa.array([None if v is None else int(v * 1000) for v in values], pa.timestamp("ms", tz="UTC"))


# The mirror's columns after `host`: (column, FileRow attribute, how its values are written):
# an Arrow type, "text" (None as ""), "enum" (the State's name), "ts" (epoch seconds -> DateTime64(3)), None (as is).
_FILE_COLUMNS: tuple[tuple[str, str, pa.DataType | str | None], ...] = (
    ("file_id", "id", pa.uint64()), ("path", "path", None), ("table_name", "table_name", None),
    ("state", "state", "enum"), ("current", "current", pa.uint8()), ("sha256", "sha256", "text"),
    ("rows", "rows", pa.uint64()), ("rows_loaded", "rows_loaded", pa.uint64()), ("size", "size", pa.uint64()),
    ("attempts", "attempts", pa.uint32()), ("error_kind", "error_kind", "text"), ("reason", "reason", "text"),
    ("last_error", "last_error", "text"), ("first_seen", "first_seen", "ts"), ("updated_at", "updated_at", "ts"),
    ("loaded_at", "loaded_at", "ts"),
)


def _column(values: list[Any], kind: pa.DataType | str | None) -> Any:
    if isinstance(kind, pa.DataType):
        return pa.array(values, kind)
    if kind == "text":
        return [v or "" for v in values]
    if kind == "enum":
        return [str(v) for v in values]
    if kind == "ts":
        return _ts(values)
    return values


# -- what the fleet view shows ----------------------------------------------------------------


@dataclass(frozen=True)
class HostStatus:
    host: str
    data_dir: str
    version: str
    pid: int
    age: float  # seconds since its last heartbeat, by the ClickHouse server's clock
    stale: bool
    stopped: bool
    paused: bool
    target_ok: bool
    counts: dict[str, int]
    rows_per_s: float
    mb_per_s: float
    files_per_min: float
    alerts: list[dict[str, str]]
    batch_rows: int
    dedup_scope: str

    @property
    def status(self) -> str:
        if self.stopped:
            return "stopped"
        if self.stale:
            return "STALE"
        return "paused" if self.paused else "running"

    def as_dict(self) -> dict[str, Any]:
        return dict(dataclasses.asdict(self), status=self.status)


@dataclass(frozen=True)
class FleetFile:
    host: str
    file_id: int
    path: str
    table_name: str
    state: str
    sha256: str
    rows: int | None
    attempts: int
    reason: str
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- SQL against the fleet tables ------------------------------------------------------------


class FleetStore:
    """The fleet tables through one :class:`Target` (each thread uses its own client)."""

    def __init__(self, cfg: Config, target: Target) -> None:
        self.cfg = cfg
        self.target = target
        self.db = cfg.database
        self.host = host_name(cfg)
        self._ready = False

    def ensure(self) -> None:
        if not self._ready:
            for sql in ddl(self.cfg):
                self.target._call("command", sql)
            self._ready = True

    def _insert(self, table: str, data: pa.Table) -> None:
        body = self.target.encode(data)
        self.target._call("raw_insert", qualified(self.db, table), [quote_ident(n) for n in body.names], body.body,
                          settings=dict(_INSERT_SETTINGS), fmt="Arrow")

    def _rows(self, sql: str, **params: Any) -> list[tuple]:
        return self.target._call("query", sql, parameters=params or None).result_rows

    # -- writes (the mirror) --------------------------------------------------------------

    def write_files(self, rows: list[FileRow]) -> None:
        data = pa.table({"host": [self.host] * len(rows)}
                        | {name: _column([getattr(r, attr) for r in rows], kind) for name, attr, kind in _FILE_COLUMNS})
        self._insert(FILES, data)

    def write_heartbeat(self, beat: dict[str, Any]) -> None:
        data = pa.table({
            "host": [self.host], "data_dir": [beat["data_dir"]], "version": [__version__],
            "pid": pa.array([os.getpid()], pa.uint32()), "started_at": _ts([beat["started_at"]]),
            "stopped": pa.array([int(beat["stopped"])], pa.uint8()),
            "paused": pa.array([int(beat["paused"])], pa.uint8()),
            "target_ok": pa.array([int(beat["target_ok"])], pa.uint8()),
            "counts": [json.dumps(beat["counts"], sort_keys=True)],
            "rows_per_s": [float(beat["rows_per_s"])], "mb_per_s": [float(beat["mb_per_s"])],
            "files_per_min": [float(beat["files_per_min"])], "alerts": [json.dumps(beat["alerts"])],
            "batch_rows": pa.array([self.cfg.batch_rows], pa.uint32()), "dedup_scope": [self.cfg.dedup_scope],
        })  # heartbeat: the server's now64(3), so staleness never depends on this host's clock
        self._insert(HOSTS, data)

    # -- commands -------------------------------------------------------------------------

    def send_command(self, host: str, action: str, path: str, actor: str) -> str:
        """Queue ``action`` on ``path`` for ``host``: a row in the commands table that host polls."""
        if action not in ACTIONS:
            raise UsageError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        self.ensure()  # the issuer may be first: the host picks the row up once it polls
        cid = uuid.uuid4().hex
        self._write_command(cid, host, action, path, actor, self.host, time.time(), "pending", "", None)
        return cid

    def _write_command(self, cid: str, host: str, action: str, path: str, actor: str, from_host: str,
                       issued_at: float, status: str, result: str, done_at: float | None) -> None:
        self._insert(COMMANDS, pa.table({
            "id": [cid], "host": [host], "action": [action], "path": [path], "actor": [actor],
            "from_host": [from_host], "issued_at": _ts([issued_at]), "status": [status],
            "rank": pa.array([_STATUS_RANK[status]], pa.uint8()), "result": [result], "done_at": _ts([done_at]),
        }))

    def pending_commands(self) -> list[dict[str, Any]]:
        rows = self._rows(
            f"SELECT id, action, path, actor, from_host, toUnixTimestamp64Milli(issued_at) / 1000"
            f" FROM {qualified(self.db, COMMANDS)} FINAL WHERE host = {{h:String}}"
            f" AND status IN ('pending', 'accepted') ORDER BY issued_at", h=self.host)
        keys = ("id", "action", "path", "actor", "from_host", "issued_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def set_command_status(self, cmd: dict[str, Any], status: str, result: str = "") -> None:
        self._write_command(cmd["id"], self.host, cmd["action"], cmd["path"], cmd["actor"], cmd["from_host"],
                            cmd["issued_at"], status, result, time.time() if status in ("done", "error") else None)

    def command(self, cid: str) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT status, result, host FROM {qualified(self.db, COMMANDS)} FINAL"
                          f" WHERE id = {{id:String}}", id=cid)
        return {"status": rows[0][0], "result": rows[0][1], "host": rows[0][2]} if rows else None

    # -- reads (the fleet view) -----------------------------------------------------------

    def hosts(self) -> list[HostStatus]:
        rows = self._rows(
            f"SELECT host, data_dir, version, pid, dateDiff('millisecond', heartbeat, now64(3)) / 1000, stopped,"
            f" paused, target_ok, counts, rows_per_s, mb_per_s, files_per_min, alerts, batch_rows, dedup_scope"
            f" FROM {qualified(self.db, HOSTS)} FINAL ORDER BY host")
        out = []
        for r in rows:
            age = max(0.0, float(r[4]))
            out.append(HostStatus(
                host=r[0], data_dir=r[1], version=r[2], pid=int(r[3]), age=age,
                stale=not r[5] and age > self.cfg.fleet_stale_seconds, stopped=bool(r[5]), paused=bool(r[6]),
                target_ok=bool(r[7]), counts=json.loads(r[8] or "{}"), rows_per_s=float(r[9]),
                mb_per_s=float(r[10]), files_per_min=float(r[11]), alerts=json.loads(r[12] or "[]"),
                batch_rows=int(r[13]), dedup_scope=str(r[14])))
        return out

    def host_files(self, host: str, states: tuple[str, ...] = tuple(PROBLEM_STATES), limit: int = 500
                   ) -> list[FleetFile]:
        rows = self._rows(
            f"SELECT host, file_id, path, table_name, state, sha256, rows, attempts,"
            f" if(last_error != '', last_error, reason), toUnixTimestamp64Milli(updated_at) / 1000"
            f" FROM {qualified(self.db, FILES)} FINAL WHERE host = {{h:String}} AND current = 1"
            f" AND state IN {{s:Array(String)}} ORDER BY updated_at DESC LIMIT {int(limit)}",
            h=host, s=[str(s) for s in states])
        return [FleetFile(r[0], int(r[1]), r[2], r[3], r[4], r[5], r[6], int(r[7]), r[8], float(r[9]))
                for r in rows]

    def loaded_elsewhere(self, sha256: str) -> tuple[str, str, float] | None:
        """(host, path, loaded_at) of a version with this content another host loaded, oldest first."""
        rows = self._rows(
            f"SELECT host, path, toUnixTimestamp64Milli(ifNull(loaded_at, updated_at)) / 1000"
            f" FROM {qualified(self.db, FILES)} FINAL WHERE sha256 = {{sha:String}} AND state = 'loaded'"
            f" AND host != {{h:String}} ORDER BY loaded_at LIMIT 1", sha=sha256, h=self.host)
        return (rows[0][0], rows[0][1], float(rows[0][2])) if rows else None

    def loading_elsewhere(self, sha256: str) -> str | None:
        """Another live host (fresh heartbeat) is loading this content right now: its name.

        Only hosts whose name sorts before ours count: two hosts that see each other loading the
        same content must not both step back (and then again, forever). The other one goes on, and
        if both send, their shared tokens and the content-wide count keep it to one copy."""
        rows = self._rows(
            f"SELECT f.host FROM {qualified(self.db, FILES)} AS f FINAL"
            f" WHERE f.sha256 = {{sha:String}} AND f.state = 'loading' AND f.host < {{h:String}}"
            f" AND f.host IN (SELECT host FROM {qualified(self.db, HOSTS)} FINAL WHERE stopped = 0"
            f" AND dateDiff('millisecond', heartbeat, now64(3)) < {int(self.cfg.fleet_stale_seconds * 1000)}) LIMIT 1",
            sha=sha256, h=self.host)
        return rows[0][0] if rows else None

    def count_content(self, table: str, sha256: str) -> int:
        """Rows of this content in ``table`` under any path (any host's copy)."""
        rows = self._rows(f"SELECT count() FROM {qualified(self.db, table)} WHERE _source_sha256 = {{sha:String}}",
                          sha=sha256)
        return int(rows[0][0])


# -- the mirror thread -------------------------------------------------------------------------


class FleetMirror:
    """Write-behind of the ledger to the fleet tables, the heartbeat, and the remote command poll.

    Runs in its own thread with its own ClickHouse connection and a short timeout: a slow or
    unreachable server delays only this thread. The watermark (ledger meta ``fleet_synced``)
    advances only after a batch is written, so nothing is skipped across outages or restarts.
    """

    BATCH = 5000

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        cfg = engine.cfg
        # Its own clients: a mirror write must never wait behind, or hold up, a load's connection.
        self.target = Target(dataclasses.replace(cfg, insert_timeout=min(cfg.insert_timeout, 30.0)))
        self.store = FleetStore(cfg, self.target)
        self.interval = cfg.fleet_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self._commands: dict[str, int] = {}  # fleet command id -> local command id, while it runs
        self._sent: dict[int, float] = {}  # file id -> updated_at last written (the overlap is not resent)
        self.rows_written = 0  # file rows sent to _chute_files (tests read it)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="chute-fleet", daemon=True)
        self._thread.start()
        log.info("fleet: mirroring to %s.%s as host %r", self.engine.cfg.database, FILES, self.store.host)

    def stop(self) -> None:
        """A last flush and a `stopped` heartbeat, so the fleet sees a clean stop rather than a stale host."""
        self._stop.set()
        if self._thread is not None:  # it writes them itself, on its own client, as it ends
            self._thread.join(timeout=60)
        else:
            self._last()
        self.target.close()

    def _last(self) -> None:
        try:
            if self.error is None:  # a ClickHouse that is failing must not hold up the stop
                self.tick(stopped=True)
        except Exception as exc:  # noqa: BLE001 - stopping must not fail on the mirror
            log.info("fleet: last heartbeat not written: %s", exc)

    def _loop(self) -> None:
        # First write one interval after start: a starting engine is busy enough (recovery, rescan).
        self._record(None)
        if self.engine.once:
            self._prepare()
        while not self._stop.wait(self.interval):
            try:
                self.tick()
                if self.error:
                    log.info("fleet: mirror writes again")
                    self._record(None)
                self.error = None
            except Exception as exc:  # noqa: BLE001 - the mirror waits for ClickHouse; loads go on
                if str(exc) != self.error:
                    log.warning("fleet: mirror paused: %s", exc)
                    self._record(str(exc))
                self.error = str(exc)
        self._last()

    def _prepare(self) -> None:
        """A `--once` writes the mirror when it stops, right after its last load: the fleet tables are
        made now, beside the loads, rather than then (issue 12: ~20-40 ms of each run's end)."""
        try:
            if not self.store._ready:
                self.store.ensure()
                self._check_name()
        except Exception as exc:  # noqa: BLE001 - the last tick tries again and reports
            log.debug("fleet: tables not made yet: %s", exc)

    def _record(self, error: str | None) -> None:
        """What `chute status` says about the mirror (ledger meta ``fleet``), written only on a change."""
        ledger = self.engine.ledger
        if ledger is not None:
            ledger.set_meta("fleet", json.dumps({"host": self.store.host, "error": error, "since": time.time()}))

    def tick(self, stopped: bool = False) -> None:
        ledger = self.engine.ledger
        if ledger is None:
            return
        if not self.store._ready:
            self.store.ensure()
            self._check_name()
        self._flush(ledger)
        self._heartbeat(stopped)
        if not stopped:
            self._poll_commands(ledger)

    def _check_name(self) -> None:
        """Two live chutes under one name would overwrite each other's heartbeat: say so once."""
        mine = str(self.engine.cfg.data_dir)
        for h in self.store.hosts():
            if h.host == self.store.host and h.data_dir != mine and h.status in ("running", "paused"):
                log.warning("fleet: another chute reports as host %r (data folder %s, pid %d); give each one its "
                            "own fleet_host", h.host, h.data_dir, h.pid)

    def _flush(self, ledger: Any) -> None:
        """What changed since the watermark, a page at a time (keyset pages: each one moves on)."""
        mark = float(ledger.meta("fleet_synced") or 0)
        since, after = max(0.0, mark - _OVERLAP), None
        sent: dict[int, float] = {}
        while True:
            rows = ledger.changed_since(since, after_id=after, limit=self.BATCH)
            if not rows:
                break
            fresh = [r for r in rows if self._sent.get(r.id) != r.updated_at]
            if fresh:
                self.store.write_files(fresh)
                self.rows_written += len(fresh)
            sent.update((r.id, r.updated_at) for r in rows)
            since, after = rows[-1].updated_at, rows[-1].id
            if since > mark:
                mark = since
                ledger.set_meta("fleet_synced", repr(mark))
            if len(rows) < self.BATCH:
                break
        self._sent = sent

    def _heartbeat(self, stopped: bool) -> None:
        engine = self.engine
        snap = engine.snapshot()
        self.store.write_heartbeat({
            "data_dir": snap.data_dir, "started_at": engine.started_at, "stopped": stopped, "paused": snap.paused,
            "target_ok": snap.target_ok, "counts": snap.counts, "rows_per_s": snap.rows_per_s,
            "mb_per_s": snap.mb_per_s, "files_per_min": snap.files_per_min,
            # Firing alerts only: the info-level daily summary is always "on" and is not a problem.
            "alerts": [{"level": a.level, "name": a.name, "message": a.message} for a in snap.alerts
                       if a.level != "info"],
        })

    def _poll_commands(self, ledger: Any) -> None:
        """Commands for this host: handed to its own local command channel (the ledger's `commands`
        table, as `chute retry` does), so the engine runs them exactly as its own; results go back."""
        for cmd in self.store.pending_commands():
            key = f"fleet_command:{cmd['id']}"
            local = self._commands.get(cmd["id"]) or int(ledger.meta(key) or 0)
            if not local:
                actor = f"{cmd['actor']}@{cmd['from_host']} (fleet)"
                path = cmd["path"] or None
                local = ledger.enqueue_command(cmd["action"], path, actor)
                ledger.set_meta(key, str(local))  # a restart must not run it twice
                self.store.set_command_status(cmd, "accepted")
                self.engine.wake()
            self._commands[cmd["id"]] = local
            row = ledger.command(local)
            if row is not None and row["status"] != "pending":
                self.store.set_command_status(cmd, "done" if row["status"] == "done" else "error", row["result"] or "")
                self._commands.pop(cmd["id"], None)


# -- fleet-wide duplicates (the loader's hooks) ----------------------------------------------


class FleetDedup:
    """``dedup_scope = "fleet"``: the loader asks before the first insert and when verifying.

    Runs in the loader's threads, on the loader's target (those threads' own clients)."""

    def __init__(self, cfg: Config, target: Target, ledger: Ledger) -> None:
        self.store = FleetStore(cfg, target)
        self.ledger = ledger

    def check(self, row: FileRow, sha: str) -> tuple[str, str] | None:
        """("duplicate", why) when another host loaded this content; ("wait", why) while one loads it."""
        try:
            found = self.store.loaded_elsewhere(sha)
            loading = None if found else self.store.loading_elsewhere(sha)
        except TargetError as exc:
            if exc.code != 60:  # UNKNOWN_TABLE: no host has mirrored anything yet
                raise
            found = loading = None
        if found is not None:
            host, path, at = found
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
            return "duplicate", f"same content as {path} on host {host} (loaded {when})"
        if loading is not None:
            return "wait", f"waiting: host {loading} is loading the same content"
        # The data itself, for a host whose mirror has not caught up (or that loaded before it had one),
        # unless rows of this content may be our own (an unfinished version here that sent batches).
        if self._own_rows_possible(row, sha):
            return None
        exists = self.store.target.table_columns(row.table_name) is not None
        if exists and self.store.count_content(row.table_name, sha):
            return "duplicate", (f"same content is already in table {row.table_name} (loaded by another host; "
                                 "the fleet mirror has not said which yet)")
        return None

    def _own_rows_possible(self, row: FileRow, sha: str) -> bool:
        for other in self.ledger.versions_with_sha(sha):
            if other.id != row.id and other.state != State.PURGED and self.ledger.any_batches(other.id,
                                                                                               other.generation):
                return True
        return False

    def verify(self, row: FileRow, sha: str, expected: int, found: int) -> str:
        """After sending: ``found`` rows carry this path. Returns "loaded", "duplicate" (the content is
        in the table once, under another host's path) or "extra" (a full copy besides ours: remove ours)."""
        total = self.store.count_content(row.table_name, sha)
        if total == expected:
            return "loaded" if found else "duplicate"
        if found and total - found == expected:
            return "extra"
        return "mismatch"
