"""Rows per insert (B), chosen per file from recent insert latency and available memory.

B is part of every dedup token (``<sha256>:<B>:<i>``) and fixed in the ledger at a file's
first attempt, so a replay forms the very same batches: B adapts *between* files, never within
one. Off unless ``batch_rows_adaptive = true``; then ``batch_rows`` is the starting point.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chute.core.config import Config
    from chute.core.reader import Reader

# Within these: below ClickHouse's max_insert_block_size (1,048,576), so one insert stays one
# block and a retry forms the same blocks; above the size where per-insert overhead dominates.
MIN_ROWS = 10_000
MAX_ROWS = 1_000_000
TARGET_SECONDS = 1.0  # one insert about this long: progress stays live, overhead stays small
MEMORY_SHARE = 0.05  # one batch's bytes at most this share of available memory (it lives ~3x: text, frame, Arrow)
_SMOOTHING = 0.3  # weight of the newest observation
_MIN_OBSERVED_ROWS = 1_000  # smaller inserts are all fixed overhead: they say nothing about rows


class BatchSizer:
    def __init__(self, base: int, adaptive: bool = False) -> None:
        self.base = base
        self.adaptive = adaptive
        self._secs_per_row: float | None = None
        self._lock = threading.Lock()

    def observe(self, rows: int, seconds: float) -> None:
        """An acknowledged insert of ``rows`` that took ``seconds`` (any file, any lane)."""
        if rows < _MIN_OBSERVED_ROWS or seconds <= 0:
            return
        rate = seconds / rows
        with self._lock:
            old = self._secs_per_row
            self._secs_per_row = rate if old is None else old + _SMOOTHING * (rate - old)

    def choose(self, bytes_per_row: float, available_bytes: int | None) -> int:
        """B for a file not yet started, whose rows take about ``bytes_per_row`` on disk."""
        if not self.adaptive:
            return self.base
        with self._lock:
            secs_per_row = self._secs_per_row
        rows = self.base if secs_per_row is None else TARGET_SECONDS / secs_per_row
        rows = min(max(rows, MIN_ROWS), MAX_ROWS)
        if available_bytes and bytes_per_row > 0:
            rows = min(rows, max(1_000, MEMORY_SHARE * available_bytes / bytes_per_row))
        # Whole thousands: tokens and logs stay readable, and nearby estimates give the same B.
        return max(1_000, int(rows + 0.5) // 1_000 * 1_000)


STREAM_BATCH_BYTES = 32 << 20  # a streamed batch's text at most (its frame and Arrow body each about as much)
MEMORY_INSERTS = 8  # a file parsed in memory (<= 256 MiB): at most this many inserts, up to stream_batch_rows


def own_rows(cfg: Config, reader: Reader | None, rows: int) -> int:
    """B of its own for a text file (0: none, batch_rows), while batch_rows is at its default.

    Parsed whole in memory (under 256 MiB): ``memory_batch_rows``, or more for a file of over
    MEMORY_INSERTS such batches (up to ``stream_batch_rows``: 32 MiB of text at most). Such a file's
    batches are slices of that frame: fewer, larger inserts cost ClickHouse less (a part, its files
    and their fsyncs per insert, and the merges of those parts while the load goes on; about 0.1 s of
    CPU per 1M rows at 250,000 instead of 125,000; a 4M-row CSV in 8 inserts instead of 16: -5% wall
    time, -8% CPU, the same peak RSS) for little memory.

    Streamed (bigger): ``stream_batch_rows``, at most STREAM_BATCH_BYTES of its text a batch at its
    mean row size (longer rows than the mean: bigger batches) and never below batch_rows. At 125,000
    rows a 16M-row CSV made 128 parts, and ClickHouse's merges of them while the load went on
    rewrote 25M rows: 28% of the process's CPU. At 500,000: 32 parts, 20% less
    CPU and wall time, +130 MB of peak RSS (less than half the engine's own; README "Big files:
    fewer parts"). A compressed file's text size is the one its limits check read through
    (core/formats/limits.py); not known (no check ran): batch_rows. A compressed file whose text would
    fit in memory has its pieces spilled to save memory: batch_rows (at 500,000 a 1M-row CSV.gz peaked
    at 1.36x the engine's RSS, against 1.18x).

    Not under ``dedup_scope = "fleet"``, whose hosts must cut a content into the same batches (tokens)."""
    from chute.core.config import Config

    if reader is None or not reader.TEXT:
        return 0
    if cfg.batch_rows != Config.batch_rows or cfg.dedup_scope == "fleet":
        return 0  # (an operator's batch_rows is what every file gets)
    if reader.holds_frame:
        if not cfg.memory_batch_rows:
            return 0
        spread = -(-rows // (MEMORY_INSERTS * 1_000)) * 1_000  # (whole thousands, rounded up)
        return max(cfg.memory_batch_rows, min(cfg.stream_batch_rows, spread))
    src = reader.src
    text_bytes = src.st.st_size if src.compression is None else src.text_size
    if not cfg.stream_batch_rows or rows <= 0 or text_bytes <= reader.IN_MEMORY_BYTES:
        return 0  # (nor one spilled to save memory though it would fit: a compressed 64 MB CSV)
    fit = int(STREAM_BATCH_BYTES * rows / text_bytes) // 1_000 * 1_000  # (whole thousands, as choose)
    return max(cfg.batch_rows, min(cfg.stream_batch_rows, fit))
