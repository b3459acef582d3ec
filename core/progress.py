"""A one-line progress bar for `--once` on a terminal: rows, rows/s and ETA for big files."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TextIO

import humanize

from chute.core.engine import Engine


def default_min_rows() -> int:
    """Files with fewer rows finish before a bar helps. ``CHUTE_PROGRESS_MIN_ROWS`` changes it (a
    test draws the bar for a small file)."""
    try:
        return int(os.environ.get("CHUTE_PROGRESS_MIN_ROWS") or 100_000)
    except ValueError:
        return 100_000


class ProgressLine:
    WIDTH = 24

    def __init__(self, engine: Engine, stream: TextIO | None = None, min_rows: int | None = None) -> None:
        self.engine = engine
        self.stream = stream or sys.stderr
        self.min_rows = default_min_rows() if min_rows is None else min_rows
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chute-progress", daemon=True)
        self._shown = False
        self._lock = threading.Lock()
        self._handlers: list[logging.Handler] = []

    def __enter__(self) -> ProgressLine:
        if self.stream.isatty():
            # Log lines go to the same terminal: each one first wipes the bar, which the next
            # tick redraws below it.
            for handler in logging.getLogger().handlers:
                if getattr(handler, "stream", None) is self.stream:
                    handler.addFilter(self._clear_for_log)
                    self._handlers.append(handler)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for handler in self._handlers:
            handler.removeFilter(self._clear_for_log)
        self._clear()

    def _clear(self) -> None:
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
                self._shown = False

    def _clear_for_log(self, record: logging.LogRecord) -> bool:
        self._clear()
        return True

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            snap = self.engine.snapshot()
            big = [p for p in snap.inflight if p.rows_total >= self.min_rows]
            if not big:
                continue
            p = max(big, key=lambda x: x.rows_total)
            frac = p.rows_done / p.rows_total if p.rows_total else 0
            elapsed = max(1e-6, time.time() - p.started)
            rate = p.rows_done / elapsed
            eta = (p.rows_total - p.rows_done) / rate if rate else 0
            bar = "#" * int(frac * self.WIDTH)
            line = (f"\r\x1b[2K[{bar:<{self.WIDTH}}] {frac:4.0%} {humanize.intcomma(p.rows_done)}/"
                    f"{humanize.intcomma(p.rows_total)} rows  {humanize.intword(int(rate))} rows/s  "
                    f"ETA {humanize.naturaldelta(eta)}  {p.path}")
            with self._lock:
                self.stream.write(line[:200])
                self.stream.flush()
                self._shown = True
