"""Numbers into an operator's date, address, wide-integer and float columns (issue 9's rule: no value
changes on the way in). Found by the last round's review, each seen loading changed before:
ClickHouse clamps a number past a date column's reach (1e30 into DateTime64(3) stored
9999-12-31 23:59:59.999), reads 65536 into a Date as a second, not a day, cuts a double's
decimals (1.001 into DateTime64(3) stored 00:00:01.000), reads 1234 into IPv4 as 0.0.4.210 (its own
CSV ingestion refuses it) and cuts a Parquet decimal 1.5 into Int128 to 1. Each case has a control of
the same shape that fits and must load as written."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chute.core.states import State
from tests.altered import into_operator_table, refused_beside_control
from tests.conftest import query


def _decimals(values: list[str], scale: int) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(len(values))),
                             "v": pa.array([Decimal(v) for v in values], pa.decimal128(20, scale))}), out)
    return out.getvalue()


# (column type, a number it would change, a number it holds, what that one loads as)
REFUSED = {
    "dt64_far": ("DateTime64(3)", "1e30", "1700000000", "2023-11-14 22:13:20.000"),
    "dt64_before_year_0": ("DateTime64(3)", "-5000000000000", "-62135596800", "0001-01-01 00:00:00.000"),
    "dt64_finer": ("DateTime64(3)", "1.0015", "1.5", "1970-01-01 00:00:01.500"),
    "dt64_9_far": ("DateTime64(9)", "10000000000", "-9000000000", "1684-10-19 08:00:00.000000000"),
    "datetime_far": ("DateTime", "99999999999", "4294967295", "2106-02-07 06:28:15"),
    "datetime_negative": ("DateTime", "-5", "0", "1970-01-01 00:00:00"),
    "datetime_finer": ("DateTime", "1.5", "2.0", "1970-01-01 00:00:02"),
    "date_read_as_seconds": ("Date", "100000", "65535", "2149-06-06"),
    "date_negative": ("Nullable(Date)", "-1", "20000", "2024-10-04"),
    "date32_read_as_seconds": ("Date32", "3000000", "-25568", "1899-12-31"),
    "date32_nan": ("Date32", "nan", "7.0", "1970-01-08"),
    # Past a double's range (1e400 was stored as inf, 1e-400 as 0); 19 digits are a text column, and
    # into Float32 only what Float32 prints back, as for a typed column (seen loading 0.12345679)
    "float_overflow": ("Float64", "1e400", "1e300", "1e300"),
    "float_negative_overflow": ("Float64", "-1e400", "-1.7e308", "-1.7e308"),
    "float_underflow": ("Float64", "1e-400", "1e-300", "1e-300"),
    "float32_overflow": ("Float32", "1e400", "1e38", "1e38"),
    "float32_text": ("Float32", "0.1234567890123456789", "0.1000000000000000000", "0.1"),
    # A subnormal holds fewer digits (1.234567e-320 was stored as 1.2347e-320, 3e-324 as 5e-324);
    # one the double prints back loads (the controls: 1e-320, Nullable 5e-324)
    "float_subnormal": ("Float64", "1.234567e-320", "1e-320", "1e-320"),
    "float_subnormal_rounded": ("Nullable(Float64)", "-3e-324", "-5e-324", "-5e-324"),
}


# (column type, epoch text of 16+ digits it would change, the same shape that fits, what that loads as)
EPOCH_TEXT_REFUSED = {
    "finer": ("DateTime64(3)", "1700000000.1234567", "1700000000.1230000", "2023-11-14 22:13:20.123"),
    "not_ten_digits": ("DateTime64(6)", "20240101.00000001", "1700000000.123456", "2023-11-14 22:13:20.123456"),
    "datetime_fraction": ("DateTime", "1700000000.123456", "1700000000.000000", "2023-11-14 22:13:20"),
    "dt64_9_far": ("DateTime64(9)", "9300000000.123456789", "1700000000.123456789", "2023-11-14 22:13:20.123456789"),
}


@pytest.mark.parametrize("case", sorted(REFUSED) + sorted(f"epoch_text_{c}" for c in EPOCH_TEXT_REFUSED))
def test_a_number_a_column_would_change_is_refused(case: str, engine_factory, tmp_path: Path,
                                                        chdb_path: Path) -> None:
    epoch_text = case.startswith("epoch_text_")
    kind, bad, good, loads_as = EPOCH_TEXT_REFUSED[case.removeprefix("epoch_text_")] if epoch_text else REFUSED[case]
    engine, cfg, row = refused_beside_control(engine_factory, tmp_path, chdb_path, "dates", kind,
                                              f"id,v\n1,{bad}\n".encode(), f"id,v\n2,{good}\n".encode())
    assert kind.removeprefix("Nullable(").split("(")[0].rstrip(")") in (row.last_error or ""), row.last_error
    assert not epoch_text or bad in (row.last_error or ""), row.last_error  # (text: named as written)
    assert query(engine, f"SELECT toString(v) FROM `{cfg.database}`.dates") == [(loads_as,)]


def test_a_doubles_decimals_load_as_written_into_datetime64(engine_factory, tmp_path: Path,
                                                            chdb_path: Path) -> None:
    """ClickHouse converts a double into DateTime64(3) by its binary value: 1.001 stored .000."""
    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, "ms", "DateTime64(3)",
                                      {"a.csv": b"id,v\n1,1.001\n2,-1.001\n3,1700000000.123\n4,0.007\n"})
    row = engine.ledger.current("ms/a.csv")
    assert row.state == State.LOADED, (row.state, row.last_error)
    assert query(engine, f"SELECT toString(v) FROM `{cfg.database}`.ms ORDER BY id") == [
        ("1970-01-01 00:00:01.001",), ("1969-12-31 23:59:58.999",), ("2023-11-14 22:13:20.123",),
        ("1970-01-01 00:00:00.007",)]


@pytest.mark.parametrize(("kind", "fits"), [("IPv4", "10.0.0.1"), ("IPv6", "::1")])
def test_a_number_into_an_address_column_is_refused(kind: str, fits: str, engine_factory, tmp_path: Path,
                                                    chdb_path: Path) -> None:
    """1234 is no address: ClickHouse's own CSV ingestion refuses it (IPv4) or cannot convert it
    (IPv6, NOT_IMPLEMENTED, was retried six times as a server fault); chute loaded 0.0.4.210."""
    engine, cfg, row = refused_beside_control(engine_factory, tmp_path, chdb_path, "addr", kind,
                                              b"id,v\n1,1234\n", f"id,v\n2,{fits}\n".encode())
    assert "ClickHouse rejected the data" in (row.last_error or ""), row.last_error
    assert query(engine, f"SELECT toString(v) FROM `{cfg.database}`.addr") == [(fits,)]


@pytest.mark.parametrize(("kind", "bad"), [("Int128", "1.50"), ("UInt256", "-5.00")])
def test_a_decimal_a_wide_integer_column_would_change_is_refused(kind: str, bad: str, engine_factory,
                                                                 tmp_path: Path, chdb_path: Path) -> None:
    """A Parquet decimal 1.50 into Int128 stored 1; a whole one loads as written (the control)."""
    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, "wide", kind,
                                      {"bad.parquet": _decimals([bad], 2),
                                       "good.parquet": _decimals(["123456789012345678.00"], 2)})
    good = engine.ledger.current("wide/good.parquet")
    assert good.state == State.LOADED, (good.state, good.last_error)
    bad_row = engine.ledger.current("wide/bad.parquet")
    assert bad_row.state == State.QUARANTINED, (bad_row.state, bad_row.last_error)
    assert query(engine, f"SELECT toString(v) FROM `{cfg.database}`.wide") == [("123456789012345678",)]


def test_epoch_seconds_of_16_digits_and_more_load_as_written(engine_factory, tmp_path: Path,
                                                            chdb_path: Path) -> None:
    """A CSV number of 16+ significant digits stays text (no double holds it), so epoch seconds with
    microseconds, 1700000000.123456, reached a DateTime64(6) column as text and were refused as no
    `YYYY-MM-DD hh:mm:ss` (a false refusal). Sent as the decimal they write, as numbers are."""
    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, "us", "DateTime64(6)",
                                      {"a.csv": b"id,v\n1,1700000000.123456\n2,1700000000.000001\n"
                                                b"3,1000000000.1234560000\n4,1700000000.12345600\n"})
    row = engine.ledger.current("us/a.csv")
    assert row.state == State.LOADED, (row.state, row.last_error)
    got = query(engine, f"SELECT id, toString(v) FROM `{cfg.database}`.us ORDER BY id")
    assert got == [(1, "2023-11-14 22:13:20.123456"), (2, "2023-11-14 22:13:20.000001"),
                       (3, "2001-09-09 01:46:40.123456"), (4, "2023-11-14 22:13:20.123456")], got



