"""Hostile data found in review (issue 9): values that cast but would not read back as written."""

from __future__ import annotations

from pathlib import Path

from chute.core.schema import Column
from chute.core.states import State
from tests.conftest import make_config, query, state_of, wait_for

FINAL = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE, State.FAILED}


def test_text_that_an_existing_number_column_would_alter_is_refused(engine_factory, tmp_path: Path,
                                                                    chdb_path: Path) -> None:
    """A second file into a table whose zip column is Int64: '01234' must not become 1234."""
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "zips").mkdir()
    (cfg.data_dir / "zips" / "a.csv").write_bytes(b"zip,f\n12345,1.5\n")
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "zips/a.csv") == State.LOADED, what="base loaded")
    cases = {"lead.csv": b"zip,f\n12,1\n01234,2\n", "plus.csv": b"zip,f\n+5,1\n",
             "space.csv": b"zip,f\n 7,1\n", "floatlead.csv": b"zip,f\n1,01.5\n",
             "fine.csv": b"zip,f\n-3,2e3\n0,-0.25\n"}  # the negative control: these keep their text
    for name, body in cases.items():
        (cfg.data_dir / "zips" / name).write_bytes(body)
    wait_for(lambda: all(state_of(engine, f"zips/{n}") in FINAL for n in cases), what="all final")
    states = {n: (engine.ledger.current(f"zips/{n}").state, engine.ledger.current(f"zips/{n}").last_error)
              for n in cases}
    assert states.pop("fine.csv")[0] == State.LOADED
    for name, (state, reason) in states.items():
        assert state == State.QUARANTINED and ("would not keep it as written" in (reason or "")
                                               or name == "space.csv"), (name, state, reason)
    got = query(engine, f"SELECT zip, f FROM `{cfg.database}`.zips ORDER BY _source_path, _source_row")
    assert sorted(got) == [(-3, 2000.0), (0, -0.25), (12345, 1.5)]


def test_an_append_keeps_the_same_rule(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    path = cfg.data_dir / "grow.csv"
    path.write_bytes(b"id,zip\n1,12345\n2,23456\n")
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "grow.csv") == State.LOADED, what="base loaded")
    first = engine.ledger.current("grow.csv").id
    with open(path, "ab") as f:
        f.write(b"3,01234\n")
    wait_for(lambda: (r := engine.ledger.current("grow.csv")).id != first and r.state in FINAL, what="append final")
    row = engine.ledger.current("grow.csv")
    # ... and names the line in the whole file (it said line 2: the line within the appended part).
    assert row.state == State.QUARANTINED and "'01234' at line 4" in row.last_error, (row.state, row.last_error)
    assert query(engine, f"SELECT zip FROM `{cfg.database}`.grow ORDER BY _source_row") == [(12345,), (23456,)]


