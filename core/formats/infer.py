"""Lossless type inference for text columns (CSV, TSV, and NDJSON scalars).

A column becomes a number, bool, date or date-time only if EVERY value in the file round-trips:
printing the typed value gives back the text, up to the normalisation the README lists
(``1.50`` -> ``1.5``, ``1e3`` -> ``1000``, ``-0`` -> ``0`` in an integer column, ``True`` ->
``true``, ``T`` or space in a date-time, an offset converted to UTC). Anything else stays text:
leading zeros, a leading ``+``, integers beyond Int64, more digits than a Float64 keeps,
thousands separators, mixed date layouts, days that are not in the calendar.

Null tokens (a route's ``null_values``) are NULL only in columns that are otherwise typed: a
text column keeps a literal ``NA`` (think North America).

Cost: the sample (first rows) picks one candidate type per column; the whole file is then
checked against that candidate in ONE pass: one cheap test per value (an integer: its cast, which
the batches reuse, and comparisons of its first bytes; otherwise one regular expression for the
common shapes: a short plain decimal, a calendar date), and the exact checks (overflow,
significant digits, exponents, null tokens) only on the few values that fail it. In memory that
pass is sums only, and the per-value details are asked only of the columns that have misses.
Only when a later value disagrees is the column checked against the wider kinds (widening, never
quarantine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import polars as pl

DEFAULT_NULL_VALUES = ("", "NA", "N/A", "NULL", "null", "NaN", "\\N", "#N/A")

# The kinds, in the order they are tried (narrowest first).
KINDS = ("int", "float", "bool", "date", "datetime", "datetime_tz")
# (?-u): ASCII-only matching, 3-4x faster than Unicode classes on polars' regex engine.
_INT = r"(?-u)^-?(0|[1-9][0-9]{0,18})$"  # 19 digits may still overflow Int64: see _exact
_FLOAT = r"(?-u)^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?$|^-?inf$"
_FLOAT_FAST = r"(?-u)^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"  # no exponent; with <= 15 bytes, <= 15 digits
# Calendar dates of years 1900-2299 (ClickHouse's Date32/DateTime64 range: outside it values
# would be clamped), Feb 29 only in leap years: one pattern, no second parse of the day.
_Y = r"(19[0-9]{2}|2[0-2][0-9]{2})"
_MD = r"((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))"
_LEAP = r"((19|2[0-2])(0[48]|[2468][048]|[13579][26])|2000)"
_YMD = rf"({_Y}-{_MD}|{_LEAP}-02-29)"
_HMS = r"[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
_DATE = rf"(?-u)^{_YMD}$"
_DATETIME = rf"(?-u)^{_YMD}{_HMS}$"
_DATETIME_TZ = rf"(?-u)^{_YMD}{_HMS}(Z|[+-](0[0-9]|1[0-4]):?[0-5][0-9])$"
_BOOLS = ("true", "false", "True", "False", "TRUE", "FALSE")
# The kinds whose fast test is a cast: whole_frame makes it once and keeps it as the batches'
# column. (A float's fast test is a pattern: its cast stays with to_wire, beside the inserts.)
_CAST_FIRST = ("int",)
FLOAT_DIGITS = 15  # a decimal with at most 15 significant digits survives a trip through a double
_POW10 = 10.0 ** np.arange(23)  # the powers of ten a double holds exactly

_WHY = {"int": "every value is an integer", "float": "every value is a decimal number (<= 15 digits)",
        "bool": "every value is true or false", "date": "every value is an ISO date (YYYY-MM-DD)",
        "datetime": "every value is an ISO date-time", "datetime_tz": "every value is a date-time with an offset "
        "(stored in UTC)"}


@dataclass
class Verdict:
    """What one column is, and why."""

    kind: str  # one of KINDS, or "text"
    why: str = ""
    tokens: list[str] = field(default_factory=list)  # null tokens seen (typed columns only)
    precision: str = "us"  # datetime kinds: "ns" when a value has more than 6 fraction digits

    @property
    def dtype(self) -> pl.DataType:
        """The column's polars type as the table sees it."""
        return {"int": pl.Int64(), "float": pl.Float64(), "bool": pl.Boolean(), "date": pl.Date(),
                "datetime": pl.Datetime(self.precision),  # type: ignore[arg-type]
                "datetime_tz": pl.Datetime(self.precision, "UTC")}.get(self.kind, pl.String())  # type: ignore[arg-type]

    @property
    def wire(self) -> pl.DataType:
        """The polars type a batch carries: dates travel as text (ClickHouse parses them), except
        offsets, which polars converts to UTC."""
        if self.kind in ("date", "datetime"):
            return pl.String()
        return self.dtype


