"""Issue 10, the refresh's collect: what the console (and the engine's alert monitor) reads every
second or few comes from finished minutes and seconds counted once, an index, and only the
recent part read again. Each figure must equal a fresh full count, also after new rows arrive;
and the reads must stay recent (these tests were seen failing on main: the day's events, the
ten minutes of batches and every file row were read each time)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from chute.core import alerts
from chute.core.attach import ALERTS_MAX_AGE, HISTORY, AttachedEngine
from chute.core.config import Config
from chute.core.ledger import Ledger, connect
from chute.core.tally import AckedRows
from chute.tui.demo import seed_bulk

NOW = 1_800_000_000.0


def _seed(tmp_path: Path, n: int = 3000) -> Config:
    seed_bulk(tmp_path / "state", tmp_path / "data", n, now=NOW)
    return Config(data_dir=tmp_path / "data", state_dir=tmp_path / "state")


def _arrive(cfg: Config, file_id: int, at: float) -> None:
    """A file loads at ``at``: its events and its batch, as the engine writes them."""
    conn = connect(Path(cfg.state_dir) / Ledger.FILENAME)
    with conn:
        conn.execute("INSERT INTO files(id, path, current, size, table_name, state, rows, rows_loaded, first_seen,"
                     " updated_at, loaded_at) VALUES (?, ?, 1, 5000, 't', 'loaded', 100, 100, ?, ?, ?)",
                     (file_id, f"late-{file_id}.csv", at - 2, at, at))
        conn.executemany("INSERT INTO events(ts, file_id, path, actor, action, from_state, to_state)"
                         " VALUES (?, ?, ?, 'engine', 'transition', ?, ?)",
                         [(at - 1, file_id, "x", "queued", "loading"), (at, file_id, "x", "loading", "loaded")])
        conn.execute("INSERT INTO batches(file_id, generation, idx, token, rows, state, sent_at, acked_at)"
                     " VALUES (?, 0, 0, ?, 100, 'done', ?, ?)", (file_id, f"late:{file_id}", at - 1, at))
    conn.close()


class _EventReads:
    """How much of the audit trail (in seconds of it) each count a ledger is asked for covers."""

    def __init__(self, ledger: Ledger, now: float, monkeypatch: Any) -> None:
        self.spans: list[float] = []
        since, per_minute = ledger.outcomes_since, ledger.outcomes_per_minute

        def count_since(start: float, states: Any) -> Any:
            self.spans.append(now - start)
            return since(start, states)

        def count_per_minute(start: float, until: float, states: Any) -> Any:
            self.spans.append(until - start)
            return per_minute(start, until, states)

        monkeypatch.setattr(ledger, "outcomes_since", count_since)
        monkeypatch.setattr(ledger, "outcomes_per_minute", count_per_minute)


def test_alert_inputs_from_a_kept_tally_equal_a_full_count_and_read_only_recent_events(
        tmp_path: Path, monkeypatch: Any) -> None:
    cfg = _seed(tmp_path)
    ledger = Ledger(cfg.state_dir, readonly=True)
    try:
        tally = alerts.outcome_tally()
        times = [NOW, NOW + 5, NOW + 61, NOW + 200, NOW + 3 * 3600]
        for k, now in enumerate(times):
            _arrive(cfg, 100_000 + k, now - 0.5)  # a file loads between two evaluations
            kept = alerts.gather(cfg, ledger, now, tally=tally)
            fresh = alerts.gather(cfg, ledger, now)
            assert (kept.day_outcomes, kept.outcomes) == (fresh.day_outcomes, fresh.outcomes), now
        later = times[-1] + 5  # the next evaluation
        reads = _EventReads(ledger, later, monkeypatch)
        alerts.gather(cfg, ledger, later, tally=tally)
        assert reads.spans and max(reads.spans) <= 180, f"events re-counted over {max(reads.spans):.0f} s"
    finally:
        ledger.close()


def test_the_attached_engine_evaluates_alerts_on_recent_events_only(tmp_path: Path, monkeypatch: Any) -> None:
    cfg = _seed(tmp_path)
    clock = [NOW]
    engine = AttachedEngine(cfg, now=lambda: clock[0], holder=lambda: "pid 1 daemon")
    try:
        engine.snapshot()  # the first evaluation counts the day (once)
        clock[0] = NOW + ALERTS_MAX_AGE + 1  # the next one
        reads = _EventReads(engine.ledger, clock[0], monkeypatch)
        assert [a.name for a in engine.snapshot().alerts] == [a.name for a in alerts.from_ledger(
            cfg, engine.ledger, clock[0], True)]
        assert reads.spans and max(reads.spans[:-2]) <= 180, f"events re-counted over {max(reads.spans):.0f} s"
    finally:
        engine.close()


def test_rows_acked_from_kept_minutes_equal_a_full_count(tmp_path: Path) -> None:
    cfg = _seed(tmp_path)
    ledger = Ledger(cfg.state_dir, readonly=True)
    try:
        rows = AckedRows()
        for k, now in enumerate([NOW, NOW + 7.5, NOW + 61, NOW + 900, NOW + 2000]):
            _arrive(cfg, 200_000 + k, now - 0.2)
            for start in (now - 3600, now - 1234.5, NOW - 2500):
                assert rows.since(ledger, start, now) == ledger.rows_acked_since(start), (now, start)
    finally:
        ledger.close()


class _Conn:
    """The attached engine's connection, recording the lower bound of each history read."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.since = conn, []

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        if "FROM batches" in sql:
            self.since.append(args[0])
        return self.conn.execute(sql, args)

    def close(self) -> None:
        self.conn.close()


