"""A seeded, frozen console: a real ledger and data folder with fixed content and timestamps.

    python -m chute.tui.demo                       # open the console on the demo (attached, clock frozen)
    python -m chute.tui.demo --screenshots DIR     # SVG + PNG of the main screen, a drifted file, quarantine

The ledger is written with the same schema the engine uses; ages and rates are computed against
a frozen clock, and the data folder is recorded as ``data`` relative to the demo folder (which
the demo runs in), so screenshots and snapshot tests come out identical on every run and host.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import html
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from chute.core import alerts
from chute.core.alerts import Alert
from chute.core.attach import AttachedEngine
from chute.core.config import Config
from chute.core.engine import Snapshot
from chute.core.ledger import Ledger, connect

NOW = 1795870800.0  # 2026-11-28 13:00:00 UTC
TARGET = "chdb:///var/lib/chute/clickhouse"
DAEMON = "pid 4242 daemon"


def default_root() -> Path:
    return Path(tempfile.gettempdir()) / f"chute-demo-{os.getuid()}"


@contextmanager
def inside(root: Path) -> Iterator[None]:
    """Run in the demo folder: its ledger names the data folder relative to it."""
    before = os.getcwd()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(before)


@dataclass(frozen=True)
class DemoFile:
    path: str
    table: str
    state: str
    age: float  # seconds before NOW of its last change
    rows: int | None = None
    size: int | None = None
    loaded: int = 0
    attempts: int = 1
    error: str | None = None
    error_kind: str | None = None
    retry_in: float | None = None
    moved_to: str | None = None
    content: str = ""
    gz: bool = False


ORDERS = "id,customer,amount,ts\n" + "".join(
    f"{1000 + i},cust-{(i * 37) % 91:03d},{(i * 7.31) % 250:.2f},2026-11-28T1{i % 3}:{i % 60:02d}:00\n"
    for i in range(40))
EVENTS_DRIFT = "id,kind,user_id,device,country\n" + "".join(
    f"{i},{['click', 'view', 'buy'][i % 3]},{5000 + i},{['ios', 'android', 'web'][i % 3]},"
    f"{['DE', 'FR', 'US', 'BR'][i % 4]}\n" for i in range(30))
FLIGHTS_BAD = "flight,dep_time,origin\n" + "".join(f"LH{400 + i},2026-11-28T0{i % 9}:15:00,FRA\n" for i in range(12)) \
    + "LH499,25:61,FRA\n"
CLICKS = "ts,user_id,url,ms\n" + "".join(
    f"2026-11-28T12:{i % 60:02d}:00,{7000 + i},/p/{i % 17},{(i * 13) % 900}\n" for i in range(40))
PAYMENTS = "id,order_id,amount,currency\n" + "".join(f"{i},{1000 + i},{i * 3.5:.2f},EUR\n" for i in range(25))
PARTNERS = "sku,partner,price\n" + "".join(f"SKU-{i:04d},acme,{i * 1.25:.2f}\n" for i in range(25))

FILES: list[DemoFile] = [
    DemoFile("clicks/clicks-2026-11-28-0042.csv.gz", "clicks", "loading", 1, 2_000_000, 48_213_504, 1_240_000,
             content=CLICKS, gz=True),
    DemoFile("clicks/clicks-2026-11-28-0043.csv.gz", "clicks", "queued", 3, None, 47_902_117, content=CLICKS,
             gz=True),
    DemoFile("uploads/export-2026-11-28.csv", "uploads", "settling", 2, None, 1_203_331, content=PARTNERS),
    DemoFile("orders/orders-2026-11-28-0012.csv", "orders", "loaded", 8, 250_000, 12_402_311, 250_000,
             content=ORDERS),
    DemoFile("payments/payments-0003.csv", "payments", "failed", 20, 80_000, 3_221_004, 0, attempts=3,
             error="ClickHouse refused the insert: Code: 241. DB::Exception: Memory limit (total) exceeded: "
                   "would use 3.51 GiB, maximum: 3.44 GiB. (MEMORY_LIMIT_EXCEEDED)",
             error_kind="clickhouse", retry_in=25, content=PAYMENTS),
    DemoFile("events/events-2026-11-28-0007.csv", "events", "held", 40, 30, 1_130, 0,
             error="schema drift: table events has no column(s) device, country", error_kind="hold",
             content=EVENTS_DRIFT),
    DemoFile("orders/orders-2026-11-28-0011.csv", "orders", "loaded", 52, 250_000, 12_398_870, 250_000,
             content=ORDERS),
    DemoFile("flights/flights-0007.csv", "flights", "quarantined", 95, None, 512, 0,
             error="column 'dep_time': '25:61' in data row 13 is not a date like the rows before it",
             error_kind="input", moved_to="_quarantine/flights/flights-0007.csv", content=FLIGHTS_BAD),
    DemoFile("orders/orders-2026-11-28-0010-copy.csv", "orders", "duplicate", 130, 250_000, 12_377_050, 0,
             error="same content as orders/orders-2026-11-28-0010.csv (loaded as #10)", content=ORDERS),
    DemoFile("partners/partner-prices.csv", "partners", "held", 200, 25, 590, 0,
             error="changed content at a known path: version #2 was loaded with other content; approve to load "
                   "this one as well, or purge the old one first", error_kind="hold", content=PARTNERS),
    DemoFile("inventory/inventory-2026-11-28.csv.gz", "inventory", "quarantined", 260, None, 20, 0,
             error="cannot decompress (gzip): Error -3 while decompressing data: invalid stored block lengths",
             error_kind="input", moved_to="_quarantine/inventory/inventory-2026-11-28.csv.gz", content="\x1f\x8b junk"),
] + [
    DemoFile(f"orders/orders-2026-11-28-{n:04d}.csv", "orders", "loaded", 60 + 47 * (10 - n), 250_000,
             12_400_000 + n * 917, 250_000, content=ORDERS) for n in range(10, 0, -1)
] + [
    DemoFile(f"clicks/clicks-2026-11-28-{n:04d}.csv.gz", "clicks", "loaded", 30 + 41 * (41 - n), 2_000_000,
             48_000_000 + n * 1_311, 2_000_000, content=CLICKS, gz=True) for n in range(41, 29, -1)
]

TABLES = {
    "orders": [("id", "Int64"), ("customer", "String"), ("amount", "Nullable(Float64)"), ("ts", "DateTime64(6)")],
    "events": [("id", "Int64"), ("kind", "String"), ("user_id", "Int64")],
    "clicks": [("ts", "DateTime64(6)"), ("user_id", "Int64"), ("url", "String"), ("ms", "Int64")],
    "payments": [("id", "Int64"), ("order_id", "Int64"), ("amount", "Float64"), ("currency", "String")],
    "flights": [("flight", "String"), ("dep_time", "DateTime64(6)"), ("origin", "String")],
    "partners": [("sku", "String"), ("partner", "String"), ("price", "Float64")],
}


def seed(root: Path | None = None, now: float = NOW, files: list[DemoFile] | None = None) -> Config:
    """Build the demo under ``root`` (replacing it) and return a Config pointing at it."""
    root = root or default_root()
    shutil.rmtree(root, ignore_errors=True)
    data, state = root / "data", root / "state"
    data.mkdir(parents=True)
    state.mkdir(parents=True)
    Ledger(state).close()  # the engine's schema
    conn = connect(state / Ledger.FILENAME)
    conn.execute("BEGIN")
    meta = {"data_dir": "data", "target": TARGET, "server_version": "26.9.2.1"}
    meta |= {f"columns:{t}": json.dumps(cols) for t, cols in TABLES.items()}
    conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", meta.items())
    rng = random.Random(7)
    for fid, f in enumerate(reversed(files or FILES), start=1):  # oldest first, so ids grow with time
        where = data / (f.moved_to or f.path)
        where.parent.mkdir(parents=True, exist_ok=True)
        body = f.content.encode("latin-1")
        where.write_bytes(gzip.compress(body, mtime=0) if f.gz and not body.startswith(b"\x1f\x8b") else body)
        if f.moved_to:
            where.with_name(where.name + ".reason.json").write_text(json.dumps(
                {"path": f.path, "reason": f.error, "line": 14 if "row 13" in (f.error or "") else None,
                 "column": "dep_time" if "dep_time" in (f.error or "") else None}))
        _insert_file(conn, fid, f, now, rng)
    _insert_batches(conn, now, rng)
    conn.execute("COMMIT")
    conn.close()
    return Config(data_dir=Path("data"), state_dir=state, clickhouse_url=TARGET)


def _insert_file(conn, fid: int, f: DemoFile, now: float, rng: random.Random) -> None:
    updated = now - f.age
    first = updated - 30 - rng.randint(0, 60)
    final = f.state in ("loaded", "duplicate", "held", "failed", "quarantined")
    conn.execute(
        "INSERT INTO files(id, path, current, size, sha256, table_name, fmt, compression, state, rows, rows_loaded,"
        " batch_rows, attempts, next_attempt, error_kind, last_error, reason, moved_to, first_seen, updated_at,"
        " loaded_at) VALUES (?, ?, 1, ?, ?, ?, 'csv', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (fid, f.path, f.size, f"{fid:02x}" * 32 if f.state not in ("settling", "queued") else None, f.table,
         "gzip" if f.path.endswith(".gz") else None, f.state, f.rows, f.loaded, 200_000 if f.rows else None,
         f.attempts if final or f.state == "loading" else 0, now + f.retry_in if f.retry_in else None,
         f.error_kind, f.error if f.state in ("failed", "quarantined", "held") else None,
         f.error if f.state in ("quarantined", "held", "duplicate") else None, f.moved_to, first, updated,
         updated if f.state == "loaded" else None))
    steps = [(first, "watcher", None, "seen", None), (first + 2, "watcher", "seen", "settling", None),
             (first + 4, "watcher", "settling", "queued", "size and mtime quiet for 2s")]
    if f.state not in ("settling", "queued"):
        steps.append((first + 5, "engine", "queued", "loading", None))
        for attempt in range(1, f.attempts):
            at = first + 5 + attempt * 8
            steps += [(at, "engine", "loading", "failed", f"{f.error}; retry in {2 ** attempt}s"),
                      (at + 2 ** attempt, "engine", "failed", "loading", None)]
        if f.state != "loading":
            detail = f"{f.rows:,} rows into {f.table}" if f.state == "loaded" else f.error
            steps.append((updated, "engine", "loading", f.state, detail))
    elif f.state == "settling":
        steps = steps[:2]
    for ts, actor, src, dst, detail in steps:
        conn.execute("INSERT INTO events(ts, file_id, path, actor, action, from_state, to_state, detail)"
                     " VALUES (?, ?, ?, ?, 'transition', ?, ?, ?)", (min(ts, updated), fid, f.path, actor, src, dst,
                                                                      detail))


def _insert_batches(conn, now: float, rng: random.Random) -> None:
    """Ten minutes of acknowledged batches: a daytime wave with some noise, for the sparklines."""
    loaded = [r[0] for r in conn.execute("SELECT id FROM files WHERE state IN ('loaded', 'loading')")]
    idx = 0
    for second in range(int(now) - 600, int(now)):
        wave = 0.6 + 0.4 * math.sin((second - now) / 95)
        if rng.random() < 0.75:
            rows = int(rng.randint(30, 60) * 1000 * wave)
            idx += 1
            conn.execute("INSERT INTO batches(file_id, generation, idx, token, rows, state, sent_at, acked_at)"
                         " VALUES (?, 0, ?, ?, ?, 'done', ?, ?)",
                         (loaded[idx % len(loaded)], idx, f"demo:{idx}", rows, second, second + 0.5))


# -- the fleet: two hosts reporting to one ClickHouse ------------------------------------------

INVOICES = "id,customer,total\n" + "".join(f"{i},cust-{i % 13:03d},{i * 4.5:.2f}\n" for i in range(60))
# The second host: approval required, one file quarantined, the rest loaded.
FLEET_B: list[DemoFile] = [
    DemoFile("invoices/invoices-2026-11-28.csv", "invoices", "held", 21, 60, 1_412, 0,
             error="waiting for approval (--require-approval)", error_kind="hold", content=INVOICES),
    DemoFile("refunds/refunds-2026-11-28.csv", "refunds", "quarantined", 34, None, 77, 0,
             error="NUL byte at line 2: not a text file", error_kind="input",
             moved_to="_quarantine/refunds/refunds-2026-11-28.csv", content="id,total\n1,\x00\n"),
] + [DemoFile(f"invoices/invoices-2026-11-{d:02d}.csv", "invoices", "loaded", 3600 * (28 - d), 60, 1_400 + d, 60,
              content=INVOICES) for d in range(27, 20, -1)]
FLEET_DB = "fleetdemo"


class _Reporter:
    """What the fleet mirror (core/fleet.py) reads of an engine, for a seeded host: so the fleet
    tables are filled by chute's own fleet writer, as a running daemon would fill them."""

    def __init__(self, cfg: Config, now: float) -> None:
        self.cfg = cfg
        self.ledger = Ledger(cfg.state_dir)  # writable: the mirror keeps its watermark in it
        self._view = AttachedEngine(cfg, now=lambda: now, holder=lambda: DAEMON, alert_rules=ledger_rules)
        self.started_at = now - 3600

    def snapshot(self) -> Snapshot:
        return self._view.snapshot()

    def wake(self) -> None:
        """No commands are sent to a demo host."""

    def close(self) -> None:
        self._view.close()
        self.ledger.close()


