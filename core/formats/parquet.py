"""Parquet: typed already, so there is nothing to infer; compressed copies are unpacked in memory.

Every Arrow type maps to a ClickHouse type that keeps its values (core/schema.py ch_type):
decimals keep precision/scale, timestamps their unit and zone, maps load as Map, lists as
Array, structs (and lists of structs) as JSON text, dictionaries as their values, times as
text ``HH:MM:SS[.fraction]``. A type with no lossless mapping quarantines the file before any
table is created, naming the column and the type.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

import polars as pl

from chute.core.errors import InputError
from chute.core.formats import register
from chute.core.formats.parquet_zones import unreadable_zone
from chute.core.reader import Plan, Reader, Source, _clean_polars_error, check_names, open_binary, zone_reason

if TYPE_CHECKING:
    from chute.core.target import ParquetFooter


class ParquetReader(Reader):
    TEXT = False
    raw_schema: pl.Schema | None = None
    # The footer as ClickHouse's footer reader takes it (core/native.py sets it where ClickHouse may
    # read the file itself); ``footer_true``: its rows and NULLs are the scan's.
    footer: ParquetFooter | None = None
    footer_true = False

    def __init__(self, src: Source) -> None:
        super().__init__(src)
        self.sizes: dict[str, int] = {}  # the footer's ``uncompressed`` data bytes, once it was read
        # Each flat column's Parquet logical type as the footer names it ("STRING", "UUID", "NONE"...),
        # once it was read: core/native.py lets ClickHouse read only those it converts as polars does.
        self.logical: dict[str, str] = {}

    def _source(self) -> str | io.BytesIO:
        if self.src.compression is None:
            return self.src.proc_path
        if self.src.inflated is not None:  # inflated once already, by the limits check
            with open(self.src.inflated.path, "rb") as f:  # (held: the loader lets the file go after the plan)
                return io.BytesIO(f.read())
        if self.src.st.st_size * 6 > self.IN_MEMORY_BYTES:
            raise InputError(f"{self.src.compression}-compressed Parquet over {self.IN_MEMORY_BYTES >> 20} MiB: "
                             "Parquet compresses its pages itself; drop the outer compression")
        try:
            with open_binary(self.src) as raw:
                return io.BytesIO(raw.read())
        except (OSError, EOFError) as exc:
            raise self._input_error(exc) from None

    def _check_head(self, data: str | io.BytesIO) -> None:
        """The magic bytes, then a zone polars would panic on (core/formats/parquet_zones.py)."""
        head = data.getvalue()[:4] if isinstance(data, io.BytesIO) else _read_magic(self.src.fd)
        if head != b"PAR1":
            raise InputError("not a Parquet file (no PAR1 magic bytes)")
        zone = unreadable_zone(data)
        if zone is not None:
            raise InputError(f"unreadable Parquet: {zone_reason(zone)}")

    def plan(self) -> Plan:
        self._data = self._source()
        self._check_head(self._data)
        try:
            lf = pl.scan_parquet(self._data)
            raw = lf.collect_schema()
            check_names(raw)
            _wide_decimals(raw)
            unsupported(raw)
            self.raw_schema = raw  # as the file has it (core/native.py judges these types)
            self._wire = flatten_nested(pl.DataFrame(schema=raw)).schema
            groups: list[tuple[int, dict[str, int]]] = []
            footer = _footer_stats(self.footer, raw, self.sizes, self.logical, groups) if self.footer else None
            # Text columns' distinct values in the first rows (LowCardinality, below): in the same
            # read where the file has them as text already (not a second read of its first rows).
            text = [c for c, t in self._wire.items() if t == pl.String]
            # (its outputs are named "\x01<i>": no file column may have such a name, text or not)
            counted = text if all(raw[c] == pl.String for c in text) and not any(
                c.startswith("\x01") for c in raw) else []
            stats, uniques = self._scan_stats(raw, counted)
            # ClickHouse's reader believes a footer's null_count of 0 and skips that column's
            # definition levels: a hidden NULL shifts every later value up a row, silently. polars
            # reads the levels, so the plan is the scan's, and the native read (core/native.py) is
            # only for a footer that tells the same counts.
            # Per row group too: a NULL moved to another group's count keeps the totals.
            self.footer_true = footer == stats and _groups_true(self._data, groups, stats)
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc:
            raise InputError(f"unreadable Parquet: {_clean_polars_error(exc)[:300]}") from None
        rows = stats.pop("\x00rows")
        # Dictionary-encoded or not, text columns get LowCardinality by the same rule as CSV/NDJSON.
        if text and rows >= 100 and counted:
            self._distinct = {c: uniques[c] / min(self.INFER_ROWS, rows) for c in text}
        elif text and rows >= 100:
            try:
                sample = flatten_nested(pl.scan_parquet(self._data).head(self.INFER_ROWS).collect())
            except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc:
                raise InputError(f"unreadable Parquet: {_clean_polars_error(exc)[:300]}") from None
            self._distinct = {c: sample[c].n_unique() / sample.height for c in text}
        return self._finish_plan(rows, stats)

    def _scan_stats(self, raw: pl.Schema, distinct: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        """Rows and NULLs per column from reading every value (which proves the pages decode), and
        the distinct values of the ``distinct`` columns in the first ``INFER_ROWS`` rows."""
        out = pl.scan_parquet(self._data).select(
            pl.len().alias("\x00rows"), *[pl.col(c).null_count() for c in raw],
            *[pl.col(c).head(self.INFER_ROWS).n_unique().alias(f"\x01{i}") for i, c in enumerate(distinct)],
        ).collect(engine="streaming").row(0, named=True)
        return out, {c: out.pop(f"\x01{i}") for i, c in enumerate(distinct)}

    def _stream(self, batch_rows: int) -> Iterator[pl.DataFrame]:
        for df in pl.scan_parquet(self._data).collect_batches(chunk_size=batch_rows):
            yield flatten_nested(df)


def _wide_decimals(schema: pl.Schema) -> None:
    """polars reads decimals of up to 38 digits (its schema shows wider ones; reading them fails):
    name such a column instead of polars' bare error."""
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Decimal) and (dtype.precision or 0) > 38:
            raise InputError(f"column {name!r} has type Decimal({dtype.precision}, {dtype.scale}): "
                             "chute reads decimals of up to 38 digits", column=name)


