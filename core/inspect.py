"""What an operator sees about one file version: its schema against the table's, its first rows,
its history and its full error.

Used by the console's details view (in-process or attached). Never raises for a bad or missing
file: whatever cannot be read becomes a readable note instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl

from chute.core.config import Config
from chute.core.errors import ChuteError
from chute.core.formats.why import column_reasons
from chute.core.ledger import Event, FileRow, Ledger
from chute.core.preview import cell_text
from chute.core.reader import head_bytes, open_source, reader_for
from chute.core.resources import TempDirFull
from chute.core.schema import LINEAGE_NAMES, Column, columns_for
from chute.core.states import State

SAMPLE_ROWS = 20
RAW_BYTES = 64 << 10  # of a refused file, shown as lines


class SchemaSource(Protocol):
    """Anything that knows a table's columns: the engine's Target, or what a daemon recorded."""

    def table_columns(self, table: str) -> list[Column] | None: ...


@dataclass(frozen=True)
class ColumnDiff:
    name: str
    file_type: str | None  # None: the table has it, the file does not
    table_type: str | None  # None: the file brings a column the table lacks

    @property
    def change(self) -> str:
        """'' (same), 'new' (holds the file: schema drift), 'missing' (filled with defaults),
        'type' (ClickHouse converts or refuses), 'nullable' (empties into a non-Nullable column)."""
        if self.table_type is None:
            return "new"
        if self.file_type is None:
            return "missing"
        if _base(self.file_type) != _base(self.table_type):
            return "type"
        if _nullable(self.file_type) and not _nullable(self.table_type):
            return "nullable"
        return ""


@dataclass(frozen=True)
class FileDetails:
    row: FileRow
    location: str  # where the bytes are now, relative to DATA_DIR
    file_columns: list[Column] = field(default_factory=list)
    table_columns: list[Column] | None = None
    table_note: str | None = None  # why the table's schema is not shown, or where it came from
    diff: list[ColumnDiff] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[tuple[str, ...]] = field(default_factory=list)
    read_note: str | None = None  # why no rows are shown
    events: list[Event] = field(default_factory=list)
    error: str | None = None
    error_at: str | None = None  # "line 12, column 'amount'" from a quarantine reason file
    why: dict[str, str] = field(default_factory=dict)  # why each column got its type (core/formats/why.py)

    @property
    def drifted(self) -> bool:
        return any(d.change for d in self.diff)


def inspect_file(cfg: Config, row: FileRow, ledger: Ledger, target: SchemaSource | None = None,
                 limit: int = SAMPLE_ROWS) -> FileDetails:
    location = row.moved_to or row.path
    events = _safe(lambda: ledger.events(file_id=row.id, limit=200), [])
    error = row.last_error or row.reason
    error_at = _reason_location(cfg, row)
    file_columns: list[Column] = []
    header: list[str] = []
    rows: list[tuple[str, ...]] = []
    read_note = _unreadable(cfg, row)
    why: dict[str, str] = {}
    if read_note is None:
        try:
            file_columns, header, rows, read_note = _read_head(cfg.locate(location), row, limit, why)
        except ChuteError as exc:
            read_note = f"cannot read the file: {exc}"
        except (pl.exceptions.PolarsError, OSError, EOFError, ValueError) as exc:
            read_note = f"cannot parse the file as {row.fmt or 'csv'}: {_first_line(exc)}"
        except Exception as exc:  # noqa: BLE001 - junk input must give a note, never a crash
            read_note = f"cannot read the file: {type(exc).__name__}: {_first_line(exc)}"
    table_columns, table_note = _table_columns(row.table_name, target)
    diff = _diff(file_columns, table_columns) if file_columns and table_columns else []
    return FileDetails(row=row, location=location, file_columns=file_columns, table_columns=table_columns,
                       table_note=table_note, diff=diff, header=header, rows=rows, read_note=read_note,
                       events=events, error=error, error_at=error_at, why=why)


def _unreadable(cfg: Config, row: FileRow) -> str | None:
    if row.state == State.PURGED:
        return "the file was purged"
    if row.moved_to and row.moved_to.startswith("("):
        return f"the file is gone: {row.moved_to.strip('()')} after loading"
    path = cfg.locate(row.moved_to or row.path)
    root = os.path.realpath(cfg.split(row.path)[0])
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        return "the file points outside the data folder; not read"
    if not (path.exists() or path.is_symlink()):
        return f"the file is no longer at {row.moved_to or row.path}"
    return None


def _read_head(path: Path, row: FileRow, limit: int, why: dict[str, str]
               ) -> tuple[list[Column], list[str], list[tuple[str, ...]], str | None]:
    """Columns as the loader infers them (its own validating pass, so the same verdict) and the
    first rows. A file the loader refuses still shows its first lines, as raw text."""
    with open_source(path, row.compression) as src:
        reader = reader_for(src, row.fmt)
        try:
            plan = reader.plan()
            if reader.pending_check is not None and (problem := reader.pending_check()) is not None:
                raise problem  # (what the loader checks beside its inserts: a short row)
            why.update(column_reasons(reader))
            first = next(reader.batches(limit), None)
        except (ChuteError, TempDirFull) as exc:
            head, _ = head_bytes(src, RAW_BYTES) if row.fmt != "parquet" else (b"", True)
            lines = head.decode("utf-8", errors="replace").splitlines()[:limit]
            note = f"the loader refuses it: {exc}" if isinstance(exc, ChuteError) else f"not read: {exc}"
            return [], ["line"] if lines else [], [(_printable(ln),) for ln in lines], note
    frame = first[1] if first is not None else pl.DataFrame()
    shown = [tuple("" if v is None else _printable(cell_text(v)) for v in r) for r in frame.head(limit).iter_rows()]
    return columns_for(plan.schema, plan.null_counts), list(frame.columns), shown, None


def _printable(text: str, width: int = 200) -> str:
    """No control characters reach the terminal from a file's bytes."""
    clean = "".join(ch if ch.isprintable() else "·" for ch in text)
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def _table_columns(table: str, target: SchemaSource | None) -> tuple[list[Column] | None, str | None]:
    if target is None:
        return None, "table schema unavailable while attached (the daemon owns the ClickHouse connection)"
    try:
        cols = target.table_columns(table)
    except ChuteError as exc:
        return None, f"table schema unavailable: {exc}"
    if cols is None:
        return None, f"table {table} does not exist yet: the first file creates it"
    cols = [c for c in cols if c.name not in LINEAGE_NAMES]
    return cols, getattr(target, "schema_note", None)


