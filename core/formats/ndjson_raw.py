"""The text a JSON value is written with, for the members of an NDJSON file's text columns that
are not strings (issue 9's rule: no value changes on the way in).

polars reads a JSON number into a text column by printing the double it parsed
(``0.12345678901234567`` -> ``0.12345678901234566``, ``1.50`` -> ``1.5``) and an object by
printing it again (its numbers the same way). This module finds, in the raw bytes of whole lines,
each top-level member's value as written, with numpy only (a structural index, as simdjson's
first stage builds one): the quotes that are not escaped delimit strings; outside them, braces and
brackets give each byte's depth; a ``:`` at depth 1 follows a member's key, and its value runs to
the next ``,`` at depth 1 or the object's closing brace. Valid JSON only: polars parsed the same
bytes first, so no string spans a line and every line is one object.

A member whose value is a string, ``true``, ``false`` or ``null`` is left to polars (its text is
the same, or decoded from escapes); numbers, objects and arrays take their own text verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

_QUOTE, _BACKSLASH, _COLON, _COMMA = ord('"'), ord("\\"), ord(":"), ord(",")
_BRACKET = np.zeros(256, dtype=bool)
_BRACKET[[ord("{"), ord("["), ord("}"), ord("]")]] = True
_OPENING = np.zeros(256, dtype=bool)
_OPENING[[ord("{"), ord("[")]] = True
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[0x20, 0x09, 0x0A, 0x0D]] = True
# A value's first byte when polars' text is the file's own: a string, true, false, null.
_AS_POLARS = np.zeros(256, dtype=bool)
_AS_POLARS[[_QUOTE, ord("t"), ord("f"), ord("n")]] = True


def may_hold_raw(frame: pl.DataFrame, columns: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The text columns among ``columns`` with a value that may come from a number, an object or
    an array (its text starts with ``-``, a digit, ``{`` or ``[``): only these need the raw read;
    and the rows that hold such a value. (Comparisons of a value's first bytes, no regular
    expression; ``.`` and ``/`` pass too.)"""
    names = [c for c in columns if frame.schema.get(c) == pl.String]
    if not names:
        return [], np.zeros(0, dtype=np.int64)
    hits = frame.select(((x >= "-") & (x < ":") | x.str.starts_with("{") | x.str.starts_with("[")).fill_null(False)
                        for x in (pl.col(c) for c in names))
    found = [c for c, hit in zip(names, hits.select(pl.all().any()).row(0), strict=True) if hit]
    if not found:
        return [], np.zeros(0, dtype=np.int64)
    rows = hits.select(pl.any_horizontal(found))  # (one column: no copy of the others)
    return found, np.flatnonzero(rows.to_series().to_numpy())


Found = dict[str, tuple[np.ndarray, pl.Series]]  # per key: rows, and the texts of their values


def raw_values(data: bytes | bytearray | memoryview, keys: Sequence[str]) -> tuple[Found, int]:
    """Per key: (rows, texts) of the members with that key whose value is a number, an object or an
    array, in ``data`` (whole lines of NDJSON, row 0 its first object), the first member of a key
    in an object (as polars takes it); and how many objects ``data`` holds."""
    b = np.frombuffer(data, dtype=np.uint8)
    quotes = _real_quotes(b)
    opens, closes = quotes[0::2], quotes[1::2]
    if len(opens) != len(closes):
        raise ValueError("unbalanced quotes: not the whole lines polars read")

    def outside(pos: np.ndarray) -> np.ndarray:  # positions not inside a string (an even count of quotes before)
        return pos[(np.searchsorted(quotes, pos) & 1) == 0]

    brackets = outside(np.flatnonzero(_BRACKET[b]))
    step = np.where(_OPENING[b[brackets]], 1, -1)
    depth = np.cumsum(step)  # after each bracket
    starts = brackets[(step == 1) & (depth == 1)]  # each line's object
    ends = brackets[(step == -1) & (depth == 0)]
    colons = outside(np.flatnonzero(b == _COLON))
    at = np.searchsorted(brackets, colons) - 1  # the last bracket before each colon
    colons = colons[(at >= 0) & (depth[np.maximum(at, 0)] == 1)]
    commas = outside(np.flatnonzero(b == _COMMA))
    at = np.searchsorted(brackets, commas) - 1
    commas = commas[(at >= 0) & (depth[np.maximum(at, 0)] == 1)]
    # What ends a member's value: the next comma at depth 1, or its object's closing brace.
    after = np.searchsorted(commas, colons)
    value_end = ends[np.searchsorted(ends, colons)]
    within = after < len(commas)
    value_end[within] = np.minimum(value_end[within], commas[after[within]])
    value_start = colons + 1
    value_start = _skip(b, value_start, +1)
    value_end = _skip(b, value_end - 1, -1) + 1
    rows = np.searchsorted(starts, colons, side="right") - 1
    # The key: the string right before the colon (only whitespace between).
    k = np.searchsorted(closes, colons) - 1
    key_open, key_close = opens[k] + 1, closes[k]
    keep = ~_AS_POLARS[b[value_start]]
    out: Found = {}
    spelled = {json.dumps(key, ensure_ascii=False)[1:-1].encode(): key for key in keys}
    escaped = _has_backslash(b, key_open, key_close)
    for raw, key in spelled.items():
        hit = (key_close - key_open == len(raw)) & ~escaped
        idx = np.flatnonzero(hit)
        if len(raw) and len(idx):
            same = (b[key_open[idx][:, None] + np.arange(len(raw))] == np.frombuffer(raw, dtype=np.uint8)).all(axis=1)
            idx = idx[same]
        members = np.zeros(len(colons), dtype=bool)
        members[idx] = True
        for i in np.flatnonzero(escaped):  # a key written with escapes: decode it (rare)
            members[i] = json.loads(bytes(b[key_open[i] - 1:key_close[i] + 1])) == key
        idx = np.flatnonzero(members)
        if len(idx):  # (colons are in file order: a row's first member comes first)
            idx = idx[np.concatenate(([True], rows[idx][1:] != rows[idx][:-1]))]
        idx = idx[keep[idx]]
        if len(idx):
            out[key] = (rows[idx], _texts(b, value_start[idx], value_end[idx]))
    return out, len(starts)


