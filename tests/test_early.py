"""core/early.py: a `--once` over one big text file plans it from before ClickHouse starts (issue 12).
The loader takes that plan only for the very version it was made for, and loads exactly what its
own plan would have loaded; anything else and the file is planned as usual."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from chute.core import early as early_mod
from chute.core.config import Config
from chute.core.early import Early, EarlyPlan, candidate
from chute.core.engine import Engine
from chute.core.ledger import FileRow
from chute.core.states import State
from tests.conftest import query, state_of, wait_for

ROWS = 3_000


def _csv(path: Path, rows: int = ROWS, bad_line: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["id,name,amount,ts"]
    for i in range(rows):
        lines.append(f"{i},name {i},{i}.25,2026-11-{1 + i % 28:02d} 10:00:00" if i + 2 != bad_line else f"{i},x")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def small_is_big(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test files of a few hundred KB count as big."""
    monkeypatch.setattr(early_mod, "EARLY_MIN_BYTES", 1)


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[Early | None]:
    """What each EarlyPlan.take handed the loader."""
    got: list[Early | None] = []
    real = EarlyPlan.take

    def spy(self: EarlyPlan, row: FileRow, path: Path) -> Early | None:
        got.append(real(self, row, path))
        return got[-1]

    monkeypatch.setattr(EarlyPlan, "take", spy)
    return got


def _table(engine: Engine, table: str) -> list[tuple]:
    db = engine.cfg.database
    return query(engine, f"SELECT id, name, amount, toString(ts), _source_row, _source_sha256 FROM `{db}`.`{table}`"
                         " ORDER BY id")


def _types(engine: Engine, table: str) -> list[tuple]:
    return query(engine, "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}"
                         " ORDER BY position", db=engine.cfg.database, t=table)


