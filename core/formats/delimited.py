"""Delimited text: CSV, TSV and other delimiters (sniffed), with or without a header row.

The dialect and the column names come from the first MiB. Every field is read as text; the
column types come from a lossless check of the whole file (core/formats/infer.py). Errors polars
reports without a position send us down a slow path that finds the first bad line.
"""

from __future__ import annotations

import array
import csv
import io
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future

import numpy as np
import polars as pl

from chute.core import memory
from chute.core.errors import InputError
from chute.core.formats import register
from chute.core.formats.infer import (
    DEFAULT_NULL_VALUES,
    FileFacts,
    sample_kinds,
    small_file,
    to_wire,
    whole_file,
    whole_frame,
)
from chute.core.formats.infer_pieces import PieceInference
from chute.core.formats.pieces import PieceFeed, Uncuttable, record_pieces, text_chunks
from chute.core.formats.spill import Spill
from chute.core.reader import Plan, Reader, Source, head_bytes, open_binary, raw_lines

log = logging.getLogger(__name__)

_DELIMITERS = ",\t;|"
# The csv module's own 128 KiB field cap would turn a long (legal) field into an error on the slow
# paths; record size is bounded before parsing instead (core/formats/limits.py).
csv.field_size_limit(1 << 30)
# A short row: (the byte its piece starts at, the line it starts on within the piece, 0-based,
# its fields). The lines before the piece are counted only once one is found (a failure path).
_Short = tuple[int, int, int]
_Parsed = tuple[pl.DataFrame, _Short | None]  # a piece parsed as text, and its first short row
_UNCHECKED = "unchecked"  # the plan's pieces did not cover the file: the pending check reads it again
# Pieces of a file parsed once (core/formats/pieces.py): on disk, bigger ones cost less per byte
# (their text is not held meanwhile, so size only bounds what is in flight).
SPILL_PIECE_BYTES = 16 << 20
# A compressed file's typed pieces go to disk from this much text on (estimated: compressed x 6):
# below it the frame is small, and a group of small files would hold a temporary file each.
SPILL_COMPRESSED_BYTES = 16 << 20


