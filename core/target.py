"""ClickHouse through clickhouse-connect: embedded chDB (``chdb://``) or a server over HTTP(S)."""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa

from core import failpoints
from core.config import Config
from core.errors import InputError, TargetError, UsageError
from core.schema import LINEAGE, Column, create_table_sql, qualified, quote_ident

log = logging.getLogger("chute.target")

# ClickHouse error codes that mean "the data does not fit", not "the server is in trouble".
INPUT_ERROR_CODES = frozenset({
    6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 73, 117, 131, 349, 395, 1001,
})
# Settings the exactly-once protocol depends on, sent explicitly with every insert because
# defaults differ between engines and versions (chDB defaults to async_insert=1).
INSERT_SETTINGS = {
    "insert_deduplicate": 1,
    "async_insert": 0,
    "wait_for_async_insert": 1,
    "max_insert_block_size": 1_048_576,
    # Date columns travel as text; ClickHouse's parser takes ISO 8601 with offsets.
    "date_time_input_format": "best_effort",
}


def classify(exc: BaseException) -> Exception:
    """Turn a clickhouse-connect exception into InputError or TargetError."""
    from clickhouse_connect.driver import exceptions as chx

    if isinstance(exc, TargetError | InputError):
        return exc
    code = getattr(exc, "code", None)
    message = _first_line(str(exc))
    if isinstance(exc, chx.OperationalError | OSError | TimeoutError):
        return TargetError(f"ClickHouse unreachable: {message}", unreachable=True, code=code)
    if isinstance(code, int) and code in INPUT_ERROR_CODES:
        return InputError(f"ClickHouse rejected the data: {message}")
    if code is None and ("Connection" in message or "timed out" in message):
        return TargetError(f"ClickHouse unreachable: {message}", unreachable=True)
    return TargetError(f"ClickHouse error: {message}", code=code)


