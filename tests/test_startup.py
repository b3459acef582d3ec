"""Start-up and ledger-reading costs (issue 12): no pandas, nothing proportional to the ledger,
`chute files --json` streaming. Absolute times are not asserted; what is counted is what makes them."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from chute.core import cli
from chute.core import ledger as ledger_mod
from chute.core.ledger import Ledger
from tests.conftest import ROOT


def _write_formats(data: Path) -> None:
    df = pl.DataFrame({"id": [1, 2, 3], "name": ["a", "b", None], "amount": [1.5, 2.0, 3.25]})
    (data / "csvs").mkdir(parents=True)
    df.write_csv(data / "csvs" / "a.csv")
    with gzip.open(data / "csvs" / "b.csv.gz", "wb") as out:
        df.with_columns(pl.col("id") + 10).write_csv(out)
    (data / "jsons").mkdir()
    df.write_ndjson(data / "jsons" / "a.ndjson")
    (data / "parquets").mkdir()
    df.write_parquet(data / "parquets" / "a.parquet")


def test_loading_every_format_never_imports_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas (about a second of start-up) on its first pa.array call, just to ask
    whether the input is a pandas object; chute keeps it out, start-up and loads alike."""
    data = tmp_path / "data"
    _write_formats(data)
    code = (
        "import sys\n"
        "from chute.core.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "print('PANDAS' if 'pandas' in sys.modules else 'NO-PANDAS', rc)\n"
    )
    args = ["--no-ui", "--once", str(data), "--state-dir", str(tmp_path / "state"),
            "--clickhouse", f"chdb://{tmp_path / 'ch'}", "--log-format", "json"]
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["NO-PANDAS", "0"], proc.stdout + proc.stderr[-2000:]
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    states = db.execute("SELECT state, count(*) FROM files GROUP BY state").fetchall()
    assert states == [("loaded", 4)]


