"""Which files under DATA_DIR some process holds open for writing, from /proc (DESIGN 4.1).

Inotify tells us when a writer closes a file, but not about writers that opened it before
chute started, nor about a file moved in while its writer still holds it. /proc does: every
``/proc/PID/fd/N`` link names an open file, and ``/proc/PID/fdinfo/N`` its open flags. One
scan reads the links of every process (cheap: a readlink each) and the flags only of the
few that point into DATA_DIR. Processes we may not look into (other users, when not root)
are invisible: for them the settle time and done-markers remain.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_ACCESS_MODE = 0o3  # O_ACCMODE: O_RDONLY 0, O_WRONLY 1, O_RDWR 2


@dataclass(frozen=True)
class Writer:
    pid: int
    name: str  # the process's comm, for the operator

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.name})"


class OpenWriters:
    """A snapshot of writers per real path, taken at most once per ``max_age`` seconds unless
    :meth:`invalidate` says the world changed (a watch event arrived)."""

    def __init__(self, root: os.PathLike[str] | str, max_age: float = 0.5, proc: str = "/proc") -> None:
        self.root = os.path.realpath(root)
        self.prefix = self.root.rstrip("/") + "/"
        self.proc = proc
        self.max_age = max_age
        self.available = os.path.isdir(os.path.join(proc, "self", "fd"))
        self._taken = -1e9
        self._by_path: dict[str, list[Writer]] = {}
        self.scans = 0
        self.last_scan_seconds = 0.0

    def invalidate(self) -> None:
        self._taken = -1e9

    def of(self, path: os.PathLike[str] | str) -> list[Writer]:
        """Processes holding ``path`` open for writing (empty when none can be seen)."""
        if not self.available:
            return []
        if time.monotonic() - self._taken > self.max_age:
            self.scan()
        return self._by_path.get(os.path.realpath(path), [])

    def scan(self) -> dict[str, list[Writer]]:
        t0 = time.monotonic()
        found: dict[str, list[Writer]] = {}
        try:
            pids = [p for p in os.listdir(self.proc) if p.isdigit()]
        except OSError:
            return found
        for pid in pids:
            fd_dir = f"{self.proc}/{pid}/fd"
            try:
                fds = os.listdir(fd_dir)
            except OSError:  # gone, or not ours to look into
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                if not target.startswith(self.prefix) or not _writable(f"{self.proc}/{pid}/fdinfo/{fd}"):
                    continue
                found.setdefault(target, []).append(Writer(int(pid), _comm(self.proc, pid)))
        self._by_path = found
        self._taken = time.monotonic()
        self.scans += 1
        self.last_scan_seconds = self._taken - t0
        return found


def _writable(fdinfo: str) -> bool:
    try:
        with open(fdinfo) as f:
            for line in f:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & _ACCESS_MODE != os.O_RDONLY
    except (OSError, ValueError, IndexError):
        pass
    return False


def _comm(proc: str, pid: str) -> str:
    try:
        with open(f"{proc}/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"
