"""Numbers past a double's range (no value changes on the way in). Seen loading changed before this
fix: a CSV's or an NDJSON file's 1e-400 was stored as 0 in a new table. (Into an operator's float
column, 1e400 and 1e-400 went in as inf and 0: tests/test_fit_numbers.py.)"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from chute.core.formats import ndjson
from chute.core.formats.ndjson import NdjsonReader
from chute.core.reader import open_source
from chute.core.states import State
from tests.conftest import query, state_of


@pytest.mark.parametrize(("tiny", "kind"), [("1e-400", "String"), ("-2.5e-330", "String"), ("4e-320", "String"),
                                            ("1e-300", "Float64"), ("0.000e-999", "Float64")])
def test_a_number_below_a_doubles_range_keeps_its_text(engine_factory, cfg, tiny: str, kind: str) -> None:
    """Underflow (1e-400 reads as 0) and subnormals (fewer than 15 digits) keep the column text; a
    small normal number, or a zero written with an exponent, is a float (the controls)."""
    (cfg.data_dir / "t").mkdir()
    (cfg.data_dir / "t" / "a.csv").write_text(f"id,v\n1,1.5\n2,{tiny}\n")
    engine = engine_factory(once=True)
    assert engine.wait_idle(timeout=60)
    assert state_of(engine, "t/a.csv") == State.LOADED
    got = query(engine, f"SELECT toTypeName(v), toString(v) FROM `{engine.cfg.database}`.t ORDER BY id")
    assert [t for t, _ in got] == [kind, kind]
    if kind == "String":
        assert got[1][1] == tiny  # as written


def test_ndjson_numbers_below_a_doubles_range_keep_their_text(engine_factory, cfg) -> None:
    """The JSON parser reads 1e-400 as 0 and a subnormal with fewer digits (seen loading 0): such a
    column loads as the file writes it. Controls: zeros and tiny normal numbers beside an ``e-`` in
    text stay a float column."""
    (cfg.data_dir / "t").mkdir()
    (cfg.data_dir / "t" / "a.ndjson").write_text('{"id":1,"v":0.0,"w":4e-320}\n{"id":2,"v":1e-400,"w":1.5}\n'
                                               '{"id":3,"v":0.5,"w":0.0}\n')
    (cfg.data_dir / "u").mkdir()
    (cfg.data_dir / "u" / "a.ndjson").write_text('{"id":1,"v":0.0,"s":"e-mail"}\n{"id":2,"v":1e-300,"s":"x"}\n'
                                               '{"id":3,"v":-0.0e-5,"s":"y"}\n')
    engine = engine_factory(once=True)
    assert engine.wait_idle(timeout=60)
    assert state_of(engine, "t/a.ndjson") == State.LOADED and state_of(engine, "u/a.ndjson") == State.LOADED
    db = engine.cfg.database
    assert query(engine, f"SELECT toTypeName(v), toTypeName(w) FROM `{db}`.t LIMIT 1") == [("String", "String")]
    assert query(engine, f"SELECT v, w FROM `{db}`.t ORDER BY id") == [("0.0", "4e-320"), ("1e-400", "1.5"),
                                                                        ("0.5", "0.0")]
    assert query(engine, f"SELECT toTypeName(v), toString(v) FROM `{db}`.u ORDER BY id") == [
        ("Float64", "0"), ("Float64", "1e-300"), ("Float64", "-0")]


def test_ndjson_a_number_below_a_doubles_range_without_an_exponent_keeps_its_text(engine_factory, cfg) -> None:
    """0.000...0001 (400 zeros) reads as 0 as 1e-400 does, but writes no ``e-``: the look for one
    skipped it and the column loaded 0 as Float64. Control: a zero written with 400 zeros stays a float."""
    tiny = "0." + "0" * 400 + "1"
    (cfg.data_dir / "t").mkdir()
    (cfg.data_dir / "t" / "a.ndjson").write_text(f'{{"id":1,"v":1.5}}\n{{"id":2,"v":{tiny}}}\n')
    (cfg.data_dir / "u").mkdir()
    (cfg.data_dir / "u" / "a.ndjson").write_text(f'{{"id":1,"v":1.5}}\n{{"id":2,"v":0.{"0" * 400}}}\n')
    engine = engine_factory(once=True)
    assert engine.wait_idle(timeout=60)
    assert state_of(engine, "t/a.ndjson") == State.LOADED and state_of(engine, "u/a.ndjson") == State.LOADED
    db = engine.cfg.database
    assert query(engine, f"SELECT toTypeName(v), v FROM `{db}`.t ORDER BY id") == [("String", "1.5"), ("String", tiny)]
    assert query(engine, f"SELECT toTypeName(v), toString(v) FROM `{db}`.u ORDER BY id") == [
        ("Float64", "1.5"), ("Float64", "0")]


def test_ndjson_zeros_beside_an_e_minus_in_text_cost_no_raw_look(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Zeros in a float column beside ``e-`` in text (an e-mail, a UUID's "ae-12") were each read raw to
    see whether they were 1e-400: 1M rows, 30% zeros, cost 1.7 s more CPU per 50 MB. Only an
    exponent of three digits (or 200 fraction zeros) can write a number below a double's range."""
    calls: list[int] = []
    real = ndjson.raw_values_of
    monkeypatch.setattr(ndjson, "raw_values_of", lambda *a: calls.append(1) or real(*a))
    path = tmp_path / "a.ndjson"
    path.write_text("".join(f'{{"v":{v},"s":"e-mail {i}, ae-12b, 1e-99, E-1"}}\n'
                            for i, v in enumerate(["0.0", "1.5", "0", "2.25", "-0.0"] * 20)))
    with open_source(path, None) as src:
        assert NdjsonReader(src).plan().schema["v"] == pl.Float64
    assert calls == []
    path.write_text('{"v":1.5,"s":"x"}\n{"v":1e-0400,"s":"x"}\n')  # the control: a look, and text
    with open_source(path, None) as src:
        assert NdjsonReader(src).plan().schema["v"] == pl.String
    assert calls


