"""Newline-delimited JSON: one object per line. Nested objects load as JSON text, lists of
scalars as arrays."""

from __future__ import annotations

import io
from collections.abc import Iterator

import polars as pl

from chute.core.errors import InputError
from chute.core.reader import Plan, Reader, detect_dates, head_bytes, open_binary


class NdjsonReader(Reader):
    def plan(self) -> Plan:
        head, complete = head_bytes(self.src, self.SAMPLE_BYTES)
        if not complete:
            head = head[: head.rfind(b"\n") + 1] or head
        if not head.strip():
            raise InputError("no data: the file has only blank lines" if head else "empty file")
        try:
            sample = pl.read_ndjson(io.BytesIO(head), infer_schema_length=self.INFER_ROWS)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise self.diagnose() or self._input_error(exc) from None
        if not sample.columns:
            raise InputError("no fields: every line is an empty object")
        sample = flatten_nested(sample)
        self._dates, self._convert_dates = detect_dates(sample)
        self._sample_distinct(sample)
        self._raw_schema: pl.Schema | None = None
        try:
            return self._full_pass(None)
        except pl.exceptions.ComputeError:
            pass
        except (pl.exceptions.PolarsError, OSError, EOFError) as exc:
            raise self.diagnose() or self._input_error(exc) from None
        try:
            return self._full_pass(10**9)
        except (pl.exceptions.PolarsError, OSError, EOFError) as exc:
            raise self.diagnose() or self._input_error(exc) from None

    def _full_pass(self, infer: int | None) -> Plan:
        length = infer or self.INFER_ROWS
        if self._in_memory():
            frame = flatten_nested(pl.read_ndjson(self.src.proc_path, infer_schema_length=length))
            self._wire = frame.schema
            self._dates = {c: t for c, t in self._dates.items() if frame.schema.get(c) == pl.String}
            self._check_frame(frame)
            self._frame = frame
            return self._finish_plan(frame.height, frame.null_count().row(0, named=True))
        lf = pl.scan_ndjson(self.src.proc_path, infer_schema_length=length)
        self._raw_schema = lf.collect_schema()
        flat = flatten_nested(pl.DataFrame(schema=self._raw_schema))
        self._wire = flat.schema
        self._dates = {c: t for c, t in self._dates.items() if flat.schema.get(c) == pl.String}
        stats = lf.select(pl.len().alias("\x00rows"), *[pl.col(c).null_count() for c in self._raw_schema]).collect(
            engine="streaming").row(0, named=True)
        rows = stats.pop("\x00rows")
        return self._finish_plan(rows, stats)

    def _stream(self, batch_rows: int) -> Iterator[pl.DataFrame]:
        lf = pl.scan_ndjson(self.src.proc_path, schema=self._raw_schema)
        for df in lf.collect_batches(chunk_size=batch_rows):
            yield flatten_nested(df)

    def diagnose(self) -> InputError | None:
        import json

        try:
            with open_binary(self.src) as raw:
                for lineno, line in enumerate(raw, 1):
                    if not line.strip():
                        continue
                    try:
                        value = json.loads(line)
                    except (UnicodeDecodeError, ValueError) as exc:
                        return InputError(f"line {lineno} is not valid JSON: {str(exc)[:120]}", line=lineno)
                    if not isinstance(value, dict):
                        return InputError(f"line {lineno} is a JSON {type(value).__name__}, not an object",
                                          line=lineno)
        except (OSError, EOFError) as exc:
            return self._input_error(exc)
        return None


def flatten_nested(df: pl.DataFrame) -> pl.DataFrame:
    """Objects (and lists of objects) become JSON text; lists of scalars stay lists."""
    exprs = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.Struct):
            exprs.append(pl.col(name).struct.json_encode())
        elif isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct | pl.List):
            inner = pl.element().struct.json_encode() if isinstance(dtype.inner, pl.Struct) else pl.element()
            exprs.append(pl.col(name).list.eval(inner.cast(pl.String)))
        elif dtype == pl.Null:
            exprs.append(pl.col(name).cast(pl.String))
    return df.with_columns(exprs) if exprs else df
