"""Epoch-seconds text into an operator's DateTime/DateTime64 columns (fit._epoch_text), found by
review rv10: a batch mixing epochs with date text was quarantined ("not a valid DateTime64(6)
(YYYY-MM-DD hh:mm:ss ...)") while the same file split into smaller batches loaded, so whether a
file loaded depended on where its batches fell. Every value is compared with what its text says,
exactly (toUnixTimestamp64*), in zones, Nullable columns, NDJSON strings, at DateTime64(9)'s top
edge and under on_bad_rows = "skip"."""

from __future__ import annotations

from pathlib import Path

import pytest

from chute.core.routing import Route
from chute.core.states import State
from chute.core.target import Column
from tests.altered import into_operator_table
from tests.conftest import make_config, query, state_of, wait_for

MIXED = b"id,v\n1,1700000000.123456\n2,2023-11-14 22:13:20.123456\n3,1700000000.5\n"
# (column type, file, body, expression, what each id must load as)
LOADED = {
    "kolkata": ("DateTime64(6, 'Asia/Kolkata')", "a.csv", b"id,v\n1,1700000000.123456\n2,1700000000.999999\n",
                "toUnixTimestamp64Micro(v)", [(1, 1700000000123456), (2, 1700000000999999)]),
    "nullable": ("Nullable(DateTime64(6))", "a.csv", b"id,v\n1,1700000000.123456\n2,\n3,1700000001.000001\n",
                 "toUnixTimestamp64Micro(v)", [(1, 1700000000123456), (2, None), (3, 1700000001000001)]),
    "dt64_9_top": ("DateTime64(9)", "a.csv", b"id,v\n1,9223372036.854775807\n2,1000000000.000000001\n",
                   "toUnixTimestamp64Nano(v)", [(1, 9223372036854775807), (2, 1000000000000000001)]),
    "ndjson": ("DateTime64(6)", "a.ndjson", b'{"id":1,"v":"1700000000.123456"}\n{"id":2,"v":"1700000000.000001"}\n',
               "toUnixTimestamp64Micro(v)", [(1, 1700000000123456), (2, 1700000000000001)]),
    "mixed": ("DateTime64(6)", "a.csv", MIXED, "toUnixTimestamp64Micro(v)",
              [(1, 1700000000123456), (2, 1700000000123456), (3, 1700000000500000)]),
    "mixed_kolkata": ("Nullable(DateTime64(6, 'Asia/Kolkata'))", "a.csv",
                      b"id,v\n1,1700000000.123456\n2,2023-11-15 03:43:20.123456\n3,\n4,1700000000.5\n",
                      "toUnixTimestamp64Micro(v)",
                      [(1, 1700000000123456), (2, 1700000000123456), (3, None), (4, 1700000000500000)]),
    "mixed_datetime": ("DateTime", "a.csv", b"id,v\n1,1700000000.000000\n2,2023-11-14 22:13:21\n",
                       "toUnixTimestamp(v)", [(1, 1700000000), (2, 1700000001)]),
    "mixed_dt64_9_top": ("DateTime64(9)", "a.csv", b"id,v\n1,9223372036.854775807\n2,2001-09-09 01:46:40.000000001\n",
                         "toUnixTimestamp64Nano(v)", [(1, 9223372036854775807), (2, 1000000000000000001)]),
}


@pytest.mark.parametrize("case", sorted(LOADED))
def test_epoch_text_loads_as_written(case: str, engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    kind, name, body, expr, want = LOADED[case]
    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, "e", kind, {name: body})
    row = engine.ledger.current(f"e/{name}")
    got = query(engine, f"SELECT id, {expr} FROM `{cfg.database}`.e ORDER BY id")
    assert (row.state, got) == (State.LOADED, want), (row.state, row.last_error, got)


