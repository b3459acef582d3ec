"""A JSON number (or an object or array holding numbers) in an NDJSON text column loads as the text
the file writes, not as polars prints the double it parsed (issue 9's rule; issue 12's round 9:
``0.12345678901234567`` loaded as ``0.12345678901234566``, ``1.50`` as ``1.5``). Checked against
Python's own JSON parser, with numbers kept as their text."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from chute.core.formats import ndjson, ndjson_raw
from chute.core.formats.ndjson import NdjsonReader
from chute.core.reader import open_source
from chute.core.states import State
from tests.conftest import query
from tests.test_formats import load_all


class _Num(str):
    """A number as Python's parser read it: its own text."""


def _first(pairs: list[tuple[str, object]]) -> dict:
    """An object keeping the first member of a key (as polars does)."""
    out: dict = {}
    for k, v in pairs:
        out.setdefault(k, v)
    return out


def _parse(text: str) -> object:
    return json.loads(text, parse_float=_Num, parse_int=_Num, object_pairs_hook=_first)


def _expected(value: object) -> object:
    """What a text column must hold for a top-level value (objects and arrays: checked by parse)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return value  # dict or list


def _loaded(path: Path, in_memory: bool = True) -> tuple[dict, list[dict]]:
    with open_source(path, None) as src:
        reader = NdjsonReader(src)
        if not in_memory:
            reader.IN_MEMORY_BYTES = 0
        plan = reader.plan()
        rows = [row for _, df in reader.batches(4) for row in df.iter_rows(named=True)]
    return dict(plan.schema.items()), rows


def _check(path: Path, lines: list[str], in_memory: bool = True) -> list[str]:
    """Differences between the loaded text columns and Python's parse of each line."""
    schema, rows = _loaded(path, in_memory)
    objects = [_parse(line) for line in lines if line.strip()]
    assert len(rows) == len(objects)
    wrong = []
    for i, (row, obj) in enumerate(zip(rows, objects, strict=True)):
        for key, dtype in schema.items():
            if dtype != pl.String or key not in obj:
                continue
            want, got = _expected(obj[key]), row[key]
            if isinstance(want, dict | list):
                ok = got is not None and _parse(got) == want and got == got.strip()
            else:
                ok = got == want
            if not ok:
                wrong.append(f"row {i} {key!r}: {got!r}, the file has {want!r}")
    return wrong


_CASES = {
    "17 digits": ('{"a":0.12345678901234567}', {"a": "0.12345678901234567"}),
    "trailing zero": ('{"a":1.50}', {"a": "1.50"}),
    "one point zero": ('{"a":1.0}', {"a": "1.0"}),
    "negative zero": ('{"a":-0}', {"a": "-0"}),
    "negative zero float": ('{"a":-0.0}', {"a": "-0.0"}),
    "exponent": ('{"a":1E+2}', {"a": "1E+2"}),
    "small exponent": ('{"a":2.5e-7}', {"a": "2.5e-7"}),
    "beyond UInt64": ('{"a":123456789012345678901234567890}', {"a": "123456789012345678901234567890"}),
    "beyond 2^53": ('{"a":9007199254740993}', {"a": "9007199254740993"}),
    "spaced": ('{ "a" :  0.10 , "b":"x"}', {"a": "0.10"}),
    "object": ('{"a":{"x":1.50,"y":[1e3,-0.0,0.12345678901234567]}}',
               {"a": '{"x":1.50,"y":[1e3,-0.0,0.12345678901234567]}'}),
    "array": ('{"a":[1.50,"x"]}', {"a": '[1.50,"x"]'}),
    "escaped key": ('{"\\u0061":1.50}', {"a": "1.50"}),
    "first of two": ('{"a":1.50,"a":2.50}', {"a": "1.50"}),
    "quotes and colons in strings": ('{"b":"\\\\\\":1.5,{","a":1.50}', {"a": "1.50", "b": '\\":1.5,{'}),
}


