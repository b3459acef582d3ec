"""A CSV parsed once, in pieces cut at record boundaries, each piece typed as it comes (issue 12:
the whole text frame is never held; a big file's typed pieces wait on disk instead of the file
being parsed a second time). Every shortcut must give exactly what the whole-text path gives."""

from __future__ import annotations

import csv
import gzip
import io
import os
import random
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chute.core.errors import InputError
from chute.core.formats import delimited, pieces
from chute.core.formats.limits import check_limits
from chute.core.formats.pieces import Uncuttable, record_pieces
from chute.core.reader import Reader, open_source, reader_for
from tests.test_one_pass import _blinded

# -- the cut -----------------------------------------------------------------------------------

_FIELDS = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.just(""),
    st.text(alphabet='ab ,"\n\r\t1é', max_size=8).map(lambda s: '"' + s.replace('"', '""') + '"'),
    st.text(alphabet="abc xy-é", min_size=1, max_size=6),
)


@st.composite
def _csv_text(draw: st.DrawFn) -> tuple[bytes, int]:
    width = draw(st.integers(1, 4))
    rows = draw(st.lists(st.one_of(st.just(None), st.lists(_FIELDS, min_size=width, max_size=width)), max_size=40))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [",".join(f"h{i}" for i in range(width))] + ["" if r is None else ",".join(r) for r in rows]
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    return ("\ufeff" if draw(st.booleans()) else "").encode() + text.encode(), width


def _parse(data: bytes, width: int, header: bool) -> pl.DataFrame:
    return pl.read_csv(data, schema=pl.Schema({f"h{i}": pl.String for i in range(width)}), has_header=False,
                       skip_rows=1 if header else 0, separator=",", quote_char='"', encoding="utf8")


@settings(max_examples=300, deadline=None)
@given(_csv_text(), st.integers(1, 90), st.integers(1, 50))
def test_pieces_parse_to_what_the_whole_text_parses_to(case: tuple[bytes, int], size: int, step: int) -> None:
    """Cut anywhere, read in any chunking: the pieces are the text again, no piece but the first
    starts with a line end, each cut is a record boundary for Python's csv module, and the pieces
    parsed one by one are the whole text parsed at once."""
    data, width = case
    chunks = iter([data[i:i + step] for i in range(0, len(data), step)])
    try:
        got = list(record_pieces(chunks, ",", size=size, bom=data.startswith(b"\xef\xbb\xbf")))
    except Uncuttable:
        return
    assert b"".join(got) == data
    assert all(p[:1] not in (b"\n", b"\r") for p in got[1:])
    records = lambda text: list(csv.reader(io.StringIO(text.decode("utf-8-sig"), newline="")))  # noqa: E731
    assert sum((records(p) for p in got), []) == records(data)
    try:
        whole = _parse(data, width, True)
    except pl.exceptions.PolarsError:
        return  # (the reader then parses the whole text, and reports what that reports)
    assert pl.concat([_parse(p, width, i == 0) for i, p in enumerate(got)]).equals(whole)


@pytest.mark.parametrize("text", [
    b'a,b\n1,27" wide\n2,3\n',  # a quote inside an unquoted field
    b'a,b\n1,"x"y\n2,3\n',  # text after a closing quote
    b'a,b\n1, "x"\n2,3\n',  # a space before an opening quote
    b'a,b\n1,"never closed\n2,3\n',
])
def test_a_quote_out_of_place_is_not_cut(text: bytes) -> None:
    """Where the quotes' parity might not say where records end, nothing is cut: the reader parses
    the file whole (negative control of the check the cut relies on)."""
    with pytest.raises(Uncuttable):
        list(record_pieces(iter([text]), ",", size=4))


# -- the reader ------------------------------------------------------------------------------


