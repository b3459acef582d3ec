"""Numbers into date columns, as the review of core/fit.py's spans found them (round 9):
- a Parquet file's integers went through the embedded engine's native read unchecked (the spans
  were not among what keeps a file on the Arrow path): 100000 into a Date loaded as 1970-01-02,
  -1 as 1970-01-01, UInt64's top into DateTime64(3) as 9999-12-31;
- on the Arrow path a narrow or unsigned integer made the reach check raise (polars refuses to
  compare an Int8 with 65535, a UInt64 with a negative bound): 'unexpected OverflowError', retried;
- a Parquet decimal into Date or DateTime was sent as a decimal, which ClickHouse cannot convert
  (code 44, retried as a server fault): 20000 (scale 0) never loaded;
- the last fraction of a second below a column's top was refused: 253402300799.999 fits
  DateTime64(3) (9999-12-31 23:59:59.999), 9223372036.5 fits DateTime64(9)."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chute.core.schema import Column
from chute.core.states import State
from tests.altered import FINAL, into_operator_table
from tests.conftest import make_config, query, state_of, wait_for


def _parquet(values: pa.Array) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(len(values))), "v": values}), out)
    return out.getvalue()


def _load(engine_factory: Any, tmp_path: Path, chdb_path: Path, kind: str, files: dict[str, bytes],
          **overrides: Any) -> tuple[Any, str]:
    """``files`` into the operator's table ``t (id Int64, v KIND)``, one after the other (a file
    alone goes natively where it can; small files together would go as a group), each to a final state."""
    cfg = make_config(tmp_path, chdb_path, **overrides)
    engine = engine_factory(cfg)
    engine.target.create_table("t", [Column("id", "Int64"), Column("v", kind)])
    (cfg.data_dir / "t").mkdir()
    for name, body in files.items():
        (cfg.data_dir / "t" / name).write_bytes(body)
        wait_for(lambda n=name: state_of(engine, f"t/{n}") in FINAL, what=f"{name} final")
    return engine, cfg.database


# (column type, a Parquet column it would change, one of the same type it holds, what that loads as)
INTEGERS = {
    "int64_past_date": ("Date", pa.array([100000], pa.int64()), pa.array([20000], pa.int64()), "2024-10-04"),
    "int8_before_date": ("Date", pa.array([-1], pa.int8()), pa.array([3], pa.int8()), "1970-01-04"),
    "nullable_date": ("Nullable(Date)", pa.array([None, 100000], pa.int64()), pa.array([65535], pa.uint16()),
                      "2149-06-06"),
    "int32_before_datetime": ("DateTime", pa.array([-5], pa.int32()), pa.array([1700000000], pa.int32()),
                              "2023-11-14 22:13:20"),
    "uint64_past_datetime64": ("DateTime64(3)", pa.array([(1 << 64) - 1], pa.uint64()),
                               pa.array([1700000000], pa.uint64()), "2023-11-14 22:13:20.000"),
    "int64_past_datetime64_9": ("DateTime64(9)", pa.array([9223372037], pa.int64()),
                                pa.array([9223372036], pa.int64()), "2262-04-11 23:47:16.000000000"),
    "int32_past_date32": ("Date32", pa.array([3000000], pa.int32()), pa.array([-25568], pa.int32()), "1899-12-31"),
    "zone_before_year_0": ("DateTime64(3, 'Asia/Tokyo')", pa.array([-62167219201], pa.int64()),
                           pa.array([0], pa.int64()), "1970-01-01 09:00:00.000"),
}


@pytest.mark.parametrize("native", [True, False], ids=["native", "arrow"])
@pytest.mark.parametrize("case", sorted(INTEGERS))
def test_a_parquet_integer_a_date_column_would_change_is_refused(case: str, native: bool, engine_factory,
                                                                 tmp_path: Path, chdb_path: Path) -> None:
    kind, bad, good, loads_as = INTEGERS[case]
    engine, db = _load(engine_factory, tmp_path, chdb_path, kind,
                       {"bad.parquet": _parquet(bad), "good.parquet": _parquet(good)}, native_read=native)
    fine = engine.ledger.current("t/good.parquet")
    assert fine.state == State.LOADED, (fine.state, fine.last_error)
    row = engine.ledger.current("t/bad.parquet")
    loaded = query(engine, f"SELECT toString(v) FROM `{db}`.t")
    assert row.state == State.QUARANTINED, (row.state, row.last_error, loaded)
    assert "outside what a" in (row.last_error or ""), row.last_error
    assert query(engine, f"SELECT toString(v) FROM `{db}`.t") == [(loads_as,)]


# (column type, the Parquet decimals, what they load as)
DECIMALS = {
    "date_scale_0": ("Date", pa.array([Decimal("20000")], pa.decimal128(20, 0)), ["2024-10-04"]),
    "date_whole_scale_2": ("Date", pa.array([Decimal("3.00")], pa.decimal128(10, 2)), ["1970-01-04"]),
    "datetime_scale_0": ("DateTime", pa.array([Decimal("1700000000")], pa.decimal128(20, 0)),
                         ["2023-11-14 22:13:20"]),
    "date32_scale_0": ("Date32", pa.array([Decimal("-25568")], pa.decimal128(10, 0)), ["1899-12-31"]),
}


@pytest.mark.parametrize("case", sorted(DECIMALS))
def test_a_parquet_decimal_that_fits_a_date_column_loads(case: str, engine_factory, tmp_path: Path,
                                                         chdb_path: Path) -> None:
    kind, values, loads_as = DECIMALS[case]
    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, "t", kind, {"a.parquet": _parquet(values)})
    row = engine.ledger.current("t/a.parquet")
    assert row.state == State.LOADED, (row.state, row.last_error)
    assert [v for (v,) in query(engine, f"SELECT toString(v) FROM `{cfg.database}`.t ORDER BY id")] == loads_as


# (column type, a number at the column's very top or bottom, what it loads as)
EDGES = {
    "dt64_3_last_ms": ("DateTime64(3)", "253402300799.999", "9999-12-31 23:59:59.999"),
    "dt64_9_last_second": ("DateTime64(9)", "9223372036", "2262-04-11 23:47:16.000000000"),
    "dt64_9_top": ("DateTime64(9)", "9223372036.5", "2262-04-11 23:47:16.500000000"),
    "dt64_9_bottom": ("DateTime64(9)", "-9223372036.5", "1677-09-21 00:12:43.500000000"),
}


@pytest.mark.parametrize("case", sorted(EDGES))
def test_a_number_at_a_date_columns_edge_loads(case: str, engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    kind, number, loads_as = EDGES[case]
    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, "t", kind,
                                      {"a.csv": f"id,v\n1,{number}\n".encode()})
    row = engine.ledger.current("t/a.csv")
    assert row.state == State.LOADED, (row.state, row.last_error)
    assert query(engine, f"SELECT toString(v) FROM `{cfg.database}`.t") == [(loads_as,)]


# A Parquet Float32 says what its shortest text says (the README's rule: 0.1 fits Float32): it was
# compared as a double with the decimal it casts to, so 1.001 (1.00100004673...) was refused.
FLOAT32 = {
    "datetime64_ms": ("DateTime64(3)", [1.001, -2.5], ["1970-01-01 00:00:01.001", "1969-12-31 23:59:57.500"]),
    "decimal_scale_2": ("Decimal(10, 2)", [0.1, 12.34], ["0.1", "12.34"]),
}


@pytest.mark.parametrize("case", sorted(FLOAT32))
def test_a_float32_loads_as_its_text_says(case: str, engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    kind, values, loads_as = FLOAT32[case]
    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, "t", kind,
                                      {"a.parquet": _parquet(pa.array(values, pa.float32()))})
    row = engine.ledger.current("t/a.parquet")
    assert row.state == State.LOADED, (row.state, row.last_error)
    assert [v for (v,) in query(engine, f"SELECT toString(v) FROM `{cfg.database}`.t ORDER BY id")] == loads_as


@pytest.mark.parametrize(("kind", "value"), [("DateTime64(3)", 1.0015), ("Decimal(10, 2)", 0.125)])
def test_a_float32_with_more_decimals_than_the_column_is_refused(kind: str, value: float, engine_factory,
                                                                 tmp_path: Path, chdb_path: Path) -> None:
    """The control: what the column cannot say is still refused."""
    engine, _ = into_operator_table(engine_factory, tmp_path, chdb_path, "t", kind,
                                    {"a.parquet": _parquet(pa.array([value], pa.float32()))})
    row = engine.ledger.current("t/a.parquet")
    assert row.state == State.QUARANTINED, (row.state, row.last_error)
