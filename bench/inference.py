"""`python -m bench.inference`: what whole-file type inference costs on the 1M-row CSV.

Two sides, alternating A B / B A, each a fresh `chute --no-ui --once` process on a fresh engine:
``whole`` is chute as it is; ``sample`` is the same chute with the first rows' types trusted
(one typed parse of the file, no whole-file check: what a loader without lossless inference
does). Reported: medians of the load phase (ledger `loading` -> `loaded`), of the validate step
(hash + plan, from the `loaded` log line) and of the process CPU time, with the load average.
``--reader``: no engine, only the reader in fresh processes: CPU (and wall) of hash + plan, the
part before the first insert, and of typing the batches, which runs beside the inserts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _trust_the_sample() -> None:
    """The ``sample`` side: CSV columns get the sample's candidate types in one typed parse."""
    import polars as pl

    from chute.core.formats.delimited import CsvReader
    from chute.core.formats.infer import Verdict
    from chute.core.reader import Reader

    def full_pass(self: CsvReader, candidates: dict[str, str | None]) -> object:
        verdicts = {c: Verdict(k or "text") for c, k in candidates.items()}
        frame = pl.read_csv(self.src.proc_path, schema={c: v.wire for c, v in verdicts.items()}, **self._read_args())
        self._set_verdicts(verdicts)
        self._short_suspects = frame[self.names[-1]].is_null().arg_true()
        self._frame = frame
        return self._finish_plan(frame.height, dict(zip(frame.columns, frame.null_count().row(0), strict=True)))

    CsvReader._full_pass = full_pass  # type: ignore[method-assign,assignment]
    CsvReader._parse_early = lambda self: None  # type: ignore[method-assign,assignment,return-value]  # (its text parse)
    CsvReader._raw_batches = Reader._raw_batches  # type: ignore[method-assign]  # batches are typed already


def run(side: str, csv: Path, batch_rows: int) -> dict:
    """One load in a child process; its load phase, validate step and CPU time."""
    import sqlite3

    with tempfile.TemporaryDirectory(prefix="chute-bench-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        shutil.copy(csv, work / "data" / csv.name)
        args = ["--no-ui", "--once", str(work / "data"), "--state-dir", str(work / "state"),
                "--clickhouse", f"chdb://{work / 'ch'}", "--batch-rows", str(batch_rows), "--log-format", "json"]
        cmd = [sys.executable, "-m", "bench.inference", "--role", side, "--", *args]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{side} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        db = sqlite3.connect(work / "state" / "ledger.sqlite3")
        (start,) = db.execute("SELECT ts FROM events WHERE to_state = 'loading' ORDER BY id LIMIT 1").fetchone()
        (end,) = db.execute("SELECT ts FROM events WHERE to_state = 'loaded' ORDER BY id LIMIT 1").fetchone()
        (rows,) = db.execute("SELECT rows_loaded FROM files WHERE state = 'loaded'").fetchone()
        db.close()
    validate = next((float(m.group(1)) for m in re.finditer(r"validate ([0-9.]+)s", proc.stderr)), float("nan"))
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"load": end - start, "validate": validate, "cpu": cpu, "rows": rows}


def _reader_child(side: str, csv: str) -> None:
    """One fresh process: hash + plan, then every batch with its lineage (what the producer does)."""
    if side == "sample":
        _trust_the_sample()
    import time
    from concurrent.futures import ThreadPoolExecutor

    from chute.core.reader import hash_and_plan, open_source, reader_for, with_lineage

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    with ThreadPoolExecutor(2) as pool, open_source(Path(csv), None) as src:
        reader = reader_for(src, "csv")
        c0, t0 = cpu(), time.perf_counter()
        hash_and_plan(src, reader, pool)
        c1, t1 = cpu(), time.perf_counter()
        for idx, df in reader.batches(125_000):
            with_lineage(df, "bench", "0" * 64, idx * 125_000)
        c2 = cpu()
    print(json.dumps({"plan_cpu": c1 - c0, "plan_wall": t1 - t0, "batches_cpu": c2 - c1}))


def _reader_runs(csv: Path, runs: int) -> None:
    got: dict[str, list[dict]] = {"sample": [], "whole": []}
    loads = [os.getloadavg()[0]]
    for i in range(runs):
        for side in ("sample", "whole") if i % 2 == 0 else ("whole", "sample"):
            proc = subprocess.run([sys.executable, "-m", "bench.inference", "--role", side, "--reader", str(csv)],
                                  cwd=ROOT, capture_output=True, text=True, check=True)
            got[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        loads.append(os.getloadavg()[0])
    print(f"reader only, median of {runs} fresh processes (load average {min(loads):.1f}-{max(loads):.1f}):")
    for side, rs in got.items():
        print(f"  {side:<6} hash + plan CPU {statistics.median(r['plan_cpu'] for r in rs):.3f}s "
              f"(wall {statistics.median(r['plan_wall'] for r in rs):.3f}s), "
              f"batches CPU {statistics.median(r['batches_cpu'] for r in rs):.3f}s")


def _child(side: str, argv: list[str]) -> int:
    if side == "sample":
        _trust_the_sample()
    from chute.core.cli import main

    return main(argv)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch-rows", type=int, default=125_000)
    ap.add_argument("--role", choices=["whole", "sample"], help=argparse.SUPPRESS)
    ap.add_argument("--reader", nargs="?", const="", help="reader only (no engine): CPU before the first insert")
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role and args.reader:
        _reader_child(args.role, args.reader)
        return
    if args.role:
        raise SystemExit(_child(args.role, args.rest))
    from bench.ingest import generate

    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"bench_{args.rows}.csv"
    if not csv.exists():
        generate(csv, args.rows)
    if args.reader is not None:
        _reader_runs(csv, args.runs)
        return
    loads = [os.getloadavg()[0]]
    got: dict[str, list[dict]] = {"sample": [], "whole": []}
    for i in range(args.runs):
        order = ("sample", "whole") if i % 2 == 0 else ("whole", "sample")
        for side in order:
            r = run(side, csv, args.batch_rows)
            assert r["rows"] == args.rows, r
            got[side].append(r)
        loads.append(os.getloadavg()[0])
        print(f"  run {i + 1}: " + ", ".join(f"{s} load {got[s][-1]['load']:.3f}s, validate "
                                          f"{got[s][-1]['validate']:.3f}s" for s in ("sample", "whole")), flush=True)
    med = {s: {k: statistics.median(r[k] for r in rs) for k in ("load", "validate", "cpu")} for s, rs in got.items()}
    print(f"median of {args.runs} (load average {min(loads):.1f}-{max(loads):.1f}):")
    for s in ("sample", "whole"):
        print(f"  {s:<6} load {med[s]['load']:.3f}s  validate {med[s]['validate']:.3f}s  "
              f"process CPU {med[s]['cpu']:.2f}s")
    print(f"whole-file inference costs {med['whole']['load'] / med['sample']['load'] - 1:+.1%} on the load phase")
    (out / "inference.json").write_text(json.dumps({"runs": got, "median": med, "loadavg": loads}, indent=1))


if __name__ == "__main__":
    main()
