"""Configuration: defaults < TOML file < CHUTE_* environment < command-line flags."""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from chute.core.errors import UsageError
from chute.core.routing import Route
from chute.core.sources import Keep, Source, parse_age, parse_backfill

APP = "chute"
SOURCE_MARK = "@"  # ledger paths of extra [[sources]] folders: "@NAME/inner/path"


def default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP))


def default_engine_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP)) / "clickhouse"


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "chute.toml"


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("data")
    state_dir: Path = field(default_factory=default_state_dir)
    clickhouse_url: str = ""  # empty: embedded chDB under the platformdirs data dir
    database: str = "default"
    password_file: Path | None = None
    # Rows per insert. Fixed in the ledger per file at its first attempt.
    batch_rows: int = 125_000
    # Adapt B per new file to insert latency and memory, starting at batch_rows (core/batch_size.py).
    batch_rows_adaptive: bool = False
    # B for a text file parsed whole in memory, while batch_rows is at its default: fewer, larger
    # inserts (core/batch_size.py own_rows). 0: batch_rows for every file.
    memory_batch_rows: int = 250_000
    # B for a text file too big to hold parsed (streamed), while batch_rows is at its default: at most
    # 32 MiB of its text a batch (at its mean row size), never below batch_rows (core/batch_size.py
    # own_rows). 0: batch_rows.
    stream_batch_rows: int = 500_000
    # Embedded engine: let ClickHouse read a file itself where that is proven to give the same values
    # (core/native.py); false: every file goes through polars and Arrow.
    native_read: bool = True
    # Insert threads per file; each has its own connection (chDB runs them in parallel too).
    insert_parallel: int = 2
    # Small files of one table share one insert under one token (core/groups.py): at most this many
    # files and rows per insert. group_max_files = 1: every file alone.
    group_max_files: int = 1000
    group_max_rows: int = 100_000
    settle_seconds: float = 2.0
    rescan_seconds: float = 30.0
    workers: int = 2
    # Attempts before a retryable failure stays `failed` for an operator.
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    # What happens to a source file once it is verified loaded: keep | archive | delete.
    after_load: str = "keep"
    require_approval: bool = False
    # Dedup window (blocks) set on the tables chute creates; must exceed blocks in flight.
    dedup_window: int = 100_000
    insert_timeout: float = 300.0
    connect_timeout: float = 10.0
    max_file_bytes: int = 0  # 0: no limit
    # Bounded memory (core/formats/limits.py): longest record, and decompressed/compressed size; 0: no limit.
    max_record_bytes: int = 64 << 20
    max_decompression_ratio: int = 100
    log_format: str = "auto"  # auto | text | json
    log_level: str = "info"
    # Prometheus /metrics at HOST:PORT (core/metrics.py); empty: off; a bare port binds loopback only.
    metrics_addr: str = ""
    # Alert thresholds (core/alerts.py).
    alert_error_rate: float = 0.05  # share of load attempts failing over 15 min (critical)
    alert_oldest_waiting_seconds: float = 600.0  # a file waiting longer (warning)
    alert_disk_free_ratio: float = 0.05  # free share of a folder's filesystem (critical below)
    alert_memory_free_ratio: float = 0.05  # available share of the memory limit (critical below)
    # ClickHouse cluster: tables made ON CLUSTER with Replicated engines; empty: one server.
    cluster: str = ""
    # Notifications (core/notify.py): apprise URLs; a daily summary at HH:MM local time ("" off);
    # at most one message per alert per notify_min_interval seconds, notify_max_per_hour overall.
    notify: tuple[str, ...] = ()
    notify_summary_at: str = "08:00"
    notify_min_interval: float = 300.0
    notify_max_per_hour: int = 30
    # Which files of DATA_DIR are taken (core/sources.py); [[sources]] entries carry their own.
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    backfill: str = "all"  # all | none | since:YYYY-MM-DD: files already there on the first start
    # Retention (core/gc.py): "30d", "10GiB" or "30d 10GiB"; "" keeps everything. gc runs daily at gc_at.
    archive_keep: str = ""
    quarantine_keep: str = ""
    ledger_keep: str = ""
    gc_at: str = "03:30"
    # Fleet (core/fleet.py): mirror this host's file states and heartbeat to `_chute_*` tables in the
    # target database, and poll `_chute_commands` there; one setting turns it all off.
    fleet_mirror: bool = True
    fleet_host: str = ""  # this chute's name in the fleet; empty: the machine's host name
    fleet_interval: float = 2.0  # seconds between mirror flushes, heartbeats and command polls
    fleet_stale_seconds: float = 30.0  # a host whose last heartbeat is older is flagged stale
    dedup_scope: str = "host"  # duplicate = same sha256 loaded on this host | by any host of the fleet
    routes: tuple[Route, ...] = ()
    sources: tuple[Source, ...] = ()

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "_quarantine"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "_archive"

    # -- several folders ([[sources]], core/sources.py) ------------------------------------
    # A file of an extra source is known to the ledger (and to ClickHouse's _source_path) as
    # "@NAME/path-in-that-folder"; files of DATA_DIR keep their plain relative path (docs/CONTRACTS.md#where-rows-go).

    def split(self, rel: str) -> tuple[Path, str, str]:
        """A ledger path -> (its folder, its "@NAME/" prefix or "", the path inside the folder)."""
        if rel.startswith(SOURCE_MARK):
            name, _, inner = rel[1:].partition("/")
            for source in self.sources:
                if source.name == name and Path(source.path) != Path(self.data_dir):
                    return Path(source.path), f"{SOURCE_MARK}{name}/", inner
        return Path(self.data_dir), "", rel

    @property
    def every_route(self) -> tuple[Route, ...]:
        """Table options come from any route naming the table: the [[sources]] ones first."""
        return tuple(r for s in self.sources for r in s.routes) + self.routes

    def locate(self, rel: str) -> Path:
        """Where a ledger path (a file, or a moved_to) is on disk."""
        root, _, inner = self.split(rel)
        return root / inner

    def aside(self, folder: str, rel: str) -> Path:
        """Where a file of ``rel``'s folder goes in its own _archive/ or _quarantine/ (``folder``)."""
        root, _, inner = self.split(rel)
        return root / folder / inner

    def ledger_path(self, path: Path, like: str) -> str:
        """``path`` (inside the folder of ledger path ``like``) as a ledger path."""
        root, prefix, _ = self.split(like)
        return prefix + Path(path).relative_to(root).as_posix()

    @property
    def embedded(self) -> bool:
        return not self.clickhouse_url or self.clickhouse_url.startswith("chdb:")

    def engine_path(self) -> Path:
        """The chDB directory for the embedded engine."""
        if not self.clickhouse_url:
            return default_engine_dir()
        parts = urlsplit(self.clickhouse_url)
        return Path(parts.netloc + parts.path if parts.netloc else parts.path)

    def password(self) -> str:
        """From CHUTE_CLICKHOUSE_PASSWORD or password_file; never argv."""
        env = os.environ.get("CHUTE_CLICKHOUSE_PASSWORD")
        if env is not None:
            return env
        if self.password_file:
            try:
                return self.password_file.read_text().strip()
            except OSError as exc:
                raise UsageError(f"cannot read password file {self.password_file}: {exc.strerror}") from None
        return ""

    def masked_url(self) -> str:
        return mask_url(self.clickhouse_url) if self.clickhouse_url else f"chdb://{default_engine_dir()}"


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def validate_url(url: str) -> None:
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        if not (parts.netloc + parts.path).startswith("/"):
            raise UsageError(f"bad ClickHouse URL {url!r}: use chdb:///absolute/path")
        return
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"bad ClickHouse URL {url!r}: expected chdb:///path, http://host:port or https://host:port")
    if not parts.hostname:
        raise UsageError(f"bad ClickHouse URL {url!r}: no host")
    if parts.password is not None:
        raise UsageError("put the ClickHouse password in CHUTE_CLICKHOUSE_PASSWORD or a password file, not in the URL")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError:
        raise UsageError(f"bad ClickHouse URL {url!r}: port is not a number") from None


