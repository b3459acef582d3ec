"""Every Arrow/Parquet type loads losslessly or quarantines before any table exists (issue 9.3)."""

from __future__ import annotations

import datetime
import decimal
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from chute.core.states import State
from tests.conftest import make_config, query, wait_for

COLUMNS = {
    "dec": pa.array([decimal.Decimal("1.23"), None, decimal.Decimal("-99999.99")], pa.decimal128(7, 2)),
    "tm": pa.array([datetime.time(1, 2, 3, 4), None, datetime.time(23, 59, 59)], pa.time64("us")),
    "mp": pa.array([[("a", 1)], None, [("b", 2), ("c", None)]], pa.map_(pa.string(), pa.int64())),
    "los": pa.array([[{"x": 1, "y": "a"}], [], None], pa.list_(pa.struct([("x", pa.int64()), ("y", pa.string())]))),
    "nulllist": pa.array([None, None, None], pa.list_(pa.null())),
    "dct": pa.array(["a", "b", None]).dictionary_encode(),
    "tsz": pa.array([1, 2, None], pa.timestamp("ms", "Europe/Paris")),
    "tsns": pa.array([1, 2, None], pa.timestamp("ns")),
    "st": pa.array([{"a": 1}, None, {"a": None}], pa.struct([("a", pa.int64())])),
    "u64": pa.array([2**64 - 1, 0, None], pa.uint64()),
    # Found by the hostile review: a map of lists, a list of lists.
    "mapl": pa.array([[("k", [1, None])], None, [("e", [])]], pa.map_(pa.string(), pa.list_(pa.int64()))),
    "lol": pa.array([[[1, 2], [None]], None, [[]]], pa.list_(pa.list_(pa.int64()))),
    # Found by the review of 5467b8f: a NULL struct inside a list loaded as the text 'null'.
    "losnull": pa.array([[None, {"x": 1}], [None], None], pa.list_(pa.struct([("x", pa.int64())]))),
    # Found by the native-read review: pyarrow's JSON extension type was retried as an unexpected error.
    "js": pa.array(['{"a":1}', None, "[1]"], pa.json_()),
}
EXPECTED = {
    "dec": ("Nullable(Decimal(7, 2))", ["1.23", None, "-99999.99"]),
    "tm": ("Nullable(String)", ["01:02:03.000004", None, "23:59:59"]),
    "mp": ("Map(String, Nullable(Int64))", ["{'a':1}", "{}", "{'b':2,'c':NULL}"]),
    "los": ("Array(Nullable(String))", ['[\'{"x":1,"y":"a"}\']', "[]", "[]"]),
    "nulllist": ("Array(Nullable(String))", ["[]", "[]", "[]"]),
    "dct": ("Nullable(String)", ["a", "b", None]),
    "tsz": ("Nullable(DateTime64(3, 'Europe/Paris'))", ["1970-01-01 01:00:00.001", "1970-01-01 01:00:00.002", None]),
    "tsns": ("Nullable(DateTime64(9))", ["1970-01-01 00:00:00.000000001", "1970-01-01 00:00:00.000000002", None]),
    "st": ("Nullable(String)", ['{"a":1}', None, '{"a":null}']),
    "u64": ("Nullable(UInt64)", ["18446744073709551615", "0", None]),
    "mapl": ("Map(String, Array(Nullable(Int64)))", ["{'k':[1,NULL]}", "{}", "{'e':[]}"]),
    "lol": ("Array(Array(Nullable(Int64)))", ["[[1,2],[NULL]]", "[]", "[[]]"]),
    "losnull": ("Array(Nullable(String))", ['[NULL,\'{"x":1}\']', "[NULL]", "[]"]),
    "js": ("Nullable(String)", ['{"a":1}', None, "[1]"]),
}


def parquet(name: str, array: pa.Array) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"id": pa.array([1, 2, 3]), name: array}), out)
    return out.getvalue()


