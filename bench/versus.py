"""`python -m bench.versus REV`: this checkout against an earlier commit, whole processes, A/B.

Issue 9 asks what whole-file inference costs "against today's" code: the commit the issue was
filed on (1565b52), which trusted a sample. This runs that commit's ``chute --no-ui --once`` and
this checkout's on the same bench file, each a fresh process on a fresh engine, alternating
(A B, then B A), and reports the medians of wall time, CPU time (user + sys) and peak RSS of
exactly that child (``wait4``, as bench.suite does), with the ratio and the load average.

The old code is taken with ``git archive`` into a temporary folder and run with this venv (the
packages are the same); a commit from before the ``chute`` package (core/ imported as ``core``)
runs as ``python -m core``.

    python -m bench.versus 1565b52 --only csv1m --runs 7
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from bench.data import ensure
from bench.suite import ROOT, WORKLOADS, Run, chute_cmd, loadavg, measure


def unpack(rev: str, into: Path) -> list[str]:
    """The commit's tree under ``into``; the command prefix that runs its chute."""
    blob = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    pyproject = (into / "pyproject.toml").read_text()
    if '"core.cli:main"' in pyproject:  # before the chute package: core/ is the top-level `core`
        return [sys.executable, "-m", "core"]
    pkg = into / "_pkg" / "chute"  # core/ and tui/ as chute.core, chute.tui, as pyproject maps them
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in ("core", "tui"):
        (pkg / name).symlink_to(into / name)
    return [sys.executable, "-m", "chute.core"]


def side(prefix: list[str] | None, old: Path | None, data: Path) -> Run:
    with tempfile.TemporaryDirectory(prefix="chute-versus-") as tmp:
        cmd = chute_cmd(data, Path(tmp))
        env = None
        if prefix is not None and old is not None:
            cmd = prefix + cmd[3:]
            env = dict(os.environ, PYTHONPATH=f"{old / '_pkg'}:{old}")
        return measure(cmd, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the earlier commit (e.g. 1565b52, the code issue 9 was filed on)")
    ap.add_argument("--only", default="csv1m", help="comma-separated bench.suite workloads (default csv1m)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    started = loadavg()
    with tempfile.TemporaryDirectory(prefix="chute-old-") as tmp:
        old = Path(tmp)
        prefix = unpack(args.rev, old)
        for tree in (ROOT, old):  # byte-compiled, as an installed package is (bench.suite does the same)
            for package in ("core", "tui"):
                compileall.compile_dir(tree / package, quiet=1)
        for name in args.only.split(","):
            w = WORKLOADS[name]
            ensure(w)
            runs: dict[str, list[Run]] = {"old": [], "new": []}
            for i in range(args.runs):
                order = ("old", "new") if i % 2 == 0 else ("new", "old")
                for who in order:
                    runs[who].append(side(prefix, old, w.data) if who == "old" else side(None, None, w.data))
            med = {who: {k: statistics.median(getattr(r, k) for r in rs) for k in ("wall", "cpu", "rss_mb")}
                   for who, rs in runs.items()}
            print(json.dumps({"workload": name, "rev": args.rev, "runs": args.runs, "median": med,
                              "ratio_new_over_old": {k: med["new"][k] / med["old"][k] for k in med["new"]},
                              "walls": {who: [round(r.wall, 3) for r in rs] for who, rs in runs.items()},
                              "load_start": started, "load_end": loadavg()}, indent=1))


if __name__ == "__main__":
    main()