def test_a_broken_append_names_its_line_in_the_whole_file(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    base = {"r.csv": b"id,n\n1,5\n2,6\n", "j.ndjson": b'{"a":1}\n{"a":2}\n'}
    for name, body in base.items():
        (cfg.data_dir / name).write_bytes(body)
    engine = engine_factory(cfg)
    wait_for(lambda: all(state_of(engine, n) == State.LOADED for n in base), what="bases loaded")
    firsts = {n: engine.ledger.current(n).id for n in base}
    with open(cfg.data_dir / "r.csv", "ab") as f:
        f.write(b"3,4,5\n")
    with open(cfg.data_dir / "j.ndjson", "ab") as f:
        f.write(b"{bad\n")
    wait_for(lambda: all((r := engine.ledger.current(n)).id != firsts[n] and r.state in FINAL for n in base),
             what="appends final")
    assert "ragged row at line 4:" in engine.ledger.current("r.csv").last_error
    assert "line 3 is not valid JSON" in engine.ledger.current("j.ndjson").last_error


def test_decimals_stay_exact(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """Decimals went through a double on the way in: 38 digits came back as 17 good ones."""
    import decimal
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "dec").mkdir()
    out = io.BytesIO()
    values = [decimal.Decimal("1234567890123456789012345678.0123456789"), decimal.Decimal("0.0000000001")]
    pq.write_table(pa.table({"id": [1, 2], "d": pa.array(values, pa.decimal128(38, 10))}), out)
    (cfg.data_dir / "dec" / "a.parquet").write_bytes(out.getvalue())
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "dec/a.parquet") == State.LOADED, what="parquet loaded")
    cases = {"float.csv": b"id,d\n3,1234567890123.45\n4,-2.5\n",  # a double's shortest text, exactly
             "long.csv": b"id,d\n5,1234567890123456789.0123456789\n",  # text (beyond a double) into the decimal
             "scale.csv": b"id,d\n6,0.12345678901234\n", "lead.csv": b"id,d\n7,007.5\n"}  # would change: refused
    for name, body in cases.items():
        (cfg.data_dir / "dec" / name).write_bytes(body)
    wait_for(lambda: all(state_of(engine, f"dec/{n}") in FINAL for n in cases), what="all final")
    states = {n: engine.ledger.current(f"dec/{n}").state for n in cases}
    assert states == {"float.csv": State.LOADED, "long.csv": State.LOADED, "scale.csv": State.QUARANTINED,
                      "lead.csv": State.QUARANTINED}, states
    got = query(engine, f"SELECT id, toString(d) FROM `{cfg.database}`.dec ORDER BY id")
    assert got == [(1, "1234567890123456789012345678.0123456789"), (2, "0.0000000001"), (3, "1234567890123.45"),
                   (4, "-2.5"), (5, "1234567890123456789.0123456789")], got


def test_a_file_that_lost_the_race_to_create_its_table_fits_the_winners(engine_factory, tmp_path: Path,
                                                                        chdb_path: Path) -> None:
    """Two first files for one table: the one whose CREATE TABLE IF NOT EXISTS was a no-op sent its
    own types unchecked (a double into a Decimal(38, 10) column: 1234567890123.4498535779)."""
    cfg = make_config(tmp_path, chdb_path)
    engine = engine_factory(cfg)
    db = cfg.database
    target = engine.target
    target.create_table("race", [Column("id", "Int64"), Column("d", "Decimal(38, 10)")])  # the winner's table
    real = target.table_columns
    calls = []

    def first_sees_none(table: str):  # the winner created the table right after this file looked
        calls.append(table)
        return None if len(calls) == 1 else real(table)

    target.table_columns = first_sees_none
    (cfg.data_dir / "race.csv").write_bytes(b"id,d\n1,1234567890123.45\n2,-2.5\n")
    wait_for(lambda: state_of(engine, "race.csv") in FINAL, what="race.csv final")
    row = engine.ledger.current("race.csv")
    assert row.state == State.LOADED, (row.state, row.last_error)
    got = query(engine, f"SELECT id, toString(d) FROM `{db}`.race ORDER BY id")
    assert got == [(1, "1234567890123.45"), (2, "-2.5")], got


def test_binary_that_is_not_utf8_loads_as_its_bytes(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """A Parquet binary column with bytes that are not UTF-8 was retried six times as "unexpected"."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    cfg = make_config(tmp_path, chdb_path)
    out = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], "b": pa.array([b"\x00\xff", None, b""], pa.binary())}), out)
    (cfg.data_dir / "bin.parquet").write_bytes(out.getvalue())
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "bin.parquet") in FINAL, what="bin.parquet final")
    row = engine.ledger.current("bin.parquet")
    assert row.state == State.LOADED and row.attempts <= 1, (row.state, row.last_error)
    got = query(engine, f"SELECT id, hex(b), b IS NULL FROM `{cfg.database}`.bin ORDER BY id")
    assert got == [(1, "00FF", 0), (2, None, 1), (3, "", 0)], got


def test_blank_lines_are_not_rows(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "blank.csv").write_bytes(b"id,n\n1,5\n\n2,6\n\n")
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "blank.csv") in FINAL, what="blank.csv final")
    got = query(engine, f"SELECT id, n FROM `{cfg.database}`.blank ORDER BY _source_row")
    assert got == [(1, 5), (2, 6)], got  # was: [(1, 5), (None, None), (2, 6), (None, None)], Nullable columns
