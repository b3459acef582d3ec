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

import polars as pl

from chute.core.errors import InputError
from chute.core.formats import register
from chute.core.reader import Plan, Reader, Source, _clean_polars_error, open_binary


class ParquetReader(Reader):
    TEXT = False
    raw_schema: pl.Schema | None = None

    def _source(self) -> str | io.BytesIO:
        if self.src.compression is None:
            return self.src.proc_path
        if self.src.content is not None:  # inflated once already, by the limits check
            return io.BytesIO(self.src.content)
        if self.src.st.st_size * 6 > self.IN_MEMORY_BYTES:
            raise InputError(f"{self.src.compression}-compressed Parquet over {self.IN_MEMORY_BYTES >> 20} MiB: "
                             "Parquet compresses its pages itself; drop the outer compression")
        try:
            with open_binary(self.src) as raw:
                return io.BytesIO(raw.read())
        except (OSError, EOFError) as exc:
            raise self._input_error(exc) from None

    def plan(self) -> Plan:
        self._data = self._source()
        head = self._data.getvalue()[:4] if isinstance(self._data, io.BytesIO) else _read_magic(self.src.fd)
        if head != b"PAR1":
            raise InputError("not a Parquet file (no PAR1 magic bytes)")
        try:
            lf = pl.scan_parquet(self._data)
            raw = lf.collect_schema()
            _wide_decimals(raw)
            unsupported(raw)
            self.raw_schema = raw  # as the file has it (core/native.py judges these types)
            self._wire = flatten_nested(pl.DataFrame(schema=raw)).schema
            stats = lf.select(pl.len().alias("\x00rows"), *[pl.col(c).null_count() for c in raw]).collect(
                engine="streaming").row(0, named=True)
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc:
            raise InputError(f"unreadable Parquet: {_clean_polars_error(exc)[:300]}") from None
        rows = stats.pop("\x00rows")
        # Dictionary-encoded or not, text columns get LowCardinality by the same rule as CSV/NDJSON.
        text = [c for c, t in self._wire.items() if t == pl.String]
        if text and rows >= 100:
            try:
                sample = flatten_nested(pl.scan_parquet(self._data).head(self.INFER_ROWS).collect())
            except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc:
                raise InputError(f"unreadable Parquet: {_clean_polars_error(exc)[:300]}") from None
            self._distinct = {c: sample[c].n_unique() / sample.height for c in text}
        return self._finish_plan(rows, stats)

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
