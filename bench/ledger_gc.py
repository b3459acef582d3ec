"""Ledger size and `chute status` time for N finished files, before and after `chute gc`.

    .venv/bin/python -m bench.ledger_gc [--files 1000000] [--dir /tmp/chute-gc-bench]

The rows are synthesised with SQL (a recursive CTE), the way chute writes them: each file one
version (loaded, archived: no longer at its path), one acknowledged batch and four events
(seen, settling, queued... loaded), all 30 days old. Then `chute gc` with ledger_keep = 7d.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from chute.core.ledger import Ledger
from chute.core.states import State


def synthesise(state: Path, n: int, age: float) -> None:
    ledger = Ledger(state)
    ledger.set_meta("data_dir", str(state.parent / "data"))
    t = time.time() - age
    with ledger._tx() as c:
        c.execute(
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)"
            " INSERT INTO files(id, path, current, dev, inode, size, mtime_ns, sha256, table_name, fmt, state, rows,"
            "  rows_loaded, batch_rows, first_seen, updated_at, loaded_at, moved_to)"
            " SELECT i, 'exports/f' || i || '.csv', 1, 1, i, 4096, 0, printf('%064x', i), 'exports', 'csv', 'loaded',"
            "  100, 100, 125000, ?, ?, ?, '_archive/exports/f' || i || '.csv' FROM seq", (n, t, t, t))
        c.execute("INSERT INTO batches(file_id, generation, idx, token, rows, state, sent_at, acked_at)"
                  " SELECT id, 0, 0, sha256 || ':125000:0', 100, 'done', ?, ? FROM files", (t, t))
        for k, (a, b) in enumerate([(None, "seen"), ("seen", "settling"), ("settling", "queued"),
                                    ("queued", "loading"), ("loading", "loaded")]):
            c.execute("INSERT INTO events(ts, file_id, path, actor, action, from_state, to_state)"
                      " SELECT ? , id, path, 'engine', 'transition', ?, ? FROM files", (t + k, a, b))
    ledger.close()


def size(state: Path) -> int:
    return sum(p.stat().st_size for p in state.glob("ledger.sqlite3*"))


def status_seconds(state: Path, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "chute.core", "status", "--state-dir", str(state)],
                              capture_output=True, text=True, timeout=600)
        best = min(best, time.perf_counter() - t0)
        assert proc.returncode == 0, proc.stderr
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/chute-gc-bench")
    args = ap.parse_args()
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    state = root / "state"
    state.mkdir()
    t0 = time.perf_counter()
    synthesise(state, args.files, age=30 * 86400)
    out: dict[str, float | int] = {"files": args.files, "synthesis_s": round(time.perf_counter() - t0, 1)}
    out["before_bytes"] = size(state)
    out["before_status_s"] = round(status_seconds(state), 3)
    env = dict(os.environ, CHUTE_LEDGER_KEEP="7d")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "chute.core", "gc", "--json", "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=3600, env=env)
    assert proc.returncode == 0, proc.stderr
    out["gc_s"] = round(time.perf_counter() - t0, 1)
    report = json.loads(proc.stdout)
    out.update({k: report[k] for k in ("files_pruned", "events_pruned", "hashes_kept", "vacuumed")})
    out["after_bytes"] = size(state)
    out["after_status_s"] = round(status_seconds(state), 3)
    ledger = Ledger(state)
    twin = ledger.by_sha(f"{args.files // 2:064x}", [State.LOADED], exclude_id=0)
    out["duplicate_still_caught"] = twin is not None and twin.path == f"exports/f{args.files // 2}.csv"
    ledger.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