@pytest.mark.parametrize("in_memory", [True, False], ids=["in memory", "streamed"])
@pytest.mark.parametrize("case", list(_CASES))
def test_a_number_in_a_text_column_loads_as_written(tmp_path: Path, case: str, in_memory: bool) -> None:
    """Each case beside a string in the same column, so the column stays text."""
    line, want = _CASES[case]
    path = tmp_path / "a.ndjson"
    path.write_text('{"a":"text","b":"x"}\n' + line + "\n")
    schema, rows = _loaded(path, in_memory)
    assert schema["a"] == pl.String
    assert {k: rows[1][k] for k in want} == want


def test_a_numbers_only_text_column_keeps_its_digits(tmp_path: Path) -> None:
    """A column of numbers that stays text (17 significant digits): its own digits (the strict
    xfail of round 8)."""
    path = tmp_path / "a.ndjson"
    path.write_text('{"a":0.12345678901234567}\n{"a":2.50}\n')
    schema, rows = _loaded(path)
    assert schema["a"] == pl.String
    assert [r["a"] for r in rows] == ["0.12345678901234567", "2.50"]


def test_typed_columns_keep_reading_numbers_by_value(tmp_path: Path) -> None:
    """The README's rule for typed columns is unchanged: 2.0 is 2 (Int64), 1.50 is 1.5 (Float64)."""
    path = tmp_path / "a.ndjson"
    path.write_text('{"i":0.0,"f":1.50}\n{"i":2.0,"f":2}\n')
    schema, rows = _loaded(path)
    assert schema == {"i": pl.Int64, "f": pl.Float64}
    assert rows == [{"i": 0, "f": 1.5}, {"i": 2, "f": 2.0}]


def test_the_common_file_takes_no_raw_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text columns of plain strings (nothing that starts like a number, object or array): no raw read."""
    path = tmp_path / "a.ndjson"
    path.write_text("".join(json.dumps({"id": i, "s": f"x{i}", "f": i / 4}) + "\n" for i in range(100)))
    monkeypatch.setattr(ndjson_raw, "raw_values", lambda *a: pytest.fail("raw read"))
    monkeypatch.setattr(ndjson, "raw_values_of", lambda *a: pytest.fail("raw read"))
    _loaded(path)


def test_only_the_lines_holding_such_a_value_are_scanned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A number here and there in a long text column: the structural scan sees those lines only,
    not every piece (nor the whole piece they are in)."""
    lines = [json.dumps({"id": i, "s": f"x{i}"}) for i in range(2000)]
    for i in (3, 1500, 1999):
        lines[i] = f'{{"id":{i},"s":1.50}}'
    lines.insert(1600, "  ")  # (a blank line: no row)
    path = tmp_path / "a.ndjson"
    path.write_text("\n".join(lines))  # (no final newline)
    monkeypatch.setattr(ndjson, "PIECE_BYTES", 4096)
    scanned: list[bytes] = []
    real = ndjson_raw.raw_values

    def counted(data: bytes, keys: list[str]) -> object:
        scanned.append(bytes(data))
        return real(data, keys)

    monkeypatch.setattr(ndjson_raw, "raw_values", counted)
    _, rows = _loaded(path)
    assert [r["s"] for r in rows[1498:1502]] == ["x1498", "x1499", "1.50", "x1501"]
    assert rows[3]["s"] == rows[1999]["s"] == "1.50" and len(rows) == 2000
    assert sorted(scanned) == sorted(f'{{"id":{i},"s":1.50}}\n'.encode() for i in (3, 1500, 1999))


_KEYS = st.sampled_from(["a", "b", "c"])
_NUMBER = st.builds(lambda sign, whole, frac, exp: sign + whole + frac + exp, st.sampled_from(["", "-"]),
                    st.sampled_from(["0", "1", "7", "12345678901234567890123", "9007199254740993"]),
                    st.sampled_from(["", ".0", ".50", ".12345678901234567", ".1"]),
                    st.sampled_from(["", "e3", "E+2", "e-7", "E-0"]))
_STRING = st.text(st.sampled_from('ab1.-{}[]:,"\\ \u00e9'), max_size=5).map(json.dumps)
_SCALAR = st.one_of(_NUMBER, _STRING, st.sampled_from(["true", "false", "null"]))
_SPACE = st.sampled_from(["", " ", "\t"])


