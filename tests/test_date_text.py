"""Date text into a declared date column: ClickHouse parses it on insert, and where its parse fails
or cuts, a Nullable column got NULL or a shortened value with no word (a fraction into DateTime,
`23:30` without seconds, a 9th decimal into DateTime64(6)). Such a value is named, never changed."""

from __future__ import annotations

import csv
from pathlib import Path

from chute.core.routing import Route
from chute.core.states import State
from tests.conftest import make_config, query, wait_for

FINAL = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE, State.FAILED}
TEXT = ["2026-07-01 23:30:00", "2026-07-01T23:30:01", "2026-07-01", "2026-07-01 23:30:00.5", "2026-07-01 23:30",
        "2026-07-01 23:30:00.123456789"]
# per declared type: the rows ClickHouse reads exactly (the others are rejects, with their line)
KEPT = {"Nullable(DateTime)": [0, 1, 2], "Nullable(DateTime64(6))": [0, 1, 2, 3],
        "Nullable(DateTime64(9))": [0, 1, 2, 3, 5], "Nullable(Date32)": [2]}


def test_date_text_clickhouse_would_null_or_cut_is_a_named_reject_not_a_silent_change(
        engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    tables = {f"d{n}": kind for n, kind in enumerate(KEPT)}
    cfg = make_config(tmp_path, chdb_path, routes=tuple(
        Route(table=t, columns=(("t", kind),), on_bad_rows="skip") for t, kind in tables.items()))
    for table in tables:
        (cfg.data_dir / table).mkdir()
        (cfg.data_dir / table / "t.csv").write_text(  # (the table's name in a column: not a duplicate)
            "i,t,k\n" + "".join(f"{i},{t},{table}\n" for i, t in enumerate(TEXT)))
    engine = engine_factory(cfg)
    names = [f"{t}/t.csv" for t in tables]
    wait_for(lambda: all(engine.ledger.current(n) and engine.ledger.current(n).state in FINAL for n in names),
             what="all final")
    for table, kind in tables.items():
        row = engine.ledger.current(f"{table}/t.csv")
        assert row.state == State.LOADED, (kind, row.last_error)
        got = query(engine, f"SELECT i, t IS NULL FROM `{cfg.database}`.{table} ORDER BY i")
        assert got == [(i, 0) for i in KEPT[kind]], kind  # no NULL where the file had a value
        rejects = list(csv.reader((cfg.quarantine_dir / table / "t.csv.rejects.csv").open()))[1:]
        assert [int(r[0]) - 2 for r in rejects] == [i for i in range(len(TEXT)) if i not in KEPT[kind]], kind
        assert all(r[3].startswith("not a valid ") for r in rejects), rejects
