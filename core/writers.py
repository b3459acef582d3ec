"""Is a file under DATA_DIR held open for writing by any process? (docs/ARCHITECTURE.md#complete-files)

Inotify tells us when a writer closes a file, but not about writers that opened it before
chute started, nor about a file moved in while its writer still holds it. Two ways to ask:

- A read lease (``fcntl(F_SETLEASE, F_RDLCK)``, taken and dropped at once): the kernel grants
  it only when no process at all has the file open for writing, whatever its user or
  container. One syscall pair, ~25 us. Needs the file to be ours (or CAP_LEASE) and a
  filesystem that supports leases; the lease-break signal (SIGIO), which could only come in
  the microseconds we hold it, is ignored so it cannot end the process.
- Otherwise /proc: every ``/proc/PID/fd/N`` link names an open file, ``/proc/PID/fdinfo/N``
  its open flags. One scan reads every link (a readlink each: ~10 ms idle, ~80 ms on a loaded
  2-core machine) and the flags only of the few that point into DATA_DIR; it is cached.
  Processes we may not look into (other users, when not root) are invisible: for them the
  settle time and done-markers remain. The scan also names the writer for the operator.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
import threading
import time
from dataclasses import dataclass

_ACCESS_MODE = 0o3  # O_ACCMODE: O_RDONLY 0, O_WRONLY 1, O_RDWR 2
_F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)


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
        self.leases = False

    def enable_leases(self) -> bool:
        """Use read leases from now on, if the lease-break signal can be ignored (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return self.leases
        if signal.getsignal(signal.SIGIO) in (signal.SIG_DFL, signal.SIG_IGN, None):
            signal.signal(signal.SIGIO, signal.SIG_IGN)
            self.leases = True
        return self.leases

    def invalidate(self) -> None:
        self._taken = -1e9

    def of(self, path: os.PathLike[str] | str) -> list[Writer]:
        """Processes holding ``path`` open for writing (empty when none can be seen)."""
        held = self._lease_probe(path) if self.leases else None
        if held is False:
            return []
        found = self._from_proc(path)
        if held and not found:  # the kernel knows of a writer that /proc does not show us
            return [Writer(0, "a process chute cannot see")]
        return found

    def _from_proc(self, path: os.PathLike[str] | str) -> list[Writer]:
        if not self.available:
            return []
        if time.monotonic() - self._taken > self.max_age:
            self.scan()
        return self._by_path.get(os.path.realpath(path), [])

    @staticmethod
    def _lease_probe(path: os.PathLike[str] | str) -> bool | None:
        """True: open for writing somewhere; False: nowhere; None: this file cannot be asked."""
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return None  # never open a device or FIFO just to ask (opening one can act on it)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
        except OSError as exc:
            return True if exc.errno == errno.EAGAIN else None  # EACCES (not ours), EINVAL (no leases here)
        else:
            fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
            return False
        finally:
            os.close(fd)

    def scan(self) -> dict[str, list[Writer]]:
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