def seed_fleet(root: Path, now: float = NOW) -> Config:
    """Two hosts, ingest-a (the demo's files) and ingest-b (held and quarantined files), each a
    seeded ledger that reported once through the fleet mirror to one chDB engine under ``root``.
    Returns ingest-a's Config: a console attached to it sees both on its Fleet screen."""
    from chute.core.fleet import FleetMirror

    root = root.resolve()
    shutil.rmtree(root, ignore_errors=True)
    url = f"chdb://{root / 'clickhouse'}"
    mine: Config | None = None
    for host, files in (("ingest-a", FILES), ("ingest-b", FLEET_B)):
        cfg = replace(seed(root / host, now, files), clickhouse_url=url, database=FLEET_DB, fleet_host=host)
        with inside(root / host):
            reporter = _Reporter(cfg, now)
            mirror = FleetMirror(reporter)  # type: ignore[arg-type]
            try:
                mirror.target.check()  # as the engine does when it starts: connect, make the database
                mirror.tick()
            finally:
                mirror.target.close()
                reporter.close()
        mine = mine or cfg
    assert mine is not None
    return mine


def seed_bulk(state: Path, data: Path, n: int, now: float = NOW) -> None:
    """``n`` loaded files (one batch and three events each) over the last ``n`` seconds, plus a few
    in trouble: the "10,000 files in the ledger" case for the console's open and key timings."""
    state.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    Ledger(state).close()
    conn = connect(state / Ledger.FILENAME)
    conn.execute("BEGIN")
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('data_dir', ?)", (str(data),))
    for i in range(1, n + 1):
        at = now - (n - i)
        state_name, error = "loaded", None
        if i % 1000 == 0:
            state_name, error = "failed", "ClickHouse refused the insert: Code: 241 (MEMORY_LIMIT_EXCEEDED)"
        path = f"t{i % 7}/part-{i:06d}.csv"
        conn.execute(
            "INSERT INTO files(id, path, current, size, sha256, table_name, fmt, state, rows, rows_loaded, batch_rows,"
            " attempts, last_error, first_seen, updated_at, loaded_at) VALUES (?, ?, 1, ?, ?, ?, 'csv', ?, 1000, ?,"
            " 200000, 1, ?, ?, ?, ?)",
            (i, path, 50_000 + i, f"{i:064x}", f"t{i % 7}", state_name, 1000 if state_name == "loaded" else 0, error,
             at - 3, at, at if state_name == "loaded" else None))
        conn.executemany(
            "INSERT INTO events(ts, file_id, path, actor, action, from_state, to_state) VALUES (?, ?, ?, ?, "
            "'transition', ?, ?)",
            [(at - 3, i, path, "watcher", None, "seen"), (at - 1, i, path, "engine", "queued", "loading"),
             (at, i, path, "engine", "loading", state_name)])
        conn.execute("INSERT INTO batches(file_id, generation, idx, token, rows, state, sent_at, acked_at)"
                     " VALUES (?, 0, 0, ?, 1000, 'done', ?, ?)", (i, f"bulk:{i}", at - 1, at))
    conn.execute("COMMIT")
    conn.close()


