"""A ClickHouse HTTP interface backed by the embedded chDB engine, with fault injection.

Test fixture only: production talks to a real ClickHouse server. This endpoint lets the remote
code path (clickhouse-connect's HTTP client, retries, outages, exactly-once inserts) run over real
HTTP against the real ClickHouse engine, because no server binary exists on the build machines.

What it speaks (as clickhouse-connect 1.12 uses it):

* ``GET|POST /?query=...`` with the statement in the ``query`` parameter, the body, or both
  (concatenated with a newline, as ClickHouse does); ``multipart/form-data`` query fields;
  ``param_<name>`` bound parameters; every non-transport URL parameter is a query setting.
* ``database``, ``default_format``, ``query_id``, ``session_id``/``session_timeout``/
  ``session_check``/``close_session``; ``GET`` implies ``readonly=2``.
* Request ``Content-Encoding`` lz4/zstd/gzip/deflate (what clickhouse-connect sends without
  ``brotli`` installed); response compression from ``Accept-Encoding`` when
  ``enable_http_compression`` is on.
* Basic auth, ``X-ClickHouse-User``/``X-ClickHouse-Key`` and ``user``/``password`` parameters;
  a bad password is ``Code: 516 ... (AUTHENTICATION_FAILED)`` with HTTP 403.
* Response headers ``X-ClickHouse-Summary``/``-Format``/``-Timezone``/``-Query-Id``/
  ``-Server-Display-Name``; errors carry ``X-ClickHouse-Exception-Code`` and a ClickHouse-style body
  with the HTTP status ClickHouse maps the code to. ``/ping`` answers ``Ok.``.

Inserts with inline data (``INSERT ... FORMAT <fmt>`` + body) are read completely, decompressed,
written to a temp file and run as ``INSERT ... FROM INFILE`` on the engine, so a client that drops
mid-body never applies half an insert.

Control plane (no auth; the server binds 127.0.0.1 only):

* ``GET /__stats`` counters; ``DELETE /__stats`` resets them.
* ``GET /__requests`` recent requests (statement head, settings, status, faults; never credentials);
  ``DELETE /__requests`` clears the log.
* ``GET /__fault`` the active rules; ``POST /__fault`` with ``{"faults": [rule, ...], "seed": n,
  "mode": "replace"|"append"}``; ``DELETE /__fault`` clears. See :class:`FaultRule`.
* ``POST /__refuse`` ``{"seconds": s}``: close the listener (connections are refused) and reopen it
  on the same port after ``s`` seconds. ``POST /__drop_connections`` resets idle keep-alive sockets.

Standalone: ``python -m tests.chhttp --port PORT --path DIR [--user U] [--password-file F]
[--setting NAME=VALUE ...] [--seed N]`` prints ``listening on http://127.0.0.1:PORT`` when ready
and shuts down cleanly on SIGINT/SIGTERM.

For tests, :class:`ChHttpServer` runs that as a subprocess (``start``/``stop``/``kill``,
``set_fault``/``set_faults`` (``append=True`` adds)/``clear_faults``/``faults``, ``stats``/``reset_stats``/
``requests``, ``refuse_for``/``drop_connections``, ``client(**kw)``, ``url``/``port``/``log_path``).
:class:`ChHttpEndpoint` has the same surface in-process (mind chDB's one data path per process).

Known gaps: ``client_protocol_version`` is accepted but ignored (clickhouse-connect's probe then
falls back to protocol 0, as behind a proxy); external data (multipart files), ClickHouse-native
``compress``/``decompress=1`` and the codecs chute never sends (br, xz, bz2, snappy) answer
NOT_IMPLEMENTED; inserts always run synchronously
(``async_insert`` reaches the engine, but chDB applies inserts at once even with
``wait_for_async_insert=0``); results are buffered, so there are no progress headers and no
mid-stream exceptions; RBAC is one configured user.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import email.parser
import email.policy
import gzip
import hmac
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

logger = logging.getLogger("chhttp")

HOST = "127.0.0.1"
KEEP_ALIVE_TIMEOUT = 30  # seconds an idle keep-alive connection is kept (ClickHouse's keep_alive_timeout)
MAX_BODY_BYTES = 1 << 30  # bodies are held in memory; refuse anything larger than this
INSERT_HEAD_SCAN_LIMIT = 1 << 20  # an INSERT's FORMAT clause must appear within this many bytes
DEFAULT_SESSION_TIMEOUT = 60.0
REQUEST_LOG_SIZE = 200

# URL parameters the ClickHouse HTTP handler consumes itself; everything else (except param_*) is a setting.
TRANSPORT_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "role",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "client_protocol_version",
        "close_session",
        "compress",
        "decompress",
        "http_response_headers",
    }
)

# ClickHouse error codes this module produces or maps to HTTP statuses.
CODE_BAD_ARGUMENTS = 36
CODE_NOT_IMPLEMENTED = 48
CODE_SYNTAX_ERROR = 62
CODE_UNKNOWN_SETTING = 115
CODE_QUERY_IS_TOO_LARGE = 229
CODE_CANNOT_DECOMPRESS = 271
CODE_NETWORK_ERROR = 210
CODE_SESSION_NOT_FOUND = 372
CODE_SESSION_IS_LOCKED = 373
CODE_AUTHENTICATION_FAILED = 516

# Mirrors ClickHouse's src/Server/HTTP/exceptionCodeToHTTPStatus.cpp.
_HTTP_STATUS_BY_CODE: dict[int, int] = {
    194: 401,  # REQUIRED_PASSWORD
    **dict.fromkeys((192, 193, 516, 512, 497), 403),  # UNKNOWN_USER .. ACCESS_DENIED
    **dict.fromkeys(
        (36, 427, 6, 25, 26, 38, 41, 72, 441, 675, 676, 27, 376, 15, 44, 37, 123, 8, 167, 168, 223, 62, 117, 53, 321),
        400,
    ),
    **dict.fromkeys((60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511), 404),
    229: 413,  # QUERY_IS_TOO_LARGE
    48: 501,  # NOT_IMPLEMENTED
    209: 503,  # SOCKET_TIMEOUT
    76: 503,  # CANNOT_OPEN_FILE
    381: 411,  # HTTP_LENGTH_REQUIRED
    159: 408,  # TIMEOUT_EXCEEDED
    439: 503,  # CANNOT_SCHEDULE_TASK
    779: 415,  # UNSUPPORTED_MEDIA_TYPE
}


def http_status_for_code(code: int) -> int:
    """The HTTP status ClickHouse answers a given exception code with."""
    return _HTTP_STATUS_BY_CODE.get(code, 500)


class ChError(Exception):
    """A ClickHouse exception to send back: numeric code plus the ``Code: N. DB::Exception: ...`` text."""

    def __init__(self, code: int, text: str, status: int | None = None):
        super().__init__(text)
        self.code = code
        self.text = text
        self.status = status if status is not None else http_status_for_code(code)


# ---------------------------------------------------------------------------------------------
# Compression


def _lz4_decompress(data: bytes) -> bytes:
    import lz4.frame

    # clickhouse-connect compresses every block as its own frame; decode the whole concatenation.
    out = bytearray()
    while data:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        out += decompressor.decompress(data)
        if not decompressor.eof:
            raise ValueError("truncated lz4 frame")
        data = decompressor.unused_data
    return bytes(out)


def _zstd_decompress(data: bytes) -> bytes:
    import io

    import zstandard

    # One frame per block, as clickhouse-connect sends them: read the whole concatenation.
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
        return reader.read()


def _zstd_compress(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def _multi_member(decompressobj_factory: Any, data: bytes) -> bytes:
    out = bytearray()
    while data:
        decompressor = decompressobj_factory()
        out += decompressor.decompress(data)
        if not decompressor.eof:
            raise ValueError("truncated stream")
        data = decompressor.unused_data
    return bytes(out)


def decompress_body(data: bytes, encoding: str) -> bytes:
    """Undo a request ``Content-Encoding``; raises ChError the way ClickHouse reports it."""
    method = encoding.strip().lower()
    if method in ("", "identity", "none"):
        return data
    try:
        if method == "gzip":
            return _multi_member(lambda: zlib.decompressobj(wbits=47), data)
        if method == "deflate":
            return _multi_member(zlib.decompressobj, data)
        if method == "zstd":
            return _zstd_decompress(data)
        if method == "lz4":
            return _lz4_decompress(data)
    except Exception as ex:
        raise ChError(CODE_CANNOT_DECOMPRESS, f"Cannot decompress request body ({method}): {ex}") from ex
    raise ChError(
        CODE_NOT_IMPLEMENTED,
        f"Compression method '{encoding}' is not implemented by this test endpoint (only gzip, deflate, zstd, lz4)",
    )


def choose_response_encoding(accept_encoding: str) -> str | None:
    """ClickHouse's chooseHTTPCompressionMethod order, limited to what this process can produce."""
    for method in ("zstd", "lz4", "gzip", "deflate"):
        if method in accept_encoding:
            return method
    return None


