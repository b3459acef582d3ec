"""Notifications: alerts that start and stop firing, and a daily summary, sent through apprise.

apprise speaks Slack, e-mail, ntfy, Teams, Telegram, generic ``json://`` webhooks and ~100 more
from one URL each (``notify = [...]``, ``--notify URL``). Sending happens on one worker thread
behind a bounded queue: the engine only enqueues, so a slow or dead receiver never blocks
ingestion; a full queue drops the message (counted, logged once). Rate limits: a rule that
fires again within ``notify_min_interval`` of its last message is not sent again (nor is its
resolution: nobody was told it fired), and at most ``notify_max_per_hour`` messages go out per
hour; the next message that does go out says how many were held back.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from chute.core.errors import UsageError

log = logging.getLogger("chute.notify")

QUEUE_SIZE = 100
SUMMARY_META = "notify_summary_day"  # ledger meta: the local date of the last daily summary sent
HOUR = 3600.0


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    level: str  # critical | warning | info | resolved


@dataclass
class Stats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0  # queue full
    held_back: int = 0  # rate limits
    last_error: str | None = None
    history: list[Message] = field(default_factory=list)  # the last few sent, newest last


def apprise_sender(urls: Sequence[str]) -> Callable[[Message], bool]:
    """A send function over apprise for ``urls``; raises UsageError naming a URL apprise does not know."""
    import apprise

    bell = apprise.Apprise()
    for url in urls:
        with _apprise_says() as said:  # its reason goes into our one line, not onto stderr before it
            added = bell.add(url)
        if not added:
            why = f": {said[0]}" if said else ""
            raise UsageError(f"notify URL {url!r} is not one apprise understands{why} (see its wiki for the schemes)")
    kinds = {"critical": apprise.NotifyType.FAILURE, "warning": apprise.NotifyType.WARNING,
             "resolved": apprise.NotifyType.SUCCESS, "info": apprise.NotifyType.INFO}

    def send(msg: Message) -> bool:
        kind = kinds.get(msg.level, apprise.NotifyType.INFO)
        return bool(bell.notify(title=msg.title, body=msg.body, notify_type=kind))

    return send


@contextmanager
def _apprise_says() -> Iterator[list[str]]:
    """The messages apprise logs meanwhile, kept from the log."""
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    logger = logging.getLogger("apprise")
    handler, propagate = Keep(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield said
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def url_problem(url: str) -> str | None:
    """Why apprise would refuse ``url`` (`chute config --check`), or None."""
    try:
        apprise_sender([url])
    except UsageError as exc:
        return str(exc)
    return None


class Notifier:
    def __init__(self, send: Callable[[Message], bool], *, min_interval: float = 300.0, max_per_hour: int = 30,
                 summary_at: str = "", host: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.send = send
        self.min_interval = min_interval
        self.max_per_hour = max_per_hour
        self.summary_at = summary_at
        self.host = host or socket.gethostname()
        self.clock = clock
        self.stats = Stats()
        self._queue: queue.Queue[Message | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._lock = threading.Lock()
        self._last_fired: dict[tuple[str, str], float] = {}
        self._told: dict[tuple[str, str], float] = {}  # alerts the receivers believe are firing: since when
        self._sent_times: deque[float] = deque()
        self._summary_day: str | None = None
        self._thread = threading.Thread(target=self._run, name="chute-notify", daemon=True)
        self._thread.start()

    @classmethod
    def for_config(cls, cfg: Any) -> Notifier | None:
        if not cfg.notify:
            return None
        return cls(apprise_sender(cfg.notify), min_interval=cfg.notify_min_interval,
                   max_per_hour=cfg.notify_max_per_hour, summary_at=cfg.notify_summary_at)

    # -- what the monitor reports ---------------------------------------------------------

    def fired(self, alert: Any, files: Sequence[str] = ()) -> None:
        now = self.clock()
        key = alert.key
        with self._lock:
            last = self._last_fired.get(key)
            if last is not None and now - last < self.min_interval:
                self.stats.held_back += 1
                return
            self._last_fired[key] = now
            self._told[key] = now
        lines = [f"host: {self.host}", f"rule: {alert.name}" + (f" ({alert.subject})" if alert.subject else ""),
                 f"level: {alert.level}", f"value: {alert.message}"]
        if files:
            lines.append("files: " + ", ".join(files))
        self._enqueue(Message(f"[chute {alert.level.upper()}] {alert.name} firing on {self.host}",
                              "\n".join(lines), alert.level))

    def resolved(self, alert: Any) -> None:
        now = self.clock()
        with self._lock:
            since = self._told.pop(alert.key, None)
        if since is None:
            return  # its firing was held back: nobody waits for the all-clear
        lines = [f"host: {self.host}", f"rule: {alert.name}" + (f" ({alert.subject})" if alert.subject else ""),
                 f"was: {alert.message}", f"firing for {now - since:.0f} s"]
        self._enqueue(Message(f"[chute RESOLVED] {alert.name} on {self.host}", "\n".join(lines), "resolved"),
                      limited=False)

    def summary_due(self, now: float, last_day: str | None = None) -> bool:
        """Once a day, at the first check at or after ``summary_at`` (local time). ``last_day``: the day
        of the last summary as the ledger remembers it (a restart does not send a second one); a first
        start after ``summary_at`` waits for the next day."""
        if not self.summary_at:
            return False
        local = time.localtime(now)
        today = time.strftime("%Y-%m-%d", local)
        hh, mm = (int(x) for x in self.summary_at.split(":"))
        passed = (local.tm_hour, local.tm_min) >= (hh, mm)
        if self._summary_day is None:
            self._summary_day = last_day if last_day is not None else (today if passed else "")
        if not passed or self._summary_day == today:
            return False
        self._summary_day = today
        return True

    @property
    def summary_day(self) -> str | None:
        return self._summary_day

    def summary(self, text: str) -> None:
        self._enqueue(Message(f"[chute] daily summary for {self.host}", f"host: {self.host}\n{text}", "info"))

    # -- sending --------------------------------------------------------------------------

    def _enqueue(self, msg: Message, limited: bool = True) -> None:
        now = self.clock()
        with self._lock:
            while self._sent_times and now - self._sent_times[0] >= HOUR:
                self._sent_times.popleft()
            if limited and len(self._sent_times) >= self.max_per_hour:
                self.stats.held_back += 1
                return
            self._sent_times.append(now)
            if self.stats.held_back:
                msg = Message(msg.title, msg.body + f"\n({self.stats.held_back} earlier message(s) held back by the "
                                                    "rate limit)", msg.level)
                self.stats.held_back = 0
        try:
            self._queue.put_nowait(msg)
        except queue.Full:
            with self._lock:
                self.stats.dropped += 1
                first = self.stats.dropped == 1
            if first:
                log.warning("notification queue full: dropping messages until the receivers catch up",
                            extra={"event": "notify_dropped"})

    def _run(self) -> None:
        while True:
            msg = self._queue.get()
            if msg is None:
                return
            try:
                ok = self.send(msg)
                error = None if ok else "the receiver refused it or did not answer"
            except Exception as exc:  # noqa: BLE001 - a broken receiver must not end the worker
                ok, error = False, f"{type(exc).__name__}: {exc}"
            with self._lock:
                if ok:
                    self.stats.sent += 1
                    self.stats.history = [*self.stats.history[-9:], msg]
                    recovered, self.stats.last_error = self.stats.last_error is not None, None
                else:
                    self.stats.failed += 1
                    first, self.stats.last_error = self.stats.last_error is None, error
            if ok and recovered:
                log.info("notifications are delivered again", extra={"event": "notify_ok"})
            elif not ok and first:  # one line per outage, not one per message
                log.warning("could not send notification %r: %s", msg.title, error,
                            extra={"event": "notify_failed", "error_kind": "notify"})

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout``), then stop the worker."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
