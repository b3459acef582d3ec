"""The send pipeline of one file (core/loader.py ``_send``): what it costs the insert lanes, and
that the exactly-once order holds (docs/ARCHITECTURE.md#intent-and-ack): every batch's intent is
committed before its insert starts."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chute.core.config import Config
from chute.core.engine import Engine
from chute.core.target import Target
from tests.conftest import query, state_of, wait_for

ROWS = 5_000
BATCH = 1_000


def _csv(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(rows)))


def _intents(state_dir: Path) -> dict[str, str]:
    """{token: state} of every batch the ledger holds, read as another process would."""
    db = sqlite3.connect(f"file:{state_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT token, state FROM batches").fetchall())
    finally:
        db.close()


def _watch_inserts(monkeypatch: pytest.MonkeyPatch, state_dir: Path, hold_first: threading.Event | None = None
                   ) -> list[tuple[str, dict[str, str]]]:
    """Each insert's token and the ledger's batches at the moment it starts. ``hold_first``: the
    first insert waits for it (the lanes stall, the producer does not)."""
    seen: list[tuple[str, dict[str, str]]] = []
    real = Target.insert

    def insert(self: Target, table: str, batch: Any, token: str) -> None:
        if table == "t":
            seen.append((token, _intents(state_dir)))
            if hold_first is not None and len(seen) == 1:
                assert hold_first.wait(timeout=120)
        real(self, table, batch, token)

    monkeypatch.setattr(Target, "insert", insert)
    return seen


def test_every_insert_finds_its_intent_committed(engine_factory: Callable[..., Engine], cfg: Config,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The protocol's order, whichever thread writes the intent: intent, then insert, then ack."""
    _csv(cfg.data_dir / "t" / "a.csv", ROWS)
    seen = _watch_inserts(monkeypatch, cfg.state_dir)
    engine = engine_factory(once=True, batch_rows=BATCH)
    assert engine.wait_idle(timeout=120)
    assert state_of(engine, "t/a.csv") == "loaded"
    assert query(engine, f"SELECT count(), uniqExact(id) FROM `{engine.cfg.database}`.t") == [(ROWS, ROWS)]
    assert len(seen) == ROWS // BATCH
    for token, batches in seen:
        assert batches.get(token) == "intent", (token, batches)