def ledger_rules(engine: AttachedEngine, now: float) -> list[Alert]:
    """The alert rules on the ledger alone: this host's disks and memory would make screenshots vary."""
    inputs = alerts.gather(engine.cfg, engine.ledger, now, reachable=True)
    return alerts.evaluate(replace(inputs, disks=(), memory=None), alerts.Thresholds.of(engine.cfg))


def demo_engine(cfg: Config, now: float = NOW) -> AttachedEngine:
    """The demo console's engine: attached to the seeded ledger with a frozen clock and a named daemon."""
    return AttachedEngine(cfg, now=lambda: now, holder=lambda: DAEMON, command_timeout=2.0, alert_rules=ledger_rules)


def demo_app(root: Path | None = None, now: float = NOW):  # textual is imported lazily
    """The console on a freshly seeded demo. Run it inside ``root`` (see :func:`inside`)."""
    from chute.tui.app import ChuteApp

    cfg = seed(root, now)
    return ChuteApp(demo_engine(cfg, now), now=lambda: now, actor="console:demo")


# -- screenshots --------------------------------------------------------------------------


async def _shoot(out: Path, name: str, size: tuple[int, int], keys: list[str], pane: str | None = None,
                 select: str | None = None) -> Path:
    root = default_root()
    app = demo_app(root)
    with inside(root):
        async with app.run_test(size=size) as pilot:
            await wait_ready(pilot)
            await prepare(pilot, pane, select, keys)
            svg = app.export_screenshot(title="chute")
    path = out / f"{name}.svg"
    path.write_text(svg)
    return path