# Every option but the [[routes]] list can come from the environment: CHUTE_<KEY>, e.g. CHUTE_BATCH_ROWS.
ENV_PREFIX = "CHUTE_"
LISTS = ("routes", "sources")  # TOML arrays of tables: file only
_ENV = {ENV_PREFIX + f.name.upper(): f.name for f in fields(Config) if f.name not in LISTS}
_KINDS = {f.name: str(f.type) for f in fields(Config)}
_KIND_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string",
               "Path": "a path", "Path | None": "a path", "tuple[str, ...]": "a list of strings"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(UsageError):
    """A bad configuration value. ``key`` names the option, ``line`` its line in the TOML file."""

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.line = line


def _unknown(name: str) -> ConfigError:
    close = difflib.get_close_matches(name, [k for k in _KINDS if k not in LISTS], n=1)
    return ConfigError(f"unknown key {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""), key=name)


def _coerce(name: str, value: Any, strict: bool = False) -> Any:
    """Convert ``value`` to the option's type. ``strict`` (TOML): the value must already have that type,
    so ``workers = "2"``, ``workers = true`` or ``batch_rows = 1.5`` are reported, not guessed at."""
    kind = _KINDS.get(name)
    if kind is None or name in LISTS:
        raise _unknown(name)
    bad = ConfigError(f"{name}: {value!r} is not {_KIND_WORDS.get(kind, kind)}", key=name)
    try:
        if kind == "tuple[str, ...]":
            return _to_strings(value, split=not strict)
        if strict and not _TOML_TYPES.get(kind, _is_str)(value):
            raise bad
        convert = _CONVERTERS.get(kind)
        return value if convert is None else convert(value)
    except (TypeError, ValueError):
        raise bad from None


def _to_strings(value: Any, split: bool) -> tuple[str, ...]:
    """TOML: a list of strings; environment and flags (``split``): also one comma-separated string."""
    if isinstance(value, str) and split:
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(value)


def _to_bool(value: Any) -> bool:
    if not isinstance(value, str):
        return bool(value)
    word = value.strip().lower()
    if word not in _TRUE + _FALSE:
        raise ValueError(value)
    return word in _TRUE


def _to_path(value: Any) -> Path | None:
    return Path(value).expanduser() if value not in (None, "") else None


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)  # (bool is an int in Python)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


