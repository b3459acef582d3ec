"""core/spool.py: the embedded engine's insert bodies wait on disk, not in memory (issue 12, peak RSS),
and keep the exactly-once protocol: a resent batch with the same token is dropped."""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from chute.core import failpoints
from chute.core.config import Config
from chute.core.engine import Engine
from chute.core.reader import with_lineage
from chute.core.spool import SpooledBody
from chute.core.target import Target
from tests.conftest import query, state_of, wait_for

ROWS = 20_000


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory of this test alone, so its batch files can be counted."""
    where = tmp_path / "spool"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def _batch(first: int = 0) -> pa.Table:
    df = pl.DataFrame({"id": range(first, first + ROWS), "name": [f"n{i}" for i in range(ROWS)]})
    return with_lineage(df, "t/a.csv", "a" * 64, first)


def _count(target: Target) -> int:
    return int(target._call("query", f"SELECT count() FROM `{target.database}`.t").result_rows[0][0])


def _batch_files(where: Path) -> list[Path]:
    """The batch files on disk: named in ``where``, or unlinked there and held open by this process
    (core/spool.py on Linux)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # (the listing's own descriptor is gone by now)
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith(f"{where}/") and link.endswith(" (deleted)"):
                held.append(Path(link.removesuffix(" (deleted)")))
    return sorted([*where.glob("chute-batch-*"), *held])


def test_a_resent_spooled_batch_is_dropped_by_its_token(target: Target, spool_dir: Path) -> None:
    first = target.encode(_batch(), spool=True)
    assert isinstance(first.body, SpooledBody) and len(_batch_files(spool_dir)) == 1
    target.insert("t", first, "sha:1000:0")
    assert _batch_files(spool_dir) == []  # sent: its file is gone
    target.insert("t", target.encode(_batch(), spool=True), "sha:1000:0")  # a resend after a lost answer
    assert _count(target) == ROWS
    target.insert("t", target.encode(_batch(), spool=True), "sha:1000:1")  # another token is another batch
    assert _count(target) == 2 * ROWS
    assert _batch_files(spool_dir) == []