def test_pandas_still_works_when_asked_for() -> None:
    """Keeping pandas out of pyarrow's probe must not break an explicit pandas conversion."""
    code = (
        "import chute.core.reader, pyarrow as pa\n"
        "df = pa.table({'a': [1, 2]}).to_pandas()\n"
        "assert pa.array(df['a']).to_pylist() == [1, 2]\n"
        "print(type(df).__module__.split('.')[0])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "pandas"


# Modules an empty `--once` has no use for: the loader and the formats, and the libraries only they use
# (chDB itself imports pyarrow and numpy, so those cost nothing extra). Each was imported at start before.
LAZY_MODULES = ("chute.core.loader", "chute.core.reader", "chute.core.formats", "chute.core.fit", "polars",
                "pyarrow.compute", "pyarrow.parquet", "prometheus_client", "pandas")


def test_empty_once_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    """`--once` over an empty folder starts, checks ClickHouse and exits without importing the
    loader's libraries (issue 12: within 1.5x of an empty chDB process); one file brings them in."""
    data = tmp_path / "data"
    data.mkdir()
    code = (
        "import sys\n"
        "from chute.core.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        f"print(rc, *[m for m in {LAZY_MODULES!r} if m in sys.modules])\n"
    )

    def loaded_modules() -> list[str]:
        args = ["--no-ui", "--once", str(data), "--state-dir", str(tmp_path / "state"),
                "--clickhouse", f"chdb://{tmp_path / 'ch'}", "--log-format", "json"]
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rc, *found = proc.stdout.split()
        assert rc == "0", proc.stdout + proc.stderr[-2000:]
        return found

    assert loaded_modules() == []
    # The negative control: the same check sees the loader's once there is something to load. A CSV
    # still needs neither pyarrow.compute (only skip_existing_keys uses it) nor pyarrow.parquet, and
    # without metrics_addr nothing reads Prometheus counters.
    (data / "t").mkdir()
    pl.DataFrame({"a": [1, 2]}).write_csv(data / "t" / "a.csv")
    assert set(loaded_modules()) == set(LAZY_MODULES) - {"pandas", "pyarrow.compute", "pyarrow.parquet",
                                                         "prometheus_client"}


# -- a large ledger -------------------------------------------------------------------------------


def _synth_ledger(state: Path, n: int) -> None:
    state.mkdir(parents=True)
    Ledger(state).close()
    db = sqlite3.connect(state / Ledger.FILENAME)
    now = time.time() - n
    db.executemany(
        "INSERT INTO files(path, dev, inode, size, mtime_ns, sha256, table_name, fmt, state, rows, rows_loaded,"
        " batch_rows, first_seen, updated_at, loaded_at) VALUES (?,1,?,100,?,?,'t','csv','loaded',5,5,125000,?,?,?)",
        ((f"t/f{i:06d}.csv", i, i, f"{i:064x}", now + i, now + i, now + i) for i in range(n)))
    db.commit()
    db.close()


class _FirstWrite(BaseException):
    """Raised by the stand-in stdout at the first line (BaseException: the CLI must not catch it)."""


class _StopAtFirstWrite:
    def write(self, text: str) -> int:
        raise _FirstWrite

    def flush(self) -> None:
        pass


def _steps_until_first_line(state: Path, monkeypatch: pytest.MonkeyPatch, stop_early: bool) -> int:
    """SQLite VM steps taken by `chute files --json` before its first line (or in all)."""
    steps = [0]
    real_connect = ledger_mod.connect

    def counting(path: Path, readonly: bool = False) -> sqlite3.Connection:
        conn = real_connect(path, readonly)

        def tick() -> int:
            steps[0] += 1
            return 0

        conn.set_progress_handler(tick, 100)
        return conn

    monkeypatch.setattr(ledger_mod, "connect", counting)
    if stop_early:
        monkeypatch.setattr(sys, "stdout", _StopAtFirstWrite())
        with pytest.raises(_FirstWrite):
            cli.main(["files", "--json", "--state-dir", str(state)])
    else:
        monkeypatch.setattr(sys, "stdout", open(  # noqa: SIM115 - closed below
            state / "out.jsonl", "w"))
        try:
            assert cli.main(["files", "--json", "--state-dir", str(state)]) == 0
        finally:
            sys.stdout.close()
    monkeypatch.undo()
    return steps[0]


def test_files_json_streams_its_first_line_before_reading_the_ledger(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The first line goes out after a small, fixed amount of ledger reading, not after all of it."""
    state = tmp_path / "state"
    _synth_ledger(state, 20_000)
    early = _steps_until_first_line(state, monkeypatch, stop_early=True)
    whole = _steps_until_first_line(state, monkeypatch, stop_early=False)
    assert whole > 0
    assert early < whole / 10, (early, whole)
    lines = (state / "out.jsonl").read_text().splitlines()
    assert len(lines) == 20_000
    first = json.loads(lines[0])
    assert first["path"] == "t/f019999.csv" and first["state"] == "loaded"  # newest first, as before
    assert set(first) == set(ledger_mod.FileRow.__dataclass_fields__)


def test_files_json_matches_the_rows(tmp_path: Path) -> None:
    """Same objects as FileRow.as_dict() gives, for every state filter and limit."""
    state = tmp_path / "state"
    _synth_ledger(state, 50)
    led = Ledger(state)
    led.transition(7, ledger_mod.State.FAILED, last_error="boom", error_kind="input")
    expect = [r.as_dict() for r in led.list_files(limit=10)]
    expect_failed = [r.as_dict() for r in led.list_files(state="failed")]
    led.close()
    for extra, want in ((["--limit", "10"], expect), (["--state", "failed"], expect_failed)):
        proc = subprocess.run([sys.executable, "-m", "chute.core", "files", "--json", "--state-dir", str(state),
                               *extra],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert [json.loads(line) for line in proc.stdout.splitlines()] == want
        assert '"state": "' in proc.stdout  # json.dumps' layout: scripts grep for it


def _history_ledger(cfg_state: Path, data_dir: Path, n: int) -> None:
    """``n`` finished versions whose files are long gone: half loaded, half superseded (failed, no retry)."""
    cfg_state.mkdir(parents=True)
    led = Ledger(cfg_state)
    led.set_meta("data_dir", str(data_dir.resolve()))
    led.close()
    db = sqlite3.connect(cfg_state / Ledger.FILENAME)
    now = time.time() - n
    db.executemany(
        "INSERT INTO files(path, current, dev, inode, size, mtime_ns, sha256, table_name, fmt, state, rows,"
        " rows_loaded, first_seen, updated_at) VALUES (?,?,1,?,100,?,?,'t','csv',?,5,5,?,?)",
        ((f"t/old{i:06d}.csv", i % 2, i, i, f"{i:064x}", "loaded" if i % 2 else "failed", now + i, now + i)
         for i in range(n)))
    db.commit()
    db.close()


def test_start_does_not_grow_with_the_ledger(tmp_path: Path, chdb_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine over a ledger with a long history starts, loads a new file and decides it is idle
    without any ledger statement that reads the history: the costliest single statement is about as
    cheap over 20,000 old versions as over 1,000. (Per statement, not in total: how many idle polls
    a load takes depends on the machine's load.)"""
    from chute.core.engine import Engine
    from tests.conftest import make_config

    def worst_statement(n: int) -> int:
        cfg = make_config(tmp_path / f"n{n}", chdb_path)
        (cfg.data_dir / "t").mkdir()
        pl.DataFrame({"a": [1, 2]}).write_csv(cfg.data_dir / "t" / "new.csv")
        _history_ledger(cfg.state_dir, cfg.data_dir, n)
        current, worst = [0], [0]
        real_connect = ledger_mod.connect

        def counting(path: Path, readonly: bool = False) -> sqlite3.Connection:
            conn = real_connect(path, readonly)

            def started(_sql: str) -> None:
                current[0] = 0

            def tick() -> int:
                current[0] += 1
                worst[0] = max(worst[0], current[0])
                return 0

            conn.set_trace_callback(started)
            conn.set_progress_handler(tick, 100)
            return conn

        monkeypatch.setattr(ledger_mod, "connect", counting)
        engine = Engine(cfg, once=True)
        try:
            engine.start()
            assert engine.wait_idle(timeout=120)
            assert engine.ledger is not None
            # (Before: idle() read at most 10,000 waiting-or-failed rows, oldest first, so a long
            # history hid the file still loading and --once stopped early.)
            assert engine.ledger.current("t/new.csv").state == "loaded"  # type: ignore[union-attr]
            return worst[0]
        finally:
            engine.stop()
            monkeypatch.undo()

    small, large = worst_statement(1_000), worst_statement(20_000)
    # A statement reading the history costs ~60 units per 1,000 rows here; 20,000 rows would be ~1,200.
    assert large < small + 100, (small, large)
