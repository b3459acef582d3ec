"""Many small CSVs of one group parsed and typed ONCE, as one buffer (docs/ARCHITECTURE.md#groups).

Files of a group that share the exact header line and dialect are concatenated (header once,
then each file's records) into one in-memory file, which the ordinary CsvReader plans, checks
and types like any file; a file index gives each file its own lineage (`_source_path`,
`_source_sha256`, `_source_row`) from per-file row counts, vectorised. This is only a cheaper
way to the very rows the per-file path sends, so it is taken only where that is provable:

- each file is a plain new version: the only version at its path, no batch ever sent, content
  (sha256) not known to the ledger, no approval wanted, no fleet, no append, no row skipping;
- each record is one line (the parse finds exactly as many records as lines, no blank line), so
  file i's rows are its lines;
- the table exists and the combined verdicts fit it with nothing to decide: no new or missing
  column, no empty value where the table has no NULL, no null token in a typed column, and a
  type that gives every file's values exactly what its own inference would have given them
  (`_fits`).

Anything else (a parse error, a short row, drift, a value the table refuses) sends those files
down the per-file path unchanged, where each gets its own verdicts, line numbers and outcome; a
run that fails is halved first, so one bad file takes only a few neighbours with it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from chute.core.errors import ChuteError
from chute.core.fit import Fitter
from chute.core.formats.infer import Verdict
from chute.core.formats.limits import check_limits
from chute.core.ledger import FileRow, GroupMember, same_identity
from chute.core.reader import READER_ERRORS, Reader, Source, open_source, reader_for
from chute.core.routing import Route, options_for, reader_options
from chute.core.schema import LINEAGE_NAMES, Column, polars_type

if TYPE_CHECKING:
    from chute.core.loader import Loader

log = logging.getLogger("chute.combined")

# Text that some file's own inference could have typed (a number, a bool, a date), and so turned
# into other text on its way into a String column ("1.50" -> "1.5", a null token -> NULL).
_TYPABLE = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$|^-?inf$|^(true|false|True|False|TRUE|FALSE)$|^[0-9]{4}-"
_FILE = "\x00file"
# A run that cannot be parsed together is halved until its parts are smaller than this.
HALVING_MIN = 4


@dataclass
class Member:
    """One version ready to share a group's insert: its fitted rows with lineage."""

    row: FileRow
    sha: str
    batch_rows: int
    src: Source  # still open: re-checked before verification
    keyed: bool  # a keyed (Replacing) table: verified as "at least one, at most as sent"
    data: pa.Table
    stack: ExitStack  # the open file and its content claim

    def record(self) -> GroupMember:
        return GroupMember(self.row.id, self.row.generation, self.sha, self.data.num_rows, self.batch_rows)


@dataclass
class _Read:
    """A candidate file, read whole and hashed, still open."""

    row: FileRow
    src: Source
    stack: ExitStack
    sha: str
    head: bytes  # the header line, line end included
    body: bytes  # its records, ending with a newline
    lines: int


def combinable(loader: Loader, rows: list[FileRow]) -> list[FileRow]:
    """The rows that may take the combined path (cheap tests, one ledger query)."""
    cfg = loader.cfg
    if loader.fleet is not None:
        return []
    maybe = [r for r in rows if r.fmt in ("csv", "tsv") and r.compression is None and r.base_id is None
             and not r.rows_loaded and (r.approved or not cfg.require_approval) and _plain(options_for(
                 r.table_name, cfg.every_route))]
    try:
        fresh = loader.ledger.fresh_versions([r.id for r in maybe])
    except Exception:  # the rows are claimed: a failing shortcut must leave them to the per-file path
        log.exception("choosing files to parse together failed; each loads on its own")
        return []
    return [r for r in maybe if r.id in fresh]


def _plain(opts: Route) -> bool:
    return not opts.skip_existing_keys and opts.on_bad_rows != "skip"


def combine(loader: Loader, rows: list[FileRow]) -> tuple[list[Member], list[FileRow]]:
    """Members for ``rows`` (from ``combinable``, claimed, their table known to the loader) parsed
    together where that is provable; the rest go down the per-file path."""
    reads: list[_Read] = []
    rest: list[FileRow] = []
    try:
        _read_all(loader, rows, reads, rest)
        known = loader.ledger.known_content({r.row.id: r.sha for r in reads})
        runs: dict[tuple, list[_Read]] = {}
        for r in reads:
            if r.sha in known:
                rest.append(_drop(r))
            else:
                runs.setdefault((r.row.table_name, r.row.fmt, r.head), []).append(r)
        members: list[Member] = []
        for run in runs.values():
            for chunk in _chunks(run, loader.cfg.group_max_rows):
                members += _halving(loader, chunk, rest)
        return members, rest
    except Exception:  # a shortcut must never strand its files in `loading`: all take the per-file path
        log.exception("parsing %d file(s) together failed; each loads on its own", len(rows))
        for r in reads:
            r.stack.close()  # (the members made so far share these: none is returned)
        return [], list(rows)