def _footer_stats(footer: ParquetFooter, schema: pl.Schema, sizes: dict[str, int],
                  logical: dict[str, str] | None = None,
                  groups: list[tuple[int, dict[str, int]]] | None = None) -> dict[str, int] | None:
    """Rows and each column's NULLs as the footer's statistics claim them (what ClickHouse's own
    reader believes). Flat columns only (a nested column's leaves count their own NULLs), and only
    when every column chunk carries its null count; else None. ``sizes`` gets the data's
    ``uncompressed`` bytes, ``logical`` each flat column's logical type ("STRING", "INT", "NONE":
    the name pyarrow gives it), ``groups`` each row group's rows and claimed NULLs."""
    if any(dtype.is_nested() for dtype in schema.values()):
        return None
    sizes["uncompressed"] = sum(nbytes for _, nbytes, _ in footer.groups)
    names = list(schema)
    leaves = footer.columns
    if len(leaves) != len(names) or any(leaves[i][0] != names[i] or leaves[i][2] for i in range(len(names))):
        return None
    if logical is not None:
        logical.update((name, leaves[i][1].split("(")[0].upper()) for i, name in enumerate(names))
    stats = dict.fromkeys(names, 0)
    for rows, _, nulls in footer.groups:
        counts = [n for n in nulls if n is not None]
        if len(counts) != len(names) or len(nulls) != len(names):
            return None
        claimed = dict(zip(names, counts, strict=True))
        for name in names:
            stats[name] += claimed[name]
        if groups is not None:
            groups.append((rows, claimed))
    return {"\x00rows": footer.rows, **stats}