@dataclass
class FileFacts:
    """What the whole-file pass found."""

    verdicts: dict[str, Verdict]
    rows: int
    nulls: dict[str, int]  # per column, as the typed columns will have them (null tokens included)
    empty_rows: int = 0  # rows in which every column is NULL (a blank line of a CSV reads as one)


def typed_verdict(kind: str, candidate: str | None) -> Verdict | None:
    """The verdict of a column whose every value a strict typed read took as ``kind`` (NDJSON's
    integers, bools, and floats that :func:`fifteen_digits` passed): what the check of their texts
    finds, from the sample's ``candidate`` (None: that check would find another kind)."""
    if candidate == kind:
        return Verdict(kind, _WHY[kind])
    if kind == "float" and candidate in ("int", None):  # (the sample's integers widen: whole_file's words)
        return Verdict(kind, _WHY[kind] + f" (widened: the first rows suggested {candidate or 'no type'})")
    return None


def looks_like(kind: str, token: str) -> bool:
    """Whether a null token is a text a value of ``kind`` prints as (then a typed read would keep
    as a value what the inference makes NULL)."""
    if kind == "int":
        return re.fullmatch(r"-?[0-9]+", token) is not None
    if kind == "float":
        return re.fullmatch(r"-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?", token) is not None
    return token in _BOOLS


def fifteen_digits(values: pl.Series) -> bool:
    """Whether a column of JSON numbers read as Float64 is one the text check finds ``float``: some
    value is not integral (else it may be ``int``), and each prints with at most FLOAT_DIGITS
    significant digits (polars prints a double's shortest text) and is below 2^53 (an integer
    beyond it was rounded by the read, whereas its text keeps every digit). The digits, exactly
    and without printing: x has a decimal of <= 15 digits that reads back as x iff some integer
    m < 10^15 and power 10^k (|k| <= 22: both exact, so one IEEE division or product is correctly
    rounded, as strtod's fast path) give back x; m is x * 10^k rounded, for k around 14 - log10|x|
    (an error of log10 costs a k either way: three tries). False also for |x| below 1e-8 (k > 22)
    and for any x where a step overflows (the column is then read as text: never a wrong True)."""
    x = values.drop_nulls().to_numpy()
    a = np.abs(x)
    if not len(x) or not (a < 2.0**53).all() or (x == np.floor(x)).all():
        return False
    x, a = x[a > 0], a[a > 0]  # (zero: no digits)
    k = 14 - np.floor(np.log10(a)).astype(np.int64)
    # Most values: k in 0..22, one try (a table of exact powers: np.power costs 5x more).
    first = np.clip(k, 0, 22)
    scale = _POW10[first]
    m = np.rint(x * scale)
    ok = (first == k) & (np.abs(m) < 1e15) & (m / scale == x)
    rest = np.flatnonzero(~ok)
    for step in (0, -1, 1):  # the others: both signs of k, and log10's error either way
        if not len(rest):
            return True
        kk = k[rest] + step
        scale = _POW10[np.minimum(np.abs(kk), 22)]
        up = kk >= 0
        m = np.rint(np.where(up, x[rest] * scale, x[rest] / scale))
        back = np.where(up, m / scale, m * scale)
        rest = rest[~((np.abs(kk) <= 22) & (np.abs(m) < 1e15) & (back == x[rest]))]
    return not len(rest)


def _value(name: str, tokens: tuple[str, ...]) -> pl.Expr:
    col = pl.col(name)
    return pl.when(col.is_in(tokens)).then(None).otherwise(col).alias(name) if tokens else col


