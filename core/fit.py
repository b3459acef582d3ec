"""Make a batch fit its table: every value must cast to the column's type, no NULL may land in a
column that cannot hold one. Vectorised; only columns whose file type differs from the table's
are checked, so a file loading into the table it created costs nothing here."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import numpy as np
import polars as pl

from chute.core.errors import InputError
from chute.core.formats.infer import SMALLEST_NORMAL, digits, mantissa
from chute.core.schema import Column, base_type, polars_type
from chute.core.wallclock import RULES_END, as_instants, column_zone, has_naive, latest_year, misplaced


@dataclass
class Rejects:
    """Rows skipped under ``on_bad_rows = "skip"``, written as CSV: line, column, value, reason."""

    path: Path
    count: int = 0
    _file: TextIO | None = field(default=None, repr=False)

    def add(self, rows: list[tuple[int, str, str, str]]) -> None:
        if not rows:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", newline="")  # noqa: SIM115 - closed in close()
            csv.writer(self._file).writerow(["line", "column", "value", "reason"])
        csv.writer(self._file).writerows(rows)
        self.count += len(rows)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Fitter:
    def __init__(self, table: list[Column], wire: pl.Schema, dates: Mapping[str, pl.DataType],
                 skip_bad: bool, *, server_zone: str, header_lines: int = 1,
                 lines: Callable[[list[int]], list[int]] | None = None,
                 refused: Callable[[str, list[str]], set[str]] | None = None) -> None:
        """``dates``: the file's columns inference found dates (Reader.date_types), text on the
        wire that ClickHouse parses; their polars type says which table columns hold them as is.
        ``refused``: which text values ClickHouse refuses for a type (Target.refused_values), to
        skip a row whose address or UUID it would refuse rather than lose the whole insert."""
        self.skip_bad = skip_bad
        self.refused = refused
        self.header_lines = header_lines
        self.lines = lines  # data records (0-based) to the lines they start on (Reader.record_lines)
        self.casts: dict[str, pl.DataType] = {}
        self.not_null: list[str] = []
        self.dates: dict[str, tuple[_DateForm, str]] = {}  # date text, a date in the table: (form, zone)
        self.before: dict[str, str] = {}  # date columns that need no check when every text sorts before this
        self.zones: dict[str, str] = {}  # naive timestamps sent as the instants they name in this zone
        self.ranges: dict[str, _Reach] = {}  # timestamps or dates into a date column
        self.times: dict[str, tuple[str, str]] = {}  # text into a Time column: (its layout's pattern, the type)
        self.spans: dict[str, _Span] = {}  # numbers into a date column: the counts it holds as written
        self.labels: dict[str, str] = {}  # what a cast's refusal names, where not the type cast to
        self.asked: dict[str, str] = {}  # text ClickHouse parses its own way: which values it refuses, asked
        self.enums: dict[str, tuple[frozenset[str], str]] = {}  # text into an Enum column: (its names, its type)
        for col in table:
            if col.name in wire:
                self._plan(col, wire[col.name], dates, server_zone)

    def _plan(self, col: Column, wire: pl.DataType, dates: Mapping[str, pl.DataType], server_zone: str) -> None:
        """What to check or convert in ``col`` before a batch is sent."""
        want = polars_type(col.type)
        kind = base_type(col.type)
        if wire == pl.Binary and want == pl.String:
            want = None  # a ClickHouse String holds any bytes: nothing to cast (nor to decode)
        span = _number_span(kind, wire)
        if span is not None:
            self.spans[col.name] = span
            self.labels[col.name] = f"{span.kind} ({span.unit})"
            want = span.send(wire)
        if want is None:
            want = _number_as(kind, wire)
        if want is not None and wire != want and col.name not in dates:
            self.casts[col.name] = want
        if (wire if want is None else want) == pl.String:  # (text on the wire, or numbers sent as text)
            self._plan_text(col, dates.get(col.name), server_zone, cast=want is not None)
        zone = column_zone(col.type, server_zone) if want is None and has_naive(wire) else None
        if zone is not None:
            self.zones[col.name] = zone
        reach = _reach(kind, wire) if want is None else None
        if reach is not None:
            self.ranges[col.name] = reach
        if not col.nullable and not kind.startswith(("Array(", "Map(")):
            self.not_null.append(col.name)  # (a missing list or map loads as [] or {})

    def _plan_text(self, col: Column, inferred: pl.DataType | None, server_zone: str, cast: bool) -> None:
        """Text sent to ``col`` (``cast``: numbers sent as text): an address or UUID ClickHouse
        would refuse is asked of it (under skip); text into a Time or date column is checked, the
        latter unless inference let in only what the column holds."""
        kind = base_type(col.type)
        if self.refused is not None and kind in _ASKED:
            self.asked[col.name] = kind
        if cast:
            return
        names = enum_names(kind)
        if names is not None:
            self.enums[col.name] = (names, kind)
        time = _time_pattern(kind)
        if time is not None:
            self.times[col.name] = (time, kind)
        form = _date_form(kind)
        if form is None or _holds(kind, inferred):
            return
        self.dates[col.name] = (form, column_zone(col.type, server_zone) or "UTC")
        if isinstance(inferred, pl.Datetime) and form.kind == "DateTime64(9)":
            self.before[col.name] = "2262-04-11"  # (inference's layout and digits fit: only its reach)

    @property
    def idle(self) -> bool:
        return (not self.casts and not self.not_null and not self.dates and not self.zones and not self.ranges
                and not self.times and not self.spans and not self.asked and not self.enums)

    def fit(self, df: pl.DataFrame, first_row: int
            ) -> tuple[pl.DataFrame, list[tuple[int, str, str, str]], np.ndarray | None]:
        """(the batch with bad rows removed, the rejects, positions of the rows kept or None when
        all are); raises InputError unless skipping."""
        if self.idle:
            return df, [], None
        found: list[tuple[str, pl.Series, str]] = []  # (column, rows, why)
        out = self._placed(df, self._cast_all(df, found), found)
        self._check_reach(df, out, found)
        out, epochs = self._epoch_text(df, out, found)
        self._check_dates(df, found, epochs)
        for name, span in self.spans.items():
            found.append((name, span.beyond(df[name]), f"outside what a {span.kind} holds ({span.reach})"))
        for name, (pattern, kind) in self.times.items():  # ClickHouse reads 10:60:00 as 11:00:00, 10:00 as 00:10:00
            found.append((name, (~df[name].str.contains(pattern)).fill_null(False),
                          f"not a valid {kind} (hh:mm:ss, minutes and seconds below 60)"))
        found += [(name, df[name].is_null(), "empty value in a column that is not Nullable") for name in self.not_null]
        found += self._ask(out)
        bad = pl.Series("bad", [False] * df.height)
        rejects: list[tuple[int, str, str, str]] = []
        for name, rows, why in found:
            if rows.any():
                rejects += self._describe(df, name, rows, first_row, why)
                bad = bad | rows
        if not rejects:
            return out, [], None
        if not self.skip_bad:
            line, column, value, reason = min(rejects)
            raise InputError(f"column {column!r}: {value!r} at line {line}: {reason}", line=line, column=column)
        return out.filter(~bad), sorted(rejects), (~bad).arg_true().to_numpy()

    def _ask(self, out: pl.DataFrame) -> list[tuple[str, pl.Series, str]]:
        """The rows whose text (as sent) an Enum column does not name (ClickHouse reads ``1``,
        ``01`` or ``+1`` as the element whose number it is: not the text the file wrote), and
        those ClickHouse would refuse for an IPv4, IPv6 or UUID column: asked of ClickHouse
        itself (distinct values, one query per 10,000), as its parse has its own rules (``1:::2``
        is an IPv6, ``010.0.0.1`` no IPv4)."""
        assert self.refused is not None or not self.asked
        found = [(name, ~out[name].is_in(sorted(names)) & out[name].is_not_null(), f"not an element of {kind}")
                 for name, (names, kind) in self.enums.items()]
        for name, kind in self.asked.items():
            text = out[name]
            values = text.drop_nulls().unique()
            nul = values.str.contains("\x00", literal=True) | (values.str.len_bytes() > 1024)  # (no address
            # or UUID holds a NUL or is that long: refused without asking, and no query carries them)
            bad = set(values.filter(nul).to_list())
            if self.refused is not None and not nul.all():
                bad |= self.refused(kind, values.filter(~nul).to_list())
            if bad:
                found.append((name, text.is_in(sorted(bad)).fill_null(False), f"not a valid {kind}"))
        return found

    def _cast_all(self, df: pl.DataFrame, found: list[tuple[str, pl.Series, str]]) -> pl.DataFrame:
        out = df
        for name, want in self.casts.items():
            cast = _cast(df[name], want)
            wrong = cast.is_null() & df[name].is_not_null()
            if df[name].dtype.is_float() and want.is_integer():
                wrong = wrong | (cast.cast(pl.Float64) != df[name]).fill_null(False)  # 1.5 is not an integer
            label = self.labels.get(name, str(want))
            found.append((name, wrong, f"not a valid {label}"))
            # '01234' casts to 1234: the table would not say what the file said
            found.append((name, _altered(df[name], cast, want) & ~wrong, f"{label} would not keep it as written"))
            out = out.with_columns(cast.alias(name))
        return out

    def _placed(self, df: pl.DataFrame, out: pl.DataFrame, found: list[tuple[str, pl.Series, str]]) -> pl.DataFrame:
        if not self.zones:
            return out
        far = {name: (latest_year(df[name]) or 0) >= RULES_END for name in self.zones}
        out = out.with_columns(as_instants(pl.col(name), df[name].dtype, zone, far[name]).alias(name)
                               for name, zone in self.zones.items())
        for name, zone in self.zones.items():  # wrapped or NULL on the way: name it, never send it
            found.append((name, misplaced(df[name], out[name], zone, far[name]),
                          f"its wall clock names no instant in {zone} that the column's timestamp can hold "
                          "(a route column type DateTime64(6, 'UTC') keeps it as written)"))
        return out

    def _check_reach(self, df: pl.DataFrame, out: pl.DataFrame, found: list[tuple[str, pl.Series, str]]) -> None:
        for name, reach in self.ranges.items():
            count = out[name].to_physical()  # (after the zone's shift: the instant that is sent)
            wrong = pl.Series(name, [False] * df.height)
            if reach.low is not None and reach.high is not None:
                wrong = ((count < reach.low) | (count > reach.high)).fill_null(False)
                found.append((name, wrong, f"outside what a {reach.kind} holds"))
            if reach.step > 1:
                found.append((name, ((df[name].to_physical() % reach.step) != 0).fill_null(False) & ~wrong,
                              f"finer than a {reach.kind} keeps ({reach.unit})"))

    def _epoch_text(self, df: pl.DataFrame, out: pl.DataFrame, found: list[tuple[str, pl.Series, str]]
                    ) -> tuple[pl.DataFrame, dict[str, pl.Series]]:
        """Text of epoch seconds into a DateTime or DateTime64 column: with 16+ digits
        (1700000000.123456) they stay text in inference (no double holds them), and ClickHouse's
        text parse cuts decimals past the column's scale. Checked as numbers are (_Span); a batch of
        nothing but epochs is sent as the decimal they write, one mixing them with date text as
        text (the epochs cut to the digits they hold, which ClickHouse reads exactly): the same
        values load however the file splits into batches. Returns which rows are epochs."""
        epochs: dict[str, pl.Series] = {}
        for name, (form, _zone) in self.dates.items():
            text = df[name]
            if form.date_only or text.null_count() == len(text):
                continue
            is_epoch = text.str.contains(_EPOCH_TEXT).fill_null(False)
            if not is_epoch.any():
                continue
            span = _number_span(form.kind, pl.Decimal(38, 9))
            assert span is not None  # (a DateTime or DateTime64 form)
            want = pl.Decimal(38, span.digits)  # (1700000000.000000 is a whole second: as a decimal first)
            cast = _cast(text, want)
            wrong = cast.is_null() & is_epoch
            label = f"{span.kind} ({span.unit})"
            found.append((name, wrong, f"not a valid {label}"))
            found.append((name, _altered(text, cast, want) & is_epoch & ~wrong,
                          f"{label} would not keep it as written"))
            found.append((name, span.beyond(cast).fill_null(False) & is_epoch & ~wrong,
                          f"outside what a {span.kind} holds ({span.reach})"))
            if not span.digits:  # (ClickHouse converts no decimal into a DateTime: code 44)
                cast = cast.cast(pl.Int64, strict=False)
            if (is_epoch | text.is_null()).all():
                out = out.with_columns(cast.alias(name))
            else:  # (date text beside them: the column goes as text)
                out = out.with_columns(pl.select(pl.when(is_epoch).then(cast.cast(pl.String)).otherwise(text)
                                                 .alias(name)).to_series())
            epochs[name] = is_epoch
        return out, epochs

    def _check_dates(self, df: pl.DataFrame, found: list[tuple[str, pl.Series, str]],
                     epochs: dict[str, pl.Series]) -> None:
        for name, (form, zone) in self.dates.items():
            text = df[name]
            if name in epochs:  # (checked as the numbers they are, _epoch_text)
                if epochs[name].all():
                    continue
                text = pl.select(pl.when(epochs[name]).then(None).otherwise(text).alias(name)).to_series()
            if name in self.before and str(text.max() or "") < self.before[name]:
                continue  # (ISO text sorts as its instants do: one pass, not a parse of every value)
            try:  # (polars reads 9 digits)
                parsed = text.str.replace(r"[ T]00:00:00(?:\.0+)?$", "").str.to_date(
                    strict=False) if form.date_only else text.str.replace(
                    r"(\.[0-9]{9})[0-9]+$", "${1}").str.to_datetime(strict=False, time_unit="us")
            except pl.exceptions.ComputeError:  # no value is a date: polars finds no layout to read them with
                parsed = pl.Series(name, [None] * len(text), pl.Date if form.date_only else pl.Datetime("us"))
            wrong = (parsed.is_null() | ~text.str.contains(form.pattern)) & text.is_not_null()
            found.append((name, wrong, f"not a valid {form.kind} ({form.layout})"))
            # ClickHouse would clamp it (or NULL it, or fail the insert)
            found.append((name, _beyond(form, parsed, zone) & ~wrong, f"outside what a {form.kind} holds"
                          + (f" in {zone}" if zone != "UTC" and not form.date_only else "") + f" ({form.reach})"))

    def _describe(self, df: pl.DataFrame, name: str, mask: pl.Series, first_row: int,
                  reason: str) -> list[tuple[int, str, str, str]]:
        idx = mask.arg_true()
        picked = df[name].gather(idx)
        values = (picked.cast(pl.String, strict=False).fill_null("") if not picked.dtype.is_nested()
                  else pl.Series([json.dumps(v, default=str) for v in picked.to_list()]))  # (few rows)
        records = [first_row + int(i) for i in idx.to_list()]
        lines = self.lines(records) if self.lines else [r + 1 + self.header_lines for r in records]
        return [(line, name, str(v), reason) for line, v in zip(lines, values.to_list(), strict=True)]


@dataclass(frozen=True)
class _DateForm:
    """Date text ClickHouse reads exactly into a column of ``kind``. It reads a text column into a
    date one itself, and where its own parse fails or cuts (``23:30`` without seconds, a fraction
    into ``DateTime``, a 9th decimal into ``DateTime64(6)``) a Nullable column gets NULL or a
    shortened value: the Fitter names such a value first (docs/ARCHITECTURE.md#naive-timestamps)."""

    kind: str
    layout: str
    pattern: str
    date_only: bool = False
    # The instants (microseconds from the epoch, UTC) the column's storage counts, where ClickHouse
    # clamps (Date, DateTime), NULLs or fails the insert (DateTime64(9)) past them. Date32 and
    # DateTime64(P < 9) reach differs by server version (26.9 keeps 1899 and 9999): not checked.
    low: int | None = None
    high: int | None = None
    reach: str = ""


_DAY = r"^[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}"
_TIME = r"[ T][0-9]{2}:[0-9]{2}:[0-5][0-9]"  # (a leap second, :60, lands as the next minute)
_NS = 9_223_372_036_854_775  # a DateTime64(9) counts nanoseconds in an Int64: +-2^63 ns, in whole microseconds
_DAY_US = 86_400_000_000
# What a Date (UInt16 days) and a DateTime (UInt32 seconds) count from 1970: text and timestamps alike.
_DATE_DAYS = 65535
_DATETIME_SECONDS = (1 << 32) - 1


def _is_datetime(kind: str) -> bool:
    """``DateTime`` or ``DateTime('zone')`` (seconds in a UInt32), not ``DateTime64``."""
    return kind == "DateTime" or kind.startswith("DateTime(")


def _scale64(kind: str) -> int | None:
    """The decimals of a ``DateTime64(P[, zone])``; None for any other type."""
    scale = re.match(r"DateTime64\(\s*([0-9])", kind)
    return int(scale[1]) if scale else None


def _date_form(kind: str) -> _DateForm | None:
    if kind in ("Date", "Date32"):  # (ClickHouse reads a one-digit month or day as written: 2026-7-1)
        date = _DateForm(kind, "YYYY-MM-DD, or at midnight", r"^[0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2}"
                         r"(?:[ T]00:00:00(?:\.0+)?)?$", date_only=True)  # (a midnight loses nothing)
        if kind == "Date32":
            return date
        return replace(date, low=0, high=_DATE_DAYS * _DAY_US, reach="1970-01-01 to 2149-06-06")
    if _is_datetime(kind):
        return _DateForm("DateTime", "YYYY-MM-DD hh:mm:ss, whole seconds", _DAY + f"(?:{_TIME})?$",
                         low=0, high=_DATETIME_SECONDS * 1_000_000,
                         reach="1970-01-01 00:00:00 to 2106-02-07 06:28:15 UTC")
    digits = _scale64(kind)
    if digits is None:
        return None
    # Zeros past the scale lose nothing (ClickHouse drops them): 10:20:30.500 into DateTime64(1).
    fraction = rf"(?:\.[0-9]{{1,{digits}}}0*)?" if digits else r"(?:\.0+)?"
    form = _DateForm(f"DateTime64({digits})", f"YYYY-MM-DD hh:mm:ss, at most {digits} decimals",
                     _DAY + rf"(?:{_TIME}{fraction})?$")
    return replace(form, low=-_NS, high=_NS, reach="1677-09-21 00:12:43.145225 to 2262-04-11 23:47:16.854775 UTC"
                   ) if digits == 9 else form


def _holds(kind: str, inferred: pl.DataType | None) -> bool:
    """Does a column of ``kind`` hold every value inference lets into ``inferred`` as written (ISO
    layout, years 1900-2299, a fraction of up to 6 digits for microseconds)? Then nothing is checked."""
    digits = _scale64(kind)
    if inferred == pl.Date:
        return kind == "Date32" or (digits is not None and digits < 9)
    if isinstance(inferred, pl.Datetime) and inferred.time_unit == "us":
        return digits is not None and 6 <= digits < 9
    return False


def _beyond(form: _DateForm, parsed: pl.Series, zone: str) -> pl.Series:
    """Parsed values past what the column counts, their wall clock read in ``zone``. (A wall clock
    in a spring-forward gap is not one: ClickHouse moves it past the gap, as documented in
    docs/ARCHITECTURE.md#naive-timestamps.)"""
    if form.low is None or form.high is None:  # (a year 0000 lands as 1970 in a DateTime64; 0001-9999 as written)
        return (parsed.dt.year() == 0).fill_null(False) if not form.date_only else pl.Series(
            parsed.name, [False] * len(parsed))
    if form.date_only:
        micros = parsed.cast(pl.Int64) * _DAY_US
    else:
        micros = parsed.dt.replace_time_zone(zone, non_existent="null", ambiguous="earliest").dt.epoch("us")
    return ((micros < form.low) | (micros > form.high)).fill_null(False)


_INT64 = (1 << 63) - 1
# Types whose text ClickHouse parses by rules of its own, checked by asking it (Fitter._ask). (An
# Enum is not: accurateCastOrNull fails on an unknown element instead of giving NULL; its names
# are in its type.)
_ASKED = ("IPv4", "IPv6", "UUID")
_ENUM_ITEM = r"'((?:[^'\\]|\\.)*)'\s*=\s*-?[0-9]+"
_ENUM = re.compile(rf"Enum(?:8|16)\(\s*{_ENUM_ITEM}(?:\s*,\s*{_ENUM_ITEM})*\s*\)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f", "a": "\a", "v": "\v"}


def enum_names(kind: str) -> frozenset[str] | None:
    """The element names of an ``Enum8``/``Enum16`` type as ClickHouse writes it (``'it\\'s' = 2``);
    None for any other type, or one not written that way (ClickHouse then judges the text)."""
    if not kind.startswith("Enum") or _ENUM.fullmatch(kind) is None:
        return None
    raw = re.findall(_ENUM_ITEM, kind)
    if any("\\x" in name for name in raw):
        return None  # (a hex escape: not decoded here)
    return frozenset(re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), name) for name in raw)


