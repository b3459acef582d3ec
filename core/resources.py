"""Resource faults: the state dir or ClickHouse's disk is full (issue 11, defect 5).

Before: every ledger write failed and was logged (82,310 lines in 45 s), the loader's own
"failed" transition failed too and left a file in `loading` until a restart. Now the first
disk-full error trips a guard: intake pauses, one alert fires (``state_dir_full``,
``target_full`` or ``temp_dir_full``) and one log line says so; the health loop probes for space
and, when it is back, puts every version a fault stranded in `loading` back in the queue and
resumes intake.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from chute.core.errors import TargetError

log = logging.getLogger("chute.resources")

STATE = "state dir full"
TARGET = "target full"
TEMP = "temp dir full"  # chute's temporary directory: no room for a copy a file needs (core/formats/unmarked.py)
# ClickHouse's own words for a full disk: NOT_ENOUGH_SPACE, and ENOSPC surfacing through a write.
TARGET_FULL_CODES = frozenset({243})
_FULL_TEXT = ("no space left on device", "not enough space", "database or disk is full", "disk quota exceeded")
PROBE_BYTES = 64 * 1024  # a state-dir probe must fit a ledger transaction's WAL growth
TARGET_RETRY_SECONDS = 30.0  # the server gives no free-space figure: try again now and then


class TempDirFull(OSError):
    """The temporary directory has no room for what a file needs there (``need`` free bytes, its
    reserve kept): not the file's fault, so a pause until space returns, never a quarantine."""

    def __init__(self, message: str, need: int) -> None:
        super().__init__(errno.ENOSPC, message)
        self.need = need

    def __str__(self) -> str:
        return str(self.strerror)  # (the message alone, as the log, the alert and the queue say it)


def temp_free() -> int:
    """Free bytes of the temporary directory's disk, or 0 when they cannot be read."""
    try:
        return shutil.disk_usage(tempfile.gettempdir()).free
    except OSError:
        return 0


def no_space(exc: BaseException) -> bool:
    """Is ``exc`` a write refused for want of space (a full disk, or a quota), whoever's disk it is?"""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def full_kind(exc: BaseException) -> str | None:
    """STATE, TARGET, TEMP or None: is ``exc`` a disk filling up, and whose?"""
    if isinstance(exc, TempDirFull):
        return TEMP
    if isinstance(exc, TargetError):
        text = str(exc).lower()
        return TARGET if exc.code in TARGET_FULL_CODES or any(t in text for t in _FULL_TEXT) else None
    if isinstance(exc, sqlite3.OperationalError):
        return STATE if "disk is full" in str(exc).lower() or "disk i/o error" in str(exc).lower() else None
    if no_space(exc):
        return STATE
    return None


def state_dir_writable(state_dir: Path) -> bool:
    """Can the state dir take a ledger transaction's worth of bytes right now?"""
    probe = state_dir / ".space-probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


class Guard:
    """Trips on the first disk-full error, clears when a probe finds space. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fault: str | None = None
        self.since: float | None = None
        self.detail = ""
        self.target_free: int | None = None  # ClickHouse's free bytes when it filled up
        self.temp_need = 0  # free bytes the temporary directory must have again (TEMP)
        self._last_try = 0.0

    def trip(self, kind: str, exc: BaseException, target_free: int | None = None) -> bool:
        """Returns True the first time (the caller's one log line and alert); False while already tripped."""
        with self._lock:
            if self.fault is not None:
                return False
            self.fault, self.since, self.detail = kind, time.time(), str(exc)[:300]
            self.target_free, self._last_try = target_free, time.monotonic()
            self.temp_need = exc.need if isinstance(exc, TempDirFull) else 0
        log.critical("intake paused: %s (%s); it resumes by itself when space returns", kind, self.detail)
        return True

    def clear(self) -> str | None:
        with self._lock:
            kind, self.fault, self.since = self.fault, None, None
        if kind is not None:
            log.warning("space is back (%s no more): intake resumes", kind)
        return kind

    def target_retry_due(self) -> bool:
        """With no free-space figure to watch, let intake try again now and then."""
        with self._lock:
            if time.monotonic() - self._last_try < TARGET_RETRY_SECONDS:
                return False
            self._last_try = time.monotonic()
            return True