def _body(rows: int, seed: int = 7, widen_at: int | None = None, late_column: int | None = None,
          fine_at: int | None = None, blank_at: int | None = None, newlines: bool = True,
          short_at: int | None = None) -> str:
    """Every kind, null tokens, quoted commas (and newlines), optional twists further on."""
    r = random.Random(seed)
    out = ["id,amount,flag,day,at,zoned,note,late"]
    for i in range(rows):
        amount = "NA" if i % 97 == 0 else f"{r.randint(0, 99999) / 100}"
        if widen_at is not None and i == widen_at:
            amount = "12abc"
        ident = "-999" if i % 89 == 0 else str(i)
        flag = r.choice(["true", "false", "True", "NULL"])
        zoned = f"2026-03-{1 + i % 28:02d}T10:00:{i % 60:02d}{'.123456789' if fine_at == i else ''}+02:00"
        note = r.choice(["plain", '"with, comma"', '"two\nlines"' if newlines else "x", '"say ""hi"""', ""])
        late = "" if late_column is None or i < late_column else str(i % 5)
        out.append(f"{ident},{amount},{flag},2026-01-{1 + i % 28:02d},2026-02-03 04:05:{i % 60:02d},{zoned},"
                   f"{note}" + ("" if i == short_at else f",{late}"))
        if blank_at is not None and i == blank_at:
            out.append("")
    return "\n".join(out) + "\n"


def load_csv(path: Path, compression: str | None, one_parse: bool, batch: int = 7_000,
          blind: bool = False, drop_inflated: bool = False) -> tuple[object, pl.DataFrame, Reader]:
    """``one_parse`` False: the file parsed as one text (the oracle). ``drop_inflated``: the guard's
    inflated copy let go after the plan, as the loader does."""
    with open_source(path, compression) as src:
        if compression:
            check_limits(src)
        reader = reader_for(src, "csv", {})
        assert isinstance(reader, delimited.CsvReader)
        reader.one_parse = one_parse
        plan = reader.plan()
        verdicts = {c: (v.kind, v.tokens, v.precision) for c, v in reader.verdicts.items()}
        if blind:
            _blinded(src)
        if drop_inflated:
            src.drop_inflated()
        frame = pl.concat([df for _, df in reader.batches(batch)])
        check = reader.pending_check() if reader.pending_check else None
    return (dict(plan.schema), plan.rows, plan.null_counts, verdicts, str(check)), frame, reader


CASES = {
    "plain": {},
    "widens_past_a_cast": {"widen_at": 25_000},  # a decimal column holds text further on
    "late_values": {"late_column": 20_000},  # no value in the sample: decided over the whole file
    "nanoseconds_later": {"fine_at": 24_000},
    "blank_line": {"blank_at": 15_000},
    "empty_last_column": {"late_column": 10, "newlines": False},  # the short-row check, piece by piece
    "short_row": {"late_column": 10, "newlines": False, "short_at": 22_222},
}


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of 64 KiB: a 2 MB file is cut some thirty times."""
    monkeypatch.setattr(pieces, "PIECE_BYTES", 64 << 10)
    monkeypatch.setattr(delimited, "SPILL_PIECE_BYTES", 96 << 10)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_one_parse_gives_what_the_whole_text_gives(tmp_path: Path, small_pieces: None, case: str,
                                                   compression: str | None) -> None:
    """The plan (types, rows, NULLs, tokens, precision, the short-row check) and every batch are
    the same whether the file is parsed whole or once in typed pieces."""
    body = _body(30_000, **CASES[case]).encode()
    path = tmp_path / ("a.csv.gz" if compression else "a.csv")
    path.write_bytes(gzip.compress(body) if compression else body)
    want_plan, want, _ = load_csv(path, compression, one_parse=False)
    if case == "short_row":  # (the pieces found it: the plan refuses the file, nothing is sent)
        assert "ragged row at line 22224: 7 fields" in want_plan[4]  # type: ignore[index]
        with pytest.raises(InputError, match="ragged row at line 22224: 7 fields"):
            load_csv(path, compression, one_parse=True)
        return
    got_plan, got, reader = load_csv(path, compression, one_parse=True)
    assert got_plan == want_plan
    assert got.equals(want)
    assert want.height == 30_000
    if case == "widens_past_a_cast":
        assert reader.verdicts["amount"].kind == "text"
    if case == "empty_last_column":  # (and no line of the file is read again beside the inserts)
        assert reader.pending_check is None


def test_the_short_row_check_does_not_read_the_whole_file(tmp_path: Path, small_pieces: None) -> None:
    """A last column with NULLs: the short-row check looked at each piece's lines as it was parsed,
    so nothing reads every line of the file beside the inserts, and the loader can let the frame go
    as batches are sent (seen failing before the change: a check of the whole file was pending)."""
    path = tmp_path / "a.csv"
    path.write_text(_body(30_000, late_column=10, newlines=False))
    with open_source(path, None) as src:
        reader = reader_for(src, "csv", {})
        plan = reader.plan()
        assert plan.null_counts["late"] == 10
        assert reader.pending_check is None


def test_the_plan_never_parses_the_whole_text_at_once(tmp_path: Path, small_pieces: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12, peak RSS: the plan parses no text frame of the whole file (seen failing before the
    change: it read the file whole as text). (The short-row check, which reads the lines of a file
    whose last column has NULLs beside the inserts, is not part of this.)"""
    path = tmp_path / "a.csv"
    path.write_text(_body(30_000))
    seen: list[object] = []
    real = pl.read_csv

    def spy(source: object, *args: object, **kwargs: object) -> pl.DataFrame:
        seen.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(delimited.pl, "read_csv", spy)
    with open_source(path, None) as src:
        reader = reader_for(src, "csv", {})
        assert reader.plan().rows == 30_000
    whole = [s for s in seen if isinstance(s, str) or (isinstance(s, bytes) and len(s) >= path.stat().st_size)]
    assert not whole, "the whole file was parsed as one text frame"
    assert len(seen) > 10


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_a_big_file_is_parsed_once(tmp_path: Path, small_pieces: None, monkeypatch: pytest.MonkeyPatch,
                                   compression: str | None) -> None:
    """Over the in-memory size, the batches come from the typed pieces kept on disk, not from a
    second parse of the file (seen failing before the change: with the file blinded after the
    plan, the batches were empty)."""
    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 256 << 10)
    body = _body(30_000).encode()
    path = tmp_path / ("a.csv.gz" if compression else "a.csv")
    path.write_bytes(gzip.compress(body) if compression else body)
    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 256 << 10)
    want_plan, want, _ = load_csv(path, compression, one_parse=False)
    got_plan, got, reader = load_csv(path, compression, one_parse=True, blind=compression is None)
    assert reader._spill is not None
    assert got_plan == want_plan
    assert got.equals(want)
    again = pl.concat([df for _, df in reader.batches(5_000)])  # a resend reads the same values
    assert again.equals(want)