# By the option's type: how a value converts, and (TOML) which values already have that type.
_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "Path": _to_path, "Path | None": _to_path, "int": int, "float": float, "bool": _to_bool, "str": str}
_TOML_TYPES: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: _is_num(v) and isinstance(v, int), "float": _is_num, "bool": lambda v: isinstance(v, bool)}


def _toml_line(exc: tomllib.TOMLDecodeError) -> int | None:
    line = getattr(exc, "lineno", None)  # Python 3.14+; before that only in the message
    if line is None:
        found = re.search(r"line (\d+)", str(exc))
        line = int(found.group(1)) if found else None
    return line


def key_line(text: str, key: str | None, route: int | None = None, array: str = "routes") -> int | None:
    """The line where ``key`` is set: at the top level, or in the ``route``-th [[array]] entry (1-based).
    An entry's header line when the key is not written in it (e.g. a missing key)."""
    table: str | None = None
    seen_routes = 0
    header = None
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            table = stripped.strip("[] ").split("]")[0].strip()
            if stripped.startswith("[[") and table == array:
                seen_routes += 1
                if seen_routes == route:
                    header = n
            elif route is None and key is not None and table == key:
                return n  # an unknown [table]
            continue
        found = re.match(r"""\s*["']?([A-Za-z0-9_-]+)["']?\s*[=.]""", line)
        if not found or found.group(1) != key:
            continue
        if route is None and table is None:
            return n
        if route is not None and table == array and seen_routes == route:
            return n
    return header


def _located(path: Path, line: int | None, message: str) -> str:
    return f"config file {path}" + (f", line {line}" if line else "") + f": {message}"


