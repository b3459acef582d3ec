"""Under ``on_bad_rows = "skip"`` a value ClickHouse refuses for an IPv4, IPv6 or UUID column is a
bad row like any other: skipped and written to the rejects with its line and reason, the other
rows loaded. (Seen failing: ClickHouse refused the whole insert and the file was quarantined.)
Which values ClickHouse refuses is asked of ClickHouse itself: its parse has quirks no pattern
here would copy (``1:::2`` and ``::1.2.3.04`` are IPv6 addresses to it, ``010.0.0.1`` no IPv4)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from chute.core.routing import Route
from chute.core.schema import Column, base_type
from chute.core.states import State
from tests.conftest import HttpTarget, make_config, query, state_of, wait_for


@pytest.fixture
def chdb_path(any_target: Path | HttpTarget) -> Path | HttpTarget:
    """Embedded and over HTTP (tests/chhttp.py): the values asked about travel as a bound parameter."""
    return any_target


FINAL = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE, State.FAILED}
# table: (column type, values ClickHouse takes, values it refuses)
CASES = {
    "ip4": ("IPv4", ["10.0.0.1", "0.0.0.0", "255.255.255.255"],
            ["1.2.3", "010.0.0.1", "256.1.1.1", " 1.2.3.4", "a'b\\c,", "x\ny"]),
    "ip6": ("Nullable(IPv6)", ["::1", "1:::2", "::1.2.3.04", "2001:DB8::1", "10.0.0.1"],
            ["zz::1", "1:2:3:4:5:6:7:8::", "[::1]", "fe80::1/64"]),
    "uuid": ("UUID", ["00000000-0000-0000-0000-000000000001", "00000000000000000000000000000002"],
             ["not-a-uuid", "{00000000-0000-0000-0000-000000000001}"]),
    "num4": ("IPv4", [], ["1234", "5678"]),  # numbers: sent as text, refused as ClickHouse's CSV refuses them
    # ClickHouse reads 1, 01, +1 as the element numbered so ('a'): not what the file wrote
    "enum": ("Enum8('a' = 1, 'it\\'s' = 2, 'x\\\\y' = 3, 'c, d' = 4)", ["a", "it's", "x\\y", "c, d"],
             ["zz", "1", "01", "+1", "A", " a"]),
}


def test_refused_addresses_and_uuids_are_skipped_rows_under_skip(engine_factory, tmp_path: Path,
                                                                 chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, routes=tuple(Route(table=t, on_bad_rows="skip") for t in CASES)
                      + (Route(table="strict"),))
    engine = engine_factory(cfg)
    lines: dict[str, list[tuple[int, str]]] = {}
    for table, (kind, good, bad) in CASES.items():
        engine.target.create_table(table, [Column("id", "Int64"), Column("v", kind)])
        values = [v for pair in zip(good + [None] * len(bad), bad + [None] * len(good), strict=True)
                  for v in pair if v is not None]
        (cfg.data_dir / table).mkdir()
        with (cfg.data_dir / table / "f.csv").open("w", newline="") as f:
            csv.writer(f).writerows([["id", "v"], *([i, v] for i, v in enumerate(values))])
        lines[table] = [(i + 2, v) for i, v in enumerate(values) if v in bad]
    engine.target.create_table("strict", [Column("id", "Int64"), Column("v", "IPv4")])
    engine.target.create_table("strict_enum", [Column("id", "Int64"), Column("v", "Enum8('a' = 1, 'b' = 2)")])
    for table, body in (("strict", "id,v\n0,10.0.0.1\n1,1.2.3\n"), ("strict_enum", "id,v\n0,b\n1,1\n")):
        (cfg.data_dir / table).mkdir()
        (cfg.data_dir / table / "f.csv").write_text(body)
    wait_for(lambda: all(state_of(engine, f"{t}/f.csv") in FINAL for t in [*CASES, "strict", "strict_enum"]),
             what="all final")
    for table, (kind, good, _bad) in CASES.items():
        row = engine.ledger.current(f"{table}/f.csv")
        assert row.state == State.LOADED, (table, row.state, row.last_error)
        assert query(engine, f"SELECT count() FROM `{cfg.database}`.{table}") == [(len(good),)], table
        rejects = list(csv.reader((cfg.quarantine_dir / table / "f.csv.rejects.csv").open()))
        assert rejects[0] == ["line", "column", "value", "reason"]
        assert [(int(r[0]), r[2]) for r in rejects[1:]] == lines[table], (table, rejects)
        why = f"not a valid {base_type(kind)}" if table != "enum" else f"not an element of {kind}"
        assert {(r[1], r[3]) for r in rejects[1:]} == {("v", why)}, rejects
    strict = engine.ledger.current("strict/f.csv")  # the control: without skip, the file is refused
    assert strict.state == State.QUARANTINED and "IPv4" in (strict.last_error or ""), strict.last_error
    strict = engine.ledger.current("strict_enum/f.csv")  # (it loaded '1' as 'a' before)
    assert strict.state == State.QUARANTINED, (strict.state, strict.last_error)
    assert "column 'v': '1' at line 3: not an element of Enum8('a' = 1, 'b' = 2)" in (strict.last_error or "")
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.strict_enum") == [(0,)]


def test_many_values_are_asked_in_bounded_queries(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """25,000 distinct texts, long non-ASCII ones among them: asked in several queries (a bound
    parameter travels in the URL), every refused one found, no good one."""
    engine = engine_factory(make_config(tmp_path, chdb_path))
    good = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(20_000)]
    bad = [f"é{i}" * 40 for i in range(5_000)]
    asked: list[str] = []
    real = engine.target._call

    def spy(fn: str, *args: object, **kwargs: object) -> object:
        asked.append(fn)
        return real(fn, *args, **kwargs)

    engine.target._call = spy
    assert engine.target.refused_values("IPv4", good + bad) == set(bad)
    assert len(asked) >= 5, len(asked)


def test_a_parquet_text_column_into_an_enum_is_checked_too(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """A Parquet text column into an Enum column is checked as a CSV's is. (A Parquet file may go to
    ClickHouse natively, past the Fitter: core/native.py keeps a file whose text the Fitter checks,
    Enum or Time, on the Arrow path; this file did not go natively before either.)"""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cfg = make_config(tmp_path, chdb_path, native_read=True)
    engine = engine_factory(cfg)
    engine.target.create_table("pe", [Column("id", "Int64"), Column("v", "Enum8('a' = 1, 'b' = 2)")])
    (cfg.data_dir / "pe").mkdir()
    pq.write_table(pa.table({"id": [0, 1], "v": ["b", "1"]}), cfg.data_dir / "pe" / "f.parquet")
    wait_for(lambda: state_of(engine, "pe/f.parquet") in FINAL, what="final")
    row = engine.ledger.current("pe/f.parquet")
    assert row.state == State.QUARANTINED, (row.state, row.last_error, query(
        engine, f"SELECT id, toString(v) FROM `{cfg.database}`.pe"))
    assert "not an element of Enum8('a' = 1, 'b' = 2)" in (row.last_error or ""), row.last_error