@st.composite
def _json(draw: st.DrawFn, depth: int = 0) -> str:
    """A JSON value as text: numbers written many ways, strings with escapes, nested values."""
    kind = draw(st.integers(0, 3 if depth < 2 else 1))
    if kind <= 1:
        return draw(_SCALAR)
    inner = draw(st.lists(_json(depth + 1), max_size=3))
    sp = draw(_SPACE)
    if kind == 2:
        return "[" + f"{sp},".join(inner) + "]"
    return "{" + ",".join(f'{json.dumps(draw(_KEYS))}{sp}:{sp}{v}' for v in inner) + "}"


@st.composite
def _object(draw: st.DrawFn) -> str:
    members = draw(st.lists(st.tuples(_KEYS, _json(), st.booleans()), max_size=4))
    sp = draw(_SPACE)
    keys = [json.dumps(k) if not escaped else f'"\\u{ord(k):04x}"' for k, _, escaped in members]
    return sp + "{" + f",{sp}".join(f"{k}{sp}:{sp}{v}" for k, (_, v, _) in zip(keys, members, strict=True)) + "}" + sp


# Every key starts as a string: the columns stay text, and every value is checked.
_FILES = st.lists(_object(), min_size=1, max_size=8).map(lambda lines: ['{"a":"s","b":"s","c":"s"}', *lines])


def _differs(tmp: Path, lines: list[str], in_memory: bool = True, end: str = "\n") -> list[str]:
    path = tmp / "a.ndjson"
    path.write_text("\n".join(lines) + end)
    return _check(path, lines, in_memory)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_FILES, st.sampled_from([7, 64, 1 << 20]), st.booleans(), st.sampled_from(["\n", "", "\r\n\n"]))
def test_text_columns_hold_what_the_file_writes(tmp_path: Path, lines: list[str], piece: int, in_memory: bool,
                                                end: str) -> None:
    """Any mix of numbers, strings with escapes, nested values, spacing, escaped and repeated keys,
    read in pieces of a few bytes (lines cut at every place) or whole, in memory or streamed, with
    or without a final newline."""
    original = ndjson.PIECE_BYTES
    ndjson.PIECE_BYTES = piece
    try:
        assert _differs(tmp_path, lines, in_memory, end) == []
    finally:
        ndjson.PIECE_BYTES = original


def test_negative_control_a_scan_blind_to_escaped_quotes_is_caught(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Taking every quote as a string's edge (``\\"`` too) puts members in the wrong places: the
    property above finds such a file."""
    monkeypatch.setattr(ndjson_raw, "_real_quotes", lambda b: ndjson_raw.np.flatnonzero(b == ndjson_raw._QUOTE))

    def broken(lines: list[str]) -> bool:
        try:
            return bool(_differs(tmp_path, lines))
        except (ValueError, IndexError, AssertionError):
            return True

    found = find(_FILES, broken, settings=settings(max_examples=2000, database=None, deadline=None))
    assert any('\\"' in line for line in found), found


def test_negative_control_polars_printing_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the raw read (the code before), the check sees polars' printing."""
    monkeypatch.setattr(NdjsonReader, "_as_written", lambda self, frame, verdicts, piece=None: frame)
    path = tmp_path / "a.ndjson"
    lines = ['{"a":"s"}', '{"a":0.12345678901234567}', '{"a":1.50}']
    path.write_text("\n".join(lines) + "\n")
    assert len(_check(path, lines)) == 2


def test_loads_into_clickhouse_as_written(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    lines = ['{"id":1,"v":"text","o":{"x":1.50}}', '{"id":2,"v":0.12345678901234567,"o":{"x":0.12345678901234567}}',
             '{"id":3,"v":1.50,"o":null}', '{"id":4,"v":12345678901234567890123,"o":{"y":[1e3,-0.0]}}',
             '{"id":5,"v":-0.0,"o":{}}']
    engine = load_all(engine_factory, tmp_path, chdb_path, {"nums.ndjson": ("\n".join(lines) + "\n").encode()})
    assert engine.ledger.current("nums.ndjson").state == State.LOADED
    got = query(engine, f"SELECT v, o FROM `{engine.cfg.database}`.nums ORDER BY id")
    assert got == [("text", '{"x":1.50}'), ("0.12345678901234567", '{"x":0.12345678901234567}'), ("1.50", None),
                   ("12345678901234567890123", '{"y":[1e3,-0.0]}'), ("-0.0", "{}")]

