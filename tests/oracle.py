"""The round-trip oracle: generate awkward tables, write them as CSV/TSV/NDJSON/Parquet (plain, gz,
zst), load them with chute into the real engine, read them back and compare value by value.

Shared by tests/test_oracle.py (the `make test` profile) and the nightly/chaos profile
(``CHUTE_ORACLE_EXAMPLES``). A value passes when the loaded text is the source text, or one of
the normalisations the README lists (floats printed shortest, true/false, date-time layout).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from hypothesis import strategies as st

from chute.core.formats.infer import DEFAULT_NULL_VALUES

STYLES = ("int", "zip", "phone", "bigint", "float", "text", "bool", "date", "datetime", "datetime_tz",
          "mixed_dates", "thousands")
FORMATS = ("csv", "tsv", "ndjson", "parquet")
COMPRESSIONS = ("", ".gz", ".zst")

_awkward_text = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00\r"), max_size=12),
    st.sampled_from(["NA", "N/A", "null", "NULL", "a,b", 'say "hi"', "two\nlines", "  padded  ", "é✓😀", "'",
                     "NaN", "\\N", "#N/A", "-", "1,000", "TRUE", "00", "+", "1e5x"]),
)


def _value(style: str) -> st.SearchStrategy:
    if style == "int":
        return st.integers(-(2**63), 2**63 - 1)
    if style == "zip":
        return st.integers(0, 99999).map(lambda n: f"{n:05d}")
    if style == "phone":
        return st.integers(10**9, 10**10).map(lambda n: f"+44{n}")
    if style == "bigint":
        return st.integers(2**63, 10**30).map(str)
    if style == "float":
        return st.one_of(st.floats(-1e12, 1e12, allow_nan=False).map(lambda f: round(f, 4)),
                         st.sampled_from([0.0, -0.0, 1.5, 1e-5, 2.5e20, math.inf, -math.inf]))
    if style == "text":
        return _awkward_text
    if style == "bool":
        return st.booleans()
    if style == "date":
        return st.dates(date(1900, 1, 1), date(2299, 12, 31))
    if style == "datetime":
        return st.datetimes(datetime(1900, 1, 2), datetime(2299, 12, 30))
    if style == "datetime_tz":
        return st.datetimes(datetime(1900, 1, 2), datetime(2299, 12, 30),
                            timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)),
                                                       timezone(timedelta(hours=-5, minutes=-30))]))
    if style == "mixed_dates":
        return st.dates(date(1950, 1, 1), date(2050, 1, 1)).flatmap(
            lambda d: st.sampled_from([d.isoformat(), d.strftime("%d/%m/%Y")]))
    if style == "thousands":
        return st.integers(1000, 10**9).map(lambda n: f"{n:,}")
    raise ValueError(style)


@dataclass
class Case:
    columns: dict[str, str]  # name -> style
    rows: list[dict[str, object]]
    fmt: str
    compression: str


@st.composite
def cases(draw: st.DrawFn, formats: tuple[str, ...] = FORMATS) -> Case:
    styles = draw(st.lists(st.sampled_from(STYLES), min_size=1, max_size=4))
    columns = {f"c{i}_{s}": s for i, s in enumerate(styles)}
    n = draw(st.integers(1, 12))
    rows = []
    for _ in range(n):
        row: dict[str, object] = {}
        for name, style in columns.items():
            roll = draw(st.integers(0, 9))
            if roll == 0:
                row[name] = None
            elif roll == 1 and style != "text":
                row[name] = draw(st.sampled_from(DEFAULT_NULL_VALUES[1:]))  # a null token in a maybe-typed column
            else:
                row[name] = draw(_value(style))
        rows.append(row)
    return Case(columns, rows, draw(st.sampled_from(formats)), draw(st.sampled_from(COMPRESSIONS)))


def as_text(value: object) -> str | None:
    """How a value is written in a text format."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "inf" if value == math.inf else "-inf" if value == -math.inf else repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def encode(case: Case) -> bytes:
    names = list(case.columns)
    if case.fmt in ("csv", "tsv"):
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="," if case.fmt == "csv" else "\t", lineterminator="\n")
        writer.writerow(names)
        for row in case.rows:
            writer.writerow(["" if (t := as_text(row[n])) is None else t for n in names])
        body = buf.getvalue().encode()
    elif case.fmt == "ndjson":
        def js(v: object) -> object:
            if isinstance(v, float) and math.isinf(v):
                return as_text(v)  # JSON has no infinity
            return as_text(v) if isinstance(v, datetime | date) else v
        body = b"".join(json.dumps({n: js(r[n]) for n in names}).encode() + b"\n" for r in case.rows)
    else:
        arrays = {}
        for n, style in case.columns.items():
            values = [r[n] for r in case.rows]
            typed = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "date": pa.date32(),
                     "datetime": pa.timestamp("us"), "datetime_tz": pa.timestamp("us", "UTC")}.get(style)
            if typed is not None and all(v is None or not isinstance(v, str) for v in values):
                arrays[n] = pa.array(values, typed)
            else:
                arrays[n] = pa.array([as_text(v) for v in values], pa.string())
        out = io.BytesIO()
        pq.write_table(pa.table(arrays), out)
        body = out.getvalue()
    if case.compression == ".gz":
        return gzip.compress(body)
    if case.compression == ".zst":
        return zstandard.ZstdCompressor().compress(body)
    return body


_PLAIN_FLOAT = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?$")


def matches(source: object, loaded: str | None, ch_type: str, fmt: str = "csv") -> bool:
    """Did the value survive? ``loaded`` is ClickHouse's toString of it (None for NULL)."""
    text = as_text(source)
    base = ch_type.replace("LowCardinality(", "").replace("Nullable(", "").rstrip(")")
    if text is None:
        return loaded is None or (loaded == "" and base == "String")
    if base == "String" and fmt == "ndjson" and isinstance(source, int | float) and not isinstance(source, bool):
        # A JSON number in a text column: the text the file writes (encode() writes infinities as text).
        return loaded == (as_text(source) if isinstance(source, float) and math.isinf(source) else json.dumps(source))
    if base == "String":
        return loaded == text or (text == "" and loaded is None)
    if text in DEFAULT_NULL_VALUES:  # a token in a typed column is NULL
        return loaded is None
    if loaded is None:
        return False
    if base.startswith(("Int", "UInt")):
        if fmt == "ndjson" and isinstance(source, float):  # a JSON number is read by value: 2.0 is 2 (README)
            return float(loaded) == source
        return loaded == ("0" if text == "-0" else text)  # an integer has no negative zero (README)
    if base.startswith("Float"):
        if text in ("inf", "-inf"):
            return loaded == text
        return bool(_PLAIN_FLOAT.match(text)) and float(loaded) == float(text)
    if base == "Bool":
        return loaded == text.lower()
    if base.startswith("Date32"):
        return loaded == text
    if base.startswith("DateTime64"):
        if not re.match(r"^\d{4}-\d{2}-\d{2}[T ]", text):
            return False
        want = datetime.fromisoformat(text)
        got = datetime.fromisoformat(loaded)
        if want.tzinfo is not None:
            want = want.astimezone(UTC).replace(tzinfo=None)
        return got == want
    return loaded == text
