"""Alert rules (seed design, "Monitoring & Alerting"), evaluated by chute itself.

The rules are pure functions of :class:`Inputs` (counts, disk, memory, reachability, now), so
each one can be tested firing and clearing without waiting. :func:`gather` collects the
inputs from the ledger and the host; :class:`Monitor` runs the rules for a live engine, logs
every alert that starts or stops firing and a daily summary line, and caches the result for
snapshots and scrapes. ``deploy/prometheus/chute-rules.yml`` ships the same rules for
Prometheus, on the metrics of :mod:`chute.core.metrics`.

Definitions:

- critical ``error_rate``: of the load attempts that ended in the last 15 minutes (audit-trail
  transitions into loaded, duplicate, failed or quarantined), more than ``alert_error_rate``
  (5%) ended failed or quarantined, and at least 3 did (one bad file among two is not an
  incident).
- critical ``disk_nearly_full``: a folder chute writes (data, state, embedded engine) has
  less than ``alert_disk_free_ratio`` (5%) of its filesystem free.
- critical ``memory_nearly_exhausted``: less than ``alert_memory_free_ratio`` (5%) of the
  memory limit is available (the host's, or the cgroup's when tighter; reclaimable page cache
  counts as available).
- warning ``oldest_waiting``: a file has waited longer than ``alert_oldest_waiting_seconds``
  (600) since chute first saw it, in seen, settling, queued, failed or held.
- warning ``clickhouse_unreachable``: the engine cannot reach ClickHouse.
- info ``daily_summary``: files, rows and errors of the last 24 hours; logged once a day
  (at the first evaluation after local midnight).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import humanize

from chute.core import notify, sysinfo
from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.core.states import State
from chute.core.sysinfo import Disk, Memory
from chute.core.tally import OutcomeTally

log = logging.getLogger("chute.alerts")

LEVELS = ("critical", "warning", "info")
ERROR_WINDOW = 15 * 60.0
DAY = 24 * 3600.0
MIN_ERRORS = 3
# Load attempts end in one of these; the error rate is the share of the last two.
OUTCOMES = (State.LOADED, State.DUPLICATE, State.FAILED, State.QUARANTINED)
ERRORS = (State.FAILED, State.QUARANTINED)
# Files that have not reached a resting state (loading is excluded: it is being worked on).
WAITING = (State.SEEN, State.SETTLING, State.QUEUED, State.FAILED, State.HELD)
HEALTH_META = "health"  # ledger meta the engine writes when reachability changes, for `status` and `attach`


@dataclass(frozen=True)
class Alert:
    level: str  # critical | warning | info
    name: str
    message: str
    subject: str = ""  # which folder, for rules that fire per folder

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.subject)


@dataclass(frozen=True)
class Thresholds:
    error_rate: float = 0.05
    oldest_waiting_seconds: float = 600.0
    disk_free_ratio: float = 0.05
    memory_free_ratio: float = 0.05
    min_errors: int = MIN_ERRORS

    @classmethod
    def of(cls, cfg: Config) -> Thresholds:
        return cls(
            error_rate=cfg.alert_error_rate,
            oldest_waiting_seconds=cfg.alert_oldest_waiting_seconds,
            disk_free_ratio=cfg.alert_disk_free_ratio,
            memory_free_ratio=cfg.alert_memory_free_ratio,
        )


@dataclass(frozen=True)
class Waiting:
    path: str
    state: str
    first_seen: float


@dataclass(frozen=True)
class Inputs:
    now: float
    outcomes: dict[str, int] = field(default_factory=dict)  # last 15 minutes, by end state
    oldest_waiting: Waiting | None = None
    disks: tuple[Disk, ...] = ()
    memory: Memory | None = None
    reachable: bool | None = None  # None: unknown (no engine running)
    target_error: str | None = None
    day_outcomes: dict[str, int] = field(default_factory=dict)  # last 24 hours, by end state
    day_rows: int = 0


# -- the rules ------------------------------------------------------------------------------


def error_rate(outcomes: dict[str, int]) -> tuple[int, int, float]:
    """(errors, attempts ended, rate) from end-state counts."""
    errors = sum(outcomes.get(str(s), 0) for s in ERRORS)
    total = sum(outcomes.get(str(s), 0) for s in OUTCOMES)
    return errors, total, (errors / total if total else 0.0)


def rule_error_rate(inp: Inputs, th: Thresholds) -> Alert | None:
    errors, total, rate = error_rate(inp.outcomes)
    if errors < th.min_errors or rate <= th.error_rate:
        return None
    return Alert("critical", "error_rate",
                 f"error rate {rate:.0%} over 15 min: {errors} of {total} load attempts failed or were "
                 f"quarantined (threshold {th.error_rate:.0%})")


def rule_disk(inp: Inputs, th: Thresholds) -> list[Alert]:
    return [
        Alert("critical", "disk_nearly_full",
              f"{d.folder} folder {d.path}: {humanize.naturalsize(d.free, binary=True)} free "
              f"({d.free_ratio:.1%} of {humanize.naturalsize(d.total, binary=True)})", subject=d.folder)
        for d in inp.disks if d.free_ratio < th.disk_free_ratio
    ]


def rule_memory(inp: Inputs, th: Thresholds) -> Alert | None:
    m = inp.memory
    if m is None or m.free_ratio >= th.memory_free_ratio:
        return None
    return Alert("critical", "memory_nearly_exhausted",
                 f"{humanize.naturalsize(m.available, binary=True)} of "
                 f"{humanize.naturalsize(m.limit, binary=True)} memory available ({m.scope}, {m.free_ratio:.1%})")


def rule_oldest_waiting(inp: Inputs, th: Thresholds) -> Alert | None:
    w = inp.oldest_waiting
    if w is None:
        return None
    age = inp.now - w.first_seen
    if age <= th.oldest_waiting_seconds:
        return None
    return Alert("warning", "oldest_waiting",
                 f"{w.path} has waited {humanize.naturaldelta(age)} ({w.state}); "
                 f"threshold {humanize.naturaldelta(th.oldest_waiting_seconds)}")


def rule_unreachable(inp: Inputs, th: Thresholds) -> Alert | None:
    if inp.reachable is not False:
        return None
    return Alert("warning", "clickhouse_unreachable",
                 f"ClickHouse unreachable: {inp.target_error or 'no answer'}; files wait until it answers")


def daily_summary(inp: Inputs) -> Alert:
    d = inp.day_outcomes
    errors = sum(d.get(str(s), 0) for s in ERRORS)
    return Alert("info", "daily_summary",
                 f"last 24 h: {_n(d.get('loaded', 0), 'file')} loaded, {_n(inp.day_rows, 'row')}, "
                 f"{_n(d.get('duplicate', 0), 'duplicate')}, {_n(errors, 'error')}, {d.get('held', 0)} held")


def _n(count: int, word: str) -> str:
    """'1 file', '2 files' (an operator reads these; '1 files' reads as a bug)."""
    return f"{humanize.intcomma(count)} {word}{'' if count == 1 else 's'}"


def evaluate(inp: Inputs, th: Thresholds | None = None) -> list[Alert]:
    """Every rule that fires, most severe first; the daily summary (info) always comes last."""
    th = th or Thresholds()
    found: list[Alert | None] = [rule_error_rate(inp, th), *rule_disk(inp, th), rule_memory(inp, th),
                                 rule_oldest_waiting(inp, th), rule_unreachable(inp, th), daily_summary(inp)]
    alerts = [a for a in found if a is not None]
    return sorted(alerts, key=lambda a: LEVELS.index(a.level))


def summary_due(last_day: str | None, now: float) -> tuple[bool, str]:
    """Is a daily summary due at ``now`` (the local date changed since ``last_day``)? Returns (due, today)."""
    today = time.strftime("%Y-%m-%d", time.localtime(now))
    return (last_day is not None and today != last_day), today


# -- inputs from the ledger and the host ----------------------------------------------------


def gather(cfg: Config, ledger: Ledger, now: float, *, reachable: bool | None = None,
           target_error: str | None = None, tally: OutcomeTally | None = None) -> Inputs:
    """``tally``: an :func:`outcome_tally` kept by a caller that asks every few seconds (the day's
    events are then counted once per minute, not each time)."""
    oldest = ledger.oldest_in(WAITING)
    if tally is not None:
        day = tally.since(ledger, now - DAY, now)
        recent = tally.since(ledger, now - ERROR_WINDOW, now)
        outcomes = {s: n for s, n in recent.items() if s in OUTCOMES}
        tally.forget_before(now - DAY)
    else:
        day = ledger.outcomes_since(now - DAY, [*OUTCOMES, State.HELD])
        outcomes = ledger.outcomes_since(now - ERROR_WINDOW, OUTCOMES)
    return Inputs(
        now=now,
        outcomes=outcomes,
        oldest_waiting=Waiting(oldest.path, str(oldest.state), oldest.first_seen) if oldest else None,
        disks=tuple(sysinfo.disks(cfg)),
        memory=sysinfo.memory(),
        reachable=reachable,
        target_error=target_error,
        day_outcomes=day,
        day_rows=ledger.rows_acked_since(now - DAY),
    )


def recorded_health(ledger: Ledger, running: bool) -> tuple[bool | None, str | None]:
    """Reachability as the running engine last recorded it; unknown when no engine runs."""
    raw = ledger.meta(HEALTH_META) if running else None
    if not raw:
        return None, None
    try:
        data = json.loads(raw)
        return bool(data["reachable"]), data.get("error")
    except (ValueError, KeyError, TypeError):
        return None, None


def outcome_tally() -> OutcomeTally:
    """What :func:`gather` counts, kept per minute (see ``tally`` there)."""
    return OutcomeTally((*OUTCOMES, State.HELD))


def from_ledger(cfg: Config, ledger: Ledger, now: float, running: bool, tally: OutcomeTally | None = None
                ) -> list[Alert]:
    """What `chute status` and `chute attach` can evaluate without the engine: ledger, disk, memory."""
    reachable, error = recorded_health(ledger, running)
    return evaluate(gather(cfg, ledger, now, reachable=reachable, target_error=error, tally=tally),
                    Thresholds.of(cfg))


# A resource fault (core/resources.py) -> (its alert, the folder whose disk_nearly_full it replaces).
_FULL_ALERTS = {"state dir full": ("state_dir_full", "state"), "target full": ("target_full", "engine"),
                "temp dir full": ("temp_dir_full", "temp")}


def with_resource_fault(alerts: list[Alert], engine: Any) -> list[Alert]:
    """A full disk that paused intake (core/resources.py) is one critical alert, ``state_dir_full``,
    ``target_full`` or ``temp_dir_full``, in place of the `disk_nearly_full` of the same folder."""
    guard = getattr(engine, "resources", None)
    fault = getattr(guard, "fault", None)
    if guard is None or fault is None:
        return alerts
    name, folder = _FULL_ALERTS.get(fault, ("target_full", "engine"))
    alert = Alert("critical", name, f"intake paused: {fault} ({guard.detail}); resumes by itself when space returns")
    return [alert] + [a for a in alerts if not (a.name == "disk_nearly_full" and a.subject == folder)]


# -- the live engine ------------------------------------------------------------------------


class Monitor:
    """Runs the rules for an engine: changes and the daily summary logged, host and ledger inputs cached briefly."""

    MAX_AGE = 2.0  # seconds gathered inputs serve snapshots and scrapes; reachability is always live

    def __init__(self, engine: Any, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._lock = threading.Lock()
        self._inputs: Inputs | None = None
        self._alerts: list[Alert] = []
        self._firing: dict[tuple[str, str], Alert] = {}
        self._day: str | None = None
        self._health: tuple[bool, str | None] | None = None
        self._tally = outcome_tally()  # gathered every MAX_AGE: the day's events counted once a minute
        self.notifier = notify.Notifier.for_config(engine.cfg)  # None when no `notify` URL is configured

    def current(self) -> list[Alert]:
        now = self.clock()
        with self._lock:
            cached = self._inputs
        if cached is None or now - cached.now >= self.MAX_AGE:
            return self.tick()
        return self._evaluate(replace(cached, reachable=bool(self.engine.target_ok),
                                      target_error=self.engine.target_error))

    def tick(self) -> list[Alert]:
        """Gather and evaluate now. Never raises: monitoring must not take the engine down."""
        engine = self.engine
        ledger = engine.ledger
        if ledger is None:
            return []
        now = self.clock()
        try:
            self._record_health(ledger, now)
        except Exception:
            log.debug("recording health failed", exc_info=True)
        try:
            inp = gather(engine.cfg, ledger, now, reachable=bool(engine.target_ok), target_error=engine.target_error,
                         tally=self._tally)
        except Exception:  # e.g. the ledger closed during shutdown
            log.debug("alert evaluation failed", exc_info=True)
            with self._lock:
                cached = self._inputs
            return self._evaluate(cached)
        with self._lock:
            self._inputs = inp
            due, self._day = summary_due(self._day, now)
        if due:
            log.info("daily summary: %s", daily_summary(inp).message)
        if self.notifier is not None and self.notifier.summary_due(now, ledger.meta(notify.SUMMARY_META)):
            self.notifier.summary(daily_summary(inp).message)
            ledger.set_meta(notify.SUMMARY_META, self.notifier.summary_day or "")
        return self._evaluate(inp)

    def _evaluate(self, inp: Inputs | None) -> list[Alert]:
        alerts = evaluate(inp, Thresholds.of(self.engine.cfg)) if inp is not None else []
        alerts = with_resource_fault(alerts, self.engine)
        with self._lock:
            firing = {a.key: a for a in alerts if a.level != "info"}
            started = [a for k, a in firing.items() if k not in self._firing]
            cleared = [a for k, a in self._firing.items() if k not in firing]
            self._firing, self._alerts = firing, alerts
        for alert in started:
            log.log(logging.CRITICAL if alert.level == "critical" else logging.WARNING,
                    "alert %s %s: %s", alert.level, alert.name, alert.message)
        for alert in cleared:
            log.info("alert cleared: %s%s", alert.name, f" ({alert.subject})" if alert.subject else "")
        if self.notifier is not None:
            for alert in started:
                self.notifier.fired(alert, self._files(alert, inp))
            for alert in cleared:
                self.notifier.resolved(alert)
        return alerts

    def _files(self, alert: Alert, inp: Inputs | None) -> list[str]:
        """The files behind an alert, for its notification."""
        if inp is None:
            return []
        if alert.name == "oldest_waiting" and inp.oldest_waiting:
            return [inp.oldest_waiting.path]
        if alert.name == "error_rate" and self.engine.ledger is not None:
            try:
                return [r.path for r in self.engine.ledger.recent_errors(10) if r.updated_at >= inp.now - ERROR_WINDOW]
            except Exception:  # noqa: BLE001 - the ledger may be closing; the message goes without the list
                return []
        return []

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()

    def _record_health(self, ledger: Ledger, now: float) -> None:
        health = (bool(self.engine.target_ok), self.engine.target_error)
        if health != self._health:
            ledger.set_meta(HEALTH_META, json.dumps({"reachable": health[0], "error": health[1], "ts": now}))
            self._health = health