def test_negative_control_without_dedup_the_resend_is_a_duplicate(target: Target, spool_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(failpoints._spec, "no_dedup", "1")
    target.insert("t", target.encode(_batch(), spool=True), "sha:1000:0")
    target.insert("t", target.encode(_batch(), spool=True), "sha:1000:0")
    assert _count(target) == 2 * ROWS


def test_a_failed_insert_keeps_the_file_for_the_resend_until_the_batch_is_dropped(target: Target,
                                                                                   spool_dir: Path) -> None:
    batch = target.encode(_batch(), spool=True)
    with pytest.raises(Exception, match="(?i)table"):
        target.insert("no_such_table", batch, "sha:1000:0")
    assert len(_batch_files(spool_dir)) == 1
    target.insert("t", batch, "sha:1000:0")  # the same bytes again, read afresh
    assert _count(target) == ROWS
    unsent = target.encode(_batch(ROWS), spool=True)
    assert len(_batch_files(spool_dir)) == 1
    del unsent  # a halted pipeline drops its queued batches
    gc.collect()
    assert _batch_files(spool_dir) == []


def test_a_spooled_batch_holds_no_arrow_memory(target: Target, spool_dir: Path) -> None:
    """What the send queue holds per batch: an in-memory body is a copy of the whole batch; a
    spooled one is a file name (seen failing with the in-memory body)."""
    data = _batch()
    size = data.nbytes
    before = pa.total_allocated_bytes()
    in_memory = target.encode(data)
    held_in_memory = pa.total_allocated_bytes() - before
    spooled = target.encode(data, spool=True)
    held_spooled = pa.total_allocated_bytes() - before - held_in_memory
    assert held_in_memory > size / 2
    assert held_spooled < size / 10
    del in_memory, spooled


def test_http_bodies_stay_in_memory(tmp_path: Path, http_target: object) -> None:
    """Over HTTP the body is the request itself: spooling applies to the embedded engine only."""
    from tests.conftest import make_config

    cfg = make_config(tmp_path, http_target)  # type: ignore[arg-type]
    t = Target(cfg)
    try:
        assert not isinstance(t.encode(_batch(), spool=True).body, SpooledBody)
    finally:
        t.close()


def _csv(path: Path, rows: int, bad_at: int | None = None) -> None:
    lines = ["id,name"] + [f"{i},n{i}" if i != bad_at else "oops,n" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")


def test_a_file_loads_exactly_and_leaves_no_batch_file(engine_factory: Callable[..., Engine], cfg: Config,
                                                       spool_dir: Path) -> None:
    (cfg.data_dir / "t").mkdir()
    _csv(cfg.data_dir / "t" / "a.csv", 5_500)
    engine = engine_factory(once=True, batch_rows=1_000)
    assert engine.wait_idle(timeout=120)
    assert state_of(engine, "t/a.csv") == "loaded"
    assert query(engine, f"SELECT count(), uniqExact(id) FROM `{engine.cfg.database}`.t") == [(5_500, 5_500)]
    assert _batch_files(spool_dir) == []


def test_a_file_stopped_mid_way_leaves_no_batch_file(engine_factory: Callable[..., Engine], cfg: Config,
                                                    spool_dir: Path) -> None:
    """A batch ClickHouse refuses halts the pipeline with batches still queued: their files go too."""
    (cfg.data_dir / "t").mkdir()
    (cfg.data_dir / "t" / "first.csv").write_text("id,name\n1,a\n")  # the table: id Int64
    engine = engine_factory(batch_rows=1_000)
    wait_for(lambda: state_of(engine, "t/first.csv") == "loaded", timeout=60)
    _csv(cfg.data_dir / "t" / "b.csv", 9_000, bad_at=2_500)  # text in an Int64 column, in batch 2
    wait_for(lambda: state_of(engine, "t/b.csv") == "quarantined", timeout=120)
    gc.collect()
    wait_for(lambda: _batch_files(spool_dir) == [], timeout=30, what="batch files removed")


def test_no_room_for_a_batch_file_pauses_on_the_temporary_directory_and_loads_once(
        engine_factory: Callable[..., Engine], cfg: Config, spool_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full temporary directory refusing a batch file (ENOSPC) is the temporary directory's
    fault (temp_dir_full: resumes when it has room for the batch), not the state dir's: taken
    for a full state dir, whose probe passed at once, intake resumed, the file was planned and
    refused again, every few seconds for good (seen: an 8 MiB TMPDIR, a 320 MB file, 366 ledger
    events and 10 minutes of CPU in a `--once` that never ended)."""
    import errno

    from chute.core import resources

    full = {"now": True}
    real = pa.ipc.new_file

    def new_file(sink: object, schema: pa.Schema) -> object:
        if full["now"]:
            raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")
        return real(sink, schema)

    monkeypatch.setattr(pa.ipc, "new_file", new_file)
    monkeypatch.setattr(resources, "temp_free", lambda: 0 if full["now"] else 1 << 40)
    (cfg.data_dir / "t").mkdir()
    _csv(cfg.data_dir / "t" / "a.csv", 5_500)
    engine = engine_factory(batch_rows=1_000)
    wait_for(lambda: engine.resources.fault is not None, what="intake paused")
    assert engine.resources.fault == resources.TEMP, engine.resources.fault
    assert engine.ledger.current("t/a.csv").attempts == 0
    full["now"] = False
    wait_for(lambda: state_of(engine, "t/a.csv") == "loaded", timeout=60, what="loaded once space returned")
    assert query(engine, f"SELECT count(), uniqExact(id) FROM `{engine.cfg.database}`.t") == [(5_500, 5_500)]
    assert engine.resources.fault is None