def test_the_intent_fsync_is_off_the_insert_lanes(engine_factory: Callable[..., Engine], cfg: Config,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """While the one lane is stuck in batch 0's insert, batch 1's intent is already committed: the
    producer writes it as it queues the batch, so a lane goes from one insert to the next without
    waiting for an SQLite commit (issue 12; seen failing when each lane wrote its own intents)."""
    _csv(cfg.data_dir / "t" / "a.csv", ROWS)
    release = threading.Event()
    seen = _watch_inserts(monkeypatch, cfg.state_dir, hold_first=release)
    engine = engine_factory(once=True, batch_rows=BATCH, insert_parallel=1)
    try:
        wait_for(lambda: seen, timeout=120, what="the first insert")
        first = seen[0][0]
        assert first.endswith(":0")
        wait_for(lambda: first.removesuffix(":0") + ":1" in _intents(cfg.state_dir), timeout=60,
                 what="batch 1's intent while batch 0's insert is held")
    finally:
        release.set()
    assert engine.wait_idle(timeout=120)
    assert state_of(engine, "t/a.csv") == "loaded"
    assert query(engine, f"SELECT count(), uniqExact(id) FROM `{engine.cfg.database}`.t") == [(ROWS, ROWS)]


def _file_batches(state_dir: Path, rel: str) -> tuple[int, int]:
    """(B fixed in the ledger, batches sent) of the current version of ``rel``."""
    db = sqlite3.connect(f"file:{state_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        (fid, b), = db.execute("SELECT id, batch_rows FROM files WHERE path = ? AND current = 1", (rel,)).fetchall()
        return b, db.execute("SELECT count(*) FROM batches WHERE file_id = ?", (fid,)).fetchone()[0]
    finally:
        db.close()


BIG = 300_000  # rows: three inserts at batch_rows' default, two at memory_batch_rows'


@pytest.mark.parametrize(("overrides", "expected"), [
    ({}, (250_000, 2)),  # parsed whole in memory: fewer, larger inserts (seen failing: 125,000, 3)
    ({"batch_rows": 100_000}, (100_000, 3)),  # an operator's batch_rows is what every file gets
    ({"memory_batch_rows": 0}, (125_000, 3)),  # off
])
def test_a_file_held_in_memory_is_sent_in_fewer_larger_inserts(engine_factory: Callable[..., Engine], cfg: Config,
                                                                overrides: dict[str, int],
                                                                expected: tuple[int, int]) -> None:
    _csv(cfg.data_dir / "t" / "a.csv", BIG)
    engine = engine_factory(once=True, **overrides)
    assert engine.wait_idle(timeout=180)
    assert state_of(engine, "t/a.csv") == "loaded"
    assert _file_batches(cfg.state_dir, "t/a.csv") == expected
    assert query(engine, f"SELECT count(), uniqExact(id), uniqExact(_source_row) FROM `{engine.cfg.database}`.t"
                 ) == [(BIG, BIG, BIG)]


@pytest.mark.parametrize("gz", [False, True])
def test_a_streamed_file_gets_larger_inserts_bounded_by_its_text(engine_factory: Callable[..., Engine], cfg: Config,
                                                                  monkeypatch: pytest.MonkeyPatch, gz: bool) -> None:
    """A file too big to hold parsed in memory is streamed in batches of stream_batch_rows, at most
    STREAM_BATCH_BYTES of its text each (seen failing: 125,000, the 128 parts of a 16M-row file and
    their merges); a compressed one by the text its limits check read through."""
    import gzip

    from chute.core import batch_size
    from chute.core.reader import Reader

    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 1 << 16)  # this file counts as big
    path = cfg.data_dir / "t" / "a.csv"
    _csv(path, BIG)
    size = path.stat().st_size
    monkeypatch.setattr(batch_size, "STREAM_BATCH_BYTES", size // 2)  # about half the rows a batch
    if gz:
        path.with_suffix(".csv.gz").write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
        path.unlink()
    engine = engine_factory(once=True)
    assert engine.wait_idle(timeout=180)
    rel = "t/a.csv.gz" if gz else "t/a.csv"
    assert state_of(engine, rel) == "loaded"
    b = int(size // 2 * BIG / size) // 1_000 * 1_000
    assert _file_batches(cfg.state_dir, rel) == (b, -(-BIG // b))
    assert query(engine, f"SELECT count(), uniqExact(id) FROM `{engine.cfg.database}`.t") == [(BIG, BIG)]


def test_a_compressed_file_spilled_to_save_memory_keeps_batch_rows(engine_factory: Callable[..., Engine], cfg: Config,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A compressed CSV whose text would fit in memory has its typed pieces spilled to disk to save
    memory: it is not a streamed file, and larger batches would undo that (seen failing: 500,000 in
    one batch; the bench's 1M-row CSV.gz at 1.36x the engine's peak RSS)."""
    import gzip

    from chute.core.formats import delimited

    monkeypatch.setattr(delimited, "SPILL_COMPRESSED_BYTES", 1 << 16)  # this file's pieces spill
    path = cfg.data_dir / "t" / "a.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"id,name\n" + "".join(f"{i},n{i}\n" for i in range(BIG)).encode(),
                                   compresslevel=1))
    engine = engine_factory(once=True)
    assert engine.wait_idle(timeout=180)
    assert state_of(engine, "t/a.csv.gz") == "loaded"
    assert _file_batches(cfg.state_dir, "t/a.csv.gz") == (125_000, 3)
    assert query(engine, f"SELECT count(), uniqExact(id) FROM `{engine.cfg.database}`.t") == [(BIG, BIG)]


def test_which_files_get_a_b_of_their_own(cfg: Config) -> None:
    """Hosts of a fleet (dedup_scope = "fleet") must cut one content into the same batches: no B of
    their own; nor a file whose B the operator set, nor a non-text one. Wide rows: never below batch_rows."""
    import dataclasses
    import os
    from types import SimpleNamespace

    from chute.core.batch_size import STREAM_BATCH_BYTES, own_rows

    def src(size: int, compression: str | None = None, text_size: int = 0) -> SimpleNamespace:
        return SimpleNamespace(st=os.stat_result((0,) * 6 + (size,) + (0,) * 3), compression=compression,
                               text_size=text_size)

    limit = 256 << 20  # Reader.IN_MEMORY_BYTES
    held = SimpleNamespace(TEXT=True, holds_frame=True, src=src(1 << 20), IN_MEMORY_BYTES=limit)
    streamed = SimpleNamespace(TEXT=True, holds_frame=False, src=src(1 << 30), IN_MEMORY_BYTES=limit)
    fleet = dataclasses.replace(cfg, dedup_scope="fleet")
    assert own_rows(cfg, held, 10_000) == 250_000  # type: ignore[arg-type]
    # a big file held in memory: at most 8 inserts, up to stream_batch_rows (seen failing: 250,000)
    assert [own_rows(cfg, held, n) for n in (2_000_000, 3_000_001, 4_000_000, 9_000_000)] == [  # type: ignore[arg-type]
        250_000, 376_000, 500_000, 500_000]
    assert own_rows(dataclasses.replace(cfg, memory_batch_rows=0), held, 4_000_000) == 0  # type: ignore[arg-type]
    assert own_rows(fleet, held, 10_000) == 0  # type: ignore[arg-type]
    assert own_rows(cfg, SimpleNamespace(TEXT=False, holds_frame=True), 10) == 0  # type: ignore[arg-type]
    assert own_rows(cfg, streamed, 16_000_000) == 500_000  # type: ignore[arg-type]  # 64 bytes a row
    assert own_rows(fleet, streamed, 16_000_000) == 0  # type: ignore[arg-type]
    assert own_rows(dataclasses.replace(cfg, batch_rows=100_000), streamed, 16_000_000) == 0  # type: ignore[arg-type]
    kb_rows = (1 << 30) // 1_000  # rows of ~1 KB: STREAM_BATCH_BYTES holds ~33,000 of them
    assert STREAM_BATCH_BYTES // 1_000 < 125_000
    assert own_rows(cfg, streamed, kb_rows) == 125_000  # type: ignore[arg-type]
    assert own_rows(cfg, streamed, kb_rows * 8) == STREAM_BATCH_BYTES * 8 // 1_000 // 1_000 * 1_000  # type: ignore[arg-type]
    gz = SimpleNamespace(TEXT=True, holds_frame=False, src=src(1 << 27, "gzip"), IN_MEMORY_BYTES=limit)
    assert own_rows(cfg, gz, 16_000_000) == 0  # type: ignore[arg-type]  # its text's size not known
    gz.src.text_size = 1 << 30  # as the limits check read it
    assert own_rows(cfg, gz, 16_000_000) == 500_000  # type: ignore[arg-type]
    # its text would fit in memory: spilled to save memory, not streamed (seen failing: 500,000, the
    # 1M-row CSV.gz at 1.36x the engine's peak RSS)
    gz.src.text_size = 64 << 20
    assert own_rows(cfg, gz, 1_000_000) == 0  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("step", ["batch_intent", "insert_acked"])
def test_a_crash_keeps_the_in_memory_batches(tmp_path: Path, step: str) -> None:
    """SIGKILL in the first attempt (an intent written ahead by the producer, or an insert landed
    without its ack), then a new process: it resends under the B and tokens the ledger fixed, and
    the table holds every row once."""
    from tests.conftest import run_chute
    from tests.invariants import rows_and_disagreements
    from tests.test_crash import duplicate_check, kill_at

    data, state, engine = tmp_path / "data", tmp_path / "state", tmp_path / "ch"
    _csv(data / "t" / "a.csv", BIG)
    args = ["--no-ui", "--once", str(data), "--state-dir", str(state), "--clickhouse", f"chdb://{engine}",
            "--settle-seconds", "0.1", "--log-format", "json"]
    kill_at(args, step, 2 if step == "batch_intent" else 1, tmp_path / "failpoint.log")
    assert duplicate_check(engine, "t")[1] == 0
    assert _file_batches(state, "t/a.csv")[0] == 250_000  # fixed before the first insert
    done = run_chute(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _file_batches(state, "t/a.csv") == (250_000, 2)
    assert rows_and_disagreements(state, engine) == ((BIG, 0), [])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_negative_control_the_resend_lands_twice_without_dedup(tmp_path: Path) -> None:
    """The crash above does leave a landed, unacknowledged batch: with deduplication off its resend
    is a duplicate, which chute's count() catches (and replays under a new generation)."""
    from tests.conftest import run_chute
    from tests.test_crash import duplicate_check, kill_at

    data, state, engine = tmp_path / "data", tmp_path / "state", tmp_path / "ch"
    _csv(data / "t" / "a.csv", BIG)
    args = ["--no-ui", "--once", str(data), "--state-dir", str(state), "--clickhouse", f"chdb://{engine}",
            "--settle-seconds", "0.1", "--log-format", "json"]
    kill_at(args, "insert_acked", 1, tmp_path / "failpoint.log", ",no_dedup")
    done = run_chute(*args, env={"CHUTE_FAILPOINTS": "no_dedup"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "verification failed" in run_chute("events", "--state-dir", str(state)).stdout
    assert duplicate_check(engine, "t") == (BIG, 0)


def test_text_travels_as_arrow_views_and_loads_as_written(engine_factory: Callable[..., Engine], cfg: Config,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """On the embedded engine text leaves polars as Arrow string views (its own layout, no copy into
    Arrow strings: ~20 MB less at a 1M-row CSV's peak; seen failing with the copy), and every value
    lands as written."""
    words = ["", "x" * 40, "é€😀 mixed", "a,b \"quoted\"", "short", "line\nbreak", "  padded  "]
    rows = [(i, words[i % len(words)], words[(i * 3) % len(words)] if i % 5 else None) for i in range(3_000)]
    path = cfg.data_dir / "t" / "a.csv"
    path.parent.mkdir(parents=True)

    def cell(v: str | None) -> str:
        return "" if v is None else '"' + v.replace('"', '""') + '"'

    path.write_text("id,a,b\n" + "".join(f"{i},{cell(a)},{cell(b)}\n" for i, a, b in rows))
    types: list[str] = []
    real = Target.encode

    def encode(self: Target, data: Any, spool: bool = False) -> Any:
        if spool:
            types.append(str(data.schema.field("a").type))
        return real(self, data, spool)

    monkeypatch.setattr(Target, "encode", encode)
    engine = engine_factory(once=True, batch_rows=1_000)
    assert engine.wait_idle(timeout=120)
    assert state_of(engine, "t/a.csv") == "loaded"
    assert types and set(types) == {"string_view"}
    got = query(engine, f"SELECT id, a, b FROM `{engine.cfg.database}`.t ORDER BY id")
    assert got == rows


@pytest.mark.parametrize(("flags", "expected"), [
    ({"batch_rows": "125000"}, (0, 0)),  # set to the default's value: still the operator's, for every file
    ({"batch_rows": "125000", "memory_batch_rows": "300000"}, (300_000, 0)),  # both set: as set
    ({"batch_rows": "125000", "stream_batch_rows": "400000"}, (0, 400_000)),
    ({}, (250_000, 500_000)),  # neither: the defaults
])
def test_a_batch_rows_the_operator_set_is_kept_even_at_the_defaults_value(tmp_path: Path, flags: dict[str, str],
                                                                         expected: tuple[int, int]) -> None:
    """Found by the round-9 review: `--batch-rows 125000` (the default's value) got 250,000-row batches."""
    from chute.core import config as config_mod

    cfg = config_mod.load(None, {"data_dir": str(tmp_path), "state_dir": str(tmp_path / "s"), **flags})
    assert (cfg.memory_batch_rows, cfg.stream_batch_rows) == expected
    toml = tmp_path / "chute.toml"
    toml.write_text("".join(f"{k} = {v}\n" for k, v in flags.items()))
    assert not config_mod.check_file(toml)