@pytest.mark.parametrize("late", [False, True])
def test_ndjson_1e_400_among_integers_keeps_its_text(engine_factory, cfg, late: bool) -> None:
    """A column of whole numbers is Int64 (2.0 is 2), and 1e-400 reads as 0, a whole number: the
    column loaded Int64 with 0, whether the first MiB typed it a float (beside it) or an integer (past
    it, read as text, where polars writes the number 0). Control: a zero and 1e-300 beside integers."""
    head = "".join(f'{{"id":{i},"v":{i}}}\n' for i in range(3, 100_000 if late else 4))
    (cfg.data_dir / "t").mkdir()
    (cfg.data_dir / "t" / "a.ndjson").write_text(head + '{"id":1,"v":1e-400}\n{"id":2,"v":0.0}\n')
    (cfg.data_dir / "u").mkdir()
    (cfg.data_dir / "u" / "a.ndjson").write_text(head + '{"id":1,"v":0e-400}\n{"id":2,"v":1e-300}\n')
    engine = engine_factory(once=True)
    assert engine.wait_idle(timeout=60)
    assert state_of(engine, "t/a.ndjson") == State.LOADED and state_of(engine, "u/a.ndjson") == State.LOADED
    db = engine.cfg.database
    assert query(engine, f"SELECT toTypeName(v), v FROM `{db}`.t WHERE id < 4 ORDER BY id") == [
        ("String", "1e-400"), ("String", "0.0"), ("String", "3")]
    assert query(engine, f"SELECT toTypeName(v), toString(v) FROM `{db}`.u WHERE id < 4 ORDER BY id") == [
        ("Float64", "0"), ("Float64", "1e-300"), ("Float64", "3")]


def test_ndjson_a_list_holding_1e_400_keeps_its_text(engine_factory, cfg) -> None:
    """A list of floats is an array column: [1e-400, 0.5] loaded as [0, 0.5]. Such a list column
    loads as the JSON text the file writes. Control: a list of a zero and 1e-300 stays an array."""
    (cfg.data_dir / "t").mkdir()
    (cfg.data_dir / "t" / "a.ndjson").write_text('{"id":1,"w":[1e-400, 0.5]}\n{"id":2,"w":[0.0]}\n{"id":3,"w":null}\n')
    (cfg.data_dir / "u").mkdir()
    (cfg.data_dir / "u" / "a.ndjson").write_text('{"id":1,"w":[1e-300,0.5],"s":"1e-400"}\n{"id":2,"w":[0.0]}\n')
    engine = engine_factory(once=True)
    assert engine.wait_idle(timeout=60)
    assert state_of(engine, "t/a.ndjson") == State.LOADED and state_of(engine, "u/a.ndjson") == State.LOADED
    db = engine.cfg.database
    assert query(engine, f"SELECT toTypeName(w), w FROM `{db}`.t ORDER BY id") == [
        ("Nullable(String)", "[1e-400, 0.5]"), ("Nullable(String)", "[0.0]"), ("Nullable(String)", None)]
    assert query(engine, f"SELECT toTypeName(w), w FROM `{db}`.u ORDER BY id") == [
        ("Array(Nullable(Float64))", [1e-300, 0.5]), ("Array(Nullable(Float64))", [0.0])]
