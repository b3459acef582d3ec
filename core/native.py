"""ClickHouse reads the file itself: the embedded engine's native read (issue 12, big files).

On ``chdb://`` the file is local and the engine runs in this process, so instead of polars
parsing batches and Arrow carrying them in, one ``INSERT ... SELECT ... FROM file()`` per batch
lets ClickHouse read the same open file (``/proc/self/fd/N``: the descriptor that was hashed),
with the structure chute decided (the table's own column types) and the lineage as constants
and ``_row_number``. chute still hashes and plans the file as before (rows, types, nulls).

Where it applies (everything else takes the Arrow path, unchanged):
- Parquet, not wrapped in gzip/zstd, not an append, one batch (rows <= B, at most 1,000,000
  rows and ``NATIVE_MAX_BYTES`` uncompressed): ``_row_number`` does not let ClickHouse skip row
  groups, so a file of several batches would be read once per batch.
- Only types whose native read is proven to give the Arrow path's values (tests/test_native.py,
  a property test over generated files): integers, floats, booleans, text and bytes, decimals,
  dates and timestamps, and only where the batch fitter (core/fit.py) has nothing to convert or check.

Exactly once (docs/ARCHITECTURE.md#exactly-once) holds as on the Arrow path: B is fixed in the
ledger, the intent is written before the insert, the insert is one block (squashed to one:
``min_insert_block_size_rows`` above B, no byte limit, one insert thread), so a resend forms the
same block under the same token and ClickHouse drops it; ``count()`` verifies. A native batch's
token ends in ``NATIVE_SUFFIX``: the two paths never share a token (ClickHouse does not promise
the same block identity across them), so a batch whose native insert may have landed is resent
natively, or its rows are taken back (new generation) before the Arrow path sends it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import polars as pl

from chute.core import failpoints
from chute.core.errors import InputError, TargetError
from chute.core.formats.parquet import ParquetReader
from chute.core.schema import LINEAGE_NAMES, Column

if TYPE_CHECKING:
    from chute.core.fit import Fitter
    from chute.core.loader import Loader, _Job

log = logging.getLogger("chute.native")

NATIVE_SUFFIX = ":file"
NATIVE_MAX_ROWS = 1_000_000  # below max_insert_block_size (1,048,576): one block
NATIVE_MAX_BYTES = 256 << 20  # uncompressed: ClickHouse's own min_insert_block_size_bytes
# Virtual columns of file(): a file column of one of these names would shadow it.
_VIRTUAL = frozenset({"_path", "_file", "_size", "_time", "_row_number", "_etag"})
# Parquet logical types whose native read is proven too ("NONE": a plain physical type, INT96 included).
# A UUID, say, is 16 bytes to polars and its text form to ClickHouse.
_PROVEN_LOGICAL = frozenset({"NONE", "INT", "STRING", "DECIMAL", "DATE", "TIMESTAMP"})
_PROVEN = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Float32,
           pl.Float64, pl.Boolean, pl.String, pl.Binary, pl.Date, pl.Datetime, pl.Decimal)


@dataclass(frozen=True)
class Settings:
    """Per-insert settings of a native batch, beside the protocol's own (Target.insert_settings)."""

    rows: int

    def as_dict(self) -> dict[str, int]:
        return {
            # One block per insert: squash everything read (no byte limit) into one, on one thread.
            "min_insert_block_size_rows": self.rows + 1,
            "min_insert_block_size_bytes": 0,
            "max_insert_threads": 1,
            # A NULL into a column that cannot hold one is an error, never a silent default.
            "input_format_null_as_default": 0,
        }


def is_native(token: str) -> bool:
    return token.endswith(NATIVE_SUFFIX)


def candidate(loader: Loader, job: _Job) -> bool:
    """Could this version go natively (before its table is looked at)? Cheap checks first."""
    cfg, reader, row = loader.cfg, job.reader, job.row
    if not (cfg.embedded and cfg.native_read) or row.fmt != "parquet" or not isinstance(reader, ParquetReader):
        return False
    if job.part is not job.src or job.src.compression is not None or job.append.base is not None or row.row_base:
        return False
    if not 0 < job.plan.rows <= NATIVE_MAX_ROWS:
        return False
    raw = reader.raw_schema
    if raw is None or not reader.footer_true or not _same_wire(reader):
        return False
    if any(name in _VIRTUAL or name in LINEAGE_NAMES for name in raw):
        return False
    if not all(isinstance(dtype, _PROVEN) for dtype in raw.values()):
        return False
    return set(reader.logical) == set(raw) and set(reader.logical.values()) <= _PROVEN_LOGICAL


def _same_wire(reader: ParquetReader) -> bool:
    """The file's own types are what the Arrow path sends (it converts some: times to text)."""
    return reader.raw_schema == reader.wire_schema


def prepare(loader: Loader, job: _Job) -> None:
    """Before the plan: a file that may go natively has its footer read too, by ClickHouse (sizes,
    logical types and whether its NULL counts are true: core/formats/parquet.py)."""
    cfg, reader = loader.cfg, job.reader
    if cfg.embedded and cfg.native_read and isinstance(reader, ParquetReader) and job.part is job.src \
            and job.src.compression is None and job.append.base is None:
        reader.footer = loader.target.parquet_footer(job.src.proc_path)