def _number_as(kind: str, wire: pl.DataType) -> pl.DataType | None:
    """What a number bound for a column polars has no type for is checked and sent as, if anything."""
    if kind in ("UUID", "IPv4", "IPv6") and wire.is_numeric():
        # As a number ClickHouse refuses it as NOT_IMPLEMENTED (retried) or reads 1234 as 0.0.4.210; as
        # text it refuses it as its own CSV ingestion does, naming the value.
        return pl.String()
    if kind in _WIDE_INTS and isinstance(wire, pl.Decimal):
        return pl.Decimal(38, 0) if wire.scale else None  # (ClickHouse cuts 1.50 to 1; a whole one converts exactly)
    if kind in _WIDE_INTS and (wire.is_float() or (wire.is_signed_integer() and kind[0] == "U")):
        return _WIDE_INTS[kind]  # (checked as the 64-bit integer it must be: see _WIDE_INTS)
    return None


@dataclass(frozen=True)
class _Span:
    """A number into a date column counts seconds (days for Date, Date32) from 1970, as ClickHouse
    converts it, but only within the column's reach: past it ClickHouse clamps (1e30 into DateTime64
    is 9999-12-31), reads another unit (65536 into a Date is a second), and it cuts a double's
    decimals by their binary value (1.001 into DateTime64(3) is .000). Such numbers are refused; the
    others are sent as integers or as decimals of the column's scale, which convert exactly."""

    kind: str
    low: float
    high: float  # (the last count the column's decimals can say: 253402300799.999 for DateTime64(3))
    digits: int  # decimals the column keeps
    unit: str
    reach: str
    # The exact bounds where doubles are not (DateTime64(9)'s 9223372036.854775807 is ...776 as a
    # double, so .854775808 passed and ClickHouse failed the insert on an overflow): for decimals.
    exact: tuple[Decimal, Decimal] | None = None

    def send(self, wire: pl.DataType) -> pl.DataType | None:
        if not self.digits and (isinstance(wire, pl.Decimal) or wire.is_float()):
            return pl.Int64()  # (ClickHouse converts no decimal into a Date or DateTime: code 44)
        if isinstance(wire, pl.Decimal):
            return pl.Decimal(38, self.digits) if wire.scale > self.digits else None
        return pl.Decimal(38, self.digits) if wire.is_float() else None

    def beyond(self, values: pl.Series) -> pl.Series:
        # As doubles: polars refuses to compare an Int8 with 65535 or a UInt64 with a negative bound.
        # (The bounds and the counts near them are exact as doubles.)
        if self.exact is not None and isinstance(values.dtype, pl.Decimal):
            return ((values < self.exact[0]) | (values > self.exact[1])).fill_null(False)
        wide = values.cast(pl.Float64)
        return ((wide < self.low) | (wide > self.high) | wide.is_nan()).fill_null(False)