def _exact(kind: str, v: pl.Expr) -> pl.Expr:
    """True where a (non-null) value is a lossless ``kind``: every check, at full cost."""
    if kind == "int":
        return v.str.contains(_INT) & v.cast(pl.Int64, strict=False).is_not_null()
    if kind == "float":
        x = v.cast(pl.Float64, strict=False)
        return v.str.contains(_FLOAT) & (digits(v) <= FLOAT_DIGITS) & (
            (x.is_finite() & ~underflows(v, x)) | v.str.ends_with("inf"))
    if kind == "bool":
        return v.is_in(_BOOLS)
    return v.str.contains({"date": _DATE, "datetime": _DATETIME, "datetime_tz": _DATETIME_TZ}[kind])


def _fast(kind: str, v: pl.Expr, cast: pl.Expr | None = None) -> pl.Expr:
    """A cheap test that implies :func:`_exact`, true for the common shapes of ``kind``: one
    regular expression per value, or none. What fails it goes through the exact checks.
    ``cast``: the value already cast to the kind's type (:func:`_cast`), when the caller has it."""
    if kind == "int":
        # polars casts exactly the texts [+-]?[0-9]+ within Int64's range (tests/test_inference.py
        # pins it); of those, the ones starting 1-9, "0" alone, or "-" then 1-9 are an integer's own
        # text. Comparing with a literal reads the value's inline prefix: a third of a regex's cost.
        x = _cast(kind, v) if cast is None else cast
        return x.is_not_null() & ((v >= "1") | (v == "0") | ((v >= "-1") & (v < "0")))
    if kind == "float":
        return (v.str.len_bytes() <= FLOAT_DIGITS) & v.str.contains(_FLOAT_FAST)
    if kind == "bool":  # two comparisons cost a fifth of a six-value is_in
        return (v == "true") | (v == "false")
    return _exact(kind, v)


def _cast(kind: str, v: pl.Expr) -> pl.Expr:
    """A number's text as its wire type: NULL where it is none (or overflows Int64)."""
    return v.cast(pl.Int64 if kind == "int" else pl.Float64, strict=False)


SMALLEST_NORMAL = 2.2250738585072014e-308


def underflows(v: pl.Expr, x: pl.Expr) -> pl.Expr:
    """Text ``v`` whose double ``x`` may not be the number it writes for want of range: 0 for a
    number that is not (1e-400 loaded as 0), or a subnormal double, which holds fewer than 15
    digits. Such a column stays text; a float column refuses what reads as 0 (core/fit.py)."""
    return (x.abs() < SMALLEST_NORMAL) & (digits(v) > 0)


def digits(v: pl.Expr) -> pl.Expr:
    """Significant digits of a decimal number's text."""
    return mantissa(v).str.len_bytes()


def mantissa(v: pl.Expr) -> pl.Expr:
    """The significant digits of a decimal number's text, as text ('-0.01230e5' -> '123')."""
    return (v.str.replace(r"[eE].*$", "").str.replace_all(r"[-.]", "").str.strip_chars_start("0")
            .str.strip_chars_end("0"))


def _bad(kind: str, name: str, tokens: tuple[str, ...], miss: pl.Expr | None = None) -> pl.Expr:
    """How many values of the column are neither a lossless ``kind`` nor a null token (0 or not
    is what matters). ``miss``: the values that failed the fast test, if already known."""
    c = pl.col(name)
    rest = c.filter(c.is_not_null() & ~_fast(kind, c) if miss is None else miss)
    wrong = ~_exact(kind, rest)
    return (wrong & ~rest.is_in(tokens)).sum() if tokens else wrong.sum()


def utc(v: pl.Expr, unit: str = "us") -> pl.Expr:
    """A date-time with an offset (or Z) as a UTC timestamp."""
    text = v.str.replace("T", " ", literal=True).str.replace(r"Z$", "+00:00")
    return text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%#z", time_unit=unit, time_zone="UTC",  # type: ignore[arg-type]
                                strict=False)


def sample_kinds(sample: pl.DataFrame, tokens: tuple[str, ...]) -> dict[str, str | None]:
    """Candidate kind per text column of the sample: None when the sample holds no value at all
    (the whole file decides), "text" when no kind fits. (The narrowest kind every value fits, found
    as :func:`small_file` finds it: cheap tests first, then one exact check per column and round.)"""
    names = tuple(c for c, t in sample.schema.items() if t == pl.String)
    if not names:
        return {}
    stats = _small_stats_row(sample, names, tokens)
    kinds = _small_kinds(sample, stats, names, tokens, seen=False)
    return {c: kinds.get(c, "text" if stats[f"val\x00{c}"] else None) for c in names}


