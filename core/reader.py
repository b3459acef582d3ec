"""Open, hash and parse a source file into fixed-size Arrow batches.

The hash and the parse read the same open file descriptor (polars reads it through
``/proc/self/fd``), so a file swapped under its name between the two cannot be half-loaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from core.errors import FileChanged, InputError

_CHUNK = 4 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass
class Source:
    """An open source file. Close it with :meth:`close` (or use as a context manager)."""

    path: Path
    fd: int
    st: os.stat_result
    compression: str | None
    sha256: str = ""

    @property
    def proc_path(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_unchanged(self) -> None:
        """Raise FileChanged if the file was written to or replaced since it was opened."""
        now = os.fstat(self.fd)
        if (now.st_size, now.st_mtime_ns) != (self.st.st_size, self.st.st_mtime_ns):
            raise FileChanged(f"{self.path.name} changed while it was being read")
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return  # moved away after we opened it: our descriptor still holds the content we read
        if (named.st_dev, named.st_ino) != (self.st.st_dev, self.st.st_ino):
            raise FileChanged(f"{self.path.name} was replaced while it was being read")


def open_source(path: Path, compression: str | None, max_bytes: int = 0) -> Source:
    """Open a regular file without following it into surprises (FIFOs, devices)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileChanged(f"{path.name} disappeared") from None
    except PermissionError:
        raise InputError(f"permission denied reading {path.name}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InputError(f"{path.name} is not a regular file")
    os.set_blocking(fd, True)
    src = Source(path=path, fd=fd, st=st, compression=compression)
    if st.st_size == 0:
        src.close()
        raise InputError("empty file (0 bytes)")
    if max_bytes and st.st_size > max_bytes:
        src.close()
        raise InputError(f"file is {st.st_size} bytes, over the limit of {max_bytes}")
    head = os.pread(fd, 4, 0)
    expected = {"gzip": _GZIP_MAGIC, "zstd": _ZSTD_MAGIC}.get(compression or "")
    if expected and not head.startswith(expected):
        src.close()
        raise InputError(f"name says {compression} but the content is not {compression}-compressed (bad magic bytes)")
    return src


def hash_fd(fd: int, size: int) -> str:
    """sha256 of the first ``size`` bytes; hashlib releases the GIL on big chunks."""
    h = hashlib.sha256()
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(_CHUNK, size - offset), offset)
        if not chunk:
            break
        h.update(chunk)
        offset += len(chunk)
    if offset != size:
        raise FileChanged("file shrank while it was hashed")
    return h.hexdigest()