def _halving(loader: Loader, chunk: list[_Read], rest: list[FileRow]) -> list[Member]:
    """The chunk's members; when it cannot be shown equal, each half's, down to a few files, which
    take the per-file path: one bad file costs about two more parses of the chunk, not the chunk."""
    got = _members(loader, chunk)
    if got is not None:
        return got
    if len(chunk) < HALVING_MIN:
        rest.extend(_drop(r) for r in chunk)
        return []
    half = len(chunk) // 2
    return _halving(loader, chunk[:half], rest) + _halving(loader, chunk[half:], rest)


def _read_all(loader: Loader, rows: list[FileRow], reads: list[_Read], rest: list[FileRow]) -> None:
    for row in rows:
        read = _read(loader, row)
        if read is None:
            rest.append(row)
        else:
            reads.append(read)


def _read(loader: Loader, row: FileRow) -> _Read | None:
    """Open, read whole, hash; claim the content. None: the per-file path takes it (and says why)."""
    cfg = loader.cfg
    stack = ExitStack()
    try:
        src = stack.enter_context(open_source(cfg.locate(row.path), None, cfg.max_file_bytes))
        # Where the open file really is (one readlink; a realpath walks every component), inside its
        # folder: a symlink out of it is the per-file path's to refuse.
        root = _real_root(str(cfg.split(row.path)[0]))
        if not os.readlink(src.proc_path).startswith(root):
            raise _NotHere()
        if not same_identity(row, src.st):
            raise _NotHere()
        data = os.pread(src.fd, src.st.st_size + 1, 0)
        cut = data.find(b"\n") + 1
        if len(data) != src.st.st_size or b"\x00" in data or not 0 < cut < len(data):
            raise _NotHere()
        body = data[cut:] if data.endswith(b"\n") else data[cut:] + b"\n"
        sha = hashlib.sha256(data).hexdigest()
        if loader.claims.claim(sha, row.id) is not None:
            raise _NotHere()  # a twin is loading: the per-file path defers it
        stack.callback(loader.claims.release, sha, row.id)
        return _Read(row, src, stack, sha, data[:cut], body, body.count(b"\n"))
    except (_NotHere, ChuteError, OSError):
        stack.close()
        return None


@lru_cache(maxsize=64)
def _real_root(root: str) -> str:
    return os.path.join(os.path.realpath(root), "")


class _NotHere(Exception):
    """This file is not one for the combined path."""


def _drop(r: _Read) -> FileRow:
    r.stack.close()
    return r.row


def _chunks(run: list[_Read], max_rows: int) -> list[list[_Read]]:
    """Runs of at most ``max_rows`` rows."""
    out: list[list[_Read]] = []
    rows = max_rows + 1
    for r in run:
        if rows + r.lines > max_rows:
            out.append([])
            rows = 0
        out[-1].append(r)
        rows += r.lines
    return out


def _members(loader: Loader, chunk: list[_Read]) -> list[Member] | None:
    """The chunk's members, or None when the combined parse cannot be shown to equal per-file ones."""
    first = chunk[0].row
    table = loader._schemas.get(first.table_name)
    opts = options_for(first.table_name, loader.cfg.every_route)
    sizes = np.array([r.lines for r in chunk], dtype=np.int64)
    limits = [r.row.batch_rows or loader._choose_batch_rows(r.src.st.st_size, r.lines) for r in chunk]
    if table is None or any(not 0 < n <= min(b, loader.cfg.group_max_rows) for n, b in zip(sizes, limits,
                                                                                             strict=True)):
        return None
    if opts.delimiter is None and first.fmt == "csv" and any(
            d in r.head or d in r.body for r in chunk for d in (b"\t", b";", b"|")):
        return None  # a per-file sniff could pick another delimiter
    fd = os.memfd_create("chute-group", os.MFD_CLOEXEC)
    with Source(path=Path(f"<{len(chunk)} files of {first.table_name}>"), fd=fd, st=os.fstat(fd),
                compression=None) as src:
        os.write(fd, b"".join([chunk[0].head, *(r.body for r in chunk)]))
        src.st = os.fstat(fd)
        try:
            check_limits(src, loader.cfg.max_record_bytes, 0)
            reader = reader_for(src, first.fmt, reader_options(opts, first.fmt))
            frame = _parse(reader, int(sizes.sum()))
            if frame is None or not _fits(reader, frame, table, sizes):
                return None
            fitted, _, _ = Fitter(table, reader.wire_schema, reader.date_types, skip_bad=False,
                                  server_zone=loader.target.server_zone).fit(frame, 0)
        except (ChuteError, *READER_ERRORS, OSError):
            return None
    starts = np.cumsum(sizes) - sizes
    data = _with_lineage(fitted.to_arrow(), chunk, sizes, starts)
    return [Member(r.row, r.sha, b, r.src, bool(opts.key), data.slice(int(s), int(n)), r.stack)
            for r, b, s, n in zip(chunk, limits, starts, sizes, strict=True)]