class _Pass:
    """Aggregate queries over the file (in memory, or streamed from disk: one read per query)."""

    def __init__(self, lf: pl.LazyFrame, streaming: bool) -> None:
        self.lf = lf
        self.streaming = streaming

    def collect(self, exprs: list[pl.Expr], lf: pl.LazyFrame | None = None) -> dict:
        q = (self.lf if lf is None else lf).select(exprs)
        return (q.collect(engine="streaming") if self.streaming else q.collect()).row(0, named=True)


def _tokens_seen(v: pl.Expr, tokens: tuple[str, ...]) -> pl.Expr:
    """The null tokens ``v`` holds, sorted. One ``any`` per token: reductions stream, whereas a
    filter-unique-implode made the streaming engine hold whole columns (1.9 GB of peak RSS for the
    plan of a 1 GB CSV, 0.5 GB without; issue 12)."""
    if not tokens:
        return pl.lit([], dtype=pl.List(pl.String))
    return pl.concat_list([pl.when(v.eq(t).any()).then(pl.lit(t, dtype=pl.String))
                           for t in sorted(set(tokens))]).list.drop_nulls()


def _fine_fraction(name: str) -> pl.Expr:
    """More than 6 fraction digits anywhere (nanoseconds). Only values longer than
    "YYYY-MM-DD HH:MM:SS.ffffff" can have them."""
    c = pl.col(name)
    return c.filter(c.str.len_bytes() > 26).str.contains(r"(?-u)\.[0-9]{7}").any()


def _candidate_exprs(c: str, kind: str, tokens: tuple[str, ...]) -> list[pl.Expr]:
    """The one-pass checks of column ``c`` against its candidate: values failing the fast test
    (``miss``, a column the pass adds) get the exact checks and the null-token count."""
    col = pl.col(c)
    rest = col.filter(pl.col(f"miss\x00{c}"))
    exprs = [_bad(kind, c, tokens, pl.col(f"miss\x00{c}")).alias(f"bad\x00{c}")]
    if tokens:
        # A token that passes the fast test (a route's "-999") is not among the misses.
        both = _fast_tokens(kind, tokens)
        pool = col.filter(pl.col(f"miss\x00{c}") | col.is_in(both)) if both else rest
        exprs += [pool.is_in(tokens).sum().alias(f"tok\x00{c}"), _tokens_seen(pool, tokens).alias(f"seen\x00{c}")]
    if kind in ("datetime", "datetime_tz"):
        exprs.append(_fine_fraction(c).alias(f"fine\x00{c}"))
    return exprs


@lru_cache(maxsize=64)
def _fast_tokens(kind: str, tokens: tuple[str, ...]) -> tuple[str, ...]:
    """The null tokens that pass ``kind``'s fast test (a route's "-999" for integers)."""
    if not tokens:
        return ()
    passes = pl.DataFrame({"t": tokens}, schema={"t": pl.String}).select(
        _fast(kind, pl.col("t")).fill_null(False))["t"].to_list()
    return tuple(t for t, f in zip(tokens, passes, strict=True) if f)


