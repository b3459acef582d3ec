"""Time zones a Parquet file's Arrow schema names, checked before polars reads the file: polars
panics on a zone it cannot read, and a Rust panic prints its message (and, with RUST_BACKTRACE, a
stack trace) on stderr, over the console's screen and into a JSON log, before Python catches it."""

from __future__ import annotations

import base64
import functools
import io
import os

import polars as pl
import pyarrow as pa

_KEY = b"ARROW:schema"


def _footer(data: str | io.BytesIO) -> bytes:
    """The Thrift footer: its length and ``PAR1`` end the file."""
    if isinstance(data, io.BytesIO):
        body = data.getbuffer()
        size = int.from_bytes(body[-8:-4], "little") if len(body) >= 12 else 0
        return bytes(body[-8 - size:-8]) if 0 < size <= len(body) - 12 else b""
    with open(data, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        if end < 12:
            return b""
        f.seek(end - 8)
        size = int.from_bytes(f.read(4), "little")
        if not 0 < size <= end - 12:
            return b""
        f.seek(end - 8 - size)
        return f.read(size)


def _arrow_schema(footer: bytes) -> pa.Schema | None:
    """The ``ARROW:schema`` key-value the Arrow writers store. The footer is searched for the key's
    bytes, and each place they are is tried until one holds a schema: a column of that name, or a
    metadata value holding it, can come first."""
    at = footer.find(_KEY)
    while at >= 0:
        schema = _schema_after(footer, at + len(_KEY))
        if schema is not None:
            return schema
        at = footer.find(_KEY, at + 1)
    return None


def _schema_after(footer: bytes, pos: int) -> pa.Schema | None:
    """In Thrift's compact protocol a key is followed by its value's field header (field 2, binary:
    one byte, 0x18), the value's length (a varint) and, here, base64 text."""
    if footer[pos:pos + 1] != b"\x18":
        return None
    pos, size, shift = pos + 1, 0, 0
    while pos < len(footer):
        byte = footer[pos]
        pos += 1
        size |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    try:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(footer[pos:pos + size], validate=True)))
    except (ValueError, pa.ArrowException):
        return None


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
    None. Nothing is judged where the footer cannot be read this way: the read itself reports that.
    (The footer is read here, not by pyarrow.parquet: not imported on a native load, issue 12.)"""
    try:
        schema = _arrow_schema(_footer(data))
    except OSError:
        return None
    for zone in (z for field in schema or [] for z in _zones(field.type)):
        if not _polars_reads(zone):
            return zone
    return None
