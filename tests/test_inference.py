"""Whole-file inference (core/formats/infer.py) against a plain-Python statement of its rules.

The one-pass check runs a cheap pattern on every value and the exact checks only on the values
that fail it; these tests pin that it decides exactly what the rules in the README say, value by
value, for awkward values the fast patterns are meant to send down the exact path (19-digit
integers, exponents, long decimals, Feb 29, null tokens that look like numbers). No engine.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chute.core.formats.infer import (
    DEFAULT_NULL_VALUES,
    KINDS,
    _exact,
    _fast,
    sample_kinds,
    small_file,
    to_wire,
    whole_file,
    whole_frame,
)
from chute.core.reader import Reader, open_source, reader_for

BOOLS = ("true", "false", "True", "False", "TRUE", "FALSE")
_D = r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
_T = r"[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"


def _calendar(y: str, m: str, d: str) -> bool:
    try:
        dt.date(int(y), int(m), int(d))
    except ValueError:
        return False
    return 1900 <= int(y) <= 2299


def _clock(h: str, mi: str, s: str) -> bool:
    return int(h) < 24 and int(mi) < 60 and int(s) < 60


def lossless(kind: str, v: str) -> bool:
    """The README's rule for one value, in plain Python."""
    if kind == "int":
        return re.fullmatch(r"-?(0|[1-9][0-9]*)", v) is not None and -(2**63) <= int(v) < 2**63
    if kind == "float":
        if v in ("inf", "-inf"):
            return True
        if re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?", v) is None:
            return False
        digits = re.sub(r"[eE].*$", "", v).replace("-", "").replace(".", "").strip("0")
        x = float(v)  # within a double's normal range: not inf, and not 0 or subnormal for a number that is not 0
        return len(digits) <= 15 and math.isfinite(x) and (not digits or abs(x) >= sys.float_info.min)
    if kind == "bool":
        return v in BOOLS
    if kind == "date":
        m = re.fullmatch(_D, v)
        return m is not None and _calendar(*m.groups())
    zone = r"(Z|[+-]([0-9]{2}):?([0-5][0-9]))" if kind == "datetime_tz" else ""
    m = re.fullmatch(_D + _T + zone, v)
    if m is None or not (_calendar(*m.groups()[:3]) and _clock(*m.groups()[3:6])):
        return False
    return kind == "datetime" or m.group(8) == "Z" or int(m.group(9)) <= 14


def expected_kind(values: list[str | None], tokens: tuple[str, ...]) -> str:
    present = [v for v in values if v is not None and v not in tokens]
    if not present:
        return "text"
    return next((k for k in KINDS if all(lossless(k, v) for v in present)), "text")


# Per family: values that are lossless, and awkward ones the fast patterns must send down the
# exact path (some lossless after all, most not).
AWKWARD = {
    "int": ["-0", "00", "-00", "+5", "007", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
            "-9223372036854775809", "123456789012345678", "1234567890123456789", "1 "],
    "float": ["1.50", "1e3", "1E3", "1e999", "-1e-999", "0.1234567890123456", "inf", "123456789012345",
              "1234567890123456", "1234567.12345678", "-inf", ".5", "5.", "0.000000000000001", "Infinity", "-0.0",
              "1e", "1_000", "+1.5", "01.5", "-12345678901234.5", "1.7976931348623157e+308",
              "1e-400", "4e-320", "2.2250738585072014e-308", "2.225073858507201e-308", "0e-999", "-0.0e-400"],
    "bool": ["True", "FALSE", "TRUE", "False", "yes", "1", "t"],
    "date": ["2024-02-29", "2023-02-29", "1900-02-29", "2000-02-29", "2100-02-29", "2026-04-31", "2026-06-30",
             "2026-13-01", "2026-00-10", "2026-1-5", "26-01-05", "2026-01-32", "1899-12-31", "2300-01-01"],
    "datetime": ["2026-03-29T02:30:00", "2026-03-29 02:30:00.1234567", "2026-01-01T24:00:00", "2026-01-01T23:60:00",
                 "2026-01-01T23:59:60", "2024-02-29 12:00:00", "2023-02-29 12:00:00", "2026-01-01T00:00:00.",
                 "2026-01-01T00:00", "2026-01-01T00:00:00.1234567890", "2026-01-01T00:00:00Z",
                 "2026-01-01T19:59:59", "2026-01-01T20:00:00"],
    "datetime_tz": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00+1500", "2026-01-01T00:00:00+0530",
                    "2026-01-01T00:00:00.123456789+02:00", "2026-01-01T00:00:00+02", "2023-02-29T00:00Z",
                    "2026-01-01T00:00:00-14:00", "2026-01-01T00:00:00+14:60", "2026-01-01T00:00:00+14:00"],
}
_FAMILIES = {
    "int": (st.integers(-(10**18), 10**18).map(str),
            st.one_of(st.integers(-(2**63), 2**63 - 1).map(str), st.integers(-(10**20), 10**20).map(str),
                      st.sampled_from(AWKWARD["int"]))),
    "float": (st.decimals(-(10**9), 10**9, places=3, allow_nan=False, allow_infinity=False).map(str),
              st.one_of(st.floats(allow_nan=False).map(repr),
                        st.sampled_from(AWKWARD["float"]))),
    "bool": (st.sampled_from(["true", "false"]), st.sampled_from(AWKWARD["bool"])),
    "date": (st.dates(dt.date(1900, 1, 1), dt.date(2299, 12, 31)).map(str),
             st.one_of(st.dates(dt.date(1800, 1, 1), dt.date(2400, 12, 31)).map(str),
                       st.sampled_from(AWKWARD["date"]))),
    "datetime": (st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2299, 12, 31)).map(
                     lambda d: d.isoformat(sep=" " if d.microsecond % 2 else "T")),
                 st.sampled_from(AWKWARD["datetime"])),
    "datetime_tz": (st.datetimes(dt.datetime(1900, 1, 2), dt.datetime(2299, 12, 30),
                                 timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=14)),
                                                            dt.timezone(dt.timedelta(hours=-9, minutes=-30))])
                                 ).map(dt.datetime.isoformat),
                    st.sampled_from(AWKWARD["datetime_tz"])),
}
_tokens = st.sampled_from([*DEFAULT_NULL_VALUES[1:], "-999"])
_any = st.one_of(st.none(), _tokens, st.text(max_size=6), *(a for a, _ in _FAMILIES.values()),
                 *(b for _, b in _FAMILIES.values()))


