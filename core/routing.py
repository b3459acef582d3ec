"""Which files are ours, which table they go to, and in what format (docs/CONTRACTS.md#where-rows-go)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
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
# chute's own tables in the target database (core/fleet.py): never a data table.
RESERVED_PREFIX = "_chute_"
_BAD_CHARS = re.compile(r"[^a-z0-9_]")
_LETTER = re.compile(r"[^\W\d_]")


DRIFT_POLICIES = ("hold", "evolve", "freeze")
BAD_ROW_POLICIES = ("quarantine", "skip")
GROWING_POLICIES = ("append", "hold")


@dataclass(frozen=True)
class Route:
    """A TOML ``[[routes]]`` entry: files matching ``glob`` (relative to DATA_DIR) go to ``table``,
    with that table's options. An entry without ``glob`` only sets options for ``table``."""

    table: str
    glob: str | None = None
    columns: tuple[tuple[str, str], ...] = ()  # explicit ClickHouse types by column name
    order_by: str | None = None
    key: tuple[str, ...] = ()  # record-level dedup: ReplacingMergeTree ORDER BY key
    skip_existing_keys: bool = False  # anti-join against keys already in the table
    drift: str = "hold"  # new columns: hold for an operator | evolve (ALTER ADD) | freeze (quarantine)
    on_bad_rows: str = "quarantine"  # values that do not fit: quarantine the file | skip the rows
    delimiter: str | None = None  # CSV: sniffed when not set
    header: bool | None = None  # CSV: detected when not set
    # A file is complete only once its done-marker exists (not older than the file): ".ok"
    # (a suffix: x.csv.ok beside x.csv) or "_SUCCESS" (a name: one file in the folder).
    done_marker: str | None = None
    # A new version that starts with a loaded one's exact bytes: load the appended records
    # ("append") or hold it for an operator like any changed content ("hold").
    growing: str = "append"
    null_values: tuple[str, ...] | None = None  # NULL in typed text columns (None: infer.DEFAULT_NULL_VALUES)

    @classmethod
    def parse(cls, raw: dict) -> Route:
        """From a TOML table; raises ValueError naming the (first) bad key."""
        problems = cls.problems(raw)
        if problems:
            raise ValueError(problems[0])
        data = dict(raw)
        data["columns"] = tuple((str(k), str(v)) for k, v in data.get("columns", {}).items())
        key = data.get("key", ())
        data["key"] = (key,) if isinstance(key, str) else tuple(str(k) for k in key)
        if "null_values" in data:
            data["null_values"] = tuple(data["null_values"])
        return cls(**data)

    @classmethod
    def problems(cls, raw: dict) -> list[str]:
        """Every problem of a TOML table, each naming its key in quotes (`config --check` lists them all)."""
        out = [f"unknown key {k!r}" for k in sorted(set(raw) - set(cls.__dataclass_fields__))]
        if "table" not in raw:
            out.append("missing key 'table'")
        elif not isinstance(raw["table"], str) or not raw["table"]:
            out.append("'table' must be a table name (a string)")
        return out + [message for ok, message in _ROUTE_RULES if not ok(raw)]


def _one_of(key: str, allowed: tuple[str, ...]) -> tuple[Callable[[dict], bool], str]:
    return (lambda raw: raw.get(key, allowed[0]) in allowed), f"'{key}' must be one of {', '.join(allowed)}"


def _key_columns(raw: dict) -> tuple:
    key = raw.get("key", ())
    return (key,) if isinstance(key, str) else tuple(key) if isinstance(key, list | tuple) else ()


def _marker_ok(marker: object) -> bool:
    return marker is None or (isinstance(marker, str) and marker not in ("", ".") and "/" not in marker)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# A [[routes]] table's checks past its keys and `table`, in the order `config --check` reports them:
# (a test the raw TOML table must pass, the problem when it does not).
_ROUTE_RULES: tuple[tuple[Callable[[dict], bool], str], ...] = (
    (lambda raw: isinstance(raw.get("glob", ""), str), "'glob' must be a string (a glob relative to the data folder)"),
    (lambda raw: isinstance(raw.get("columns", {}), dict), "'columns' must be a table of column = \"ClickHouse type\""),
    _one_of("drift", DRIFT_POLICIES),
    _one_of("on_bad_rows", BAD_ROW_POLICIES),
    (lambda raw: not raw.get("skip_existing_keys") or len(_key_columns(raw)) == 1,
     "'skip_existing_keys' needs a one-column 'key'"),
    (lambda raw: raw.get("delimiter") is None or len(str(raw["delimiter"])) == 1, "'delimiter' must be one character"),
    (lambda raw: _marker_ok(raw.get("done_marker")),
     "'done_marker' must be a suffix like \".ok\" or a file name like \"_SUCCESS\""),
    _one_of("growing", GROWING_POLICIES),
    (lambda raw: _strings(raw.get("null_values", [])), "'null_values' must be a list of strings"),
)


def options_for(table: str, routes: tuple[Route, ...] | list[Route]) -> Route:
    """The options of ``table``: the first route naming it, or the defaults."""
    for route in routes:
        if sanitize(route.table) == table:
            return route
    return Route(table=table)


def reader_options(route: Route, fmt: str | None) -> dict:
    """What a route tells the format reader (core/formats)."""
    out: dict = {"null_values": route.null_values}
    if fmt in ("csv", "tsv"):
        out.update(delimiter=route.delimiter, header=route.header)
    return out


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
    if out.startswith(RESERVED_PREFIX):  # `-chute-files.csv` must not load into the fleet's own tables
        out = "t" + out
    return out


def glob_matches(rel: str, glob: str) -> bool:
    """fnmatch, where ``*`` crosses folders; ``./x`` means ``x`` and ``**/x`` also matches ``x`` at the
    top (as in .gitignore: plain fnmatch wants the slash, so top-level files never matched)."""
    glob = glob.removeprefix("./")
    return fnmatch.fnmatchcase(rel, glob) or (glob.startswith("**/") and fnmatch.fnmatchcase(rel, glob[3:]))


def table_for(rel: str, routes: list[Route] | tuple[Route, ...] = ()) -> str:
    """The table a file (path relative to DATA_DIR, POSIX separators) loads into."""
    for route in routes:
        if route.glob and glob_matches(rel, route.glob):
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