def compress_body(data: bytes, method: str) -> bytes:
    if method == "zstd":
        return _zstd_compress(data)
    if method == "lz4":
        import lz4.frame

        return lz4.frame.compress(data)
    if method == "gzip":
        return gzip.compress(data)
    if method == "deflate":
        return zlib.compress(data)
    raise ValueError(method)


# ---------------------------------------------------------------------------------------------
# Statement scanning: just enough lexing to split an INSERT's SQL from its inline data and to
# find a trailing FORMAT clause, without being fooled by quotes, comments or parentheses.

_WORD_RE = re.compile(rb"[A-Za-z_][A-Za-z0-9_$]*")
_RESULT_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "FROM"})


@dataclass
class _Token:
    text: str  # upper-cased word, or the punctuation character
    start: int
    end: int
    depth: int
    is_word: bool


def _tokens(data: bytes, limit: int | None = None) -> Iterator[_Token]:
    end_at = len(data) if limit is None else min(len(data), limit)
    i = 0
    depth = 0
    while i < end_at:
        c = data[i]
        if c in b" \t\r\n\f\v":
            i += 1
        elif data.startswith(b"--", i):
            nl = data.find(b"\n", i)
            i = end_at if nl < 0 else nl + 1
        elif data.startswith(b"/*", i):
            close = data.find(b"*/", i + 2)
            i = end_at if close < 0 else close + 2
        elif c in b"'\"`":
            j = i + 1
            while j < end_at:
                if data[j] == 0x5C:  # backslash escape
                    j += 2
                    continue
                if data[j] == c:
                    if j + 1 < end_at and data[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            yield _Token(chr(c), i, j + 1, depth, False)
            i = j + 1
        elif (m := _WORD_RE.match(data, i)) is not None:
            yield _Token(m.group().decode("ascii").upper(), i, m.end(), depth, True)
            i = m.end()
        else:
            if c in b")]}":
                depth = max(0, depth - 1)
            yield _Token(chr(c), i, i + 1, depth, False)
            if c in b"([{":
                depth += 1
            i += 1


@dataclass
class Statement:
    """One request's statement, split the way the ClickHouse HTTP handler would."""

    keyword: str  # first keyword, upper-cased ("" if none)
    sql: bytes  # the statement text to run (for inline-data inserts: the part before the data)
    insert_format: str | None = None  # set for INSERT ... FORMAT <fmt> with inline data
    insert_head: bytes = b""  # "INSERT INTO t (cols)" part, before any SETTINGS/FORMAT
    insert_settings: bytes = b""  # "SETTINGS ..." clause of the INSERT, if any
    data: bytes = b""  # inline insert data
    output_format: str | None = None  # explicit trailing FORMAT of a non-insert statement

    @property
    def is_insert(self) -> bool:
        return self.keyword == "INSERT"

    @property
    def returns_rows(self) -> bool:
        return self.output_format is not None or self.keyword in _RESULT_KEYWORDS

    def head_text(self, limit: int = 300) -> str:
        return self.sql[:limit].decode("utf-8", "replace")


def parse_statement(text: bytes) -> Statement:
    """Classify a statement and, for ``INSERT ... FORMAT x <data>``, locate the data like ClickHouse does."""
    first = next((t for t in _tokens(text, limit=4096) if t.is_word), None)
    keyword = first.text if first else ""
    if keyword != "INSERT":
        tokens = list(_tokens(text))
        output_format = None
        for i, tok in enumerate(tokens):
            if (
                tok.is_word
                and tok.text == "FORMAT"
                and tok.depth == 0
                and i + 1 < len(tokens)
                and tokens[i + 1].is_word
            ):
                rest = tokens[i + 2 :]
                # Only a trailing FORMAT (optionally followed by SETTINGS or ';') is an output format.
                if not rest or rest[0].text in (";", "SETTINGS"):
                    output_format = text[tokens[i + 1].start : tokens[i + 1].end].decode()
        return Statement(keyword, text, output_format=output_format)

    settings_at: int | None = None
    it = _tokens(text, limit=INSERT_HEAD_SCAN_LIMIT)
    for tok in it:
        if tok.depth != 0 or not tok.is_word:
            continue
        if tok.text in ("VALUES", "SELECT", "WITH", "FROM"):
            return Statement(keyword, text)  # no separate data section: run the text as SQL
        if tok.text == "SETTINGS" and settings_at is None:
            settings_at = tok.start
        elif tok.text == "FORMAT":
            name = next(it, None)
            if name is None or not name.is_word:
                break
            # Data starts after the first newline, if there is one, or after all the whitespace otherwise.
            pos = name.end
            while pos < len(text) and text[pos] in b" \t\f":
                pos += 1
            if text.startswith(b"\r", pos):
                pos += 1
            if text.startswith(b"\n", pos):
                pos += 1
            head_end = settings_at if settings_at is not None else tok.start
            return Statement(
                keyword,
                text[: name.end],
                insert_format=text[name.start : name.end].decode(),
                insert_head=text[:head_end].rstrip(),
                insert_settings=text[settings_at : tok.start].strip() if settings_at is not None else b"",
                data=text[pos:],
            )
    return Statement(keyword, text)


# ---------------------------------------------------------------------------------------------
# The engine


_SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE_RE = re.compile(r"Code: (\d+)\. ")
_NESTED_RE = re.compile(r"^Code: (\d+)\. DB::Exception: (?=Code: \1\. DB::Exception: )")
_INNER_VERSION_RE = re.compile(r" \(version [0-9.]+\)\.")


def _sql_string(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _check_setting_name(name: str) -> str:
    if not _SETTING_NAME_RE.match(name):
        raise ChError(
            CODE_UNKNOWN_SETTING,
            f"Code: {CODE_UNKNOWN_SETTING}. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)",
        )
    return name


@dataclass
class ExecResult:
    body: bytes
    result_format: str | None  # set when the statement produced a result set (X-ClickHouse-Format)
    summary: dict[str, str]
    rows_written: int


@dataclass
class _Session:
    handle: Any
    timeout: float
    last_used: float
    busy: bool = False


class Engine:
    """The chDB engine behind the endpoint: one data path per process, every engine call serialised.

    Sessionless requests run on a fresh connection handle (cheap, and no state can leak between
    requests); a ``session_id`` gets its own long-lived handle so ``SET``/``USE``/temporary tables
    persist, with per-request URL settings applied and then restored around each query.
    """

    def __init__(self, path: str | os.PathLike[str], default_settings: Mapping[str, str] | None = None):
        import chdb

        self._chdb = chdb
        self.path = os.path.abspath(path)
        os.makedirs(self.path, exist_ok=True)
        self.default_settings = {_check_setting_name(k): str(v) for k, v in (default_settings or {}).items()}
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()
        self._tmpdir = tempfile.mkdtemp(prefix="chhttp-infile-")
        self._closed = False
        self._root = chdb.connect(self.path)  # keeps the engine up between requests
        try:
            self._apply(self._root, self.default_settings)
            info = self._root.query(
                "SELECT version(), timezone(), getSetting('enable_http_compression')", "TabSeparated"
            )
            self.version, self.timezone, compression = info.bytes().decode().rstrip("\n").split("\t")
            self.http_compression_default = compression in ("1", "true")
            names = self._root.query(
                "SELECT number, errorCodeToName(number) AS n FROM numbers(2000) WHERE n != ''", "TabSeparated"
            )
            self.error_names = {
                int(c): n for c, n in (line.split("\t") for line in names.bytes().decode().splitlines())
            }
        except Exception:
            self.close()
            raise

    # -- errors ------------------------------------------------------------------------------

    def error_text(self, code: int, message: str) -> str:
        """A ClickHouse-style exception body for an error this module raises itself."""
        name = self.error_names.get(code, "UNKNOWN_EXCEPTION")
        return self.with_version(f"Code: {code}. DB::Exception: {message}. ({name})")

    def with_version(self, text: str) -> str:
        return f"{text.rstrip()} (version {self.version} (official build))\n"

    def _engine_error(self, ex: Exception) -> ChError:
        text = str(ex).strip()
        text = text[text.find("Code: ") :] if "Code: " in text else text
        # INFILE errors come wrapped twice with an inner version trailer; unwrap to what a server sends.
        if _NESTED_RE.match(text):
            text = _INNER_VERSION_RE.sub("", _NESTED_RE.sub("", text, count=1))
            text = re.sub(r"(\([A-Z_0-9]+\))\s+\1$", r"\1", text)
        match = _CODE_RE.match(text)
        code = int(match.group(1)) if match else 1001  # STD_EXCEPTION
        if not match:
            text = f"Code: {code}. DB::Exception: {text}. (STD_EXCEPTION)"
        return ChError(code, self.with_version(text))

    # -- handles and settings ----------------------------------------------------------------

    def _query(
        self, handle: Any, sql: str | bytes, fmt: str = "TabSeparated", params: dict[str, str] | None = None
    ) -> Any:
        try:
            return handle.query(sql, fmt, params=params or {})
        except ChError:
            raise
        except Exception as ex:
            raise self._engine_error(ex) from ex

    def _apply(self, handle: Any, settings: Mapping[str, str]) -> None:
        if settings:
            clause = ", ".join(f"{_check_setting_name(k)} = {_sql_string(v)}" for k, v in settings.items())
            self._query(handle, f"SET {clause}")

    def _snapshot(self, handle: Any, names: list[str]) -> dict[str, tuple[str, bool]]:
        listed = ", ".join(_sql_string(_check_setting_name(n)) for n in names)
        result = self._query(
            handle, f"SELECT name, value, changed FROM system.settings WHERE name IN ({listed})", "JSONEachRow"
        )
        snapshot = {
            row["name"]: (row["value"], bool(row["changed"])) for row in map(json.loads, result.bytes().splitlines())
        }
        for name in names:  # custom settings are not listed; reset them to DEFAULT so they cannot leak
            snapshot.setdefault(name, ("", False))
        return snapshot

    def _restore(self, handle: Any, snapshot: dict[str, tuple[str, bool]]) -> None:
        assignments = []
        for name, (value, changed) in snapshot.items():
            # Values already rendered as quoted literals (e.g. 'auto(4)') are re-applied verbatim.
            literal = value if value.startswith("'") and value.endswith("'") and len(value) > 1 else _sql_string(value)
            assignments.append(f"{name} = {literal if changed else 'DEFAULT'}")
        if not assignments:
            return
        try:
            self._query(handle, "SET " + ", ".join(assignments))
        except ChError:
            for assignment in assignments:  # one bad value must not keep the others from being restored
                with contextlib.suppress(ChError):
                    self._query(handle, f"SET {assignment}")

    def _open_session(self, session_id: str, timeout: float, check: bool) -> _Session:
        now = time.monotonic()
        with self._sessions_lock:
            expired = [sid for sid, s in self._sessions.items() if not s.busy and now - s.last_used > s.timeout]
            stale = [self._sessions.pop(sid) for sid in expired]
            session = self._sessions.get(session_id)
            if session is not None and session.busy:
                raise ChError(
                    CODE_SESSION_IS_LOCKED,
                    self.error_text(CODE_SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"),
                )
            if session is None and check:
                raise ChError(
                    CODE_SESSION_NOT_FOUND, self.error_text(CODE_SESSION_NOT_FOUND, f"Session {session_id} not found")
                )
            if session is None:
                session = self._sessions[session_id] = _Session(None, timeout, now)
            session.busy = True
            session.timeout = timeout
        for old in stale:
            self._close_handle(old.handle)
        return session

    def _release_session(self, session_id: str, session: _Session, close: bool) -> None:
        with self._sessions_lock:
            session.busy = False
            session.last_used = time.monotonic()
            if close and self._sessions.get(session_id) is session:
                del self._sessions[session_id]
            else:
                close = False
        if close:
            self._close_handle(session.handle)

    def _connect(self) -> Any:
        try:
            return self._chdb.connect(self.path)
        except Exception as ex:
            raise self._engine_error(ex) from ex

    def _close_handle(self, handle: Any) -> None:
        if handle is not None:
            with self._lock, contextlib.suppress(Exception):
                handle.close()

    # -- execution ---------------------------------------------------------------------------

    def execute(
        self,
        stmt: Statement,
        *,
        settings: Mapping[str, str],
        params: Mapping[str, str],
        database: str | None = None,
        default_format: str | None = None,
        session_id: str | None = None,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        session_check: bool = False,
        close_session: bool = False,
    ) -> ExecResult:
        if self._closed:
            raise ChError(
                CODE_NETWORK_ERROR, self.error_text(CODE_NETWORK_ERROR, "Server is shutting down"), status=503
            )
        infile = None
        try:
            sql: str | bytes = stmt.sql
            if stmt.insert_format is not None:
                # Written outside the engine lock so slow disks do not stall other requests.
                fd, infile = tempfile.mkstemp(dir=self._tmpdir, suffix=".bin")
                with os.fdopen(fd, "wb") as f:
                    f.write(stmt.data)
                parts = [stmt.insert_head, b" FROM INFILE ", _sql_string(infile).encode(), b" COMPRESSION 'none'"]
                if stmt.insert_settings:
                    parts += [b" ", stmt.insert_settings]
                parts += [b" FORMAT ", stmt.insert_format.encode()]
                sql = b"".join(parts)
            with contextlib.suppress(UnicodeDecodeError):
                sql = sql.decode() if isinstance(sql, bytes) else sql
            fmt = default_format or "TabSeparated"
            # readonly cannot be undone on a handle, so such requests never touch a session's handle.
            session = None
            if session_id and "readonly" not in settings:
                session = self._open_session(session_id, session_timeout, session_check)
            try:
                result = self._run(session, sql, fmt, dict(settings), dict(params), database)
            finally:
                if session is not None:
                    self._release_session(session_id or "", session, close_session)
        finally:
            if infile is not None:
                with contextlib.suppress(OSError):
                    os.unlink(infile)
        body = result.bytes() or b""
        summary = {
            "read_rows": str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "written_rows": str(result.rows_written()),
            "written_bytes": str(result.bytes_written()),
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        result_format = None
        if stmt.returns_rows and not stmt.is_insert:
            result_format = stmt.output_format or fmt
        return ExecResult(body, result_format, summary, int(result.rows_written()))

    def _run(
        self,
        session: _Session | None,
        sql: str | bytes,
        fmt: str,
        settings: dict[str, str],
        params: dict[str, str],
        database: str | None,
    ) -> Any:
        with self._lock:
            if self._closed:
                raise ChError(
                    CODE_NETWORK_ERROR, self.error_text(CODE_NETWORK_ERROR, "Server is shutting down"), status=503
                )
            if session is None:
                handle = self._connect()
                try:
                    if database:
                        self._query(handle, f"USE {_sql_identifier(database)}")
                    self._apply(handle, {**self.default_settings, **settings})
                    return self._query(handle, sql, fmt, params)
                finally:
                    handle.close()
            if session.handle is None:
                session.handle = self._connect()
                self._apply(session.handle, self.default_settings)
            handle = session.handle
            if database:
                self._query(handle, f"USE {_sql_identifier(database)}")
            if not settings:
                return self._query(handle, sql, fmt, params)
            for name in settings:
                _check_setting_name(name)
            snapshot = self._snapshot(handle, list(settings))
            try:
                self._apply(handle, settings)
                return self._query(handle, sql, fmt, params)
            finally:
                self._restore(handle, snapshot)

    def close(self) -> None:
        with self._sessions_lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        with self._lock:
            self._closed = True
            for handle in [s.handle for s in sessions] + [getattr(self, "_root", None)]:
                if handle is not None:
                    with contextlib.suppress(Exception):
                        handle.close()
        shutil.rmtree(self._tmpdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Fault injection

FAULT_KINDS = ("http_error", "ch_error", "delay", "cut")
FAULT_TARGETS = ("any", "insert", "query")
_FAULT_ALIASES = {"cut_after_apply": ("cut", True), "cut_before_apply": ("cut", False)}


@dataclass
class FaultRule:
    """One fault rule. It matches requests by ``target`` and fires ``count`` times, with
    ``probability`` per matching request, or (neither set) on every matching request.

    kind: ``http_error`` (a bare HTTP ``status``, like a proxy's 503), ``ch_error`` (a ClickHouse
    exception with ``code``/``message``; HTTP status as ClickHouse maps the code unless ``status``),
    ``delay`` (sleep ``seconds``), ``cut`` (close the TCP connection without a response).
    ``after_apply``: act after the statement ran on the engine (the insert is applied, the client
    never learns) instead of before it. Aliases: ``cut_after_apply`` / ``cut_before_apply``
    (target defaults to ``insert``). target: ``any``, ``insert`` (INSERT statements) or ``query``.
    Rules are checked in order; per phase the first firing error/cut wins and delays add up.
    ``/ping`` and the ``/__*`` control paths are never faulted (use refuse/stop for those).
    """

    kind: str
    target: str = "any"
    count: int | None = None
    probability: float | None = None
    after_apply: bool = False
    status: int | None = None
    code: int = 1002  # UNKNOWN_EXCEPTION
    message: str = "Fault injected by chhttp"
    seconds: float = 0.0
    fired: int = 0

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FaultRule:
        spec = dict(spec)
        kind = str(spec.pop("kind", ""))
        if kind in _FAULT_ALIASES:
            kind, after = _FAULT_ALIASES[kind]
            spec.setdefault("after_apply", after)
            spec.setdefault("target", "insert")
        spec.pop("fired", None)  # accept a round-tripped snapshot
        unknown = set(spec) - {f for f in cls.__dataclass_fields__ if f not in ("kind", "fired")}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        rule = cls(kind=kind, **spec)
        if rule.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS + tuple(_FAULT_ALIASES)}, got {kind!r}")
        if rule.target not in FAULT_TARGETS:
            raise ValueError(f"fault target must be one of {FAULT_TARGETS}, got {rule.target!r}")
        if rule.count is not None and rule.count < 0:
            raise ValueError("count must be >= 0")
        if rule.probability is not None and not 0.0 <= rule.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        return rule

    def matches(self, is_insert: bool) -> bool:
        return self.target == "any" or (self.target == "insert") == is_insert


@dataclass
class FaultPhase:
    delay: float = 0.0
    action: FaultRule | None = None  # http_error, ch_error or cut


@dataclass
class FaultPlan:
    before: FaultPhase = field(default_factory=FaultPhase)
    after: FaultPhase = field(default_factory=FaultPhase)
    fired: list[str] = field(default_factory=list)


class FaultInjector:
    """Thread-safe rule list; decisions use one seeded RNG so a request sequence replays identically."""

    def __init__(self, seed: int | None = 0):
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)

    def set(self, rules: list[FaultRule | Mapping[str, Any]], seed: int | None = None, append: bool = False) -> None:
        parsed = [r if isinstance(r, FaultRule) else FaultRule.from_dict(r) for r in rules]
        with self._lock:
            if seed is not None:
                self._rng = random.Random(seed)
            self._rules = (self._rules if append else []) + parsed

    def clear(self) -> None:
        self.set([])

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(r) for r in self._rules]

    def plan(self, is_insert: bool) -> FaultPlan:
        plan = FaultPlan()
        with self._lock:
            for rule in self._rules:
                phase = plan.after if rule.after_apply else plan.before
                if not rule.matches(is_insert) or (rule.kind != "delay" and phase.action is not None):
                    continue
                if rule.count is not None and rule.count <= 0:
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                rule.fired += 1
                plan.fired.append(rule.kind)
                if rule.kind == "delay":
                    phase.delay += rule.seconds
                else:
                    phase.action = rule
            self._rules = [r for r in self._rules if r.count is None or r.count > 0]
        return plan


# ---------------------------------------------------------------------------------------------
# Statistics


class Stats:
    COUNTERS = (
        "requests",  # ClickHouse-protocol requests (not /ping, not control)
        "pings",
        "queries",  # non-INSERT statements executed by the engine without error
        "inserts",  # INSERT requests received
        "inserts_applied",  # INSERT statements the engine executed without error
        "rows_written",  # engine-reported written rows, summed
        "errors",  # ClickHouse errors answered (injected ones excluded)
        "auth_failures",
        "faults_injected",
        "connections",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(self.COUNTERS, 0)
        self._faults: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self._log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)

    def reset(self) -> None:
        """Zero the counters (the request log is cleared separately)."""
        with self._lock:
            self._counts = dict.fromkeys(self.COUNTERS, 0)
            self._faults = dict.fromkeys(FAULT_KINDS, 0)

    def inc(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counts[name] += by

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1
            self._counts["faults_injected"] += 1

    def log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self._counts, "faults": dict(self._faults)}

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._log]


# ---------------------------------------------------------------------------------------------
# HTTP


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default backlog of 5 stalls bursts of parallel connects by a SYN retry (1 s)

    def __init__(self, endpoint: ChHttpEndpoint, port: int):
        self.endpoint = endpoint
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        self.endpoint._stats.inc("connections")
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def reset_connections(self, keep: socket.socket | None = None) -> None:
        """Shut every open connection (except ``keep``); handler threads then see EOF and exit."""
        with self._conns_lock:
            conns = [c for c in self._conns if c is not keep]
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection error", exc_info=True)


_PASSWORD_RE = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chhttp"
    timeout = KEEP_ALIVE_TIMEOUT
    server: _HttpServer

    # -- plumbing ----------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK add ~40 ms per response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:  # BaseHTTPRequestHandler's signature
        logger.debug("%s", _PASSWORD_RE.sub(r"\1***", format % args))

    def do_GET(self) -> None:  # http.server naming
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        engine = self.server.endpoint.engine

        def too_large() -> ChError:
            return ChError(
                CODE_QUERY_IS_TOO_LARGE, engine.error_text(CODE_QUERY_IS_TOO_LARGE, "Request body too large")
            )

        def size_of(value: bytes | str) -> int:
            try:
                return int(value, 16) if isinstance(value, bytes) else int(value)
            except ValueError:
                raise ChError(
                    CODE_BAD_ARGUMENTS, engine.error_text(CODE_BAD_ARGUMENTS, "Malformed body length")
                ) from None

        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size_line = self.rfile.readline(1024)
                if not size_line:
                    raise ConnectionError("client closed mid-body")
                size = size_of(size_line.split(b";", 1)[0].strip() or b"0")
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                if len(out) + size > MAX_BODY_BYTES:
                    raise too_large()
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise ConnectionError("client closed mid-body")
                out += chunk
                self.rfile.readline(1024)  # CRLF after the chunk
        length = size_of(self.headers.get("Content-Length") or "0")
        if length > MAX_BODY_BYTES:
            raise too_large()
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise ConnectionError("client closed mid-body")
        return body

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", f"timeout={KEEP_ALIVE_TIMEOUT}")
        self.end_headers()
        self._responded = True
        self.wfile.write(body)

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, indent=1).encode() + b"\n", {"Content-Type": "application/json"})

    def _cut(self) -> None:
        """Drop the connection without a response, like a server crash or a proxy reset."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _dispatch(self) -> None:
        endpoint = self.server.endpoint
        url = urlsplit(self.path)
        self._responded = False
        try:
            if url.path.startswith("/__"):
                self._control(url.path)
            elif url.path in ("/ping", "/replicas_status"):
                endpoint._stats.inc("pings")
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            else:
                self._serve_query(url.query)
        except (ConnectionError, TimeoutError, OSError):
            # The peer went away (or a cut/refuse shut the socket); nothing left to answer.
            self.close_connection = True
        except Exception as ex:
            # A fixture bug: answer it as a ClickHouse error so the failing test shows it, and log the traceback.
            logger.exception("chhttp internal error")
            self.close_connection = True
            if not self._responded:
                err = ChError(1001, endpoint.engine.error_text(1001, f"chhttp internal error: {ex!r}"))
                with contextlib.suppress(OSError):
                    self._send(err.status, self._error_body(err), self._error_headers(err, {}))

    # -- control plane -----------------------------------------------------------------------

    def _control(self, path: str) -> None:
        endpoint = self.server.endpoint
        method = self.command
        try:
            raw = self._read_body()
            payload = json.loads(raw) if raw.strip() else {}
        except (ValueError, ChError) as ex:
            self._send_json(400, {"error": f"bad control request: {ex}"})
            return
        try:
            if path == "/__stats":
                if method == "DELETE":
                    endpoint.reset_stats()
                self._send_json(200, endpoint.stats())
            elif path == "/__requests":
                if method == "DELETE":
                    endpoint._stats.clear_log()
                self._send_json(200, endpoint.requests())
            elif path == "/__fault":
                if method == "DELETE":
                    endpoint.clear_faults()
                elif method == "POST":
                    mode = payload.get("mode", "replace")
                    if mode not in ("replace", "append"):
                        raise ValueError("mode must be 'replace' or 'append'")
                    endpoint.set_faults(payload.get("faults", []), seed=payload.get("seed"), append=mode == "append")
                self._send_json(200, {"faults": endpoint.faults()})
            elif path == "/__refuse" and method == "POST":
                seconds = float(payload.get("seconds", 1.0))
                # Close the listener before answering, so the caller's next connect is already refused.
                endpoint._refuse(seconds, keep=self.connection)
                self.close_connection = True
                self._send_json(200, {"refusing_for": seconds})
            elif path == "/__drop_connections" and method == "POST":
                self._send_json(200, {"dropped": True})
                self.close_connection = True
                endpoint.drop_connections(keep=self.connection)
            else:
                self._send_json(404, {"error": f"no control endpoint {method} {path}"})
        except (ValueError, TypeError) as ex:
            self._send_json(400, {"error": str(ex)})

    # -- ClickHouse protocol -----------------------------------------------------------------

    def _credentials(self, params: Mapping[str, str]) -> tuple[str, str]:
        engine = self.server.endpoint.engine
        auth = self.headers.get("Authorization")
        h_user, h_key = self.headers.get("X-ClickHouse-User"), self.headers.get("X-ClickHouse-Key")
        in_params = "user" in params or "password" in params

        def invalid(why: str) -> ChError:
            return ChError(
                CODE_AUTHENTICATION_FAILED,
                engine.error_text(CODE_AUTHENTICATION_FAILED, f"Invalid authentication: {why}"),
            )

        if h_user is not None or h_key is not None:
            if auth or in_params:
                raise invalid(
                    "it is not allowed to use X-ClickHouse HTTP headers and other authentication methods simultaneously"
                )
            return h_user or "default", h_key or ""
        if auth:
            if in_params:
                raise invalid(
                    "it is not allowed to use Authorization HTTP header "
                    "and authentication via parameters simultaneously"
                )
            scheme, _, info = auth.partition(" ")
            if scheme.lower() != "basic":
                raise invalid(f"'{scheme}' HTTP Authorization scheme is not supported")
            try:
                user, _, password = base64.b64decode(info.strip()).decode().partition(":")
            except ValueError as ex:
                raise invalid("malformed Basic credentials") from ex
            return user, password
        return params.get("user") or "default", params.get("password", "")

    def _error_body(self, err: ChError) -> bytes:
        text = err.text if "(version " in err.text else self.server.endpoint.engine.with_version(err.text)
        return text.encode()

    def _error_headers(self, err: ChError, base: Mapping[str, str]) -> dict[str, str]:
        return {**base, "X-ClickHouse-Exception-Code": str(err.code), "Content-Type": "text/plain; charset=UTF-8"}

    def _serve_query(self, query_string: str) -> None:
        endpoint = self.server.endpoint
        stats = endpoint._stats
        started = time.monotonic()
        params: dict[str, str] = dict(parse_qsl(query_string, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        entry: dict[str, Any] = {"method": self.command, "query_id": query_id, "session_id": params.get("session_id")}
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Server-Display-Name": endpoint.display_name}
        try:
            body = self._read_body()
        except ChError as err:
            self.close_connection = True  # the rest of the body is still on the wire
            self._finish(entry, started, err.status, self._error_body(err), self._error_headers(err, headers))
            return
        try:
            prepared = self._prepare(params, body, entry)
        except ChError as err:
            stats.inc("requests")
            stats.inc("errors")
            self._finish(entry, started, err.status, self._error_body(err), self._error_headers(err, headers))
            return
        if prepared is None:  # GET / without a query: the default "Ok." response
            stats.inc("pings")
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        stats.inc("requests")
        stmt, settings = prepared
        if stmt.is_insert:
            stats.inc("inserts")
        plan = endpoint._faults.plan(stmt.is_insert)
        entry["faults"] = plan.fired
        for kind in plan.fired:
            stats.fault(kind)

        if self._apply_phase(plan.before, entry, started):
            return
        try:
            status, payload = 200, self._execute(stmt, settings, params, headers, entry)
        except ChError as err:
            stats.inc("errors")
            status, payload, headers = err.status, self._error_body(err), self._error_headers(err, headers)
        if self._apply_phase(plan.after, entry, started):
            return
        self._finish(entry, started, status, payload, headers)

    def _prepare(
        self, params: dict[str, str], body: bytes, entry: dict[str, Any]
    ) -> tuple[Statement, dict[str, str]] | None:
        """Decode the request into a statement plus its settings (None for a bare ``GET /``)."""
        engine = self.server.endpoint.engine
        content_type = self.headers.get("Content-Type", "")
        if content_type.lower().startswith("multipart/form-data"):
            params.update(self._form_fields(content_type, body))
            body = b""
        encoding = self.headers.get("Content-Encoding", "")
        entry["content_encoding"] = encoding or None
        body = decompress_body(body, encoding)
        if any(params.get(name, "0") not in ("0", "false", "") for name in ("compress", "decompress")):
            raise ChError(
                CODE_NOT_IMPLEMENTED,
                engine.error_text(
                    CODE_NOT_IMPLEMENTED,
                    "ClickHouse-native compression (compress/decompress=1) is not supported by chhttp",
                ),
            )
        query = params.get("query", "")
        if self.command == "GET" and not query and not body:
            return None
        text = (query.encode() + b"\n" if query else b"") + body
        stmt = parse_statement(text)
        if not text.strip(b" \t\r\n;"):
            raise ChError(CODE_SYNTAX_ERROR, engine.error_text(CODE_SYNTAX_ERROR, "Empty query"))
        settings = {k: v for k, v in params.items() if k not in TRANSPORT_PARAMS and not k.startswith("param_")}
        if self.command == "GET" and settings.get("readonly", "0") in ("0", ""):
            settings["readonly"] = "2"  # like ClickHouse: GET never modifies data
        entry.update(
            statement=stmt.head_text(), is_insert=stmt.is_insert, settings=settings, database=params.get("database")
        )
        return stmt, settings

    def _execute(
        self,
        stmt: Statement,
        settings: dict[str, str],
        params: Mapping[str, str],
        headers: dict[str, str],
        entry: dict[str, Any],
    ) -> bytes:
        """Authenticate and run the statement; fills the success headers and returns the body."""
        endpoint = self.server.endpoint
        engine = endpoint.engine
        user, password = self._credentials(params)
        if not endpoint._check_user(user, password):
            endpoint._stats.inc("auth_failures")
            raise ChError(
                CODE_AUTHENTICATION_FAILED,
                engine.error_text(
                    CODE_AUTHENTICATION_FAILED,
                    f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
                ),
            )
        result = engine.execute(
            stmt,
            settings=settings,
            params={k[len("param_") :]: v for k, v in params.items() if k.startswith("param_")},
            database=params.get("database") or None,
            default_format=params.get("default_format") or None,
            session_id=params.get("session_id") or None,
            session_timeout=float(params.get("session_timeout") or DEFAULT_SESSION_TIMEOUT),
            session_check=params.get("session_check") == "1",
            close_session=params.get("close_session") == "1",
        )
        endpoint._stats.inc("inserts_applied" if stmt.is_insert else "queries")
        endpoint._stats.inc("rows_written", result.rows_written)
        headers["X-ClickHouse-Summary"] = json.dumps(result.summary, separators=(",", ":"))
        headers["X-ClickHouse-Timezone"] = settings.get("session_timezone") or engine.timezone
        if result.result_format:
            headers["X-ClickHouse-Format"] = result.result_format
        headers["Content-Type"] = _content_type(result.result_format)
        return self._maybe_compress(result.body, settings, headers, entry)

    def _maybe_compress(
        self, payload: bytes, settings: Mapping[str, str], headers: dict[str, str], entry: dict[str, Any]
    ) -> bytes:
        engine = self.server.endpoint.engine
        enabled = settings.get("enable_http_compression", engine.default_settings.get("enable_http_compression"))
        on = engine.http_compression_default if enabled is None else enabled.lower() in ("1", "true")
        method = choose_response_encoding(self.headers.get("Accept-Encoding", "")) if on else None
        entry["response_encoding"] = method
        if method is None:
            return payload
        headers["Content-Encoding"] = method
        return compress_body(payload, method)

    def _form_fields(self, content_type: str, body: bytes) -> dict[str, str]:
        engine = self.server.endpoint.engine
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        fields: dict[str, str] = {}
        for part in message.iter_parts():
            if part.get_filename() is not None:
                raise ChError(
                    CODE_NOT_IMPLEMENTED,
                    engine.error_text(
                        CODE_NOT_IMPLEMENTED, "External data (multipart file parts) is not supported by chhttp"
                    ),
                )
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str):
                fields[name] = (part.get_payload(decode=True) or b"").decode()
        return fields

    def _apply_phase(self, phase: FaultPhase, entry: dict[str, Any], started: float) -> bool:
        """Run one fault phase; True when the fault answered (or cut) the request itself."""
        endpoint = self.server.endpoint
        if phase.delay > 0:
            endpoint._stopping.wait(phase.delay)
        rule = phase.action
        if rule is None:
            return False
        if rule.kind == "cut":
            entry.update(status="cut", ms=round((time.monotonic() - started) * 1000, 1))
            endpoint._stats.log(entry)
            self._cut()
            return True
        headers = {
            "X-ClickHouse-Server-Display-Name": endpoint.display_name,
            "Content-Type": "text/plain; charset=UTF-8",
        }
        if rule.kind == "http_error":  # a bare status, as a proxy or load balancer would send it
            status = rule.status or 503
            try:
                payload = f"{HTTPStatus(status).phrase}\n".encode()
            except ValueError:
                payload = b"Error\n"
        else:
            err = ChError(rule.code, endpoint.engine.error_text(rule.code, rule.message), rule.status)
            status, payload, headers = err.status, self._error_body(err), self._error_headers(err, headers)
        self._finish(entry, started, status, payload, headers)
        return True

    def _finish(
        self, entry: dict[str, Any], started: float, status: int, payload: bytes, headers: Mapping[str, str]
    ) -> None:
        entry.update(status=status, ms=round((time.monotonic() - started) * 1000, 1))
        if "X-ClickHouse-Exception-Code" in headers:
            entry["exception_code"] = int(headers["X-ClickHouse-Exception-Code"])
        self.server.endpoint._stats.log(entry)
        self._send(status, payload, headers)


_BINARY_FORMATS = ("Native", "RowBinary", "Arrow", "Parquet", "ORC", "Avro", "MsgPack", "Protobuf", "CapnProto")


def _content_type(result_format: str | None) -> str:
    fmt = result_format or ""
    if fmt.startswith(("TabSeparated", "TSV")):
        return "text/tab-separated-values; charset=UTF-8"
    if fmt.startswith("CSV"):
        return "text/csv; charset=UTF-8; header=absent"
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if fmt.startswith(_BINARY_FORMATS):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


# ---------------------------------------------------------------------------------------------
# In-process endpoint


class ChHttpEndpoint:
    """The HTTP endpoint running in this process (the engine opens on construction).

    ``stop()``/``start()`` close and reopen the listener on the same port while the engine and its
    data stay up; ``close()`` also shuts the engine. Remember chDB allows one data path per process.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        port: int = 0,
        user: str = "default",
        password: str = "",
        settings: Mapping[str, str] | None = None,
        seed: int | None = 0,
    ):
        self.engine = Engine(path, settings)
        self.user = user
        self._password = password
        self.display_name = socket.gethostname()
        self._port = port
        self._faults = FaultInjector(seed)
        self._stats = Stats()
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._state_lock = threading.RLock()
        self._stopping = threading.Event()  # wakes delayed requests when the listener goes away
        self._reopen: threading.Timer | None = None
        self._closed = False
        self._started_at = time.time()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def _check_user(self, user: str, password: str) -> bool:
        return hmac.compare_digest(user.encode(), self.user.encode()) and hmac.compare_digest(
            password.encode(), self._password.encode()
        )

    def start(self) -> ChHttpEndpoint:
        with self._state_lock:
            if self._closed:
                raise RuntimeError("endpoint is closed")
            if self._server is not None:
                return self
            server = _HttpServer(self, self._port)
            self._port = server.server_address[1]
            self._stopping.clear()
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            self._thread.start()
            logger.info("listening on %s", self.url)
            return self

    def stop(self) -> None:
        """Stop listening and reset every connection; the engine (and its data) stays open."""
        self._stop_listener(keep=None, join=True)

    def _stop_listener(self, keep: socket.socket | None, join: bool) -> None:
        with self._state_lock:
            if self._reopen is not None:
                self._reopen.cancel()
                self._reopen = None
            server, self._server = self._server, None
            if server is None:
                return
            self._stopping.set()
            server.shutdown()
            server.socket.close()
            server.reset_connections(keep=keep)
            if join:
                server.server_close()  # joins handler threads, which exit once their sockets are shut

    def _refuse(self, seconds: float, keep: socket.socket | None = None) -> None:
        # Called from a handler thread too, which must not join itself: only close the listener here.
        with self._state_lock:
            self._stop_listener(keep=keep, join=False)
            self._reopen = threading.Timer(seconds, self._reopen_listener)
            self._reopen.daemon = True
            self._reopen.start()

    def _reopen_listener(self) -> None:
        with self._state_lock:
            self._reopen = None
            if not self._closed:
                try:
                    self.start()
                except OSError:
                    logger.exception("could not listen again on port %d", self._port)

    def refuse_for(self, seconds: float) -> None:
        """Refuse connections (listener closed, open connections reset) for ``seconds``, then listen again."""
        self._refuse(seconds)

    def drop_connections(self, keep: socket.socket | None = None) -> None:
        """Reset all open keep-alive connections, as a server or proxy restart would."""
        server = self._server
        if server is not None:
            server.reset_connections(keep=keep)

    def close(self) -> None:
        with self._state_lock:
            self._closed = True
            self._stop_listener(keep=None, join=True)
        self.engine.close()

    def __enter__(self) -> ChHttpEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Same control surface as ChHttpServer, so tests can use either.

    def set_fault(self, kind: str, **spec: Any) -> None:
        """Replace all fault rules with one rule (see FaultRule)."""
        self._faults.set([{"kind": kind, **spec}])

    def set_faults(self, rules: list[Mapping[str, Any]], seed: int | None = None, append: bool = False) -> None:
        self._faults.set(list(rules), seed=seed, append=append)

    def clear_faults(self) -> None:
        self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        return self._faults.snapshot()

    def stats(self) -> dict[str, Any]:
        return {
            **self._stats.snapshot(),
            "pid": os.getpid(),
            "port": self._port,
            "path": self.engine.path,
            "version": self.engine.version,
            "uptime_s": round(time.time() - self._started_at, 3),
        }

    def reset_stats(self) -> None:
        self._stats.reset()

    def requests(self) -> list[dict[str, Any]]:
        return self._stats.requests()

    def client(self, **kwargs: Any) -> Any:
        """A clickhouse-connect HTTP client for this endpoint (extra kwargs go to get_client)."""
        import clickhouse_connect

        kwargs.setdefault("username", self.user)
        kwargs.setdefault("password", self._password)
        return clickhouse_connect.get_client(host=HOST, port=self._port, **kwargs)