def _quick_pass(q: _Pass, candidates: dict[str, str | None], tokens: tuple[str, ...], casts: bool) -> dict:
    """:func:`_first_pass` for a frame in memory, where looking at a column again costs no read:
    first only sums (rows, NULLs, and per typed column the values failing its fast test or equal
    to a token that passes it), then the first pass's details for the columns that have some."""
    names = list(candidates)
    exprs = [pl.len().alias("\x00rows"), *(pl.col(c).null_count().alias(f"null\x00{c}") for c in names)]
    if names:
        exprs.append(pl.all_horizontal(pl.col(c).is_null() for c in names).sum().alias("\x00empty"))
    for c, k in candidates.items():
        col = pl.col(c)
        if k is None:  # the sample held no value: does the file hold any?
            exprs.append(_value(c, tokens).is_not_null().sum().alias(f"bad\x00{c}"))
        elif k != "text":
            cast = pl.col(f"cast\x00{c}") if casts and k in _CAST_FIRST else None
            exprs.append((col.is_not_null() & ~_fast(k, col, cast)).sum().alias(f"miss\x00{c}"))
            if both := _fast_tokens(k, tokens):
                exprs.append(col.is_in(both).sum().alias(f"both\x00{c}"))
            if k in ("datetime", "datetime_tz"):
                exprs.append(_fine_fraction(c).alias(f"fine\x00{c}"))
    stats = q.collect(exprs)
    dirty: dict[str, str | None] = {}
    for c, k in candidates.items():
        if k not in ("text", None):
            if stats[f"miss\x00{c}"] or stats.get(f"both\x00{c}"):
                dirty[c] = k
            else:
                stats[f"bad\x00{c}"] = 0
    if dirty:
        details = _first_pass(q, dirty, tokens, casts)
        del details["\x00empty"]  # (over these columns only)
        stats.update(details)
    return stats


def _first_pass(q: _Pass, candidates: dict[str, str | None], tokens: tuple[str, ...], casts: bool = False) -> dict:
    """Rows, all-NULL rows, NULLs per column, and every typed column against its candidate.
    ``casts``: the frame holds each integer candidate cast already (``cast\x00<name>``)."""
    names = list(candidates)
    misses = [(pl.col(c).is_not_null() & ~_fast(k, pl.col(c), pl.col(f"cast\x00{c}") if casts and k in _CAST_FIRST
                                                else None)).alias(f"miss\x00{c}")
              for c, k in candidates.items() if k not in ("text", None)]
    exprs = [pl.len().alias("\x00rows"), *(pl.col(c).null_count().alias(f"null\x00{c}") for c in names)]
    if names:
        exprs.append(pl.all_horizontal(pl.col(c).is_null() for c in names).sum().alias("\x00empty"))
    for c, k in candidates.items():
        if k is None:  # the sample held no value: does the file hold any?
            exprs.append(_value(c, tokens).is_not_null().sum().alias(f"bad\x00{c}"))
        elif k != "text":
            exprs += _candidate_exprs(c, k, tokens)
    return q.collect(exprs, q.lf.with_columns(misses) if misses else None)


def _widen(q: _Pass, widen: dict[str, int], candidates: dict[str, str | None],
           tokens: tuple[str, ...]) -> tuple[dict[str, Verdict], dict]:
    """A later value disagrees with the sample: try the wider kinds over the whole column (rare:
    a second pass), then count the tokens and fractions of the columns that found a kind.
    Returns the verdicts and those counts (keyed like the first pass's)."""
    tries = [_bad(k, c, tokens).alias(f"{k}\x00{c}") for c, start in widen.items() for k in KINDS[start:]]
    more = q.collect(tries) if tries else {}  # (nothing wider than an offset date-time: text)
    out: dict[str, Verdict] = {}
    for c, start in widen.items():
        kind = next((k for k in KINDS[start:] if more[f"{k}\x00{c}"] == 0), None)
        out[c] = Verdict(kind, _WHY[kind] + " (widened: the first rows suggested "
                         f"{candidates[c] or 'no type'})") if kind else Verdict("text", "")
    typed = [c for c, v in out.items() if v.kind != "text"]
    exprs = [e for c in typed if tokens for e in (pl.col(c).is_in(tokens).sum().alias(f"tok\x00{c}"),
                                                   _tokens_seen(pl.col(c), tokens).alias(f"seen\x00{c}"))]
    exprs += [_fine_fraction(c).alias(f"fine\x00{c}") for c in typed if out[c].kind in ("datetime", "datetime_tz")]
    facts = q.collect(exprs) if exprs else {}
    for c in typed:
        _adopt(out[c], facts, c)
    return out, facts


def _adopt(verdict: Verdict, stats: dict, c: str) -> None:
    """Tokens seen and fraction precision, from a pass's results."""
    verdict.tokens = list(stats.get(f"seen\x00{c}") or [])
    if stats.get(f"fine\x00{c}"):
        verdict.precision = "ns"


