"""Parquet naive timestamps on a server in New York, at the edges a hostile review of 5467b8f
found: nanosecond digits, timestamps inside maps, and pandas' Timestamp.max (a common "no end"
mark), whose wall clock in New York is past the last instant a nanosecond count holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import run_chute

ROOT = Path(__file__).resolve().parent.parent
PANDAS_MAX = "2262-04-11 23:47:16.854775807"
FUTURE = ["2150-07-01 23:30:00", "2299-08-15 12:00:00", "2150-12-01 23:30:00"]  # summer, summer, winter


def _ns(walls: list[str | None]) -> pa.Array:
    return pa.array([None if w is None else int(_epoch_ns(w)) for w in walls], pa.timestamp("ns"))


def _epoch_ns(wall: str) -> int:
    """The count a naive ns timestamp stores for ``wall`` (the wall clock read as UTC)."""
    import datetime as dt

    day, _, frac = wall.partition(".")
    whole = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    return int(whole.timestamp()) * 10**9 + int((frac + "000000000")[:9])


@pytest.fixture(scope="module")
def in_new_york(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("new_york")
    data = tmp / "data"
    for name in ("digits", "maps", "sentinel", "sentinel_list", "future", "future_day", "arrays"):
        (data / name).mkdir(parents=True)
    pq.write_table(pa.table({"i": [0, 1, 2], "t": _ns(["2026-07-01 23:30:00.123456789", "2026-01-15 00:30:00.000000001",
                                                       None])}), data / "digits" / "t.parquet")
    maps = pa.array([[("x", 1782948600_123456), ("y", None)], [], None],  # 2026-07-01 23:30:00.123456 as µs
                    type=pa.map_(pa.string(), pa.timestamp("us")))
    pq.write_table(pa.table({"i": [0, 1, 2], "t": maps}), data / "maps" / "t.parquet")
    pq.write_table(pa.table({"i": [0, 1], "t": _ns(["2026-07-01 12:00:00", PANDAS_MAX])}),
                   data / "sentinel" / "t.parquet")
    inner = pa.ListArray.from_arrays(pa.array([0, 2], pa.int32()), _ns(["2026-07-01 12:00:00", PANDAS_MAX]))
    pq.write_table(pa.table({"i": [0], "t": inner}),
                   data / "sentinel_list" / "t.parquet")
    for name in ("future", "future_day"):  # (the table's name in a column: not the same bytes, not a duplicate)
        # (a Date32 takes midnights: a time of day into it is a named reject, not dropped)
        walls = FUTURE if name == "future" else [w[:10] + " 00:00:00" for w in FUTURE]
        future = pa.array([_epoch_ns(w) // 1000 for w in walls], pa.timestamp("us"))
        pq.write_table(pa.table({"i": [0, 1, 2], "t": future, "k": [name] * 3}),
                       data / name / "t.parquet")
    pairs = pa.FixedSizeListArray.from_arrays(_ns(["2026-07-01 23:30:00.000000001", None, "2026-01-15 00:30:00",
                                                   "2026-01-15 00:30:00"]), 2)
    pq.write_table(pa.table({"i": [0, 1], "t": pairs}), data / "arrays" / "t.parquet")
    (tmp / "chute.toml").write_text('[[routes]]\ntable = "future_day"\ncolumns = { t = "Date32" }\n')
    env = {**os.environ, "TZ": "America/New_York"}
    ch, state = tmp / "ch", tmp / "state"
    run = subprocess.run([sys.executable, "-m", "chute.core", "--no-ui", "--once", str(data), "--state-dir",
                          str(state), "--clickhouse", f"chdb://{ch}", "--config", str(tmp / "chute.toml")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    files = run_chute("files", "--json", "--state-dir", str(state), "--clickhouse", f"chdb://{ch}", env=env)
    read = textwrap.dedent(f"""
        import json
        from chdb import session
        s = session.Session({str(ch)!r})
        out = {{}}
        for (table,) in json.loads(str(s.query("SHOW TABLES FROM default", "JSONCompact")))["data"]:
            rows = s.query(f"SELECT toString(t) FROM default.{{table}} ORDER BY i", "JSONCompact")
            out[table] = [r[0] for r in json.loads(str(rows))["data"]]
        print(json.dumps(out))
    """)
    tables = json.loads(subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True,
                                       check=True, timeout=120).stdout.strip().splitlines()[-1])
    return {"run": run, "tables": tables,
            "files": {f["path"]: f for f in map(json.loads, files.stdout.splitlines())}}


def test_nanosecond_digits_and_map_values_keep_their_wall_clock(in_new_york) -> None:
    assert in_new_york["files"]["digits/t.parquet"]["state"] == "loaded", in_new_york["run"].stderr[-2000:]
    assert in_new_york["files"]["maps/t.parquet"]["state"] == "loaded", in_new_york["run"].stderr[-2000:]
    # before: '2026-07-01 23:30:00.123456000' (the last three digits gone)
    assert in_new_york["tables"]["digits"] == ["2026-07-01 23:30:00.123456789", "2026-01-15 00:30:00.000000001", None]
    # before: '2026-07-01 19:30:00.123456' (a map's values were not moved)
    assert in_new_york["tables"]["maps"] == ["{'x':'2026-07-01 23:30:00.123456','y':NULL}", "{}", "{}"]
    # (a fixed-size list failed as "unexpected" with the first version of the range check)
    assert in_new_york["files"]["arrays/t.parquet"]["state"] == "loaded", in_new_york["run"].stderr[-2000:]
    assert in_new_york["tables"]["arrays"] == ["['2026-07-01 23:30:00.000000001',NULL]",
                                               "['2026-01-15 00:30:00.000000000','2026-01-15 00:30:00.000000000']"]


@pytest.mark.parametrize("name", ["sentinel", "sentinel_list"])
def test_a_wall_clock_past_what_a_nanosecond_count_holds_there_is_quarantined_with_its_reason(in_new_york,
                                                                                             name: str) -> None:
    """Before: pandas' Timestamp.max wrapped to 1677-09-21 and loaded (clamped to 1900 by ClickHouse)."""
    row = in_new_york["files"][f"{name}/t.parquet"]
    assert row["state"] == "quarantined", row
    why = row["last_error"] or row["reason"]
    assert "America/New_York" in why and "'t'" in why and "DateTime64(6, 'UTC')" in why, why
    assert "line 2" in why if name == "sentinel" else "line 1" in why
    assert not in_new_york["tables"].get(name), in_new_york["tables"]


def test_summer_wall_clocks_after_2099_land_as_written(in_new_york) -> None:
    """Before: an hour late in summer after 2099 (polars' rules stop there), and 23:30 the next day."""
    assert in_new_york["tables"]["future"] == [w + ".000000" for w in FUTURE]
    assert in_new_york["tables"]["future_day"] == [w[:10] for w in FUTURE]
