"""Native read (core/native.py) against the Arrow path, and what a native CSV read would cost.

Two measurements, each side a fresh process, alternated (A B, B A), medians of ``--runs``:

1. ``chute --once`` with ``native_read`` on and off: wall, CPU and peak RSS of the whole process
   (Parquet takes the native read; other formats show that nothing changed for them).
2. ``--csv-probe``: the step a native CSV read would replace. chute must parse a CSV file itself
   anyway (lossless inference reads every value), so the native read can only win if ClickHouse's
   ``INSERT ... SELECT FROM file()`` of the file (lineage and row numbers included, one block)
   costs less than chute's Arrow inserts of the frame it already holds: the probe times that
   INSERT in a bare chDB process against the ``insert`` seconds chute logs for the same file.

    python -m bench.native_ab --only parquet1m,csv1m --runs 5
    python -m bench.native_ab --only csv1m --csv-probe --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.suite import ROOT, WORKLOADS, Run, check_ledger, chute_cmd, chute_ddl, loadavg, measure


def run_chute(data: Path, native: bool, files: int, rows: int) -> Run:
    """One ``--once`` run with ``native_read`` on or off."""
    with tempfile.TemporaryDirectory(prefix="chute-native-") as tmp:
        env = {**os.environ, "CHUTE_NATIVE_READ": "true" if native else "false"}
        run = measure(chute_cmd(data, Path(tmp)), env=env)
        check_ledger(Path(tmp) / "state", files, rows)
    return run


def chute_insert_seconds(data: Path, native: bool) -> float:
    """The ``insert`` step chute logs for a one-file workload (stderr, JSON lines)."""
    with tempfile.TemporaryDirectory(prefix="chute-native-") as tmp:
        cmd = [*chute_cmd(data, Path(tmp))[:-2], "--log-level", "info"]
        env = {**os.environ, "CHUTE_NATIVE_READ": "true" if native else "false"}
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"insert ([0-9.]+)s", out.stderr)
    return float(found.group(1)) if found else float("nan")


PROBE = """
import json, sys, time
from chdb.session import Session
spec = json.loads(sys.argv[1])
s = Session(spec["dir"])
cols = ", ".join(f"`{n}` {t}" for n, t in spec["columns"])
s.query(f"CREATE TABLE t ({cols}, _source_path LowCardinality(String), _source_sha256 LowCardinality(String),"
        " _source_row UInt64, _ingested_at DateTime64(3) DEFAULT now64(3),"
        " INDEX _chute_src _source_sha256 TYPE bloom_filter GRANULARITY 1) ENGINE = MergeTree ORDER BY tuple()"
        f" SETTINGS {spec['settings']}")
names = ", ".join(f"`{n}`" for n, _ in spec["columns"])
t0 = time.perf_counter()
s.query(f"INSERT INTO t ({names}, _source_path, _source_sha256, _source_row) SELECT {names}, 'x', '{'a' * 64}',"
        f" rowNumberInAllBlocks() + 1 FROM file('{spec['path']}', 'CSV', '{cols}') SETTINGS async_insert = 0,"
        " insert_deduplication_token = 'probe', input_format_csv_skip_first_lines = 1,"
        " input_format_csv_trim_whitespaces = 0, precise_float_parsing = 1, input_format_null_as_default = 0,"
        " date_time_input_format = 'best_effort', min_insert_block_size_rows = 1048576,"
        " min_insert_block_size_bytes = 0, max_insert_threads = 1")
print(json.dumps({"insert_seconds": time.perf_counter() - t0}))
"""


def csv_probe(name: str, runs: int) -> None:
    w = WORKLOADS[name]
    ddl, _ = chute_ddl(w)
    native, arrow = [], []
    for i in range(runs):
        for side in (("probe", "chute") if i % 2 == 0 else ("chute", "probe")):
            if side == "chute":
                arrow.append(chute_insert_seconds(w.data, native=False))
                continue
            with tempfile.TemporaryDirectory(prefix="chute-native-") as tmp:
                spec = json.dumps({"dir": str(Path(tmp) / "ch"), "columns": ddl["columns"],
                                   "settings": ddl["settings"], "path": str(w.paths()[0])})
                run = measure([sys.executable, "-c", PROBE, spec])
                native.append(json.loads(run.last)["insert_seconds"])
    print(f"{name}: ClickHouse's native CSV insert {statistics.median(native):.3f} s (wall, median of {runs}) "
          f"against chute's Arrow inserts {statistics.median(arrow):.3f} s, after the parse chute makes either way")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="parquet1m,csv1m")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--csv-probe", action="store_true", help="time a native CSV insert against chute's Arrow one")
    args = ap.parse_args()
    print(f"load average {loadavg()}", flush=True)
    for name in args.only.split(","):
        w = WORKLOADS[name]
        subprocess.run([sys.executable, "-m", "bench.suite", "--role", "ensure", name], cwd=ROOT, check=True)
        if args.csv_probe:
            csv_probe(name, args.runs)
            continue
        got: dict[str, list[Run]] = {"native": [], "arrow": []}
        for i in range(args.runs):
            for side in (("native", "arrow") if i % 2 == 0 else ("arrow", "native")):
                got[side].append(run_chute(w.data, side == "native", w.files, w.total_rows))
        med = {s: {k: statistics.median(getattr(r, k) for r in rs) for k in ("wall", "cpu", "rss_mb")}
               for s, rs in got.items()}
        for side, m in med.items():
            print(f"{name:<10} {side:<7} wall {m['wall']:.2f} s  cpu {m['cpu']:.2f} s  rss {m['rss_mb']:.0f} MB")
        ratio = {k: med["native"][k] / med["arrow"][k] for k in ("wall", "cpu", "rss_mb")}
        print(f"{name:<10} native/arrow: wall {ratio['wall']:.2f}x, cpu {ratio['cpu']:.2f}x,"
              f" rss {ratio['rss_mb']:.2f}x")
    print(f"load average {loadavg()} ({time.strftime('%H:%M:%S')})")


if __name__ == "__main__":
    main()
