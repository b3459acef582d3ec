"""Proof that an NDJSON file uses no key beyond its first lines' keys, from one byte count and
the frame already read with those keys (issue 12: no second JSON parse, no pass over lines).

The argument, for a file polars parsed (valid JSON, one object per line):
- every member of an object is ``"key" ws : value``. When no ``"`` in the file is followed by
  whitespace (bytes <= 0x20), each member's key ends in ``":`` at a position of its own, so the
  count of ``":`` in the file is at least the number of members;
- every non-NULL value in the frame read with the first lines' keys came from a member with
  one of those keys, one member per (row, column);
- so if the count of ``":`` EQUALS the frame's non-NULL values, no member has another key (nor
  a NULL value, nor is any key written twice, nor is any object nested).

Anything else in the file (``":`` inside a value, a NULL, a nested object, a quote followed by
a space) only makes the count larger, and the proof fails: the slower checks decide, as before.
A ``[`` anywhere also fails it: a list column's type is not a matter of keys alone. (Defensive:
with every first-lines value a non-NULL scalar, polars' whole-file inference gives such a column
text too, and tests/test_ndjson_keys.py found no file where the rule decides.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import polars as pl

_CHUNK = 1 << 20  # bytes per read: numpy's temporaries stay in cache
_QUOTE, _COLON, _SPACE = ord('"'), ord(":"), ord(" ")


@dataclass(frozen=True)
class KeyTokens:
    """What the byte count found."""

    colons: int  # occurrences of ``":``
    spaced: bool  # a ``"`` followed by a byte <= 0x20
    bracket: bool  # a ``[`` anywhere


def count_key_tokens(path: str) -> KeyTokens | None:
    """One read of the whole file, a few vectorised comparisons per MiB (about 0.04 s of CPU per
    100 MB). None when the file could not be read whole (never a proof from part of it)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        buf = bytearray(_CHUNK + 1)  # +1: the byte after a chunk's last quote
        view, data = memoryview(buf), np.frombuffer(buf, dtype=np.uint8)
        quote, pair = np.empty(_CHUNK, dtype=bool), np.empty(_CHUNK, dtype=bool)
        colons, spaced, bracket, offset = 0, False, False, 0
        while True:
            n = os.preadv(fd, [view], offset)
            last = n <= _CHUNK
            pairs = max(n - 1, 0) if last else _CHUNK  # (i, i + 1) with both bytes read
            q, p, nxt = quote[:pairs], pair[:pairs], data[1:pairs + 1]
            np.equal(data[:pairs], _QUOTE, out=q)
            np.equal(nxt, _COLON, out=p)
            p &= q
            colons += int(np.count_nonzero(p))
            if not spaced:
                np.less_equal(nxt, _SPACE, out=p)
                p &= q
                spaced = bool(p.any())
            bracket = bracket or buf.find(b"[", 0, min(n, _CHUNK)) >= 0
            offset += min(n, _CHUNK)
            if last:
                break
    finally:
        os.close(fd)
    return KeyTokens(colons, spaced, bracket) if offset == size else None


def proves_keys(tokens: KeyTokens | None, frame: pl.DataFrame) -> bool:
    """Whether ``frame`` (the whole file read with the first lines' keys, every column text)
    holds every member of the file: see the module's docstring."""
    if tokens is None or tokens.spaced or tokens.bracket:
        return False
    if any(dtype != pl.String for dtype in frame.schema.values()):
        return False
    values = frame.height * frame.width - sum(frame.null_count().row(0))
    return tokens.colons == values