@pytest.mark.parametrize("case", ["widens_past_a_cast", "late_values", "blank_line"])
def test_a_big_file_that_cannot_stay_in_pieces_is_read_as_before(tmp_path: Path, small_pieces: None,
                                                                 monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """A column that widens, or blank lines to skip: the streamed path, with the same result."""
    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 256 << 10)
    path = tmp_path / "a.csv"
    path.write_text(_body(30_000, **CASES[case]))
    want_plan, want, _ = load_csv(path, None, one_parse=False)
    got_plan, got, reader = load_csv(path, None, one_parse=True)
    assert reader._spill is None
    assert got_plan == want_plan
    assert got.equals(want)


@pytest.mark.parametrize("big", [False, True], ids=["in_memory", "on_disk"])
def test_a_file_parsed_once_loads_every_value(engine_factory, tmp_path: Path, chdb_path: Path, small_pieces: None,
                                              monkeypatch: pytest.MonkeyPatch, big: bool) -> None:
    """Through the engine into ClickHouse: the table holds what the whole-text path sends."""
    from chute.core.states import State
    from tests.conftest import make_config, query, wait_for

    if big:
        monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 256 << 10)
    cfg = make_config(tmp_path, chdb_path)
    body = _body(30_000, late_column=10, newlines=False)
    (cfg.data_dir / "t.csv").write_text(body)
    with open_source(cfg.data_dir / "t.csv", None) as src:  # what the whole-text path makes of it
        reader = reader_for(src, "csv", {})
        reader.one_parse = False  # type: ignore[attr-defined]
        reader.plan()
        want = pl.concat([df for _, df in reader.batches(30_000)])
    engine = engine_factory(cfg)
    wait_for(engine.idle, what="idle")
    row = engine.ledger.current("t.csv")
    assert row.state == State.LOADED, row.last_error
    got = query(engine, f"SELECT count(), sum(id), sum(amount), countIf(flag), countIf(flag IS NULL), "
                        f"countIf(late IS NULL), sum(late) FROM `{cfg.database}`.`t`")
    assert got == [(30_000, want["id"].sum(), pytest.approx(want["amount"].sum()), want["flag"].sum(),
                    want["flag"].null_count(), want["late"].null_count(), want["late"].sum())]