# ---------------------------------------------------------------------------------------------
# Subprocess helper


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ChHttpServer:
    """Runs ``python -m tests.chhttp`` as a child process and steers it over its control endpoints.

    ``start()`` waits until the child answers ``/__stats`` with its own pid; ``stop()`` sends
    SIGTERM (clean shutdown), ``kill()`` SIGKILL (crash); ``restart()`` = stop + start on the same
    port and data path. The password reaches the child through a 0600 file, never argv.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        port: int | None = None,
        user: str = "default",
        password: str = "",
        settings: Mapping[str, str] | None = None,
        seed: int | None = None,
        startup_timeout: float = 60.0,
    ):
        self.path = os.path.abspath(path)
        self.user = user
        self._password = password
        self._settings = dict(settings or {})
        self._seed = seed
        self._port = port
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir = tempfile.mkdtemp(prefix="chhttp-run-")
        self.log_path = os.path.join(self._workdir, "server.log")
        self._password_file = os.path.join(self._workdir, "password")
        fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> ChHttpServer:
        if self.running:
            return self
        attempts = 3 if self._port is None else 1  # a picked port can be taken by a racing process
        for attempt in range(attempts):
            if self._port is None or attempt:
                self._port = free_port()
            try:
                self._spawn()
                return self
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        return self

    def _spawn(self) -> None:
        cmd = [sys.executable, "-m", "tests.chhttp", "--port", str(self._port), "--path", self.path]
        cmd += ["--user", self.user, "--password-file", self._password_file]
        for name, value in self._settings.items():
            cmd += ["--setting", f"{name}={value}"]
        if self._seed is not None:
            cmd += ["--seed", str(self._seed)]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                cwd=Path(__file__).resolve().parent.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"chhttp exited during startup:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                if self._control("GET", "/__stats", timeout=1.0).get("pid") == self._proc.pid:
                    return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"chhttp did not become ready within {self._startup_timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        """Clean shutdown (SIGTERM); falls back to SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Crash the server (SIGKILL): no response, no clean engine shutdown."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> ChHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _control(self, method: str, path: str, payload: Any = None, timeout: float = 10.0) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        with self._opener.open(request, timeout=timeout) as response:
            return json.loads(response.read())

    def set_fault(self, kind: str, **spec: Any) -> None:
        """Replace all fault rules with one rule (see FaultRule)."""
        self.set_faults([{"kind": kind, **spec}])

    def set_faults(self, rules: list[Mapping[str, Any]], seed: int | None = None, append: bool = False) -> None:
        body: dict[str, Any] = {"faults": [dict(r) for r in rules], "mode": "append" if append else "replace"}
        if seed is not None:
            body["seed"] = seed
        self._control("POST", "/__fault", body)

    def clear_faults(self) -> None:
        self._control("DELETE", "/__fault")

    def faults(self) -> list[dict[str, Any]]:
        return self._control("GET", "/__fault")["faults"]

    def stats(self) -> dict[str, Any]:
        return self._control("GET", "/__stats")

    def reset_stats(self) -> None:
        self._control("DELETE", "/__stats")

    def requests(self) -> list[dict[str, Any]]:
        return self._control("GET", "/__requests")

    def refuse_for(self, seconds: float) -> None:
        """Refuse connections for ``seconds`` without restarting the process (data and sessions stay)."""
        self._control("POST", "/__refuse", {"seconds": seconds})

    def drop_connections(self) -> None:
        self._control("POST", "/__drop_connections")

    def client(self, **kwargs: Any) -> Any:
        """A clickhouse-connect HTTP client for this server (extra kwargs go to get_client)."""
        import clickhouse_connect

        kwargs.setdefault("username", self.user)
        kwargs.setdefault("password", self._password)
        return clickhouse_connect.get_client(host=HOST, port=self.port, **kwargs)


# ---------------------------------------------------------------------------------------------
# Standalone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chhttp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0 picks one)")
    parser.add_argument("--path", required=True, help="chDB data directory")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password-file", help="file holding the password (default: empty password)")
    parser.add_argument(
        "--setting", action="append", default=[], metavar="NAME=VALUE", help="server-wide default setting"
    )
    parser.add_argument("--seed", type=int, default=0, help="fault RNG seed")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    password = ""
    if args.password_file:
        password = Path(args.password_file).read_text().rstrip("\r\n")
    settings = dict(s.split("=", 1) for s in args.setting)

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    endpoint = ChHttpEndpoint(
        args.path, port=args.port, user=args.user, password=password, settings=settings, seed=args.seed
    )
    try:
        endpoint.start()
        print(f"listening on {endpoint.url}", flush=True)
        while not done.wait(0.5):
            pass
    finally:
        endpoint.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
