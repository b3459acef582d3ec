"""Files into tables an operator made or altered (issue 9's rule: no value changes on the way in).

Found by the native-read review: a number that casts to the table's type but not as written
(2^53+1 into Float64, 2 into Bool, 1.2345 into a scale of 2) loaded changed, and a value
ClickHouse refuses for an Enum or UUID column was retried as a server fault instead of being
quarantined with its reason. Each case has a file of the same shape that fits and must load."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chute.core.states import State
from tests.altered import into_operator_table
from tests.conftest import query


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


# (table column type, the file that would change, the file that fits, what the fitting one loads as)
CASES = {
    "float64": ("Float64", b"id,v\n1,9007199254740993\n", b"id,v\n1,9007199254740992\n", "9007199254740992"),
    "bool": ("Bool", b"id,v\n1,1\n2,2\n", b"id,v\n1,1\n2,0\n", "false,true"),
    "float32": ("Float32", b"id,v\n1,16777217\n", b"id,v\n1,0.1\n", "0.1"),
    "int8": ("Int8", b"id,v\n1,1.5\n", b"id,v\n1,-128\n", "-128"),
    "scale": ("Decimal(10, 2)",
              _parquet(pa.table({"id": [1], "v": pa.array([Decimal("1.2345")], pa.decimal128(10, 4))})),
              _parquet(pa.table({"id": [1], "v": pa.array([Decimal("1.2300")], pa.decimal128(10, 4))})), "1.23"),
    "decimal_into_float": ("Float64",
                           _parquet(pa.table({"id": [1], "v": pa.array([Decimal("1234567890123456789.0123456789")],
                                                                     pa.decimal128(38, 10))})),
                           _parquet(pa.table({"id": [1], "v": pa.array([Decimal("0.1000000000")],
                                                                     pa.decimal128(38, 10))})), "0.1"),
    "widen32": ("Float64", _parquet(pa.table({"id": [1], "v": pa.array([float("nan")], pa.float32())})),
                _parquet(pa.table({"id": [1], "v": pa.array([0.5], pa.float32())})), "0.5"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_value_the_column_would_change_is_refused(case: str, engine_factory, tmp_path: Path,
                                                    chdb_path: Path) -> None:
    kind, changed, fits, loads_as = CASES[case]
    ext = "csv" if changed.startswith(b"id,") else "parquet"
    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, "alt", kind,
                                      {f"changed.{ext}": changed, f"fits.{ext}": fits})
    fine = engine.ledger.current(f"alt/fits.{ext}")
    assert fine.state == State.LOADED, (fine.state, fine.last_error)  # the control: a value that fits loads
    got = query(engine, f"SELECT arrayStringConcat(groupArray(toString(v)), ',') FROM "
                        f"(SELECT v FROM `{cfg.database}`.alt ORDER BY v)")
    if case != "widen32":
        assert got == [(loads_as,)], got
        bad = engine.ledger.current(f"alt/changed.{ext}")
        assert bad.state == State.QUARANTINED, (bad.state, bad.last_error)
        assert "would not keep it as written" in (bad.last_error or "") or (
            case == "int8" and "not a valid Int8" in (bad.last_error or "")), bad.last_error
    else:  # a wider column keeps every value, NaN included: both load
        assert engine.ledger.current(f"alt/changed.{ext}").state == State.LOADED
        assert got == [("0.5,nan",)] or got == [("nan,0.5",)], got


@pytest.mark.parametrize(("kind", "value", "fits"), [
    ("Enum8('a' = 1, 'b' = 2)", "zz", "b"),
    ("UUID", "not-a-uuid", "00000000-0000-0000-0000-000000000001"),
    ("IPv4", "1.2.3", "10.0.0.1"),
])
def test_a_value_clickhouse_refuses_for_the_column_quarantines_the_file(kind: str, value: str, fits: str,
                                                                       engine_factory, tmp_path: Path,
                                                                       chdb_path: Path) -> None:
    """Retrying cannot help: only another file or another table can. Quarantined with ClickHouse's
    reason, not failed and retried as if the server were at fault."""
    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, "typed", kind,
                                      {"bad.csv": f"id,v\n1,{value}\n".encode(),
                                       "good.csv": f"id,v\n2,{fits}\n".encode()})
    good = engine.ledger.current("typed/good.csv")
    assert good.state == State.LOADED, (good.state, good.last_error)
    bad = engine.ledger.current("typed/bad.csv")
    assert bad.state == State.QUARANTINED, (bad.state, bad.last_error)
    assert ("ClickHouse rejected the data" if not kind.startswith("Enum") else  # (an Enum's names are in its
            f"'{value}' at line 2: not an element of {kind}") in (bad.last_error or ""), bad.last_error  # type)
    assert query(engine, f"SELECT id, toString(v) FROM `{cfg.database}`.typed") == [(2, fits)]