def test_no_pieces_on_a_memory_backed_temporary_directory(tmp_path: Path, small_pieces: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A tmpfs would hold the typed pieces in memory after all: a big file streams as before."""
    import tempfile

    from chute.core.formats import spill

    if not Path("/dev/shm").is_dir() or spill._fs_type("/dev/shm") != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 256 << 10)
    monkeypatch.setattr(tempfile, "tempdir", "/dev/shm")
    path = tmp_path / "a.csv"
    path.write_text(_body(30_000))
    want_plan, want, _ = load_csv(path, None, one_parse=False)
    got_plan, got, reader = load_csv(path, None, one_parse=True)
    assert reader._spill is None
    assert got_plan == want_plan and got.equals(want)


def test_a_spill_that_cannot_be_read_back_is_not_the_files_fault(tmp_path: Path, small_pieces: None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the round-8 review: an I/O error reading the typed pieces back from chute's own
    temporary file was reported as bad input, and the file was quarantined. It is a local fault
    (retried, or a pause when the disk is full, core/loader.py), never the input's."""
    from chute.core.errors import InputError
    from chute.core.formats.spill import SpillReadError

    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 256 << 10)
    path = tmp_path / "a.csv"
    path.write_text(_body(30_000))
    with open_source(path, None) as src:
        reader = reader_for(src, "csv", {})
        reader.plan()
        assert isinstance(reader, delimited.CsvReader) and reader._spill is not None
        os.ftruncate(reader._spill.file.fileno(), 1000)  # (what a failing disk leaves)
        with pytest.raises(SpillReadError) as caught:
            list(reader.batches(7_000))
        assert not isinstance(caught.value, InputError)


@pytest.mark.parametrize("free_mb", [6, 400], ids=["disk_filling", "room_left"])
def test_a_spill_stops_before_it_fills_the_disk(tmp_path: Path, small_pieces: None, monkeypatch: pytest.MonkeyPatch,
                                                free_mb: int) -> None:
    """Found by the round-8 review: room() judges a compressed file by 6x its size, and a file that
    inflates further was written to the temporary disk (often ClickHouse's) until it was full. The
    writes now stop when the free space falls below a share of the disk, and the file takes the
    streamed path with the same result. The disk is simulated: 100 MB whose free space shrinks by
    what the spill wrote; with room left (the control) the pieces stay on disk."""
    import shutil as real_shutil

    from chute.core.formats import spill

    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 64 << 10)
    monkeypatch.setattr(spill, "CHECK_BYTES", 64 << 10)
    header, *rows = _body(150).split("\n", 1)[0], _body(150).split("\n", 1)[1]
    body = (header + "\n" + (rows[0].rstrip("\n") + "\n") * 200).encode()  # repeats: ~100x in gzip
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(body))
    assert len(body) > 6 * path.stat().st_size * 10  # (judged by 6x: 10 times too small)
    written: list[spill.Spill] = []
    peak = [0]  # the most the spills held at once, as the disk saw it
    made = spill.Spill.__init__

    def tracked(self: spill.Spill) -> None:
        made(self)
        written.append(self)

    def disk(where: str) -> real_shutil._ntuple_diskusage:  # type: ignore[name-defined]
        used = sum(s.size for s in written if not s.file.closed)
        peak[0] = max(peak[0], used)
        return real_shutil._ntuple_diskusage(100 << 20, 0, (free_mb << 20) - used)  # type: ignore[attr-defined]

    monkeypatch.setattr(spill.Spill, "__init__", tracked)
    monkeypatch.setattr(spill.shutil, "disk_usage", disk)
    monkeypatch.setattr(spill, "_fs_type", lambda where: "ext4")
    want_plan, want, _ = load_csv(path, "gzip", one_parse=False)
    got_plan, got, reader = load_csv(path, "gzip", one_parse=True)
    assert (reader._spill is not None) == (free_mb == 400)
    assert peak[0] < (2 << 20) or free_mb == 400  # stopped with 5 MB of the 100 left
    assert got_plan == want_plan and got.equals(want)
