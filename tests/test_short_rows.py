"""A row with fewer fields than the header: polars fills its missing trailing fields with NULL, so
only an exact check tells it from a row whose last field is empty (``a,b,`` ends with the
delimiter: not short). Every way a CSV is read (a small file; pieces in memory; gzip and zstd;
typed pieces spilled to disk; streamed; the whole text at once) must find it, with the reason and
line the small-file path gives (seen failing: above SHORT_ROW_CHECK_BYTES of text, 6x a compressed
file's size, the check was skipped and the row loaded with NULLs)."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest
import zstandard

from chute.core.errors import InputError
from chute.core.formats import delimited, limits, pieces, spill
from chute.core.reader import Reader
from chute.core.routing import Route
from chute.core.states import State
from tests.conftest import make_config, query, state_of, wait_for
from tests.test_pieces import load_csv

WIDTH = 4
PACK = {None: lambda b: b, "gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress}
SUFFIX = {None: "csv", "gzip": "csv.gz", "zstd": "csv.zst"}


def _body(rows: int = 9_000, short_at: int | None = 7_000, twist: str = "plain") -> bytes:
    """``id,amount,note,last``; ``last`` empty in every third row (``...,``: not short). ``twist``:
    what else the file holds before (or in) the short row."""
    out = ["id,amount,note,last"]
    for i in range(rows):
        note = "plain"
        if twist in ("quoted_newlines", "stray_quote_and_newlines") and i % 500 == 3:
            note = '"two\nlines"'
        if twist in ("quote_out_of_place", "stray_quote_and_newlines", "stray_quote_short_ends_with_delimiter") \
                and i == 10:
            note = ' "spaced"'  # (a space before the quote: polars reads it, the pieces cannot cut it)
        if twist == "quoted_delimiters" and i % 7 == 0:
            note = '"a,b"'
        line = f"{i},{i * 7 % 1000}.25,{note},{'' if i % 3 == 0 else 'x'}"
        if i == short_at:
            line = {"quoted_empty": f'{i},{i}.5,""', "short_record_spans_lines": f'{i},{i}.5,"a\nb"',
                    "short_ends_with_delimiter": f"{i},{i}.5,",
                    "stray_quote_short_ends_with_delimiter": f"{i},{i}.5,", "quoted_delimiters": f'{i},"x,y",'}.get(
                twist, f"{i},{i}.5,n")
        out.append(line)
        if twist == "blank_line" and i == 100:
            out.append("")
    newline = "\r\n" if twist == "crlf" else "\n"
    return (newline.join(out) + newline).encode()


def _truth(body: bytes) -> str | None:
    """The first record with fewer fields than the header, as Python's csv module reads it."""
    reader = csv.reader(io.StringIO(body.decode(), newline=""))
    next(reader)
    start = reader.line_num + 1
    for record in reader:
        if record and len(record) < WIDTH:
            return f"ragged row at line {start}: {len(record)} fields, fewer than the {WIDTH} columns of the header"
        start = reader.line_num + 1
    return None


PATHS = {
    "small": {},  # the whole file in the first MiB: the small-file path (the reference)
    "pieces": {"general": True},
    "gzip": {"general": True, "compression": "gzip"},
    "zstd": {"general": True, "compression": "zstd"},
    "gzip_spilled": {"general": True, "compression": "gzip", "spill": True},
    "plain_spilled": {"general": True, "big": True},
    "zstd_spilled_big": {"general": True, "compression": "zstd", "big": True},
    "streamed": {"general": True, "big": True, "no_room": True},
    "gzip_streamed": {"general": True, "compression": "gzip", "big": True, "no_room": True},
    "whole_text": {"general": True, "one_parse": False},
    "gzip_whole_text": {"general": True, "compression": "gzip", "one_parse": False},
}
# (short_ends_with_delimiter: 3 fields of 4, the third empty; seen loading with NULL on every path,
# ending with the delimiter was taken for a complete record with an empty last field)
TWISTS = ["plain", "quoted_newlines", "blank_line", "crlf", "quoted_empty", "short_record_spans_lines",
          "quote_out_of_place", "stray_quote_and_newlines", "short_ends_with_delimiter", "quoted_delimiters",
          "stray_quote_short_ends_with_delimiter"]  # (the last: text the pieces cannot cut, _short_lines)