_YEAR_0, _YEAR_10000 = -62_167_219_200, 253_402_300_800  # seconds from 1970 of 0000-01-01 and 10000-01-01


def _number_span(kind: str, wire: pl.DataType) -> _Span | None:
    if not wire.is_numeric():
        return None
    if kind == "Date":
        return _Span(kind, 0, _DATE_DAYS, 0, "whole days from 1970-01-01", "0 to 65535 days")
    if kind == "Date32":
        return _Span(kind, _YEAR_0 // 86400, _YEAR_10000 // 86400 - 1, 0, "whole days from 1970-01-01",
                     "0000-01-01 to 9999-12-31")
    if _is_datetime(kind):
        return _Span("DateTime", 0, _DATETIME_SECONDS, 0, "whole seconds from 1970-01-01 UTC",
                     "0 to 4294967295 seconds")
    digits = _scale64(kind)
    if digits is None:
        return None
    unit = f"seconds from 1970-01-01 UTC, at most {digits} decimals" if digits else "whole seconds from 1970-01-01 UTC"
    if digits == 9:  # (nanoseconds in an Int64: +-2^63 ns, in whole microseconds as _NS)
        return _Span("DateTime64(9)", -_NS / 1e6, _NS / 1e6, 9, unit, "1677-09-21 to 2262-04-11 UTC",
                     (Decimal(-_INT64 - 1).scaleb(-9), Decimal(_INT64).scaleb(-9)))
    return _Span(f"DateTime64({digits})", _YEAR_0, _YEAR_10000 - 10.0**-digits, digits, unit,
                 "0000-01-01 to 9999-12-31 UTC", (Decimal(_YEAR_0), Decimal(_YEAR_10000) - Decimal(1).scaleb(-digits)))


