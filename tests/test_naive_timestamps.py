"""Naive timestamps (no offset) across daylight-saving changes: what lands, and where it can move.

A naive date-time column loads as ``DateTime64(P)`` without a zone, from CSV, NDJSON and
Parquet alike: chute never converts it (no offset is assumed, nothing is shifted to UTC), and
on a ClickHouse whose time zone is UTC (chDB's and the official image's default) every value
comes back as written, including wall times a DST zone skips or repeats. ClickHouse itself reads
and shows a zone-less column in its server time zone, so on a server (or an embedded chDB in a
process) whose zone observes DST, a wall time in the spring-forward gap does not exist there and
ClickHouse moves it; ``columns = { t = "DateTime64(6, 'UTC')" }`` in the route keeps it exact.
A Parquet naive timestamp travels as an Arrow instant, which ClickHouse would show moved by its
zone's offset; chute sends the instant its wall clock names in that zone, so it lands as a CSV's does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from chute.core.states import State
from tests.conftest import make_config, query, state_of, wait_for

ROOT = Path(__file__).resolve().parent.parent
FINAL = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE, State.FAILED}
# Europe: the last Sundays of March (02:00-03:00 skipped) and October (02:00-03:00 twice);
# the US: 2026-03-08 (02:00-03:00 skipped).
WALL = ["2026-03-29 01:59:59.999999", "2026-03-29 02:30:00", "2026-03-29 03:00:00", "2026-10-25 02:30:00",
        "2026-03-08 02:30:00", "2026-11-01 01:30:00"]


def test_naive_timestamps_load_unshifted_and_zone_less_from_every_format(engine_factory, tmp_path: Path,
                                                                         chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "c.csv").write_text("i,t\n" + "".join(f"{i},{w.replace(' ', 'T')}\n" for i, w in enumerate(WALL)))
    (cfg.data_dir / "j.ndjson").write_text("".join(json.dumps({"i": i, "t": w}) + "\n" for i, w in enumerate(WALL)))
    pl.DataFrame({"i": range(len(WALL)), "t": pl.Series(WALL).str.to_datetime(time_unit="us")}).write_parquet(
        cfg.data_dir / "p.parquet")
    engine = engine_factory(cfg)
    names = ("c.csv", "j.ndjson", "p.parquet")
    wait_for(lambda: all(state_of(engine, n) in FINAL for n in names), what="all final")
    for name in names:
        table = name.split(".")[0]
        assert state_of(engine, name) == State.LOADED, (name, engine.ledger.current(name).last_error)
        (kind,) = query(engine, f"SELECT type FROM system.columns WHERE database = '{cfg.database}' AND "
                                f"table = '{table}' AND name = 't'")[0]
        assert kind == "DateTime64(6)", (name, kind)
        got = [r[0] for r in query(engine, f"SELECT toString(t) FROM `{cfg.database}`.{table} ORDER BY i")]
        assert got == [w if "." in w else w + ".000000" for w in WALL], (name, got)


@pytest.fixture(scope="module")
def in_paris(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """chute with an embedded chDB in a process whose TZ is Europe/Paris: the same wall times as
    CSV into a zone-less table (plain), as CSV into a route-declared DateTime64(6, 'UTC') column
    (pinned), as a Parquet naive timestamp (pq) and the same into a declared column (pqpinned).
    What each reads back, in that zone."""
    tmp = tmp_path_factory.mktemp("paris")
    data = tmp / "data"
    for table in ("plain", "pinned"):  # (the table name in a column: not the same bytes, not a duplicate)
        (data / table).mkdir(parents=True)
        (data / table / "t.csv").write_text("i,t,k\n" + "".join(f"{i},{w},{table}\n" for i, w in enumerate(WALL)))
    for table in ("pq", "pqpinned"):
        (data / table).mkdir()
        pl.DataFrame({"i": range(len(WALL)), "t": pl.Series(WALL).str.to_datetime(time_unit="us"),
                      "k": table}).write_parquet(data / table / "t.parquet")
    (tmp / "chute.toml").write_text("".join(f'[[routes]]\ntable = "{t}"\ncolumns = {{ t = "DateTime64(6, \'UTC\')" }}\n'
                                            for t in ("pinned", "pqpinned")))
    env = {**os.environ, "TZ": "Europe/Paris"}
    ch = tmp / "ch"
    run = subprocess.run([sys.executable, "-m", "chute.core", "--no-ui", "--once", str(data), "--state-dir",
                          str(tmp / "state"), "--clickhouse", f"chdb://{ch}", "--config", str(tmp / "chute.toml")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    read = textwrap.dedent(f"""
        import json
        from chdb import session
        s = session.Session({str(ch)!r})
        out = {{}}
        for table in ("plain", "pinned", "pq", "pqpinned"):
            rows = s.query(f"SELECT i, toString(t) FROM default.{{table}} ORDER BY i", "JSONCompact")
            out[table] = [r if table in {list(ROUTED)!r} else r[1] for r in json.loads(str(rows))["data"]]
        print(json.dumps(out))
    """)
    return json.loads(subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True,
                                     check=True, timeout=120).stdout.strip().splitlines()[-1])


EXACT = [w if "." in w else w + ".000000" for w in WALL]


def test_in_a_dst_time_zone_only_the_skipped_hour_moves_unless_the_column_says_utc(in_paris) -> None:
    assert in_paris["pinned"] == EXACT and in_paris["pqpinned"] == EXACT
    moved = [i for i, (a, b) in enumerate(zip(in_paris["plain"], EXACT, strict=True)) if a != b]
    assert moved == [1], in_paris["plain"]  # 2026-03-29 02:30 does not exist in Paris; nothing else moves


def test_parquet_naive_timestamps_in_a_dst_time_zone_land_as_csv_ones_do(in_paris) -> None:
    """Every value moved by Paris' offset before (a strict xfail); now only the skipped hour moves,
    to where ClickHouse puts the CSV's, and a route's DateTime64(6, 'UTC') keeps all exact."""
    assert in_paris["pq"] == in_paris["plain"]
    assert [i for i, (a, b) in enumerate(zip(in_paris["pq"], EXACT, strict=True)) if a != b] == [1]
    assert in_paris["pqpinned"] == EXACT


# Wall times away from any DST change (the skipped hour is covered above), with the edges that
# moved before: a fraction, midnight, 1900 (Paris' LMT offset, 9 min 21 s), 2299 (rolled into
# 2300), the repeated autumn hour, and NULL.
WALLS = ["2026-07-01 23:30:00.123456", "2026-01-15 00:30:00", "1900-01-01 00:00:00", "2299-12-31 23:30:00",
         "2026-10-25 02:30:00", None]
# What the type cannot keep (a fraction into DateTime, a time of day into Date32, past a DateTime's
# range), ClickHouse cut or clamped silently: a named bad row now (rejects under on_bad_rows = "skip").
OUT = "a reject: the type would cut or clamp it"
# route type -> what ClickHouse's toString shows for each wall (the written wall, in that type)
ROUTED = {
    "dt64": ("Nullable(DateTime64(6))", lambda w: w if "." in w else w + ".000000"),
    "dt64ms": ("Nullable(DateTime64(3))", lambda w: OUT if len(w) > 23 else (w + ".000")[:23]),
    "dt64tokyo": ("Nullable(DateTime64(6, 'Asia/Tokyo'))", lambda w: w if "." in w else w + ".000000"),
    "dtutc": ("Nullable(DateTime64(6, 'UTC'))", lambda w: w if "." in w else w + ".000000"),
    "date32": ("Nullable(Date32)", lambda w: w[:10] if w.endswith(" 00:00:00") else OUT),
    "dt": ("Nullable(DateTime)", lambda w: w[:19] if "1970" <= w < "2106" and "." not in w else OUT),
}


@pytest.fixture(scope="module")
def paris_routes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """Parquet naive timestamps under TZ=Europe/Paris into route-declared types, NULLs, ms and ns
    units, lists, six small files (one shared insert), and a table a CSV made first."""
    tmp = tmp_path_factory.mktemp("paris_routes")
    data = tmp / "data"
    series = pl.Series("t", WALLS).str.to_datetime(time_unit="us")
    toml = ""
    for table, (kind, _) in ROUTED.items():
        (data / table).mkdir(parents=True)
        pl.DataFrame({"i": range(len(WALLS)), "t": series, "k": table}).write_parquet(data / table / "t.parquet")
        toml += f'[[routes]]\ntable = "{table}"\ncolumns = {{ t = "{kind}" }}\non_bad_rows = "skip"\n'
    for unit in ("ms", "ns"):  # 2299 does not fit a nanosecond count: left out of that one
        (data / unit).mkdir()
        cut = [w for w in WALLS if w is None or w < "2262"] if unit == "ns" else WALLS
        pl.DataFrame({"i": range(len(cut)), "t": pl.Series(cut).str.to_datetime(time_unit=unit)}).write_parquet(
            data / unit / "t.parquet")
    (data / "lists").mkdir()
    pl.DataFrame({"i": [0, 1, 2], "t": [[series[0], None, series[2]], [], None]}).write_parquet(
        data / "lists" / "t.parquet")
    (data / "small").mkdir()
    for i, w in enumerate(WALLS[:-1]):  # (no NULL: a file with one would hold on a Nullable change)
        pl.DataFrame({"i": [i], "t": pl.Series([w], dtype=pl.String).str.to_datetime(time_unit="us")}).write_parquet(
            data / "small" / f"s{i}.parquet")
    (data / "mixed").mkdir()
    (data / "mixed" / "a.csv").write_text("i,t\n-1,2026-02-01T10:00:00.000001\n")
    pl.DataFrame({"i": range(len(WALLS) - 1), "t": series[:-1]}).write_parquet(data / "mixed" / "b.parquet")
    (tmp / "chute.toml").write_text(toml)
    env = {**os.environ, "TZ": "Europe/Paris"}
    ch = tmp / "ch"
    run = subprocess.run([sys.executable, "-m", "chute.core", "--no-ui", "--once", str(data), "--state-dir",
                          str(tmp / "state"), "--clickhouse", f"chdb://{ch}", "--config", str(tmp / "chute.toml")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    tables = [*ROUTED, "ms", "ns", "lists", "small", "mixed"]
    read = textwrap.dedent(f"""
        import json
        from chdb import session
        s = session.Session({str(ch)!r})
        out = {{}}
        for table in {tables!r}:
            rows = s.query(f"SELECT i, toString(t) FROM default.{{table}} ORDER BY i", "JSONCompact")
            out[table] = [r if table in {list(ROUTED)!r} else r[1] for r in json.loads(str(rows))["data"]]
        print(json.dumps(out))
    """)
    return json.loads(subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True,
                                     check=True, timeout=120).stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("table", list(ROUTED))
def test_parquet_naive_timestamps_keep_their_wall_clock_in_every_declared_type(paris_routes, table: str) -> None:
    show = ROUTED[table][1]
    got = {int(i): v for i, v in paris_routes[table]}
    assert got == {i: None if w is None else show(w) for i, w in enumerate(WALLS) if w is None or show(w) != OUT}


def test_parquet_naive_timestamps_in_paris_from_ms_ns_lists_small_files_and_a_csv_made_table(paris_routes) -> None:
    exact = [None if w is None else w if "." in w else w + ".000000" for w in WALLS]
    assert paris_routes["ms"] == [None if w is None else (w + ".000")[:23] for w in WALLS]
    assert paris_routes["ns"] == [None if w is None else (w if "." in w else w + ".000000") + "000"
                                  for w in WALLS if w is None or w < "2262"]
    assert paris_routes["small"] == exact[:-1]
    assert paris_routes["mixed"] == ["2026-02-01 10:00:00.000001", *exact[:-1]]
    assert paris_routes["lists"] == [f"['{exact[0]}',NULL,'{exact[2]}']", "[]", "[]"]