class CsvReader(Reader):
    def __init__(self, src: Source, tsv: bool = False, delimiter: str | None = None,
                 header: bool | None = None, null_values: tuple[str, ...] | None = None) -> None:
        super().__init__(src)
        self.null_values = DEFAULT_NULL_VALUES if null_values is None else tuple(null_values)
        self.tsv = tsv
        self.delimiter = delimiter
        self.header = header
        self.quote = '"'
        self.names: list[str] = []
        self._blank: pl.Series | None = None  # record numbers that are blank lines (skipped)
        self._parsing: Future[pl.DataFrame] | None = None  # the whole file's text parse, under way
        self._feed: PieceFeed[_Parsed] | None = None  # or its parse in pieces (core/formats/pieces.py), under way
        self._spill: Spill | None = None  # a big file's typed pieces, for its batches
        self._piece_at = 0  # where the piece being parsed starts in the text (pieces parse in order)
        self._piece_short: _Short | None | str = _UNCHECKED  # the first short row the pieces found
        self.one_parse = True  # parse in pieces, each typed as it comes (False: the whole text at once)
        # A compressed file's typed pieces wait on disk too (core/formats/spill.py), not only a big
        # file's: ClickHouse reads such a file with no mapped text, so chute's held frame was the
        # difference (issue 12, peak RSS: CSV.gz 1M rows 493 -> 460 MB for +0.1-0.17 s of CPU).
        self.spill_compressed = True
        self._spills = False  # this file's pieces go to disk (decided with the parse, _start_parse)
        self._bom = False
        self._shifts: tuple[np.ndarray, np.ndarray] | None = None  # see record_lines

    @property
    def header_lines(self) -> int:
        return 1 if self.header else 0

    # -- dialect and names ----------------------------------------------------------------

    def _dialect(self, head: bytes, complete: bool) -> str:
        """Decode the head, pick delimiter/header, and name the columns. Returns the text used."""
        if not complete:
            cut = head.rfind(b"\n")
            head = head[: cut + 1] if cut > 0 else head
        if head.startswith(b"\xef\xbb\xbf"):
            head, self._bom = head[3:], True
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = head.count(b"\n", 0, exc.start) + 1
            raise InputError(f"not UTF-8 text: byte 0x{head[exc.start]:02x} at line {line} cannot be decoded",
                             line=line) from None
        if not text.strip():
            raise InputError("no data: the file has only blank lines" if text else "empty file")
        sniffer = csv.Sniffer()
        # csv.Sniffer is pure Python and costs ~1 ms per KiB: the first lines are enough.
        sample = text[:8192]
        if len(text) > 8192 and "\n" in sample:
            sample = sample[: sample.rfind("\n") + 1]
        if self.delimiter is None:
            if self.tsv:
                self.delimiter = "\t"
            else:
                self.delimiter = sure_delimiter(sample) or _sniff(sniffer, sample)
        try:
            first = next(csv.reader(io.StringIO(text), delimiter=self.delimiter, quotechar=self.quote), [])
        except csv.Error as exc:
            raise InputError(f"malformed CSV header: {exc}", line=1) from None
        if self.header is None:
            self.header = _looks_like_header(first)
        if self.header:
            self.names = fix_names(first)
        else:
            self.names = [f"column_{i + 1}" for i in range(len(first))]
        return text

    def _read_args(self) -> dict:
        return {"separator": self.delimiter, "quote_char": self.quote, "has_header": False,
                "skip_rows": 1 if self.header else 0, "encoding": "utf8"}

    # -- plan ------------------------------------------------------------------------------

    def plan(self) -> Plan:
        head, complete = head_bytes(self.src, self.SAMPLE_BYTES)
        text = self._dialect(head, complete)
        self._text = pl.Schema({n: pl.String for n in self.names})
        if complete and self.src.compression is None:
            small = self._plan_small(head)
            if small is not None:
                return small
        self._start_parse()
        try:
            try:
                sample = self._sample(io.BytesIO(text.encode()))
            except pl.exceptions.NoDataError:
                sample = pl.DataFrame(schema=self._text)
            except (pl.exceptions.PolarsError, OSError) as exc:
                if complete:
                    raise self.diagnose() or self._input_error(exc) from None
                try:  # the 1 MiB cut may have split a quoted field: sample the file itself
                    sample = self._sample(self.src.readable)
                except (pl.exceptions.PolarsError, OSError, EOFError) as exc2:
                    raise self.diagnose() or self._input_error(exc2) from None
            candidates = sample_kinds(sample, self.null_values)
            try:
                plan = self._full_pass(candidates)
            except (pl.exceptions.PolarsError, OSError, EOFError) as exc:
                raise self.diagnose() or self._input_error(exc) from None
        finally:
            self._stop_parse()
        if sample.height >= 100:
            self._distinct = {c: sample[c].n_unique() / sample.height
                              for c, v in self.verdicts.items() if v.kind == "text"}
            plan.distinct_ratio = dict(self._distinct)
        self._check_short_rows(plan)
        return plan

    def _start_parse(self) -> None:
        """The whole file's parse needs only the dialect: started now, it runs beside the sample's
        inference (which is mostly one thread), not after it. In pieces (see _in_pieces), else the
        whole text at once."""
        if self.one_parse and (self._in_memory() or Spill.room(self._text_bytes())):
            self._spills = not self._in_memory() or (
                self.spill_compressed and self.src.compression is not None
                and self._text_bytes() >= SPILL_COMPRESSED_BYTES and Spill.room(self._text_bytes()))
            self._feed = PieceFeed(text_chunks(self.src), self._parse_piece, self.delimiter or ",", self.quote,
                                   self._bom, size=None if self._in_memory() else SPILL_PIECE_BYTES)
        else:
            self._parsing = self._parse_early()

    def _stop_parse(self) -> None:
        """Never leave a parse reading the descriptor."""
        if self._parsing is not None:
            self._parsing.exception()
            self._parsing = None
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    def _plan_small(self, head: bytes) -> Plan | None:
        """The whole file is in ``head`` (at most 1 MiB): parse those bytes once and infer from
        the whole frame in one query, instead of a sample parse, a second full read and a pass
        per kind (the fixed cost that dominated small files). None: take the general path."""
        try:
            frame = pl.read_csv(io.BytesIO(head), schema=self._text, **self._read_args())
        except (pl.exceptions.PolarsError, OSError):
            return None  # the general path says what is wrong (or reads a header-only file)
        if frame.height > self.INFER_ROWS:
            return None  # the sample would be the first rows only: keep the general path's verdicts
        facts, uniques = small_file(frame, self.null_values)
        plan = self._adopt_frame(frame, facts)
        if frame.height >= 100:
            self._distinct = {c: uniques[c] / frame.height for c, v in self.verdicts.items() if v.kind == "text"}
            plan.distinct_ratio = dict(self._distinct)
        self._check_short_rows(plan)
        if self.pending_check is not None:  # (1 MiB at most: now, not beside the inserts, where the
            # gatekeeping came first: the short row's NULLs held the file for drift, or made a new table Nullable)
            problem, self.pending_check = self.pending_check(), None
            if problem is not None:
                raise problem
        return plan

    def _sample(self, source: io.BytesIO | str | bytes) -> pl.DataFrame:
        return pl.read_csv(source, n_rows=self.INFER_ROWS, schema=self._text, **self._read_args())

    def _parse_early(self) -> Future[pl.DataFrame] | None:
        """The in-memory text parse of the whole file, in a thread of its own (polars releases the
        GIL); None for a file streamed in batches."""
        if not self._in_memory():
            return None
        parsing: Future[pl.DataFrame] = Future()
        path, args = self.src.readable, self._read_args()

        def parse() -> None:
            try:
                parsing.set_result(pl.read_csv(path, schema=self._text, **args))
            except BaseException as exc:  # noqa: BLE001 - handed to the planning thread as is
                parsing.set_exception(exc)

        threading.Thread(target=parse, name="chute-parse", daemon=True).start()
        return parsing

    def _parse_piece(self, text: bytes, first: bool) -> _Parsed:
        """A piece as text, and its first short row (pieces are parsed in order, on one thread)."""
        if first:
            self._piece_at = 0
        frame = self._parse_text(text, first)
        at, self._piece_at = self._piece_at, self._piece_at + len(text)
        found = self._first_short(text, frame, first)
        return frame, (at, *found) if found is not None else None

    def _parse_text(self, text: bytes, first: bool, columns: list[int] | None = None) -> pl.DataFrame:
        args = self._read_args()
        if not first:
            args["skip_rows"] = 0
        return pl.read_csv(text, schema=self._text, columns=columns, **args)

    def _first_short(self, text: bytes, frame: pl.DataFrame, first: bool) -> tuple[int, int] | None:
        """The first short row of a piece (whole records): (the line it starts on, 0-based within
        the piece, its fields), or None. Only records whose last column polars read as NULL are
        looked at (none in most pieces: nothing more to do)."""
        if not self.names:
            return None
        suspects = frame[self.names[-1]].is_null().arg_true().to_numpy()
        if not len(suspects):
            return None
        return first_short(text, suspects, frame.height, self.header_lines if first else 0, len(self.names),
                           self.delimiter or ",", self.quote, self._trailing_nulls(text, frame, first, suspects))

    def _trailing_nulls(self, text: bytes, frame: pl.DataFrame, first: bool, suspects: np.ndarray) -> np.ndarray:
        """How many columns at the end of each suspect record polars read as NULL (1 or more). A
        short record ending with the delimiter has two or more: only those are counted (the usual
        empty last field ``...,x,`` has one)."""
        trail = np.ones(len(suspects), dtype=np.int64)
        if len(self.names) < 2:
            return trail
        deep = frame[self.names[-2]].is_null().to_numpy()[suspects]
        if not deep.any():
            return trail
        if frame.width < len(self.names):  # (the pending check parsed two columns: this piece needs all)
            frame = self._parse_text(text, first)
        nulls = frame.select(pl.col(c).is_null() for c in reversed(self.names)).to_numpy()[suspects[deep]]
        trail[deep] = np.cumprod(nulls, axis=1).sum(axis=1)
        return trail

    def _text_bytes(self) -> int:
        """The decompressed size: inflated, or measured by the limits check, else estimated as
        Reader._in_memory does."""
        inflated = self.src.inflated
        if inflated is not None:
            return inflated.size
        return self.src.text_size or self.src.st.st_size * (1 if self.src.compression is None else 6)

    def _in_pieces(self, candidates: dict[str, str | None]) -> Plan | None:
        """The file parsed once, a piece at a time, each piece typed as it comes
        (core/formats/infer_pieces.py): the whole text is never held. A file over the in-memory
        size keeps its typed pieces on disk for the batches (core/formats/spill.py) instead of
        being parsed again. None: take the whole-text path, as before (a quote out of place, a cast
        column that widens further on, an error to report as that path reports it; on disk also
        any column that widens, blank lines, a full disk)."""
        assert self._feed is not None
        feed, self._feed = self._feed, None
        spill = Spill() if self._spills else None
        inference = PieceInference(candidates, self.null_values)
        typed: list[pl.DataFrame] = []
        found: _Short | None = None
        try:
            for piece, short in feed:
                found = found or short
                self._check_frame(piece)
                out = inference.add(piece)
                del piece
                if spill is None:
                    typed.append(out)
                else:
                    spill.add(out)
                del out
            if spill is not None:
                spill.done()
        except InputError:
            if spill is not None:
                spill.close()
            raise
        except Exception as exc:  # noqa: BLE001 - the whole-text path decides, as before
            log.debug("%s: parsed whole (%s)", self.src.path.name, exc)
            if spill is not None:
                spill.close()
            return None
        finally:
            feed.close()
        memory.trim()  # the pieces' text, freed, is glibc's until given back (~12 MB at 1M rows)
        self._piece_short = found  # (about the text: true on the whole-text path below too)
        if spill is not None:
            return self._adopt_spill(spill, inference)
        if not typed:
            return None
        frame = pl.concat(typed, rechunk=False) if len(typed) > 1 else typed[0]
        del typed
        return self._adopt_frame(frame, inference.facts(frame))

    def _check_frame(self, frame: pl.DataFrame) -> None:
        if self._spill is None:  # (spilled pieces were searched as they were parsed: not again per batch)
            super()._check_frame(frame)

    def _adopt_spill(self, spill: Spill, inference: PieceInference) -> Plan | None:
        """The verdicts of a file whose typed pieces are on disk: its batches read them back."""
        if inference.widens() or not spill.rows:
            spill.close()
            return None
        facts = inference.facts(pl.DataFrame(schema=self._text))
        if facts.empty_rows and len(self.names) > 1:  # blank lines to skip: the streamed path does it
            spill.close()
            return None
        self._spill = spill
        self._set_verdicts(facts.verdicts)
        return self._finish_plan(facts.rows, facts.nulls)

    def _full_pass(self, candidates: dict[str, str | None]) -> Plan:
        if self._feed is not None:
            plan = self._in_pieces(candidates)
            if plan is not None:
                return plan
        if self._in_memory():
            if self._parsing is not None:
                frame = self._parsing.result()
            else:
                frame = pl.read_csv(self.src.readable, schema=self._text, **self._read_args())
            self._check_frame(frame)
            facts, typed = whole_frame(frame, candidates, self.null_values)
            return self._adopt_frame(frame, facts, typed)
        # (NUL bytes in plain files are found while hashing.)
        if self.src.compression:
            nul = self._scan().select(pl.any_horizontal(pl.col(c).str.contains("\x00", literal=True).any()
                                                        for c in self._text)).collect(engine="streaming").item()
            if nul:
                raise self.diagnose() or InputError("NUL byte in the data")
        facts = self._skip_blank_lines(whole_file(self._scan(), candidates, self.null_values, streaming=True))
        self._set_verdicts(facts.verdicts)
        return self._finish_plan(facts.rows, facts.nulls)

    def _adopt_frame(self, frame: pl.DataFrame, facts: FileFacts, typed: pl.DataFrame | None = None) -> Plan:
        """A file parsed whole (text): its verdicts, and the frame its batches come from (``typed``:
        the same with some columns cast already, see whole_frame)."""
        facts = self._skip_blank_lines(facts)
        if self._blank is not None:
            keep = ~pl.int_range(pl.len(), dtype=pl.UInt32).is_in(self._blank.implode())
            frame = frame.filter(keep)
            typed = typed.filter(keep) if typed is not None else None
        self._set_verdicts(facts.verdicts)
        # Text (but for whole_frame's casts): typed batch by batch, beside the inserts (_raw_batches).
        self._frame = frame if typed is None else typed
        return self._finish_plan(facts.rows, facts.nulls)

    def _scan(self) -> pl.LazyFrame:
        lf = pl.scan_csv(self.src.readable, schema=self._text, **self._read_args())
        if self._blank is None:
            return lf
        return lf.with_row_index("\x00i").filter(~pl.col("\x00i").is_in(self._blank.implode())).drop("\x00i")

    def _stream(self, batch_rows: int) -> Iterator[pl.DataFrame]:
        if self._spill is not None:
            for df in self._spill.frames():
                yield to_wire(df, self.verdicts, self.null_values)
            return
        for df in self._scan().collect_batches(chunk_size=batch_rows):
            yield to_wire(df, self.verdicts, self.null_values)

    def _raw_batches(self, batch_rows: int) -> Iterator[pl.DataFrame]:
        batches = super()._raw_batches(batch_rows)
        if self._frame is None:  # streamed: typed in _stream
            return batches
        return (to_wire(df, self.verdicts, self.null_values) for df in batches)

    # -- blank lines -----------------------------------------------------------------------

    def _skip_blank_lines(self, facts: FileFacts) -> FileFacts:
        """A blank line of a file with two or more columns is not a record (it has one field, not
        N): skipped, as pandas, R and Python's csv do. polars reads it as a row of NULLs, so only
        rows with every field NULL (a blank line, or a line of empty fields such as ``,,``, which
        IS a record) are looked at. In a one-column file a blank line is an empty value."""
        if not facts.empty_rows or len(self.names) < 2:
            return facts
        blank = self._blank_records(facts.rows)
        if blank is None or not len(blank):
            return facts
        self._blank = blank
        n = len(blank)
        return FileFacts(facts.verdicts, facts.rows - n, {c: k - n for c, k in facts.nulls.items()},
                         facts.empty_rows - n)

    def _blank_records(self, records: int) -> pl.Series | None:
        """Numbers (0-based, data records) of the records that are blank lines. Fast when lines
        are records (no quoted newlines); else a walk with Python's csv module. None when the two
        parsers disagree on the records (then nothing is skipped)."""
        lines = raw_lines(self.src).with_row_index("i")
        blank = pl.col("line").is_null() | (pl.col("line").str.strip_chars_end("\r") == "")
        found = lines.select(pl.len().alias("n"), pl.col("i").filter(blank).implode().alias("at")).collect(
            engine="streaming" if not self._in_memory() else "auto").row(0, named=True)
        if found["n"] == records + self.header_lines:
            at = pl.Series("i", found["at"], dtype=pl.Int64) - self.header_lines
            return at.filter(at >= 0).cast(pl.UInt32)  # (a blank line above the header is no record)
        return self._walk_blank_records(records)

    def _walk_blank_records(self, records: int) -> pl.Series | None:
        at: list[int] = []
        n = 0
        for n, (fields, _line) in enumerate(self._walk(), 1):
            if not fields:
                at.append(n - 1)
        return pl.Series("i", at, dtype=pl.UInt32) if n == records else None

    def _walk(self) -> Iterator[tuple[list[str], int]]:
        """The data records as Python's csv module reads them (an edge path: blank lines when
        the parsers disagree, line numbers of a refused value), each with the line it starts on."""
        with open_binary(self.src) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(text, delimiter=self.delimiter or ",", quotechar=self.quote)
            if self.header:
                next(reader, None)
            consumed = reader.line_num
            for fields in reader:
                yield fields, consumed + 1
                consumed = reader.line_num

    def record_lines(self, records: list[int]) -> list[int]:
        """A quoted field that spans lines, or a skipped blank line, puts every later record further
        down than its number says: the lines each record starts on are walked once (Python's csv
        module, as diagnose() does; only when a value was refused) and kept as the records after
        which the count shifts."""
        if self._shifts is None:
            self._shifts = self._walk_shifts()
        starts, extra = self._shifts
        if not len(starts):
            return super().record_lines(records)
        at = np.searchsorted(starts, np.asarray(records, dtype=np.int64), side="right") - 1
        shift = np.where(at >= 0, extra[np.maximum(at, 0)], 0)
        return [int(r) + 1 + self.header_lines + int(d) for r, d in zip(records, shift, strict=True)]

    def _walk_shifts(self) -> tuple[np.ndarray, np.ndarray]:
        """(records from which the lines run further, by how many lines in all) for record_lines."""
        # (typed arrays: a record of two lines each is one entry per record, 16 bytes, not ~70 as ints in lists)
        starts, extra = array.array("q"), array.array("q")
        skipped = self._blank is not None  # (blank lines are then no records of the batches)
        record, shift = 0, 0
        try:
            for fields, start in self._walk():
                if not fields and skipped:
                    continue
                if start - (record + 1 + self.header_lines) != shift:
                    shift = start - (record + 1 + self.header_lines)
                    starts.append(record)
                    extra.append(shift)
                record += 1
        except (OSError, EOFError, UnicodeDecodeError, csv.Error):
            pass  # (the count as the records say: the reason names the value and column all the same)
        return np.frombuffer(starts, dtype=np.int64), np.frombuffer(extra, dtype=np.int64)

    def _check_short_rows(self, plan: Plan) -> None:
        """polars fills missing trailing fields with nulls, so a null in the last column is the only
        sign of a short row. Only then is the exact check needed: made piece by piece as the plan
        parsed them (one found refuses the file now, before any insert), else beside the inserts
        (``pending_check``: a failure before verification still quarantines with zero rows)."""
        if not self.names or not plan.rows or not plan.null_counts.get(self.names[-1]):
            return
        found = self._piece_short
        if found == _UNCHECKED:
            self.pending_check = self._short_rows
            return
        if isinstance(found, tuple):  # (left to the pending check, every batch was sent, then deleted)
            at, line, fields = found
            if self._spill is not None:
                self._spill.close()
                self._spill = None
            raise self._ragged(self._lines_before(at) + line + 1, fields)

    def _short_rows(self) -> InputError | None:
        """The pieces' check over the file's text again, for a plan that did not parse it in
        pieces (the whole text at once, streamed, a small file): a piece at a time, only the last
        two columns parsed (all, for a piece with both NULL somewhere: _trailing_nulls). Text the
        pieces cannot cut: _short_lines; text polars cannot parse: the walk."""
        delim, lines = self.delimiter or ",", 0
        last = list(range(max(len(self.names) - 2, 0), len(self.names)))  # (see _first_short)
        try:
            for k, text in enumerate(record_pieces(text_chunks(self.src), delim, self.quote, bom=self._bom)):
                found = self._first_short(text, self._parse_text(text, k == 0, last), k == 0)
                if found is not None:
                    return self._ragged(lines + found[0] + 1, found[1])
                lines += text.count(b"\n")
        except InputError as exc:
            return exc
        except Uncuttable:
            return self._short_lines()
        except (pl.exceptions.PolarsError, csv.Error, UnicodeDecodeError):
            return self.diagnose()
        finally:
            self.src.drop_inflated()  # its last reader (a slow path reads the file)
        return None

    def _short_lines(self) -> InputError | None:
        """The check for text the pieces cannot cut (a quote out of place), streamed: the file's
        lines beside its last column, when there are as many lines as records (no record spans
        lines); else the slow walk."""
        skip, delim = self.header_lines, self.delimiter or ","
        lines = raw_lines(self.src, skip_rows=skip).with_row_index("\x00i")
        last = pl.scan_csv(self.src.readable, schema=self._text, **self._read_args()).select(
            pl.col(self.names[-1]).alias("\x00last"), pl.lit(True).alias("\x00record"))
        both = pl.concat([lines, last], how="horizontal")
        tail = pl.col("line").str.strip_chars_end("\r")
        # Ending with the delimiter is an empty last field only with every delimiter there (1,2,
        # under four columns is short: rv11); a quoted delimiter only adds to the count.
        enough = tail.str.count_matches(delim, literal=True) >= len(self.names) - 1
        short = pl.col("\x00last").is_null() & (tail.fill_null("") != "") & ~(tail.str.ends_with(delim) & enough)
        try:
            got = both.select(pl.len().alias("n"), pl.col("\x00i").count().alias("lines"),
                              pl.col("\x00record").count().alias("records"),
                              pl.col("\x00i").filter(short).min().alias("at")).collect(engine="streaming").row(0)
            n, n_lines, records, at = got
            if not n == n_lines == records:
                return self.diagnose()
            if at is None:
                return None
            text = lines.filter(pl.col("\x00i") == at).select(tail).collect(engine="streaming").item()
        except (pl.exceptions.PolarsError, OSError):
            return self.diagnose()
        fields = next(csv.reader([text], delimiter=delim, quotechar=self.quote), [])
        return self._ragged(int(at) + skip + 1, len(fields))

    def _lines_before(self, offset: int) -> int:
        """Lines in the first ``offset`` bytes of the text (read again: only for a short row found)."""
        lines = 0
        for chunk in text_chunks(self.src):
            if offset <= 0:
                break
            lines += chunk.count(b"\n", 0, offset)
            offset -= len(chunk)
        return lines

    def _ragged(self, line: int, fields: int) -> InputError:
        return InputError(f"ragged row at line {line}: {fields} fields, fewer than the {len(self.names)} "
                          f"columns of the header", line=line)

    # -- the slow path ---------------------------------------------------------------------

    def diagnose(self) -> InputError | None:
        """Walk the file with Python's csv module: the first line that is not UTF-8, holds a NUL
        byte, has the wrong number of fields, or opens a quote that never closes."""
        try:
            with open_binary(self.src) as raw:
                for lineno, line in enumerate(raw, 1):
                    if b"\x00" in line:
                        return InputError(f"NUL byte at line {lineno}", line=lineno)
                    try:
                        line.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        if lineno == 1 and line.startswith(b"\xef\xbb\xbf") and exc.start < 3:
                            continue
                        return InputError(f"not UTF-8 text: byte 0x{line[exc.start]:02x} at line {lineno} "
                                          f"cannot be decoded", line=lineno)
            with open_binary(self.src) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                reader = csv.reader(text, delimiter=self.delimiter or ",", quotechar=self.quote, strict=True)
                width = len(self.names)
                start = 1
                try:
                    for record in reader:
                        if (start > 1 or not self.header) and record and len(record) != width:
                            kind = "more" if len(record) > width else "fewer"
                            return InputError(f"ragged row at line {start}: {len(record)} fields, {kind} than "
                                              f"the {width} columns of the header", line=start)
                        start = reader.line_num + 1
                except csv.Error as exc:
                    if "EOF" in str(exc) or "unexpected end of data" in str(exc):
                        return InputError(f"unbalanced quote: the quoted field opened at line {start} never closes",
                                          line=start)
                    return InputError(f"malformed CSV at line {start}: {exc}", line=start)
        except (OSError, EOFError) as exc:
            return self._input_error(exc)
        return None


