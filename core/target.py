"""ClickHouse through clickhouse-connect: embedded chDB (``chdb://``) or a server over HTTP(S)."""

from __future__ import annotations

import logging
import re
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass
from http import HTTPStatus
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from chute.core import chdb_metadata, failpoints
from chute.core.config import Config
from chute.core.errors import HoldError, InputError, TargetError, UsageError
from chute.core.no_pandas import keep_pandas_out
from chute.core.schema import (
    LINEAGE,
    Column,
    add_column_sql,
    base_type,
    create_database_sql,
    create_table_sql,
    qualified,
    quote_ident,
    quote_string,
)
from chute.core.spool import SpooledBody
from chute.core.wallclock import UTC_NAMES, known_zone

if TYPE_CHECKING:
    import pyarrow as pa

keep_pandas_out()  # see core/no_pandas.py

log = logging.getLogger("chute.target")


class _DriverNoise(logging.Filter):
    """clickhouse-connect and urllib3 warn on every cut or refused request ("Unexpected Http Driver
    Exception", "Retrying (Retry(...)) after connection broken ... /?query_id=...&<settings>");
    chute reports each failure itself, once, in its own words, with the file it concerns."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not (text == "Unexpected Http Driver Exception" or text.startswith("Retrying ("))


for _name in ("clickhouse_connect.driver._backend.http_sync", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_DriverNoise())

# ClickHouse error codes that mean "the data does not fit", not "the server is in trouble".
INPUT_ERROR_CODES = frozenset({
    6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 73, 117, 131, 349, 395, 1001,
    # a value the operator's column type refuses: CANNOT_PARSE_UUID, DECIMAL_OVERFLOW,
    # CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING, CANNOT_PARSE_BOOL, CANNOT_PARSE_IPV4/IPV6, UNKNOWN_ELEMENT_OF_ENUM
    376, 407, 441, 467, 675, 676, 691,
})
# Over HTTP these two mean "the body arrived short" (a proxy or link cut the upload): chute's own
# Arrow body is never short, so that is the wire's fault, not the file's.
SHORT_BODY_CODES = frozenset({32, 33})  # ATTEMPT_TO_READ_AFTER_EOF, CANNOT_READ_ALL_DATA
# The server answers but will not let us in: waiting does not help, the operator must act.
AUTH_ERROR_CODES = frozenset({192, 193, 194, 516})  # UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTH_FAILED
# Statuses a proxy or an overloaded server sends when ClickHouse cannot take requests right now.
UNAVAILABLE_STATUSES = frozenset({429, 502, 503, 504})
# Options an http(s):// URL may carry after `?` (anything else is a typo worth refusing).
URL_OPTIONS = ("ca_cert", "verify", "client_cert", "client_key", "compress")
# An uncertain insert (cut, timeout, 502/503/504) is resent at once with the same token this many
# times before the file fails and waits for its backoff: a flaky link should not cost a re-hash.
INSERT_RETRY_DELAYS = (0.2, 0.6)
# Health checks must not hang for the insert timeout.
PROBE_TIMEOUT = 10
# Settings the exactly-once protocol depends on, sent explicitly with every insert because
# defaults differ between engines and versions (chDB defaults to async_insert=1).
INSERT_SETTINGS = {
    "insert_deduplicate": 1,
    "async_insert": 0,
    "wait_for_async_insert": 1,
    "max_insert_block_size": 1_048_576,
    # Keyed (Replacing) tables would collapse repeated keys inside a block at insert time, and
    # the per-file count() could no longer verify what was sent.
    "optimize_on_insert": 0,
    # Date columns travel as text; ClickHouse's parser takes ISO 8601 with offsets.
    "date_time_input_format": "best_effort",
}


class AccessError(TargetError):
    """ClickHouse answers but refuses this client (login, TLS certificate): only the operator can fix it."""


def classify(exc: BaseException, remote: bool = False) -> Exception:
    """Turn a clickhouse-connect exception into InputError or TargetError.

    What clickhouse-connect 1.12 raises (checked against tests/chhttp.py's faults):
    a ClickHouse exception -> DatabaseError with ``code`` (OperationalError with ``code`` when
    the status was 429/503/504); a bare HTTP status -> OperationalError for 429/503/504 (after
    its own retries), DatabaseError with ``code=None`` for the others; no answer at all (refused,
    reset, cut, timeout, TLS) -> OperationalError caused by a urllib3 error. Only ClickHouse's
    data codes are the input's fault; everything else is retryable.
    """
    if isinstance(exc, TargetError | InputError | UsageError):
        return exc
    code = getattr(exc, "code", None)
    if isinstance(code, int):  # ClickHouse itself answered with an exception
        message = _first_line(str(exc))
        if code in AUTH_ERROR_CODES:
            return AccessError(f"ClickHouse refused the login: {message} (check the user in the URL and "
                               "CHUTE_CLICKHOUSE_PASSWORD or password_file)", code=code)
        if remote and code in SHORT_BODY_CODES:
            return TargetError(f"ClickHouse got an incomplete request body: {message}", code=code)
        if code in INPUT_ERROR_CODES:
            return InputError(f"ClickHouse rejected the data: {message}")
        return TargetError(f"ClickHouse error: {message}", code=code)
    transport = _transport_error(exc)
    if transport is not None:
        return transport
    if isinstance(exc, OSError | TimeoutError):
        return TargetError(f"ClickHouse unreachable: {exc}", unreachable=True)
    message = _first_line(str(exc))
    status = _HTTP_STATUS.search(message)
    if status:
        number = int(status.group(1))
        return TargetError(f"ClickHouse answered HTTP {number} {_phrase(number)}",
                           unreachable=number in UNAVAILABLE_STATUSES)
    return TargetError(f"ClickHouse error: {message}")


_HTTP_STATUS = re.compile(r"HTTP status (\d{3})")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes and contexts, and urllib3's MaxRetryError reasons, outermost first."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        reason = getattr(item, "reason", None)
        todo += [reason if isinstance(reason, BaseException) else None, item.__cause__,
                 None if item.__suppress_context__ else item.__context__]
    return seen


def _transport_error(exc: BaseException) -> TargetError | None:
    """A request that got no HTTP answer: say what happened to the connection in a few words."""
    import ssl

    from urllib3 import exceptions as u3

    chain = _chain(exc)
    if not any(isinstance(e, u3.HTTPError | OSError) for e in chain[1:]):
        return None

    def first(kind: type | tuple[type, ...]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kind)), None)

    if (cert := first(ssl.SSLCertVerificationError)) is not None:
        reason = getattr(cert, "verify_message", None) or str(cert)
        return AccessError(f"ClickHouse's TLS certificate was not accepted: {reason} (give the CA with "
                           "?ca_cert=FILE in the URL, or ?verify=false to skip the check)")
    if (err := first((u3.SSLError, ssl.SSLError))) is not None:
        return TargetError(f"ClickHouse unreachable: TLS handshake failed: {_short(err)}", unreachable=True)
    if first(u3.NameResolutionError) is not None:
        return TargetError("ClickHouse unreachable: cannot resolve the host name", unreachable=True)
    if first(ConnectionRefusedError) is not None:
        return TargetError("ClickHouse unreachable: connection refused", unreachable=True)
    if first(u3.ReadTimeoutError) is not None:
        return TargetError("ClickHouse unreachable: no answer before the timeout", unreachable=True)
    if (err := first(u3.NewConnectionError)) is not None:
        return TargetError(f"ClickHouse unreachable: cannot connect: {_short(err)}", unreachable=True)
    if first(u3.ConnectTimeoutError) is not None:
        return TargetError("ClickHouse unreachable: connection timed out", unreachable=True)
    if first(u3.ProtocolError) is not None or first(ConnectionError) is not None:
        return TargetError("ClickHouse unreachable: connection closed before the answer", unreachable=True)
    return TargetError(f"ClickHouse unreachable: {_short(chain[-1])}", unreachable=True)


def _short(exc: BaseException) -> str:
    """An exception's own words without urllib3's pool and URL decoration (URLs carry every setting)."""
    text = str(getattr(exc, "reason", None) or exc)
    text = re.sub(r"HTTPS?Connection(Pool)?\([^)]*\):\s*", "", text)
    text = re.sub(r"\s*\(for url [^)]*\)", "", text)
    return text[:200] or type(exc).__name__


def _first_line(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else ""
    # clickhouse-connect's HTTP wrapper around the server's own text, and its URL and version trailers.
    text = re.sub(r"^Received ClickHouse exception, code: \d+, server response: ", "", text)
    text = re.sub(r"^HTTP driver received HTTP status (\d+), server response: ", r"HTTP status \1: ", text)
    text = re.sub(r"\s*\(for url [^)]*\)$", "", text)
    text = re.sub(r"\s*\(version [0-9.]+[^)]*\)+$", "", text)
    # chDB repeats "Code: N. DB::Exception:" when it wraps; keep one.
    while text.count("DB::Exception: Code:") and "DB::Exception: Code:" in text:
        text = text[text.index("DB::Exception: Code:") + len("DB::Exception: "):]
    return text[:400]


def http_client_kwargs(cfg: Config) -> dict[str, Any]:
    """clickhouse-connect keyword arguments for an ``http(s)://[user@]host[:port][/path][?options]`` URL.

    Options: ``ca_cert=FILE`` (PEM bundle to verify the server with, or ``certifi``),
    ``verify=false`` (no certificate check), ``client_cert=FILE`` / ``client_key=FILE`` (mutual
    TLS), ``compress=lz4|zstd|gzip|deflate|none`` (response and request compression; lz4 by
    default). The password never comes from the URL: CHUTE_CLICKHOUSE_PASSWORD or password_file.
    """
    parts = urlsplit(cfg.clickhouse_url)
    secure = parts.scheme == "https"
    opts = _url_options(parts.query, secure)
    compress = _compression(opts)
    kwargs: dict[str, Any] = {
        "interface": "https" if secure else "http",
        "host": parts.hostname,
        "port": parts.port or (8443 if secure else 8123),
        "username": unquote(parts.username) if parts.username else "default",
        "password": cfg.password(),
        "compress": compress,
        "connect_timeout": max(1, round(cfg.connect_timeout)),
        "send_receive_timeout": max(1, round(cfg.insert_timeout)),
        # No session: one client per thread, and parallel lanes must not collide on a session id.
        "autogenerate_session_id": False,
        # chute retries itself, with tokens and backoff; a read retried inside the driver is invisible.
        "query_retries": 0,
        # Its own urllib3 pool per client: one kept connection per thread, closed with the client.
        "dedicated_pool": True,
    }
    if parts.path.strip("/"):
        kwargs["proxy_path"] = parts.path.rstrip("/")  # ClickHouse behind a reverse proxy under a path
    return kwargs | _tls_kwargs(opts)


_TLS_OPTIONS = ("ca_cert", "verify", "client_cert", "client_key")
# URL option -> clickhouse-connect argument, for the options that name a file.
_TLS_FILES = (("ca_cert", "ca_cert"), ("client_cert", "client_cert"), ("client_key", "client_cert_key"))
_COMPRESSIONS = ("lz4", "zstd", "gzip", "deflate", "none")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _url_options(query: str, secure: bool) -> dict[str, str]:
    """The URL's ``?options`` (the last value of each); unknown ones and TLS over http:// refused."""
    try:
        raw = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise UsageError(f"bad options in the ClickHouse URL: {query!r}") from None
    unknown = sorted(set(raw) - set(URL_OPTIONS))
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r} in the ClickHouse URL (known: {', '.join(URL_OPTIONS)})")
    opts = {k: v[-1] for k, v in raw.items()}
    tls = [k for k in _TLS_OPTIONS if k in opts]
    if tls and not secure:
        raise UsageError(f"{tls[0]} in the ClickHouse URL needs https://")
    return opts


