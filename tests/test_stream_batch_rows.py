"""Streamed text files with a B of their own (stream_batch_rows, core/batch_size.py own_rows) in each
format and compression, over both targets, and a streamed file that grows after it loaded (its
appended records stream with a B of their own): every row once, B as its text bounds it. Files
count as big by a patched Reader.IN_MEMORY_BYTES; a batch's text by a patched STREAM_BATCH_BYTES."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from chute.core.engine import Engine
from tests.conftest import HttpTarget, make_config, query, state_of

ROWS = 300_000


@pytest.fixture
def chdb_path(any_target: Path | HttpTarget) -> Path | HttpTarget:
    return any_target


def _batches(state_dir: Path) -> list[tuple]:
    db = sqlite3.connect(f"file:{state_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT f.path, f.batch_rows, f.state, f.base_id, (SELECT count(*) FROM batches b "
                          "WHERE b.file_id = f.id) FROM files f ORDER BY f.id").fetchall()
    finally:
        db.close()


def _write(fmt: str, start: int, rows: int, header: bool = True) -> bytes:
    if fmt == "ndjson":
        body = "".join(json.dumps({"id": i, "name": f"n{i}"}) + "\n" for i in range(start, start + rows))
    else:
        sep = "\t" if fmt == "tsv" else ","
        body = (f"id{sep}name\n" if header else "") + "".join(f"{i}{sep}n{i}\n" for i in range(start, start + rows))
    return body.encode()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "ndjson", "csv.gz", "ndjson.gz"])
def test_every_streamed_format_loads_once_with_its_own_b(tmp_path: Path, chdb_path: Path | HttpTarget,
                                                        engine_factory: Callable[..., Engine],
                                                        monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    from chute.core import batch_size
    from chute.core.reader import Reader

    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 1 << 16)
    base = fmt.removesuffix(".gz")
    raw = _write(base, 0, ROWS)
    monkeypatch.setattr(batch_size, "STREAM_BATCH_BYTES", len(raw) // 2)
    cfg = make_config(tmp_path, chdb_path)
    path = cfg.data_dir / "t" / f"a.{fmt}"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(raw, 1) if fmt.endswith(".gz") else raw)
    engine = engine_factory(cfg, once=True)
    assert engine.wait_idle(timeout=300)
    assert state_of(engine, f"t/a.{fmt}") == "loaded"
    assert query(engine, f"SELECT count(), uniqExact(id), uniqExact(_source_row) FROM `{cfg.database}`.t"
                 ) == [(ROWS, ROWS, ROWS)]
    assert _batches(cfg.state_dir)[0][1] == len(raw) // 2 * ROWS // len(raw) // 1000 * 1000


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_a_grown_streamed_file_loads_its_appended_rows_once(tmp_path: Path, chdb_path: Path | HttpTarget,
                                                           engine_factory: Callable[..., Engine],
                                                           monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    from chute.core import batch_size
    from chute.core.reader import Reader

    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 1 << 16)
    raw = _write(fmt, 0, ROWS)
    monkeypatch.setattr(batch_size, "STREAM_BATCH_BYTES", len(raw) // 2)
    cfg = make_config(tmp_path, chdb_path)
    path = cfg.data_dir / "t" / f"a.{fmt}"
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)
    engine = engine_factory(cfg, once=True)
    assert engine.wait_idle(timeout=300)
    engine.stop()
    with path.open("ab") as f:
        f.write(_write(fmt, ROWS, ROWS, header=False))
    engine = engine_factory(cfg, once=True)
    assert engine.wait_idle(timeout=300)
    assert query(engine, f"SELECT count(), uniqExact(id), uniqExact(_source_row) FROM `{cfg.database}`.t"
                 ) == [(2 * ROWS, 2 * ROWS, 2 * ROWS)]
    (_, b0, _, _, _), (_, b1, state, base, _) = _batches(cfg.state_dir)
    assert (b0 > 125_000, b1 > 125_000, state, base) == (True, True, "loaded", 1)  # the append: a B of its own
