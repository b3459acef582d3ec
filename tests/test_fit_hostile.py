"""Values ClickHouse cannot take into an operator's column are bad input: the file is quarantined
with a reason at once, never failed and retried as if the server were at fault (found by the
review of this round's fit and refusal-code changes; each test seen failing first)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from chute.core.errors import InputError
from chute.core.fit import Fitter
from chute.core.schema import Column
from tests.altered import refused_beside_control
from tests.conftest import query


@pytest.mark.parametrize("first", ["2026-99-01 00:00:00", "2026-02-30 10:00:00"])
def test_a_batch_whose_first_timestamp_is_no_date_is_named(first: str) -> None:
    """polars infers the layout from the values and raised ComputeError when no value of the batch is a
    date: an 'unexpected error', retried six times, then failed."""
    fitter = Fitter([Column("v", "DateTime")], pl.Schema({"v": pl.String}), {}, skip_bad=False, server_zone="UTC")
    with pytest.raises(InputError, match=r"at line 2: not a valid DateTime"):
        fitter.fit(pl.DataFrame({"v": [first]}), 0)


@pytest.mark.parametrize(("kind", "bad", "good"), [
    ("DateTime", "2026-02-30 10:00:00", "2026-01-01 00:00:00"),
    ("UUID", "1234", "00000000-0000-0000-0000-000000000001"),  # a number: ClickHouse's NOT_IMPLEMENTED
])
def test_a_value_the_column_cannot_take_quarantines_at_once(kind: str, bad: str, good: str, engine_factory,
                                                             tmp_path: Path, chdb_path: Path) -> None:
    engine, cfg, row = refused_beside_control(engine_factory, tmp_path, chdb_path, "typed", kind,
                                              f"id,v\n1,{bad}\n".encode(),
                                              f"id,v\n2,{good}\n".encode())
    assert "unexpected" not in (row.last_error or "") and "retry" not in (row.last_error or ""), row.last_error
    assert query(engine, f"SELECT id FROM `{cfg.database}`.typed") == [(2,)]


@pytest.mark.parametrize(("kind", "bad"), [
    ("Int128", "1.5"),  # ClickHouse cuts it to 1
    ("Int128", "1e40"),  # past Int128: ClickHouse stored 131811359292784862271108147102059528221
    ("Int256", "1e20"),  # ClickHouse stored 100000000000000000003
    ("UInt128", "-5"),  # wraps to 2^128 - 5
    ("UInt256", "-2.7"),
])
def test_a_number_a_wide_integer_column_would_change_is_refused(kind: str, bad: str, engine_factory,
                                                                tmp_path: Path, chdb_path: Path) -> None:
    """A float or a negative number into a 128/256-bit integer column was converted by ClickHouse
    into another number, silently; an integer that fits loads as written (the control)."""
    engine, cfg, row = refused_beside_control(engine_factory, tmp_path, chdb_path, "wide", kind,
                                              f"id,v\n1,{bad}\n".encode(),
                                              b"id,v\n2,9007199254740993\n")
    assert query(engine, f"SELECT id, toString(v) FROM `{cfg.database}`.wide") == [(2, "9007199254740993")]


@pytest.mark.parametrize(("kind", "bad"), [
    ("Time", "10:60:00"),  # ClickHouse stored 11:00:00
    ("Time", "10:00"),  # ClickHouse stored 00:10:00
    ("Nullable(Time)", "10:00:99"),  # ClickHouse stored 10:01:39
    ("Time64(3)", "10:00:00.12345"),  # ClickHouse stored 10:00:00.123
])
def test_a_time_the_column_would_change_is_refused(kind: str, bad: str, engine_factory, tmp_path: Path,
                                                   chdb_path: Path) -> None:
    engine, cfg, row = refused_beside_control(engine_factory, tmp_path, chdb_path, "times", kind,
                                              f"id,v\n1,{bad}\n".encode(),
                                              b"id,v\n2,25:00:00\n3,-01:02:03\n")
    assert "not a valid" in (row.last_error or ""), row.last_error
    digits = ".000" if kind.startswith("Time64") else ""
    assert query(engine, f"SELECT toString(v) FROM `{cfg.database}`.times ORDER BY id") == [
        (f"25:00:00{digits}",), (f"-01:02:03{digits}",)]