def raw_values_of(data: bytes, keys: Sequence[str], rows: np.ndarray) -> tuple[Found, int]:
    """:func:`raw_values` of only the objects ``rows`` (sorted, 0 the first object of ``data``):
    their lines are copied out first, so a column holding a number here and there costs its lines,
    not the whole piece's structural index. Also how many objects ``data`` holds (its lines that
    are not blank: polars reads one object a line and skips blank ones)."""
    b = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(b == ord("\n"))
    if not len(ends) or ends[-1] != len(b) - 1:
        ends = np.append(ends, len(b))  # (a last line without a newline)
    starts = np.concatenate(([0], ends[:-1] + 1))
    first = _skip_within(b, starts, ends)
    lines = np.flatnonzero(first < ends)  # not blank
    if len(rows) * 4 > len(lines):  # most of the piece: one pass over all of it
        return raw_values(data, keys)
    picked = lines[rows]
    lengths = ends[picked] - starts[picked] + 1
    offsets = np.zeros(len(picked) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    gather = np.repeat(starts[picked] - offsets[:-1], lengths) + np.arange(offsets[-1])
    inside = gather < len(b)
    text = np.full(offsets[-1], ord("\n"), dtype=np.uint8)  # (the last line's missing newline)
    text[inside] = b[gather[inside]]
    found, height = raw_values(text.tobytes(), keys)
    if height != len(rows):  # (never seen: polars parsed these bytes as one object a line)
        raise ValueError(f"{height} objects in {len(rows)} lines")
    return {key: (rows[at], texts) for key, (at, texts) in found.items()}, len(lines)


def _skip_within(b: np.ndarray, pos: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """``pos`` moved past JSON whitespace, not beyond ``stop`` (per line: its first other byte)."""
    pos = pos.copy()
    while True:
        ws = pos < stop
        ws[ws] = _WHITESPACE[b[pos[ws]]]
        if not ws.any():
            return pos
        pos[ws] += 1


def merge(parts: Sequence[tuple[int, Found]]) -> Found:
    """Pieces' findings (each with its first row) as one."""
    out: Found = {}
    for key in dict.fromkeys(k for _, found in parts for k in found):
        got = [(at + found[key][0], found[key][1]) for at, found in parts if key in found]
        out[key] = (np.concatenate([rows for rows, _ in got]), pl.concat([texts for _, texts in got]))
    return out


def patch(frame: pl.DataFrame, found: Found) -> pl.DataFrame:
    """``frame`` with the found texts in place of polars' printing."""
    exprs = []
    for key, (rows, texts) in found.items():
        column = pl.repeat(None, frame.height, dtype=pl.String, eager=True).scatter(rows, texts)
        exprs.append(pl.coalesce(pl.lit(column), pl.col(key)).alias(key))
    return frame.with_columns(exprs) if exprs else frame


def _real_quotes(b: np.ndarray) -> np.ndarray:
    """Positions of the quotes that are not escaped (a run of an odd number of backslashes escapes
    the byte after it)."""
    quotes = np.flatnonzero(b == _QUOTE)
    slashes = np.flatnonzero(b == _BACKSLASH)
    if not len(slashes):
        return quotes
    cut = np.flatnonzero(np.diff(slashes) != 1)
    first = np.concatenate(([slashes[0]], slashes[cut + 1]))
    last = np.concatenate((slashes[cut], [slashes[-1]]))
    escaped = last[(last - first) % 2 == 0] + 1  # runs of odd length
    return quotes[~np.isin(quotes, escaped, assume_unique=True)]


def _skip(b: np.ndarray, pos: np.ndarray, step: int) -> np.ndarray:
    """``pos`` moved by ``step`` past JSON whitespace (a few rounds: values are rarely padded)."""
    pos = pos.copy()
    while True:
        ws = _WHITESPACE[b[pos]]
        if not ws.any():
            return pos
        pos[ws] += step


def _has_backslash(b: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Per span: whether it holds a backslash."""
    slashes = np.flatnonzero(b == _BACKSLASH)
    return np.searchsorted(slashes, stop) > np.searchsorted(slashes, start)


def _texts(b: np.ndarray, start: np.ndarray, stop: np.ndarray) -> pl.Series:
    """The spans as one string column, gathered without a Python loop."""
    lengths = (stop - start).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    gather = np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1])
    array = pa.LargeStringArray.from_buffers(len(lengths), pa.py_buffer(offsets), pa.py_buffer(b[gather].tobytes()))
    return pl.Series(pl.from_arrow(array)).cast(pl.String)
