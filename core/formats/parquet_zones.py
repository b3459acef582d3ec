"""Time zones a Parquet file's Arrow schema names, checked before polars reads the file: polars
panics on a zone it cannot read, and a Rust panic prints its message (and, with RUST_BACKTRACE, a
stack trace) on stderr, over the console's screen and into a JSON log, before Python catches it."""

from __future__ import annotations

import functools
import io

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq


def _zones(kind: pa.DataType) -> list[str]:
    if pa.types.is_timestamp(kind):
        return [kind.tz] if kind.tz else []
    return [zone for i in range(kind.num_fields) for zone in _zones(kind.field(i).type)]


@functools.lru_cache(maxsize=256)
def _polars_reads(zone: str) -> bool:
    """polars' own judgement, where it raises rather than panics: the zone database it carries is not
    the system's Python reads ('right/UTC', 'Factory' are files there), and it takes an offset of
    whole hours ('+01:00' as Etc/GMT-1) and a lower-case 'utc'."""
    try:
        pl.Series([], dtype=pl.Datetime("us")).dt.replace_time_zone(zone)
    except pl.exceptions.PolarsError:
        return False
    return True


def unreadable_zone(data: str | io.BytesIO) -> str | None:
    """The first zone of the file's timestamp columns (nested ones too) that polars cannot read, or
    None. The schema is the one pyarrow reads from the footer (its ARROW:schema); nothing is judged
    where the footer cannot be read: the read itself reports that."""
    at = data.tell() if isinstance(data, io.BytesIO) else 0
    try:
        schema = pq.read_schema(data)
    except (OSError, ValueError, pa.ArrowException):
        return None
    finally:
        if isinstance(data, io.BytesIO):
            data.seek(at)
    for zone in (z for field in schema for z in _zones(field.type)):
        if not _polars_reads(zone):
            return zone
    return None
