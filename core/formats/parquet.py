"""Parquet: typed already, so there is nothing to infer; compressed copies are unpacked in memory."""

from __future__ import annotations

import io
from collections.abc import Iterator

import polars as pl

from chute.core.errors import InputError
from chute.core.formats import register
from chute.core.formats.ndjson import flatten_nested
from chute.core.reader import Plan, Reader, Source, open_binary


class ParquetReader(Reader):
    TEXT = False
    def _source(self) -> str | io.BytesIO:
        if self.src.compression is None:
            return self.src.proc_path
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
            self._wire = flatten_nested(pl.DataFrame(schema=raw)).schema
            stats = lf.select(pl.len().alias("\x00rows"), *[pl.col(c).null_count() for c in raw]).collect(
                engine="streaming").row(0, named=True)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputError(f"unreadable Parquet: {str(exc).splitlines()[0][:300]}") from None
        rows = stats.pop("\x00rows")
        return self._finish_plan(rows, stats)

    def _stream(self, batch_rows: int) -> Iterator[pl.DataFrame]:
        for df in pl.scan_parquet(self._data).collect_batches(chunk_size=batch_rows):
            yield flatten_nested(df)


def _read_magic(fd: int) -> bytes:
    import os

    return os.pread(fd, 4, 0)


@register("parquet")
def _make(src: Source, options: dict) -> ParquetReader:
    return ParquetReader(src)