def _parse(reader: Reader, lines: int) -> pl.DataFrame | None:
    """The whole buffer as one typed frame, if every record was one line and nothing is amiss."""
    plan = reader.plan()
    if plan.rows != lines or not getattr(reader, "header", False) or getattr(reader, "_blank", None) is not None:
        return None  # quoted newlines, blank lines, no header: the lines are not the records
    if reader.pending_check is not None and reader.pending_check() is not None:
        return None  # a short row: the per-file path names its line
    frame = None
    for _, df in reader.batches(lines):
        frame = df
    return frame if frame is not None and frame.height == lines else None


def _fits(reader: Reader, frame: pl.DataFrame, table: list[Column], sizes: np.ndarray) -> bool:
    """The combined verdicts load every file's values exactly as its own verdicts would, into the
    table as it is (no drift, no NULL where none may go)."""
    have = {c.name: c for c in table}
    if not _same_columns(frame, have):
        return False
    verdicts = {n: _same_for_every_file(have[n], reader.verdicts.get(n)) for n in frame.columns}
    if not all(verdicts.values()):
        return False
    floats = [pl.col(n) for n, v in verdicts.items() if v == "float"]
    if floats and frame.select(pl.any_horizontal(((c == 0) & (1.0 / c < 0)).any() for c in floats)).item():
        return False  # "-0": -0.0 here, but 0 in a file of integers (its own verdict int)
    texts = [n for n, v in verdicts.items() if v == "text"]
    return not texts or not _typable_somewhere(frame, texts, sizes, reader.null_values)


def _same_columns(frame: pl.DataFrame, have: dict[str, Column]) -> bool:
    """The table's columns, no more (drift, a reserved name), none missing that must be filled,
    and no empty value where the table has no NULL: else the per-file path applies its policy."""
    names = list(frame.columns)
    if any(n not in have or n in LINEAGE_NAMES for n in names):
        return False
    if any(c.name not in names and c.name not in LINEAGE_NAMES and not c.fillable for c in have.values()):
        return False
    return not any(frame[n].null_count() and not have[n].nullable for n in names)  # core/nullability.py


def _same_for_every_file(col: Column, verdict: Verdict | None) -> str | None:
    """The combined verdict's kind when it gives each file's values what that file's own (perhaps
    narrower) verdict gives them in ``col``; None when it may not. "text" still needs a look at
    the values (_typable_somewhere)."""
    kind = verdict.kind if verdict is not None else "text"
    want = polars_type(col.type)
    if verdict is not None and verdict.tokens and kind != "text":
        return None  # a file with only tokens there would keep them as text, then fail the cast
    if kind == "datetime_tz" or (kind == "float" and want != pl.Float64()):
        return None  # a file of integers only would cast differently
    if kind == "text" and want != pl.String():
        return None
    return kind


def _typable_somewhere(frame: pl.DataFrame, texts: list[str], sizes: np.ndarray, tokens: tuple[str, ...]) -> bool:
    """Would some file's own inference type one of these text columns (all its values numbers or
    null tokens, say), so that its values reach the String column changed? Asked per file only for
    columns holding such a value at all."""
    typable = [pl.col(c).str.contains(_TYPABLE).any().alias(c) for c in texts]
    hits = [c for c, hit in frame.select(typable).row(0, named=True).items() if hit]
    if not hits:
        return False
    index = pl.Series(_FILE, np.repeat(np.arange(len(sizes)), sizes))
    per_file = frame.select(hits).with_columns(index).group_by(_FILE).agg(
        ((pl.col(c).is_null() | pl.col(c).is_in(tokens) | pl.col(c).str.contains(_TYPABLE)).all()
         & pl.col(c).str.contains(_TYPABLE).any()).alias(c) for c in hits)
    return bool(per_file.select(pl.any_horizontal(pl.col(c).any() for c in hits)).item())


def _with_lineage(table: pa.Table, chunk: list[_Read], sizes: np.ndarray, starts: np.ndarray) -> pa.Table:
    """The lineage columns of ``reader.with_lineage``, for many files at once: dictionaries of the
    files' paths and hashes indexed by each row's file, and each row's number within its file
    (``starts``: each file's first row in the table)."""
    which = pa.array(np.repeat(np.arange(len(chunk), dtype=np.int32), sizes))
    rows = np.arange(1, int(sizes.sum()) + 1, dtype=np.uint64) - np.repeat(starts, sizes).astype(np.uint64)
    table = table.append_column("_source_path", pa.DictionaryArray.from_arrays(
        which, pa.array([r.row.path for r in chunk])))
    table = table.append_column("_source_sha256", pa.DictionaryArray.from_arrays(
        which, pa.array([r.sha for r in chunk])))
    return table.append_column("_source_row", pa.array(rows))

