"""Load one file version into ClickHouse, following the exactly-once protocol (docs/ARCHITECTURE.md#exactly-once)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from polars.exceptions import PanicException

from chute.core import failpoints, intents, memory, native, nullability, resources, sysinfo, tracing
from chute.core import groups as grouping
from chute.core.batch_size import BatchSizer, own_rows
from chute.core.config import Config
from chute.core.errors import FileChanged, HoldError, InputError, TargetError
from chute.core.fit import Fitter, Rejects
from chute.core.formats.limits import check_limits
from chute.core.growing import Append
from chute.core.ledger import FileRow, Ledger, same_identity
from chute.core.logsetup import file_fields
from chute.core.reader import Plan, Reader, Source, hash_and_plan, open_source, reader_for, warm_up, with_lineage
from chute.core.routing import Route, options_for, reader_options
from chute.core.schema import LINEAGE_NAMES, Column, columns_for
from chute.core.states import State
from chute.core.target import Encoded, Target

if TYPE_CHECKING:
    from chute.core.early import Early, EarlyPlan
    from chute.core.fleet import FleetDedup

log = logging.getLogger("chute.loader")


class Interrupted(Exception):
    """Shutdown was requested between two batches."""


def dedup_token(sha256: str, batch_rows: int, idx: int, generation: int) -> str:
    """``<sha256>:<B>:<i>``, plus ``:<generation>`` once a file was replayed (docs/ARCHITECTURE.md#tokens)."""
    token = f"{sha256}:{batch_rows}:{idx}"
    return f"{token}:{generation}" if generation else token


def backoff(attempts: int, base: float, cap: float) -> float:
    """Capped exponential backoff with jitter (half to full of the step)."""
    step = min(cap, base * (2 ** max(0, attempts - 1)))
    return step * random.uniform(0.5, 1.0)


@dataclass
class Progress:
    file_id: int
    path: str
    table: str
    rows_done: int
    rows_total: int
    started: float


@dataclass
class _Job:
    """One version's load in progress: what each step of ``Loader._load`` hands the next."""

    row: FileRow
    src: Source
    part: Source  # what is read: the whole file, or an append's new records (core/growing.py)
    append: Append
    opts: Route
    reader: Reader
    trace: Any
    plan: Plan = None  # type: ignore[assignment]  # set by step 2, before any later step reads it
    sha: str = ""
    batch_rows: int = 0
    done: dict[int, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    rejects: Rejects | None = None
    early: Early | None = None  # the plan core/early.py made from before ClickHouse started


@dataclass
class _Pipe:
    """The send pipeline of one version: a producer thread feeding ``lanes`` insert threads."""

    row: FileRow
    reader: Reader
    sha: str
    batch_rows: int
    done: dict[int, int]
    fitter: Fitter
    rejects: Rejects
    anti_join: tuple[str, str] | None
    progress: Progress
    lanes: int
    ready: queue.Queue[tuple[int, int, Encoded] | None]
    bytes_per_row: float
    trace: Any
    halt: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, item: tuple[int, int, Encoded] | None) -> bool:
        """Queue ``item`` unless the pipeline halted meanwhile."""
        while not self.halt.is_set():
            try:
                self.ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


class ShaClaims:
    """Two versions with the same content must not load at once: the second waits, then is a duplicate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: dict[str, int] = {}

    def claim(self, sha: str, file_id: int) -> int | None:
        with self._lock:
            owner = self._owner.setdefault(sha, file_id)
            return None if owner == file_id else owner

    def release(self, sha: str, file_id: int) -> None:
        with self._lock:
            if self._owner.get(sha) == file_id:
                del self._owner[sha]


class Loader:
    def __init__(self, cfg: Config, ledger: Ledger, target: Target, *, stop: threading.Event,
                 on_progress: Callable[[Progress | None, int], None], exhaust_unreachable: bool = False) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self.target = target
        self.stop = stop
        self.on_progress = on_progress
        self.exhaust_unreachable = exhaust_unreachable
        self.claims = ShaClaims()
        self._hash_pool = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="chute-hash")
        self._batch_pool = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="chute-parse")
        self._insert_pool = ThreadPoolExecutor(max_workers=cfg.workers * max(1, cfg.insert_parallel),
                                               thread_name_prefix="chute-insert")
        self.sizer = BatchSizer(cfg.batch_rows, adaptive=cfg.batch_rows_adaptive)
        if not exhaust_unreachable:  # a daemon; `--once` has its files waiting: each lane connects as it starts,
            warm_up(target)  # and a first-call cost is paid where it is met (none on the native read: core/native.py)
            self._connect_lanes()
        self.on_unreachable: Callable[[TargetError], None] = lambda exc: None
        self.on_settle: Callable[[str], None] = lambda _rel: None
        self.on_batch: Callable[[str, int, int, float], None] = lambda *_: None
        self.fleet: FleetDedup | None = None  # dedup_scope = "fleet" (core/fleet.py), set by the engine
        self.early: EarlyPlan | None = None  # `--once`: a file planned from the start (core/early.py), by the engine
        self.on_full: Callable[[BaseException], bool] = lambda exc: False  # a disk filled up (core/resources.py)
        # Each table's columns once checked (lineage, dedup window), so a file of a known table costs
        # no schema query; dropped on any error of a load into it (core/groups.py makes many such loads).
        self._schemas: dict[str, list[Column]] = {}
        self.groups = grouping.Groups(self)

    def _connect_lanes(self) -> None:
        """Open each insert thread's connection now: a handshake costs ~0.1 s, not for the first file."""
        lanes = self._insert_pool._max_workers
        barrier = threading.Barrier(lanes)

        def connect() -> None:
            barrier.wait(timeout=30)  # one task per thread, so every thread gets its own client
            self.target.client()

        try:
            for fut in [self._insert_pool.submit(connect) for _ in range(lanes)]:
                fut.result()
        except (TargetError, threading.BrokenBarrierError):
            pass  # they connect on first use instead

    def close(self) -> None:
        self.groups.close()
        self._hash_pool.shutdown(wait=True)
        self._batch_pool.shutdown(wait=True)
        self._insert_pool.shutdown(wait=True)

    # -- one file -------------------------------------------------------------------------

    def run(self, row: FileRow) -> State | None:
        """Take a runnable version through to its next resting state. Never raises."""
        # Attempts count failures only: a crash or shutdown mid-load is resumed, not retried.
        started = self.ledger.claim(row.id)
        if started is None:
            return None
        return self.settle(started, lambda: self._load_one(started))

    def run_group(self, rows: list[FileRow]) -> list[tuple[FileRow, State | None]]:
        """Small files of one table, loaded together where they can share one insert (core/groups.py)."""
        return self.groups.run(rows)

    def settle(self, row: FileRow, work: Callable[[], State | None]) -> State | None:
        """Run ``work`` for the claimed version ``row``; an exception becomes its outcome. Never raises."""
        try:
            try:
                return work()
            except (HoldError, InputError, TargetError):
                # The table may have changed under us (DDL by someone else, drift): look at it again.
                self._schemas.pop(row.table_name, None)
                raise
        except Interrupted:
            self.ledger.transition(row.id, State.QUEUED, detail="interrupted by shutdown; resumes at next start",
                                   expect=[State.LOADING])
            return State.QUEUED
        except _Deferred as exc:
            self.ledger.transition(row.id, State.QUEUED, detail=str(exc), next_attempt=time.time() + exc.delay,
                                   expect=[State.LOADING])
            return State.QUEUED
        except _Duplicate as exc:
            self.ledger.transition(row.id, State.DUPLICATE, reason=str(exc), detail=str(exc), expect=[State.LOADING])
            log.info("duplicate %s: %s", row.path, exc, extra=file_fields(row, "duplicate", duration_s=_since(row)))
            return State.DUPLICATE
        except HoldError as exc:
            self.ledger.transition(row.id, State.HELD, reason=str(exc), last_error=str(exc), error_kind="hold",
                                   detail=str(exc), expect=[State.LOADING])
            log.warning("held %s: %s", row.path, exc,
                        extra=file_fields(row, "held", error_kind="hold", duration_s=_since(row)))
            return State.HELD
        except FileChanged as exc:
            return self._changed(row, str(exc))
        except InputError as exc:
            return self._quarantine(row, exc)
        except TargetError as exc:
            return self._failed(row, exc)
        except PanicException as exc:  # a parser's Rust side crashed on this file: bad input, not a retry
            return self._quarantine(row, InputError(f"the parser crashed on this file: {str(exc)[:200]}"))
        except Exception as exc:  # the daemon keeps going; the reason is recorded
            if resources.full_kind(exc) and self.on_full(exc):  # not the file's fault, not an attempt
                # If the ledger cannot write either, the engine requeues it when space returns.
                with contextlib.suppress(Exception):
                    self.ledger.transition(row.id, State.QUEUED, detail=f"paused: {exc}", expect=[State.LOADING])
                return None
            log.exception("unexpected error loading %s", row.path, extra=file_fields(row, "load_error"))
            return self._failed(row, TargetError(f"unexpected {type(exc).__name__}: {exc}"))
        finally:
            self.on_progress(None, row.id)

    def _load_one(self, row: FileRow) -> State:
        """One version alone; first its unacknowledged group insert, if any, is settled (core/groups.py)."""
        self._load(self.groups.resolve(row))
        return State.LOADED

    def _load(self, row: FileRow) -> None:
        """The numbered steps of docs/ARCHITECTURE.md#exactly-once, in order."""
        cfg = self.cfg
        path = cfg.locate(row.path)
        _check_inside(cfg.split(row.path)[0], path)
        early = self.early.take(row, path) if self.early is not None else None  # opened at start (core/early.py)
        with early.src if early else open_source(path, row.compression, cfg.max_file_bytes) as src, \
                Append(self.ledger, row, cfg.state_dir) as append:
            try:
                job = self._open(row, src, append, early)            # 1. open once
                early = None  # (a reader _open did not take goes as soon as its plan ends)
                native.prepare(self, job)
                self._hash_and_plan(job)                             # 2. hash and plan
                self._claim_content(job)                             # 3. claim the content
                try:
                    after = self._load_claimed(job)                  # 4-9
                finally:
                    self.claims.release(job.sha, row.id)
            except InputError:
                src.check_unchanged()  # a file rewritten under us is not bad input: settle it again
                raise
        with job.trace.step("after_load", mode=cfg.after_load):
            self._after_load(job.row, path, after)

    def _load_claimed(self, job: _Job) -> intents.Intent | None:
        """Steps 4-9 for a version whose content this loader holds (ShaClaims)."""
        self.ledger.update(job.row.id, sha256=job.sha, rows=job.plan.rows)
        job.batch_rows = job.row.batch_rows or native.first_batch_rows(
            self, job, self._choose_batch_rows(job.src.st.st_size, job.plan.rows, job.reader))
        job.done = self.ledger.done_batches(job.row.id, job.row.generation)
        self._clear_superseded(job.row)  # whatever this version turns out to be (a duplicate too)
        self._gatekeep_or_take_back(job)                             # 4. gatekeep
        self._fix_batch_rows(job)                                    # 5. fix B
        t0 = time.perf_counter()
        with job.trace.step("table"):
            table = self._prepare_table(job.row, job.plan, job.opts)  # 6. prepare the table
        t1 = time.perf_counter()
        check = self._hash_pool.submit(job.reader.pending_check) if job.reader.pending_check else None
        fitter = self._send_all(job, table)                          # 7. send
        self._recheck(job, check)                                    # 8. re-check
        job.timings.update(table=t1 - t0, insert=time.perf_counter() - t1)
        return self._verify_sent(job, fitter)                        # 9. verify

    def _open(self, row: FileRow, src: Source, append: Append, early: Early | None = None) -> _Job:
        """Step 1: the open file must be the version the watcher settled; pick its reader."""
        if not same_identity(row, src.st):
            raise FileChanged(f"{row.path} changed since it settled")
        opts = options_for(row.table_name, self.cfg.every_route)
        # A grown file reads only its appended records (core/growing.py), in the base's dialect.
        part = append.prepare(src, opts, sent=self.ledger.any_batches(row.id, row.generation))
        if early is not None and part is src and append.base is None:  # planned from the start: its
            return _Job(row, src, part, append, opts, early.reader, tracing.current(), early=early)  # limits too
        reader = reader_for(part, row.fmt, {**reader_options(opts, row.fmt), **(append.csv_opts or {})})
        check_limits(part, self.cfg.max_record_bytes, self.cfg.max_decompression_ratio, text=reader.TEXT)
        return _Job(row, src, part, append, opts, reader, tracing.current())

    def _hash_and_plan(self, job: _Job) -> None:
        """Step 2: sha256 and the plan (rows, schema), on two threads."""
        t0 = time.perf_counter()
        with job.trace.step("hash", bytes=job.row.size) as span:
            try:
                job.plan = job.early.result() if job.early else hash_and_plan(job.part, job.reader, self._hash_pool)
            except InputError as exc:  # an append's reader counts lines from the appended part
                raise _in_whole_file(exc, job.append.lines_before(job.src)) from None
            job.sha = job.append.sha256 or job.src.sha256
            span.set(rows=job.plan.rows, sha256=job.sha)
        if job.reader.pending_check is None:
            job.part.drop_inflated()  # parsed: the inflated bytes go (a later slow path reads the file)
        job.timings["validate"] = time.perf_counter() - t0 + (job.early.waited if job.early else 0.0)
        job.trace.set(sha256=job.sha, rows=job.plan.rows)

    def _claim_content(self, job: _Job) -> None:
        """Step 3: a twin with the same content loading right now makes this one wait."""
        row = job.row
        if row.sha256 and row.sha256 != job.sha and row.rows_loaded:
            raise HoldError(f"content changed after {row.rows_loaded} rows were loaded from the old content")
        owner = self.claims.claim(job.sha, row.id)
        if owner is not None:
            raise _Deferred(f"waiting: file #{owner} with the same content is loading")

    def _gatekeep_or_take_back(self, job: _Job) -> None:
        """Step 4. "Nothing sent yet" means no batch at all, acknowledged or not: an insert that
        landed without its ack is still rows of ours in the table."""
        row, sha = job.row, job.sha
        if not self.ledger.any_batches(row.id, row.generation):
            self._gatekeep(row, sha, job.append, job.opts)
            failpoints.rendezvous("rendezvous")
            generation = self.ledger.token_generation(sha, row.id, row.generation)
            if generation != row.generation:
                self.ledger.update(row.id, generation=generation)
                job.row = replace(row, generation=generation)
            return
        twin = self.ledger.by_sha(sha, [State.LOADED], exclude_id=row.id)
        if twin is not None:  # a twin finished first: take back our partial rows
            self.target.delete_source(row.table_name, sha, row.path)
            self.ledger.update(row.id, generation=row.generation + 1, rows_loaded=0)
            raise _Duplicate(f"same content as {twin.path} (loaded as #{twin.id}); partial rows removed")

    def _fix_batch_rows(self, job: _Job) -> None:
        """Step 5: B (and, for an append, what it loads) fixed in the ledger before the first insert."""
        row, append = job.row, job.append
        if not row.batch_rows:
            self.ledger.update(row.id, batch_rows=job.batch_rows)
        if append.base is not None and row.base_id is None:
            self.ledger.update(row.id, base_id=append.base.id, byte_base=append.byte_base, row_base=append.row_base)
            job.row = replace(row, base_id=append.base.id, byte_base=append.byte_base, row_base=append.row_base)

    def _send_all(self, job: _Job, table: list[Column]) -> Fitter:
        """Step 7: fit every batch to the table's columns and send those not yet acknowledged."""
        row, opts, reader = job.row, job.opts, job.reader
        rejects = Rejects(_free_name(self.cfg.aside("_quarantine", row.path + ".rejects.csv")))
        skip = opts.on_bad_rows == "skip"
        fitter = Fitter(table, reader.wire_schema, reader.date_types, skip_bad=skip,
                        header_lines=reader.header_lines + row.row_base,  # lines after the base's
                        server_zone=self.target.server_zone, lines=job.append.record_lines(job.src, reader),
                        refused=self.target.refused_values if skip else None)  # (else ClickHouse refuses the file)
        anti_join = None  # (key, its ClickHouse type), looked up once per file
        if opts.skip_existing_keys:
            key = opts.key[0]
            anti_join = (key, next((c.type for c in table if c.name == key), "String"))
        if native.send(self, job, table, fitter, anti_join):  # ClickHouse reads the file itself (core/native.py)
            job.rejects = rejects
            return fitter
        row = job.row  # (a new generation if native rows were taken back)
        reader.release_frame = True  # (nothing else reads it meanwhile: the short-row check reads the text)
        try:
            self._send(row, reader, job.plan, job.sha, job.batch_rows, job.done, fitter, rejects, anti_join)
        finally:
            rejects.close()
            if job.plan.rows >= job.batch_rows:  # a big file's batches: give their pages back now
                memory.trim()
        job.rejects = rejects
        return fitter

    @staticmethod
    def _recheck(job: _Job, check: Future[InputError | None] | None) -> None:
        """Step 8: the file is unchanged, and the background validity check of the whole file passed."""
        job.src.check_unchanged()
        problem = check.result() if check else None
        if problem is not None:  # (an append's reader counts lines from the appended part, as in step 2)
            raise _in_whole_file(problem, job.append.lines_before(job.src))

    def _verify_sent(self, job: _Job, fitter: Fitter) -> intents.Intent | None:
        """Step 9: the acknowledged batches hold every parsed row, and ClickHouse holds them."""
        row, plan = job.row, job.plan
        expected = sum(self.ledger.done_batches(row.id, row.generation).values())
        if expected != plan.rows and not (fitter.skip_bad or job.opts.skip_existing_keys):
            raise _VerifyError(f"verification failed: the batches sent hold {expected} rows, the file {plan.rows}")
        # The skipped rows' note goes into the `loaded` commit itself: noted after it, a crash in between
        # (or a reader in between) saw a loaded file with rows skipped and no word of it, for good.
        noted = self._note_rejects(row, job.rejects) if job.rejects is not None and job.rejects.count else None
        with job.trace.step("verify", rows=expected):
            after = self._verify(row, job.sha, expected, job.timings, keyed=bool(job.opts.key),
                                 reason=noted["reason"] if noted else None)
        if noted:
            self.ledger.log(row.id, row.path, "engine", "rejects", f"{noted['reason']}: {noted['rejects']}")
            log.warning("%s: %s, see %s", row.path, noted["reason"], noted["rejects"],
                        extra=file_fields(row, "rows_rejected"))
        return after

    def _clear_superseded(self, row: FileRow) -> None:
        """Older versions at this path that stopped part-way left rows of content that no longer
        exists: remove them (and say so) before the new version loads."""
        for old in self.ledger.versions(row.path):
            if old.id == row.id or old.current or not old.sha256 or old.state in (State.LOADED, State.PURGED):
                continue
            if not self.ledger.any_batches(old.id, old.generation):
                continue
            self.target.delete_source(old.table_name, old.sha256, old.path)
            self.ledger.transition(old.id, State.PURGED, generation=old.generation + 1, rows_loaded=0,
                                   detail=f"superseded by version #{row.id} part-way through loading; its partial "
                                          f"rows were removed")

    def _gatekeep(self, row: FileRow, sha: str, append: Append, opts: Route) -> None:
        """Duplicate, changed content at a known path (or grown, under ``growing = "hold"``), approval mode."""
        twin = self.ledger.by_sha(sha, [State.LOADED], exclude_id=row.id)
        if twin is not None:
            where = "the same path" if twin.path == row.path else twin.path
            raise _Duplicate(f"same content as {where} (loaded as #{twin.id})")
        verdict = self.fleet.check(row, sha) if self.fleet is not None else None
        if verdict is not None and verdict[0] == "duplicate":
            raise _Duplicate(verdict[1])
        if verdict is not None:  # another host is loading it: ask again once its mirror has moved on
            raise _Deferred(verdict[1], delay=2 * self.cfg.fleet_interval)
        if row.approved:
            return
        if append.base is not None:
            if opts.growing == "hold":
                raise HoldError(f"grew: records were appended to version #{append.base.id}; approve to load only "
                                f"the appended records (growing = \"hold\")")
            if self.cfg.require_approval:
                raise HoldError("waiting for approval (--require-approval)")
            return
        earlier = [v for v in self.ledger.versions(row.path) if v.id != row.id and v.state == State.LOADED]
        if earlier:
            raise HoldError(f"changed content at a known path: version #{earlier[-1].id} was loaded with other "
                            f"content; approve to load this one as well, or purge the old one first")
        if self.cfg.require_approval:
            raise HoldError("waiting for approval (--require-approval)")

    def _prepare_table(self, row: FileRow, plan: Plan, opts: Route) -> list[Column]:
        """Create the table, or reconcile the file with it under the table's drift policy.
        Returns the table's columns."""
        table = row.table_name
        wanted = columns_for(plan.schema, plan.null_counts, plan.distinct_ratio, dict(opts.columns))
        clash = [c.name for c in wanted if c.name in LINEAGE_NAMES]
        if clash:
            raise InputError(f"column name {clash[0]!r} is reserved for chute's lineage columns", column=clash[0])
        if any(not c.name.strip() for c in wanted):  # a JSON key "" or a Parquet column "": ClickHouse has no such name
            raise InputError("a column has an empty name (JSON key \"\" or Parquet column \"\")")
        cached = self._schemas.get(table)
        if cached is not None:  # checked once per table and process (lineage, dedup window)
            self._schemas[table] = columns = self._reconcile(row, table, wanted, list(cached), opts)
            return columns
        existing = self.target.table_columns(table)
        if existing is None:
            missing_key = [k for k in opts.key if k not in plan.schema]
            if missing_key:
                raise HoldError(f"table {table}'s key column {missing_key[0]!r} is not in this file")
            self.target.create_table(table, wanted, order_by=opts.order_by, key=opts.key)
            actual = self.target.table_columns(table)  # IF NOT EXISTS: another first file may have won
            if actual is not None and {c.name: c.type for c in actual if c.name not in LINEAGE_NAMES} != {
                    c.name: c.type for c in wanted}:
                return self._reconcile(row, table, wanted, actual, opts)
            log.info("created table %s.%s with %d columns", self.cfg.database, table, len(wanted),
                     extra={"event": "table_created", "table": table})
            self._record_columns(table, wanted)
            if actual is not None:  # what the next file would read from system.columns
                self._schemas[table] = actual
            return wanted
        self.target.add_lineage(table, existing)
        self.target.ensure_dedup_window(table)
        self._schemas[table] = columns = self._reconcile(row, table, wanted, existing, opts)
        return columns

    def _reconcile(self, row: FileRow, table: str, wanted: list[Column], existing: list[Column],
                   opts: Route) -> list[Column]:
        self._record_columns(table, existing)  # before drift may hold the file: its details show the table
        have = {c.name for c in existing}
        new = [c for c in wanted if c.name not in have]
        if new:
            listing = ", ".join(f"{c.name} ({c.type})" for c in new)
            if opts.drift == "freeze":
                raise InputError(f"schema drift: table {table} is frozen and has no column(s) {listing}")
            if opts.drift == "hold" and not row.approved:
                raise HoldError(f"schema drift: new column(s) {listing} not in table {table}; approve to add "
                                f"them (ALTER TABLE ADD COLUMN) and load")
            for col in new:
                # Rows loaded before have no value for it: the added column must be Nullable.
                added = col if col.nullable or col.type.startswith("Array(") else Column(col.name, _nullable(col.type))
                self.target.add_column(table, added)
                existing.append(added)
            self._record_columns(table, existing)
            self.ledger.log(row.id, row.path, "engine", "schema", f"added column(s) {listing} to {table}")
            log.info("schema drift on %s: added %s", table, listing, extra={"event": "schema_drift", "table": table})
        if narrow := nullability.narrower(existing, wanted, opts):  # empty values where the table has none
            existing = nullability.widen(self.target, table, existing, narrow, opts, bool(row.approved))
            self._record_columns(table, existing)
        names = {w.name for w in wanted}
        missing = [c for c in existing if c.name not in names and c.name not in LINEAGE_NAMES and not c.fillable]
        if missing:
            raise InputError(f"file lacks column(s) {', '.join(c.name for c in missing)} of table {table}, "
                             f"which are neither Nullable nor have a DEFAULT")
        return existing

    def _record_columns(self, table: str, columns: list[Column]) -> None:
        """The table's columns in the ledger (meta ``columns:<table>``, ``[[name, type], ...]``), for
        `chute attach`, which cannot open the daemon's ClickHouse (core/attach.py RecordedSchemas).
        Written only when they changed: this runs for every file."""
        key, value = f"columns:{table}", json.dumps([[c.name, c.type] for c in columns])
        if self.ledger.meta(key) != value:
            self.ledger.set_meta(key, value)

    def _note_rejects(self, row: FileRow, rejects: Rejects) -> dict[str, str]:
        """The reason file beside the rejects; the ledger's note goes with `loaded` (_verify_sent)."""
        reason = {"path": row.path, "reason": f"{rejects.count} row(s) skipped (on_bad_rows = skip)",
                  "rejects": self.cfg.ledger_path(rejects.path, row.path),
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        Path(str(rejects.path).removesuffix(".rejects.csv") + ".reason.json").write_text(
            json.dumps(reason, indent=2) + "\n")
        return reason

    def _send(self, row: FileRow, reader: Reader, plan: Plan, sha: str, batch_rows: int,
              done: dict[int, int], fitter: Fitter, rejects: Rejects, anti_join: tuple[str, str] | None) -> None:
        """Insert every batch not yet acknowledged.

        A producer thread parses, converts and encodes batches ahead; ``insert_parallel``
        threads, each with its own connection, send them. Every batch still has its own
        intent before it is sent and its ack after, so their order does not matter
        (docs/ARCHITECTURE.md#intent-and-ack).
        """
        progress = Progress(row.id, row.path, row.table_name, sum(done.values()), plan.rows, time.time())
        self.on_progress(progress, row.id)
        lanes = max(1, self.cfg.insert_parallel)
        pipe = _Pipe(row, reader, sha, batch_rows, done, fitter, rejects, anti_join, progress, lanes,
                     queue.Queue(maxsize=lanes), bytes_per_row=(row.size or 0) / plan.rows if plan.rows else 0,
                     trace=tracing.current())  # handed to the pipeline's threads (context does not cross pools)
        futures = [self._batch_pool.submit(self._produce, pipe)]
        futures += [self._insert_pool.submit(self._consume, pipe) for _ in range(lanes)]
        try:
            for fut in futures[1:] + futures[:1]:
                try:
                    fut.result()
                except BaseException:
                    pipe.halt.set()  # one lane failed: the others stop taking batches
                    raise
        finally:
            pipe.halt.set()
            for fut in futures:
                if not fut.done():
                    fut.exception()

    def _produce(self, pipe: _Pipe) -> None:
        """The producer: parse, fit, add lineage, encode; hand each batch to the lanes."""
        row = pipe.row
        # Arrow views for the embedded engine only (the chdb chute installs reads them; an older
        # ClickHouse server may not), and not into the anti-join's key lookups.
        views = self.cfg.embedded and pipe.anti_join is None
        try:
            began = time.time()
            for idx, df in pipe.reader.batches(pipe.batch_rows, skip=frozenset(pipe.done)):
                first = idx * pipe.batch_rows
                df, rejected, kept = pipe.fitter.fit(df, first)
                pipe.rejects.add(rejected)
                data = with_lineage(df, row.path, pipe.sha, row.row_base + first, kept, views=views)
                if pipe.anti_join is not None:
                    data = self._anti_join(row.table_name, *pipe.anti_join, data)
                encoded = self.target.encode(data, spool=True)
                pipe.trace.span_at("parse", began, time.time(), batch=idx, rows=data.num_rows)
                if pipe.halt.is_set():
                    return
                # The intent, written here while the lanes insert earlier batches, still precedes
                # this batch's insert; its fsync is off the lanes' path (issue 12).
                self._intent(pipe, idx, data.num_rows)
                if not pipe.put((idx, data.num_rows, encoded)):
                    return
                del df, data, encoded  # not held while the next batch is parsed (peak RSS)
                began = time.time()
        finally:
            for _ in range(pipe.lanes):
                pipe.put(None)

    def _consume(self, pipe: _Pipe) -> None:
        """One insert lane: for each batch, intent -> insert with its token -> ack."""
        while not pipe.halt.is_set():
            try:
                item = pipe.ready.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            if self.stop.is_set():
                raise Interrupted()
            self._send_batch(pipe, *item)

    def _intent(self, pipe: _Pipe, idx: int, rows: int) -> None:
        """Step 1 of docs/ARCHITECTURE.md#intent-and-ack, committed before the batch reaches a lane."""
        row = pipe.row
        self.ledger.intent(row.id, row.generation, idx, dedup_token(pipe.sha, pipe.batch_rows, idx, row.generation),
                           rows)
        failpoints.step("batch_intent")

    def _send_batch(self, pipe: _Pipe, idx: int, rows: int, encoded: Encoded) -> None:
        row = pipe.row
        token = dedup_token(pipe.sha, pipe.batch_rows, idx, row.generation)
        t0 = time.perf_counter()
        try:
            with pipe.trace.step("insert", batch=idx, rows=rows, token=token):
                self.target.insert(row.table_name, encoded, token)
        except InputError as exc:
            raise self._explain(pipe.reader, idx, pipe.batch_rows, exc) from None
        secs = time.perf_counter() - t0
        failpoints.step("insert_acked")
        with pipe.lock:
            pipe.progress.rows_done += rows
            loaded = pipe.progress.rows_done
        self.ledger.ack(row.id, row.generation, idx, loaded)
        self.sizer.observe(rows, secs)
        failpoints.step("batch_done")
        self.on_batch(row.table_name, rows, int(rows * pipe.bytes_per_row), secs)
        self.on_progress(pipe.progress, row.id)

    def _choose_batch_rows(self, size: int, rows: int, reader: Reader | None = None) -> int:
        """B for a file's first attempt (core/batch_size.py); the ledger keeps it for every replay."""
        if not self.sizer.adaptive:
            return own_rows(self.cfg, reader, rows) or self.cfg.batch_rows
        mem = sysinfo.memory()
        return self.sizer.choose(size / rows if rows else 0.0, mem.available if mem else None)

    def _anti_join(self, table: str, key: str, ch_type: str, data: pa.Table) -> pa.Table:
        """Drop rows whose key the table already has (``skip_existing_keys``), for readers that
        cannot use FINAL. One bound query per batch."""
        import pyarrow.compute as pc  # here: a process that does not need it skips ~30 ms of import (issue 12)

        keys = data.column(key)
        if len(keys) == 0 or keys.null_count == len(keys):
            return data
        present = self.target.existing_keys(table, key, ch_type, pc.unique(keys).drop_null().to_pylist())
        if not present:
            return data
        return data.filter(pc.invert(pc.is_in(keys, value_set=pa.array(list(present), type=keys.type))))

    @staticmethod
    def _explain(reader: Reader, idx: int, batch_rows: int, exc: InputError) -> InputError:
        """ClickHouse refused a batch: name the row if it is a date that did not parse."""
        for i, df in reader.batches(batch_rows):
            if i == idx:
                return reader.find_bad_date(df, idx * batch_rows) or InputError(
                    f"{exc} (in data rows {idx * batch_rows + 1}-{idx * batch_rows + df.height})")
        return exc

    def _verify(self, row: FileRow, sha: str, rows: int, timings: dict[str, float],
                keyed: bool, reason: str | None = None) -> intents.Intent | None:
        t0 = time.perf_counter()
        found = self.target.count_source(row.table_name, sha, row.path)
        timings["verify"] = time.perf_counter() - t0
        # A keyed (Replacing) table may already have merged away rows whose key repeats, so there
        # only "more than sent" (duplicates) or "nothing at all" is provably wrong.
        ok = (0 < found <= rows or rows == 0) if keyed else found == rows
        if not ok and not keyed and self.fleet is not None:
            found = self._verify_fleet(row, sha, rows, found)
            ok = True
        if not ok:
            raise _VerifyError(f"verification failed: {row.table_name} holds {found} rows of this file, "
                               f"expected {rows}")
        # Write-ahead: the archive/delete intent precedes `loaded`, so a crash in between still moves it.
        dest = _free_name(self.cfg.aside("_archive", row.path)) if self.cfg.after_load == "archive" else None
        after = intents.begin_after_load(self.cfg, self.ledger, row, dest)
        noted: dict[str, Any] = {"reason": reason} if reason else {}  # rows skipped: said in this commit
        self.ledger.transition(row.id, State.LOADED, rows_loaded=found, loaded_at=time.time(), last_error=None,
                               error_kind=None, detail=f"{found} rows into {row.table_name}", expect=[State.LOADING],
                               **noted)
        log.info("loaded %s -> %s: %d rows (%s)", row.path, row.table_name, found,
                 ", ".join(f"{k} {v:.3f}s" for k, v in timings.items()),
                 extra=file_fields(row, "loaded", rows=found, duration_s=round(sum(timings.values()), 3)))
        failpoints.step("loaded")
        return after

    def _verify_fleet(self, row: FileRow, sha: str, rows: int, found: int) -> int:
        """dedup_scope = fleet: another host may have sent some or all of this content's batches (same
        tokens) under its own path. One copy of the content in the table is what counts."""
        assert self.fleet is not None
        verdict = self.fleet.verify(row, sha, rows, found)
        if verdict == "loaded":
            return found
        if verdict == "extra":  # a full copy exists besides ours: ours goes
            self.target.delete_source(row.table_name, sha, row.path)
            self.ledger.update(row.id, generation=row.generation + 1, rows_loaded=0)
        if verdict == "duplicate":  # every batch we sent was dropped as the other host's (same tokens)
            self.ledger.update(row.id, rows_loaded=0)
        if verdict in ("duplicate", "extra"):
            raise _Duplicate(f"another host loaded the same content at the same moment; its copy in "
                             f"{row.table_name} stands")
        raise _VerifyError(f"verification failed: {row.table_name} holds {found} rows of this file, expected {rows}")

    def _after_load(self, row: FileRow, path: Path, intent: intents.Intent | None) -> None:
        """Archive or delete the loaded file, finishing the intent written before `loaded` (core/intents.py)."""
        if intent is not None:
            intents.after_load(self.cfg, self.ledger, intent)

    # -- outcomes -------------------------------------------------------------------------

    def _changed(self, row: FileRow, why: str) -> State | None:
        path = self.cfg.locate(row.path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            # Rows of a content that changed while it was read, and no newer version at this path
            # will clear them (_clear_superseded): take them back now, as a quarantine does.
            err = self._take_back(self.ledger.get(row.id) or row)
            if err is not None:
                return self._failed(row, TargetError(f"{why} (and removing its partial rows failed: {err})",
                                                     unreachable=err.unreachable))
            self.ledger.transition(row.id, State.FAILED, error_kind="gone", last_error="file disappeared before it "
                                   "was loaded", next_attempt=None, detail=why, expect=[State.LOADING])
            return State.FAILED
        fresh = self.ledger.get(row.id) or row
        if self.ledger.any_batches(row.id, fresh.generation):
            # Rows of the old content are in: this version is over. The watcher makes a new one,
            # whose load removes these partial rows first (_clear_superseded).
            self.ledger.transition(row.id, State.FAILED, error_kind="superseded", next_attempt=None, current=0,
                                   last_error="changed while loading; superseded by a newer version",
                                   detail=why, expect=[State.LOADING])
            self.on_settle(row.path)
            return State.FAILED
        self.ledger.transition(row.id, State.SETTLING, detail=why, dev=st.st_dev, inode=st.st_ino,
                               size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, complete_hint=0,
                               attempts=row.attempts,
                               expect=[State.LOADING])
        self.on_settle(row.path)  # the watcher must track it again, not wait for a rescan
        return State.SETTLING

    def _failed(self, row: FileRow, exc: TargetError) -> State | None:
        if resources.full_kind(exc) == resources.TARGET and self.on_full(exc):
            # ClickHouse's disk is full: wait for space (the engine resumes it), costing no attempt.
            self.ledger.transition(row.id, State.FAILED, error_kind="full", last_error=str(exc),
                                   next_attempt=time.time() + resources.TARGET_RETRY_SECONDS, detail=str(exc),
                                   expect=[State.LOADING])
            return State.FAILED
        fresh = self.ledger.get(row.id)
        # An attempt that got batches acknowledged is not a failure to give up on (a flaky link).
        progressed = fresh is not None and (fresh.rows_loaded or 0) > (row.rows_loaded or 0)
        if not isinstance(exc, _VerifyError):
            # The error says what one request saw; a probe says whether ClickHouse is there at all:
            # a cut on a healthy server costs an attempt, any error from an absent one waits.
            exc.unreachable = not self.target.ping()
        else:
            progressed = False
            # Replay with a fresh generation: old tokens would be silently dropped (docs/ARCHITECTURE.md#generations).
            try:
                if fresh and fresh.sha256:
                    self.target.delete_source(row.table_name, fresh.sha256, row.path)
                self.ledger.update(row.id, generation=(fresh or row).generation + 1, rows_loaded=0)
            except TargetError as err:
                log.warning("could not clear rows of %s for a replay: %s", row.path, err,
                            extra=file_fields(row, "clear_failed", error_kind="clickhouse"))
        attempts = row.attempts if progressed else row.attempts + 1
        retry = attempts < self.cfg.max_attempts or (exc.unreachable and not self.exhaust_unreachable)
        delay = backoff(attempts, self.cfg.backoff_base, self.cfg.backoff_max)
        next_attempt = time.time() + delay if retry else None
        kind = "unreachable" if exc.unreachable else ("verify" if isinstance(exc, _VerifyError) else "clickhouse")
        suffix = f"; retry in {delay:.1f}s" if retry else f"; gave up after {attempts} attempts (chute retry PATH)"
        if exc.unreachable:  # first: a file failed as unreachable never shows beside "ClickHouse OK"
            self.on_unreachable(exc)
        if self.ledger.transition(row.id, State.FAILED, error_kind=kind, last_error=str(exc),
                                  next_attempt=next_attempt, attempts=attempts, detail=str(exc) + suffix,
                                  expect=[State.LOADING]) is None:
            return None  # an operator acted on it meanwhile (purge): their state stands
        log.warning("failed %s: %s%s", row.path, exc, suffix,
                    extra=file_fields(row, "failed", error_kind=kind, attempts=attempts,
                                      duration_s=_since(row)))
        return State.FAILED

    def _take_back(self, fresh: FileRow) -> TargetError | None:
        """Zero partial rows of ``fresh`` (the version as the ledger has it now): delete what its
        batches inserted (acknowledged or only attempted: an uncertain insert may have landed) and
        move to a new generation, so their tokens are never reused. The error when ClickHouse
        refused the delete."""
        if not (fresh.sha256 and self.ledger.any_batches(fresh.id, fresh.generation)):
            return None
        try:
            self.target.delete_source(fresh.table_name, fresh.sha256, fresh.path)
        except TargetError as err:
            return err
        self.ledger.update(fresh.id, generation=fresh.generation + 1, rows_loaded=0)
        return None

    def _quarantine(self, row: FileRow, exc: InputError) -> State | None:
        fresh = self.ledger.get(row.id) or row
        err = self._take_back(fresh)
        if err is not None:
            return self._failed(row, TargetError(f"{exc} (and removing its partial rows failed: {err})",
                                                 unreachable=err.unreachable))
        dest = _free_name(self.cfg.aside("_quarantine", row.path))
        reason = {
            "path": row.path,
            "reason": str(exc),
            "line": exc.line,
            "column": exc.column,
            "sha256": fresh.sha256,
            "table": row.table_name,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        intents.quarantine(self.cfg, self.ledger, row, reason, dest)  # write-ahead: move, reason, state
        log.warning("quarantined %s: %s", row.path, exc, extra=file_fields(row, "quarantined", error_kind="input",
                                      duration_s=_since(row)))
        return State.QUARANTINED


def _since(row: FileRow) -> float:
    """Seconds since the claim (``updated_at`` of the claimed row): the attempt's duration for log lines."""
    return round(time.time() - row.updated_at, 3)


class _Deferred(Exception):
    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class _Duplicate(Exception):
    pass


class _VerifyError(TargetError):
    pass


def _nullable(kind: str) -> str:
    if kind.startswith("LowCardinality("):
        return f"LowCardinality(Nullable({kind[len('LowCardinality('):-1]}))"
    return f"Nullable({kind})"


def _in_whole_file(exc: InputError, before: int) -> InputError:
    """The error with its line counted in the whole file (``before``: Append.lines_before)."""
    if not exc.line or not before:
        return exc
    line = exc.line + before
    return InputError(str(exc).replace(f"line {exc.line}", f"line {line}", 1), line=line, column=exc.column)


def _check_inside(root: Path, path: Path) -> None:
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise InputError("symlink pointing outside the data folder")


def _free_name(dest: Path) -> Path:
    """``dest``, or ``dest.1``, ``dest.2``... when taken (never overwrite a quarantined file)."""
    if not dest.exists() and not Path(str(dest) + ".reason.json").exists():
        return dest
    n = 1
    while Path(f"{dest}.{n}").exists():
        n += 1
    return Path(f"{dest}.{n}")
