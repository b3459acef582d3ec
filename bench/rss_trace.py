"""Resident memory of one ``chute --once`` over time, with its log lines as phase markers: where
the peak is reached and of what it is made (anonymous, file-backed, shared pages).

    .venv/bin/python -m bench.rss_trace bench/out/csvgz1m/data [--every 0.005] [--base /work/wt/base]

Samples /proc/PID/status (VmRSS, RssAnon, RssFile, RssShmem) every ``--every`` seconds while the
process runs; prints a line per log record (the RSS when it was read) and a line per 25 MB step,
then the peak and the kernel's own high-water mark (VmHWM, what ``bench.suite`` reports).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.suite import ROOT, base_env, base_package, child_env

FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM")


def status(pid: int) -> dict[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in FIELDS:
            out[key] = int(value.split()[0]) // 1024
    return out if "VmRSS" in out else None


def trace(data: Path, every: float, base: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="chute-rss-") as tmp:
        cmd = [sys.executable, "-m", "chute.core", "--no-ui", "--once", str(data), "--state-dir", f"{tmp}/state",
               "--clickhouse", f"chdb://{tmp}/ch", "--log-format", "json", "--log-level", "debug"]
        env = child_env(base_env(base) if base else None)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        events: list[tuple[float, str]] = []

        def read_log() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                now = time.perf_counter() - t0
                try:
                    rec = json.loads(raw)
                    text = f"{rec.get('logger', '')}: {rec.get('message', rec.get('msg', ''))}"
                except ValueError:
                    text = raw.decode(errors="replace").strip()
                events.append((now, text[:110]))

        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()
        samples: list[tuple[float, dict[str, int]]] = []
        hwm = 0
        while proc.poll() is None:
            s = status(proc.pid)
            if s:
                samples.append((time.perf_counter() - t0, s))
                hwm = max(hwm, s.get("VmHWM", 0))
            time.sleep(every)
        reader.join(5)
    if not samples:
        raise SystemExit("no samples")
    peak_t, peak = max(samples, key=lambda x: x[1]["VmRSS"])
    rows: list[tuple[float, str]] = [(t, f"  | {msg}") for t, msg in events]
    last = -100
    for t, s in samples:
        if abs(s["VmRSS"] - last) >= 25 or (t, s) == (peak_t, peak):
            rows.append((t, f"{s['VmRSS']:5d} MB  anon {s.get('RssAnon', 0):4d} file {s.get('RssFile', 0):4d}"
                            f" shmem {s.get('RssShmem', 0):3d}" + ("   <- peak" if t == peak_t else "")))
            last = s["VmRSS"]
    for t, line in sorted(rows):
        print(f"{t:6.3f}s {line}")
    print(f"peak {peak['VmRSS']} MB at {peak_t:.3f}s (anon {peak.get('RssAnon')}, file {peak.get('RssFile')}, "
          f"shmem {peak.get('RssShmem')}); VmHWM {hwm} MB; exit {proc.returncode}; {len(samples)} samples")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--every", type=float, default=0.005)
    ap.add_argument("--base", type=Path, help="another checkout's chute (as bench.suite --base)")
    args = ap.parse_args()
    base = base_package(args.base, Path(tempfile.mkdtemp(prefix="chute-base-"))) if args.base else None
    trace(args.data.resolve(), args.every, base)


if __name__ == "__main__":
    main()