def _time_pattern(kind: str) -> str | None:
    """The text a ``Time`` or ``Time64(P)`` column keeps as written (None for other types): ClickHouse
    carries minutes or seconds past 59 over, reads ``10:00`` as ten seconds past zero, cuts digits past P."""
    if kind == "Time":
        fraction = ""
    elif (scale := re.fullmatch(r"Time64\(\s*([0-9])\s*\)", kind)) is not None:
        fraction = rf"(?:\.[0-9]{{1,{scale[1]}}}0*)?" if int(scale[1]) else r"(?:\.0+)?"
    else:
        return None
    return rf"^-?[0-9]{{1,3}}:[0-5][0-9]:[0-5][0-9]{fraction}$"


@dataclass(frozen=True)
class _Reach:
    """What a date column holds of a timestamp or date batch, in the wire's own counts (its unit,
    or days): ClickHouse clamps a Date or DateTime past its range, fails the whole insert with
    DECIMAL_OVERFLOW past a DateTime64's Int64 (a microsecond value of 2299 into DateTime64(9)),
    and cuts what is finer than the column (10:20:30.5 into DateTime, a time of day into Date)."""

    kind: str
    low: int | None  # of the instant sent (after a zone's shift)
    high: int | None
    step: int  # of the value as written: a multiple of it keeps every digit
    unit: str


