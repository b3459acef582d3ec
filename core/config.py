"""Configuration: defaults < TOML file < CHUTE_* environment < command-line flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from core.errors import UsageError
from core.routing import Route

APP = "chute"


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
    batch_rows: int = 200_000
    # Insert threads per file; each has its own connection (chDB runs them in parallel too).
    insert_parallel: int = 2
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
    log_format: str = "auto"  # auto | text | json
    log_level: str = "info"
    routes: tuple[Route, ...] = ()

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "_quarantine"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "_archive"

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


_ENV = {
    "CHUTE_CLICKHOUSE_URL": "clickhouse_url",
    "CHUTE_STATE_DIR": "state_dir",
    "CHUTE_DATABASE": "database",
    "CHUTE_BATCH_ROWS": "batch_rows",
    "CHUTE_SETTLE_SECONDS": "settle_seconds",
    "CHUTE_RESCAN_SECONDS": "rescan_seconds",
    "CHUTE_WORKERS": "workers",
    "CHUTE_INSERT_PARALLEL": "insert_parallel",
    "CHUTE_MAX_ATTEMPTS": "max_attempts",
    "CHUTE_AFTER_LOAD": "after_load",
    "CHUTE_LOG_FORMAT": "log_format",
    "CHUTE_LOG_LEVEL": "log_level",
    "CHUTE_PASSWORD_FILE": "password_file",
}


def _coerce(name: str, value: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Config)}
    kind = kinds.get(name)
    if kind is None:
        raise UsageError(f"unknown configuration key {name!r}")
    try:
        if kind in ("Path", "Path | None"):
            return Path(value).expanduser() if value not in (None, "") else None
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind == "str":
            return str(value)
    except (TypeError, ValueError):
        raise UsageError(f"configuration key {name!r}: {value!r} is not a valid {kind}") from None
    return value


def load(config_file: Path | None, overrides: dict[str, Any]) -> Config:
    """Build the effective configuration. ``overrides`` are command-line values (None = not given)."""
    values: dict[str, Any] = {}
    path = config_file
    if path is None and default_config_file().is_file():
        path = default_config_file()
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UsageError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"config file {path}: {exc}") from None
        routes = raw.pop("routes", [])
        for key, value in raw.items():
            values[key] = _coerce(key, value)
        try:
            values["routes"] = tuple(Route(glob=r["glob"], table=r["table"]) for r in routes)
        except (KeyError, TypeError):
            raise UsageError(f"config file {path}: each [[routes]] entry needs glob and table") from None
    for env, name in _ENV.items():
        if env in os.environ:
            values[name] = _coerce(name, os.environ[env])
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value)
    cfg = replace(Config(), **values)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    validate_url(cfg.clickhouse_url)
    if cfg.batch_rows < 1 or cfg.batch_rows > 1_000_000:
        raise UsageError("batch_rows must be between 1 and 1000000 (below max_insert_block_size)")
    if cfg.after_load not in ("keep", "archive", "delete"):
        raise UsageError("after_load must be keep, archive or delete")
    if cfg.workers < 1:
        raise UsageError("workers must be at least 1")
    if cfg.log_format not in ("auto", "text", "json"):
        raise UsageError("log_format must be auto, text or json")
