"""Sources: which files of a folder chute takes (include/exclude globs, backfill) and how long
it keeps what it moved aside (retention specs).

The watcher asks :class:`Admission` about every path before it touches the ledger: a file that
matches no ``include`` (or matches an ``exclude``) is ignored, not quarantined, and named once
in the log. ``backfill`` decides what happens to the files already in a folder on chute's first
start there: ``all`` loads them, ``none`` skips them, ``since:<date>`` loads those modified on
or after the date. "Already there" is judged by ctime, which a rename or a write moves forward,
so a file moved in later is always taken, however old its mtime.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chute.core.routing import glob_matches

log = logging.getLogger("chute.sources")

BACKFILL_META = "backfill_start"  # ledger meta: when chute first watched the folder (the backfill cut-off)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_age(text: str) -> float:
    """``90d``, ``12h``, ``30m``, ``2w``, ``3600`` (seconds) -> seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not found:
        raise ValueError(f"{text!r} is not an age (e.g. 30d, 12h, 90m)")
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def parse_size(text: str) -> int:
    """``10GiB``, ``500MB``, ``1024`` (bytes) -> bytes."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b)?\s*", text.lower())
    if not found:
        raise ValueError(f"{text!r} is not a size (e.g. 500MB, 10GiB)")
    return int(float(found.group(1)) * _SIZES[found.group(2) or "b"])


@dataclass(frozen=True)
class Keep:
    """A retention spec: an age, a total size, or both ("30d", "10GiB", "30d 10GiB"); empty keeps all."""

    age: float | None = None
    size: int | None = None

    @classmethod
    def parse(cls, text: str) -> Keep:
        age = size = None
        joined = re.sub(r"(\d)\s+([A-Za-z])", r"\1\2", text)  # "10 GiB" as "10GiB"
        for word in joined.replace(",", " ").split():
            if re.fullmatch(r"\d+(?:\.\d+)?[smhdw]", word.lower()):  # a bare number is a size, as parse_size says
                age = parse_age(word)
            else:
                try:
                    size = parse_size(word)
                except ValueError:
                    raise ValueError(f"{text!r}: give an age (30d), a size (10GiB) or both ('30d 10GiB')") from None
        return cls(age, size)

    @property
    def unlimited(self) -> bool:
        return self.age is None and self.size is None


def parse_backfill(text: str) -> float | None:
    """``all`` -> None (no cut-off); ``none`` -> +inf (everything before the first start is skipped);
    ``since:2026-11-01`` -> that time (local unless the date carries an offset)."""
    word = text.strip().lower()
    if word == "all":
        return None
    if word == "none":
        return float("inf")
    if word.startswith("since:"):
        try:
            return datetime.fromisoformat(text.strip()[6:].strip()).timestamp()
        except ValueError:
            pass
    raise ValueError(f"backfill {text!r}: use \"all\", \"none\" or \"since:YYYY-MM-DD\"")


@dataclass(frozen=True)
class Source:
    """A TOML ``[[sources]]`` entry."""

    path: Path
    name: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    backfill: str = ""  # "": as the top-level backfill
    archive_keep: str = ""
    quarantine_keep: str = ""
    routes: tuple[Any, ...] = ()  # routing.Route, for files of this source (before the global routes)

    @classmethod
    def parse(cls, raw: dict) -> tuple[Source | None, list[str]]:
        """From a TOML table: (source, every problem found), each problem naming its key in quotes."""
        known = set(cls.__dataclass_fields__)
        problems = [f"unknown key {key!r}" for key in sorted(set(raw) - known)]
        if not isinstance(raw.get("path"), str) or not raw.get("path"):
            problems.append("missing key 'path' (the folder to watch)")
        data: dict[str, Any] = {k: v for k, v in raw.items() if k in known}
        for key in ("include", "exclude"):
            data[key] = _globs(key, data.get(key, []), problems)
        for key in ("name", "backfill", "archive_keep", "quarantine_keep"):
            if key in data and not isinstance(data[key], str):
                problems.append(f"'{key}' must be a string")
                data.pop(key)
        problems += _spec_problems(data)
        data["routes"] = _source_routes(data.get("routes", []), problems)
        if problems:
            return None, problems
        data["path"] = Path(data["path"]).expanduser().resolve()
        return cls(**data), []


def _globs(key: str, value: Any, problems: list[str]) -> tuple[str, ...]:
    """``include``/``exclude``: one glob or a list of them, relative to the folder."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"'{key}' must be a list of globs")
        return ()
    problems += [f"'{key}' glob {g!r}: globs are relative to the folder" for g in value if g.startswith("/")]
    return tuple(value)


