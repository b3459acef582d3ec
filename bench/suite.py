"""`make bench`: every issue-12 workload, chute beside ClickHouse's own ingestion, in one run.

Each side is a fresh process on a fresh engine directory, timed from spawn to exit; its CPU
time (user + sys) and peak RSS come from the kernel's accounting of that child (``wait4``).
ClickHouse's side is a bare chDB process running ``INSERT INTO t SELECT * FROM file(...)`` into
the table definition chute itself created for the same files (read back from chute's engine,
lineage columns left out). Sides alternate (A B, then B A) and each figure is the median of
``--runs``. Absolute times on a shared 2-core machine are noise; the ratios are the result, and
the load average is printed beside them. chute's own modules are byte-compiled first, as an
installed package's are (with PYTHONDONTWRITEBYTECODE set, an editable checkout would otherwise
compile every module in every run, about 0.2 s, while chDB's side loads compiled site-packages).

    python -m bench.suite             # everything (16M rows only with --big)
    python -m bench.suite --quick     # a ~1-minute subset (make bench-quick)
    python -m bench.suite --only csv1m,empty --runs 7
    python -m bench.suite --only csv1m --base /tmp/old   # a third side: another checkout's chute
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.data import OUT, Workload, ensure

ROOT = Path(__file__).resolve().parent.parent

WORKLOADS = {w.name: w for w in (
    Workload("csv1m", 1_000_000, 1, "csv"),
    Workload("ndjson1m", 1_000_000, 1, "ndjson"),
    Workload("parquet1m", 1_000_000, 1, "parquet"),
    Workload("csvgz1m", 1_000_000, 1, "csv.gz"),
    Workload("csvzst1m", 1_000_000, 1, "csv.zst"),
    Workload("small200", 100, 200, "csv"),
    Workload("small2k", 100, 2_000, "csv"),
    Workload("small10k", 10, 10_000, "csv"),
    Workload("csv4m", 4_000_000, 1, "csv"),  # ~256 MB: the biggest CSV parsed in memory (Reader.IN_MEMORY_BYTES)
    Workload("csv16m", 16_000_000, 1, "csv", big=True),
    Workload("csv32m", 32_000_000, 1, "csv", big=True),  # ~2 GB: the memory bound "up to 2 GB"
)}
SPECIAL = ("empty", "files-json")
FULL = ["empty", "csv1m", "ndjson1m", "parquet1m", "csvgz1m", "csvzst1m", "csv4m", "small2k", "small10k", "files-json",
        "csv16m", "csv32m"]
QUICK = ["empty", "csv1m", "small200", "files-json"]
# The targets, as (ratio against which ClickHouse side, at most).
TARGETS = {
    "empty": ("empty", 1.5), "csv1m": ("glob", 1.2), "ndjson1m": ("glob", 1.5), "parquet1m": ("glob", 1.5),
    "csvgz1m": ("glob", 1.5), "csvzst1m": ("glob", 1.5),
    "small200": ("glob", 5.0), "small2k": ("glob", 5.0), "small10k": ("glob", 10.0),
    "csv16m": ("glob", 1.0), "csv32m": ("glob", 1.0),
    "csv4m": ("glob", 1.2),  # (the issue fixes 1.2x at 1M rows and "not worse" at 16M; at 4M only memory)
}
RSS_AT_MOST = 1.25  # peak RSS against the engine's on the same file, every size up to 2 GB
LEDGER_ROWS = 100_000


@dataclass
class Run:
    wall: float  # seconds, spawn to exit
    cpu: float  # user + sys seconds of the child
    rss_mb: float  # peak resident set of the child
    first_line: float | None = None  # seconds to the first line on stdout
    lines: int = 0
    last: str = ""


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a side runs in: as from a shell. Importing polars (this process does, for
    the data) writes its jemalloc defaults into the environment, and a child inheriting them took
    them for an operator's setting: chute's csv1m peak RSS was measured at 687 MB, not 553."""
    from chute.core.memory import POLARS_JEMALLOC_DEFAULT

    out = dict(os.environ if env is None else env)
    if out.get("_RJEM_MALLOC_CONF") == POLARS_JEMALLOC_DEFAULT:
        del out["_RJEM_MALLOC_CONF"]
    return out


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` to completion; wall, CPU and peak RSS of exactly that child (os.wait4)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, env=child_env(env))
        first, lines, last = None, 0, b""
        assert proc.stdout is not None
        for line in proc.stdout:
            if first is None:
                first = time.perf_counter() - t0
            lines += 1
            last = line
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        proc.stdout.close()
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd[:6])} ... exited {proc.returncode}:\n{err.read().decode()[-3000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, first, lines,
               last.decode().strip())


# -- the two sides ---------------------------------------------------------------------------------


def chute_cmd(data: Path, work: Path) -> list[str]:
    return [sys.executable, "-m", "chute.core", "--no-ui", "--once", str(data), "--state-dir", str(work / "state"),
            "--clickhouse", f"chdb://{work / 'ch'}", "--log-format", "json", "--log-level", "warning"]


def run_chute(data: Path, expect_files: int, expect_rows: int, base: Path | None = None) -> Run:
    with tempfile.TemporaryDirectory(prefix="chute-bench-") as tmp:
        run = measure(chute_cmd(data, Path(tmp)), env=base_env(base) if base else None)
        check_ledger(Path(tmp) / "state", expect_files, expect_rows)
    return run


def base_package(checkout: Path, into: Path) -> Path:
    """An importable ``chute`` package over another checkout's core/ and tui/ (``--base``): on
    PYTHONPATH it comes before the editable install of this one, so the same venv runs old code."""
    pkg = into / "chute"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for part in ("core", "tui"):
        (pkg / part).symlink_to(checkout.resolve() / part)
        compileall.compile_dir(checkout / part, quiet=1)
    return into


def base_env(base: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(base)}


def check_ledger(state: Path, files: int, rows: int) -> None:
    db = sqlite3.connect(state / "ledger.sqlite3")
    try:
        n, loaded = db.execute("SELECT count(*), IFNULL(sum(rows_loaded), 0) FROM files"
                               " WHERE state = 'loaded'").fetchone()
    finally:
        db.close()
    if (n, loaded) != (files, rows):
        raise SystemExit(f"chute loaded {n} files / {loaded} rows, expected {files} / {rows}")


def engine_cmd(mode: str, work: Path, ddl: dict | None = None, w: Workload | None = None) -> list[str]:
    spec = {"mode": mode, "dir": str(work / "ch"), "ddl": ddl}
    if w is not None:
        spec.update(glob=w.glob, paths=[str(p) for p in w.paths()] if mode == "perfile" else [],
                    fmt=w.ch_format)
    path = work / "spec.json"
    path.write_text(json.dumps(spec))
    return [sys.executable, "-m", "bench.suite", "--role", "engine", str(path)]


def run_engine(mode: str, ddl: dict | None = None, w: Workload | None = None) -> Run:
    with tempfile.TemporaryDirectory(prefix="chute-bench-") as tmp:
        run = measure(engine_cmd(mode, Path(tmp), ddl, w))
    if w is not None:
        rows = json.loads(run.last)["rows"]
        if rows != w.total_rows:
            raise SystemExit(f"ClickHouse loaded {rows} rows of {w.name}, expected {w.total_rows}")
    return run


def engine_role(spec_path: str) -> None:
    """A bare chDB process: ClickHouse's own ingestion (or, mode ``empty``, just its start-up)."""
    from chdb.session import Session

    spec = json.loads(Path(spec_path).read_text())
    session = Session(spec["dir"])
    if spec["mode"] == "empty":
        session.query("SELECT 1")
        session.close()
        print(json.dumps({"rows": 0}))
        return
    ddl = spec["ddl"]
    cols = ", ".join(f"`{name}` {kind}" for name, kind in ddl["columns"])
    session.query(f"CREATE TABLE t ({cols}) ENGINE = MergeTree ORDER BY tuple() SETTINGS {ddl['settings']}")
    t0 = time.perf_counter()
    for src in [spec["glob"]] if spec["mode"] == "glob" else spec["paths"]:
        session.query(f"INSERT INTO t SELECT * FROM file('{src}', '{spec['fmt']}') SETTINGS async_insert = 0")
    secs = time.perf_counter() - t0
    rows = int(str(session.query("SELECT count() FROM t", "CSV")).strip())
    session.close()
    print(json.dumps({"rows": rows, "insert_seconds": secs}))


def ddl_role(ch_dir: str) -> None:
    """The data columns and table SETTINGS chute created (run after a chute warm-up)."""
    from chdb.session import Session

    from chute.core.schema import LINEAGE_NAMES

    session = Session(ch_dir)
    tables = json.loads(str(session.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = 'default'"
        " AND NOT startsWith(name, '_chute_')", "JSONCompact")))["data"]  # not the fleet mirror's (core/fleet.py)
    (name, create), = tables
    cols = json.loads(str(session.query(
        f"SELECT name, type FROM system.columns WHERE database = 'default' AND table = '{name}' ORDER BY position",
        "JSONCompact")))["data"]
    session.close()
    settings = re.search(r"\bSETTINGS\s+(.*)$", create, re.S)
    print(json.dumps({"columns": [c for c in cols if c[0] not in LINEAGE_NAMES],
                      "settings": settings.group(1) if settings else ""}))


def chute_ddl(w: Workload) -> tuple[dict, Run]:
    """A chute warm-up run (not counted) and the table it made; on the first 20 files of a
    many-file workload (same schema), which saves a whole slow run."""
    with tempfile.TemporaryDirectory(prefix="chute-bench-") as tmp:
        data, files = w.data, w.files
        if w.files > 20:
            data, files = Path(tmp) / "data", 20
            (data / w.folder.name).mkdir(parents=True)
            for src in w.paths()[:files]:
                os.link(src, data / w.folder.name / src.name)
        run = measure(chute_cmd(data, Path(tmp)))
        check_ledger(Path(tmp) / "state", files, files * w.rows)
        out = subprocess.run([sys.executable, "-m", "bench.suite", "--role", "ddl", str(Path(tmp) / "ch")],
                             cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), run


# -- `chute files --json` over a large ledger ------------------------------------------------------


def synth_ledger(state: Path, n: int) -> None:
    """A ledger of ``n`` loaded files written directly (no engine): what a long-lived daemon has."""
    from chute.core.ledger import Ledger

    state.mkdir(parents=True, exist_ok=True)
    Ledger(state).close()  # the current schema
    db = sqlite3.connect(state / "ledger.sqlite3")
    now = time.time() - n
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('data_dir', ?)", (str(state.parent / "data"),))
    db.executemany(
        "INSERT INTO files(path, dev, inode, size, mtime_ns, complete_hint, sha256, table_name, fmt, state, rows,"
        " rows_loaded, batch_rows, first_seen, updated_at, loaded_at) VALUES (?,?,?,?,?,1,?,?,'csv','loaded',"
        " 100, 100, 125000, ?, ?, ?)",
        ((f"events/part-{i:06d}.csv", 2049, 1_000_000 + i, 6_000, i * 1_000_000, f"{i:064x}", "events",
          now + i, now + i + 0.5, now + i + 0.5) for i in range(n)))
    db.commit()
    db.close()


def run_files_json(state: Path) -> Run:
    run = measure([sys.executable, "-m", "chute.core", "files", "--json", "--state-dir", str(state)])
    if run.lines != LEDGER_ROWS:
        raise SystemExit(f"chute files --json printed {run.lines} lines, expected {LEDGER_ROWS}")
    return run


# -- the suite -------------------------------------------------------------------------------------


def alternate(runs: int, sides: dict[str, Callable[[], Run]], label: str) -> dict[str, list[Run]]:
    """Each round runs every side once, the order reversed on odd rounds (A B, B A, ...)."""
    got: dict[str, list[Run]] = {name: [] for name in sides}
    names = list(sides)
    for i in range(runs):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            got[name].append(sides[name]())
        print(f"  {label} round {i + 1}/{runs}: " + ", ".join(
            f"{n} {got[n][-1].wall:.2f}s" for n in names), flush=True)
    return got


def median(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def summarise(name: str, got: dict[str, list[Run]]) -> dict:
    sides = {s: {"wall": median(r, "wall"), "cpu": median(r, "cpu"), "rss_mb": median(r, "rss_mb"),
                 "walls": [round(x.wall, 3) for x in r]} for s, r in got.items()}
    if "chute" in got and got["chute"][0].first_line is not None and name == "files-json":
        sides["chute"]["first_line"] = median(got["chute"], "first_line")
    out: dict = {"workload": name, "sides": sides}
    if "base" in sides:
        out["ratio_base"] = {k: sides["chute"][k] / sides["base"][k] for k in ("wall", "cpu", "rss_mb")
                             if sides["base"][k]}
    if name in TARGETS and "chute" in sides:
        against, target = TARGETS[name]
        other = sides.get(against)
        if other:
            out["ratio"] = {k: sides["chute"][k] / other[k] for k in ("wall", "cpu", "rss_mb") if other[k]}
            out["target"] = {"against": against, "wall_ratio_at_most": target}
            if WORKLOADS.get(name) and WORKLOADS[name].files == 1:
                out["target"]["rss_ratio_at_most"] = RSS_AT_MOST
        if "perfile" in sides:
            out["ratio_perfile_wall"] = sides["chute"]["wall"] / sides["perfile"]["wall"]
    return out


def bench_workload(name: str, runs: int, base: Path | None = None) -> dict:
    if name == "empty":
        with tempfile.TemporaryDirectory(prefix="chute-bench-") as tmp:
            data = Path(tmp) / "data"
            data.mkdir()
            sides = {"chute": lambda: run_chute(data, 0, 0), "empty": lambda: run_engine("empty")}
            if base:
                sides["base"] = lambda: run_chute(data, 0, 0, base)
            return summarise(name, alternate(runs, sides, name))
    if name == "files-json":
        with tempfile.TemporaryDirectory(prefix="chute-bench-") as tmp:
            state = Path(tmp) / "state"
            synth_ledger(state, LEDGER_ROWS)
            return summarise(name, alternate(runs, {"chute": lambda: run_files_json(state)}, name))
    w = WORKLOADS[name]
    print(f"  {name}: {w.files:,} file(s) x {w.rows:,} rows, {w.fmt}", flush=True)
    # In a child: a parent that built a 16M-row frame would pass its peak RSS on to every side it
    # spawns (Linux keeps a process's RSS high-water mark across fork and exec: ru_maxrss).
    subprocess.run([sys.executable, "-m", "bench.suite", "--role", "ensure", name], cwd=ROOT, check=True)
    ddl, _ = chute_ddl(w)
    sides: dict[str, Callable[[], Run]] = {
        "chute": lambda: run_chute(w.data, w.files, w.total_rows),
        "glob": lambda: run_engine("glob", ddl, w),
    }
    if base:
        sides["base"] = lambda: run_chute(w.data, w.files, w.total_rows, base)
    if w.files > 1:
        sides["perfile"] = lambda: run_engine("perfile", ddl, w)
    return summarise(name, alternate(runs, sides, name))


def loadavg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(results: list[dict]) -> None:
    print()
    print(f"{'workload':<11} {'side':<8} {'wall s':>8} {'cpu s':>8} {'rss MB':>8}   chute/ClickHouse")
    for res in results:
        for side, m in res["sides"].items():
            extra = ""
            if side == "chute" and "ratio" in res:
                r, t = res["ratio"], res["target"]
                extra = (f"wall {r['wall']:.2f}x, cpu {r.get('cpu', 0):.2f}x, rss {r.get('rss_mb', 0):.2f}x"
                         f" vs {t['against']} (target <= {t['wall_ratio_at_most']}x"
                         + (f", rss <= {t['rss_ratio_at_most']}x)" if "rss_ratio_at_most" in t else ")"))
                if "ratio_perfile_wall" in res:
                    extra += f"; {res['ratio_perfile_wall']:.2f}x vs one INSERT per file"
            if side == "base" and "ratio_base" in res:
                b = res["ratio_base"]
                extra = f"chute/base: wall {b['wall']:.2f}x, cpu {b.get('cpu', 0):.2f}x, rss {b.get('rss_mb', 0):.2f}x"
            if "first_line" in m:
                extra = f"first line after {m['first_line']:.2f}s"
            print(f"{res['workload']:<11} {side:<8} {m['wall']:>8.2f} {m['cpu']:>8.2f} {m['rss_mb']:>8.0f}   {extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a ~1-minute subset: " + ", ".join(QUICK))
    ap.add_argument("--big", action="store_true", help="also 16M rows (about 1 GB of CSV)")
    ap.add_argument("--only", help="comma-separated workloads: " + ", ".join([*SPECIAL, *WORKLOADS]))
    ap.add_argument("--runs", type=int, help="rounds per workload (default 5; 3 with --quick)")
    ap.add_argument("--base", type=Path, help="another checkout (e.g. a worktree of main): its chute runs as a"
                    " third side, alternated with the others (A/B of a change)")
    ap.add_argument("--role", choices=["engine", "ddl", "ensure"], help=argparse.SUPPRESS)
    ap.add_argument("arg", nargs="?", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "engine":
        return engine_role(args.arg)
    if args.role == "ddl":
        return ddl_role(args.arg)
    if args.role == "ensure":
        return ensure(WORKLOADS[args.arg])
    names = args.only.split(",") if args.only else QUICK if args.quick else [
        n for n in FULL if args.big or not (n in WORKLOADS and WORKLOADS[n].big)]
    unknown = [n for n in names if n not in WORKLOADS and n not in SPECIAL]
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(unknown)}")
    runs = args.runs or (3 if args.quick else 5)
    for package in ("core", "tui"):  # as `pip install` does: see the module docstring
        compileall.compile_dir(ROOT / package, quiet=1)
    base = base_package(args.base, Path(tempfile.mkdtemp(prefix="chute-base-"))) if args.base else None
    started = loadavg()
    print(f"chute vs ClickHouse (chDB), {runs} alternating rounds, median; load average {started}", flush=True)
    results = []
    for name in names:
        results.append(bench_workload(name, runs, base))
    report(results)
    ended = loadavg()
    print(f"load average at start {started}, at end {ended} (2 cores; ratios, not absolute times, are the result)")
    OUT.mkdir(exist_ok=True)
    out = OUT / f"suite-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"runs": runs, "load_start": started, "load_end": ended, "results": results},
                              indent=1))
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