def first_short(text: bytes, suspects: np.ndarray, records: int, header: int, width: int, delim: str,
                quote: str, trail: np.ndarray | None = None) -> tuple[int, int] | None:
    """The first record of ``text`` (whole records, quotes where RFC 4180 puts them: as
    record_pieces cuts them) that lacks its last field: (the line it starts on, 0-based, its
    fields), or None. ``suspects``: records (0-based, after ``header`` records; ``records`` in
    all) whose last column polars read as NULL, a missing field or an empty one; ``trail``: how
    many columns at their end are NULL (else 1). A record not ending with the delimiter lacks
    its last field. One ending with ``trail`` empty fields ends with as many delimiters (the
    field before them is text or quoted, never ends with one; all empty: width - 1); fewer, and
    some of them are missing (``1,2,`` under four columns). A blank line is no record. A newline
    ends a record when an even number of quotes comes before it (numpy, no per-row Python)."""
    if len(delim.encode()) != 1 or len(quote.encode()) != 1:
        return _walk_short(text, header, width, delim, quote)
    arr = np.frombuffer(text, dtype=np.uint8)
    nl = np.flatnonzero(arr == 10)
    if not text.endswith(b"\n"):
        nl = np.append(nl, len(text))
    ends = np.arange(len(nl))  # which newlines end a record (indices into nl)
    if len(nl) != records + header and quote.encode() in text:  # (as many lines as records: no quoted newline)
        ends = ends[(np.searchsorted(np.flatnonzero(arr == ord(quote)), nl) & 1) == 0]
    if len(ends) != records + header or not len(ends):
        return _walk_short(text, header, width, delim, quote)  # (the parsers disagree on the records)
    rec = suspects.astype(np.int64) + header
    start = np.where(rec > 0, nl[ends[np.maximum(rec - 1, 0)]] + 1, 0)
    end = nl[ends[rec]]  # (the newline, or the end of the text)
    tail = end - 1 - (arr[np.maximum(end - 1, 0)] == 13)  # the record's last byte, before a CR
    short = (tail >= start) & (arr[np.maximum(tail, 0)] != ord(delim))
    if trail is not None and (trail > 1).any():
        at = np.flatnonzero((tail >= start) & ~short & (trail > 1))
        need = np.minimum(trail[at], width - 1)  # delimiters ending the record if it is whole
        whole = np.ones(len(at), dtype=bool)
        for i in range(1, int(need.max(initial=0))):  # (a loop over columns, not rows)
            pos = tail[at] - i
            whole &= (i >= need) | ((pos >= start[at]) & (arr[np.maximum(pos, 0)] == ord(delim)))
        short[at] = ~whole
    hits = np.flatnonzero(short)
    if not len(hits):
        return None
    r, s = int(rec[hits[0]]), int(start[hits[0]])
    record = text[s:int(end[hits[0]])].decode("utf-8-sig")
    fields = next(csv.reader(io.StringIO(record, newline=""), delimiter=delim, quotechar=quote), [])
    return (int(ends[r - 1]) + 1 if r else 0), len(fields)


