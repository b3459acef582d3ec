"""Small files of one table share one insert under one token (docs/ARCHITECTURE.md#groups).

Each member keeps its own lineage columns, state, batches and verification; the group only
shares the insert: a group intent (members in a fixed order, their generation and rows) is
committed before it, one ack after it marks every member's batch 0 done. A group whose insert
was not acknowledged is replayed as the same group (same members, order and token) before any
member loads again, or, when that is impossible, its members' rows are deleted and their
generations bumped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from typing import TYPE_CHECKING

import pyarrow as pa

import chute.core.loader as lm
from chute.core import combined, failpoints, intents
from chute.core.combined import Member
from chute.core.errors import FileChanged, InputError, TargetError
from chute.core.fit import Fitter
from chute.core.growing import Append
from chute.core.ledger import FileRow, GroupMember
from chute.core.logsetup import file_fields
from chute.core.reader import open_source, with_lineage
from chute.core.states import State

if TYPE_CHECKING:
    from chute.core.loader import Loader, _Job

log = logging.getLogger("chute.groups")

PREPARE_THREADS = min(4, os.cpu_count() or 2)
# States a member of an unacknowledged group may be in for the group to be replayed.
REPLAYABLE = (State.QUEUED, State.FAILED, State.LOADING)


def group_token(table: str, members: list[GroupMember]) -> str:
    """Derived from the members in their order (content, path-independent id and generation): the
    same group always carries the same token, and any other grouping a different one."""
    h = hashlib.sha256(table.encode())
    for m in members:
        h.update(f"\n{m.file_id}:{m.generation}:{m.sha256}:{m.rows}".encode())
    return f"group:{h.hexdigest()}"


class _Unreplayable(Exception):
    """A member of an unacknowledged group is no longer the version the group sent."""


class Groups:
    """The loader's group path: prepare each member alone, send them together, verify them at once."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        self._replay = threading.Lock()  # one unacknowledged group settled at a time
        # Members are parsed side by side (polars releases the GIL): a group's files are many and small.
        self._pool = ThreadPoolExecutor(max_workers=PREPARE_THREADS, thread_name_prefix="chute-group")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- one dispatch of small files ---------------------------------------------------------

    def run(self, rows: list[FileRow]) -> list[tuple[FileRow, State | None]]:
        """Claim ``rows`` in one transaction; members that cannot share an insert load alone."""
        L = self.loader
        outcomes: dict[int, State | None] = {r.id: None for r in rows}
        ready: list[Member] = []
        alone: list[FileRow] = []
        claimed = L.ledger.claim_many([r.id for r in rows])
        # Files that can be parsed together (core/combined.py); a table not known yet is first made
        # (or read) by one of its files on the per-file path, and the others then fit it.
        fast = combined.combinable(L, claimed)
        pioneers = list({r.table_name: r for r in reversed(fast) if r.table_name not in L._schemas}.values())
        self._collect(pioneers, [self._try(r, partial(self._prepare, r)) for r in pioneers], outcomes, ready, alone)
        first = {r.id for r in pioneers}
        members, _ = combined.combine(L, [r for r in fast if r.id not in first and r.table_name in L._schemas])
        ready += members
        taken = first | {m.row.id for m in members}
        rest = [r for r in claimed if r.id not in taken]
        prepared = self._pool.map(lambda row: self._try(row, partial(self._prepare, row)), rest)
        self._collect(rest, prepared, outcomes, ready, alone)
        for batch in self._split(ready):
            outcomes.update(self._load_group(batch, alone))
        for row in alone:
            outcomes[row.id] = L.settle(row, partial(self._alone, row))
        return [(r, outcomes[r.id]) for r in rows]

    @staticmethod
    def _collect(rows: list[FileRow], prepared: Iterable[tuple[State | None, Member | None]],
                 outcomes: dict[int, State | None], ready: list[Member], alone: list[FileRow]) -> None:
        for row, (outcome, member) in zip(rows, prepared, strict=True):
            if outcome != State.LOADING:
                outcomes[row.id] = outcome
            elif member is None:
                alone.append(row)
            else:
                ready.append(member)

    def _alone(self, row: FileRow) -> State:
        """A claimed version that does not fit a group loads by itself (reread: an abandoned group
        may have moved its generation)."""
        return self.loader._load_one(self.loader.ledger.get(row.id) or row)

    def _try(self, row: FileRow, work: Callable[[], Member | None]) -> tuple[State | None, Member | None]:
        """``work`` for one member: (LOADING, its result), or (its outcome, None) when it raised."""
        box: list[Member | None] = []

        def step() -> State:
            box.append(work())
            return State.LOADING

        outcome = self.loader.settle(row, step)
        return outcome, box[0] if box else None

    def _prepare(self, row: FileRow) -> Member | None:
        """Steps 1-6 for one member, and its rows fitted with lineage. None: it loads alone."""
        L, cfg = self.loader, self.loader.cfg
        if L.ledger.any_batches(row.id, row.generation) or L.fleet is not None:
            return None  # rows of it may be in the table (or another host's): the per-file path knows
        path = cfg.locate(row.path)
        lm._check_inside(cfg.split(row.path)[0], path)
        stack = ExitStack()
        try:
            src = stack.enter_context(open_source(path, row.compression, cfg.max_file_bytes))
            append = stack.enter_context(Append(L.ledger, row, cfg.state_dir))
            try:
                job = L._open(row, src, append)
                if append.base is not None or job.opts.skip_existing_keys or job.opts.on_bad_rows == "skip":
                    stack.close()
                    return None
                return self._prepare_open(job, stack)
            except InputError:
                src.check_unchanged()  # a file rewritten under us is not bad input: settle it again
                raise
        except BaseException:
            stack.close()
            raise

    def _prepare_open(self, job: _Job, stack: ExitStack) -> Member | None:
        L, row = self.loader, job.row
        L._hash_and_plan(job)
        job.batch_rows = row.batch_rows or L._choose_batch_rows(job.src.st.st_size, job.plan.rows)
        if not 0 < job.plan.rows <= min(job.batch_rows, L.cfg.group_max_rows):
            stack.close()
            return None
        L._claim_content(job)
        stack.callback(L.claims.release, job.sha, row.id)
        try:
            L._clear_superseded(job.row)  # whatever this version turns out to be (a duplicate too)
            L._gatekeep_or_take_back(job)
            table = L._prepare_table(job.row, job.plan, job.opts)
            data = _fitted(job, table, L.target.server_zone)
            if job.reader.pending_check and (problem := job.reader.pending_check()) is not None:
                raise problem
        except BaseException:
            L.ledger.update(row.id, sha256=job.sha, rows=job.plan.rows)  # as the per-file path records it
            raise
        return Member(job.row, job.sha, job.batch_rows, job.src, bool(job.opts.key), data, stack)

    def _split(self, ready: list[Member]) -> list[list[Member]]:
        """Members with the same table and columns, in runs of at most group_max_rows rows."""
        cfg = self.loader.cfg
        out: list[list[Member]] = []
        filling: dict[tuple[str, str], tuple[list[Member], list[int]]] = {}
        for m in ready:
            key = (m.row.table_name, str(m.data.schema))
            group, rows = filling.get(key, (None, [0]))
            if group is None or rows[0] + m.data.num_rows > cfg.group_max_rows:
                group, rows = [], [0]
                filling[key] = (group, rows)
                out.append(group)
            group.append(m)
            rows[0] += m.data.num_rows
        return out

    def _load_group(self, members: list[Member], alone: list[FileRow]) -> dict[int, State | None]:
        """Steps 7-9 for the group: one intent, one insert, one ack, one verification query."""
        L = self.loader
        with ExitStack() as stack:
            for m in members:
                stack.push(m.stack)
            table = members[0].row.table_name
            records = [m.record() for m in members]
            token = group_token(table, records)
            try:
                if L.stop.is_set():
                    raise lm.Interrupted()
                gid = L.ledger.group_intent(table, token, records)
                failpoints.step("group_intent")
                try:
                    self._send(gid, table, token, records, [m.data for m in members])
                except InputError as exc:  # ClickHouse refused the rows: each member alone says which
                    self._abandon(gid, table, records, f"the group insert was refused: {exc}")
                    alone.extend(m.row for m in members)
                    return {}
            except BaseException as exc:  # noqa: BLE001 - recorded as the members' outcomes
                return self._shared_failure(members, exc)
            return self._verify(table, members)

    def _shared_failure(self, members: list[Member], exc: BaseException) -> dict[int, State | None]:
        """The shared insert failed once: the first member records it (one attempt, and the engine's
        pause on an outage or a full disk); the others wait for the next try without spending one.
        Whichever loads next replays the group first (``resolve``)."""
        L = self.loader
        first = members[0].row
        out = {first.id: L.settle(first, _raiser(exc))}
        wait: BaseException = exc if isinstance(exc, lm.Interrupted) else lm._Deferred(
            f"waiting: the insert shared with {first.path} failed: {exc}", delay=max(1.0, L.cfg.backoff_base))
        out.update({m.row.id: L.settle(m.row, _raiser(wait)) for m in members[1:]})
        return out

    def _send(self, gid: int, table: str, token: str, records: list[GroupMember], datas: list[pa.Table]) -> None:
        L = self.loader
        rows = sum(r.rows for r in records)
        t0 = time.perf_counter()
        L.target.insert(table, L.target.encode(_concat(datas)), token)
        secs = time.perf_counter() - t0
        failpoints.step("group_inserted")
        L.ledger.group_ack(gid)
        L.sizer.observe(rows, secs)
        failpoints.step("group_done")
        L.on_batch(table, rows, sum(d.nbytes for d in datas), secs)

    def _verify(self, table: str, members: list[Member]) -> dict[int, State | None]:
        """Re-check each member's file, then one count per member in one query, then `loaded`."""
        L = self.loader
        outcomes: dict[int, State | None] = {}
        good: list[Member] = []
        for m in members:
            outcome, _ = self._try(m.row, m.src.check_unchanged)
            if outcome == State.LOADING:
                good.append(m)
            else:
                outcomes[m.row.id] = outcome
        if not good:
            return outcomes
        keyed = good[0].keyed
        try:
            found = L.target.count_sources(table, [(m.sha, m.row.path) for m in good])
        except Exception as exc:  # noqa: BLE001 - each member's own failure: none may stay `loading`
            outcomes.update({m.row.id: L.settle(m.row, _raiser(exc)) for m in good})
            return outcomes
        failpoints.step("group_verified")
        loaded: list[Member] = []
        for m in good:
            n, sent = found.get((m.sha, m.row.path), 0), m.data.num_rows
            if (0 < n <= sent) if keyed else n == sent:
                loaded.append(m)
            else:
                err = lm._VerifyError(f"verification failed: {table} holds {n} rows of this file, expected {sent}")
                outcomes[m.row.id] = L.settle(m.row, _raiser(err))
        outcomes.update(self._loaded(table, loaded, found))
        return outcomes

    def _loaded(self, table: str, members: list[Member], found: dict[tuple[str, str], int]) -> dict[int, State | None]:
        """`loaded` for every verified member in one transaction (one per member with after_load)."""
        L = self.loader
        if L.cfg.after_load != "keep":  # the archive/delete intent precedes `loaded` (core/intents.py)
            out: dict[int, State | None] = {}
            for m in members:
                count = found[(m.sha, m.row.path)]
                out[m.row.id] = L.settle(m.row, partial(self._loaded_one, m, count))
            return out
        done = set(L.ledger.loaded_many([(m.row.id, found[(m.sha, m.row.path)],
                                          f"{found[(m.sha, m.row.path)]} rows into {table} (grouped)")
                                         for m in members]))
        for m in members:
            if m.row.id in done:
                log.info("loaded %s -> %s: %d rows (grouped)", m.row.path, table, m.data.num_rows,
                         extra=file_fields(m.row, "loaded", rows=m.data.num_rows))
        failpoints.step("loaded")
        return {m.row.id: State.LOADED if m.row.id in done else None for m in members}

    def _loaded_one(self, m: Member, count: int) -> State:
        L = self.loader
        dest = lm._free_name(L.cfg.aside("_archive", m.row.path)) if L.cfg.after_load == "archive" else None
        after = intents.begin_after_load(L.cfg, L.ledger, m.row, dest)
        L.ledger.transition(m.row.id, State.LOADED, rows_loaded=count, loaded_at=time.time(), last_error=None,
                            error_kind=None, detail=f"{count} rows into {m.row.table_name} (grouped)",
                            expect=[State.LOADING])
        failpoints.step("loaded")
        m.stack.close()  # the file is closed before it is moved
        L._after_load(m.row, L.cfg.locate(m.row.path), after)
        return State.LOADED

    # -- an unacknowledged group --------------------------------------------------------------

    def resolve(self, row: FileRow) -> FileRow:
        """Before ``row`` loads alone: if its batch 0 is in a group whose insert was never
        acknowledged, replay that group as it was, or abandon it (rows deleted, generations bumped)."""
        L = self.loader
        gid = L.ledger.open_group(row.id, row.generation)
        if gid is None:
            return row
        with self._replay:
            self._replay_or_abandon(gid)
        return L.ledger.get(row.id) or row

    def _replay_or_abandon(self, gid: int) -> None:
        L = self.loader
        found = L.ledger.group(gid)
        if found is None or found[0]["state"] != "intent":
            return  # another thread settled it meanwhile
        head, records = found
        table = head["table_name"]
        if failpoints.enabled("group_reorder"):  # negative control: a replay that regroups
            records = list(reversed(records))
        try:
            datas = [self._rebuild(m) for m in records]
        except _Unreplayable as exc:
            self._abandon(gid, table, records, str(exc))
            return
        token = group_token(table, records)
        if token != head["token"] and not failpoints.enabled("group_reorder"):
            self._abandon(gid, table, records, "the group's token does not match its members")
            return
        failpoints.step("group_replay")
        L.target.insert(table, L.target.encode(_concat(datas)), token)
        failpoints.step("group_inserted")
        if (gone := self._moved_on(records)) is not None:  # e.g. purged meanwhile: it was never claimed
            self._abandon(gid, table, records, gone)
            return
        L.ledger.group_ack(gid)
        failpoints.step("group_done")
        log.info("replayed group #%d of %d file(s) into %s", gid, len(records), table,
                 extra={"event": "group_replayed", "table": table})

    def _moved_on(self, records: list[GroupMember]) -> str | None:
        """Why a member is no longer the version the replay sent (None: none moved on). The replay
        reads members it does not claim (`queued`, `failed`); an operator's purge of one that began
        before this check is seen here, one that begins after it deletes the rows just inserted."""
        L = self.loader
        for m in records:
            row = L.ledger.get(m.file_id)
            if row is None or row.generation != m.generation or row.state not in REPLAYABLE \
                    or intents.open_for(L.ledger, m.file_id) is not None:
                return f"file #{m.file_id} moved on while the group was replayed"
        return None

    def _rebuild(self, m: GroupMember) -> pa.Table:
        """The member's rows exactly as the group sent them, if it is still that very version."""
        L, cfg = self.loader, self.loader.cfg
        row = L.ledger.get(m.file_id)
        if row is None or row.state not in REPLAYABLE or not row.current or row.generation != m.generation:
            raise _Unreplayable(f"file #{m.file_id} is no longer the version the group sent")
        try:
            with open_source(cfg.locate(row.path), row.compression, cfg.max_file_bytes) as src, \
                    Append(L.ledger, row, cfg.state_dir) as append:
                job = L._open(row, src, append)
                L._hash_and_plan(job)
                job.batch_rows = row.batch_rows or job.plan.rows
                if (job.sha, job.plan.rows) != (m.sha256, m.rows):
                    raise _Unreplayable(f"{row.path} changed since the group was sent")
                return _fitted(job, L._prepare_table(row, job.plan, job.opts), L.target.server_zone)
        except TargetError:
            raise  # ClickHouse trouble: the group stays open for the next attempt
        except Exception as exc:  # noqa: BLE001 - whatever it is, abandoning the group is always safe
            raise _Unreplayable(f"{row.path}: {exc}") from None

    def _abandon(self, gid: int | None, table: str, records: list[GroupMember], why: str) -> None:
        """Rows of every member out first (a delete is safe to repeat), then fresh generations."""
        L = self.loader
        for m in records:
            row = L.ledger.get(m.file_id)
            if row is not None:
                L.target.delete_source(table, m.sha256, row.path)
        if gid is not None:
            L.ledger.abandon_group(gid, why)
        log.warning("group of %d file(s) into %s abandoned: %s; each loads again", len(records), table, why,
                    extra={"event": "group_abandoned", "table": table})


def _fitted(job: _Job, table: list, server_zone: str) -> pa.Table:
    """The version's single batch fitted to the table's columns, with its lineage columns."""
    reader, row = job.reader, job.row
    fitter = Fitter(table, reader.wire_schema, reader.date_types, skip_bad=False,
                    header_lines=reader.header_lines + row.row_base, server_zone=server_zone,
                    lines=job.append.record_lines(job.src, reader))
    for idx, df in reader.batches(job.batch_rows):
        if idx:
            raise FileChanged(f"{row.path} holds more rows than its plan")
        fitted, _, kept = fitter.fit(df, 0)
        return with_lineage(fitted, row.path, job.sha, row.row_base, kept)
    raise FileChanged(f"{row.path} holds no rows")


def _concat(datas: list[pa.Table]) -> pa.Table:
    """One table from the members' (their lineage dictionaries merged, so it encodes as one batch)."""
    return pa.concat_tables(datas).unify_dictionaries().combine_chunks()


def _raiser(exc: BaseException) -> Callable[[], State]:
    """Work that fails with ``exc``: how a shared failure becomes each member's own outcome."""
    def work() -> State:
        raise exc
    return work