@st.composite
def columns(draw: st.DrawFn) -> tuple[list[str | None], int, tuple[str, ...]]:
    # One family's lossless values, NULLs and tokens; then at most two of the family's awkward
    # values and at most one stray of any kind, anywhere (a later value that disagrees with the
    # sample forces widening).
    valid, awkward = _FAMILIES[draw(st.sampled_from(sorted(_FAMILIES)))]
    values = draw(st.lists(st.one_of(valid, valid, valid, st.none(), _tokens), min_size=1, max_size=30))
    strays = draw(st.lists(_any, max_size=1)) if draw(st.integers(0, 3)) == 0 else []
    for extra in draw(st.lists(awkward, max_size=2)) + strays:
        values.insert(draw(st.integers(0, len(values))), extra)
    sample = draw(st.integers(1, len(values)))
    tokens = draw(st.sampled_from([DEFAULT_NULL_VALUES, (*DEFAULT_NULL_VALUES, "-999"), ()]))
    return values, sample, tokens


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(columns(), st.booleans())
def test_one_pass_decides_what_the_rules_say(column, streaming: bool) -> None:
    values, n, tokens = column
    frame = pl.DataFrame({"c": values}, schema={"c": pl.String})
    candidates = sample_kinds(frame.head(n), tokens)
    facts = whole_file(frame.lazy(), candidates, tokens, streaming=streaming)
    verdict = facts.verdicts["c"]
    want = expected_kind(values, tokens)
    assert verdict.kind == want, (values, candidates, verdict)
    assert facts.rows == len(values)
    seen = sorted({v for v in values if v in tokens}) if want != "text" else []
    assert verdict.tokens == seen
    assert facts.nulls["c"] == values.count(None) + (sum(v in tokens for v in values) if want != "text" else 0)
    if want in ("datetime", "datetime_tz"):
        fine = any(re.search(r"\.[0-9]{7}", v) for v in values if v is not None and v not in tokens)
        assert verdict.precision == ("ns" if fine else "us")


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(columns(), columns())
def test_small_file_path_decides_like_sample_then_whole_file(a, b) -> None:
    """A small file (parsed once, sample = whole file) takes small_file's cheap-tests-first route:
    every fact must equal the general route's (sample_kinds on all rows, then whole_file) and the
    rules, tokens, precision and reasons included."""
    (xs, _, tokens), (ys, _, _) = a, b
    n = max(len(xs), len(ys))
    frame = pl.DataFrame({"a": xs + [None] * (n - len(xs)), "b": ys + [None] * (n - len(ys))},
                         schema={"a": pl.String, "b": pl.String})
    want = whole_file(frame.lazy(), sample_kinds(frame, tokens), tokens, streaming=False)
    got, uniques = small_file(frame, tokens)
    assert got == want, (xs, ys, tokens)
    assert got.verdicts["a"].kind == expected_kind(frame["a"].to_list(), tokens)
    assert uniques == {c: frame[c].n_unique() for c in frame.columns}


