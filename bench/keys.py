"""Cost of `skip_existing_keys` (anti-join before insert) against plain `key` (ReplacingMergeTree).

A table already holds N keyed rows; a second file of N rows overlapping half of them loads
with each option. Run: `python -m bench.keys [--rows N]` (also `make bench BENCH=keys`).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from chute.core.config import Config
from chute.core.engine import Engine
from chute.core.routing import Route


def write(path: Path, start: int, rows: int) -> None:
    rng = np.random.default_rng(start)
    pl.DataFrame({"id": np.arange(start, start + rows), "v": rng.random(rows)}).write_csv(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="chute-keys-"))
    results = {}
    try:
        for name, route in [("key (ReplacingMergeTree)", Route(table="k", key=("id",))),
                            ("key + skip_existing_keys", Route(table="k", key=("id",), skip_existing_keys=True))]:
            work = tmp / name.split()[0] / str(len(results))
            data = work / "data" / "k"
            data.mkdir(parents=True)
            cfg = dataclasses.replace(Config(), data_dir=work / "data", state_dir=work / "state",
                                      clickhouse_url=f"chdb://{tmp / 'ch'}", database=f"b{len(results)}",
                                      settle_seconds=0.05, routes=(route,))
            write(data / "1.csv", 0, args.rows)
            engine = Engine(cfg, once=True)
            engine.start()
            try:
                engine.wait_idle()
                write(data / "2.csv", args.rows // 2, args.rows)
                engine.watcher.scan()
                t0 = time.perf_counter()
                engine.wait_idle()
                row = engine.ledger.current("k/2.csv")
                results[name] = (time.perf_counter() - t0, row.rows_loaded, row.state)
            finally:
                engine.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"second file: {args.rows:,} rows, half of its keys already in a {args.rows:,}-row table")
    for name, (secs, loaded, state) in results.items():
        print(f"  {name:<28} {secs:6.2f}s  rows inserted {loaded:,}  ({state})")


if __name__ == "__main__":
    main()
