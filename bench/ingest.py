"""`make bench`: chute against ClickHouse's own ingestion, on the same file, same engine, same machine.

ClickHouse's own: ``INSERT INTO t SELECT * FROM file(path, CSVWithNames)`` into a table with
the column types and settings chute creates for the file (without the lineage columns). chute: the full protocol — hash,
validating pass, batched Arrow inserts with dedup tokens and ledger intents/acks, count()
verification — timed from the `loading` to the `loaded` transition in the ledger, plus the
wall time of a whole `chute --no-ui --once` process. Each side runs in its own process (chDB
allows one engine per process) on a fresh engine directory; we report the median of N runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def generate(path: Path, rows: int, compression: str | None = None) -> None:
    from bench.data import frame  # the one generator of the benchmark's data (bench.suite uses it too)

    frame(rows).write_csv(path)


def native(csv: Path, engine_dir: Path, plain: bool = False) -> dict:
    """ClickHouse's own ingestion of the file (role run in a subprocess). ``plain``: text columns
    as plain String instead of the LowCardinality chute chooses (cheaper for ClickHouse to fill)."""
    import clickhouse_connect

    from chute.core.reader import hash_and_plan, open_source, reader_for
    from chute.core.schema import columns_for, quote_ident

    # The same table definition chute creates for this file (its inferred column types and
    # settings), without the lineage columns: both sides do the same conversions and writes.
    with open_source(csv, None) as src:
        plan = hash_and_plan(src, reader_for(src, "csv"))
    columns = columns_for(plan.schema, plan.null_counts, None if plain else plan.distinct_ratio)
    client = clickhouse_connect.get_client(dsn=f"chdb://{engine_dir}")
    client.command(
        "CREATE TABLE t (" + ", ".join(f"{quote_ident(c.name)} {c.type}" for c in columns) + ")"
        " ENGINE = MergeTree ORDER BY tuple()"
        " SETTINGS non_replicated_deduplication_window = 100000, fsync_after_insert = 1, fsync_part_directory = 1")
    t0 = time.perf_counter()
    client.command(f"INSERT INTO t SELECT * FROM file('{csv}', CSVWithNames)", settings={"async_insert": 0})
    secs = time.perf_counter() - t0
    rows = client.query("SELECT count() FROM t").result_rows[0][0]
    return {"seconds": secs, "rows": rows}


def chute(csv: Path, workdir: Path, batch_rows: int) -> dict:
    """chute's engine on the same file, timed from the ledger's own transitions."""
    data = workdir / "data"
    data.mkdir()
    shutil.copy(csv, data / csv.name)
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "chute.core", "--no-ui", "--once", str(data), "--state-dir", str(workdir / "state"),
           "--clickhouse", f"chdb://{workdir / 'ch'}", "--batch-rows", str(batch_rows), "--log-format", "json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"chute failed ({proc.returncode}): {proc.stderr[-2000:]}")
    import sqlite3

    db = sqlite3.connect(workdir / "state" / "ledger.sqlite3")
    (start,) = db.execute("SELECT ts FROM events WHERE to_state = 'loading' ORDER BY id LIMIT 1").fetchone()
    (end,) = db.execute("SELECT ts FROM events WHERE to_state = 'loaded' ORDER BY id LIMIT 1").fetchone()
    (rows,) = db.execute("SELECT rows_loaded FROM files WHERE state = 'loaded'").fetchone()
    return {"seconds": end - start, "wall": wall, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch-rows", type=int, default=125_000)
    ap.add_argument("--role", choices=["native", "native-plain"], help=argparse.SUPPRESS)
    ap.add_argument("--csv", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        print(json.dumps(native(Path(args.csv), Path(args.dir), plain=args.role == "native-plain")))
        return
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"bench_{args.rows}.csv"
    if not csv.exists():
        generate(csv, args.rows)
    size_mb = csv.stat().st_size / 1e6
    print(f"file: {csv.name}, {args.rows:,} rows x 7 columns, {size_mb:.1f} MB; {args.runs} runs each, "
          f"alternating; batch {args.batch_rows:,} rows")
    same, plain, ch, wall = [], [], [], []
    for run in range(args.runs):
        for role, sink in (("native", same), ("native-plain", plain)):
            with tempfile.TemporaryDirectory(prefix="chute-bench-") as tmp:
                proc = subprocess.run([sys.executable, "-m", "bench.ingest", "--role", role, "--csv", str(csv),
                                       "--dir", str(Path(tmp) / "ch")], cwd=ROOT, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr[-2000:])
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                assert result["rows"] == args.rows, result
                sink.append(result["seconds"])
        with tempfile.TemporaryDirectory(prefix="chute-bench-") as tmp:
            result = chute(csv, Path(tmp), args.batch_rows)
            assert result["rows"] == args.rows, result
            ch.append(result["seconds"])
            wall.append(result["wall"])
        print(f"  run {run + 1}: clickhouse same table {same[-1]:.3f}s, plain-String table {plain[-1]:.3f}s;"
              f" chute {ch[-1]:.3f}s (process wall {wall[-1]:.2f}s)")
    n, p, c = statistics.median(same), statistics.median(plain), statistics.median(ch)
    print(f"median: ClickHouse INSERT ... SELECT FROM file(), same table as chute's: {n:.3f}s "
          f"({args.rows / n / 1e6:.2f} M rows/s)")
    print(f"median: the same into a table with plain String columns:      {p:.3f}s "
          f"({args.rows / p / 1e6:.2f} M rows/s)")
    print(f"median: chute load (hash, validate, insert, verify):          {c:.3f}s "
          f"({args.rows / c / 1e6:.2f} M rows/s)")
    print(f"ratio chute / ClickHouse: {c / n:.2f}x same table, {c / p:.2f}x against the plain-String table "
          f"(chute process wall, incl. start-up: {statistics.median(wall):.2f}s)")


if __name__ == "__main__":
    main()
