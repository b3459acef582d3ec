"""`make bench` latency workload (issue 12): rename of a complete file into data/ -> rows visible.

A headless daemon (`chute --no-ui`, default settings, embedded chDB) watches a fresh data
folder. Each drop writes a small CSV elsewhere and renames it in: alternately from inside the
tree (``data/x.csv.tmp`` -> ``data/x.csv``) and from outside it (``outside/x.csv`` ->
``data/x.csv``, which watchdog reports as a bare Created). Latency is from just before the
rename to the ledger's `loaded` time, which the daemon writes only after ``count()`` of the
file's rows in ClickHouse matched: so rows were visible at that moment. One drop at a time,
the next after the previous one loaded. ``--pythonpath`` runs the daemon from another source
tree (a ``chute`` package folder), for before/after figures.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.procs import stop

ROOT = Path(__file__).resolve().parent.parent


def body(seed: int, rows: int) -> bytes:
    lines = ["id,name,amount,ts"]
    lines += [f"{seed * rows + i},n{i % 7},{i * 0.5:.1f},2026-11-{1 + i % 28:02d} 10:00:00" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def loaded_at(db: Path, rel: str) -> float | None:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT state, loaded_at FROM files WHERE path = ? AND current = 1", (rel,)).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    if row is None:
        return None
    if row[0] not in ("loaded", "seen", "settling", "queued", "loading"):
        raise SystemExit(f"{rel} ended {row[0]}")
    return row[1] if row[0] == "loaded" else None


def wait_loaded(db: Path, rel: str, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ts = loaded_at(db, rel)
        if ts is not None:
            return ts
        time.sleep(0.005)
    raise SystemExit(f"{rel} not loaded after {timeout:.0f}s")


def stages(db: Path, rel: str, t0: float) -> dict[str, float]:
    """When the file entered each state, seconds after the rename (from the audit trail)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT to_state, MIN(ts) FROM events WHERE path = ? GROUP BY to_state", (rel,)).fetchall()
    finally:
        conn.close()
    return {state: ts - t0 for state, ts in rows if state}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def run(drops: int, rows: int, pythonpath: str | None, extra: list[str]) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="chute-latency-") as tmp:
        work = Path(tmp)
        data, outside, state = work / "data", work / "outside", work / "state"
        data.mkdir()
        outside.mkdir()
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        cmd = [sys.executable, "-m", "chute.core", "--no-ui", str(data), "--state-dir", str(state),
               "--clickhouse", f"chdb://{work / 'ch'}", "--log-format", "json", *extra]
        log = open(work / "daemon.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        db = state / "ledger.sqlite3"
        try:
            # Warm-up: the table exists and every lane is connected before the first measured drop.
            (data / "lat_warm.csv").write_bytes(body(10**6, rows))
            wait_loaded(db, "lat_warm.csv", timeout=120)
            out: dict[str, list[float]] = {"inside": [], "outside": []}
            marks: dict[str, list[float]] = {}
            for i in range(drops):
                kind = "inside" if i % 2 == 0 else "outside"
                rel = f"lat_{i:04d}.csv"
                src = (data / (rel + ".tmp")) if kind == "inside" else (outside / rel)
                src.write_bytes(body(i, rows))
                t0 = time.time()
                os.rename(src, data / rel)
                out[kind].append(wait_loaded(db, rel) - t0)
                for state, secs in stages(db, rel, t0).items():
                    marks.setdefault(state, []).append(secs)
            order = ("seen", "settling", "queued", "loading", "loaded")
            print("median time after the rename at which the file entered each state: " + ", ".join(
                f"{s} {statistics.median(marks[s]) * 1000:.0f} ms" for s in order if s in marks))
            return out
        finally:
            stop(proc, timeout=30)
            log.close()


def burst(files: int, rows: int, pythonpath: str | None, extra: list[str]) -> float:
    """``files`` files moved in at once: seconds from the first rename until all are loaded."""
    with tempfile.TemporaryDirectory(prefix="chute-burst-") as tmp:
        work = Path(tmp)
        data, outside, state = work / "data", work / "outside", work / "state"
        data.mkdir()
        outside.mkdir()
        env = dict(os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {}))
        cmd = [sys.executable, "-m", "chute.core", "--no-ui", str(data), "--state-dir", str(state),
               "--clickhouse", f"chdb://{work / 'ch'}", "--log-format", "json", *extra]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        db = state / "ledger.sqlite3"
        try:
            (data / "b_warm.csv").write_bytes(body(10**6, rows))
            wait_loaded(db, "b_warm.csv", timeout=120)
            for i in range(files):
                (outside / f"b_{i:05d}.csv").write_bytes(body(i, rows))
            t0 = time.time()
            for i in range(files):
                os.rename(outside / f"b_{i:05d}.csv", data / f"b_{i:05d}.csv")
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                try:
                    (n,) = conn.execute("SELECT count(*) FROM files WHERE state = 'loaded' AND current = 1").fetchone()
                    (last,) = conn.execute("SELECT MAX(loaded_at) FROM files").fetchone()
                finally:
                    conn.close()
                if n == files + 1:
                    return last - t0
                time.sleep(0.2)
            raise SystemExit("burst not loaded in 600 s")
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def report(label: str, out: dict[str, list[float]]) -> None:
    both = out["inside"] + out["outside"]
    for name, values in (("inside", out["inside"]), ("outside", out["outside"]), ("all", both)):
        ms = [v * 1000 for v in values]
        print(f"{label} {name:>7}: n={len(ms)} p50 {statistics.median(ms):7.1f} ms  p90 {pct(ms, 90):7.1f} ms  "
              f"p99 {pct(ms, 99):7.1f} ms  max {max(ms):7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drops", type=int, default=100)
    ap.add_argument("--rows", type=int, default=100, help="rows per dropped file")
    ap.add_argument("--pythonpath", help="run the daemon with this PYTHONPATH (another chute source tree)")
    ap.add_argument("--label", default="chute")
    ap.add_argument("--burst", type=int, default=0, help="also move this many files in at once; time until all load")
    args, extra = ap.parse_known_args()
    load = os.getloadavg()
    print(f"latency: {args.drops} drops of {args.rows}-row CSVs renamed into data/ (half from inside the tree, half "
          f"from outside), daemon with default settings; load average {load[0]:.2f}")
    if args.drops:
        report(args.label, run(args.drops, args.rows, args.pythonpath, extra))
    if args.burst:
        secs = burst(args.burst, args.rows, args.pythonpath, extra)
        print(f"{args.label} burst: {args.burst} files moved in at once, all loaded after {secs:.2f} s "
              f"({args.burst / secs:.0f} files/s)")


if __name__ == "__main__":
    main()