def _groups_true(data: str | io.BytesIO, groups: list[tuple[int, dict[str, int]]], stats: dict[str, int]) -> bool:
    """Each row group's claimed NULLs are its real ones. Only a column with NULLs in a file of
    several groups can hide one in a group's count (the totals were compared): one more pass over
    those columns, counting NULLs up to each group's last row."""
    import itertools

    suspects = [name for name, nulls in stats.items() if name != "\x00rows" and nulls]
    if len(groups) < 2 or not suspects:
        return True
    ends = list(itertools.accumulate(rows for rows, _ in groups))
    lasts = sorted({end - 1 for end in ends if end > 0})
    seen = pl.scan_parquet(data).select(pl.col(c).is_null().cast(pl.UInt32).cum_sum().gather(lasts)
                                        for c in suspects).collect(engine="streaming")
    for name in suspects:
        upto = dict(zip(lasts, seen[name].to_list(), strict=True))
        before = 0
        for end, (_, claimed) in zip(ends, groups, strict=True):
            now = upto.get(end - 1, 0)
            if now - before != claimed[name]:
                return False
            before = now
    return True


def _read_magic(fd: int) -> bytes:
    import os

    return os.pread(fd, 4, 0)


@register("parquet")
def _make(src: Source, options: dict) -> ParquetReader:
    return ParquetReader(src)


_UNSUPPORTED = (pl.Duration, pl.Object, pl.Unknown)


def unsupported(schema: pl.Schema) -> None:
    """Quarantine (before any table exists) a file with a type chute cannot load losslessly."""
    def bad(dtype: pl.DataType, struct_ok: str) -> bool:
        # A struct becomes JSON text at the top, in a top-level list, or anywhere inside a struct;
        # deeper (a map's value, a list of lists of structs) ClickHouse would get it as a tuple
        # without field names.
        if isinstance(dtype, _UNSUPPORTED):
            return True
        if isinstance(dtype, pl.List | pl.Array):
            return bad(dtype.inner, {"top": "list", "list": "no"}.get(struct_ok, struct_ok))  # type: ignore[arg-type]
        if isinstance(dtype, pl.Map):
            return bad(dtype.key, "no") or bad(dtype.value, "no")  # type: ignore[arg-type]
        if isinstance(dtype, pl.Struct):
            return struct_ok == "no" or any(bad(f.dtype, "json") for f in dtype.fields)  # type: ignore[arg-type]
        return False

    for name, dtype in schema.items():
        if bad(dtype, "top") or (isinstance(dtype, pl.Decimal) and (dtype.precision or 38) > 76):
            raise InputError(f"column {name!r} has type {dtype}, which chute cannot load into ClickHouse without "
                             "changing its values", column=name)


def flatten_nested(df: pl.DataFrame) -> pl.DataFrame:
    """What ClickHouse cannot take as-is becomes lossless text: structs (and lists of them) as
    JSON, a NULL struct as NULL (not 'null'); times as ``HH:MM:SS[.fraction]``; lists of nothing
    but NULLs as lists of text. Maps and lists of scalars stay as they are."""
    extensions = [pl.col(name).ext.storage() for name, dtype in df.schema.items() if isinstance(dtype, pl.Extension)]
    if extensions:  # (pyarrow's json_, uuid...: the values as stored, text or bytes; then as any other column)
        return flatten_nested(df.with_columns(extensions))
    exprs = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Struct):
            exprs.append(pl.when(col.is_null()).then(None).otherwise(col.struct.json_encode()).alias(name))
        elif isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):  # (a NULL one inside too)
            exprs.append(col.list.eval(pl.when(pl.element().is_null()).then(None).otherwise(
                pl.element().struct.json_encode())))
        elif isinstance(dtype, pl.List) and dtype.inner == pl.Null:
            exprs.append(col.cast(pl.List(pl.String)))
        elif dtype == pl.Time:
            exprs.append(col.dt.to_string("%H:%M:%S%.f"))
        elif dtype == pl.Null or dtype == pl.Categorical or isinstance(dtype, pl.Enum):
            exprs.append(col.cast(pl.String))
    return df.with_columns(exprs) if exprs else df
