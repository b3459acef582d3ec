"""What the console costs: open time and key latency with 10,000 files in the ledger, and what
refreshing the screen takes from ingest throughput.

    python -m bench.console keys      # in-process (headless Textual): open, keys, refresh cost
    python -m bench.console keys --runs 5   # ... five times, with the medians over the runs
    python -m bench.console process   # a real `chute DATA` in tmux 80x24: open time, key echo
    python -m bench.console ingest    # the same files loaded by `chute --no-ui` and by `chute` (console)
    python -m bench.console           # all three

Key latency in-process: CPU per key as Pilot sees it (process and UI thread, with the 1 s refresh
running, as before: a refresh's collect and apply count on the key whose Pilot wait they land
in, even after the key's paint), ``keys_*_to_own_paint``: with the refresh running, from the key
to the end of its first paint (what the operator waits for), and ``keys_alone``: each key's own
cost with no refresh tick during the keys, as UI-thread CPU and wall time from the key until the
end of the last paint it caused. In
tmux it is the time from `send-keys` until the captured screen changes (tmux polling included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = 10_000
# What each key in the `keys` run does: cursor moves are the common case; a jump or a pane switch
# paints a page of rows never painted before; space marks. A pane's first visit is counted apart
# (pane_first).
KIND = {"j": "cursor", "k": "cursor", "G": "jump", "g": "jump", "1": "pane", "2": "pane", "3": "pane", "4": "pane",
        "space": "mark"}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(values: list[float]) -> dict:
    return {"median_ms": round(statistics.median(values) * 1000, 1), "p95_ms": round(_pct(values, 0.95) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1), "n": len(values)}


# -- in-process: open, keys, refresh ----------------------------------------------------------


def _count_work() -> dict[str, int]:
    """Counters of what a key press makes Textual do: table rows rendered (a row-cache miss),
    Rich renders (mostly table cells) and screen layout passes. Wraps three Textual/Rich methods
    for the bench process only."""
    import rich.console
    from textual.screen import Screen
    from textual.widgets import DataTable

    counts: dict[str, int] = {}

    def counting(owner: type, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            counts[label] = counts.get(label, 0) + 1
            return inner(*args, **kwargs)

        setattr(owner, name, wrapper)

    counting(DataTable, "_get_row_style", "table_rows_rendered")  # called once per row-cache miss
    counting(rich.console.Console, "render_lines", "rich_renders")
    counting(Screen, "_refresh_layout", "layouts")
    return counts


SEQUENCE = ["j"] * 60 + ["k"] * 20 + ["G", "g", "2", "3", "4", "1"] * 3 + ["space"] * 10


def _kinds() -> list[str]:
    """The kind of each key in SEQUENCE; the first visit of a pane is its own kind (pane_first)."""
    seen: set[str] = {"1"}  # the console opens on the Files pane
    out = []
    for key in SEQUENCE:
        first = KIND[key] == "pane" and key not in seen
        seen.add(key)
        out.append("pane_first" if first else KIND[key])
    return out


class _Paints:
    """When each screen paint ended (UI-thread CPU clock, wall clock): a key's cost is measured up
    to the last paint it caused, not up to when Pilot saw the app idle (Pilot sleeps in 20 ms
    steps and waits for every widget's queue). Wraps Screen._on_timer_update for the bench only,
    before the app starts (the screen's update timer binds the method when it is created)."""

    def __init__(self) -> None:
        from textual.screen import Screen

        self.ends: list[tuple[float, float]] = []
        self.first: tuple[float, float] = (0.0, 0.0)
        self._screen = Screen
        self._inner = Screen._on_timer_update
        paints = self

        def timed(screen: Screen[object]) -> None:
            paints._inner(screen)
            paints.ends.append((time.thread_time(), time.perf_counter()))

        Screen._on_timer_update = timed  # type: ignore[method-assign]

    def close(self) -> None:
        self._screen._on_timer_update = self._inner  # type: ignore[method-assign]

    async def press(self, pilot, key: str) -> tuple[float, float]:
        """(UI-thread CPU, wall) from sending ``key`` until the end of the last paint it caused.
        ``first`` is the same up to the end of the first paint after the key: the key's own
        paint, without work that came after it in the same Pilot wait (a refresh)."""
        self.ends.clear()
        c, w = time.thread_time(), time.perf_counter()
        await pilot.press(key)
        if not self.ends:  # nothing to paint
            self.first = (time.thread_time() - c, time.perf_counter() - w)
            return self.first
        self.first = (self.ends[0][0] - c, self.ends[0][1] - w)
        end_cpu, end_wall = self.ends[-1]
        return end_cpu - c, end_wall - w


async def _keys(root: Path) -> dict:
    from chute.core.attach import AttachedEngine
    from chute.core.config import Config
    from chute.tui.app import ChuteApp
    from chute.tui.demo import seed_bulk, wait_ready
    from chute.tui.screens.details import DetailsScreen

    seed_bulk(root / "state", root / "data", FILES, now=time.time())
    t0 = time.perf_counter()
    engine = AttachedEngine(Config(data_dir=root / "data", state_dir=root / "state"), holder=lambda: "pid 1 daemon")
    app = ChuteApp(engine, refresh_seconds=1.0)
    out: dict = {}
    paints = _Paints()
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_ready(pilot)
            out["open_s"] = round(time.perf_counter() - t0, 3)
            out["caption"] = str(app.main.query_one("#files-caption").render())
            work = _count_work()
            counted: dict[str, dict[str, list[int]]] = {}
            moves: list[float] = []
            cpu: list[float] = []
            main: list[float] = []
            to_paint: list[float] = []
            own: dict[str, list[float]] = {"ui_cpu": [], "wall": []}
            kinds: dict[str, dict[str, list[float]]] = {}
            for key, kind_of in zip(SEQUENCE, _kinds(), strict=True):
                work.clear()
                t, c, m = time.perf_counter(), time.process_time(), time.thread_time()
                ui, _ = await paints.press(pilot, key)
                moves.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)  # every thread: the refresh worker's ticks land on some keys
                main.append(time.thread_time() - m)  # the UI thread only, up to when Pilot saw it idle
                to_paint.append(ui)
                own["ui_cpu"].append(paints.first[0])
                own["wall"].append(paints.first[1])
                kind = kinds.setdefault(kind_of, {"process_cpu": [], "main_thread_cpu": [], "ui_cpu_to_paint": [],
                                                  "wall_to_own_paint": []})
                kind["process_cpu"].append(cpu[-1])
                kind["wall_to_own_paint"].append(paints.first[1])
                kind["main_thread_cpu"].append(main[-1])
                kind["ui_cpu_to_paint"].append(ui)
                for what, n in work.items():
                    counted.setdefault(kind_of, {}).setdefault(what, []).append(n)
            marks: list[float] = []
            for _ in range(4):  # mark every shown file (the filtered set, up to 500 rows), then unmark
                t = time.perf_counter()
                await pilot.press("asterisk")
                marks.append(time.perf_counter() - t)
            out["keys_mark_all_500"] = _ms(marks)
            out["keys_move_pilot_wall"] = _ms(moves)
            out["keys_move_cpu"] = _ms(cpu)
            out["keys_move_main_thread_cpu"] = _ms(main)
            out["keys_ui_cpu_to_paint"] = _ms(to_paint)
            # What the operator waits for: from the key to the end of its own (first) paint, with the
            # refresh running. The figures above also count whatever runs later in Pilot's wait.
            out["keys_ui_cpu_to_own_paint"] = _ms(own["ui_cpu"])
            out["keys_wall_to_own_paint"] = _ms(own["wall"])
            out["keys_by_kind"] = {k: {what: _ms(v) for what, v in d.items()} for k, d in kinds.items()}
            # Work per key, in counts: the same on a quiet or a loaded machine (2 cores shared by many).
            out["keys_work_per_key"] = {k: {what: round(sum(v) / len(kinds[k]["process_cpu"]), 1)
                                            for what, v in d.items()} for k, d in counted.items()}
            typing: list[float] = []
            await pilot.press("slash")
            t0 = time.perf_counter()
            for key in "part-0012":
                t = time.perf_counter()
                await pilot.press(key)
                typing.append(time.perf_counter() - t)
            while app.view is None or app.view.query.text != "part-0012":
                await pilot.pause(0.005)
            out["filter_typed_to_table_s"] = round(time.perf_counter() - t0, 3)
            out["filter_rows"] = len(app.view.files)
            await pilot.press("enter", "escape")
            out["keys_filter_typing"] = _ms(typing)
            t = time.perf_counter()
            await pilot.press("enter")
            while not (isinstance(app.screen, DetailsScreen) and app.screen.settled):
                await pilot.pause(0.005)
            out["details_open_s"] = round(time.perf_counter() - t, 3)
            await pilot.press("escape")
            collect, apply = [], []
            for _ in range(20):
                seen = app.refreshes
                app.poll()
                while app.refreshes == seen:
                    await pilot.pause(0.005)
                assert app.view is not None
                collect.append(app.view.took)
                apply.append(app.apply_seconds)
            out["refresh_collect"] = _ms(collect)
            out["refresh_apply_ui_thread"] = _ms(apply)
            out["refresh_cost_per_second"] = round((statistics.mean(collect) + statistics.mean(apply))
                                                   / app.refresh_seconds, 4)
        out["keys_alone"] = await _keys_alone(root, paints)
    finally:
        paints.close()
    return out


async def _keys_alone(root: Path, paints: _Paints) -> dict:
    """The same keys on the same ledger with no refresh tick during them (the console's own
    refresh is measured apart: refresh_collect, refresh_apply_ui_thread): each key's own cost,
    as UI-thread CPU and wall time from the key until the end of the last paint it caused."""
    from chute.core.attach import AttachedEngine
    from chute.core.config import Config
    from chute.tui.app import ChuteApp
    from chute.tui.demo import wait_ready

    engine = AttachedEngine(Config(data_dir=root / "data", state_dir=root / "state"), holder=lambda: "pid 1 daemon")
    app = ChuteApp(engine, refresh_seconds=3600.0)  # one view at the start, then none
    kinds: dict[str, dict[str, list[float]]] = {}
    every: dict[str, list[float]] = {"ui_cpu_to_paint": [], "wall_to_paint": []}
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_ready(pilot)
        await _settled(pilot)
        for key, kind_of in zip(SEQUENCE, _kinds(), strict=True):
            cpu, wall = await paints.press(pilot, key)
            kind = kinds.setdefault(kind_of, {"ui_cpu_to_paint": [], "wall_to_paint": []})
            for bucket in (kind, every):
                bucket["ui_cpu_to_paint"].append(cpu)
                bucket["wall_to_paint"].append(wall)
        marks = [(await paints.press(pilot, "asterisk"))[0] for _ in range(4)]
    return {"all": {k: _ms(v) for k, v in every.items()},
            "by_kind": {k: {what: _ms(v) for what, v in d.items()} for k, d in kinds.items()},
            "mark_all_500_ui_cpu_to_paint": _ms(marks)}


async def _settled(pilot, timeout: float = 10.0) -> None:
    """Until the console has done what it does after opening (laying out and rendering the hidden
    panes ahead, MainScreen._warm_next), as an operator's first look gives it time to: keys_alone
    measures keys, not start-up work landing on them."""
    screen = pilot.app.main
    deadline = time.monotonic() + timeout
    while (getattr(screen, "_to_warm", None) or getattr(screen, "_warm_due", False)) and time.monotonic() < deadline:
        await pilot.pause(0.05)


async def _baseline() -> dict:
    """The same key presses on a bare Textual app with a 500-row DataTable: Pilot's own waits."""
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            table: DataTable[str] = DataTable(cursor_type="row")
            table.add_columns("a", "b")
            table.add_rows([(str(i), "x" * 20) for i in range(500)])
            yield table

    app = Bare()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        walls, cpu = [], []
        for _ in range(60):
            t, c = time.perf_counter(), time.process_time()
            await pilot.press("down")
            walls.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return {"pilot_wall": _ms(walls), "cpu": _ms(cpu)}


def keys() -> dict:
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(_keys(Path(tmp)))
    out["load_average_1m_before_after"] = [round(load[0], 2), round(os.getloadavg()[0], 2)]  # 2 cores shared
    out["baseline_bare_datatable"] = asyncio.run(_baseline())
    return out


def keys_summary(runs: list[dict]) -> dict:
    """Each figure's median and p95, as the median over runs (a shared machine's load swings)."""

    def over(pick: Callable[[dict], dict]) -> dict:
        return {q: round(statistics.median(pick(r)[q] for r in runs), 1) for q in ("median_ms", "p95_ms")}

    kinds = sorted(runs[0]["keys_by_kind"])
    work = {k: {what: statistics.median(r["keys_work_per_key"].get(k, {}).get(what, 0) for r in runs)
                for what in runs[0]["keys_work_per_key"].get(k, {})} for k in kinds}
    return {
        "load_average_1m": [r["load_average_1m_before_after"] for r in runs],
        "all_keys_process_cpu": over(lambda r: r["keys_move_cpu"]),
        "all_keys_ui_thread_cpu": over(lambda r: r["keys_move_main_thread_cpu"]),
        "all_keys_ui_cpu_to_own_paint": over(lambda r: r["keys_ui_cpu_to_own_paint"]),
        "all_keys_wall_to_own_paint": over(lambda r: r["keys_wall_to_own_paint"]),
        "by_kind_wall_to_own_paint": {k: over(lambda r, k=k: r["keys_by_kind"][k]["wall_to_own_paint"]) for k in kinds},
        "by_kind_process_cpu": {k: over(lambda r, k=k: r["keys_by_kind"][k]["process_cpu"]) for k in kinds},
        "keys_alone_all_ui_cpu_to_paint": over(lambda r: r["keys_alone"]["all"]["ui_cpu_to_paint"]),
        "keys_alone_by_kind_ui_cpu_to_paint": {
            k: over(lambda r, k=k: r["keys_alone"]["by_kind"][k]["ui_cpu_to_paint"]) for k in kinds},
        "mark_all_500_ui_cpu_to_paint": over(lambda r: r["keys_alone"]["mark_all_500_ui_cpu_to_paint"]),
        "work_per_key": work,  # rows rendered, Rich renders, layout passes: independent of the load
    }


# -- a real process in tmux -----------------------------------------------------------------


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def _screen(name: str) -> str:
    return _tmux("capture-pane", "-p", "-t", name)


def process() -> dict:
    from chute.tui.demo import seed_bulk

    name = f"chute-bench-{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        seed_bulk(root / "state", data, FILES, now=time.time())
        cmd = (f"cd {ROOT} && {sys.executable} -m core {data} --state-dir {root / 'state'} "
               f"--clickhouse chdb://{root / 'ch'}")
        t0 = time.perf_counter()
        _tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", cmd)
        try:
            while "of 10,000 files" not in _screen(name):
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("the console did not open:\n" + _screen(name))
                time.sleep(0.01)
            opened = time.perf_counter() - t0
            echoes = []
            for key in ["j"] * 15 + ["k"] * 5:
                before = _screen(name)
                t = time.perf_counter()
                _tmux("send-keys", "-t", name, key)
                while _screen(name) == before and time.perf_counter() - t < 2:
                    time.sleep(0.002)
                echoes.append(time.perf_counter() - t)
            typing = []
            _tmux("send-keys", "-t", name, "/")
            time.sleep(0.3)
            for key in "part-0012":
                before = _screen(name)
                t = time.perf_counter()
                _tmux("send-keys", "-t", name, "-l", key)
                while _screen(name) == before and time.perf_counter() - t < 2:
                    time.sleep(0.002)
                typing.append(time.perf_counter() - t)
            t = time.perf_counter()
            while "100 matching" not in _screen(name) and time.perf_counter() - t < 10:
                time.sleep(0.005)
            filtered = time.perf_counter() - t
            _tmux("send-keys", "-t", name, "Escape")
            time.sleep(0.3)
            t = time.perf_counter()
            _tmux("send-keys", "-t", name, "q")
            while subprocess.run(["tmux", "has-session", "-t", name], capture_output=True).returncode == 0:
                if time.perf_counter() - t > 60:
                    break
                time.sleep(0.02)
            return {"open_s": round(opened, 3), "key_echo": _ms(echoes), "filter_typing_echo": _ms(typing),
                    "filter_result_after_last_key_s": round(filtered, 3), "quit_s": round(time.perf_counter() - t, 3)}
        finally:
            subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


# -- ingest throughput with and without the console -----------------------------------------


def _files(stage: Path, copies: int) -> list[Path]:
    """``copies`` distinct 1M-row CSVs (one extra row each, so no two are duplicates)."""
    src = ROOT / "bench" / "out" / "bench_1000000.csv"
    if not src.exists():
        from bench.ingest import generate

        src.parent.mkdir(parents=True, exist_ok=True)
        generate(src, 1_000_000)
    out = []
    for k in range(copies):
        dest = stage / f"big-{k:04d}.csv"
        shutil.copyfile(src, dest)
        with dest.open("a") as f:
            f.write(f"{-1 - k},1,1.0,DE,2026-01-01T00:00:00.000000,true,extra\n")
        out.append(dest)
    return out


def _main_thread_cpu(pid: int) -> float:
    """CPU seconds of a process's main thread: the console's event loop (the engine has its own threads)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _chute_pid(session: str) -> int:
    shell = int(_tmux("display", "-p", "-t", session, "#{pane_pid}").strip())
    for _ in range(100):
        kids = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    return shell


def _ingest_once(mode: str, copies: int) -> dict:
    from chute.core.ledger import Ledger

    name = f"chute-ingest-{os.getpid()}"
    with tempfile.TemporaryDirectory(dir=ROOT / "bench" / "out") as tmp:
        root = Path(tmp)
        data, stage, sd = root / "data", root / "stage", root / "state"
        data.mkdir()
        stage.mkdir()
        files = _files(stage, copies)
        args = f"{data} --state-dir {sd} --clickhouse chdb://{root / 'ch'} --settle-seconds 0.2"
        proc = None
        if mode == "headless":
            proc = subprocess.Popen([sys.executable, "-m", "chute.core", "--no-ui", *args.split()], cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            command = f"cd {ROOT} && {sys.executable} -m core {args}"
            _tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", command)
        try:
            deadline = time.monotonic() + 60
            while not (sd / "chute.lock").exists() or not (sd / Ledger.FILENAME).exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("chute did not start")
                time.sleep(0.05)
            time.sleep(1.0)  # the engine is up: connect, warm-up
            pid = proc.pid if proc is not None else _chute_pid(name)
            cpu0, wall0 = _main_thread_cpu(pid), time.monotonic()
            for f in files:
                os.replace(f, data / f.name)
            ledger = Ledger(sd, readonly=True)
            try:
                while True:
                    rows = ledger.list_files()
                    if len(rows) == copies and all(r.state == "loaded" for r in rows):
                        break
                    if time.monotonic() > deadline + 600:
                        raise RuntimeError(f"not loaded: {[(r.path, r.state) for r in rows]}")
                    time.sleep(0.05)
                main_cpu = (_main_thread_cpu(pid) - cpu0) / (time.monotonic() - wall0)
                events = ledger.events(limit=100_000)
                start = min(e.ts for e in events if e.to_state == "loading")
                end = max(e.ts for e in events if e.to_state == "loaded")
                total = sum(r.rows or 0 for r in rows)
            finally:
                ledger.close()
            return {"mode": mode, "rows": total, "seconds": round(end - start, 3),
                    "rows_per_s": round(total / (end - start)), "main_thread_cpu": round(main_cpu, 4)}
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=60)
            else:
                subprocess.run(["tmux", "send-keys", "-t", name, "q"], capture_output=True)
                t = time.monotonic()
                while subprocess.run(["tmux", "has-session", "-t", name], capture_output=True).returncode == 0:
                    if time.monotonic() - t > 60:
                        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
                    time.sleep(0.05)


def ingest(rounds: int = 3, copies: int = 6) -> dict:
    runs: dict[str, list[dict]] = {"headless": [], "console": []}
    for _ in range(rounds):
        for mode in ("headless", "console"):  # alternate, so drift in the machine hits both
            runs[mode].append(_ingest_once(mode, copies))
    med = {m: statistics.median(r["rows_per_s"] for r in rs) for m, rs in runs.items()}
    cpu = {m: statistics.median(r["main_thread_cpu"] for r in rs) for m, rs in runs.items()}
    return {"runs": runs, "median_rows_per_s": med, "median_main_thread_cpu": cpu,
            "console_cost": round(1 - med["console"] / med["headless"], 4)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="?", choices=["keys", "process", "ingest", "all"], default="all")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--copies", type=int, default=6, help="1M-row files per ingest run")
    p.add_argument("--runs", type=int, default=1, help="keys: runs; with more than one, keys_summary gives "
                   "the median over the runs of each figure's median and p95")
    args = p.parse_args(argv)
    result = {}
    if args.what in ("keys", "all"):
        runs = [keys() for _ in range(max(1, args.runs))]
        result["keys"] = runs[0] if len(runs) == 1 else runs
        if len(runs) > 1:
            result["keys_summary"] = keys_summary(runs)
    if args.what in ("process", "all"):
        result["process"] = process()
    if args.what in ("ingest", "all"):
        result["ingest"] = ingest(args.rounds, args.copies)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
