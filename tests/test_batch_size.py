"""Dynamic batch sizing (issue 12): B adapts between files to insert latency and memory, within
bounds, and is fixed in the ledger per file so a replay forms the same batches."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from chute.core import batch_size
from chute.core.batch_size import BatchSizer
from chute.core.engine import Engine
from tests.conftest import wait_for
from tests.test_engine import csv_bytes, make_rows


def test_fixed_unless_adaptive() -> None:
    sizer = BatchSizer(125_000)
    sizer.observe(100_000, 30.0)
    assert sizer.choose(100.0, 10**9) == 125_000


def test_adapts_to_latency_within_bounds() -> None:
    sizer = BatchSizer(125_000, adaptive=True)
    assert sizer.choose(100.0, None) == 125_000  # nothing observed yet: the configured start
    sizer.observe(100_000, 2.0)  # 20 us a row: one second is 50,000 rows
    assert sizer.choose(100.0, None) == 50_000
    for _ in range(30):
        sizer.observe(100_000, 0.01)  # very fast inserts: grow, but never past the upper bound
    assert sizer.choose(100.0, None) == batch_size.MAX_ROWS
    for _ in range(30):
        sizer.observe(10_000, 60.0)  # very slow: shrink, but not below the lower bound
    assert sizer.choose(100.0, None) == batch_size.MIN_ROWS
    sizer.observe(500, 60.0)  # tiny inserts are overhead, not a rate: ignored
    assert sizer.choose(100.0, None) == batch_size.MIN_ROWS


def test_memory_caps_the_batch() -> None:
    sizer = BatchSizer(500_000, adaptive=True)
    # 1 GiB available, 5% per batch, 10 KB rows: about 5,368 rows, in whole thousands.
    assert sizer.choose(10_000.0, 1 << 30) == 5_000
    assert sizer.choose(10**9, 1 << 30) == 1_000  # never below one thousand rows


def _batches(state: Path) -> dict[str, tuple[int, list[int]]]:
    db = sqlite3.connect(state / "ledger.sqlite3")
    try:
        out = {}
        for fid, path, b in db.execute("SELECT id, path, batch_rows FROM files WHERE state = 'loaded'"):
            rows = [r for (r,) in db.execute("SELECT rows FROM batches WHERE file_id = ? ORDER BY idx", (fid,))]
            out[path] = (b, rows)
        return out
    finally:
        db.close()


def test_adaptive_engine_records_each_files_batch_size(engine_factory: Callable[..., Engine]) -> None:
    """A slow first file makes the next file's batches smaller; each file's B is in the ledger, and its
    batches are cut at exactly that size (so a replay, which reads B back, cuts the same way)."""
    engine = engine_factory(batch_rows=20_000, batch_rows_adaptive=True)
    assert engine.loader is not None
    data = engine.cfg.data_dir
    (data / "first.csv").write_bytes(csv_bytes(make_rows(30_000)))
    wait_for(lambda: "first.csv" in _batches(engine.cfg.state_dir), timeout=120, what="first file loaded")
    assert _batches(engine.cfg.state_dir)["first.csv"][0] == 20_000  # nothing observed yet: the start
    # Pretend ClickHouse slowed down: 1 ms a row makes one second 1,000 rows, raised to the bound.
    for _ in range(20):
        engine.loader.sizer.observe(10_000, 10.0)
    (data / "second.csv").write_bytes(csv_bytes(make_rows(25_000, seed=2)))
    wait_for(lambda: "second.csv" in _batches(engine.cfg.state_dir), timeout=120, what="second file loaded")
    b, rows = _batches(engine.cfg.state_dir)["second.csv"]
    assert b == batch_size.MIN_ROWS
    assert rows == [10_000, 10_000, 5_000]