def test_every_arrow_type_round_trips(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    for name, array in COLUMNS.items():
        (cfg.data_dir / name).mkdir()
        (cfg.data_dir / name / "f.parquet").write_bytes(parquet(name, array))
    # Unsupported: a duration; a decimal wider than ClickHouse's 76 digits.
    (cfg.data_dir / "dur").mkdir()
    (cfg.data_dir / "dur" / "f.parquet").write_bytes(parquet("dur", pa.array([1, None, 3], pa.duration("s"))))
    # A decimal wider than 38 digits (polars reads up to 38): quarantined before any table, column named.
    (cfg.data_dir / "wide").mkdir()
    (cfg.data_dir / "wide" / "f.parquet").write_bytes(
        parquet("wide", pa.array([decimal.Decimal("1.5"), None, None], pa.decimal256(50, 10))))
    # Structs where ClickHouse would get a tuple without field names: quarantined, column named.
    deep = pa.struct([("x", pa.int64())])
    for name, array in {"mapst": pa.array([[("k", {"x": 1})], None, []], pa.map_(pa.string(), deep)),
                        "lolst": pa.array([[[{"x": 1}]], None, []], pa.list_(pa.list_(deep)))}.items():
        (cfg.data_dir / name).mkdir()
        (cfg.data_dir / name / "f.parquet").write_bytes(parquet(name, array))
    engine = engine_factory(cfg)
    final = {State.LOADED, State.QUARANTINED, State.FAILED, State.HELD}
    wait_for(lambda: all((r := engine.ledger.current(f"{n}/f.parquet")) and r.state in final
                         for n in [*COLUMNS, "dur", "wide", "mapst", "lolst"]), timeout=60, what="all final")
    db = cfg.database
    problems = []
    for name, (ch_type, values) in EXPECTED.items():
        row = engine.ledger.current(f"{name}/f.parquet")
        if row.state != State.LOADED:
            problems.append((name, row.state, row.last_error))
            continue
        kind = query(engine, "SELECT type FROM system.columns WHERE database = {d:String} AND table = {t:String} "
                             "AND name = {t:String}", d=db, t=name)[0][0]
        got = [r[0] for r in query(engine, f"SELECT toString(`{name}`) FROM `{db}`.`{name}` ORDER BY id")]
        if (kind, got) != (ch_type, values):
            problems.append((name, kind, got))
    assert not problems, problems
    dur = engine.ledger.current("dur/f.parquet")
    assert dur.state == State.QUARANTINED and dur.attempts <= 1, (dur.state, dur.last_error)
    assert "column 'dur'" in dur.last_error and "Duration" in dur.last_error
    tables = {r[0] for r in query(engine, f"SHOW TABLES FROM `{db}`")}
    assert "dur" not in tables  # quarantined before any table was created
    wide = engine.ledger.current("wide/f.parquet")
    assert "Decimal(50, 10)" in wide.last_error and wide.attempts <= 1, wide.last_error
    for name in ("wide", "mapst", "lolst"):
        row = engine.ledger.current(f"{name}/f.parquet")
        assert row.state == State.QUARANTINED and f"column {name!r}" in row.last_error, (name, row.last_error)
        assert name not in tables


def test_a_fixed_offset_zone_is_named_as_the_reason(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """polars cannot read a timestamp zone written as an offset ('+05:30'): the file was quarantined
    as "the parser gave up on corrupt data", which sent the operator looking for a broken file."""
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "zone.parquet").write_bytes(parquet("t", pa.array([1, 2, None], pa.timestamp("us", "+05:30"))))
    engine = engine_factory(cfg)
    wait_for(lambda: (r := engine.ledger.current("zone.parquet")) and r.state == State.QUARANTINED,
             what="zone.parquet quarantined")
    reason = engine.ledger.current("zone.parquet").last_error
    assert "'+05:30'" in reason and "corrupt" not in reason, reason