def _check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, body: bytes, twist: str) -> tuple[str, int]:
    """What the plan and its pending check say about ``body`` read by ``path`` (and the rows read)."""
    how = PATHS[path]
    compression = how.get("compression")
    if how.get("general"):  # not the small-file path; and the old size limit under the file's size
        monkeypatch.setattr(Reader, "SAMPLE_BYTES", 32 << 10)
        monkeypatch.setattr(delimited, "SHORT_ROW_CHECK_BYTES", 16 << 10, raising=False)
    monkeypatch.setattr(pieces, "PIECE_BYTES", 16 << 10)
    monkeypatch.setattr(limits, "_CHUNK", 16 << 10)
    monkeypatch.setattr(delimited, "SPILL_PIECE_BYTES", 24 << 10)
    if how.get("spill"):
        monkeypatch.setattr(delimited, "SPILL_COMPRESSED_BYTES", 16 << 10)
    if how.get("big"):  # over the in-memory size: typed pieces on disk, or (no room) streamed
        monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 64 << 10)
    if how.get("no_room"):
        monkeypatch.setattr(spill.Spill, "room", staticmethod(lambda size: False))
    file = tmp_path / f"a.{SUFFIX[compression]}"
    file.write_bytes(PACK[compression](body))
    try:
        plan, frame, reader = load_csv(file, compression, one_parse=how.get("one_parse", True), drop_inflated=True)
    except InputError as exc:  # (found by the plan itself: polars refused the text, the walk named the row)
        return str(exc), 0
    assert isinstance(reader, delimited.CsvReader)
    if path == "small":
        assert reader._frame is not None and reader._feed is None
    spills = how.get("spill") or how.get("big") and not how.get("no_room")
    # (these take the whole text; quoted_delimiters: its short row's text widens the decimal column)
    if spills and twist not in ("quote_out_of_place", "blank_line", "stray_quote_and_newlines",
                                "quoted_delimiters", "stray_quote_short_ends_with_delimiter"):
        assert reader._spill is not None
    if how.get("no_room"):
        assert reader._spill is None and reader._frame is None
    return plan[4], frame.height  # type: ignore[index]


@pytest.mark.parametrize("twist", TWISTS)
@pytest.mark.parametrize("path", list(PATHS))
def test_a_short_row_is_found_on_every_path_with_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          path: str, twist: str) -> None:
    body = _body(twist=twist)
    want = _truth(body)
    assert want is not None and "3 fields" in want
    got, _ = _check(tmp_path, monkeypatch, path, body, twist)
    assert got == want


@pytest.mark.parametrize("twist", ["plain", "quoted_newlines", "blank_line", "crlf", "quote_out_of_place",
                                   "quoted_delimiters"])
@pytest.mark.parametrize("path", list(PATHS))
def test_empty_last_fields_are_not_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str,
                                         twist: str) -> None:
    """The negative control: ``...,`` ends with the delimiter (an empty field, not a missing one),
    a blank line is no record; nothing is reported and every row is read."""
    body = _body(short_at=None, twist=twist)
    assert _truth(body) is None
    got, rows = _check(tmp_path, monkeypatch, path, body, twist)
    assert got == "None"
    assert rows == 9_000