def _first_line(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else ""
    # chDB repeats "Code: N. DB::Exception:" when it wraps; keep one.
    while text.count("DB::Exception: Code:") and "DB::Exception: Code:" in text:
        text = text[text.index("DB::Exception: Code:") + len("DB::Exception: "):]
    return text[:400]


@dataclass(frozen=True)
class Encoded:
    names: list[str]
    body: Any
    rows: int


class Target:
    """One per engine. Each thread gets its own client (chDB handles and HTTP pools are per client)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.database = cfg.database
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self.server_version = ""
        self.insert_settings: dict[str, Any] = dict(INSERT_SETTINGS)

    # -- connections ----------------------------------------------------------------------

    def _new_client(self) -> Any:
        import clickhouse_connect

        cfg = self.cfg
        try:
            if cfg.embedded:
                path = cfg.engine_path()
                path.mkdir(parents=True, exist_ok=True)
                return clickhouse_connect.get_client(dsn=f"chdb://{path}")
            parts = urlsplit(cfg.clickhouse_url)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            secure = parts.scheme == "https"
            kwargs: dict[str, Any] = {
                "host": parts.hostname,
                "port": parts.port or (8443 if secure else 8123),
                "username": parts.username or "default",
                "password": cfg.password(),
                "secure": secure,
                "compress": query.get("compress", "lz4"),
                "connect_timeout": cfg.connect_timeout,
                "send_receive_timeout": cfg.insert_timeout,
                "autogenerate_session_id": False,
                "query_retries": 0,
            }
            if "ca_cert" in query:
                kwargs["ca_cert"] = query["ca_cert"]
            if query.get("verify", "true").lower() in ("0", "false", "no"):
                kwargs["verify"] = False
            return clickhouse_connect.get_client(**kwargs)
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - every connect failure becomes one clear line
            err = classify(exc)
            if isinstance(err, InputError):
                err = TargetError(str(err))
            raise err from None

    def client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._new_client()
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _drop_thread_client(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None and not self.cfg.embedded:
            self._local.client = None
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)
            with contextlib.suppress(Exception):
                client.close()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                log.debug("closing a ClickHouse client failed", exc_info=True)
        self._local = threading.local()

    def _call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client(), fn)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            err = classify(exc)
            if isinstance(err, TargetError) and err.unreachable:
                self._drop_thread_client()  # a broken connection must not be reused
            raise err from None

    # -- checks ---------------------------------------------------------------------------

    def check(self) -> str:
        """Connect, make the database, and verify the server takes the insert settings we need."""
        rows = self._call("query", "SELECT version()").result_rows
        self.server_version = str(rows[0][0])
        self._call("command", f"CREATE DATABASE IF NOT EXISTS {quote_ident(self.database)}")
        names = list(INSERT_SETTINGS) + ["insert_deduplication_token"]
        found = self._call("query", "SELECT name, value FROM system.settings WHERE name IN {names:Array(String)}",
                           parameters={"names": names}).result_rows
        missing = set(names) - {r[0] for r in found}
        # 26.x: `deduplicate_insert` supersedes insert_deduplicate (which it then ignores).
        known = self._call("query", "SELECT count() FROM system.settings WHERE name = 'deduplicate_insert'")
        if known.result_rows[0][0]:
            self.insert_settings = dict(INSERT_SETTINGS, deduplicate_insert="enable")
        if missing:
            raise UsageError(f"ClickHouse {self.server_version} lacks settings chute needs: "
                             f"{', '.join(sorted(missing))}")
        # Prove the settings can be set by this user (a readonly profile would refuse them).
        self._call("query", "SELECT 1", settings=dict(self.insert_settings))
        return self.server_version

    def ping(self) -> bool:
        try:
            self._call("query", "SELECT 1")
            return True
        except TargetError:
            return False

    # -- tables ---------------------------------------------------------------------------

    def table_columns(self, table: str) -> list[Column] | None:
        rows = self._call(
            "query",
            "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}"
            " ORDER BY position",
            parameters={"db": self.database, "t": table},
        ).result_rows
        return [Column(r[0], r[1]) for r in rows] or None

    def table_settings(self, table: str) -> str:
        rows = self._call(
            "query", "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": self.database, "t": table}).result_rows
        return rows[0][0] if rows else ""

    def create_table(self, table: str, columns: list[Column], order_by: str | None = None) -> None:
        self._call("command", create_table_sql(self.database, table, columns, self.cfg.dedup_window, order_by))

    def add_lineage(self, table: str, existing: list[Column]) -> None:
        """A table made by someone else gets the lineage columns chute's protocol relies on."""
        have = {c.name for c in existing}
        for name, kind in LINEAGE:
            if name not in have:
                self._call("command",
                           f"ALTER TABLE {qualified(self.database, table)} ADD COLUMN IF NOT EXISTS"
                           f" {quote_ident(name)} {kind}")

    # -- the protocol ---------------------------------------------------------------------

    def encode(self, data: pa.Table) -> Encoded:
        """Serialise a batch to an Arrow IPC body (off the insert thread; compressed for HTTP)."""
        from clickhouse_connect.driver.query import arrow_buffer

        compression = None if self.cfg.embedded else "lz4"
        names, body = arrow_buffer(data, compression)
        return Encoded(list(names), body, data.num_rows)

    def insert(self, table: str, batch: Encoded, token: str) -> None:
        """One synchronous insert carrying the batch's deduplication token (DESIGN 4.3-4.4)."""
        settings = dict(self.insert_settings, insert_deduplication_token=token)
        if failpoints.enabled("no_dedup"):
            settings = dict(self.insert_settings, insert_deduplicate=0)
            if "deduplicate_insert" in settings:
                settings["deduplicate_insert"] = "disable"
        self._call("raw_insert", qualified(self.database, table), batch.names, batch.body, settings=settings,
                   fmt="Arrow")

    def count_source(self, table: str, sha256: str) -> int:
        rows = self._call(
            "query", f"SELECT count() FROM {qualified(self.database, table)} WHERE _source_sha256 = {{sha:String}}",
            parameters={"sha": sha256}).result_rows
        return int(rows[0][0])

    def delete_source(self, table: str, sha256: str) -> None:
        """Remove every row a file version loaded (tokens stay remembered: DESIGN 4.8)."""
        self._call(
            "command", f"DELETE FROM {qualified(self.database, table)} WHERE _source_sha256 = {{sha:String}}",
            parameters={"sha": sha256}, settings={"mutations_sync": 2, "lightweight_deletes_sync": 2})

    def table_exists(self, table: str) -> bool:
        return self.table_columns(table) is not None
