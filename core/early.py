"""`--once` over one big text file: its hash and plan start on a thread before ClickHouse does (issue 12).

A `--once` process spends its first ~0.5 s in Python (imports, chDB's start, the ledger, the
scan), on one core and holding the GIL, while the plan of a big CSV or NDJSON file (polars' parse,
sha256) runs mostly outside the GIL on both. So when the data folder holds exactly one file, of a
text format and at least EARLY_MIN_BYTES, that file is opened, hashed and planned from the start,
beside the rest of the start-up (1M rows at load 2-7: 5-14% less wall time for CSV and NDJSON, the
same CPU and memory; nothing on a saturated machine, README "One big file").

Nothing else changes: the loader takes the open file, its reader and its plan only for the version
the watcher settled with the very identity that was opened (device, inode, size, mtime, ctime), with the
table, format and compression the plan was made for, and with no earlier version to append to;
it then goes on exactly as if it had opened and planned the file itself (the same steps, checks,
errors and protocol, docs/ARCHITECTURE.md#exactly-once). Anything else (a second file, a file still
being written, another route) and the early work is dropped and the file is planned as usual.
"""

from __future__ import annotations

import logging
import stat
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chute.core.ledger import same_identity
from chute.core.routing import format_of, table_for
from chute.core.sources import extra_sources
from chute.core.states import FINAL
from chute.core.watcher import walk

if TYPE_CHECKING:
    from chute.core.config import Config
    from chute.core.ledger import FileRow, Ledger
    from chute.core.reader import Plan, Reader, Source

log = logging.getLogger("chute.early")

EARLY_MIN_BYTES = 8 << 20  # smaller files plan in a few tens of ms: not worth a thread
TEXT_FORMATS = ("csv", "tsv", "ndjson")  # Parquet may go natively (core/native.py), planned with the engine


@dataclass
class Early:
    """One file opened and planned: what the loader takes over."""

    src: Source
    reader: Reader
    plan: Plan | None
    error: BaseException | None  # what the limits check or the plan raised: raised again in the loader
    waited: float = 0.0  # seconds the loader waited for the plan (its "validate" time in the log)

    def result(self) -> Plan:
        if self.error is not None:
            raise self.error
        assert self.plan is not None
        return self.plan


def candidate(cfg: Config, ledger: Ledger | None = None) -> tuple[Path, str, str, str | None] | None:
    """The data folder's one loadable file when it is a big text file the ledger has not finished
    (a `--once` again over a loaded folder has nothing to plan): (path, table, format, compression).
    A second file anywhere (found or not loadable) ends the walk: None."""
    if extra_sources(cfg):  # other folders load too: not one file
        return None
    rel: str | None = None
    for name in walk(Path(cfg.data_dir)):
        if rel is not None:
            return None
        rel = name
    if rel is None:
        return None
    found = Path(cfg.data_dir) / rel
    fmt, compression = format_of(rel)
    try:
        st = found.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or fmt not in TEXT_FORMATS or st.st_size < EARLY_MIN_BYTES:
        return None
    row = ledger.current(rel) if ledger is not None else None
    if row is not None and row.state in FINAL and same_identity(row, st):
        return None
    return found, table_for(rel, cfg.every_route), fmt, compression


class EarlyPlan:
    """At most one file planned ahead, handed to the loader once (:meth:`take`) or dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wanted: tuple[Path, str, str, str | None] | None = None
        self._job: Future[Early | None] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self, cfg: Config, ledger: Ledger | None = None) -> bool:
        """Open and plan the data folder's one big text file, if that is what it holds, on a thread:
        the imports (polars), the reader and the plan all run beside the rest of the start-up."""
        self._wanted = candidate(cfg, ledger)
        if self._wanted is None:
            return False
        _import_plan_modules()
        # Two threads: the plan, and the hash beside it (hash_and_plan), as on the loader's pools.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chute-early")
        self._job = self._pool.submit(_plan, cfg, *self._wanted, self._pool)
        log.debug("planning %s while ClickHouse starts", self._wanted[0])
        return True

    def take(self, row: FileRow, path: Path) -> Early | None:
        """The early work when ``row`` is the version it was made for, once; else None (and it goes).
        Waits for the plan to end (the loader would plan the file now anyway)."""
        with self._lock:
            job, self._job = self._job, None
        if job is None or self._wanted is None:
            return None
        if (path, row.table_name, row.fmt, row.compression) != self._wanted or row.base_id is not None:
            _drop(job)
            return None
        t0 = time.perf_counter()
        early = job.result()  # (_plan raises nothing: what the plan raised is in early.error)
        if early is not None and not same_identity(row, early.src.st):
            early.src.close()
            return None
        if early is not None:
            early.waited = time.perf_counter() - t0
        return early

    def close(self) -> None:
        """Drop what no loader took (a `--once` that stopped first)."""
        with self._lock:
            job, self._job = self._job, None
        if job is not None:
            _drop(job)
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def _import_plan_modules() -> None:
    """The plan's imports, on the caller's thread and before ClickHouse's start: polars and the
    readers take ~0.1-0.2 s holding the GIL, and so does chDB's start. Imported on the plan's thread,
    they waited on chDB's start and the parse they lead to ran after it; imported first, the parse
    (which releases the GIL) runs beside it (README "One big file")."""
    import polars  # noqa: F401

    from chute.core import formats  # noqa: F401 - every reader, through the registry
    from chute.core.formats import limits  # noqa: F401


def _plan(cfg: Config, path: Path, table: str, fmt: str, compression: str | None,
          pool: ThreadPoolExecutor) -> Early | None:
    """Step 1 and 2 of the load (core/loader.py ``_open``, ``_hash_and_plan``) for a new file. None:
    it could not even be opened here, the loader opens it itself and reports what it finds."""
    from chute.core.formats.limits import check_limits
    from chute.core.reader import hash_and_plan, open_source, reader_for
    from chute.core.routing import options_for, reader_options

    try:
        src = open_source(path, compression, cfg.max_file_bytes)
    except Exception:  # noqa: BLE001
        return None
    try:
        reader = reader_for(src, fmt, reader_options(options_for(table, cfg.every_route), fmt))
    except Exception:  # noqa: BLE001
        src.close()
        return None
    try:
        check_limits(src, cfg.max_record_bytes, cfg.max_decompression_ratio, text=reader.TEXT)
        return Early(src, reader, hash_and_plan(src, reader, pool), None)
    except BaseException as exc:  # noqa: BLE001 - the loader raises it where its own plan would have
        return Early(src, reader, None, exc)


def _drop(job: Future[Early | None]) -> None:
    """Close the file once the plan has let go of it (at once if it never started)."""
    job.cancel()

    def closed(done: Future[Early | None]) -> None:
        early = None if done.cancelled() else done.result()
        if early is not None:
            early.src.close()

    job.add_done_callback(closed)
