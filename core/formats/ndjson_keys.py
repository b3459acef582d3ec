"""Proof that an NDJSON file uses no key beyond its first lines' keys, from one byte count and
the frame already read with those keys (issue 12: no second JSON parse, no pass over lines).

The argument, for a file polars parsed (valid JSON, one object per line):
- every member of an object is ``"key" ws : value``. When no ``"`` in the file is followed by
  whitespace (bytes <= 0x20), each member's key ends in ``":`` at a position of its own, so the
  count of ``":`` in the file is at least the number of members;
- every non-NULL value in the frame read with the first lines' keys came from a member with
  one of those keys, one member per (row, column);
- a member written ``"k":null`` with ``k`` one of those keys (spelled as its plain JSON text) is
  a member too, and a different one. Counted only in a file with no escaped quote (``\\"``): there
  every ``"`` opens or closes a string, so the quote before ``":null`` opens that member's key;
- so if the count of ``":`` EQUALS the frame's non-NULL values plus those NULL members, no
  member has another key (nor is any key written twice, nor is any object nested).

Anything else in the file (``":`` inside a value, a nested object, a quote followed by a space,
a NULL member in a file with escaped quotes) only makes the count larger, and the proof fails:
the slower checks decide, as before. A ``[`` anywhere also fails it: a list column's type is not
a matter of keys alone. (Defensive: with every first-lines value a non-NULL scalar, polars'
whole-file inference gives such a column text too, and tests/test_ndjson_keys.py found no file
where the rule decides.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

_CHUNK = 1 << 20  # bytes per read: numpy's temporaries stay in cache
_AFTER = 5  # bytes read past a chunk: ':null' after its last quote
_LONGEST_KEY = 4096  # bytes; a NULL member of a longer key is not counted (the proof fails: safe)
_QUOTE, _COLON, _SPACE, _BACKSLASH = ord('"'), ord(":"), ord(" "), ord("\\")
_NULL = np.frombuffer(b"null", dtype=np.uint8)
_N, _NEWLINE = ord("n"), ord("\n")


@dataclass(frozen=True)
class KeyTokens:
    """What the byte count found."""

    colons: int  # occurrences of ``":``
    spaced: bool  # a ``"`` followed by a byte <= 0x20
    bracket: bool  # a ``[`` anywhere
    escaped: bool = False  # a ``\\"`` anywhere
    null_members: int = 0  # ``"k":null`` with k one of the keys asked about (0 when escaped)
    lines: int = 0  # newlines
    any_nulls: int = 0  # ``":null`` whatever the key


class _Nulls:
    """``"k":null`` members of the known keys: each ``":null`` whose key's text and opening quote
    stand right before it (no quote can stand between them: the file has no escaped quote)."""

    def __init__(self, keys: Sequence[str]) -> None:
        spelled = {json.dumps(k, ensure_ascii=False)[1:-1].encode() for k in keys}
        self.keys = [np.frombuffer(k, dtype=np.uint8) for k in spelled if len(k) <= _LONGEST_KEY]
        self.lookback = max((len(k) for k in self.keys), default=0) + 1  # the key and its opening quote
        self.count = 0  # of the known keys
        self.any = 0  # ':null' after any quote

    def add(self, data: np.ndarray, at: np.ndarray, keys: bool = True) -> None:
        """``at``: positions in ``data`` of a ``"`` followed by ``:n`` (``data`` begins with the
        previous read's last bytes, for keys that began there). ``keys``: also find their keys."""
        ends = at[at + 6 <= len(data)]
        ends = ends[(data[ends[:, None] + np.arange(2, 6)] == _NULL).all(axis=1)]
        self.any += len(ends)
        for key in self.keys if keys else ():
            opens = ends[ends >= len(key) + 1] - len(key) - 1
            hit = data[opens] == _QUOTE
            if len(key):
                hit &= (data[opens[:, None] + 1 + np.arange(len(key))] == key).all(axis=1)
            self.count += int(np.count_nonzero(hit))