def _spec_problems(data: dict[str, Any]) -> list[str]:
    """``backfill`` and the retention specs, parsed as the engine will."""
    out = []
    try:
        parse_backfill(data.get("backfill") or "all")
    except ValueError as exc:
        out.append(f"'backfill': {exc}")
    for key in ("archive_keep", "quarantine_keep"):
        try:
            Keep.parse(data.get(key, ""))
        except ValueError as exc:
            out.append(f"'{key}': {exc}")
    return out


def _source_routes(entries: Any, problems: list[str]) -> tuple[Any, ...]:
    """The entry's [[sources.routes]]: those without problems, parsed."""
    from chute.core.routing import Route

    if not isinstance(entries, list):
        problems.append("'routes' must be a list of [[sources.routes]] tables")
        return ()
    routes = []
    for i, entry in enumerate(entries, 1):
        found = Route.problems(entry) if isinstance(entry, dict) else ["not a table"]
        problems += [f"routes entry {i}: {message}" for message in found]
        if found:
            continue
        try:
            routes.append(Route.parse(entry))
        except (ValueError, TypeError) as exc:
            problems.append(f"routes entry {i}: {exc}")
    return tuple(routes)


class Admission:
    """Decides, before the ledger hears of it, whether a path of a folder is chute's to load."""

    def __init__(self, include: tuple[str, ...], exclude: tuple[str, ...], backfill: str,
                 start: float | None = None) -> None:
        self.include = include
        self.exclude = exclude
        self.since = parse_backfill(backfill)
        self.start = start  # first start in this folder (ledger meta); None: backfill does not apply
        self._told: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def for_watcher(cls, cfg: Any, ledger: Any, source: Source | None) -> Admission:
        """The include/exclude/backfill of ``source`` (of ``cfg`` for DATA_DIR without a [[sources]] entry);
        the first start in the folder is recorded in the ledger, once."""
        source = source or primary_source(cfg)
        primary = source is None or Path(source.path) == Path(cfg.data_dir)
        key = BACKFILL_META if primary else f"{BACKFILL_META}:{source.name}"  # type: ignore[union-attr]
        start = ledger.meta(key)
        if start is None:
            start = str(_fs_now(Path(ledger.path).parent))
            ledger.set_meta(key, start)
        if source is None:
            return cls(tuple(cfg.include), tuple(cfg.exclude), cfg.backfill, float(start))
        return cls(source.include or tuple(cfg.include), source.exclude + tuple(cfg.exclude),
                   source.backfill or cfg.backfill, float(start))

    def reason(self, rel: str, st: os.stat_result | None = None) -> str | None:
        """Why ``rel`` is not taken, or None when it is."""
        if self.include and not any(glob_matches(rel, g) for g in self.include):
            return "matches no include glob"
        for glob in self.exclude:
            if glob_matches(rel, glob):
                return f"excluded by {glob!r}"
        if self.since is not None and self.start is not None and st is not None:
            there_before = st.st_ctime < self.start  # ctime: a move-in or a write after the start is new
            if there_before and st.st_mtime < self.since:
                return ("already there at the first start (backfill = none)" if self.since == float("inf")
                        else "modified before the backfill date")
        return None

    def __call__(self, rel: str, st: os.stat_result | None = None) -> bool:
        why = self.reason(rel, st)
        if why is None:
            return True
        with self._lock:
            if rel in self._told:
                return False
            self._told.add(rel)
        log.info("ignoring %s: %s", rel, why, extra={"event": "ignored", "path": rel, "reason": why})
        return False


def _fs_now(folder: Path) -> float:
    """Now, by the clock file timestamps use (the kernel's coarse clock lags time.time() by up to a tick)."""
    probe = folder / f".backfill-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        return probe.stat().st_ctime
    except OSError:
        return time.time()
    finally:
        probe.unlink(missing_ok=True)


def primary_source(cfg: Any) -> Source | None:
    """The [[sources]] entry for DATA_DIR itself, if there is one."""
    return next((s for s in cfg.sources if Path(s.path) == Path(cfg.data_dir)), None)


def extra_sources(cfg: Any) -> list[Source]:
    """The [[sources]] folders besides DATA_DIR: each gets its own watcher."""
    return [s for s in cfg.sources if Path(s.path) != Path(cfg.data_dir)]
