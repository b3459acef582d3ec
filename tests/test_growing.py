"""Growing files (issue 11): appended records load once, with lineage continuing from the old rows."""

from __future__ import annotations

import hashlib
from pathlib import Path

from chute.core.routing import Route
from chute.core.states import State
from tests.conftest import engine_query, make_config, query, run_chute, state_of, wait_for
from tests.test_engine import HEADER, csv_bytes, expected, make_rows


def _rows_body(rows: list[list[str]]) -> bytes:
    """Data lines only (no header), as csv_bytes writes them."""
    return csv_bytes(rows)[len(",".join(HEADER)) + 1:]


def _by_sha(engine, table: str) -> dict[str, tuple[int, int, int]]:
    got = query(engine, f"SELECT _source_sha256, count(), min(_source_row), max(_source_row) "
                        f"FROM `{engine.cfg.database}`.`{table}` GROUP BY 1")
    return {sha: (n, lo, hi) for sha, n, lo, hi in got}


def test_appended_records_load_once_with_lineage_continuing(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, batch_rows=40)
    path = cfg.data_dir / "grow.csv"
    rows = make_rows(175)
    path.write_bytes(csv_bytes(rows[:100]))
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "grow.csv") == State.LOADED, what="first version loaded")
    v1 = engine.ledger.current("grow.csv")
    for lo, hi in ((100, 150), (150, 175)):  # two appends, each by a writer that opens, appends and closes
        before = engine.ledger.current("grow.csv").id
        with open(path, "ab") as f:
            f.write(_rows_body(rows[lo:hi]))
        wait_for(lambda b=before: (r := engine.ledger.current("grow.csv")).id != b and r.state == State.LOADED,
                 what=f"append of rows {lo + 1}-{hi} loaded")
    v2, v3 = engine.ledger.versions("grow.csv")[1:]
    assert (v2.base_id, v2.row_base, v2.rows, v2.byte_base) == (v1.id, 100, 50, v1.size)
    assert (v3.base_id, v3.row_base, v3.rows) == (v2.id, 150, 25)
    whole = path.read_bytes()
    assert v3.sha256 == hashlib.sha256(whole).hexdigest()  # the appended rows carry the whole file's sha
    assert _by_sha(engine, "grow") == {v1.sha256: (100, 1, 100), v2.sha256: (50, 101, 150), v3.sha256: (25, 151, 175)}
    db = cfg.database
    got = query(engine, f"SELECT id, name, amount, ts, flag, maybe FROM `{db}`.grow ORDER BY _source_row")
    assert got == expected(rows)  # every row once, in file order


def test_rewrite_that_is_not_an_append_is_held(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    path = cfg.data_dir / "re.csv"
    rows = make_rows(30)
    path.write_bytes(csv_bytes(rows[:20]))
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "re.csv") == State.LOADED)
    changed = [list(r) for r in rows]
    changed[3][1] = "edited"
    path.write_bytes(csv_bytes(changed))  # longer, but the first bytes differ
    wait_for(lambda: state_of(engine, "re.csv") == State.HELD, what="held")
    assert "changed content at a known path" in engine.ledger.current("re.csv").last_error


def test_base_that_ended_mid_record_is_not_appended_to(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    path = cfg.data_dir / "nl.csv"
    rows = make_rows(20)
    path.write_bytes(csv_bytes(rows[:10]).rstrip(b"\n"))  # no final newline: the last record may go on
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "nl.csv") == State.LOADED)
    with open(path, "ab") as f:
        f.write(b"\n" + _rows_body(rows[10:]))
    wait_for(lambda: state_of(engine, "nl.csv") == State.HELD, what="held")


def test_growing_hold_policy_holds_then_loads_only_the_appended_records(engine_factory, tmp_path: Path,
                                                                        chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, routes=(Route(table="logs", glob="logs/*", growing="hold"),))
    (cfg.data_dir / "logs").mkdir()
    path = cfg.data_dir / "logs" / "a.csv"
    rows = make_rows(30)
    path.write_bytes(csv_bytes(rows[:20]))
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "logs/a.csv") == State.LOADED)
    with open(path, "ab") as f:
        f.write(_rows_body(rows[20:]))
    wait_for(lambda: state_of(engine, "logs/a.csv") == State.HELD, what="held")
    assert "grew" in engine.ledger.current("logs/a.csv").last_error
    engine.command("approve", "logs/a.csv", actor="test")
    wait_for(lambda: state_of(engine, "logs/a.csv") == State.LOADED, what="approved append loaded")
    assert query(engine, f"SELECT count(), uniqExact(_source_row), max(_source_row) "
                         f"FROM `{cfg.database}`.logs")[0] == (30, 30, 30)


def test_sigkill_mid_append_load_resends_the_same_batches(tmp_path: Path) -> None:
    """Killed right after ClickHouse acknowledged the first appended batch (before the ledger
    recorded it): the next run resends with the same tokens; every row exactly once."""
    data, state, ch = tmp_path / "data", tmp_path / "state", tmp_path / "ch"
    data.mkdir()
    rows = make_rows(1500)
    path = data / "big.csv"
    path.write_bytes(csv_bytes(rows[:1000]))
    common = ["--no-ui", "--once", str(data), "--state-dir", str(state), "--clickhouse", f"chdb://{ch}",
              "--batch-rows", "100", "--settle-seconds", "0.1", "--log-format", "json"]
    first = run_chute(*common)
    assert first.returncode == 0, first.stderr[-2000:]
    with open(path, "ab") as f:
        f.write(_rows_body(rows[1000:]))
    killed = run_chute(*common, env={"CHUTE_FAILPOINTS": "kill_after_insert=1"})
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])  # the failpoint fired
    mid = engine_query(ch, "SELECT count() FROM default.big")[0][0]
    assert 1000 < mid < 1500, mid  # killed part-way through the appended records
    done = run_chute(*common)
    assert done.returncode == 0, done.stderr[-2000:]
    got = engine_query(ch, "SELECT count(), uniqExact(_source_row), min(_source_row), max(_source_row), "
                           "uniqExact(_source_sha256) FROM default.big")[0]
    assert got == [1500, 1500, 1, 1500, 2]
    dups = engine_query(ch, "SELECT count() FROM (SELECT _source_sha256, _source_row, count() AS n "
                            "FROM default.big GROUP BY 1, 2 HAVING n > 1)")[0][0]
    assert dups == 0