# (column type, body, the value named in the reason, its line, the reason's words)
REFUSED = {
    "dt64_9_over": ("DateTime64(9)", b"id,v\n1,9223372036.854775808\n", "9223372036.854775808", 2, "outside"),
    "finer": ("DateTime64(6)", b"id,v\n1,1700000000.1234561\n", "1700000000.1234561", 2, "would not keep"),
    "mixed_finer": ("DateTime64(6)", b"id,v\n1,2023-11-14 22:13:20\n2,1700000000.1234561\n",
                    "1700000000.1234561", 3, "would not keep"),
    "mixed_bad_date": ("DateTime64(6)", b"id,v\n1,1700000000.5\n2,2023-13-14 22:13:20\n",
                       "2023-13-14 22:13:20", 3, "not a valid DateTime64(6) (YYYY"),
    "mixed_datetime_far": ("DateTime", b"id,v\n1,2023-11-14 22:13:20\n2,9700000000.000000\n",
                           "9700000000.000000", 3, "outside"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_epoch_text_a_column_would_change_is_refused(case: str, engine_factory, tmp_path: Path,
                                                     chdb_path: Path) -> None:
    kind, body, value, line, words = REFUSED[case]
    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, "e", kind, {"a.csv": body})
    row = engine.ledger.current("e/a.csv")
    assert row.state == State.QUARANTINED, (row.state, query(engine, f"SELECT toString(v) FROM `{cfg.database}`.e"))
    assert f"'{value}' at line {line}" in (row.last_error or "") and words in (row.last_error or ""), row.last_error


def _one_file(engine_factory, tmp_path: Path, chdb_path: Path, body: bytes, **overrides: object) -> tuple:
    cfg = make_config(tmp_path, chdb_path, **overrides)
    engine = engine_factory(cfg)
    engine.target.create_table("e", [Column("id", "Int64"), Column("v", "DateTime64(6)")])
    (cfg.data_dir / "e").mkdir()
    (cfg.data_dir / "e" / "a.csv").write_bytes(body)
    wait_for(lambda: state_of(engine, "e/a.csv") in ("loaded", "quarantined"), what="the file final")
    got = query(engine, f"SELECT id, toUnixTimestamp64Micro(v), _source_row FROM `{cfg.database}`.e ORDER BY id")
    return engine.ledger.current("e/a.csv"), got


@pytest.mark.parametrize("batch_rows", [1, 125_000])
def test_a_mixed_file_loads_the_same_whatever_its_batches(batch_rows: int, engine_factory, tmp_path: Path,
                                                           chdb_path: Path) -> None:
    row, got = _one_file(engine_factory, tmp_path, chdb_path, MIXED, batch_rows=batch_rows)
    assert [g[:2] for g in got] == LOADED["mixed"][4], (row.state, row.last_error, got)


def test_skip_mode_skips_only_the_epochs_a_column_would_change(engine_factory, tmp_path: Path,
                                                               chdb_path: Path) -> None:
    body = (b"id,v\n1,1700000000.123456\n2,1700000000.1234567\n3,2023-11-14 22:13:20.5\n4,1700000000.000002\n"
            b"5,2023-02-30 00:00:00\n")
    row, got = _one_file(engine_factory, tmp_path, chdb_path, body,
                         routes=(Route(table="e", glob="e/*", on_bad_rows="skip"),))
    assert got == [(1, 1700000000123456, 1), (3, 1700000000500000, 3), (4, 1700000000000002, 4)], (
        row.state, row.last_error, got)


def test_a_parquet_decimal_past_datetime64_9s_top_is_refused_by_its_line(engine_factory, tmp_path: Path,
                                                                        chdb_path: Path) -> None:
    """The same edge by the number path: the bound compared as doubles let .854775808 through."""
    from tests.test_fit_numbers import _decimals

    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, "e", "DateTime64(9)",
                                      {"bad.parquet": _decimals(["9223372036.854775808"], 9),
                                       "good.parquet": _decimals(["9223372036.854775807"], 9)})
    got = query(engine, f"SELECT toUnixTimestamp64Nano(v) FROM `{cfg.database}`.e")
    assert got == [(9223372036854775807,)], got
    row = engine.ledger.current("e/bad.parquet")
    assert row.state == State.QUARANTINED and "outside what a DateTime64(9) holds" in (row.last_error or ""), (
        row.last_error)
