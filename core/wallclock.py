"""Naive timestamps reach ClickHouse as the instants their wall clock names in the column's zone.

An Arrow (Parquet) timestamp without a zone is a wall-clock reading, but on the wire it is a
count from the epoch, which ClickHouse takes as an instant and shows in the column's zone (the
one in its type, else the server's). On a server whose zone is not UTC every value would move by
the offset; here each one becomes the instant that shows the written wall clock there, as a
CSV's text does (docs/ARCHITECTURE.md#naive-timestamps).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "UCT", "Etc/UCT", "Universal", "Zulu", "Etc/Zulu",
                       "GMT0", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "Greenwich", "Etc/Greenwich", "Etc/Universal"})
_DECLARED = re.compile(r"DateTime(?:64)?\(\s*(?:\d+\s*,\s*)?'([^']+)'\s*\)")
# A wall time in a spring-forward gap: ClickHouse reads it with the offset after the change (02:30
# in Paris on 2026-03-29 is 00:30 UTC). The same instant: shift past the gap, then back.
_PAST_GAP_HOURS = 3
# polars' zone rules (chrono-tz) stop at 2099: later, every wall clock gets the offset in force at
# the end of 2099 (summer in Paris an hour off, winter in Sydney, and a Date32 a day off at
# midnight), where ClickHouse keeps applying the zone's rule. The rules are by weekday (the last
# Sunday of March), so a later year is read in its twin of 2072-2099, the year with the same
# weekday on 1 January and the same leap day, and moved back by the whole days between them.
RULES_END = 2100
_TWIN = {(y % 4 == 0) * 7 + dt.date(y, 1, 1).isoweekday(): y for y in range(RULES_END - 1, RULES_END - 29, -1)}


def column_zone(ch_type: str, server_zone: str) -> str | None:
    """The zone ClickHouse reads this column's instants in, or None when it is UTC (nothing to do)."""
    declared = _DECLARED.search(ch_type)
    zone = (known_zone(declared[1]) or "UTC") if declared else server_zone
    return None if zone in UTC_NAMES else zone


@functools.lru_cache(maxsize=64)
def known_zone(name: str) -> str | None:
    """``name`` as polars knows it (a server may say ``posix/Europe/Paris``, the same rules as
    ``Europe/Paris``), or None when polars has no such zone."""
    if name in UTC_NAMES:
        return name  # (the usual server: no polars import at start-up)
    import polars as pl

    for zone in (name, name.removeprefix("posix/").removeprefix("right/")):
        try:
            pl.Series([0], dtype=pl.Datetime("us")).dt.replace_time_zone(zone)
            return zone
        except pl.exceptions.PolarsError:
            continue
    return None


def has_naive(dtype: pl.DataType) -> bool:
    """Does a value of this type carry a zone-less timestamp (at the top or inside lists)?"""
    import polars as pl

    if isinstance(dtype, pl.Datetime):
        return dtype.time_zone is None
    if isinstance(dtype, pl.List | pl.Array):
        return has_naive(dtype.inner)  # type: ignore[arg-type]
    if isinstance(dtype, pl.Map):
        return has_naive(dtype.key) or has_naive(dtype.value)  # type: ignore[arg-type]
    if isinstance(dtype, pl.Struct):
        return any(has_naive(f.dtype) for f in dtype.fields)  # type: ignore[arg-type]
    return False


def as_instants(expr: pl.Expr, dtype: pl.DataType, zone: str, far: bool = False) -> pl.Expr:
    """``expr`` (of ``dtype``) with every naive timestamp replaced by the instant its wall clock
    names in ``zone``, still zone-less so the table's type is unchanged. A repeated wall time (the
    autumn hour) takes its first instant, as ClickHouse does; NULLs stay NULL. ``far``: some value
    is in RULES_END or later (``latest_year``); those cost three times as much to place."""
    import polars as pl

    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            return expr
        if not far:
            return _placed(expr, dtype, zone)
        year = expr.dt.year()
        twin = (expr.dt.is_leap_year().cast(pl.Int32) * 7 + pl.date(year, 1, 1).dt.weekday().cast(pl.Int32)
                ).replace_strict(_TWIN, return_dtype=pl.Int32)
        near = expr.dt.replace(year=pl.when(year >= RULES_END).then(twin).otherwise(year))
        return _placed(near, dtype, zone) + (expr - near)
    if isinstance(dtype, pl.List):
        return expr.list.eval(as_instants(pl.element(), dtype.inner, zone, far))  # type: ignore[arg-type]
    if isinstance(dtype, pl.Array):
        return expr.arr.eval(as_instants(pl.element(), dtype.inner, zone, far))  # type: ignore[arg-type]
    if isinstance(dtype, pl.Map):
        return as_instants(expr.map.entries(), _entries(dtype), zone, far).list.to_map()
    if isinstance(dtype, pl.Struct):
        fields = [as_instants(expr.struct.field(f.name), f.dtype, zone, far).alias(f.name)  # type: ignore[arg-type]
                  for f in dtype.fields]
        return pl.when(expr.is_null()).then(None).otherwise(pl.struct(fields))
    return expr


