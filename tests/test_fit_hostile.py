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
from chute.core.states import State
from tests.conftest import make_config, query, state_of, wait_for

FINAL = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE, State.FAILED}


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
    cfg = make_config(tmp_path, chdb_path)
    engine = engine_factory(cfg)
    engine.target.create_table("typed", [Column("id", "Int64"), Column("v", kind)])
    (cfg.data_dir / "typed").mkdir()
    (cfg.data_dir / "typed" / "bad.csv").write_text(f"id,v\n1,{bad}\n")
    (cfg.data_dir / "typed" / "good.csv").write_text(f"id,v\n2,{good}\n")
    wait_for(lambda: all(state_of(engine, f"typed/{n}.csv") in FINAL for n in ("bad", "good")),
             what="both final")
    assert engine.ledger.current("typed/good.csv").state == State.LOADED
    row = engine.ledger.current("typed/bad.csv")
    assert row.state == State.QUARANTINED, (row.state, row.last_error)
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
    cfg = make_config(tmp_path, chdb_path)
    engine = engine_factory(cfg)
    engine.target.create_table("wide", [Column("id", "Int64"), Column("v", kind)])
    (cfg.data_dir / "wide").mkdir()
    (cfg.data_dir / "wide" / "bad.csv").write_text(f"id,v\n1,{bad}\n")
    (cfg.data_dir / "wide" / "good.csv").write_text("id,v\n2,9007199254740993\n")
    wait_for(lambda: all(state_of(engine, f"wide/{n}.csv") in FINAL for n in ("bad", "good")), what="both final")
    assert engine.ledger.current("wide/good.csv").state == State.LOADED
    row = engine.ledger.current("wide/bad.csv")
    assert row.state == State.QUARANTINED, (row.state, row.last_error, query(engine, "SELECT toString(v) FROM "
                                                                                    f"`{cfg.database}`.wide"))
    assert query(engine, f"SELECT id, toString(v) FROM `{cfg.database}`.wide") == [(2, "9007199254740993")]


@pytest.mark.parametrize(("kind", "bad"), [
    ("Time", "10:60:00"),  # ClickHouse stored 11:00:00
    ("Time", "10:00"),  # ClickHouse stored 00:10:00
    ("Nullable(Time)", "10:00:99"),  # ClickHouse stored 10:01:39
    ("Time64(3)", "10:00:00.12345"),  # ClickHouse stored 10:00:00.123
])
def test_a_time_the_column_would_change_is_refused(kind: str, bad: str, engine_factory, tmp_path: Path,
                                                   chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    engine = engine_factory(cfg)
    engine.target.create_table("times", [Column("id", "Int64"), Column("v", kind)])
    (cfg.data_dir / "times").mkdir()
    (cfg.data_dir / "times" / "bad.csv").write_text(f"id,v\n1,{bad}\n")
    (cfg.data_dir / "times" / "good.csv").write_text("id,v\n2,25:00:00\n3,-01:02:03\n")
    wait_for(lambda: all(state_of(engine, f"times/{n}.csv") in FINAL for n in ("bad", "good")), what="both final")
    assert engine.ledger.current("times/good.csv").state == State.LOADED
    row = engine.ledger.current("times/bad.csv")
    assert row.state == State.QUARANTINED, (row.state, row.last_error, query(engine, "SELECT toString(v) FROM "
                                                                                    f"`{cfg.database}`.times"))
    assert "not a valid" in (row.last_error or ""), row.last_error
    digits = ".000" if kind.startswith("Time64") else ""
    assert query(engine, f"SELECT toString(v) FROM `{cfg.database}`.times ORDER BY id") == [
        (f"25:00:00{digits}",), (f"-01:02:03{digits}",)]
