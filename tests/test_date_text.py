"""Date text into a declared date column: ClickHouse parses it on insert, and where its parse fails
or cuts, a Nullable column got NULL or a shortened value with no word (a fraction into DateTime,
`23:30` without seconds, a 9th decimal into DateTime64(6)). Such a value is named, never changed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from chute.core.routing import Route
from chute.core.states import State
from tests.conftest import make_config, query, wait_for

FINAL = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE, State.FAILED}
TEXT = ["2026-07-01 23:30:00", "2026-07-01T23:30:01", "2026-07-01", "2026-07-01 23:30:00.5", "2026-07-01 23:30",
        "2026-07-01 23:30:00.123456789"]
# per declared type: the rows ClickHouse reads exactly (the others are rejects, with their line)
KEPT = {"Nullable(DateTime)": [0, 1, 2], "Nullable(DateTime64(6))": [0, 1, 2, 3],
        "Nullable(DateTime64(9))": [0, 1, 2, 3, 5], "Nullable(Date32)": [2]}


def _load(engine_factory, tmp_path: Path, chdb_path: Path, files: dict[str, tuple[str, list[str]]]):
    """One CSV per table (``table: (declared type of t, its texts)``), rejects skipped; waits until
    every file is final. Returns (engine, config)."""
    cfg = make_config(tmp_path, chdb_path, routes=tuple(
        Route(table=t, columns=(("t", kind),), on_bad_rows="skip") for t, (kind, _) in files.items()))
    for table, (_, texts) in files.items():
        (cfg.data_dir / table).mkdir()
        (cfg.data_dir / table / "t.csv").write_text(  # (the table's name in a column: not a duplicate)
            "i,t,k\n" + "".join(f"{i},{t},{table}\n" for i, t in enumerate(texts)))
    engine = engine_factory(cfg)
    names = [f"{t}/t.csv" for t in files]
    wait_for(lambda: all(engine.ledger.current(n) and engine.ledger.current(n).state in FINAL for n in names),
             what="all final")
    return engine, cfg


def test_date_text_clickhouse_would_null_or_cut_is_a_named_reject_not_a_silent_change(
        engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    tables = {f"d{n}": kind for n, kind in enumerate(KEPT)}
    engine, cfg = _load(engine_factory, tmp_path, chdb_path, {t: (kind, TEXT) for t, kind in tables.items()})
    for table, kind in tables.items():
        row = engine.ledger.current(f"{table}/t.csv")
        assert row.state == State.LOADED, (kind, row.last_error)
        got = query(engine, f"SELECT i, t IS NULL FROM `{cfg.database}`.{table} ORDER BY i")
        assert got == [(i, 0) for i in KEPT[kind]], kind  # no NULL where the file had a value
        rejects = list(csv.reader((cfg.quarantine_dir / table / "t.csv.rejects.csv").open()))[1:]
        assert [int(r[0]) - 2 for r in rejects] == [i for i in range(len(TEXT)) if i not in KEPT[kind]], kind
        assert all(r[3].startswith("not a valid ") for r in rejects), rejects


# Found by the second review (a probe of 60 shapes x 18 declared types x CSV/TSV/NDJSON, against the code
# before 432a2be): per declared type, text -> what lands (toString), or None for a named reject.
SHAPES: dict[str, dict[str, str | None]] = {
    # Zeros past the scale lose nothing, and ClickHouse read them exactly before 432a2be refused them.
    "Nullable(DateTime64(0))": {"2026-07-01 10:20:30.000": "2026-07-01 10:20:30", "2026-07-01 10:20:30.5": None},
    "Nullable(DateTime64(6))": {"2026-07-01 10:20:30.000000000": "2026-07-01 10:20:30.000000",
                                "2016-12-31 23:59:60": None,  # a leap second landed as the next minute
                                "0000-01-01": None, "0001-01-01": "0001-01-01 00:00:00.000000"},  # (0000: 1970)
    # A one-digit month or day into a Date: read as written before 432a2be refused it.
    "Nullable(Date32)": {"2026-7-1": "2026-07-01", "2026-07-1": "2026-07-01", "2026-07-02 00:00:00": "2026-07-02",
                         "2026-07-03 00:00:01": None},
    # Clamped silently, before and after 432a2be: 1970-01-01, 2149-06-06, 2106-02-07 06:28:15.
    "Nullable(Date)": {"1969-12-31": None, "2149-06-06": "2149-06-06", "2149-06-07": None, "0000-01-01": None},
    "Nullable(DateTime)": {"1969-12-31 23:59:59": None, "2106-02-07 06:28:15": "2106-02-07 06:28:15",
                           "2106-02-07 06:28:16": None, "9999-12-31": None},
    "Nullable(DateTime('Asia/Tokyo'))": {"1970-01-01 00:00:00": None, "1970-01-01 09:00:00": "1970-01-01 09:00:00"},
    # Past 2262-04-11 a nanosecond count overflows: NULL in a Nullable column, the whole insert
    # failed (and retried as unexpected) in a plain one.
    "Nullable(DateTime64(9))": {"2262-04-11 23:47:16": "2262-04-11 23:47:16.000000000",
                                "2262-04-11 23:47:17": None, "2299-12-31": None},
    "DateTime64(9)": {"2026-07-01 10:20:30.1234567890": "2026-07-01 10:20:30.123456789", "2300-01-01": None},
}
# Every value of a file is one inference accepts as a date-time: the column travels as text that
# ClickHouse parses, which cut or NULLed it silently (the Fitter looked only at text columns).
INFERRED: dict[str, dict[str, str | None]] = {
    "Nullable(DateTime)": {"2026-07-01 10:20:30.5": None, "2026-07-01 10:20:31.25": None},
    "Nullable(DateTime64(3))": {"2026-07-01 10:20:30.123456": None, "2026-07-01 10:20:30.5": "2026-07-01 10:20:30.500"},
    "Nullable(Date)": {"1969-12-31": None, "2026-07-01": "2026-07-01"},
    # Nanoseconds past 2262-04-11: a table the file made itself is DateTime64(9), which cannot count them.
    "Nullable(DateTime64(9))": {"2026-07-01 10:20:30.123456789": "2026-07-01 10:20:30.123456789",
                                "2263-01-01 00:00:00.000000001": None},
    # (a midnight date-time into a date loses nothing: it loaded before, and still does)
    "Date32": {"2026-07-01 00:00:00": "2026-07-01", "2026-07-02T00:00:00": "2026-07-02",
               "2026-07-03 10:00:00": None},
}


@pytest.mark.parametrize("cases", [SHAPES, INFERRED], ids=["text", "inferred"])
def test_date_text_every_shape_lands_as_written_or_is_named(engine_factory, tmp_path: Path, chdb_path: Path,
                                                           cases: dict[str, dict[str, str | None]]) -> None:
    tables = {f"s{n}": kind for n, kind in enumerate(cases)}
    tail = ["not a date"] if cases is SHAPES else []  # (the column stays text whatever the others are)
    engine, cfg = _load(engine_factory, tmp_path, chdb_path,
                        {t: (kind, [*cases[kind], *tail]) for t, kind in tables.items()})
    for table, kind in tables.items():
        row = engine.ledger.current(f"{table}/t.csv")
        assert row.state == State.LOADED, (kind, row.state, row.last_error)
        got = dict(query(engine, f"SELECT i, toString(t) FROM `{cfg.database}`.{table} ORDER BY i"))
        want = {i: v for i, v in enumerate(cases[kind].values()) if v is not None}
        assert got == want, kind
        rejects = list(csv.reader((cfg.quarantine_dir / table / "t.csv.rejects.csv").open()))[1:]
        named = {r[2] for r in rejects}
        assert named >= {t for t, v in cases[kind].items() if v is None}, (kind, rejects)
