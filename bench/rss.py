"""Peak RSS of a headless chute loading one file into a remote ClickHouse over HTTP
(tests/chhttp.py: the HTTP interface with chDB in *its own* process, so only chute is measured).
Sizes the Kubernetes resource requests in deploy/kubernetes/.

    .venv/bin/python -m bench.rss [--rows 1000000 4000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ingest import generate
from tests.chhttp import ChHttpServer


def peak_rss(rows: int, work: Path) -> dict:
    data = work / f"data{rows}"
    data.mkdir()
    csv = data / "events.csv"
    generate(csv, rows)
    secret = "bench-pw"
    with ChHttpServer(work / f"engine{rows}", user="chute", password=secret) as server:
        env = dict(os.environ, CHUTE_CLICKHOUSE_PASSWORD=secret)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "chute.core", "--no-ui", "--once", str(data),
                                 "--state-dir", str(work / f"state{rows}"), "--settle-seconds", "0",
                                 "--clickhouse", f"http://chute@127.0.0.1:{server.port}", "--log-format", "json"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    return {"rows": rows, "file_mb": round(csv.stat().st_size / 1e6, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024),
            "seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="chute-rss-") as tmp:
        print(json.dumps([peak_rss(n, Path(tmp)) for n in args.rows], indent=2))


if __name__ == "__main__":
    main()