def whole_file(lf: pl.LazyFrame, candidates: dict[str, str | None], tokens: tuple[str, ...],
               streaming: bool, casts: bool = False) -> FileFacts:
    """Check every value of the file against each column's candidate; widen where one fails.
    ``casts``: as for :func:`_first_pass`."""
    q = _Pass(lf, streaming)
    # (Streamed, each query reads the file again: one pass with every detail.)
    stats = _first_pass(q, candidates, tokens, casts) if streaming else _quick_pass(q, candidates, tokens, casts)
    return conclude(q, stats, candidates, tokens)


def conclude(q: _Pass, stats: dict, candidates: dict[str, str | None], tokens: tuple[str, ...]) -> FileFacts:
    """The verdicts from the first pass's ``stats`` (widening over ``q`` where a candidate failed)."""
    verdicts = {c: Verdict("text", "the sample holds text") for c in candidates}
    widen: dict[str, int] = {}
    for c, k in candidates.items():
        if k == "text":
            continue
        if stats[f"bad\x00{c}"]:
            widen[c] = KINDS.index(k) + 1 if k is not None else 0
            stats.pop(f"tok\x00{c}", None)  # counted against the candidate: recounted if it widens to a kind
        elif k is None:
            verdicts[c] = Verdict("text", "no values (every value empty or a null token)")
        else:
            verdicts[c] = Verdict(k, _WHY[k])
            _adopt(verdicts[c], stats, c)
    if widen:
        found, facts = _widen(q, widen, candidates, tokens)
        verdicts.update(found)
        stats.update(facts)
    # Null tokens in typed columns become NULL: the table's null counts include them.
    nulls = {c: int(stats[f"null\x00{c}"]) + (int(stats.get(f"tok\x00{c}") or 0) if v.kind != "text" else 0)
             for c, v in verdicts.items()}
    return FileFacts(verdicts, int(stats["\x00rows"]), nulls, int(stats.get("\x00empty") or 0))


def whole_frame(frame: pl.DataFrame, candidates: dict[str, str | None],
                tokens: tuple[str, ...]) -> tuple[FileFacts, pl.DataFrame]:
    """:func:`whole_file` over a text frame in memory, and the frame with its integer columns as
    their wire type: the check casts every integer candidate once (its fast test), and the batches
    reuse that cast instead of casting again."""
    nums = {c: k for c, k in candidates.items() if k in _CAST_FIRST}
    work = frame.with_columns(_cast(k, pl.col(c)).alias(f"cast\x00{c}") for c, k in nums.items())
    facts = whole_file(work.lazy(), candidates, tokens, streaming=False, casts=True)
    typed = []
    for c, k in nums.items():
        verdict, cast = facts.verdicts[c], pl.col(f"cast\x00{c}")
        if verdict.kind == k:  # (a column that widened is cast by to_wire, batch by batch)
            # A null token that is a number ("-999") is NULL, as to_wire makes it.
            typed.append((pl.when(pl.col(c).is_in(verdict.tokens)).then(None).otherwise(cast) if verdict.tokens
                          else cast).alias(c))
    out = work.with_columns(typed).select(frame.columns) if typed else frame
    return facts, out


# Byte lengths a value of each kind can have: a cheap necessary test (with the casts for numbers)
# that rules kinds out without a regular expression or literal, whose per-query cost is what
# dominates small files. Only prunes: a kind failing it somewhere has bad values for certain.
_LENGTHS = {"bool": (4, 5), "date": (10, 10), "datetime": (19, 29), "datetime_tz": (20, 35)}


@lru_cache(maxsize=256)
def _small_stats(names: tuple[str, ...], tokens: tuple[str, ...]) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """The first query of :func:`small_file`: each column with its null tokens as NULL (computed
    once, not once per use), then counts, lengths and failed casts. Built once per column set
    and reused: building expressions costs more than running them on a few hundred rows."""
    values = [_value(c, tokens).alias(f"v\x00{c}") for c in names]
    exprs = [pl.len().alias("\x00rows")]
    if names:
        exprs.append(pl.all_horizontal(pl.col(c).is_null() for c in names).sum().alias("\x00empty"))
    for c in names:
        col, v = pl.col(c), pl.col(f"v\x00{c}")
        n = v.str.len_bytes()
        exprs += [col.null_count().alias(f"null\x00{c}"), v.null_count().alias(f"vnull\x00{c}"),
                  col.n_unique().alias(f"uniq\x00{c}"), n.min().alias(f"min\x00{c}"), n.max().alias(f"max\x00{c}"),
                  # (polars casts "inf" and "-inf" to Float64 too: every lossless number casts)
                  v.cast(pl.Int64, strict=False).null_count().alias(f"int\x00{c}"),
                  v.cast(pl.Float64, strict=False).null_count().alias(f"float\x00{c}")]
    return values, exprs