def count_key_tokens(path: str, keys: Sequence[str] = ()) -> KeyTokens | None:
    """One read of the whole file, a few vectorised comparisons per MiB (about 0.06 s of CPU per
    100 MB, more where values are NULL). None when the file could not be read whole (never a
    proof from part of it)."""
    nulls = _Nulls(keys)
    back = nulls.lookback
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        # [lookback: the previous read's last bytes][this read][+5: what follows its last '"' (':null')]
        buf = bytearray(back + _CHUNK + _AFTER)
        view, data = memoryview(buf), np.frombuffer(buf, dtype=np.uint8)
        quote, pair, t = (np.empty(_CHUNK, dtype=bool) for _ in range(3))
        colons, spaced, bracket, escaped, lines, offset = 0, False, False, False, 0, 0
        while True:
            n = os.preadv(fd, [view[back:]], offset)
            last = n <= _CHUNK
            pairs = max(n - 1, 0) if last else _CHUNK  # (i, i + 1) with both bytes read
            q, p = quote[:pairs], pair[:pairs]
            np.equal(data[back:back + pairs], _QUOTE, out=q)
            nxt = data[back + 1:back + pairs + 1]
            np.equal(nxt, _COLON, out=p)
            p &= q
            found = int(np.count_nonzero(p))
            colons += found
            if found:  # '":n', then ':null' and its key (rare enough to look at each)
                np.equal(data[back + 2:back + pairs + 2], _N, out=t[:pairs])
                t[:pairs] &= p
                if t[:pairs].any():
                    nulls.add(data[:back + n], np.flatnonzero(t[:pairs]) + back, keys=not escaped)
            if not spaced:
                np.less_equal(nxt, _SPACE, out=p)
                p &= q
                spaced = bool(p.any())
            if not escaped:  # a backslash before a quote (the byte before this read is in the lookback)
                np.equal(data[back - 1:back - 1 + pairs], _BACKSLASH, out=p)
                p &= q
                escaped = bool(p.any())
            bracket = bracket or buf.find(b"[", back, back + min(n, _CHUNK)) >= 0
            lines += int(np.count_nonzero(np.equal(data[back:back + min(n, _CHUNK)], _NEWLINE, out=t[:min(n, _CHUNK)])))
            if last:
                offset += n
                break
            buf[:back] = buf[_CHUNK:_CHUNK + back]  # this read's last bytes: the next one's lookback
            offset += _CHUNK
    finally:
        os.close(fd)
    if offset != size:
        return None
    return KeyTokens(colons, spaced, bracket, escaped, 0 if escaped else nulls.count, lines, nulls.any)


def may_prove(tokens: KeyTokens | None, width: int) -> bool:
    """False when the count alone rules the proof out, before the frame is read: the slower
    checks then run beside the read, not after it. (More ``":`` than ``width`` per line: nested
    objects, or other keys. A ``":null`` in a file with escaped quotes: a member the frame does
    not hold, or a ``":`` inside a string.)"""
    return (tokens is not None and not tokens.spaced and not tokens.bracket
            and tokens.colons <= (tokens.lines + 1) * width and not (tokens.escaped and tokens.any_nulls))


def proves_keys(tokens: KeyTokens | None, frame: pl.DataFrame) -> bool:
    """Whether ``frame`` (the whole file read with the first lines' keys, every column text, or
    an integer, bool or float that polars' strict read took) holds every member of the file: see
    the module's docstring."""
    if tokens is None or tokens.spaced or tokens.bracket:
        return False
    if any(dtype not in (pl.String, pl.Int64, pl.Boolean, pl.Float64) for dtype in frame.schema.values()):
        return False  # (a strict typed read's values are members too: NdjsonReader._typed)
    values = frame.height * frame.width - sum(frame.null_count().row(0))
    return tokens.colons == values + (0 if tokens.escaped else tokens.null_members)