def read_file(path: Path) -> tuple[dict[str, Any], list[ConfigError]]:
    """The values a TOML file sets, and every problem in it, each naming its line and key."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; a binary or Latin-1 file is the user's to fix
        at = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError(_located(path, at, f"not UTF-8 text (byte {exc.start + 1}); TOML files are UTF-8"),
                          line=at) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_line(exc)
        return {}, [ConfigError(_located(path, line, f"TOML syntax error: {exc}"), line=line)]
    values: dict[str, Any] = {}
    problems: list[ConfigError] = []

    def problem(message: str, key: str | None, route: int | None = None, array: str = "routes") -> None:
        line = key_line(text, key, route, array)
        problems.append(ConfigError(_located(path, line, message), key=key, line=line))

    routes = raw.pop("routes", [])
    sources = raw.pop("sources", [])
    for key, value in raw.items():
        try:
            values[key] = _coerce(key, value, strict=True)
        except ConfigError as exc:
            problem(str(exc), key)
    if not isinstance(routes, list):
        problem("routes must be a list of [[routes]] tables", "routes")
        routes = []
    parsed = []
    for i, entry in enumerate(routes, 1):
        found = Route.problems(entry) if isinstance(entry, dict) else ["not a table"]
        for message in found:  # every problem of the entry, not only the first
            named = re.search(r"'(\w+)'", message)
            problem(f"[[routes]] entry {i}: {message}", named.group(1) if named else None, route=i)
        if not found:
            parsed.append(Route.parse(entry))
    values["routes"] = tuple(parsed)
    if not isinstance(sources, list):
        problem("sources must be a list of [[sources]] tables", "sources")
        sources = []
    taken = []
    for i, entry in enumerate(sources, 1):
        source, found = Source.parse(entry) if isinstance(entry, dict) else (None, ["not a table"])
        for message in found:
            named = re.search(r"'(\w+)'", message)
            problem(f"[[sources]] entry {i}: {message}", named.group(1) if named else None, route=i, array="sources")
        if source is not None:
            taken.append(source)
    values["sources"] = tuple(taken)
    return values, problems


def config_path(config_file: Path | None) -> Path | None:
    """The file to read: the one given, else the default one when it exists."""
    if config_file is not None:
        return Path(config_file)
    return default_config_file() if default_config_file().is_file() else None


def load(config_file: Path | None, overrides: dict[str, Any]) -> Config:
    """Build the effective configuration. ``overrides`` are command-line values (None = not given)."""
    return load_with_sources(config_file, overrides)[0]


def load_with_sources(config_file: Path | None, overrides: dict[str, Any]) -> tuple[Config, dict[str, str]]:
    """The effective configuration and where each non-default value came from (file, env, flag)."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config_path(config_file)
    text = ""
    if path is not None:
        from_file, problems = read_file(path)
        if problems:
            raise problems[0]
        text = path.read_text()
        values.update(from_file)
        sources.update({k: f"file {path}" for k in from_file if k not in LISTS or from_file[k]})
    for env, name in _ENV.items():
        if env in os.environ:
            try:
                values[name] = _coerce(name, os.environ[env])
            except ConfigError as exc:
                raise ConfigError(f"environment {env}: {exc}", key=name) from None
            sources[name] = f"env {env}"
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value)
            sources[name] = "flag"
    for key in _batch_rows_for_every_file(values):
        sources[key] = "off: batch_rows is set"  # (not "default": its default is not 0)
    if values.get("sources") and "data_dir" not in values:
        values["data_dir"] = values["sources"][0].path  # [[sources]] alone: the first is DATA_DIR
    cfg = replace(Config(), **values)
    for key, message in config_problems(cfg):
        where = sources.get(key, "")
        if where.startswith("file ") and path is not None:
            line = key_line(text, key)
            raise ConfigError(_located(path, line, message), key=key, line=line)
        raise ConfigError(message + (f" ({where.split()[1]})" if where.startswith("env ") else ""), key=key)
    return cfg, sources