def _maybe(c: str, stats: dict) -> list[str]:
    """The kinds column ``c`` may still be after the cheap tests, narrowest first."""
    vnull, low, high = stats[f"vnull\x00{c}"], stats[f"min\x00{c}"], stats[f"max\x00{c}"]
    return [k for k in KINDS if (stats[f"{k}\x00{c}"] == vnull if k in ("int", "float")
                                 else _LENGTHS[k][0] <= low and high <= _LENGTHS[k][1])]


@lru_cache(maxsize=1024)
def _small_check(kind: str, c: str, tokens: tuple[str, ...]) -> list[pl.Expr]:
    """The exact check of column ``c`` against ``kind`` (and its fraction digits, for date-times)."""
    exprs = [_bad(kind, c, tokens).alias(f"{kind}\x00{c}")]
    if kind in ("datetime", "datetime_tz"):
        exprs.append(_fine_fraction(c).alias(f"fine\x00{c}"))
    return exprs


def small_file(frame: pl.DataFrame, tokens: tuple[str, ...]) -> tuple[FileFacts, dict[str, int]]:
    """:func:`sample_kinds` then :func:`whole_file` when the sample IS the whole file (a small
    file, parsed once): the same verdicts for a fixed cost of a few queries instead of one per
    kind. Cheap tests rule kinds out first; each column then takes the exact check of its
    narrowest remaining kind, the next one only if that fails. Also returns distinct values."""
    names = tuple(c for c, t in frame.schema.items() if t == pl.String)
    stats = _small_stats_row(frame, names, tokens)
    kinds = _small_kinds(frame, stats, names, tokens)
    verdicts = {c: _small_verdict(c, kinds.get(c), stats) for c in names}
    nulls = {c: int(stats[f"null\x00{c}"]) + (int(stats.get(f"tok\x00{c}") or 0) if v.kind != "text" else 0)
             for c, v in verdicts.items()}
    facts = FileFacts(verdicts, int(stats["\x00rows"]), nulls, int(stats.get("\x00empty") or 0))
    return facts, {c: int(stats[f"uniq\x00{c}"]) for c in names}


def _small_stats_row(frame: pl.DataFrame, names: tuple[str, ...], tokens: tuple[str, ...]) -> dict:
    """The first query's results, with each column's values (``val``) and null tokens (``tok``)."""
    values, exprs = _small_stats(names, tokens)
    stats = frame.with_columns(values).select(exprs).row(0, named=True)
    rows = stats["\x00rows"]
    for c in names:  # values that are null tokens (NULL in v, not in the column)
        stats[f"val\x00{c}"] = rows - stats[f"vnull\x00{c}"]
        stats[f"tok\x00{c}"] = stats[f"vnull\x00{c}"] - stats[f"null\x00{c}"]
    return stats


def _small_kinds(frame: pl.DataFrame, stats: dict, names: tuple[str, ...], tokens: tuple[str, ...],
                 seen: bool = True) -> dict[str, str]:
    """The exact checks, narrowest kind first, one query per round; adds their results to ``stats``.
    ``seen``: also ask which tokens a typed column holds."""
    left = {c: ks for c in names if stats[f"val\x00{c}"] and (ks := _maybe(c, stats))}
    # Which tokens a typed column holds: asked only where it may be typed and holds some.
    asks = [_tokens_seen(pl.col(c), tokens).alias(f"seen\x00{c}") for c in left if seen and stats[f"tok\x00{c}"]]
    kinds: dict[str, str] = {}
    while left:
        checks = [e for c, ks in left.items() for e in _small_check(ks[0], c, tokens)]
        stats.update(frame.select(checks + asks).row(0, named=True))
        asks = []
        for c, ks in list(left.items()):
            kind = ks.pop(0)
            if stats[f"{kind}\x00{c}"] == 0:
                kinds[c] = kind
            if c in kinds or not ks:
                del left[c]
    return kinds