async def _shoot_fleet(out: Path, size: tuple[int, int] = (80, 24)) -> Path:
    """The Fleet screen of ingest-a's console, drilled into ingest-b (see :func:`seed_fleet`)."""
    from chute.tui.app import ChuteApp
    from chute.tui.screens.fleet import FleetScreen

    root = default_root().with_name(default_root().name + "-fleet")
    cfg = seed_fleet(root)
    app = ChuteApp(demo_engine(cfg), now=lambda: NOW, actor="console:demo")
    with inside(root / "ingest-a"):
        async with app.run_test(size=size) as pilot:
            await wait_ready(pilot)
            await pilot.press("f")
            screen = app.screen
            assert isinstance(screen, FleetScreen)
            await _until(pilot, lambda: screen.hosts_table.row_count == 2, "both hosts listed")
            await pilot.press("down")  # ingest-b: its held and quarantined files
            await _until(pilot, lambda: [f.host for f in screen.files_table.files][:1] == ["ingest-b"],
                         "ingest-b's files")
            await pilot.pause(0.1)
            svg = app.export_screenshot(title="chute")
    path = out / f"fleet-{size[0]}x{size[1]}.svg"
    path.write_text(svg)
    return path


async def _until(pilot, done: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        if loop.time() > deadline:
            raise TimeoutError(f"demo: no {what} after {timeout:.0f} s")
        await pilot.pause(0.05)


async def wait_ready(pilot, refreshes: int = 1, timeout: float = 60.0) -> None:
    """Until the console applied its first view(s), and a details screen (if any) has read its file.
    Generous, for a loaded machine; a screen that never gets there is an error, not a screenshot."""
    from chute.tui.screens.details import DetailsScreen

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def pending() -> bool:
        screen = pilot.app.screen
        return pilot.app.refreshes < refreshes or (isinstance(screen, DetailsScreen) and not screen.settled)

    while pending():
        if loop.time() > deadline:
            raise TimeoutError(f"console not ready after {timeout:.0f} s")
        await pilot.pause(0.02)
    await pilot.pause()


async def prepare(pilot, pane: str | None = None, select: str | None = None,
                  keys: list[str] | tuple[str, ...] = ()) -> None:
    """Show a pane, put the cursor on a file, press keys, and wait for the result to settle."""
    app = pilot.app
    if pane:
        app.show_pane(pane)
        await pilot.pause()
    if select:
        app.go_to(next(r for r in app.shown_files() if r.path == select))
        await pilot.pause()
    await pilot.press(*keys)
    await wait_ready(pilot)
    await pilot.pause(0.1)


_LEADING = re.compile(r'(<text [^>]*?x=")([\d.]+)("[^>]*?textLength=")([\d.]+)("[^>]*>)((?:&#160;)+)([^<]*)</text>')


def rsvg_friendly(svg: str) -> str:
    """rsvg-convert drops leading no-break spaces inside a <text> run, so a run like "  data"
    lands two cells early. Move such spaces into the run's x position instead."""

    def fix(m: re.Match[str]) -> str:
        spaces = m.group(6).count("&#160;")
        rest = m.group(7)
        width = float(m.group(4)) / (spaces + len(html.unescape(rest)))
        if not rest:
            return ""
        x = float(m.group(2)) + spaces * width
        length = float(m.group(4)) - spaces * width
        return f"{m.group(1)}{x:g}{m.group(3)}{length:g}{m.group(5)}{rest}</text>"

    return _LEADING.sub(fix, svg)


def screenshots(out: Path) -> list[Path]:
    os.environ.setdefault("TZ", "UTC")
    out.mkdir(parents=True, exist_ok=True)
    shots = [
        ("main-80x24", (80, 24), [], None, None),
        ("main-120x36", (120, 36), [], None, None),
        ("details-drift", (100, 36), ["enter"], "files", "events/events-2026-11-28-0007.csv"),
        ("quarantine", (100, 30), [], "quarantine", None),
        ("errors", (100, 30), [], "errors", None),
        ("confirm-purge", (80, 24), ["d"], "files", "orders/orders-2026-11-28-0012.csv"),
        ("help", (100, 36), ["question_mark"], None, None),
    ]
    svgs = [asyncio.run(_shoot(out, *shot)) for shot in shots]
    svgs.append(asyncio.run(_shoot_fleet(out)))  # two hosts reporting to one chDB engine
    return [path for svg in svgs for path in _png(svg)]


def _png(svg: Path) -> list[Path]:
    made = [svg]
    png = svg.with_suffix(".png")
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-z", "1.5", "-o", str(png)], input=rsvg_friendly(svg.read_text()).encode(),
                       check=True)
        made.append(png)
    else:
        print("rsvg-convert not found (apt-get install librsvg2-bin): SVG only", file=sys.stderr)
    return made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m chute.tui.demo", description=__doc__.splitlines()[0])
    p.add_argument("--screenshots", metavar="DIR", help="write SVG and PNG screenshots to DIR, then exit")
    args = p.parse_args(argv)
    if args.screenshots:
        for path in screenshots(Path(args.screenshots).resolve()):
            print(path)
        return 0
    root = default_root()
    app = demo_app(root)
    with inside(root):
        return app.run() or 0


if __name__ == "__main__":
    sys.exit(main())
