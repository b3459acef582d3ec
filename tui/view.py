"""One refresh of the console: everything the panes show, collected off the UI thread.

The console pulls: a timer asks for a :class:`View` (engine snapshot plus a few indexed ledger
queries, capped), then each pane applies it as a diff. The engine never calls UI code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from chute.core.alerts import OUTCOMES, error_rate
from chute.core.config import Config
from chute.core.engine import Snapshot
from chute.core.ledger import FileRow, Ledger
from chute.core.loader import Progress
from chute.core.states import State
from chute.core.tally import AckedRows, OutcomeTally
from chute.tui.advice import as_now

ERRORS_LIMIT = 200
STATES = tuple(s.value for s in State)
MINUTES = 10  # files/min history shown


class EngineLike(Protocol):
    """What the console uses: :class:`chute.core.engine.Engine` and :class:`chute.core.attach.AttachedEngine`."""

    cfg: Config
    mode: str
    target: Any

    @property
    def paused(self) -> bool: ...

    def snapshot(self) -> Snapshot: ...

    def command(self, action: str, path: str | None = None, actor: str = "operator", *,
                file_id: int | None = None, expect: str | None = None) -> str: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class FileQuery:
    """The `/` filter: words match path, table or error; `state:held` (or `is:held`) picks a state."""

    text: str = ""

    @property
    def state(self) -> str | None:
        for word in self.text.split():
            key, _, value = word.partition(":")
            if key in ("state", "is") and value in STATES:
                return value
        return None

    @property
    def error(self) -> str | None:
        """An unknown state name: shown in place of the files, never silently matching everything."""
        for word in self.text.split():
            key, _, value = word.partition(":")
            if key in ("state", "is") and value not in STATES:
                close = [s for s in STATES if s.startswith(value[:1])] if value else []
                hint = f" (did you mean {' or '.join(close)}?)" if close else ""
                return f"unknown state “{value}”{hint}: one of {', '.join(STATES)}"
        return None

    @property
    def search(self) -> str | None:
        words = [w for w in self.text.split() if not (w.startswith(("state:", "is:")))]
        return " ".join(words) or None


@dataclass(frozen=True)
class Totals:
    """From the audit trail, so a console started a minute ago (or attached) still knows the day."""

    rows_hour: int = 0
    rows_today: int = 0
    files_hour: int = 0  # loads that ended `loaded`
    files_today: int = 0
    errors_hour: int = 0  # loads that ended failed or quarantined
    attempts_hour: int = 0  # loads that ended at all (the error rate's denominator, as the alert rule has it)


@dataclass(frozen=True)
class View:
    now: float
    snap: Snapshot
    query: FileQuery
    files: list[FileRow]
    files_capped: bool  # more files match than the table shows
    limit: int
    errors: list[FileRow] = field(default_factory=list)
    quarantine: list[FileRow] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    attached: bool = False
    daemon: str | None = None  # attached: 'pid N mode' of the daemon, None when it is gone
    files_per_min: list[float] = field(default_factory=list)  # last minutes, oldest first; the last is live
    took: float = 0.0  # seconds spent collecting (shown in the help screen; measured by the bench)
    paused_by: tuple[str, float] | None = None  # (actor, since) while intake is paused
    tries: dict[int, int] = field(default_factory=dict)  # load attempts of the Errors pane's files

    @property
    def pause_note(self) -> str:
        """What a queued file waits for while intake is paused."""
        if self.paused_by is None:
            return "waiting: intake paused" if self.snap.paused else ""
        actor, since = self.paused_by
        return f"waiting: intake paused by {actor} since {datetime.fromtimestamp(since).strftime('%H:%M')}"

    @property
    def progress(self) -> dict[int, Progress]:
        return {p.file_id: p for p in self.snap.inflight}

    @property
    def total_files(self) -> int:
        return sum(self.snap.counts.values())

    def count(self, *states: State | str) -> int:
        return sum(self.snap.counts.get(s, 0) for s in states)


class NewestFiles:
    """The newest ``limit`` file versions for the Files pane, read incrementally while unfiltered.

    Every ledger write to a file row bumps its ``updated_at``, so the rows changed since the last
    read are the newest ones: a refresh reads those (by the ``updated_at`` index; none or a few on
    a quiet tick), not five hundred. A filter, more changes than ``PEEK``, a shown row gone (gc),
    or every ``FULL_EVERY`` refreshes (clock steps) read it all.

    A writer stamps ``updated_at`` before it waits for the ledger's lock (or another process's
    write), so a change can commit after a newer one the last refresh already read: each read
    looks ``SLACK`` seconds further back than the newest row shown (as the fleet mirror's
    ``_OVERLAP`` does), or it would be missed until the next full read.
    """

    PEEK = 64
    SLACK = 2.0
    FULL_EVERY = 30

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._rows: list[FileRow] = []
        self._query: FileQuery | None = None
        self._since_full = 0
        self._capped = False

    def read(self, reader: Ledger, query: FileQuery) -> tuple[list[FileRow], bool]:
        """(rows newest first, whether more match than are shown)."""
        if query.error:
            return [], False
        incremental = (not query.text and query == self._query and bool(self._rows)
                       and self._since_full < self.FULL_EVERY)
        if incremental:
            top = self._rows[0].updated_at
            # Oldest change first; newest first as list_files orders them (updated_at, then id).
            fresh = reader.changed_since(top - self.SLACK, limit=self.PEEK + 1)[::-1]
            ids = {r.id for r in fresh}
            kept = [r for r in self._rows if r.id not in ids]
            # A row gc deleted changes nothing another read would see: it is looked for (by id).
            if len(fresh) <= self.PEEK and reader.count_present([r.id for r in kept]) == len(kept):
                merged = fresh + kept
                self._rows = merged[: self.limit]
                self._since_full += 1
                return self._rows, len(merged) > self.limit or self._capped
        rows = reader.list_files(state=query.state, search=query.search, limit=self.limit + 1)
        self._rows, self._capped = rows[: self.limit], len(rows) > self.limit
        self._query, self._since_full = query, 0
        return self._rows, self._capped


class PastRates:
    """Rows/s history from before this engine started (a restart), read once from the ledger's
    acknowledged batches, so the Rates pane keeps it as files/min does. Past seconds never change."""

    def __init__(self, seconds: int = 600) -> None:
        self.seconds = seconds
        self._past: list[tuple[float, int, int]] | None = None
        self._until = 0.0

    def merged(self, reader: Ledger, live: list[tuple[float, int, int]], now: float) -> list[tuple[float, int, int]]:
        if self._past is None:
            self._until = live[0][0] if live else float(int(now))
            self._past = reader.acked_per_second(now - self.seconds, self._until - 1e-9)
        start = now - self.seconds
        return [p for p in self._past if p[0] >= start and p[0] < self._until] + list(live)


class LoadedPerMinute:
    """Files loaded per wall-clock minute, from the audit trail (so attach sees the daemon's past
    too). A finished minute never changes, so it is counted once; the live point is the engine's
    sliding one-minute count."""

    def __init__(self, minutes: int = MINUTES) -> None:
        self.minutes = minutes
        self._done: dict[int, int] = {}

    def series(self, reader: Ledger, now: float, live: float) -> list[float]:
        current = int(now // 60) * 60
        starts = [current - 60 * k for k in range(self.minutes - 1, 0, -1)]
        for start in starts:
            if start not in self._done:
                since = reader.outcomes_since(start, [State.LOADED]).get(State.LOADED, 0)
                after = reader.outcomes_since(start + 60, [State.LOADED]).get(State.LOADED, 0)
                self._done[start] = since - after
        self._done = {k: v for k, v in self._done.items() if k >= starts[0]}
        return [float(self._done[s]) for s in starts] + [live]


class Outcomes(OutcomeTally):
    """Transitions into the outcome states since a moment (the hour and today of the Rates pane):
    with a day of events in the ledger, a refresh scans the last minute or two, not the day (that
    scan cost some 40 ms a second, on the UI's CPU, with 10,000 files)."""

    def __init__(self) -> None:
        super().__init__(OUTCOMES)
        self.rows = AckedRows()  # the rows of the same windows, counted the same way


def _as_now(reader: Ledger, rows: list[FileRow]) -> list[FileRow]:
    """Hold reasons as they stand now (tui/advice.py): only held rows cost a lookup."""
    if not any(r.state == State.HELD for r in rows):
        return rows

    def state_of(file_id: int) -> str | None:
        old = reader.get(file_id)
        return None if old is None else str(old.state)

    return [as_now(r, state_of) if r.state == State.HELD else r for r in rows]


def collect(engine: EngineLike, reader: Ledger, query: FileQuery, now: float, limit: int,
            per_minute: LoadedPerMinute | None = None, newest: NewestFiles | None = None,
            past: PastRates | None = None, outcomes: Outcomes | None = None) -> View:
    t0 = time.perf_counter()
    snap = engine.snapshot()
    if past is not None:
        snap = replace(snap, history=past.merged(reader, snap.history, now))
    files, capped = (newest or NewestFiles(limit)).read(reader, query)
    errors = reader.recent_errors(ERRORS_LIMIT)
    files, errors = _as_now(reader, files), _as_now(reader, errors)
    tries = reader.load_attempts(r.id for r in errors)
    quarantine = reader.list_files(state=State.QUARANTINED, limit=limit)
    midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    outcomes = outcomes or Outcomes()
    hour = outcomes.since(reader, now - 3600, now)
    today = outcomes.since(reader, midnight, now)
    outcomes.forget_before(min(midnight, now - 3600))
    outcomes.rows.forget_before(min(midnight, now - 3600))
    failed, attempts, _ = error_rate(hour)
    totals = Totals(
        rows_hour=outcomes.rows.since(reader, now - 3600, now),
        rows_today=outcomes.rows.since(reader, midnight, now),
        files_hour=hour.get(State.LOADED, 0),
        files_today=today.get(State.LOADED, 0),
        errors_hour=failed,
        attempts_hour=attempts,
    )
    paused_by = None
    if snap.paused:
        actor, _, since = (reader.meta("paused_by") or "").rpartition(" ")
        paused_by = (actor or "an operator", float(since) if since.replace(".", "", 1).isdigit() else now)
    return View(now=now, snap=snap, query=query, files=files, files_capped=capped, limit=limit,
                paused_by=paused_by, tries=tries,
                errors=errors, quarantine=quarantine, totals=totals, attached=engine.mode == "attach",
                daemon=getattr(engine, "daemon", None),
                files_per_min=per_minute.series(reader, now, snap.files_per_min) if per_minute else [],
                took=time.perf_counter() - t0)