def _small_verdict(c: str, kind: str | None, stats: dict) -> Verdict:
    if kind is None:
        return Verdict("text", "the sample holds text" if stats[f"val\x00{c}"] else
                       "no values (every value empty or a null token)")
    verdict = Verdict(kind, _WHY[kind])
    _adopt(verdict, stats, c)
    return verdict


def to_wire(df: pl.DataFrame, verdicts: dict[str, Verdict], tokens: tuple[str, ...]) -> pl.DataFrame:
    """Text batch -> typed batch: null tokens become NULL, numbers and bools are cast, offsets go
    to UTC; plain dates stay text for ClickHouse to parse."""
    exprs = [e for c, v in verdicts.items()
             if c in df.columns and df.schema[c] == pl.String  # (else whole_frame cast it)
             and (e := wire_expr(c, v)) is not None]
    return df.with_columns(exprs) if exprs else df


def wire_expr(c: str, v: Verdict) -> pl.Expr | None:
    """Text column ``c`` as :func:`to_wire` sends it (None: as it is)."""
    if v.kind == "text":
        return None
    value = _value(c, tuple(v.tokens)) if v.tokens else pl.col(c)
    if v.kind == "int":
        return value.cast(pl.Int64)
    if v.kind == "float":
        return value.cast(pl.Float64)
    if v.kind == "bool":
        return pl.any_horizontal(value == b for b in _BOOLS[::2]).alias(c)
    if v.kind == "datetime_tz":
        return utc(value, v.precision)
    return value if v.tokens else None


def explain_text(series: pl.Series, tokens: tuple[str, ...], header_lines: int) -> str:
    """Why a column stayed text, naming the first value (and its line) that is not a lossless
    number or date. Slow-ish (a few passes over one column): for `chute inspect` and details."""
    values = series.to_frame("v").select(_value("v", tokens).alias("v"))["v"]
    present = values.drop_nulls()
    if present.is_empty():
        return "no values (every value empty or a null token)"

    def first(mask: pl.Series) -> tuple[int, str] | None:
        hits = mask.fill_null(False).arg_true()
        if not len(hits):
            return None
        i = int(hits[0])
        return i + 1 + header_lines, str(values[i])

    frame = values.to_frame("v")
    numeric = frame.select(_exact("float", pl.col("v"))
                           | pl.col("v").str.contains(r"^[-+]?[0-9][0-9,]*(\.[0-9]+)?$"))["v"]
    dated = frame.select(pl.col("v").str.contains(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"))["v"]
    rules = [
        (r"^-?0[0-9]", "leading zero"),
        (r"^\+[0-9]", "leading '+'"),
        (r"^-?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$", "thousands separator"),
        (r"^-?[0-9]{19,}$", "integer beyond Int64"),
    ]
    if numeric.sum() * 2 >= len(present):
        for pattern, label in rules:
            hit = first(values.str.contains(pattern))
            if hit:
                return f"{label} at line {hit[0]} ({hit[1]!r})"
        float_ok = frame.select(_exact("float", pl.col("v")))["v"]
        hit = first(numeric & ~float_ok)
        if hit:
            return f"more digits than a Float64 keeps at line {hit[0]} ({hit[1]!r})"
        hit = first(~numeric & values.is_not_null())
        if hit:
            return f"not a number at line {hit[0]} ({hit[1]!r})"
    if dated.sum() * 2 >= len(present):
        kinds = [k for k in ("date", "datetime", "datetime_tz")]
        oks = [frame.select(_exact(k, pl.col("v")))["v"].fill_null(False) for k in kinds]
        best = max(range(3), key=lambda i: int(oks[i].sum()))
        hit = first(~oks[best] & values.is_not_null())
        if hit:
            return f"mixed or non-ISO date layouts at line {hit[0]} ({hit[1]!r})"
    hit = first(values.is_not_null())
    return f"text at line {hit[0]} ({hit[1]!r})" if hit else "text"
