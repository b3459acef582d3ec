"""Host probes for metrics and alerts: free disk of chute's folders, available memory.

Linux only (``/proc``, cgroups), no psutil: a few file reads per evaluation.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from chute.core.config import Config


@dataclass(frozen=True)
class Disk:
    folder: str  # data | state | engine
    path: str
    free: int  # bytes available to an unprivileged writer
    total: int

    @property
    def free_ratio(self) -> float:
        return self.free / self.total if self.total else 1.0


@dataclass(frozen=True)
class Memory:
    available: int
    limit: int
    scope: str  # host | cgroup

    @property
    def free_ratio(self) -> float:
        return self.available / self.limit if self.limit else 1.0


def folders(cfg: Config) -> dict[str, Path]:
    """The folders chute writes to: the data folder (archive, quarantine), the state dir, the embedded engine."""
    out = {"data": Path(cfg.data_dir), "state": Path(cfg.state_dir)}
    out.update({f"source {s.name}": Path(s.path) for s in cfg.sources if Path(s.path) != Path(cfg.data_dir)})
    if cfg.embedded:
        out["engine"] = cfg.engine_path()
    return out


def disks(cfg: Config) -> list[Disk]:
    out = []
    for name, path in folders(cfg).items():
        # The engine folder may not exist yet: measure the nearest existing parent.
        probe = path
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        try:
            usage = shutil.disk_usage(probe)
        except OSError:
            continue
        out.append(Disk(name, str(path), usage.free, usage.total))
    return out


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path: Path, *keys: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name in keys:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _host_memory(proc: Path) -> Memory | None:
    info: dict[str, int] = {}
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            info[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    if "MemTotal" not in info:
        return None
    return Memory(info.get("MemAvailable", info.get("MemFree", 0)), info["MemTotal"], "host")


def _cgroup_memory(proc: Path, cgroup: Path) -> Memory | None:
    """The tightest memory limit of this process's cgroup (v2, or v1 as mounted in a container).

    Usage leaves out inactive page cache, which the kernel reclaims before it kills anything:
    an ingest host reads a lot of files, and its cache alone must not look like exhaustion.
    """
    candidates: list[Path] = []
    try:
        for line in (proc / "self" / "cgroup").read_text().splitlines():
            if line.startswith("0::"):
                rel = line[3:].strip().lstrip("/")
                own = cgroup / rel if rel else cgroup
                candidates += [own, *[p for p in own.parents if p.is_relative_to(cgroup)]]
    except OSError:
        pass
    best: Memory | None = None
    for group in candidates:  # v2
        limit = _read_int(group / "memory.max")
        usage = _read_int(group / "memory.current")
        if limit is None or usage is None:
            continue
        usage -= _stat_value(group / "memory.stat", "inactive_file")
        if best is None or limit < best.limit:
            best = Memory(max(0, limit - usage), limit, "cgroup")
    v1 = cgroup / "memory"
    limit, usage = _read_int(v1 / "memory.limit_in_bytes"), _read_int(v1 / "memory.usage_in_bytes")
    if limit is not None and usage is not None and (best is None or limit < best.limit):
        usage -= _stat_value(v1 / "memory.stat", "total_inactive_file")
        best = Memory(max(0, limit - usage), limit, "cgroup")
    return best


def memory(proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup")) -> Memory | None:
    """Memory left for this process: the host's, or its cgroup's when that limit is tighter."""
    host = _host_memory(proc)
    group = _cgroup_memory(proc, cgroup)
    if group is not None and (host is None or group.limit < host.limit):
        return group
    return host


def ledger_bytes(ledger_path: Path) -> int:
    """The ledger database with its write-ahead log."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):  # no WAL between checkpoints is normal
            total += os.stat(f"{ledger_path}{suffix}").st_size
    return total