_NUMBERISH = st.text(alphabet="+-0123456789 ._eEinfa\t\u0663\uff11", max_size=22)


@settings(max_examples=1000, deadline=None, database=None)
@given(st.lists(st.one_of(_NUMBERISH, st.integers(-(2**64), 2**64).map(str), _any), min_size=1, max_size=40))
def test_every_fast_test_implies_the_exact_checks(values: list[str | None]) -> None:
    """A value the cheap test passes skips the exact checks, so the cheap test must never pass a
    value they refuse. The integer one trusts polars' cast to accept only [+-]?[0-9]+ in range: a
    polars that casts more (spaces, other digits, underscores) fails here, not in a user's table."""
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    for kind in KINDS:
        wrong = frame.filter(_fast(kind, pl.col("v")).fill_null(False) & ~_exact(kind, pl.col("v")).fill_null(False))
        assert wrong.is_empty(), (kind, wrong["v"].to_list())
    for v in frame.filter(_fast("int", pl.col("v")).fill_null(False))["v"]:
        assert lossless("int", v), v


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(columns(), columns())
def test_a_frame_in_memory_decides_and_types_like_whole_file_then_to_wire(a, b) -> None:
    """whole_frame (the in-memory CSV path) reuses its casts as the batches' number columns: the
    same facts as whole_file, and the same typed values as to_wire makes from the text."""
    (xs, n, tokens), (ys, _, _) = a, b
    rows = max(len(xs), len(ys))
    frame = pl.DataFrame({"a": xs + [None] * (rows - len(xs)), "b": ys + [None] * (rows - len(ys))},
                         schema={"a": pl.String, "b": pl.String})
    candidates = sample_kinds(frame.head(n), tokens)
    want = whole_file(frame.lazy(), candidates, tokens, streaming=False)
    got, typed = whole_frame(frame, candidates, tokens)
    assert got == want, (xs, ys, tokens)
    assert typed.columns == frame.columns and typed.height == frame.height
    assert to_wire(typed, got.verdicts, tokens).equals(to_wire(frame, want.verdicts, tokens)), (xs, ys, tokens)


VALID = {"int": "12", "float": "1.25", "bool": "true", "date": "2026-01-02", "datetime": "2026-01-02T03:04:05",
         "datetime_tz": "2026-01-02T03:04:05+01:00"}


@pytest.mark.parametrize("family", sorted(AWKWARD))
def test_each_awkward_value_alone_and_after_the_sample(family: str) -> None:
    """Every listed awkward value, as the whole column and as a later value after a sample of
    lossless ones: the same verdict as the rules (deterministic, beside the random search)."""
    for value in AWKWARD[family]:
        for values, n in (([value], 1), ([VALID[family], value], 1), ([value, VALID[family]], 2)):
            frame = pl.DataFrame({"c": values})
            facts = whole_file(frame.lazy(), sample_kinds(frame.head(n), DEFAULT_NULL_VALUES), DEFAULT_NULL_VALUES,
                               streaming=False)
            assert facts.verdicts["c"].kind == expected_kind(values, DEFAULT_NULL_VALUES), values


def test_calendar_dates_exactly() -> None:
    """Every month/day pair of leap and common years at the range's edges: the one date pattern
    agrees with the calendar (Feb 29 in 2000 and 2024, never in 1900, 2100, 2200 or 2023)."""
    texts = [f"{y}-{m:02d}-{d:02d}" for y in (1899, 1900, 1996, 2000, 2023, 2024, 2100, 2200, 2299, 2300)
             for m in range(0, 14) for d in range(0, 33)]
    frame = pl.DataFrame({"c": texts})
    for text in texts:
        one = frame.filter(pl.col("c") == text)
        got = whole_file(one.lazy(), {"c": "date"}, (), streaming=False).verdicts["c"].kind
        assert (got == "date") == lossless("date", text), text


def _plan(tmp_path: Path, name: str, body: bytes, monkeypatch: pytest.MonkeyPatch | None = None,
          stream: bool = False) -> tuple[Reader, object, list[dict]]:
    path = tmp_path / name
    path.write_bytes(body)
    if stream and monkeypatch is not None:
        monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 0)
    src = open_source(path, None)
    reader = reader_for(src, "ndjson" if name.endswith(".ndjson") else "csv")
    plan = reader.plan()
    rows = [r for _, df in reader.batches(1000) for r in df.to_dicts()]
    src.close()
    return reader, plan, rows


