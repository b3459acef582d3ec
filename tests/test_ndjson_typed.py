"""The NDJSON read types the first lines' integer and bool columns as it parses (NdjsonReader._typed,
issue 12): whatever the file holds further on, the plan, the verdicts and every batch must be what
the all-text read and the lossless inference give."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from chute.core.errors import InputError
from chute.core.formats import ndjson
from chute.core.formats.infer import fifteen_digits
from chute.core.formats.ndjson import NdjsonReader
from chute.core.reader import open_source


class _Tiny(NdjsonReader):
    """The first sample is two lines, the sampled head a few: what follows may disagree with their types."""

    INFER_ROWS = 2
    SAMPLE_BYTES = 200  # (more than a line: the head is cut at its last whole line)


class _Lit(str):
    """A number written as this text."""


_INTS = st.one_of(st.integers(-10, 10), st.integers(-2**63, 2**63 - 1),
                  st.sampled_from([2**63, -2**63 - 1, 2**64, -999]))  # (-999: a route's null token)
_FLOATS = st.one_of(st.sampled_from(["1.5", "0.25", "-3.75", "58.56", "1e-3", "2.5E2", "0.1", "123456789012.345",
                                     "2", "0", "-0"]).map(_Lit),
                    st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: _Lit(repr(round(f, 2)))))
_ODD_NUMBERS = st.sampled_from(["0.12345678901234567", "9007199254740993", "100000000000000000001", "1e-300", "1e20",
                                "2.0", "-0.0", "1.0000000000000001", "4503599627370497.5", "0.000000001234",
                                "1234567890123456", "99999999999999.99", "1e15", "1e22", "1e23"]).map(_Lit)
_ODD = st.one_of(st.none(), st.sampled_from([1.0, 2.5, -0.0, 1e20, "1", "true", "NA", "", "-999", "x", True, False]),
                 st.lists(st.integers(0, 3), max_size=1), st.fixed_dictionaries({"k": st.integers(0, 3)}), _ODD_NUMBERS)
_COLUMN = st.sampled_from(["int", "int", "bool", "float", "float", "integral floats", "mixed"])


def _dumps(row: dict) -> str:
    members = (f"{json.dumps(k)}:{v if isinstance(v, _Lit) else json.dumps(v)}" for k, v in row.items())
    return "{" + ",".join(members) + "}"


@st.composite
def _file(draw: st.DrawFn) -> list[str]:
    kinds = draw(st.lists(_COLUMN, min_size=1, max_size=3))
    rows = draw(st.integers(10, 30))
    lines = []
    for i in range(rows):
        row = {}
        for j, kind in enumerate(kinds):
            late = i >= 8 and draw(st.integers(0, 5)) == 0  # now and then, past the sampled head: anything
            maybe_none = (lambda s: st.one_of(s, st.none())) if i >= 2 else (lambda s: s)
            if late:
                row[f"c{j}"] = draw(st.one_of(_ODD, st.sampled_from([2**63, -2**63 - 1, 2**64])))
            elif kind == "mixed":
                row[f"c{j}"] = draw(st.one_of(_ODD, _INTS, st.booleans()))
            elif kind == "int":
                row[f"c{j}"] = draw(maybe_none(_INTS))
            elif kind == "float":
                row[f"c{j}"] = draw(maybe_none(_FLOATS))
            elif kind == "integral floats":
                row[f"c{j}"] = draw(maybe_none(st.integers(-5, 5).map(lambda n: _Lit(f"{n}.0"))))
            else:
                row[f"c{j}"] = draw(maybe_none(st.booleans()))
        lines.append(_dumps(row))
    return lines


def _outcome(path: Path, tokens: tuple[str, ...] | None, typed: bool, in_memory: bool = True) -> object:
    with open_source(path, None) as src:
        reader = _Tiny(src, null_values=tokens)
        if not in_memory:
            reader.IN_MEMORY_BYTES = 0
        if not typed:
            reader._typed = lambda first, guess: guess  # type: ignore[method-assign]
        try:
            plan = reader.plan()
            frames = [df for _, df in reader.batches(3)]
        except (InputError, pl.exceptions.PolarsError) as exc:
            return type(exc).__name__, str(exc)
        verdicts = {c: (v.kind, v.why, v.tokens, v.precision) for c, v in reader.verdicts.items()}
    return list(plan.schema.items()), plan.rows, plan.null_counts, verdicts, pl.concat(frames).rows()


def _differs(tmp: Path, lines: list[str], tokens: tuple[str, ...] | None, streamed: bool = False) -> bool:
    """The typed read (in memory, or streamed: the batches' typed read) against the text read."""
    path = tmp / "a.ndjson"
    path.write_text("\n".join(lines) + "\n")
    return _outcome(path, tokens, typed=True, in_memory=not streamed) != _outcome(path, tokens, typed=False)


_TOKENS = st.sampled_from([None, ("-999", "NA"), ("true",), ()])


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_file(), _TOKENS, st.sampled_from([16, 64, 1 << 20]), st.booleans())
def test_the_typed_read_gives_what_the_text_read_gives(tmp_path: Path, lines: list[str],
                                                       tokens: tuple[str, ...] | None, piece: int,
                                                       streamed: bool) -> None:
    """Late floats, strings, lists, objects, out-of-range integers and null tokens, in pieces of a
    few lines (the typed read gives up in the middle of the file) or one; in memory or streamed."""
    original = ndjson.PIECE_BYTES
    ndjson.PIECE_BYTES = piece
    try:
        assert not _differs(tmp_path, lines, tokens, streamed)
    finally:
        ndjson.PIECE_BYTES = original