def head_bytes(src: Source, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` decompressed bytes from the start; True when that is the whole content."""
    if src.compression is None:
        data = os.pread(src.fd, limit + 1, 0)
        return data[:limit], len(data) <= limit
    raw = os.pread(src.fd, min(src.st.st_size, max(limit, 1 << 20)), 0)
    try:
        if src.compression == "gzip":
            d = zlib.decompressobj(wbits=31)
            out = d.decompress(raw, limit + 1)
            whole = d.eof and len(raw) == src.st.st_size
        else:
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(raw) as reader:
                out = reader.read(limit + 1)
            whole = len(out) <= limit and len(raw) == src.st.st_size
    except (zlib.error, Exception) as exc:  # noqa: BLE001 - any codec error is bad input
        raise InputError(f"cannot decompress ({src.compression}): {exc}") from None
    return out[:limit], whole and len(out) <= limit


@dataclass
class Plan:
    """What a full pass over the file found: schema, rows, nulls per column."""

    schema: pl.Schema
    rows: int
    null_counts: dict[str, int] = field(default_factory=dict)


class CsvReader:
    """CSV with a header row, plain, gzip or zstd.

    Types come from a sample read with date detection; the full read keeps date columns as
    text (polars' date inference is slow) and each batch converts them with one vectorised
    call. Files that fit comfortably in memory are parsed once and sliced; bigger ones are
    streamed twice (a validating pass, then the batches) in bounded memory.
    """

    INFER_ROWS = 10_000
    SAMPLE_BYTES = 1 << 20
    IN_MEMORY_BYTES = 256 << 20

    def __init__(self, src: Source) -> None:
        self.src = src
        self._wire: pl.Schema | None = None  # what polars parses: dates as String
        self._dates: dict[str, pl.DataType] = {}
        self._frame: pl.DataFrame | None = None

    def _in_memory(self) -> bool:
        factor = 1 if self.src.compression is None else 6
        return self.src.st.st_size * factor <= self.IN_MEMORY_BYTES

    def plan(self) -> Plan:
        """A validating pass: the whole file must parse before any row is inserted."""
        try:
            sample = self._sample()
        except pl.exceptions.NoDataError:
            raise InputError("no header row: the file has no data") from None
        except (pl.exceptions.PolarsError, OSError, EOFError) as exc:
            raise self._input_error(exc) from None
        if not sample.columns:
            raise InputError("no header row: the file has no columns")
        self._dates = {c: t for c, t in sample.schema.items() if t == pl.Date or isinstance(t, pl.Datetime)}
        self._wire = pl.Schema({c: (pl.String if c in self._dates else t) for c, t in sample.schema.items()})
        try:
            return self._full_pass()
        except pl.exceptions.ComputeError:
            pass  # a later row is wider than the sample's types: infer from the whole file
        except (pl.exceptions.PolarsError, OSError, EOFError) as exc:
            raise self._input_error(exc) from None
        try:
            widest = pl.scan_csv(self.src.proc_path, infer_schema_length=None).collect_schema()
            self._dates = {c: t for c, t in self._dates.items() if widest.get(c) == pl.String}
            self._wire = widest
            return self._full_pass()
        except (pl.exceptions.PolarsError, OSError, EOFError) as exc:
            raise self._input_error(exc) from None

    def _input_error(self, exc: BaseException) -> InputError:
        if self.src.compression and isinstance(exc, OSError | EOFError):
            return InputError(f"truncated or corrupt {self.src.compression} data: {exc}")
        return InputError(_clean_polars_error(exc))

    def _sample(self) -> pl.DataFrame:
        """Types from the first rows, parsed from a prefix of the bytes (polars' n_rows still walks
        the whole file). Dates are detected per column with one vectorised parse: polars'
        try_parse_dates over a long sample costs 20x more."""
        head, complete = head_bytes(self.src, self.SAMPLE_BYTES)
        if not complete:
            cut = head.rfind(b"\n")
            head = head[: cut + 1] if cut > 0 else head
        try:
            sample = pl.read_csv(io.BytesIO(head), n_rows=self.INFER_ROWS, infer_schema_length=self.INFER_ROWS)
        except pl.exceptions.ComputeError:
            if complete:
                raise
            # The cut fell inside a quoted field; let polars read the real file.
            sample = pl.read_csv(self.src.proc_path, n_rows=self.INFER_ROWS, infer_schema_length=self.INFER_ROWS)
        temporal = {}
        for name, dtype in sample.schema.items():
            if dtype == pl.String:
                kind = _temporal_type(sample[name])
                if kind is not None:
                    temporal[name] = kind
        return sample.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in temporal.items())

    def _full_pass(self) -> Plan:
        assert self._wire is not None
        if self._in_memory():
            frame = pl.read_csv(self.src.proc_path, schema=self._wire)
            self._frame = frame
            rows, nulls = frame.height, frame.null_count().row(0, named=True)
        else:
            stats = pl.scan_csv(self.src.proc_path, schema=self._wire).select(
                pl.len().alias("\x00rows"), *[pl.col(c).null_count() for c in self._wire]).collect(engine="streaming")
            nulls = stats.row(0, named=True)
            rows = int(nulls.pop("\x00rows"))
        schema = pl.Schema({c: self._dates.get(c, t) for c, t in self._wire.items()})
        return Plan(schema=schema, rows=int(rows), null_counts={k: int(v) for k, v in nulls.items()})

    def _raw_batches(self, batch_rows: int) -> Iterator[pl.DataFrame]:
        if self._frame is not None:
            for offset in range(0, self._frame.height, batch_rows):
                yield self._frame.slice(offset, batch_rows)
            return
        pending: list[pl.DataFrame] = []
        have = 0
        for df in pl.scan_csv(self.src.proc_path, schema=self._wire).collect_batches(chunk_size=batch_rows):
            pending.append(df)
            have += df.height
            while have >= batch_rows:
                whole = pl.concat(pending, rechunk=False) if len(pending) > 1 else pending[0]
                yield whole.slice(0, batch_rows)
                rest = whole.slice(batch_rows)
                pending, have = ([rest] if rest.height else []), rest.height
        if have:
            yield pl.concat(pending, rechunk=False) if len(pending) > 1 else pending[0]

    def batches(self, batch_rows: int, skip: frozenset[int] = frozenset()) -> Iterator[tuple[int, pl.DataFrame]]:
        """(index, batch): exactly ``batch_rows`` rows each (the last may be shorter), in file order.

        Date columns stay text: ClickHouse parses them on insert (best_effort) faster than
        polars does, and :meth:`find_bad_date` names the row when it refuses one.
        """
        try:
            for idx, df in enumerate(self._raw_batches(batch_rows)):
                if idx not in skip:
                    yield idx, df
        except (pl.exceptions.PolarsError, OSError, EOFError) as exc:
            raise self._input_error(exc) from None

    def find_bad_date(self, df: pl.DataFrame, first_row: int) -> InputError | None:
        """The first value in a date column that does not parse like the sample (slow path)."""
        for name, dtype in self._dates.items():
            col = df[name]
            parsed = col.str.to_date(strict=False) if dtype == pl.Date else col.str.to_datetime(strict=False)
            bad = (parsed.is_null() & col.is_not_null()).arg_true()
            if len(bad):
                row = first_row + int(bad[0]) + 1
                return InputError(f"column {name!r}: {col[int(bad[0])]!r} in data row {row} is not a date like "
                                  f"the rows before it", line=row + 1, column=name)
        return None


def reader_for(src: Source, fmt: str | None) -> CsvReader:
    if fmt in ("csv", None):
        return CsvReader(src)
    raise InputError(f"format {fmt!r} is not supported yet")


def hash_and_plan(src: Source, reader: CsvReader, pool: ThreadPoolExecutor | None = None) -> Plan:
    """Hash and validate at once: both release the GIL, so two cores do both in the time of one."""
    if pool is None:
        src.sha256 = hash_fd(src.fd, src.st.st_size)
        return reader.plan()
    fut = pool.submit(hash_fd, src.fd, src.st.st_size)
    try:
        plan = reader.plan()
    finally:
        src.sha256 = fut.result()
    return plan


def with_lineage(df: pl.DataFrame, rel_path: str, sha256: str, first_row: int) -> pa.Table:
    """The batch as Arrow plus lineage columns; constants travel as one-entry dictionaries."""
    table = df.to_arrow()
    n = table.num_rows
    zeros = pa.array(np.zeros(n, dtype=np.int32))
    table = table.append_column("_source_path", pa.DictionaryArray.from_arrays(zeros, pa.array([rel_path])))
    table = table.append_column("_source_sha256", pa.DictionaryArray.from_arrays(zeros, pa.array([sha256])))
    rows = np.arange(first_row + 1, first_row + n + 1, dtype=np.uint64)
    return table.append_column("_source_row", pa.array(rows))


def warm_up(target: object) -> None:
    """Pay the first-call costs of polars' Arrow export and Arrow IPC once at start, not on the
    first file (about 0.2 s per process)."""
    df = pl.DataFrame({"i": [1, 2], "s": ["a", None], "t": ["2026-01-01T00:00:00", "2026-01-02T00:00:00"]})
    encode = getattr(target, "encode", None)
    data = with_lineage(df, "warm-up", "0" * 64, 0)
    if encode is not None:
        encode(data)


def _temporal_type(values: pl.Series) -> pl.DataType | None:
    """Date or Datetime when every non-empty value in the sample parses as one."""
    present = values.drop_nulls()
    if present.is_empty() or present.str.len_bytes().min() < 8:  # type: ignore[operator]
        return None
    as_date = present.str.to_date(strict=False)
    if as_date.null_count() == 0:
        return pl.Date()
    as_datetime = present.str.to_datetime(strict=False, time_unit="us")
    if as_datetime.null_count() == 0:
        return as_datetime.dtype
    return None


def _clean_polars_error(exc: BaseException) -> str:
    """Polars errors carry a long hint block; keep the first meaningful lines."""
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    keep = []
    for ln in lines:
        if ln.lstrip().startswith(("You might want", "Hint", "- ", "Original error")) and keep:
            break
        keep.append(ln.strip())
    msg = " ".join(keep)[:500]
    return msg or type(exc).__name__
