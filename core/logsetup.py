"""Log lines: readable on a terminal, JSON lines when stderr is not one (or --log-format).

JSON lines carry every ``extra=`` field as a key (see :func:`file_fields` for the common ones:
event, path, table, file_id, version, rows, duration_s, error_kind), so a log pipeline can
filter on them without parsing the message. An exception adds ``error`` (its last line) at any
level, and the full ``traceback`` when the log level is debug; text lines stay one line unless
the level is debug.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from chute.core.ratelimit import RateLimit

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


def file_fields(row: Any, event: str, **more: Any) -> dict[str, Any]:
    """The ``extra=`` of a log line about one file version (a ledger FileRow): the keys JSON lines carry."""
    out: dict[str, Any] = {"event": event, "path": row.path, "table": row.table_name, "file_id": row.id,
                           "version": row.generation}
    if row.rows is not None:
        out["rows"] = row.rows
    if row.error_kind:
        out["error_kind"] = row.error_kind
    out.update({k: v for k, v in more.items() if v is not None})
    return out


def _debugging() -> bool:
    return logging.getLogger().getEffectiveLevel() <= logging.DEBUG


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            text = self.formatException(record.exc_info)
            out["error"] = text.splitlines()[-1]
            if _debugging():
                out["traceback"] = text
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")

    def formatException(self, ei: Any) -> str:
        # One line, not a traceback: the operator needs the reason; --log-level debug shows it all.
        text = super().formatException(ei)
        return text if _debugging() else "  " + text.splitlines()[-1]


def configure(fmt: str = "auto", level: str = "info", stream=None) -> None:
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RateLimit())  # a fault repeating many times a second is a line now and then
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("watchdog", "clickhouse_connect", "urllib3", "apprise"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