# Farther than any zone's offset (at most a day, with a skipped day as Pacific/Apia's in 2011):
# a wrapped count (an ns one near 1677 or 2262), not a wall clock read in a zone.
_FAR_SECONDS = 2 * 86400


def unplaceable(expr: pl.Expr, dtype: pl.DataType, zone: str, far: bool = False) -> pl.Expr:
    """Per row: does ``expr`` hold a naive timestamp whose wall clock names no instant in ``zone``
    that its unit can count (pandas' Timestamp.max read in New York wraps past the int64 of
    nanoseconds), or that no shift past a gap reaches (a skipped day)? Such a value would land
    wrapped or NULL: the Fitter names it instead."""
    import polars as pl

    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            return pl.lit(False)
        return _lost(expr, as_instants(expr, dtype, zone, far))
    if isinstance(dtype, pl.List):
        return expr.list.eval(unplaceable(pl.element(), dtype.inner, zone, far)).list.any().fill_null(False)  # type: ignore[arg-type]
    if isinstance(dtype, pl.Array):
        return expr.arr.eval(unplaceable(pl.element(), dtype.inner, zone, far)).arr.any().fill_null(False)  # type: ignore[arg-type]
    if isinstance(dtype, pl.Map):
        return unplaceable(expr.map.entries(), _entries(dtype), zone, far)
    if isinstance(dtype, pl.Struct):
        return pl.any_horizontal(unplaceable(expr.struct.field(f.name), f.dtype, zone, far)  # type: ignore[arg-type]
                                 for f in dtype.fields).fill_null(False)
    return pl.lit(False)


def misplaced(before: pl.Series, after: pl.Series, zone: str, far: bool = False) -> pl.Series:
    """``unplaceable`` for a column ``as_instants`` already made ``after`` (a top-level timestamp
    is compared, not converted again)."""
    import polars as pl

    if isinstance(before.dtype, pl.Datetime):
        return pl.DataFrame([before.alias("b"), after.alias("a")]).select(_lost(pl.col("b"), pl.col("a")))["b"]
    return before.to_frame("b").select(unplaceable(pl.col("b"), before.dtype, zone, far))["b"]


def latest_year(values: pl.Series) -> int | None:
    """The latest year of any naive timestamp in ``values`` (inside lists, maps and structs too)."""
    import polars as pl

    dtype = values.dtype
    if isinstance(dtype, pl.Datetime):
        return values.dt.year().max() if dtype.time_zone is None else None  # type: ignore[return-value]
    if isinstance(dtype, pl.List | pl.Array):
        return latest_year(values.explode())
    if isinstance(dtype, pl.Map):
        return latest_year(values.map.entries())
    if isinstance(dtype, pl.Struct):
        years = [latest_year(values.struct.field(f.name)) for f in dtype.fields]
        return max((y for y in years if y is not None), default=None)
    return None


def _placed(naive: pl.Expr, dtype: pl.Datetime, zone: str) -> pl.Expr:
    """Each wall clock (before RULES_END) as the instant it names in ``zone``."""
    import polars as pl

    past = pl.duration(hours=_PAST_GAP_HOURS, time_unit=dtype.time_unit)  # (a µs one made ns columns µs)
    local = pl.coalesce(
        naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null"),
        (naive + past).dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null") - past)
    return local.dt.convert_time_zone("UTC").dt.replace_time_zone(None)


def _lost(naive: pl.Expr, moved: pl.Expr) -> pl.Expr:
    import polars as pl

    apart = moved.dt.epoch("s").cast(pl.Float64) - naive.dt.epoch("s").cast(pl.Float64)  # (wrapped: an i64 would too)
    return (naive.is_not_null() & (moved.is_null() | (apart.abs() > _FAR_SECONDS))).fill_null(False)


def _entries(dtype: pl.Map) -> pl.DataType:
    """A map's entries as polars lists them: key/value structs."""
    import polars as pl

    return pl.List(pl.Struct({"key": dtype.key, "value": dtype.value}))
