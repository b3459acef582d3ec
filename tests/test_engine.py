"""The core engine end to end, in-process, against the real embedded ClickHouse."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import zstandard

from chute.core.engine import Engine
from chute.core.states import State
from tests.conftest import HttpTarget, make_config, query, state_of, wait_for


@pytest.fixture
def chdb_path(any_target: Path | HttpTarget) -> Path | HttpTarget:
    """Every test here runs twice: on the embedded engine and over HTTP (tests/chhttp.py)."""
    return any_target


def make_rows(n: int, seed: int = 0) -> list[list[str]]:
    names = ["plain", "with, comma", 'with "quotes"', "multi\nline", "ünïcödé ✓", ""]
    rows = []
    for i in range(n):
        k = i + seed
        rows.append([
            str(k),
            names[k % len(names)],
            f"{(k * 7) % 1000 / 8:.3f}",
            f"2026-11-{1 + k % 28:02d}T{k % 24:02d}:{k % 60:02d}:00",
            "true" if k % 3 else "false",
            "" if k % 5 == 0 else str(k * 2),
        ])
    return rows


HEADER = ["id", "name", "amount", "ts", "flag", "maybe"]


def csv_bytes(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def expected(rows: list[list[str]]) -> list[tuple]:
    """An independent parse: what each CSV row must become in ClickHouse."""
    out = []
    for r in rows:
        out.append((
            int(r[0]),
            r[1] or None,
            float(r[2]),
            datetime.fromisoformat(r[3]),
            r[4] == "true",
            int(r[5]) if r[5] else None,
        ))
    return out


def table_rows(engine: Engine, table: str, path: str) -> list[tuple]:
    db = engine.cfg.database
    return query(engine, f"SELECT id, name, amount, ts, flag, maybe FROM `{db}`.`{table}` "
                         "WHERE _source_path = {p:String} ORDER BY _source_row", p=path)


def loaded(engine: Engine, rel: str) -> bool:
    return state_of(engine, rel) == State.LOADED


def test_files_present_at_start_load_exactly(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, batch_rows=70)
    rows = make_rows(250)
    raw = csv_bytes(rows)
    (cfg.data_dir / "events_2026-11-28.csv").write_bytes(raw)
    (cfg.data_dir / "orders-0001.csv.gz").write_bytes(gzip.compress(csv_bytes(rows[:100])))
    (cfg.data_dir / "web").mkdir()
    (cfg.data_dir / "web" / "hits.csv.zst").write_bytes(zstandard.ZstdCompressor().compress(csv_bytes(rows[50:90])))
    engine = engine_factory(cfg)
    for rel in ("events_2026-11-28.csv", "orders-0001.csv.gz", "web/hits.csv.zst"):
        wait_for(lambda r=rel: loaded(engine, r), what=f"{rel} loaded")
    assert table_rows(engine, "events", "events_2026-11-28.csv") == expected(rows)
    assert table_rows(engine, "orders", "orders-0001.csv.gz") == expected(rows[:100])
    assert table_rows(engine, "web", "web/hits.csv.zst") == expected(rows[50:90])
    # Lineage: the file's sha256 and 1-based data row numbers, four batches of at most 70 rows.
    db = cfg.database
    lineage = query(engine, f"SELECT DISTINCT _source_sha256 FROM `{db}`.events")
    assert lineage == [(hashlib.sha256(raw).hexdigest(),)]
    assert query(engine, f"SELECT min(_source_row), max(_source_row), uniqExact(_source_row) FROM `{db}`.events") \
        == [(1, 250, 250)]
    row = engine.ledger.current("events_2026-11-28.csv")
    assert (row.rows, row.rows_loaded, row.batch_rows) == (250, 250, 70)
    assert len(engine.ledger.done_batches(row.id, 0)) == 4


def test_files_arriving_while_running(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, settle_seconds=0.5)
    engine = engine_factory(cfg)
    data = cfg.data_dir
    outside = tmp_path / "outside"
    outside.mkdir()
    rows = {name: make_rows(60, seed=i * 1000) for i, name in enumerate(["slow", "renamed", "copied", "moved"])}

    # Written slowly in place: pauses longer than the settle period would be fatal without
    # close-write, so keep each pause under it; the file must load once, whole.
    def slow_writer() -> None:
        body = csv_bytes(rows["slow"])
        with open(data / "slow.csv", "wb") as f:
            for i in range(0, len(body), 400):
                f.write(body[i:i + 400])
                f.flush()
                time.sleep(0.1)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    # Renamed in: written under an ignored name, then renamed.
    (data / "renamed.csv.tmp").write_bytes(csv_bytes(rows["renamed"]))
    os.rename(data / "renamed.csv.tmp", data / "renamed.csv")
    # Copied in from outside the tree.
    (outside / "copied.csv").write_bytes(csv_bytes(rows["copied"]))
    shutil.copy(outside / "copied.csv", data / "copied.csv")
    # Moved in from outside the tree: only a Created event, so it must settle.
    (outside / "moved.csv").write_bytes(csv_bytes(rows["moved"]))
    os.rename(outside / "moved.csv", data / "moved.csv")
    writer.join()
    for name in rows:
        wait_for(lambda n=name: loaded(engine, f"{n}.csv"), what=f"{name}.csv loaded")
        assert table_rows(engine, name, f"{name}.csv") == expected(rows[name])
        # One version only: nothing was picked up half-written.
        assert len(engine.ledger.versions(f"{name}.csv")) == 1


def test_same_content_under_two_names_loads_once(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    body = csv_bytes(make_rows(30))
    (cfg.data_dir / "a.csv").write_bytes(body)
    (cfg.data_dir / "a_copy.csv").write_bytes(body)
    (cfg.data_dir / "sub").mkdir()
    (cfg.data_dir / "sub" / "again.csv").write_bytes(body)
    engine = engine_factory(cfg)
    wait_for(lambda: engine.idle(), what="idle")
    states = sorted(str(engine.ledger.current(p).state) for p in ("a.csv", "a_copy.csv", "sub/again.csv"))
    assert states == ["duplicate", "duplicate", "loaded"]
    tables = [r[0] for r in query(engine, f"SHOW TABLES FROM `{cfg.database}`")]
    assert len(tables) == 1
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.`{tables[0]}`")[0][0] == 30
    dup = next(r for r in engine.ledger.list_files() if r.state == State.DUPLICATE)
    assert "same content as" in dup.reason


def test_changed_content_at_known_path_is_held_until_approved(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    path = cfg.data_dir / "prices.csv"
    path.write_bytes(csv_bytes(make_rows(10)))
    engine = engine_factory(cfg)
    wait_for(lambda: loaded(engine, "prices.csv"))
    first = engine.ledger.current("prices.csv")
    path.write_bytes(csv_bytes(make_rows(12, seed=500)))
    wait_for(lambda: state_of(engine, "prices.csv") == State.HELD, what="held")
    held = engine.ledger.current("prices.csv")
    assert held.id != first.id and "changed content at a known path" in held.last_error
    assert engine.ledger.get(first.id).state == State.LOADED  # the old version is kept
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.prices")[0][0] == 10
    assert engine.command("approve", "prices.csv", actor="test") == "approved prices.csv"
    wait_for(lambda: loaded(engine, "prices.csv"), what="approved version loaded")
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.prices")[0][0] == 22
    actors = {e.actor for e in engine.ledger.events(file_id=held.id)}
    assert "test" in actors  # the audit trail says who approved it


def test_bad_input_is_quarantined_and_the_daemon_keeps_going(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    good = csv_bytes(make_rows(40))
    (cfg.data_dir / "broken.csv.gz").write_bytes(gzip.compress(good)[:-30])  # truncated
    (cfg.data_dir / "notgzip.csv.gz").write_bytes(good)  # wrong magic
    (cfg.data_dir / "empty.csv").write_bytes(b"")
    (cfg.data_dir / "good.csv").write_bytes(good)
    engine = engine_factory(cfg)
    wait_for(lambda: engine.idle(), what="idle")
    assert state_of(engine, "good.csv") == State.LOADED
    for rel in ("broken.csv.gz", "notgzip.csv.gz", "empty.csv"):
        row = engine.ledger.current(rel)
        assert row.state == State.QUARANTINED, (rel, row.state, row.last_error)
        assert row.last_error
        moved = cfg.data_dir / row.moved_to
        assert moved.exists() and not (cfg.data_dir / rel).exists()
        reason = json.loads(Path(str(moved) + ".reason.json").read_text())
        assert reason["reason"] == row.last_error and reason["path"] == rel
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.good")[0][0] == 40
    tables = {r[0] for r in query(engine, f"SHOW TABLES FROM `{cfg.database}`")}
    assert tables == {"good"}  # zero rows (not even a table) from the bad files


def test_bad_value_late_in_file_leaves_zero_rows(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """A date that does not fit the table in the last batch: earlier batches were inserted, then
    removed. (Inference covers the whole file, so the file's own column is text; the table,
    created by an earlier file, has a date there.)"""
    cfg = make_config(tmp_path, chdb_path, batch_rows=50)
    (cfg.data_dir / "late").mkdir()
    (cfg.data_dir / "late" / "first.csv").write_bytes(csv_bytes(make_rows(3, seed=99)))
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "late/first.csv") == State.LOADED, what="table created")
    rows = make_rows(2_000)  # 40 batches: the bad value is in the last one
    rows[-1][3] = "not a date"
    (cfg.data_dir / "late" / "late.csv").write_bytes(csv_bytes(rows))
    wait_for(lambda: state_of(engine, "late/late.csv") == State.QUARANTINED, what="quarantined")
    row = engine.ledger.current("late/late.csv")
    line = 2001 + sum("\n" in r[1] for r in rows[:-1])  # (the physical line: quoted fields span two)
    assert f"'not a date' at line {line}" in row.last_error, row.last_error
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.late")[0][0] == 3
    assert row.generation >= 1  # tokens of the removed rows are never reused


def test_purge_then_same_content_loads_again(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """docs/ARCHITECTURE.md#generations: after a purge, the same content must not be silently dropped by old tokens."""
    cfg = make_config(tmp_path, chdb_path)
    body = csv_bytes(make_rows(25))
    (cfg.data_dir / "t.csv").write_bytes(body)
    engine = engine_factory(cfg)
    wait_for(lambda: loaded(engine, "t.csv"))
    result = engine.command("purge", "t.csv", actor="test")
    assert "25 rows deleted" in result
    assert not (cfg.data_dir / "t.csv").exists()
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.t")[0][0] == 0
    (cfg.data_dir / "t.csv").write_bytes(body)
    wait_for(lambda: loaded(engine, "t.csv"), what="reloaded")
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.t")[0][0] == 25


def test_files_added_while_stopped_load_at_start(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "first.csv").write_bytes(csv_bytes(make_rows(5)))
    engine = engine_factory(cfg)
    wait_for(lambda: loaded(engine, "first.csv"))
    engine.stop()
    (cfg.data_dir / "second.csv").write_bytes(csv_bytes(make_rows(7)))
    engine = engine_factory(cfg)
    wait_for(lambda: loaded(engine, "second.csv"))
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.second")[0][0] == 7
    assert len(engine.ledger.list_files()) == 2  # first.csv was not taken again


def test_require_approval_holds_every_new_file(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, require_approval=True)
    (cfg.data_dir / "x.csv").write_bytes(csv_bytes(make_rows(3)))
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "x.csv") == State.HELD)
    engine.command("approve", "x.csv", actor="test")
    wait_for(lambda: loaded(engine, "x.csv"))