def first_batch_rows(loader: Loader, job: _Job, chosen: int) -> int:
    """B for a new version: the whole file when it can go natively in one insert, else ``chosen``."""
    if chosen >= job.plan.rows or not candidate(loader, job):
        return chosen
    size = job.reader.sizes.get("uncompressed") if isinstance(job.reader, ParquetReader) else None
    return job.plan.rows if size is not None and size <= NATIVE_MAX_BYTES else chosen


def send(loader: Loader, job: _Job, table: list[Column], fitter: Fitter, anti_join: object) -> bool:
    """Send the version natively if it qualifies; False: the caller takes the Arrow path."""
    row = job.row
    intents = loader.ledger.batch_tokens(row.id, row.generation)
    natives = {idx for idx, token in intents.items() if is_native(token)}
    if not _eligible(loader, job, table, fitter, anti_join):
        if natives - set(job.done):
            _take_back(loader, job, "its native insert may have landed; the Arrow path sends it anew")
        _own_batch_rows(loader, job)
        return False
    if len(intents) > len(natives):
        return False  # the Arrow path began this generation: it finishes it with its own tokens
    if 0 in job.done:
        return True
    from chute.core.loader import Progress, dedup_token

    token = dedup_token(job.sha, job.batch_rows, 0, row.generation) + NATIVE_SUFFIX
    columns = [c for c in table if c.name in job.reader.wire_schema]
    rows = job.plan.rows
    loader.ledger.intent(row.id, row.generation, 0, token, rows)
    failpoints.step("batch_intent")
    t0 = time.perf_counter()
    try:
        with job.trace.step("insert", batch=0, rows=rows, token=token, native=True):
            loader.target.insert_file(row.table_name, job.src.proc_path, "Parquet", columns, row.path, job.sha,
                                      token, Settings(job.batch_rows).as_dict(), utf8=_text(job, columns))
    except (InputError, TargetError) as exc:
        if isinstance(exc, TargetError) and exc.unreachable:
            raise
        # ClickHouse refused the file (bad data, or a reader limit): the Arrow path's outcome is the
        # one that counts (it names the row, or loads what polars reads). Rows the refused insert
        # may have left go first.
        log.info("native read of %s refused (%s); sending it through Arrow", row.path, exc)
        _take_back(loader, job, "native read refused")
        _own_batch_rows(loader, job)
        return False
    secs = time.perf_counter() - t0
    failpoints.step("insert_acked")
    loader.ledger.ack(row.id, row.generation, 0, rows)
    loader.sizer.observe(rows, secs)
    failpoints.step("batch_done")
    loader.on_batch(row.table_name, rows, row.size or 0, secs)
    loader.on_progress(Progress(row.id, row.path, row.table_name, rows, rows, time.time() - secs), row.id)
    return True


def _text(job: _Job, columns: list[Column]) -> list[str]:
    """Columns the file says are UTF-8 text: ClickHouse takes any bytes there, polars refuses what
    is not UTF-8 (a quarantine), so the native insert checks them (and is refused)."""
    raw = job.reader.raw_schema if isinstance(job.reader, ParquetReader) else None
    return [c.name for c in columns if raw is not None and isinstance(raw.get(c.name), pl.String)]


def _own_batch_rows(loader: Loader, job: _Job) -> None:
    """B was the whole file for a native insert that is not going to happen (the table or
    ClickHouse said no): while no batch of this generation was sent under it, the Arrow path
    takes the B it would have had, not one frame of every row."""
    if job.batch_rows != job.plan.rows or job.done or loader.ledger.any_batches(job.row.id, job.row.generation):
        return
    chosen = loader._choose_batch_rows(job.src.st.st_size, job.plan.rows)
    if chosen < job.batch_rows:
        loader.ledger.update(job.row.id, batch_rows=chosen)
        job.batch_rows = chosen
        job.row = replace(job.row, batch_rows=chosen)


def _eligible(loader: Loader, job: _Job, table: list[Column], fitter: Fitter, anti_join: object) -> bool:
    if not candidate(loader, job) or job.plan.rows > job.batch_rows or anti_join is not None or fitter.skip_bad:
        return False
    if (fitter.casts or fitter.dates or fitter.zones or fitter.ranges or fitter.spans or fitter.times
            or fitter.enums or fitter.asked):
        return False  # values the Arrow path converts or checks per batch
    if any(job.plan.null_counts.get(name, 1) for name in fitter.not_null):
        return False  # (the Arrow path's message names the row)
    have = {c.name for c in table}
    return all(name in have for name in job.reader.wire_schema)


def _take_back(loader: Loader, job: _Job, why: str) -> None:
    """Rows a native batch may have inserted go, under a new generation, before the Arrow path
    sends the file with tokens of its own."""
    fresh = loader.ledger.get(job.row.id) or job.row
    err = loader._take_back(fresh)
    if err is not None:
        raise err
    log.info("%s: %s (generation %d)", job.row.path, why, fresh.generation + 1)
    refreshed = loader.ledger.get(job.row.id) or fresh
    job.row = replace(job.row, generation=refreshed.generation, rows_loaded=0)
    job.done = {}