def _compression(opts: dict[str, str]) -> str | bool:
    """clickhouse-connect's ``compress``: the codec's name, or False for ``compress=none``."""
    compress = opts.get("compress", "lz4").lower()
    if compress not in _COMPRESSIONS:
        raise UsageError(f"compress={compress} in the ClickHouse URL: use lz4, zstd, gzip, deflate or none")
    return False if compress == "none" else compress


def _tls_kwargs(opts: dict[str, str]) -> dict[str, Any]:
    """``verify`` and the certificate files, each file checked to exist now (not at the first insert)."""
    out: dict[str, Any] = {}
    if "verify" in opts:
        value = opts["verify"].lower()
        if value not in _TRUE + _FALSE:
            raise UsageError(f"verify={opts['verify']} in the ClickHouse URL: use true or false")
        out["verify"] = value in _TRUE
    for key, arg in _TLS_FILES:
        if key in opts:
            out[arg] = _tls_file(key, opts[key])
    if "client_key" in opts and "client_cert" not in opts:
        raise UsageError("client_key in the ClickHouse URL needs client_cert as well")
    return out


def _tls_file(key: str, value: str) -> str:
    if key == "ca_cert" and value == "certifi":
        return value  # the certifi package's bundle
    path = Path(value).expanduser()
    if not path.is_file():
        raise UsageError(f"{key} file {value} (from the ClickHouse URL) does not exist")
    return str(path)


