"""Which files are ours, which table they go to, and in what format (DESIGN section 2)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson",
           ".json": "ndjson", ".parquet": "parquet"}
IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", ".swp")
# chute's own folders under DATA_DIR; their names start with "_" so they are ignored anyway.
OWN_DIRS = frozenset({"_quarantine", "_archive"})

# A trailing date or sequence token: events_2026-11-28, orders-0001, log.20261128, x_2026_11_28T10-00
_TRAILING_TOKEN = re.compile(
    r"[._-]+(?:\d{4}[-_]?\d{2}[-_]?\d{2}(?:[tT_ -]?\d{2}[-_:]?\d{2}(?:[-_:]?\d{2})?)?|\d+)$"
)
_BAD_CHARS = re.compile(r"[^a-z0-9_]")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Route:
    """A TOML ``[[routes]]`` entry: files matching ``glob`` (relative to DATA_DIR) go to ``table``."""

    glob: str
    table: str


def is_ignored(rel: str) -> bool:
    """True for temp/partial/hidden files and chute's own folders (any path component)."""
    parts = PurePosixPath(rel).parts
    if not parts:
        return True
    if parts[0] in OWN_DIRS:
        return True
    for part in parts:
        if part.startswith((".", "_", "~")):
            return True
    return parts[-1].lower().endswith(IGNORED_SUFFIXES)


def split_suffixes(name: str) -> tuple[str, str | None, str | None]:
    """``orders-0001.csv.gz`` -> (``orders-0001``, ``csv``, ``gzip``)."""
    stem, compression, fmt = name, None, None
    low = stem.lower()
    for suffix, comp in COMPRESSIONS.items():
        if low.endswith(suffix):
            compression, stem = comp, stem[: -len(suffix)]
            break
    low = stem.lower()
    for suffix, kind in FORMATS.items():
        if low.endswith(suffix):
            fmt, stem = kind, stem[: -len(suffix)]
            break
    return stem, fmt, compression


def sanitize(name: str) -> str:
    """Lower-case, ``[a-z0-9_]`` only, a leading digit gets ``t_``; never empty."""
    out = _BAD_CHARS.sub("_", name.lower())
    if not out:
        out = "t_"
    if out[0].isdigit():
        out = "t_" + out
    return out


def table_for(rel: str, routes: list[Route] | tuple[Route, ...] = ()) -> str:
    """The table a file (path relative to DATA_DIR, POSIX separators) loads into."""
    for route in routes:
        if fnmatch.fnmatchcase(rel, route.glob):
            return sanitize(route.table)
    parts = PurePosixPath(rel).parts
    if len(parts) > 1:
        return sanitize(parts[0])
    stem, _, _ = split_suffixes(parts[0])
    match = _TRAILING_TOKEN.search(stem)
    # Only trim when a name is left: `2026-11-28.csv` keeps its whole stem.
    if match and _LETTER.search(stem[: match.start()]):
        stem = stem[: match.start()]
    return sanitize(stem)


def format_of(rel: str) -> tuple[str | None, str | None]:
    """(format, compression) from the file name; format None when unknown."""
    _, fmt, compression = split_suffixes(PurePosixPath(rel).name)
    return fmt, compression
