"""`chute attach`: the engine's console surface, for a headless daemon already running here.

A second process cannot share the daemon's engine (and not its embedded ClickHouse either), so
everything comes from the ledger, read-only (SQLite WAL lets readers in while the daemon
writes), and operator actions travel through the ledger's command channel: the daemon runs
them within a dispatch tick and records the result. :class:`AttachedEngine` offers the same
``snapshot()``, ``command()``, ``ledger``, ``target``, ``paused``, ``stop()`` as
:class:`chute.core.engine.Engine`, so the console does not care which one it drives.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from chute.core import alerts, untyped_status
from chute.core.alerts import Alert
from chute.core.config import Config
from chute.core.engine import Snapshot, StateLock
from chute.core.errors import UsageError
from chute.core.ledger import Ledger, connect
from chute.core.loader import Progress
from chute.core.schema import Column
from chute.core.states import State
from chute.core.tally import AckedRows

RATE_WINDOW = 10  # seconds averaged for rows/s and MB/s, as the engine does
HISTORY = 600  # seconds of per-second history in a snapshot
SETTLE = 60  # seconds after which a second's acknowledged batches are all committed
ALERTS_MAX_AGE = 5.0  # seconds an alert evaluation serves snapshots (it reads disks and memory)


class RecordedSchemas:
    """Table columns as the daemon recorded them in the ledger (meta ``columns:<table>``)."""

    schema_note = "table schema as the daemon last recorded it"

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def table_columns(self, table: str) -> list[Column] | None:
        raw = self.ledger.meta(f"columns:{table}")
        if raw is None:
            raise UsageError("the daemon owns the ClickHouse connection and has not recorded this table's "
                             "columns in the ledger")
        return [Column(name, kind) for name, kind in json.loads(raw)]


class AttachedEngine:
    def __init__(self, cfg: Config, *, now: Callable[[], float] = time.time,
                 holder: Callable[[], str | None] | None = None, command_timeout: float = 120.0,
                 alert_rules: Callable[[AttachedEngine, float], list[Alert]] | None = None) -> None:
        path = Path(cfg.state_dir) / Ledger.FILENAME
        if not path.exists():
            raise UsageError(f"no ledger in {cfg.state_dir}: no chute has run with this state dir (see --state-dir)")
        self.mode = "attach"
        self.ledger = Ledger(cfg.state_dir, readonly=True)
        try:
            owner = self.ledger.meta("data_dir")
        except sqlite3.OperationalError:
            self.ledger.close()
            raise UsageError(f"the ledger in {cfg.state_dir} is not ready yet (is a daemon starting?); "
                             "try again in a moment") from None
        # The daemon's data folder, wherever `attach` was started from.
        self.cfg = replace(cfg, data_dir=Path(owner)) if owner else cfg
        self.target = RecordedSchemas(self.ledger)
        # Rate history needs a grouped query the Ledger has no method for; same file, read-only.
        self._conn = connect(path, readonly=True)
        self._settled: list[tuple[float, int, int]] = []  # history seconds that cannot change any more
        self._settled_until = -1  # ... up to this second (excluded)
        self._writer: Ledger | None = None
        self._now = now
        self._holder = holder or (lambda: StateLock.holder(Path(cfg.state_dir)))
        self.command_timeout = command_timeout
        self._rows = AckedRows()  # rows in the last hour: finished minutes counted once
        self._tally = alerts.outcome_tally()  # the day's events counted once a minute, not every 5 s
        self._alert_rules = alert_rules or (lambda eng, at: alerts.from_ledger(eng.cfg, eng.ledger, at,
                                                                               eng.daemon is not None, eng._tally))
        self._alerts: tuple[float, list[Alert]] = (float("-inf"), [])

    # -- the Engine surface ---------------------------------------------------------------

    def start(self, wait_for_target: float = 0.0) -> None:
        """Nothing to start: the daemon runs the engine."""

    def stop(self) -> None:
        """Detach. The daemon keeps running."""
        self.close()

    def close(self) -> None:
        self.ledger.close()
        self._conn.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def stopping(self) -> bool:
        return False

    @property
    def daemon(self) -> str | None:
        """'pid N mode' of the engine holding the state dir, or None when none runs."""
        return self._holder()

    @property
    def paused(self) -> bool:
        """As the daemon recorded it: its pause/resume set meta ``paused``, and each engine start
        resets it to "0" (pause is not kept across restarts)."""
        return self.ledger.meta("paused") == "1"

    def snapshot(self) -> Snapshot:
        now = self._now()
        ledger = self.ledger
        counts = ledger.counts()
        history = self._history(now)
        recent = [h for h in history if h[0] >= now - RATE_WINDOW]
        daemon = self.daemon
        reachable, error = alerts.recorded_health(ledger, running=daemon is not None)
        self._rows.forget_before(now - 3600)
        return Snapshot(
            ts=now,
            data_dir=str(self.cfg.data_dir),
            target=ledger.meta("target") or "daemon's ClickHouse",
            target_ok=daemon is not None and reachable is not False,
            target_error=error if daemon is not None else "no daemon running",
            server_version=ledger.meta("server_version") or "",
            paused=self.paused,
            counts=counts,
            inflight=self._inflight(),
            rows_per_s=sum(h[1] for h in recent) / RATE_WINDOW,
            mb_per_s=sum(h[2] for h in recent) / RATE_WINDOW / 1e6,
            files_per_min=float(ledger.loaded_since(now - 60)),
            rows_last_hour=self._rows.since(ledger, now - 3600, now),
            # (+ untyped files the running daemon keeps out of the ledger while they settle)
            settling=counts.get(State.SETTLING, 0) + counts.get(State.SEEN, 0)
            + (untyped_status.read(ledger)[0] if daemon is not None else 0),
            history=history,
            alerts=self._current_alerts(now),
            open_actions=ledger.open_intent_count(),
        )

    def command(self, action: str, path: str | None = None, actor: str = "operator", *,
                file_id: int | None = None, expect: str | None = None) -> str:
        """Queue the action for the daemon and wait for its answer (it polls every 0.25 s)."""
        if self.daemon is None:
            raise UsageError(f"no chute daemon is running on {self.cfg.state_dir}: nothing would carry out "
                             f"{action} (start `chute --no-ui`)")
        if self._writer is None:
            self._writer = Ledger(self.cfg.state_dir)
        cid = self._writer.enqueue_command(action, path, actor, file_id, expect)
        deadline = time.monotonic() + self.command_timeout
        checked = time.monotonic()
        while time.monotonic() < deadline:
            cmd = self._writer.command(cid)
            if cmd is not None and cmd["status"] != "pending":
                if cmd["status"] == "done":
                    return str(cmd["result"])
                raise UsageError(str(cmd["result"]))
            if time.monotonic() - checked > 0.5:
                checked = time.monotonic()
                # The daemon died meanwhile: take the command back, or the next daemon runs it later.
                gone = f"the daemon stopped before carrying it out: {action} withdrawn, nothing done"
                if self.daemon is None and self._writer.withdraw_command(cid, gone):
                    raise UsageError(gone)
            time.sleep(0.05)
        raise UsageError(f"the daemon has not answered in {self.command_timeout:.0f}s; the command stays queued")

    # -- derived from the ledger ----------------------------------------------------------

    def _current_alerts(self, now: float) -> list[Alert]:
        at, found = self._alerts
        if not 0 <= now - at < ALERTS_MAX_AGE:
            try:
                found = self._alert_rules(self, now)
            except Exception:  # noqa: BLE001 - monitoring must not take the console down
                found = []
            self._alerts = (now, found)
        return found

    def _history(self, now: float) -> list[tuple[float, int, int]]:
        """Per-second (rows, bytes) acknowledged in the last 10 minutes; bytes estimated per file
        from its size and row count, as the engine does. A second over SETTLE old never changes
        (an ack is stamped as it is written): read once and kept, so each snapshot reads the
        last minute, not ten (the join cost ~0.8 ms of CPU each second)."""
        start, settled = int(now) - HISTORY, int(now - SETTLE)
        if not start <= self._settled_until <= settled:  # the first call, or the clock stepped
            self._settled, self._settled_until = [], start
        if settled > self._settled_until:
            self._settled += self._acked(self._settled_until, settled, "<")
            self._settled_until = settled
        self._settled = [h for h in self._settled if h[0] >= start]
        return self._settled + self._acked(self._settled_until, now, "<=")

    def _acked(self, since: float, until: float, upper: str) -> list[tuple[float, int, int]]:
        rows = self._conn.execute(
            "SELECT CAST(b.acked_at AS INTEGER) AS s, SUM(b.rows) AS r,"
            " SUM(b.rows * IFNULL(f.size * 1.0 / NULLIF(f.rows, 0), 0)) AS n"
            " FROM batches b JOIN files f ON f.id = b.file_id"
            f" WHERE b.acked_at >= ? AND b.acked_at {upper} ? GROUP BY s ORDER BY s",
            (since, until),
        ).fetchall()
        return [(float(r["s"]), int(r["r"]), int(r["n"])) for r in rows]

    def _inflight(self) -> list[Progress]:
        out = []
        for row in self.ledger.in_states([State.LOADING], limit=64):
            # Batch acks do not log events, so the newest event is the move to `loading`.
            last = self.ledger.events(file_id=row.id, limit=1)
            started = last[-1].ts if last else row.updated_at
            out.append(Progress(row.id, row.path, row.table_name, row.rows_loaded, row.rows or 0, started))
        return out
