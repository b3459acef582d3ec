"""Log lines: readable on a terminal, JSON lines when stderr is not one (or --log-format)."""

from __future__ import annotations

import json
import logging
import sys
import time

from chute.core.ratelimit import RateLimit


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and record.levelno >= logging.ERROR:
            out["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")

    def formatException(self, ei) -> str:  # noqa: ANN001, N802
        # One line, not a traceback: the operator needs the reason, the developer has --log-level debug.
        return "  " + super().formatException(ei).splitlines()[-1]


def configure(fmt: str = "auto", level: str = "info", stream=None) -> None:  # noqa: ANN001
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RateLimit())  # a fault repeating many times a second is a line now and then
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("watchdog", "clickhouse_connect", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