def _walk_short(text: bytes, header: int, width: int, delim: str, quote: str) -> tuple[int, int] | None:
    """:func:`first_short` by Python's csv module, as CsvReader.diagnose walks a file."""
    reader = csv.reader(io.StringIO(text.decode("utf-8-sig"), newline=""), delimiter=delim, quotechar=quote)
    start = 0
    for n, record in enumerate(reader):
        if n >= header and record and len(record) < width:
            return start, len(record)
        start = reader.line_num
    return None


def _sniff(sniffer: csv.Sniffer, sample: str) -> str:
    try:
        return sniffer.sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","


def sure_delimiter(sample: str) -> str | None:
    """What csv.Sniffer would answer, where that is certain without running it (it is pure
    Python, ~1.5 ms for a 6 KiB file: most of a small file's cost). Sniffer only ever answers a
    candidate that occurs in the sample, else fails (we then take ","). So: none or only "," in
    the sample: ","; only one other, held the same number of times by each of the first ten
    non-empty lines (Sniffer's first consistency round finds it): that one. None: ask Sniffer."""
    present = [d for d in _DELIMITERS if d in sample]
    if present in ([], [","]):
        return ","
    if len(present) > 1:
        return None
    d = present[0]
    lines = [line for line in sample.split("\n") if line][:10]
    k = lines[0].count(d)
    return d if k and all(line.count(d) == k for line in lines) else None


def fix_names(header: list[str]) -> list[str]:
    """Header text is kept as the column name; empty ones become ``column_<n>`` and repeats get
    ``_<k>`` (deterministic, so the same file always maps the same way)."""
    out: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(header):
        name = raw.strip() or f"column_{i + 1}"
        base, k = name, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        out.append(name)
    return out


def _looks_like_header(first: list[str]) -> bool:
    """A header unless the first row looks like data: every field a number or empty."""
    if not first:
        return True
    numeric = 0
    for field in first:
        value = field.strip()
        if not value:
            continue
        try:
            float(value)
            numeric += 1
        except ValueError:
            return True
    return numeric == 0


@register("csv", "tsv")
def _make(src: Source, options: dict) -> CsvReader:
    return CsvReader(src, tsv=options.pop("fmt", "csv") == "tsv", **options)
