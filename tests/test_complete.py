"""Only complete files load (issue 11, defects 2 and 3): writers that pause with the file open,
files open before chute started, done-markers, and rewrites that restore the mtime."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from chute.core.routing import Route
from chute.core.states import State
from chute.core.writers import OpenWriters
from tests.conftest import make_config, query, state_of, wait_for
from tests.test_engine import csv_bytes, make_rows


def _count(engine, table: str) -> int:
    return query(engine, f"SELECT count() FROM `{engine.cfg.database}`.`{table}`")[0][0]


def _waiting_or_past(engine, rel: str) -> bool:
    """The watcher has judged the file: it is waiting for a writer, or it went on (the defect)."""
    row = engine.ledger.current(rel)
    if row is None:
        return False
    return "open for writing" in (row.reason or "") or row.state not in (State.SEEN, State.SETTLING)


def test_writer_pausing_longer_than_settle_with_file_open_is_not_loaded(engine_factory, tmp_path: Path,
                                                                         chdb_path: Path) -> None:
    """Defect 2: the first half was loaded after the settle time while the writer still held the file."""
    cfg = make_config(tmp_path, chdb_path, settle_seconds=0.3)
    engine = engine_factory(cfg)
    rows = make_rows(1400)
    body = csv_bytes(rows)
    half = body.index(b"\n", len(body) // 2) + 1
    with open(cfg.data_dir / "half.csv", "wb") as f:
        f.write(body[:half])
        f.flush()
        # Paused with the file open, far beyond the settle time (three settle periods at least).
        wait_for(lambda: _waiting_or_past(engine, "half.csv"), what="the watcher judged the open file")
        since = time.monotonic()
        wait_for(lambda: time.monotonic() - since > 3 * cfg.settle_seconds and _waiting_or_past(engine, "half.csv"))
        assert state_of(engine, "half.csv") == State.SETTLING, "a file open for writing was taken"
        f.write(body[half:])
    wait_for(lambda: state_of(engine, "half.csv") == State.LOADED, what="loaded once closed")
    assert _count(engine, "half") == 1400
    assert len(engine.ledger.versions("half.csv")) == 1


@pytest.mark.parametrize("check", ["lease", "proc"])
def test_file_open_for_writing_before_start_waits(engine_factory, tmp_path: Path, chdb_path: Path, check: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """No open event was ever seen for a file a writer opened before chute started; by lease,
    and by the /proc scan (where leases are unavailable)."""
    if check == "proc":
        monkeypatch.setattr(OpenWriters, "enable_leases", lambda self: False)
    cfg = make_config(tmp_path, chdb_path, settle_seconds=0.2)
    body = csv_bytes(make_rows(300))
    f = open(cfg.data_dir / "early.csv", "wb")  # noqa: SIM115 - held open on purpose
    try:
        f.write(body[:1000])
        f.flush()
        os.utime(cfg.data_dir / "early.csv", (time.time() - 60, time.time() - 60))  # looks long quiet
        engine = engine_factory(cfg)
        wait_for(lambda: _waiting_or_past(engine, "early.csv"), what="judged")
        assert state_of(engine, "early.csv") == State.SETTLING
        f.write(body[1000:])
    finally:
        f.close()
    wait_for(lambda: state_of(engine, "early.csv") == State.LOADED, what="loaded once closed")
    assert _count(engine, "early") == 300


def _rewrite_keeping_size_and_mtime(path: Path, rows: list) -> None:
    """Rewrite ``path`` in place (same inode) with one value changed, same size, mtime put back:
    only the ctime tells."""
    st = os.stat(path)
    changed = [list(r) for r in rows]
    changed[0][1] = "PLAIN"  # same length as "plain"
    body = csv_bytes(changed)
    assert len(body) == st.st_size
    with open(path, "r+b") as f:  # in place: same inode
        f.write(body)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_ino == st.st_ino and os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_rewrite_with_same_size_and_restored_mtime_is_seen(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """Defect 3: same inode, same size, mtime put back: only the ctime tells."""
    cfg = make_config(tmp_path, chdb_path)
    path = cfg.data_dir / "same.csv"
    rows = make_rows(20)
    path.write_bytes(csv_bytes(rows))
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "same.csv") == State.LOADED, what="loaded")
    first = engine.ledger.current("same.csv")
    _rewrite_keeping_size_and_mtime(path, rows)
    wait_for(lambda: (r := engine.ledger.current("same.csv")) is not None and r.id != first.id,
             what="the rewrite seen as a new version")
    wait_for(lambda: state_of(engine, "same.csv") == State.HELD, what="held (changed content at a known path)")
    assert engine.ledger.current("same.csv").ctime_ns == os.stat(path).st_ctime_ns


def test_rewrite_with_restored_mtime_while_stopped_is_seen_at_start(engine_factory, tmp_path: Path,
                                                                    chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    path = cfg.data_dir / "restart.csv"
    rows = make_rows(20)
    path.write_bytes(csv_bytes(rows))
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "restart.csv") == State.LOADED, what="loaded")
    engine.stop()
    _rewrite_keeping_size_and_mtime(path, rows)
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "restart.csv") == State.HELD, what="the rewrite seen after a restart")
    assert len(engine.ledger.versions("restart.csv")) == 2


def test_unchanged_files_are_not_taken_again_at_start(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """The negative control for the ctime check: a plain restart makes no new versions."""
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "a.csv").write_bytes(csv_bytes(make_rows(5)))
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "a.csv") == State.LOADED)
    engine.stop()
    engine = engine_factory(cfg)
    engine.watcher.scan()
    wait_for(lambda: engine.idle(), what="idle")
    assert len(engine.ledger.versions("a.csv")) == 1


def test_move_in_from_outside_with_open_writer_waits(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """Moved in from outside the tree (only a Created event) while its writer still holds it."""
    cfg = make_config(tmp_path, chdb_path, settle_seconds=0.2)
    engine = engine_factory(cfg)
    outside = tmp_path / "outside"
    outside.mkdir()
    body = csv_bytes(make_rows(200))
    with open(outside / "m.csv", "wb") as f:
        f.write(body[:500])
        f.flush()
        os.rename(outside / "m.csv", cfg.data_dir / "m.csv")
        wait_for(lambda: _waiting_or_past(engine, "m.csv"), what="judged")
        assert state_of(engine, "m.csv") == State.SETTLING
        f.write(body[500:])
    wait_for(lambda: state_of(engine, "m.csv") == State.LOADED, what="loaded once closed")
    assert _count(engine, "m") == 200


def test_done_marker_suffix(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, settle_seconds=0.1,
                      routes=(Route(table="drop", glob="drop/*", done_marker=".ok"),))
    engine = engine_factory(cfg)
    (cfg.data_dir / "drop").mkdir()
    (cfg.data_dir / "drop" / "a.csv").write_bytes(csv_bytes(make_rows(10)))
    (cfg.data_dir / "free.csv").write_bytes(csv_bytes(make_rows(3)))
    wait_for(lambda: state_of(engine, "free.csv") == State.LOADED, what="a file without a marker rule loads")
    wait_for(lambda: "done-marker" in ((engine.ledger.current("drop/a.csv") or None) and
                                       engine.ledger.current("drop/a.csv").reason or ""), what="waiting for marker")
    assert state_of(engine, "drop/a.csv") == State.SETTLING
    (cfg.data_dir / "drop" / "a.csv.ok").write_bytes(b"")
    wait_for(lambda: state_of(engine, "drop/a.csv") == State.LOADED, what="loaded after its marker")
    assert _count(engine, "drop") == 10
    assert engine.ledger.current("drop/a.csv.ok") is None  # the marker is not a data file


def test_done_marker_in_folder(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, settle_seconds=0.1,
                      routes=(Route(table="spark", glob="spark/*", done_marker="_SUCCESS"),))
    engine = engine_factory(cfg)
    folder = cfg.data_dir / "spark"
    folder.mkdir()
    for i in range(3):
        (folder / f"part-{i}.csv").write_bytes(csv_bytes(make_rows(5, seed=i * 6)))  # same nullability
    wait_for(lambda: all("done-marker" in ((r := engine.ledger.current(f"spark/part-{i}.csv")) and r.reason or "")
                         for i in range(3)), what="waiting for _SUCCESS")
    (folder / "_SUCCESS").write_bytes(b"")
    for i in range(3):
        wait_for(lambda i=i: state_of(engine, f"spark/part-{i}.csv") == State.LOADED, what="loaded")
    assert _count(engine, "spark") == 15


def test_copy_in_loads_without_settle_wait(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """A huge settle time: a rename (inside or from outside) and a closed copy still load."""
    cfg = make_config(tmp_path, chdb_path, settle_seconds=3600)
    engine = engine_factory(cfg)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.csv").write_bytes(csv_bytes(make_rows(4)))
    os.rename(outside / "o.csv", cfg.data_dir / "o.csv")
    (cfg.data_dir / "i.csv.tmp").write_bytes(csv_bytes(make_rows(4, seed=9)))
    os.rename(cfg.data_dir / "i.csv.tmp", cfg.data_dir / "i.csv")
    (outside / "c.csv").write_bytes(csv_bytes(make_rows(4, seed=99)))
    shutil.copy(outside / "c.csv", cfg.data_dir / "c.csv")
    for name in ("o", "i", "c"):
        wait_for(lambda n=name: state_of(engine, f"{n}.csv") == State.LOADED, what=f"{name}.csv loaded")



def test_route_options_are_checked() -> None:
    assert Route.parse({"table": "t", "done_marker": ".ok"}).done_marker == ".ok"
    assert Route.parse({"table": "t", "growing": "hold"}).growing == "hold"
    for bad in ({"done_marker": ""}, {"done_marker": "a/b"}, {"done_marker": 3}, {"growing": "maybe"}):
        with pytest.raises(ValueError, match="done_marker|growing"):
            Route.parse({"table": "t", **bad})


def test_once_does_not_wait_for_a_marker_that_is_not_there(tmp_path: Path) -> None:
    """`--once` loads what is complete and leaves a file still waiting for its done-marker
    `settling` (exit 3), instead of waiting for ever."""
    from tests.conftest import run_chute

    data = tmp_path / "data"
    (data / "drop").mkdir(parents=True)
    (data / "drop" / "a.csv").write_bytes(csv_bytes(make_rows(4)))
    (data / "drop" / "b.csv").write_bytes(csv_bytes(make_rows(4, seed=5)))  # its empty values: Nullable
    (data / "drop" / "b.csv.ok").write_bytes(b"")
    config = tmp_path / "chute.toml"
    config.write_text('[[routes]]\nglob = "drop/*"\ntable = "drop"\ndone_marker = ".ok"\n')
    args = ["--no-ui", "--once", str(data), "--config", str(config), "--state-dir", str(tmp_path / "state"),
            "--clickhouse", f"chdb://{tmp_path / 'ch'}", "--settle-seconds", "0.1", "--log-format", "json"]
    done = run_chute(*args, timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "1 loaded" in done.stderr and "1 settling" in done.stderr
    files = run_chute("files", "--json", "--state-dir", str(tmp_path / "state"))
    assert "waiting for its done-marker a.csv.ok" in files.stdout
    (data / "drop" / "a.csv.ok").write_bytes(b"")
    again = run_chute(*args, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