def parse_hostport(addr: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[V6]:PORT``. Without a host: ``default_host`` (loopback)."""
    host, sep, port = addr.strip().rpartition(":")
    if not sep:
        host, port = "", addr.strip()
    host = host.strip("[]") or default_host
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{addr!r}: expected HOST:PORT (e.g. 127.0.0.1:9464)")
    return host, int(port)


def config_problems(cfg: Config) -> list[tuple[str, str]]:
    """Values of the right type that are still wrong: (key, message), messages starting with the key."""
    out: list[tuple[str, str]] = []

    def need(ok: bool, key: str, message: str) -> None:
        if not ok:
            out.append((key, message))

    try:
        validate_url(cfg.clickhouse_url)
    except UsageError as exc:
        out.append(("clickhouse_url", str(exc)))
    need(bool(cfg.database), "database", "database must not be empty")
    need(1 <= cfg.batch_rows <= 1_000_000, "batch_rows",
         "batch_rows must be between 1 and 1000000 (below max_insert_block_size)")
    for key in ("memory_batch_rows", "stream_batch_rows"):
        need(0 <= getattr(cfg, key) <= 1_000_000, key,
             f"{key} must be between 0 (off) and 1000000 (below max_insert_block_size)")
    need(cfg.insert_parallel >= 1, "insert_parallel", "insert_parallel must be at least 1")
    need(cfg.group_max_files >= 1, "group_max_files", "group_max_files must be at least 1 (1: no groups)")
    need(1 <= cfg.group_max_rows <= 1_000_000, "group_max_rows",
         "group_max_rows must be between 1 and 1000000 (below max_insert_block_size)")
    need(cfg.settle_seconds >= 0, "settle_seconds", "settle_seconds must not be negative")
    need(cfg.rescan_seconds > 0, "rescan_seconds", "rescan_seconds must be more than 0")
    need(cfg.workers >= 1, "workers", "workers must be at least 1")
    need(cfg.max_attempts >= 1, "max_attempts", "max_attempts must be at least 1")
    need(cfg.backoff_base > 0, "backoff_base", "backoff_base must be more than 0")
    need(cfg.backoff_max >= cfg.backoff_base, "backoff_max", "backoff_max must be at least backoff_base")
    need(cfg.after_load in ("keep", "archive", "delete"), "after_load", "after_load must be keep, archive or delete")
    need(cfg.dedup_window >= 1, "dedup_window", "dedup_window must be at least 1")
    need(cfg.insert_timeout > 0, "insert_timeout", "insert_timeout must be more than 0")
    need(cfg.connect_timeout > 0, "connect_timeout", "connect_timeout must be more than 0")
    need(cfg.max_record_bytes >= 0, "max_record_bytes", "max_record_bytes must not be negative (0: no limit)")
    need(cfg.max_decompression_ratio >= 0, "max_decompression_ratio",
         "max_decompression_ratio must not be negative (0: no limit)")
    need(cfg.max_file_bytes >= 0, "max_file_bytes", "max_file_bytes must not be negative (0: no limit)")
    need(cfg.log_format in ("auto", "text", "json"), "log_format", "log_format must be auto, text or json")
    need(cfg.log_level in LOG_LEVELS, "log_level", f"log_level must be one of {', '.join(LOG_LEVELS)}")
    if cfg.metrics_addr:
        try:
            parse_hostport(cfg.metrics_addr)
        except ValueError as exc:
            out.append(("metrics_addr", f"metrics_addr {exc}"))
    need(0 < cfg.alert_error_rate <= 1, "alert_error_rate", "alert_error_rate must be in (0, 1], e.g. 0.05")
    need(cfg.alert_oldest_waiting_seconds > 0, "alert_oldest_waiting_seconds",
         "alert_oldest_waiting_seconds must be more than 0")
    need(0 <= cfg.alert_disk_free_ratio < 1, "alert_disk_free_ratio", "alert_disk_free_ratio must be in [0, 1)")
    need(0 <= cfg.alert_memory_free_ratio < 1, "alert_memory_free_ratio",
         "alert_memory_free_ratio must be in [0, 1)")
    need(not cfg.cluster or re.fullmatch(r"[A-Za-z0-9_.-]+", cfg.cluster) is not None, "cluster",
         f"cluster {cfg.cluster!r}: a cluster name from the server's remote_servers (letters, digits, _ . -)")
    out += ops_problems(cfg)
    need(cfg.fleet_interval > 0, "fleet_interval", "fleet_interval must be more than 0")
    need(cfg.fleet_stale_seconds > cfg.fleet_interval, "fleet_stale_seconds",
         "fleet_stale_seconds must be more than fleet_interval")
    need(cfg.dedup_scope in ("host", "fleet"), "dedup_scope", "dedup_scope must be host or fleet")
    need(cfg.dedup_scope == "host" or cfg.fleet_mirror, "dedup_scope",
         "dedup_scope = fleet needs fleet_mirror = true (the fleet's loaded files are found there)")
    return out


def _clock(text: str) -> bool:
    return not text or re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", text) is not None


def ops_problems(cfg: Config) -> list[tuple[str, str]]:
    """Notifications, sources, retention (issue 13)."""
    return [*_notify_problems(cfg), *_glob_problems(cfg), *_retention_problems(cfg), *_source_problems(cfg)]


def _notify_problems(cfg: Config) -> list[tuple[str, str]]:
    out = [(key, f"{key} {getattr(cfg, key)!r}: a local time HH:MM, or \"\" for never")
           for key in ("notify_summary_at", "gc_at") if not _clock(getattr(cfg, key))]
    if cfg.notify_min_interval < 0:
        out.append(("notify_min_interval", "notify_min_interval must not be negative"))
    if cfg.notify_max_per_hour < 1:
        out.append(("notify_max_per_hour", "notify_max_per_hour must be at least 1"))
    out += [("notify", f"notify {url!r}: an apprise URL such as slack://..., mailto://..., json://host:port/path")
            for url in cfg.notify if "://" not in url]
    return out


def _glob_problems(cfg: Config) -> list[tuple[str, str]]:
    return [(key, f"{key} glob {glob!r}: globs are relative to the folder (e.g. \"*.csv\")")
            for key in ("include", "exclude") for glob in getattr(cfg, key) if glob.startswith(("/", "~"))]


def _retention_problems(cfg: Config) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    try:
        parse_backfill(cfg.backfill)
    except ValueError as exc:
        out.append(("backfill", str(exc)))
    for key in ("archive_keep", "quarantine_keep"):
        try:
            Keep.parse(getattr(cfg, key))
        except ValueError as exc:
            out.append((key, f"{key}: {exc}"))
    if cfg.ledger_keep:
        try:
            if parse_age(cfg.ledger_keep) < 86400:
                out.append(("ledger_keep", "ledger_keep must be at least 1d (alerts read the last 24 h of events)"))
        except ValueError as exc:
            out.append(("ledger_keep", f"ledger_keep: {exc}"))
    return out


def _source_problems(cfg: Config) -> list[tuple[str, str]]:
    """[[sources]] besides DATA_DIR: each named, and no folder watched twice (or inside DATA_DIR)."""
    data = Path(cfg.data_dir).resolve()
    others = [s for s in cfg.sources if Path(s.path) != data]  # DATA_DIR's own entry: filters, routes, retention
    out = [problem for source in others if (problem := _source_name_problem(source, data))]
    names = [s.name for s in others]
    if len(set(names)) != len(names):
        out.append(("sources", "[[sources]] entries need distinct names"))
    for i, one in enumerate(others):  # one folder under two names: every file read twice, moved under the other
        for two in others[i + 1:]:
            a, b = Path(one.path), Path(two.path)
            if a.is_relative_to(b) or b.is_relative_to(a):
                out.append(("sources", f"[[sources]] {one.name!r} ({a}) and {two.name!r} ({b}) overlap: "
                                       "each folder may be watched once"))
    return out


def _source_name_problem(source: Source, data: Path) -> tuple[str, str] | None:
    where = Path(source.path)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", source.name):
        return ("sources", f"[[sources]] {where}: needs a name of lower-case letters, digits, _ or - "
                           "(its files are known as @NAME/... in the ledger)")
    if where.is_relative_to(data) or data.is_relative_to(where):
        return ("sources", f"[[sources]] {source.name!r}: {where} overlaps the data folder {data}")
    return None


def _batch_rows_for_every_file(values: dict[str, Any]) -> list[str]:
    """An operator's batch_rows, whatever its value (the default's too), is every file's B: the
    sizes of its own a text file would get are off unless set as well. Returns the keys turned off."""
    off = [key for key in ("memory_batch_rows", "stream_batch_rows") if "batch_rows" in values and key not in values]
    values.update(dict.fromkeys(off, 0))
    return off


def check_file(path: Path) -> list[ConfigError]:
    """Every problem of a TOML file on its own (defaults < file), each with its line and key."""
    values, problems = read_file(path)
    text = Path(path).read_text()
    _batch_rows_for_every_file(values)
    if values.get("sources") and "data_dir" not in values:
        values["data_dir"] = values["sources"][0].path
    cfg = replace(Config(), **values)  # the keys that parsed: their values can still be out of range
    found = config_problems(cfg)
    for key, message in found:
        if key in values:
            line = key_line(text, key)
            problems.append(ConfigError(_located(path, line, message), key=key, line=line))
    if "notify" in values and not any(key == "notify" for key, _ in found):
        from chute.core.notify import url_problem  # imports apprise: only when checking a file

        for message in filter(None, map(url_problem, cfg.notify)):
            problems.append(ConfigError(_located(path, key_line(text, "notify"), message), key="notify"))
    return sorted(problems, key=lambda p: p.line or 0)


# -- `chute config`: the effective configuration as TOML --------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, tuple | list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return _toml_value(dict(value))  # pairs (a route's column types) are a table
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def dump(cfg: Config, sources: dict[str, str] | None = None) -> str:
    """The configuration as a TOML file that ``--config`` reads back; secrets masked, sources as comments."""
    sources = sources or {}
    lines = ["# chute: effective configuration (defaults < config file < CHUTE_* environment < flags)"]
    lines += [_option_line(cfg, f.name, sources.get(f.name, "default")) for f in fields(Config) if f.name not in LISTS]
    lines.append(_password_note(cfg))
    for route in cfg.routes:
        lines += ["", "[[routes]]", *_table_lines(route)]
    for source in cfg.sources:
        lines += ["", "[[sources]]", *_table_lines(source, skip="routes")]
        for route in source.routes:
            lines += ["[[sources.routes]]", *_table_lines(route)]
    return "\n".join(lines) + "\n"


def _option_line(cfg: Config, name: str, note: str) -> str:
    """``name = value  # where it came from``; the URL and notify URLs with their passwords masked."""
    value = getattr(cfg, name)
    if name == "clickhouse_url":
        value = mask_url(value) if value else ""
        if not value:
            note += f"; embedded chDB at {default_engine_dir()}"
    if name == "notify" and any(mask_url(url) != url for url in value):  # mailto://bob:PASSWORD@...
        value = tuple(mask_url(url) for url in value)
        note += "; passwords masked"
    if value is None:
        return f"# {name} = (not set)"
    return f"{name} = {_toml_value(value)}  # {note}"


def _password_note(cfg: Config) -> str:
    if os.environ.get("CHUTE_CLICKHOUSE_PASSWORD") is not None:
        return "# password: set in CHUTE_CLICKHOUSE_PASSWORD (not shown)"
    if cfg.password_file:
        return f"# password: read from {cfg.password_file} (not shown)"
    return "# password: none"


def _table_lines(entry: Route | Source, skip: str = "") -> list[str]:
    """A [[routes]] or [[sources]] entry's keys that differ from the defaults (None: not set)."""
    lines = []
    for f in fields(entry):
        value = getattr(entry, f.name)
        if f.name != skip and value is not None and value != f.default:
            lines.append(f"{_toml_key(f.name)} = {_toml_value(value)}")
    return lines
