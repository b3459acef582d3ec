"""Small files sharing one insert (core/groups.py, docs/ARCHITECTURE.md#groups).

Each file keeps its own lineage, state and exactly-once guarantee: the crash tests kill chute
at every group step (failpoints, not timers), check after every crash that no
(_source_sha256, _source_row) pair exists twice, and finish with every row once. The negative
control replays an unacknowledged group in another order (so under another token) and must
be caught as duplicates by the same check.
"""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pytest

from chute.core.dispatch import dispatch
from chute.core.groups import group_token
from chute.core.ledger import FileRow, GroupMember
from chute.core.states import State
from tests.conftest import make_config, query, run_chute, state_of, wait_for
from tests.invariants import disagreements
from tests.test_crash import duplicate_check, kill_at
from tests.test_engine import csv_bytes, make_rows

FILES = 120
ROWS = 25  # per file


def small_files(data: Path, n: int = FILES, rows: int = ROWS, start: int = 0) -> None:
    data.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        lines = ["id,name,amount"] + [f"{i * 1000 + j},n{i}-{j},{j}.25" for j in range(rows)]
        (data / f"part_{i:04d}.csv").write_text("\n".join(lines) + "\n")


def ledger(state: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_group_token_depends_on_members_and_their_order() -> None:
    a, b = GroupMember(1, 0, "aa", 10), GroupMember(2, 0, "bb", 10)
    assert group_token("t", [a, b]) == group_token("t", [a, b])
    assert group_token("t", [a, b]) != group_token("t", [b, a])
    assert group_token("t", [a, b]) != group_token("t", [a, GroupMember(2, 1, "bb", 10)])  # generation


def file_row(fid: int, path: str, table: str, size: int) -> FileRow:
    fields = {name: None for name in FileRow.__dataclass_fields__}
    fields.update(id=fid, path=path, table_name=table, size=size, state=State.QUEUED, current=1, complete_hint=1,
                  rows_loaded=0, generation=0, attempts=0, approved=0, first_seen=0.0, updated_at=0.0,
                  byte_base=0, row_base=0)
    return FileRow(**fields)


def test_dispatch_groups_small_files_per_table(cfg) -> None:
    rows = [file_row(i, f"a/{i}.csv", "a", size=100) for i in range(5)]
    rows += [file_row(9, "big.csv", "a", size=1 << 30), file_row(10, "b/1.csv", "b", size=10)]
    work = dispatch(cfg, rows, free=10)
    assert [[r.id for r in w] for w in work] == [[0, 1, 2, 3, 4], [9], [10]]
    assert len(dispatch(cfg, rows, free=1)) == 1


def test_small_files_share_inserts_and_keep_their_own_lineage(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, group_max_files=50)
    small_files(cfg.data_dir, 60)
    good = csv_bytes(make_rows(40))
    (cfg.data_dir / "part_broken.csv.gz").write_bytes(gzip.compress(good)[:-30])  # a bad file among them
    engine = engine_factory(cfg)
    wait_for(lambda: engine.idle(), timeout=120, what="idle")
    assert state_of(engine, "part_broken.csv.gz") == State.QUARANTINED  # alone: the others are not poisoned
    for i in range(60):
        assert state_of(engine, f"part_{i:04d}.csv") == State.LOADED
    per_file = query(engine, "SELECT _source_path, count(), min(_source_row), max(_source_row), "
                             f"uniqExact(_source_sha256) FROM `{cfg.database}`.part GROUP BY 1 ORDER BY 1")
    assert per_file == [(f"part_{i:04d}.csv", ROWS, 1, ROWS, 1) for i in range(60)]
    groups = ledger(cfg.state_dir, "SELECT g.state, count(m.file_id) FROM groups g JOIN group_members m"
                                   " ON m.group_id = g.id GROUP BY g.id")
    assert groups and all(state == "done" for state, _ in groups)
    assert max(n for _, n in groups) >= 2 and sum(n for _, n in groups) <= 60


def test_group_max_files_one_loads_every_file_alone(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, group_max_files=1)
    small_files(cfg.data_dir, 5)
    engine = engine_factory(cfg)
    wait_for(lambda: engine.idle(), timeout=120, what="idle")
    assert all(state_of(engine, f"part_{i:04d}.csv") == State.LOADED for i in range(5))
    assert ledger(cfg.state_dir, "SELECT count(*) FROM groups") == [(0,)]


# -- crashes -------------------------------------------------------------------------------------

def _args(tmp: Path) -> list[str]:
    return ["--no-ui", "--once", str(tmp / "data"), "--state-dir", str(tmp / "state"), "--clickhouse",
            f"chdb://{tmp / 'ch'}", "--settle-seconds", "0.1", "--workers", "1", "--log-format", "json"]


@pytest.fixture
def grouped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three groups of 40 small files, for every chute the test starts."""
    monkeypatch.setenv("CHUTE_GROUP_MAX_FILES", "40")


def _kill(tmp: Path, step: str, nth: int, extra: str = "") -> tuple[int, int]:
    kill_at(_args(tmp), step, nth, tmp / "failpoint.log", extra)
    return duplicate_check(tmp / "ch", "part")


@pytest.mark.slow
@pytest.mark.timeout(900)  # a loaded machine is slow, never wrong: no wall-clock windows
def test_sigkill_at_every_group_step_never_duplicates_or_loses(tmp_path: Path, grouped: None) -> None:
    small_files(tmp_path / "data")
    # Intent written, nothing sent; the replay inserted but was not acknowledged (twice: the
    # second replay is dropped by its token); acknowledged, members not verified; verified,
    # none loaded; loaded, archive not done.
    cycles = [("group_intent", 1), ("group_inserted", 1), ("group_inserted", 1), ("group_done", 1),
              ("group_verified", 1), ("loaded", 1)]
    observed = [_kill(tmp_path, step, nth) for step, nth in cycles]
    assert all(dups == 0 for _, dups in observed), observed
    assert all(rows < FILES * ROWS for rows, _ in observed), observed
    assert observed[1][0] == observed[2][0] == 40 * ROWS, f"the replay was not the same group: {observed}"
    done = run_chute(*_args(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert duplicate_check(tmp_path / "ch", "part") == (FILES * ROWS, 0)
    assert disagreements(tmp_path / "state", tmp_path / "ch") == []
    assert ledger(tmp_path / "state", "SELECT count(*) FROM groups WHERE state = 'intent'") == [(0,)]
    assert ledger(tmp_path / "state", "SELECT state, count(*) FROM files GROUP BY 1") == [("loaded", FILES)]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_negative_control_a_regrouped_replay_is_caught(tmp_path: Path, grouped: None) -> None:
    """The same crash, but the replay forms the group in another order (another token): the
    duplicate check must see it."""
    small_files(tmp_path / "data")
    assert _kill(tmp_path, "group_inserted", 1) == (40 * ROWS, 0)
    rows, dups = _kill(tmp_path, "group_inserted", 1, ",group_reorder")
    assert (rows, dups) == (80 * ROWS, 40 * ROWS), "the check did not catch the regrouped replay"
    # chute's own verification catches it too: the members' rows are removed and loaded again.
    done = run_chute(*_args(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert duplicate_check(tmp_path / "ch", "part") == (FILES * ROWS, 0)
    assert "verification failed" in run_chute("events", "--state-dir", str(tmp_path / "state")).stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_member_changed_after_a_crash_abandons_its_group(tmp_path: Path, grouped: None) -> None:
    """The group cannot be replayed as it was: every member's rows are removed, each gets a new
    generation, and everything loads again once."""
    small_files(tmp_path / "data")
    assert _kill(tmp_path, "group_inserted", 1) == (40 * ROWS, 0)
    [(member,)] = ledger(tmp_path / "state", "SELECT f.path FROM group_members m JOIN files f ON f.id = m.file_id"
                                             " WHERE m.group_id = 1 AND m.pos = 3")
    changed = tmp_path / "data" / member
    changed.write_text("id,name,amount\n1,x,1.5\n2,y,2.5\n")
    done = run_chute(*_args(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert duplicate_check(tmp_path / "ch", "part") == ((FILES - 1) * ROWS + 2, 0)
    assert disagreements(tmp_path / "state", tmp_path / "ch") == []
    assert ledger(tmp_path / "state", "SELECT state FROM groups WHERE id = 1") == [("abandoned",)]
    assert ledger(tmp_path / "state", "SELECT count(*) FROM events WHERE action = 'group abandoned'") == [(40,)]


def test_grouped_files_are_archived_after_load(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, after_load="archive")
    small_files(cfg.data_dir, 8)
    engine = engine_factory(cfg)
    wait_for(lambda: engine.idle(), timeout=120, what="idle")
    for i in range(8):
        assert state_of(engine, f"part_{i:04d}.csv") == State.LOADED
        assert (cfg.data_dir / "_archive" / f"part_{i:04d}.csv").exists()
        assert not (cfg.data_dir / f"part_{i:04d}.csv").exists()
    assert ledger(cfg.state_dir, "SELECT count(*) FROM intents WHERE status = 'open'") == [(0,)]


def test_a_table_dropped_behind_the_cached_schema_is_made_again(engine_factory, tmp_path: Path,
                                                               chdb_path: Path) -> None:
    """The loader remembers each table's columns; an error loading into it must make it look again."""
    cfg = make_config(tmp_path, chdb_path)
    small_files(cfg.data_dir, 3)
    engine = engine_factory(cfg)
    wait_for(lambda: engine.idle(), timeout=120, what="idle")
    engine.target.client().command(f"DROP TABLE `{cfg.database}`.part SYNC")
    small_files(cfg.data_dir, 3, start=100)
    wait_for(lambda: all(state_of(engine, f"part_{i:04d}.csv") == State.LOADED for i in range(100, 103)),
             timeout=120, what="loaded again")
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.part")[0][0] == 3 * ROWS