def test_negative_zero_is_zero_in_an_integer_column(tmp_path: Path) -> None:
    """`-0` is the integer 0 (documented normalisation), in CSV as in NDJSON (whose parser reads
    the JSON number -0 as 0): the same Int64 table from either format, not Float64 from one."""
    _, plan, rows = _plan(tmp_path, "z.csv", b"id,n\n1,5\n2,-0\n3,7\n")
    assert plan.schema["n"] == pl.Int64, plan.schema
    assert [r["n"] for r in rows] == [5, 0, 7]
    _, jplan, jrows = _plan(tmp_path, "z.ndjson", b'{"id":1,"n":5}\n{"id":2,"n":-0}\n{"id":3,"n":7}\n')
    assert jplan.schema["n"] == plan.schema["n"]
    assert [r["n"] for r in jrows] == [5, 0, 7]
    # Not an integer's text: "-00", "-01" keep the column as text; "-0.0" is a float.
    _, plan, _ = _plan(tmp_path, "zz.csv", b"a,b\n-00,-0.0\n1,1.5\n")
    assert plan.schema["a"] == pl.String and plan.schema["b"] == pl.Float64


@pytest.mark.parametrize("stream", [False, True], ids=["in-memory", "streamed"])
def test_blank_lines_are_skipped_but_rows_of_empty_fields_are_rows(tmp_path: Path, monkeypatch, stream: bool) -> None:
    body = b'id,n\r\n1,5\r\n\r\n,\r\n"",""\r\n\n2,"a\n\nb"\n\n3,7\n\n'
    _, plan, rows = _plan(tmp_path, "b.csv", body, monkeypatch, stream)
    # ("" is a null token in the typed id column, text in n.)
    want = [(1, "5"), (None, None), (None, ""), (2, "a\n\nb"), (3, "7")]
    assert [(r["id"], r["n"]) for r in rows] == want
    assert plan.rows == 5 and plan.null_counts == {"id": 2, "n": 1}


def test_blank_lines_without_quoted_newlines(tmp_path: Path, monkeypatch) -> None:
    _, plan, rows = _plan(tmp_path, "b.csv", b"id,n\n1,5\n\n2,6\n,\n\n", monkeypatch, stream=True)
    assert [(r["id"], r["n"]) for r in rows] == [(1, 5), (2, 6), (None, None)]
    assert plan.rows == 3 and plan.schema["id"] == pl.Int64


def test_a_blank_line_of_a_one_column_file_is_an_empty_value(tmp_path: Path) -> None:
    """One column: a blank line is the record with an empty value (as polars writes a NULL and
    ClickHouse reads it), not skipped."""
    _, plan, rows = _plan(tmp_path, "one.csv", b"n\n1\n\n3\n")
    assert [r["n"] for r in rows] == [1, None, 3] and plan.rows == 3


def test_a_later_value_that_is_no_offset_date_time_makes_text_not_a_quarantine(tmp_path: Path) -> None:
    """Nothing is wider than an offset date-time: the widening pass had no kinds left to try and
    failed with polars' 'index 0 is out of bounds' (a quarantine) instead of keeping text."""
    body = b"t\n" + b"2000-01-01T00:00:00+00:00\n" * Reader.INFER_ROWS + b"0\n"  # after the sample
    _, plan, rows = _plan(tmp_path, "tz.csv", body)
    assert plan.schema["t"] == pl.String and rows[-1]["t"] == "0" and len(rows) == Reader.INFER_ROWS + 1


@pytest.mark.parametrize("where", ["in the sample", "after the sample"])
def test_a_parse_started_early_ends_with_the_plan_and_its_error_is_the_same(tmp_path: Path, where: str) -> None:
    """The whole file's text parse starts beside the sample's inference (its own thread): when the
    sample or the parse fails, the plan still says what is wrong with the line, as before, and no
    parse is left reading the file after the plan returns."""
    import threading

    from chute.core.errors import InputError

    good = b"".join(b"%d,%d,x\n" % (i, i) for i in range(120_000))  # > 1 MiB: the general path
    bad = b"1,2,3,4\n"
    body = b"a,b,c\n" + (bad + good if where == "in the sample" else good + bad)
    path = tmp_path / "r.csv"
    path.write_bytes(body)
    with open_source(path, None) as src, pytest.raises(InputError, match="ragged row at line") as err:
        reader_for(src, "csv").plan()
    assert err.value.line == (2 if where == "in the sample" else 120_002)
    assert not [t for t in threading.enumerate() if t.name == "chute-parse"]