def _diff(file_cols: list[Column], table_cols: list[Column]) -> list[ColumnDiff]:
    have = {c.name: c.type for c in table_cols}
    out = [ColumnDiff(c.name, c.type, have.get(c.name)) for c in file_cols]
    seen = {c.name for c in file_cols}
    out += [ColumnDiff(c.name, None, c.type) for c in table_cols if c.name not in seen]
    return out


def _reason_location(cfg: Config, row: FileRow) -> str | None:
    """A quarantined file's reason file names the line and column, when the reader knew them."""
    if row.state != State.QUARANTINED or not row.moved_to:
        return None
    try:
        reason = json.loads(Path(str(cfg.locate(row.moved_to)) + ".reason.json").read_text())
    except (OSError, ValueError):
        return None
    parts = []
    if reason.get("line"):
        parts.append(f"line {reason['line']}")
    if reason.get("column"):
        parts.append(f"column {reason['column']!r}")
    return ", ".join(parts) or None


_WRAPPERS = ("LowCardinality(", "Nullable(")  # how a value is stored or may be empty, not what it is


def _base(kind: str) -> str:
    """The value type: ``LowCardinality(Nullable(String))`` and ``String`` are the same to a file."""
    while kind.startswith(_WRAPPERS) and kind.endswith(")"):
        kind = kind[kind.index("(") + 1:-1]
    return kind


def _nullable(kind: str) -> bool:
    while kind.startswith("LowCardinality(") and kind.endswith(")"):
        kind = kind[len("LowCardinality("):-1]
    return kind.startswith("Nullable(")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _safe(fn: Callable[[], list[Event]], default: list[Event]) -> list[Event]:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a timeline we cannot read must not hide the rest
        return default
