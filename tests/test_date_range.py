"""A Parquet timestamp into a route column whose type cannot count it: a DateTime64(9) holds
1677-09-21 .. 2262-04-11 (nanoseconds in an Int64); a microsecond value of 2299 made ClickHouse
fail the insert with DECIMAL_OVERFLOW, retried as unexpected and left `failed`. It is the file's
value, deterministic: a named bad row (quarantine, or a reject under on_bad_rows = "skip")."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from chute.core.routing import Route
from chute.core.states import State
from tests.conftest import make_config, query, wait_for

ROOT = Path(__file__).resolve().parent.parent

FINAL = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE, State.FAILED}
WHEN = [dt.datetime(2026, 7, 1, 10, 20, 30, 123456), dt.datetime(2299, 12, 31, 23, 59, 59),
        dt.datetime(1600, 1, 1), dt.datetime(2262, 4, 11, 23, 47, 16, 854775)]


def test_a_timestamp_a_nanosecond_column_cannot_count_is_a_named_bad_row(engine_factory, tmp_path: Path,
                                                                         chdb_path: Path) -> None:
    routes = (Route(table="q", columns=(("t", "DateTime64(9)"),)),
              Route(table="s", columns=(("t", "Nullable(DateTime64(9))"),), on_bad_rows="skip"),
              Route(table="z", columns=(("t", "DateTime64(9, 'Asia/Tokyo')"),), on_bad_rows="skip"))
    cfg = make_config(tmp_path, chdb_path, routes=routes)
    for table in ("q", "s", "z"):
        (cfg.data_dir / table).mkdir()
        pq.write_table(pa.table({"i": list(range(len(WHEN))), "t": pa.array(WHEN, pa.timestamp("us")),
                                 "k": [table] * len(WHEN)}), cfg.data_dir / table / "p.parquet")
    engine = engine_factory(cfg)
    names = [f"{t}/p.parquet" for t in ("q", "s", "z")]
    wait_for(lambda: all(engine.ledger.current(n) and engine.ledger.current(n).state in FINAL for n in names),
             what="all final", timeout=60)
    row = engine.ledger.current("q/p.parquet")
    assert row.state == State.QUARANTINED, (row.state, row.last_error)
    assert "2299-12-31 23:59:59" in row.last_error and "DateTime64(9)" in row.last_error, row.last_error
    for table in ("s", "z"):
        row = engine.ledger.current(f"{table}/p.parquet")
        assert row.state == State.LOADED, (table, row.state, row.last_error)
        got = query(engine, f"SELECT i, toString(t) FROM `{cfg.database}`.{table} ORDER BY i")
        assert got == [(0, "2026-07-01 10:20:30.123456000"), (3, "2262-04-11 23:47:16.854775000")], got
        rejects = list(csv.reader((cfg.quarantine_dir / table / "p.parquet.rejects.csv").open()))[1:]
        assert [(r[1], r[2][:10]) for r in rejects] == [("t", "2299-12-31"), ("t", "1600-01-01")], rejects


# A timestamp (Parquet's, or a CSV date-time with an offset, which polars reads as one) into a
# route column that keeps less: ClickHouse cut the fraction, dropped the time of day, or clamped.
CUTS = {"DateTime": [(dt.datetime(2026, 7, 1, 10, 20, 30), "2026-07-01 10:20:30"),
                     (dt.datetime(2026, 7, 1, 10, 20, 30, 500000), None), (dt.datetime(1969, 12, 31, 23), None),
                     (dt.datetime(2106, 2, 7, 6, 28, 16), None)],
        "Date": [(dt.datetime(2026, 7, 1), "2026-07-01"), (dt.datetime(2026, 7, 1, 10, 20, 30), None),
                 (dt.datetime(2149, 6, 7), None)],
        "DateTime64(3)": [(dt.datetime(2026, 7, 1, 10, 20, 30, 123000), "2026-07-01 10:20:30.123"),
                          (dt.datetime(2026, 7, 1, 10, 20, 30, 123456), None)]}


def test_a_timestamp_the_column_keeps_less_of_is_named_not_cut(engine_factory, tmp_path: Path,
                                                               chdb_path: Path) -> None:
    routes = tuple(Route(table=f"c{n}", columns=(("t", f"Nullable({kind})"),), on_bad_rows="skip")
                   for n, kind in enumerate(CUTS))
    cfg = make_config(tmp_path, chdb_path, routes=routes)
    names = []
    for n, cases in enumerate(CUTS.values()):
        (cfg.data_dir / f"c{n}").mkdir()
        when = [w for w, _ in cases]
        pq.write_table(pa.table({"i": list(range(len(when))), "t": pa.array(when, pa.timestamp("us")),
                                 "k": ["p"] * len(when)}), cfg.data_dir / f"c{n}" / "p.parquet")
        (cfg.data_dir / f"c{n}" / "o.csv").write_text("i,t,k\n" + "".join(
            f"{i},{w.isoformat()}Z,o\n" for i, w in enumerate(when)))  # (an offset: read as a timestamp)
        names += [f"c{n}/p.parquet", f"c{n}/o.csv"]
    engine = engine_factory(cfg)
    wait_for(lambda: all(engine.ledger.current(n) and engine.ledger.current(n).state in FINAL for n in names),
             what="all final", timeout=60)
    for n, (kind, cases) in enumerate(CUTS.items()):
        for name, k in (("p.parquet", "p"), ("o.csv", "o")):
            row = engine.ledger.current(f"c{n}/{name}")
            assert row.state == State.LOADED, (kind, name, row.state, row.last_error)
            got = dict(query(engine, f"SELECT i, toString(t) FROM `{cfg.database}`.c{n} WHERE k = '{k}' ORDER BY i"))
            assert got == {i: v for i, (_, v) in enumerate(cases) if v is not None}, (kind, name, got)


def test_small_files_of_one_group_are_checked_in_the_servers_zone_as_alone(tmp_path: Path) -> None:
    """Small CSVs parsed as one (core/combined.py) met a Fitter that read wall clocks in UTC: on a
    Paris server `1970-01-01 00:30:00` (before the epoch there) passed and ClickHouse clamped it,
    where the same file alone is a named reject."""
    data = tmp_path / "data" / "g"
    data.mkdir(parents=True)
    (tmp_path / "chute.toml").write_text('[[routes]]\ntable = "g"\ncolumns = { t = "DateTime" }\n')
    env = {**os.environ, "TZ": "Europe/Paris"}

    def chute(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "chute.core", *args, "--state-dir", str(tmp_path / "state")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    def once() -> None:
        run = chute("--no-ui", "--once", str(tmp_path / "data"), "--clickhouse", f"chdb://{tmp_path / 'ch'}",
                    "--config", str(tmp_path / "chute.toml"))
        assert "Traceback" not in run.stderr, run.stderr[-2000:]

    (data / "first.csv").write_text("i,t\n-1,2026-01-01 00:00:00\n")
    once()  # the table exists: the next small files go as one group
    for i in range(6):
        wall = "1970-01-01 00:30:00" if i == 3 else "2026-07-01 12:00:00"
        (data / f"f{i}.csv").write_text(f"i,t\n{i},{wall}\n")
    once()
    files = chute("files").stdout
    states = {line.split("\t")[1]: line.split("\t")[3] for line in files.splitlines()}
    assert states == {"g/first.csv": "loaded", **{f"g/f{i}.csv": "quarantined" if i == 3 else "loaded"
                                                  for i in range(6)}}, files