def test_a_short_row_deep_in_a_big_gzip_is_quarantined_even_under_skip(engine_factory, tmp_path: Path,
                                                                        chdb_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader: a .csv.gz over the old limit (lowered here) whose short row is deep inside is
    quarantined with its line and loads nothing, under ``on_bad_rows = "skip"`` too (structural
    damage is not a value to skip, as for a small file); the same file without it loads."""
    monkeypatch.setattr(delimited, "SHORT_ROW_CHECK_BYTES", 16 << 10, raising=False)
    monkeypatch.setattr(pieces, "PIECE_BYTES", 16 << 10)
    routes = (Route(table="q"), Route(table="s", on_bad_rows="skip"), Route(table="ok", on_bad_rows="skip"))
    cfg = make_config(tmp_path, chdb_path, routes=routes)
    for table in ("q", "s", "ok"):
        (cfg.data_dir / table).mkdir()
        body = _body(rows=40_000, short_at=None if table == "ok" else 33_000)
        (cfg.data_dir / table / "e.csv.gz").write_bytes(gzip.compress(body))
    engine = engine_factory(cfg)
    names = [f"{t}/e.csv.gz" for t in ("q", "s", "ok")]
    final = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE, State.FAILED}
    wait_for(lambda: all(engine.ledger.current(n) and engine.ledger.current(n).state in final for n in names),
             what="all final", timeout=60)
    for table in ("q", "s"):
        row = engine.ledger.current(f"{table}/e.csv.gz")
        assert row.state == State.QUARANTINED, (table, row.state, row.last_error)
        assert "ragged row at line 33002: 3 fields, fewer than the 4 columns" in (row.last_error or "")
        # Found by the plan's pieces: refused before any insert, before the table is made (seen
        # failing: every batch was sent, visible in the table, then deleted beside the quarantine).
        assert not engine.ledger.any_batches(row.id, 0)
        assert query(engine, f"SELECT count() FROM system.tables WHERE database = '{cfg.database}' "
                             f"AND name = '{table}'") == [(0,)]
    assert engine.ledger.current("ok/e.csv.gz").state == State.LOADED
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.ok") == [(40_000,)]


@pytest.mark.parametrize("short", [None, "7,,", ",,", '"a,",,', '"",,', "7,x,"])
@pytest.mark.parametrize("path", ["small", "pieces", "gzip", "plain_spilled", "streamed", "whole_text"])
def test_runs_of_empty_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, short: str | None) -> None:
    """Whole records ending with runs of empty fields (``1,,,``, ``,,,``, a quoted delimiter or
    newline before them) are not short; a record one field short of such a run is, with its line
    (seen loading with NULL: ending with the delimiter was taken for whole)."""
    whole = ["1,,,", ",,,", "2,x,,", '"a,",,,', '"",,,', "3,x,y,", '"4\n",,,']
    lines = ["id,a,b,c", *(whole[i % len(whole)] for i in range(20_000))]
    if short is not None:
        lines.insert(14_321, short)
    body = ("\n".join(lines) + "\n").encode()
    got, rows = _check(tmp_path, monkeypatch, path, body, "blank_line")  # (",,,": the spill is not kept)
    want = _truth(body)
    assert got == str(want)
    assert (want is None) == (short is None)
    if short is None:
        assert rows == 20_000


def test_a_short_row_in_a_small_file_is_refused_before_it_can_hold_the_file_for_drift(
        engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """A small file's short row leaves NULLs where the table has none: checked beside the inserts,
    after the gatekeeping, it held the file for schema drift instead ("approve to make them
    Nullable": an ALTER for a broken row), and a first file made its table Nullable before being
    quarantined. Now the small-file plan checks it: quarantined with its line, the table as it was."""
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "ev").mkdir()
    (cfg.data_dir / "ev" / "ok.csv").write_text("id,name,amount,note\n1,a,1.5,x\n")
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "ev/ok.csv") == "loaded", what="the table made")
    lines = ["id,name,amount,note", *(f"{i},n{i},{i}.5,x" for i in range(500))]
    lines[301] = "300,n300,"
    (cfg.data_dir / "ev" / "short.csv").write_text("\n".join(lines) + "\n")
    wait_for(lambda: state_of(engine, "ev/short.csv") in ("quarantined", "held", "loaded"), what="settled")
    row = engine.ledger.current("ev/short.csv")
    assert row.state == State.QUARANTINED, (row.state, row.last_error)
    assert "ragged row at line 302: 3 fields, fewer than the 4 columns" in (row.last_error or "")
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.ev") == [(1,)]