def _utf8_check(columns: list[str]) -> str:
    """A WHERE clause that fails the read at the first value of ``columns`` that is not UTF-8."""
    if not columns:
        return ""
    bad = " OR ".join(f"NOT isValidUTF8(ifNull({quote_ident(name)}, ''))" for name in columns)
    return f" WHERE throwIf({bad}, 'a text column holds a value that is not valid UTF-8') = 0"


def _settings_sql(settings: dict[str, Any]) -> str:
    """``name = value, ...`` for a SETTINGS clause (numbers as they are, anything else quoted)."""
    return ", ".join(f"{name} = {int(value) if isinstance(value, int) else quote_string(str(value))}"
                     for name, value in settings.items())


def ipc_codec(cfg: Config) -> str | None:
    """Compression of the Arrow IPC buffers in insert bodies: none in-process; over HTTP the URL's
    ``compress`` where Arrow has it (zstd: ~3x smaller than lz4 on typical batches, ~4x the CPU)."""
    if cfg.embedded:
        return None
    choice = (parse_qs(urlsplit(cfg.clickhouse_url).query).get("compress") or ["lz4"])[-1].lower()
    return None if choice == "none" else ("zstd" if choice == "zstd" else "lz4")


@dataclass(frozen=True)
class ParquetFooter:
    """A Parquet footer as ClickHouse's own footer reader takes it (Target.parquet_footer)."""

    rows: int
    columns: list[tuple[str, str, int]]  # each leaf: name, logical type ("String", "Int(...)", "None"), max repetition
    groups: list[tuple[int, int, list[int | None]]]  # each row group: rows, uncompressed bytes, each leaf's NULLs


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
        self._idle: list[Any] = []  # clients a thread let go of (release): the next new thread takes one
        self._lock = threading.Lock()
        self.server_version = ""
        self.server_zone = "UTC"  # what zone-less columns are shown in (check()); see core/wallclock.py
        self.insert_settings: dict[str, Any] = dict(INSERT_SETTINGS)
        self.probe_error: str | None = None
        self.probe_failure: Exception | None = None  # the classified error behind probe_error
        self._ipc_codec = ipc_codec(cfg)

    # -- connections ----------------------------------------------------------------------

    def _new_client(self, probe: bool = False) -> Any:
        import clickhouse_connect

        cfg = self.cfg
        try:
            if cfg.embedded:
                path = cfg.engine_path()
                path.mkdir(parents=True, exist_ok=True)
                try:
                    return clickhouse_connect.get_client(dsn=f"chdb://{path}")
                except Exception:
                    # A CREATE TABLE on a full disk left an empty definition: chDB will not start with it.
                    if not chdb_metadata.set_aside(path, cfg.state_dir / "broken-chdb-metadata"):
                        raise
                    return clickhouse_connect.get_client(dsn=f"chdb://{path}")
            kwargs = http_client_kwargs(cfg)
            if probe:  # health checks answer in seconds or count as "no answer"
                kwargs.update(connect_timeout=min(kwargs["connect_timeout"], PROBE_TIMEOUT),
                              send_receive_timeout=PROBE_TIMEOUT)
            return clickhouse_connect.get_client(**kwargs)
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - every connect failure becomes one clear line
            err = classify(exc, remote=not cfg.embedded)
            if isinstance(err, InputError):
                err = TargetError(str(err))
            raise err from None

    def client(self) -> Any:
        """This thread's client, kept for the engine's life.

        Over HTTP each client has its own urllib3 pool, so a thread keeps one keep-alive
        connection across batches and files. A broken connection is dropped by urllib3 and the
        next request opens a new one; the client itself (and its server handshake) stays.
        """
        return self._thread_client("client", probe=False)

    def _thread_client(self, slot: str, probe: bool) -> Any:
        client = getattr(self._local, slot, None)
        if client is None:
            with self._lock:
                client = self._idle.pop() if slot == "client" and self._idle else None
            if client is None:
                client = self._new_client(probe=probe)
                with self._lock:
                    self._clients.append(client)
            setattr(self._local, slot, client)
        return client

    def release(self) -> None:
        """This thread is done with its client for now: the next thread that needs one takes it over
        (making a client costs ~20 ms; the start-up's checks and a `--once`'s first load need one each).
        A client is used by one thread at a time; this thread makes a new one if it needs one again."""
        client = getattr(self._local, "client", None)
        if client is not None:
            self._local.client = None
            with self._lock:
                self._idle.append(client)

    def close(self) -> None:
        with self._lock:
            clients, self._clients, self._idle = self._clients, [], []
        for client in clients:
            try:
                client.close()
            except Exception:
                log.debug("closing a ClickHouse client failed", exc_info=True)
        self._local = threading.local()

    def _call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client(), fn)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, remote=not self.cfg.embedded) from None

    # -- checks ---------------------------------------------------------------------------

    def check(self) -> str:
        """Connect, make the database, and verify the server takes the insert settings we need."""
        rows = self._call("query", "SELECT version(), timezone()").result_rows
        self.server_version = str(rows[0][0])
        self.server_zone = known_zone(str(rows[0][1])) or "UTC"
        if self.server_zone == "UTC" and str(rows[0][1]) not in UTC_NAMES:
            log.warning("ClickHouse's time zone %r is unknown here: Parquet naive timestamps go as UTC wall clocks and "
                        "show shifted there; declare such columns DateTime64(6, 'UTC') in the route", rows[0][1])
        if not self.cfg.embedded and http_client_kwargs(self.cfg).get("verify") is False:
            log.warning("TLS certificate verification is off (verify=false in the ClickHouse URL): anyone on the "
                        "path can pose as the server and read the password")
        self._call("command", create_database_sql(self.database, self.cfg.cluster or None))
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
        """Does ClickHouse answer a query right now? Within seconds, never the insert timeout.

        The reason it does not is kept in ``probe_error``.
        """
        try:
            if self.cfg.embedded:
                self._call("query", "SELECT 1")
            else:
                self._thread_client("probe", probe=True).query("SELECT 1")
            self.probe_error = None
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means "not answering"
            self.probe_failure = classify(exc, remote=not self.cfg.embedded)
            self.probe_error = str(self.probe_failure)
            return False

    # -- tables ---------------------------------------------------------------------------

    def table_columns(self, table: str) -> list[Column] | None:
        rows = self._call(
            "query",
            "SELECT name, type, default_kind FROM system.columns WHERE database = {db:String} AND table = {t:String}"
            " ORDER BY position",
            parameters={"db": self.database, "t": table},
        ).result_rows
        return [Column(r[0], r[1], r[2]) for r in rows] or None

    def table_settings(self, table: str) -> str:
        """The table's CREATE statement (engine and SETTINGS included)."""
        rows = self._call(
            "query", "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": self.database, "t": table}).result_rows
        return rows[0][0] if rows else ""

    def create_table(self, table: str, columns: list[Column], order_by: str | None = None,
                     key: tuple[str, ...] = ()) -> None:
        self._call("command", create_table_sql(self.database, table, columns, self.cfg.dedup_window, order_by, key,
                                                self.cfg.cluster or None))
        if self.cfg.embedded:
            self._stored_definition(table, self.table_settings(table))

    def _stored_definition(self, table: str, ddl: str) -> None:
        """chDB on a full disk "creates" a table whose definition file stays empty: it works until the
        process ends, then chDB will not start at all (core/chdb_metadata.py). Drop it while it is empty
        and report a full disk (intake pauses); the next attempt after space returns creates it anew."""
        if ddl:
            return
        name = qualified(self.database, table)
        rows = int(self._call("query", f"SELECT count() FROM {name}").result_rows[0][0])
        if rows:
            raise TargetError(f"table {table} holds {rows} rows but chDB stored no definition for it (it was "
                              "created on a full disk) and will not start again with it: copy its rows to another "
                              f"table (INSERT INTO ... SELECT * FROM {name}), then DROP TABLE {name}")
        self._call("command", f"DROP TABLE IF EXISTS {name} SYNC")
        raise TargetError(f"not enough space on ClickHouse's disk to store the definition of table {table}; "
                          "it is created again when space returns", code=243)  # NOT_ENOUGH_SPACE

    def add_column(self, table: str, column: Column) -> None:
        self._call("command", add_column_sql(self.database, table, column))

    def modify_columns(self, table: str, columns: list[Column]) -> None:
        """Give existing columns new types (core/nullability.py); waits for the mutation to finish."""
        changes = ", ".join(f"MODIFY COLUMN {quote_ident(c.name)} {c.type}" for c in columns)
        self._call("command", f"ALTER TABLE {qualified(self.database, table)} {changes}",
                   settings={"mutations_sync": 2})

    def existing_keys(self, table: str, key: str, ch_type: str, values: list) -> set:
        """Which of ``values`` are already in ``table``'s ``key`` column.

        First one range query over the batch's [min, max] (the table is ordered by its key, so
        this reads only that range); when the range holds too many keys (random keys), bound
        IN-lists of 10,000 keys each. Values are always bound server-side."""
        kind = base_type(ch_type)
        col, src = quote_ident(key), qualified(self.database, table)
        cap = 4 * len(values) + 1000
        rows = self._call(
            "query", f"SELECT DISTINCT {col} FROM {src} WHERE {col} >= {{lo:{kind}}} AND {col} <= {{hi:{kind}}}"
                     f" LIMIT {cap}", parameters={"lo": min(values), "hi": max(values)}).result_rows
        if len(rows) < cap:
            return {r[0] for r in rows}
        found: set = set()
        for i in range(0, len(values), 10_000):
            found |= {r[0] for r in self._call(
                "query", f"SELECT DISTINCT {col} FROM {src} WHERE {col} IN {{keys:Array({kind})}}",
                parameters={"keys": values[i:i + 10_000]}).result_rows}
        return found

    def refused_values(self, ch_type: str, values: list[str]) -> set[str]:
        """Which of ``values`` (none holding a NUL) ClickHouse refuses to read as ``ch_type`` (IPv4,
        IPv6 or UUID: its own parse, quirks and all, as an insert's conversion of the text would
        refuse them). Bound 10,000 at a time, as one NUL-separated text (half the cost of an
        Array parameter's per-value quoting)."""
        refused: set[str] = set()
        ends = list(accumulate(map(len, values)))  # (a bound parameter travels in the URL: 64K characters a query)
        start = 0
        while start < len(values):
            end = max(start + 1, min(start + 10_000, bisect_right(ends, (ends[start - 1] if start else 0) + 64_000)))
            refused |= {r[0] for r in self._call(
                "query", "SELECT x FROM (SELECT arrayJoin(splitByChar('\\0', {values:String})) AS x)"
                         " WHERE isNull(accurateCastOrNull(x, {kind:String}))",
                parameters={"values": "\0".join(values[start:end]), "kind": ch_type}).result_rows}
            start = end
        return refused

    def add_lineage(self, table: str, existing: list[Column]) -> None:
        """A table made by someone else gets the lineage columns chute's protocol relies on."""
        have = {c.name for c in existing}
        for name, kind in LINEAGE:
            if name not in have:
                self._call("command",
                           f"ALTER TABLE {qualified(self.database, table)} ADD COLUMN IF NOT EXISTS"
                           f" {quote_ident(name)} {kind}")

    # -- the protocol ---------------------------------------------------------------------

    def encode(self, data: pa.Table, spool: bool = False) -> Encoded:
        """Serialise a batch to an Arrow IPC body (off the insert thread; compressed for HTTP).
        ``spool``: for the embedded engine, into a temporary file rather than memory (core/spool.py)."""
        if spool and self.cfg.embedded:
            return Encoded(list(data.schema.names), SpooledBody(data), data.num_rows)
        from clickhouse_connect.driver.query import arrow_buffer

        names, body = arrow_buffer(data, self._ipc_codec)
        return Encoded(list(names), body, data.num_rows)

    def insert(self, table: str, batch: Encoded, token: str) -> None:
        """One synchronous insert carrying the batch's deduplication token (docs/ARCHITECTURE.md#tokens).

        If the answer is lost (connection cut, timeout, 502/503/504) the insert may or may not
        have been applied; it is resent at once with the same token, so ClickHouse drops it if it
        was. After INSERT_RETRY_DELAYS the error goes to the loader, whose next attempt resends
        every unacknowledged batch with its token.
        """
        settings = dict(self.insert_settings, insert_deduplication_token=token)
        # chDB's driver writes the body to a file for INSERT ... FROM INFILE: an Arrow buffer it would
        # first copy whole into a bytes object (to_pybytes), a memoryview it writes as it is.
        body = memoryview(batch.body) if self.cfg.embedded and hasattr(batch.body, "to_pybytes") else batch.body
        if failpoints.enabled("no_dedup"):
            settings = dict(self.insert_settings, insert_deduplicate=0)
            if "deduplicate_insert" in settings:
                settings["deduplicate_insert"] = "disable"
        columns = [quote_ident(n) for n in batch.names]
        for delay in (*INSERT_RETRY_DELAYS, None):
            try:
                if isinstance(body, SpooledBody):  # chDB reads the file itself, for every (re)send
                    self._call("command", f"INSERT INTO {qualified(self.database, table)} ({', '.join(columns)})"
                                          f" FROM INFILE {quote_string(body.path)} SETTINGS {_settings_sql(settings)}"
                                          " FORMAT Arrow")
                    body.discard()
                else:
                    self._call("raw_insert", qualified(self.database, table), columns, body, settings=settings,
                               fmt="Arrow")
                return
            except TargetError as exc:
                if delay is None or not exc.unreachable:
                    raise
                log.debug("insert of %s (token %s) uncertain: %s; resending", table, token, exc)
                time.sleep(delay)

    def insert_file(self, table: str, path: str, fmt: str, columns: list[Column], rel_path: str, sha256: str,
                    token: str, extra: dict[str, Any], utf8: list[str] | None = None) -> None:
        """One batch the embedded engine reads itself (core/native.py): ``INSERT ... SELECT`` from
        ``file(path, fmt, structure)``, the structure being the table's own types of ``columns``, the
        lineage as bound constants and ``_row_number``. Synchronous, with the protocol's settings and
        ``token``. A value of the ``utf8`` columns that is not valid UTF-8 fails the insert whole."""
        settings = dict(self.insert_settings, insert_deduplication_token=token, **extra)
        if failpoints.enabled("no_dedup"):
            settings.update(insert_deduplicate=0, **({"deduplicate_insert": "disable"}
                                                     if "deduplicate_insert" in settings else {}))
        names = [quote_ident(c.name) for c in columns]
        structure = ", ".join(f"{quote_ident(c.name)} {c.type}" for c in columns)
        into, picked = ", ".join(names), ", ".join(names)
        self._call("command", f"INSERT INTO {qualified(self.database, table)} ({into}, _source_path, _source_sha256,"
                              f" _source_row) SELECT {picked}, {{rel:String}}, {{sha:String}}, _row_number + 1"
                              " FROM file({src:String}, {fmt:String}, {structure:String})" + _utf8_check(utf8 or []),
                   parameters={"rel": rel_path, "sha": sha256, "src": path, "fmt": fmt, "structure": structure},
                   settings=settings)

    def parquet_footer(self, path: str) -> ParquetFooter | None:
        """The Parquet footer as ClickHouse's own footer reader takes it (``ParquetMetadata``): rows,
        each leaf's logical type, each row group's size and claimed NULLs; None when it refuses the
        footer. The native read judges a file by it (core/formats/parquet.py). pyarrow read it
        before, but aborts the whole process (no Python exception) on some hostile footers, e.g. a
        level histogram of the wrong size or a chunk whose type contradicts the schema, which
        ClickHouse refuses with an error: such a file takes the Arrow path (issue 12, review)."""
        try:
            rows = self._call(
                "query", "SELECT num_rows, arrayMap(c -> (c.name, c.logical_type, c.max_repetition_level), columns),"
                         " arrayMap(g -> (g.num_rows, g.total_uncompressed_size,"
                         " arrayMap(c -> c.statistics.null_count, g.columns)), row_groups)"
                         " FROM file({src:String}, 'ParquetMetadata')", parameters={"src": path}).result_rows
        except Exception as exc:  # noqa: BLE001 - any refusal: not for the native read
            log.info("Parquet footer of %s refused by ClickHouse (%s): not read natively", path, exc)
            return None
        total, columns, groups = rows[0]
        return ParquetFooter(int(total), [(str(n), str(t), int(r)) for n, t, r in columns],
                             [(int(n), int(b), [None if x is None else int(x) for x in nulls])
                              for n, b, nulls in groups])

    def count_source(self, table: str, sha256: str, path: str) -> int:
        """Rows of one file version: its content hash *and* its path, so a twin elsewhere never counts."""
        rows = self._call(
            "query", f"SELECT count() FROM {qualified(self.database, table)} WHERE _source_sha256 = {{sha:String}}"
                     " AND _source_path = {path:String}",
            parameters={"sha": sha256, "path": path}).result_rows
        return int(rows[0][0])

    def count_sources(self, table: str, versions: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """`count_source` for many versions in one GROUP BY query: {(sha256, path): rows} (core/groups.py)."""
        rows = self._call(
            "query", f"SELECT _source_sha256, _source_path, count() FROM {qualified(self.database, table)}"
                     " WHERE _source_sha256 IN {shas:Array(String)} GROUP BY _source_sha256, _source_path",
            parameters={"shas": sorted({sha for sha, _ in versions})}).result_rows
        wanted = set(versions)
        return {(str(r[0]), str(r[1])): int(r[2]) for r in rows if (r[0], r[1]) in wanted}

    def delete_source(self, table: str, sha256: str, path: str) -> None:
        """Remove every row a file version loaded (tokens stay remembered: docs/ARCHITECTURE.md#generations)."""
        self._call(
            "command", f"DELETE FROM {qualified(self.database, table)} WHERE _source_sha256 = {{sha:String}}"
                       " AND _source_path = {path:String}",
            parameters={"sha": sha256, "path": path}, settings={"mutations_sync": 2, "lightweight_deletes_sync": 2})

    def ensure_dedup_window(self, table: str) -> None:
        """A table chute did not create may lack the protocol's dedup window (docs/ARCHITECTURE.md#dedup-window)."""
        rows = self._call("query", "SELECT engine, create_table_query FROM system.tables"
                                   " WHERE database = {db:String} AND name = {t:String}",
                          parameters={"db": self.database, "t": table}).result_rows
        engine, ddl = (str(rows[0][0]), str(rows[0][1])) if rows else ("", "")
        if rows and self.cfg.embedded:
            self._stored_definition(table, ddl)  # a table created on a full disk: no ALTER can fix it
        if not engine.endswith("MergeTree"):
            raise HoldError(f"table {table} uses engine {engine or 'unknown'}, which cannot deduplicate inserts; "
                            "chute loads only into MergeTree-family tables")
        if engine.startswith(("Replicated", "Shared")):
            return  # these keep a window by default (replicated_deduplication_window)
        match = re.search(r"non_replicated_deduplication_window\s*=\s*(\d+)", ddl)
        if match is None or int(match.group(1)) < self.cfg.dedup_window:
            self._call("command", f"ALTER TABLE {qualified(self.database, table)} MODIFY SETTING "
                                  f"non_replicated_deduplication_window = {int(self.cfg.dedup_window)}")
            log.info("set non_replicated_deduplication_window = %d on %s", self.cfg.dedup_window, table)

    def free_space(self) -> int | None:
        """Free bytes on ClickHouse's disks (system.disks), or None when it does not say (core/resources.py)."""
        try:
            rows = self._call("query", "SELECT min(free_space) FROM system.disks").result_rows
            return int(rows[0][0]) if rows and rows[0][0] is not None else None
        except Exception:  # noqa: BLE001 - a probe: no answer is "unknown"
            return None