def test_one_big_file_loads_through_the_early_plan_as_through_its_own(
        engine_factory: Callable[..., Engine], tmp_path: Path, small_is_big: None, taken: list[Early | None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Same table, types, values, row numbers and hash with the early plan as without (seen
    failing as not taken: no early plan before this change)."""
    _csv(tmp_path / "data" / "events" / "a.csv")
    engine = engine_factory(once=True)
    assert engine.wait_idle(timeout=120)
    assert state_of(engine, "events/a.csv") == "loaded"
    assert len(taken) == 1 and taken[0] is not None  # the loader took it
    with_early, types_early = _table(engine, "events"), _types(engine, "events")
    engine.stop()

    monkeypatch.setattr(early_mod, "EARLY_MIN_BYTES", 1 << 60)  # the same file, planned by the loader
    other = tmp_path / "other"
    _csv(other / "data" / "events" / "a.csv")
    cfg = dataclasses.replace(engine.cfg, data_dir=other / "data", state_dir=other / "state",
                              database=engine.cfg.database + "_b")
    plain = engine_factory(cfg, once=True)
    assert plain.wait_idle(timeout=120)
    assert len(taken) == 2 and taken[1] is None
    assert _types(plain, "events") == types_early
    assert _table(plain, "events") == with_early
    assert len(with_early) == ROWS and with_early[0][4] == 1


@pytest.mark.parametrize("damage", ["short row", "NUL byte"])
def test_a_bad_file_is_quarantined_with_the_same_reason(engine_factory: Callable[..., Engine], tmp_path: Path,
                                                        small_is_big: None, taken: list[Early | None],
                                                        damage: str) -> None:
    """What the early plan raised (a NUL byte; a short row its pieces found, before any insert)
    quarantines the file with its line, as the loader's own plan would."""
    path = tmp_path / "data" / "events" / "bad.csv"
    _csv(path, bad_line=1_500 if damage == "short row" else None)
    if damage == "NUL byte":
        text = path.read_bytes().split(b"\n")
        text[1_499] = text[1_499].replace(b"name", b"na\x00me")
        path.write_bytes(b"\n".join(text))
    engine = engine_factory(once=True)
    assert engine.wait_idle(timeout=120)
    assert len(taken) == 1 and taken[0] is not None
    assert taken[0].error is not None  # raised in the early thread, then again
    assert engine.ledger is not None
    row = engine.ledger.current("events/bad.csv")
    assert row is not None and row.state == State.QUARANTINED
    assert "line 1500" in (row.last_error or row.reason or "")


def _row(cfg: Config, path: Path, **changes: object) -> FileRow:
    """The ledger row the watcher would record for ``path`` as it is now."""
    st = path.stat()
    rel = path.relative_to(cfg.data_dir).as_posix()
    base = FileRow(id=1, path=rel, current=1, dev=st.st_dev, inode=st.st_ino, size=st.st_size,
                   mtime_ns=st.st_mtime_ns, complete_hint=1, sha256=None, table_name="events", fmt="csv",
                   compression=None, state=State.LOADING, rows=None, rows_loaded=0, batch_rows=None, generation=0,
                   attempts=0, next_attempt=None, error_kind=None, last_error=None, reason=None, moved_to=None,
                   approved=0, first_seen=0.0, updated_at=0.0, loaded_at=None, ctime_ns=st.st_ctime_ns)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_file_changed_after_the_early_open_is_planned_again(cfg: Config, small_is_big: None) -> None:
    """The early plan read the old content: the version the watcher settles is another one, so the
    plan is dropped (negative control: taken when the identity is the one opened)."""
    path = cfg.data_dir / "events" / "a.csv"
    _csv(path)
    plans = EarlyPlan()
    assert plans.start(cfg)
    stale = _row(cfg, path)
    assert plans._job is not None and plans._job.result() is not None  # planned the old content
    with path.open("a") as f:
        f.write(f"{ROWS},late,1.5,2026-11-30 10:00:00\n")
    assert plans.take(_row(cfg, path), path) is None
    plans.close()

    again = EarlyPlan()
    assert again.start(cfg)
    _row_now = _row(cfg, path)
    got = again.take(_row_now, path)
    assert got is not None and got.result().rows == ROWS + 1
    got.src.close()
    assert stale.size != _row_now.size


@pytest.mark.parametrize("change", [{"table_name": "other"}, {"fmt": "tsv"}, {"base_id": 7}])
def test_another_route_format_or_an_append_is_planned_again(cfg: Config, small_is_big: None,
                                                            change: dict) -> None:
    path = cfg.data_dir / "events" / "a.csv"
    _csv(path)
    plans = EarlyPlan()
    assert plans.start(cfg)
    assert plans.take(_row(cfg, path, **change), path) is None
    assert plans.take(_row(cfg, path), path) is None  # once only
    plans.close()


def test_only_one_big_text_file_is_planned_early(cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    data = cfg.data_dir
    assert candidate(cfg) is None  # empty
    _csv(data / "events" / "a.csv")
    assert candidate(cfg) is None  # small
    monkeypatch.setattr(early_mod, "EARLY_MIN_BYTES", 1)
    assert candidate(cfg) == (data / "events" / "a.csv", "events", "csv", None)
    (data / "events" / ".hidden.csv").write_text("x\n1\n")  # ignored by the watcher too
    (data / "_quarantine").mkdir()
    (data / "_quarantine" / "q.csv").write_text("x\n1\n")
    assert candidate(cfg) is not None
    (data / "events" / "b.csv").write_text("x\n1\n")
    assert candidate(cfg) is None  # two files
    os.unlink(data / "events" / "b.csv")
    os.rename(data / "events" / "a.csv", data / "events" / "a.parquet")
    assert candidate(cfg) is None  # not a text format


def test_a_stopped_once_closes_the_file_no_loader_took(cfg: Config, small_is_big: None) -> None:
    path = cfg.data_dir / "events" / "a.csv"
    _csv(path)
    plans = EarlyPlan()
    assert plans.start(cfg)
    assert plans._job is not None
    job = plans._job
    plans.close()
    early = None if job.cancelled() else job.result()
    if early is not None:  # closed once its plan let go of it (by the future's callback, just after)
        wait_for(lambda: early.src.fd == -1, timeout=30, what="the early file closed")


def test_an_empty_once_imports_no_polars(tmp_path: Path) -> None:
    """The early plan's check of the folder must not import the readers (tests/test_startup.py's rule)."""
    import subprocess

    data = tmp_path / "data"
    data.mkdir()
    code = ("import sys\nfrom chute.core.config import Config\nfrom chute.core.early import EarlyPlan\n"
            f"print(EarlyPlan().start(Config(data_dir={str(data)!r})), 'polars' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_plan_modules_are_imported_before_start_returns_not_on_the_plan_thread(tmp_path: Path) -> None:
    """Imports hold the GIL, as chDB's start (next in Engine.start) does: made on the plan's thread
    they waited on chDB's start and delayed the parse behind them (seen failing: imported there)."""
    import subprocess

    _csv(tmp_path / "data" / "events" / "a.csv")
    code = f"""
import sys, threading
from importlib.abc import MetaPathFinder
seen = {{}}
class Spy(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in ("polars", "chute.core.formats", "chute.core.formats.limits"):
            seen.setdefault(name, threading.current_thread().name)
sys.meta_path.insert(0, Spy())
from chute.core import early
from chute.core.config import Config
early.EARLY_MIN_BYTES = 1
plans = early.EarlyPlan()
started = plans.start(Config(data_dir={str(tmp_path / "data")!r}))
print(started, sorted(seen.items()))
plans.close()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("True [('chute.core.formats', 'MainThread'), ('chute.core.formats.limits', "
                                  "'MainThread'), ('polars', 'MainThread')]")


def test_negative_control_without_the_identity_check_the_stale_plan_is_taken(
        cfg: Config, small_is_big: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the identity check guards against: a plan of content the file no longer holds."""
    monkeypatch.setattr(early_mod, "same_identity", lambda row, st: True)
    path = cfg.data_dir / "events" / "a.csv"
    _csv(path)
    plans = EarlyPlan()
    assert plans.start(cfg)
    assert plans._job is not None and plans._job.result() is not None
    with path.open("a") as f:
        f.write(f"{ROWS},late,1.5,2026-11-30 10:00:00\n")
    stale = plans.take(_row(cfg, path), path)
    assert stale is not None and stale.result().rows == ROWS  # one row short of the file
    stale.src.close()
    plans.close()


def test_a_grown_file_loads_only_its_appended_records(engine_factory: Callable[..., Engine], tmp_path: Path,
                                                       small_is_big: None, taken: list[Early | None]) -> None:
    """A second `--once` over a file that grew: the early plan read the whole file, but the
    version appends to the loaded one, so the loader reads only the new records (its own plan of
    the appended part): every row once, the row numbers going on."""
    path = tmp_path / "data" / "events" / "a.csv"
    _csv(path)
    first = engine_factory(once=True)
    assert first.wait_idle(timeout=120)
    assert state_of(first, "events/a.csv") == "loaded"
    first.stop()
    with path.open("a") as f:
        f.write("".join(f"{i},name {i},{i}.25,2026-11-02 10:00:00\n" for i in range(ROWS, ROWS + 500)))
    second = engine_factory(first.cfg, once=True)
    assert second.wait_idle(timeout=120)
    assert second.ledger is not None
    versions = second.ledger.versions("events/a.csv")
    assert [v.state for v in versions] == [State.LOADED, State.LOADED]
    assert versions[1].base_id == versions[0].id and versions[1].rows == 500
    assert len(taken) == 2 and taken[1] is not None  # the same identity: taken, then not its reader
    got = query(second, f"SELECT count(), uniqExact(id), min(_source_row), max(_source_row),"
                        f" countIf(id + 2 = _source_row + 1) FROM `{second.cfg.database}`.events")
    assert got == [(ROWS + 500, ROWS + 500, 1, ROWS + 500, ROWS + 500)]


@pytest.mark.slow
def test_sigkill_mid_load_of_an_early_planned_file_then_once_loads_every_row_once(tmp_path: Path) -> None:
    """The early plan in a real `--once` (a file over EARLY_MIN_BYTES), killed after ClickHouse
    acknowledged a batch the ledger did not: the next `--once` plans it early again, resends the
    unacknowledged batches with their tokens, and every row is there once."""
    from tests.conftest import run_chute
    from tests.test_crash import duplicate_check, kill_at

    rows = 200_000
    path = tmp_path / "data" / "events" / "big.csv"
    _csv(path, rows)
    assert path.stat().st_size >= early_mod.EARLY_MIN_BYTES
    args = ["--no-ui", "--once", str(tmp_path / "data"), "--state-dir", str(tmp_path / "state"), "--clickhouse",
            f"chdb://{tmp_path / 'ch'}", "--batch-rows", "20000", "--settle-seconds", "0.1", "--log-format", "json",
            "--log-level", "debug"]
    kill_at(args, "insert_acked", 3, tmp_path / "marker")
    done = run_chute(*args, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "while ClickHouse starts" in done.stderr  # planned early, again
    assert duplicate_check(tmp_path / "ch", "events") == (rows, 0)
