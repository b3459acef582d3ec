"""Time zones a Parquet file's Arrow schema names, checked before polars reads the file: polars
panics on a zone it cannot read, and a Rust panic prints its message (and, with RUST_BACKTRACE, a
stack trace) on stderr, over the console's screen and into a JSON log, before Python catches it."""

from __future__ import annotations

import base64
import io
import os
import zoneinfo

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
    """The ``ARROW:schema`` key-value the Arrow writers store: in Thrift's compact protocol the key
    is followed by the value's field header (one byte), its length (a varint) and base64 text."""
    at = footer.find(_KEY)
    if at < 0:
        return None
    pos, size, shift = at + len(_KEY) + 1, 0, 0
    while pos < len(footer):
        byte = footer[pos]
        pos += 1
        size |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(footer[pos:pos + size])))


def _zones(kind: pa.DataType) -> list[str]:
    if pa.types.is_timestamp(kind):
        return [kind.tz] if kind.tz else []
    return [zone for i in range(kind.num_fields) for zone in _zones(kind.field(i).type)]


def unreadable_zone(data: str | io.BytesIO) -> str | None:
    """The first zone of the file's timestamp columns that names no zone of the time zone
    database (polars reads only those), or None. Nothing is judged where the footer cannot be
    read this way: the read itself reports that."""
    try:
        schema = _arrow_schema(_footer(data))
    except (OSError, ValueError, pa.ArrowException):
        return None
    for zone in (z for field in schema or [] for z in _zones(field.type)):
        try:
            zoneinfo.ZoneInfo(zone)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            return zone
    return None