def test_attached_history_equals_a_full_read_and_reads_only_the_last_minute(tmp_path: Path) -> None:
    cfg = _seed(tmp_path, 1500)
    clock = [NOW]
    engine = AttachedEngine(cfg, now=lambda: clock[0], holder=lambda: "pid 1 daemon", alert_rules=lambda e, t: [])
    full = connect(Path(cfg.state_dir) / Ledger.FILENAME, readonly=True)

    def fresh(now: float) -> list[tuple[float, int, int]]:
        rows = full.execute(
            "SELECT CAST(b.acked_at AS INTEGER) AS s, SUM(b.rows) AS r,"
            " SUM(b.rows * IFNULL(f.size * 1.0 / NULLIF(f.rows, 0), 0)) AS n"
            " FROM batches b JOIN files f ON f.id = b.file_id"
            " WHERE b.acked_at >= ? AND b.acked_at <= ? GROUP BY s ORDER BY s", (int(now) - HISTORY, now)).fetchall()
        return [(float(r[0]), int(r[1]), int(r[2])) for r in rows]

    try:
        # Ticks, a file arriving, a jump past the window, and a clock stepped back.
        for k, now in enumerate([NOW, NOW + 1.5, NOW + 2.5, NOW + 70, NOW + 700, NOW + 700.9, NOW + 400]):
            clock[0] = now
            _arrive(cfg, 300_000 + k, now - 0.3)
            assert engine.snapshot().history == fresh(now), now
        recorder = _Conn(engine._conn)
        engine._conn = recorder  # type: ignore[assignment]
        clock[0] = NOW + 401
        engine.snapshot()
        assert recorder.since and min(recorder.since) >= clock[0] - 120, recorder.since
    finally:
        full.close()
        engine.close()


def test_files_per_minute_is_read_by_an_index(tmp_path: Path) -> None:
    cfg = _seed(tmp_path, 50)
    ledger = Ledger(cfg.state_dir)  # a writer opens it: the schema (and its indexes) are brought up to date
    try:
        plan = " ".join(str(r[-1]) for r in ledger._conn.execute(
            "EXPLAIN QUERY PLAN SELECT count(*) AS n FROM files WHERE loaded_at >= ?", (NOW - 60,)))
        assert "INDEX" in plan and "SCAN files" not in plan, plan
        for since in (NOW - 60, NOW - 10.5, NOW + 1):
            scanned = ledger._conn.execute("SELECT count(*) FROM files NOT INDEXED WHERE loaded_at >= ?", (since,))
            assert ledger.loaded_since(since) == scanned.fetchone()[0]
    finally:
        ledger.close()
