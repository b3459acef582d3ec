"""Log floods are cut to a line now and then (issue 11: 82,310 lines in 45 s on a full disk).

A warning or error repeating, word for word, one let through less than ``interval`` seconds ago
(after a short burst) is dropped and counted; the next one let through says how many were.
Different messages (another file, another reason) always pass: only a loop is cut.
"""

from __future__ import annotations

import logging
import threading
import time


class RateLimit(logging.Filter):
    def __init__(self, interval: float = 30.0, burst: int = 3) -> None:
        super().__init__()
        self.interval = interval
        self.burst = burst  # lines of one kind let through back to back before the limit applies
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str], list[float | int]] = {}  # key -> [window start, passed, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = time.monotonic()
        with self._lock:
            state = self._seen.get(key)
            if state is None or now - state[0] >= self.interval:
                dropped = int(state[2]) if state else 0
                self._seen[key] = [now, 1, 0]
                if len(self._seen) > 10_000:  # many distinct messages: forget the old windows
                    self._seen = {key: self._seen[key]}
                if dropped:
                    record.msg, record.args = (f"{record.getMessage()} ({dropped} more like this in the last "
                                               f"{self.interval:.0f}s)"), None
                return True
            if state[1] < self.burst:
                state[1] += 1
                return True
            state[2] += 1
            return False