def test_a_file_of_integers_bools_and_floats_is_read_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """(The property above is not vacuous: the common file takes the typed read, parsed once, and
    the byte count proves its keys: the slower line checks do not run.)"""
    path = tmp_path / "a.ndjson"
    path.write_text("".join(json.dumps({"i": i, "b": i % 2 == 0, "s": f"x{i}", "f": i / 4}) + "\n" for i in range(50)))
    monkeypatch.setattr(NdjsonReader, "_line_facts", lambda self, *exprs: pytest.fail("line checks ran"))
    reads: list[pl.Schema] = []
    real = pl.read_ndjson

    def spy(source: object, *args: object, schema: pl.Schema | None = None, **kw: object) -> pl.DataFrame:
        reads.append(pl.Schema(schema or {}))
        return real(source, *args, schema=schema, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ndjson.pl, "read_ndjson", spy)
    with open_source(path, None) as src:
        reader = NdjsonReader(src)
        plan = reader.plan()
    assert dict(plan.schema) == {"i": pl.Int64, "b": pl.Boolean, "s": pl.String, "f": pl.Float64}
    whole = [s for s in reads if s.get("i") == pl.Int64]
    assert whole and all(s["b"] == pl.Boolean and s["f"] == pl.Float64 for s in whole)
    assert reader._frame is not None and reader._frame.schema["i"] == pl.Int64


def test_negative_control_a_lenient_typed_read_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A typed read that kept the first lines' types whatever follows (NULL where a value does not
    fit, the way a non-strict cast does) loses values: the property above finds such a file."""
    real = ndjson.NdjsonReader._read_text

    def lenient(self: NdjsonReader, schema: pl.Schema, text: pl.Schema | None = None) -> pl.DataFrame:
        if text is None:
            return real(self, schema)
        return real(self, text).with_columns(pl.col(c).cast(t, strict=False) for c, t in schema.items()
                                             if t != text[c])

    monkeypatch.setattr(ndjson.NdjsonReader, "_read_text", lenient)
    found = find(st.tuples(_file(), _TOKENS), lambda case: _differs(tmp_path, *case),
                 settings=settings(max_examples=2000, database=None, deadline=None))
    assert found


def _digits(x: float) -> int:
    """Significant digits of the shortest text of ``x`` (Python's repr, as polars prints)."""
    mantissa = repr(abs(x)).split("e")[0].replace(".", "").strip("0")
    return len(mantissa)


@settings(max_examples=3000, deadline=None, database=None)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                 st.integers(-10**6, 10**6).flatmap(lambda m: st.integers(-30, 10).map(lambda e: float(f"{m}e{e}"))),
                 st.integers(-2**60, 2**60).map(float)))
def test_fifteen_digits_is_the_text_check(x: float) -> None:
    """infer.fifteen_digits against the digits of Python's shortest text: never True where the text
    check fails; the same answer from 1e-8 up (below, False: the file is read as text)."""
    got = fifteen_digits(pl.Series([x, 0.5]))
    want = abs(x) < 2**53 and (x == 0 or _digits(x) <= 15)
    assert not got or want, x
    if x == 0 or abs(x) >= 1e-8:
        assert got == want, x


def test_negative_control_a_streamed_read_typing_token_columns_is_caught(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The streamed batches' typed read, also typing the columns whose null tokens it holds: a
    route's "-999" loads as -999 (or "true" as true), not NULL. The property above finds such a file."""
    def careless(self: NdjsonReader, verdicts: dict) -> pl.Schema:
        return pl.Schema({c: (v.wire if (v := verdicts.get(c)) is not None and v.kind in ("int", "bool", "float")
                              else t) for c, t in self._text.items()})

    monkeypatch.setattr(NdjsonReader, "_typed_wire", careless)
    found = find(st.tuples(_file(), _TOKENS), lambda case: _differs(tmp_path, *case, streamed=True),
                 settings=settings(max_examples=2000, database=None, deadline=None))
    assert found[1] and ("-999" in found[1] or "true" in found[1]), found  # (a token that is a value)