def _reach(kind: str, wire: pl.DataType) -> _Reach | None:
    if not isinstance(wire, pl.Datetime | pl.Date):
        return None
    # counts of the wire per second (0: a date's, in days)
    per_second = 10 ** {"ms": 3, "us": 6, "ns": 9}[wire.time_unit] if isinstance(wire, pl.Datetime) else 0
    if kind in ("Date", "Date32"):
        day = 86400 * per_second or 1
        low, high = (0, _DATE_DAYS * day) if kind == "Date" else (None, None)
        return _Reach(kind, low, high, day, "whole days") if (low is not None or day > 1) else None
    if _is_datetime(kind):
        top = _DATETIME_SECONDS * per_second if per_second else _DATETIME_SECONDS // 86400
        return _Reach("DateTime", 0, top, per_second or 1, "whole seconds")
    digits = _scale64(kind)
    return _reach64(digits, per_second) if digits is not None else None


def _reach64(digits: int, per_second: int) -> _Reach | None:
    """A DateTime64(digits): its Int64 overflows when the wire's counts are multiplied up."""
    factor = 86400 * 10 ** digits if not per_second else max(1, 10 ** digits // per_second)
    step = max(1, per_second // 10 ** digits) if per_second else 1
    if factor == 1 and step == 1:
        return None
    low, high = (-(_INT64 // factor), _INT64 // factor) if factor > 1 else (None, None)
    return _Reach(f"DateTime64({digits})", low, high, step, f"{digits} decimals of a second" if digits else
                  "whole seconds")


# ClickHouse converts a double into a 128/256-bit integer inexactly (1e20 -> ...003, 1.5 -> 1, past
# its range any number) and a negative one into an unsigned one by wrapping: such numbers are checked
# as the 64-bit integer they must then be, whose conversion is exact.
_WIDE_INTS: dict[str, pl.DataType] = {"Int128": pl.Int64(), "Int256": pl.Int64(), "UInt128": pl.UInt64(),
                                      "UInt256": pl.UInt64()}
_INT_TEXT = r"(?-u)^-?(0|[1-9][0-9]*)$"  # "-0" is 0, as in inference
# Ten digits, as ClickHouse's own text parse takes a timestamp (it reads 5 as a day of this month,
# 2020 as a year, 20240101 not at all): 2001-09-09 to 2286-11-20, and a fraction.
_EPOCH_TEXT = r"(?-u)^[1-9][0-9]{9}(\.[0-9]+)?$"
_FLOAT_TEXT = r"(?-u)^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$|^-?inf$"


def _altered(values: pl.Series, cast: pl.Series, want: pl.DataType) -> pl.Series:
    """Values that cast but not losslessly: text with leading zeros, a '+' or spaces (the same
    rule as inference, core/formats/infer.py), digits beyond a decimal's scale."""
    if isinstance(want, pl.Decimal) and values.dtype.is_float():  # (back to the file's own width: a
        return (cast.cast(values.dtype) != values).fill_null(False)  # Float32 1.001 is 1.00100004673 as a double)
    if isinstance(want, pl.Decimal) and values.dtype == pl.String:
        return (_plain(cast.cast(pl.String)) != _plain(values)).fill_null(False)
    if values.dtype != pl.String and (want.is_numeric() or want == pl.Boolean):
        return _unkept(values, cast)
    if values.dtype != pl.String or not (want.is_integer() or want.is_float()):
        return pl.Series(values.name, [False] * len(values))
    if want.is_float():
        return _float_text_altered(values, cast)
    return (~values.str.contains(_INT_TEXT)).fill_null(False)


def _float_text_altered(values: pl.Series, cast: pl.Series) -> pl.Series:
    """Text into a float column: a number's text within a double's range (1e400 was stored as inf,
    1e-400 as 0); a subnormal only as the double prints it back (it holds fewer digits:
    1.234567e-320 was stored as 1.2347e-320); into Float32, a double whose shortest text Float32
    prints back (as :func:`_unkept`). Digits past 15 of a normal double still load as the nearest
    double (a float column's own rounding: 0.30000000000000004, Python's text of a double, is that double)."""
    v = pl.col(values.name)
    x = v.cast(pl.Float64, strict=False)
    named_inf = v.str.contains(r"(?-u)^-?inf$")
    subnormal = (x != 0) & (x.abs() < SMALLEST_NORMAL)
    bad = values.to_frame().select(~v.str.contains(_FLOAT_TEXT) | (~x.is_finite() & ~named_inf)
                                   | ((x == 0) & (digits(v) > 0))
                                   | (subnormal & (mantissa(v) != mantissa(x.cast(pl.String))))).to_series()
    if cast.dtype == pl.Float32:
        bad = bad | _unkept(values.cast(pl.Float64, strict=False), cast)
    return bad.fill_null(False)


def _unkept(values: pl.Series, cast: pl.Series) -> pl.Series:
    """Numbers that cast into a table's other type but not as the same number: 2^53+1 into
    Float64, 2 into Bool, 1.2345 into a scale of 2. A double into Float32 keeps its value when
    both print the same shortest text (0.1 does, 16777217 does not); anything else must cast back
    to itself (a NaN equals itself here)."""
    if cast.dtype == pl.Float32 and values.dtype == pl.Float64:
        back_text, text = cast.cast(pl.String), values.cast(pl.String)
        return (back_text != text).fill_null(False)
    back = _cast(cast, values.dtype)
    return ((back != values) | back.is_null()).fill_null(False) & cast.is_not_null()


def _plain(text: pl.Series) -> pl.Series:
    """A decimal's text without trailing fraction zeros: '1.50' and '1.5000' compare equal."""
    frac = text.str.contains(".", literal=True)
    trimmed = text.str.replace(r"0+$", "").str.replace(r"\.$", "")
    return pl.select(pl.when(frac).then(trimmed).otherwise(text)).to_series()


def _cast(values: pl.Series, want: pl.DataType) -> pl.Series:
    """``values`` as ``want``; a value that does not convert becomes NULL (and is then reported).
    Text to Bool takes the spellings inference takes; a conversion polars has no rule for
    converts nothing (every value is reported), never an unexpected error."""
    if want == pl.Boolean and values.dtype == pl.String:
        low = values.str.to_lowercase()
        return (pl.select(pl.when(low == "true").then(True).when(low == "false").then(False).otherwise(None)
                          .alias(values.name)).to_series())
    if isinstance(want, pl.Decimal) and values.dtype.is_float():
        values = values.cast(pl.String)  # the shortest text of the double, not its binary expansion
    try:
        return values.cast(want, strict=False)
    except pl.exceptions.PolarsError:
        return pl.Series(values.name, [None] * len(values), dtype=want)
