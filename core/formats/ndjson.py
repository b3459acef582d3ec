"""Newline-delimited JSON: one object per line. Scalars are typed like CSV fields (lossless
inference over the whole file), nested objects load as JSON text, lists of scalars as arrays."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Callable, Container, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace

import numpy as np
import polars as pl

from chute.core.errors import InputError
from chute.core.formats import register
from chute.core.formats.infer import (
    DEFAULT_NULL_VALUES,
    SMALLEST_NORMAL,
    FileFacts,
    Verdict,
    fifteen_digits,
    looks_like,
    sample_kinds,
    to_wire,
    typed_verdict,
    underflows,
    whole_file,
    whole_frame,
)
from chute.core.formats.ndjson_keys import count_key_tokens, may_prove, proves_keys
from chute.core.formats.ndjson_raw import Found, may_hold_raw, merge, patch, raw_values_of
from chute.core.formats.unmarked import BOM, unmark
from chute.core.reader import Plan, Reader, Source, head_bytes, open_binary, raw_lines

PIECE_BYTES = 8 << 20  # parsed at a time by the in-memory read (_read_text)
PAST_RANGE = "a number past a double's range (1e-400 reads as 0; a subnormal keeps fewer digits): text as written"


class NdjsonReader(Reader):
    def __init__(self, src: Source, null_values: tuple[str, ...] | None = None) -> None:
        super().__init__(src)
        self.null_values = DEFAULT_NULL_VALUES if null_values is None else tuple(null_values)
        self._text = pl.Schema()
        self._escaped_head = False  # the first MiB holds an escaped quote (_only_keys)
        self._piece_rows: list[int] = []  # rows of each piece _read_text parsed
        self._spans: list[tuple[int, int]] = []  # (offset, length) of each piece, once a pass read them all
        self._clean: set[int] = set()  # pieces that write no number below a double's range (_may_underflow)

    def plan(self) -> Plan:
        head = self._head()
        if head.startswith(BOM) and unmark(self.src):
            head = self._head()
        self._escaped_head = b'\\"' in head
        first = self._first_sample(head)
        # The whole-file key scan and the whole-file read cost about the same (~1 s of CPU per
        # 100 MB each): read with the first lines' keys beside the scan, and keep that frame
        # when the scan finds no other key or shape (the exit waits for the read, on any path).
        with ThreadPoolExecutor(1, thread_name_prefix="chute-ndjson") as pool:
            guess = _text_of(first.schema)
            typed = self._typed(first.schema, guess)
            early = pool.submit(self._read_text, typed, guess) if self._in_memory() else None
            self._text = self._text_schema(first, early)
            if early is not None and not _same(guess, self._text):
                wait([early])  # read with other keys: let that frame go before the real read
                early = None
            try:
                sample = pl.read_ndjson(io.BytesIO(head), schema=self._text)
                facts = self._infer(sample, early)
            except (pl.exceptions.PolarsError, OSError, EOFError) as exc:
                raise self.diagnose() or self._input_error(exc) from None
        self._set_verdicts(facts.verdicts)
        self._wire = pl.Schema({c: (facts.verdicts[c].wire if c in facts.verdicts else t)
                                for c, t in self._text.items()})
        nulls = {**facts.nulls, **self._list_nulls()}
        self._sample_distinct(sample)
        self._distinct = {c: r for c, r in self._distinct.items()
                          if c in facts.verdicts and facts.verdicts[c].kind == "text"}
        return self._finish_plan(facts.rows, nulls)

    def _head(self) -> bytes:
        """The first MiB, cut at its last whole line; further, to the first line's end, when that
        line is longer (a part of it read as no object, and the file was refused as one of empty
        objects). check_limits has bounded a record by then; the cap is a second guard."""
        limit = self.SAMPLE_BYTES
        head, complete = head_bytes(self.src, limit)
        while not complete and b"\n" not in head and limit < 1 << 28:
            limit *= 4
            head, complete = head_bytes(self.src, limit)
        if not complete:
            head = head[: head.rfind(b"\n") + 1] or head
        if not head.strip():
            raise InputError("no data: the file has only blank lines" if head else "empty file")
        return head

    def _first_sample(self, head: bytes) -> pl.DataFrame:
        """The first lines as polars types them (only their keys matter)."""
        try:
            sample = pl.read_ndjson(io.BytesIO(head), infer_schema_length=self.INFER_ROWS)
        except (pl.exceptions.ComputeError, pl.exceptions.SchemaError):  # shapes disagree: load as JSON text
            sample = pl.DataFrame(schema={k: pl.String for k in _keys(head.splitlines())})
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise self.diagnose() or self._input_error(exc) from None
        if not sample.columns:
            raise self.diagnose() or InputError("no fields: every line is an empty object")
        return sample

    def _text_schema(self, sample: pl.DataFrame, early: Future[pl.DataFrame] | None = None) -> pl.Schema:
        """Every key of the whole file, read as JSON text (scalars and objects, typed losslessly
        like CSV fields, so the same data gets the same table from either format); lists of
        scalars stay arrays. ``early``: the whole file being read with the first lines' keys."""
        guess = _text_of(sample.schema)
        if all(t == pl.String for t in guess.values()) and self._only_keys(list(guess), early):
            return guess
        try:
            raw = pl.scan_ndjson(self.src.readable, infer_schema_length=None).collect_schema()
        except (pl.exceptions.ComputeError, pl.exceptions.SchemaError):  # no common type: every key, as text
            with open_binary(self.src) as lines:  # (a key first seen past the sample kept too)
                raw = pl.Schema({k: pl.String for k in dict.fromkeys([*sample.columns, *_keys(lines)])})
        except (pl.exceptions.PolarsError, OSError, EOFError) as exc:
            raise self.diagnose() or self._input_error(exc) from None
        return _text_of(raw)

    def _only_keys(self, keys: list[str], early: Future[pl.DataFrame] | None = None) -> bool:
        """Whether the whole file's objects use no key but ``keys`` and hold no list: then the key
        scan (a full JSON parse, ~1 s of CPU per 100 MB) would find the text schema of ``keys``
        again, in this order. First, while ``early`` reads the file with ``keys``: a count of
        ``":`` in the raw bytes against that frame's values (core/formats/ndjson_keys.py, ~0.06 s
        of CPU per 100 MB). Then on the raw lines: every ``":`` in the file must end one of these
        keys' tokens. Anything else (a key written with escapes, whitespace before a colon, ``":``
        inside a string value, any ``[``) answers False, and the key scan runs as before: False
        is always safe.

        A file with no escaped quote (``\\"``) and no whitespace after a quote holds a ``"`` only
        where a string starts or ends, so a key's token is ``"k":`` wherever it stands: the count
        is a search for a few literals (SIMD-fast), a third of the CPU of the anchored pattern the
        other files need (``{"k":`` or ``,"k":``, possibly spaced). Files whose first MiB shows an
        escaped quote go straight to the anchored pattern; the others learn it from this pass."""
        if early is not None and self._counted_keys(keys, early):
            return True
        names = "|".join(_regex_literal(k) for k in keys)
        line = pl.col("line")
        if not self._escaped_head:
            found = self._line_facts(
                line.str.contains("[", literal=True).any().alias("list"),
                line.str.contains('\\"', literal=True).any().alias("escaped"),
                pl.any_horizontal(line.str.contains(f'"{c}', literal=True).any() for c in " \t\r").alias("spaced"),
                line.str.count_matches('":', literal=True).sum().alias("colons"),
                line.str.count_matches(f'"(?:{names})":').sum().alias("known"))
            if found is None or found["list"]:
                return False
            if not found["escaped"]:
                return not found["spaced"] and found["colons"] == found["known"]
        found = self._line_facts(
            line.str.contains("[", literal=True).any().alias("list"),
            line.str.contains(r'"[ \t\r]+:').any().alias("spaced"),
            line.str.count_matches('":', literal=True).sum().alias("colons"),
            line.str.count_matches(r'[{,][ \t\r]*"(?:' + names + r')":').sum().alias("known"))
        return found is not None and not found["list"] and not found["spaced"] and found["colons"] == found["known"]

    def _counted_keys(self, keys: list[str], early: Future[pl.DataFrame]) -> bool:
        """The byte count's proof (beside the read), False when the read failed (the key scan says why)."""
        try:
            tokens = count_key_tokens(self.src.readable, keys)
        except OSError:
            return False
        if not may_prove(tokens, len(keys)):
            return False
        try:
            frame = early.result()
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, EOFError):
            return False
        return proves_keys(tokens, frame)

    def _line_facts(self, *exprs: pl.Expr) -> dict | None:
        """One pass over the file's raw lines; None when they cannot be read (the key scan says why)."""
        try:
            return raw_lines(self.src).select(*exprs).collect(
                engine="auto" if self._in_memory() else "streaming").row(0, named=True)
        except (pl.exceptions.PolarsError, OSError, EOFError):
            return None

    def _typed(self, first: pl.Schema, guess: pl.Schema) -> pl.Schema:
        """``guess`` with the first lines' integer, bool and float columns as polars types them: its
        strict read of an ``Int64`` takes JSON integers within Int64 only, of a ``Boolean`` true and
        false only, which are the texts the lossless inference would find to be exactly these kinds;
        of a ``Float64`` JSON numbers only, checked after the read (infer.fifteen_digits). Issue 12:
        parsing a number into text prints it, and the inference parses it again (1M rows: the
        plan's CPU 1.12 -> 0.90 s). Not where a null token reads as such a value (a route's
        "-999": its rows are NULL)."""
        ok = [dtype for kind, dtype in (("int", pl.Int64), ("bool", pl.Boolean), ("float", pl.Float64))
              if not any(looks_like(kind, t) for t in self.null_values)]
        return pl.Schema({c: (first[c] if t == pl.String and any(first[c] == d for d in ok) else t)
                          for c, t in guess.items()})

    def _read_text(self, schema: pl.Schema, text: pl.Schema | None = None) -> pl.DataFrame:
        """The whole file (held in memory) as one frame, parsed a piece of whole lines at a time:
        polars maps a file it reads by path, and the mapped pages count in the process's RSS
        beside the frame being built (issue 12, 1M rows: the whole process's peak RSS 616 -> 540 MB,
        median of 5, CPU unchanged; 8 MiB pieces: 32 MiB ones cost 0.08 s more CPU, glibc maps
        each afresh). Keeps each piece's rows (_as_written reads only the pieces it needs).

        ``text``: the text schema of ``schema``'s typed columns (_typed). A piece that holds a value
        they do not take is read, as are the pieces after it, with ``text``, and the pieces before are
        cast to it: an integer's or a bool's text is the one polars prints in a text column (a
        float's is not: with a float column, the whole file is read again as text)."""
        parts = []
        for piece in self._pieces():
            if text is not None and not _same(schema, text):
                try:
                    parts.append(pl.read_ndjson(piece, schema=schema))
                    continue
                except pl.exceptions.PolarsError:  # (invalid JSON too: the text read says why)
                    if any(t == pl.Float64 for t in schema.values()):  # (polars casts a float to other text)
                        return self._read_text(text)
                    parts = [part.cast(dict(text)) for part in parts]  # type: ignore[arg-type]
                    schema = text
            parts.append(pl.read_ndjson(piece, schema=schema))
        self._piece_rows = [part.height for part in parts]
        if not parts:
            return pl.read_ndjson(b"", schema=schema)
        return pl.concat(parts, rechunk=False) if len(parts) > 1 else parts[0]

    def _pieces(self, wanted: Container[int] | None = None) -> Iterator[bytes]:
        """The file held in memory (plain, or inflated), PIECE_BYTES of whole lines at a time
        (``wanted``: only these pieces, by index; the others come as b"")."""
        if self.src.compression is not None and self.src.inflated is None:  # (not inflated by the limits check)
            yield from self._streamed_pieces()
            return
        fd = os.open(self.src.readable, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if wanted is not None and self._spans:  # where each piece is, known from a whole pass: read only these
                for index, (at, length) in enumerate(self._spans):
                    yield os.pread(fd, length, at) if index in wanted else b""
                return
            spans: list[tuple[int, int]] = []
            size, offset, want, index = os.fstat(fd).st_size, 0, PIECE_BYTES, 0
            while offset < size:
                piece = os.pread(fd, want, offset)
                if not piece:
                    raise EOFError(f"the file ended at byte {offset} of {size}")
                if offset + len(piece) < size:
                    cut = piece.rfind(b"\n") + 1
                    if not cut:  # a line longer than the piece: read more of it
                        want *= 2
                        continue
                    piece = piece[:cut]
                spans.append((offset, len(piece)))
                offset += len(piece)
                yield piece if wanted is None or index in wanted else b""
                want, index = PIECE_BYTES, index + 1
            self._spans = spans
        finally:
            os.close(fd)

    def _streamed_pieces(self) -> Iterator[bytes]:
        """The file (decompressed), PIECE_BYTES of whole lines at a time, from a stream."""
        with open_binary(self.src) as raw:
            carry = b""
            while chunk := raw.read(PIECE_BYTES):
                cut = chunk.rfind(b"\n") + 1
                if not cut:  # a line longer than the piece
                    carry += chunk
                    continue
                yield carry + chunk[:cut]
                carry = chunk[cut:]
            if carry:
                yield carry

    def _as_written(self, frame: pl.DataFrame, verdicts: dict[str, Verdict],
                    piece: bytes | None = None) -> pl.DataFrame:
        """``frame`` (the file's text frame, or ``piece``'s) with the text columns' numbers, objects
        and arrays as the file writes them (core/formats/ndjson_raw.py), not as polars prints them.
        Only the columns that may hold one take the raw read, and only the lines that may: the
        common file pays a comparison per value."""
        text = [c for c, v in verdicts.items() if v.kind == "text"]
        columns, rows = may_hold_raw(frame, text)
        if not columns:
            return frame
        if piece is not None:
            values, height = raw_values_of(piece, columns, rows)
            found, offset = [(0, values)], height
        elif sum(self._piece_rows) != frame.height:  # (the frame is _read_text's: never seen)
            raise RuntimeError(f"{frame.height} rows read in pieces of {sum(self._piece_rows)}")
        else:
            found, offset = self._raw_of_pieces(columns, rows)
        if offset != frame.height:  # (never seen: polars parsed these bytes as one object a line)
            raise InputError(f"the file holds {offset} objects where the parser read {frame.height} rows")
        return patch(frame, merge(found))

    def _piece_may_underflow(self, index: int, piece: bytes) -> bool:
        """_may_underflow of piece ``index``, each piece looked at once a file (several columns ask)."""
        if index in self._clean:
            return False
        if _may_underflow(piece):
            return True
        self._clean.add(index)
        return False

    def _raw_of_pieces(self, columns: list[str], rows: np.ndarray, look: Callable[[int, bytes], bool] | None = None,
                       ) -> tuple[list[tuple[int, Found]], int]:
        """raw_values_of ``rows`` in the pieces _read_text parsed (each with its first row), and the
        objects counted. ``look``: only in the pieces it passes (the others count their parsed rows)."""
        found: list[tuple[int, Found]] = []
        wanted = set(np.searchsorted(np.cumsum(self._piece_rows), rows, side="right").tolist())
        offset = 0
        for index, piece in enumerate(self._pieces(wanted)):
            height = self._piece_rows[index]
            if index in wanted and (look is None or look(index, piece)):
                here = rows[(rows >= offset) & (rows < offset + height)] - offset
                values, height = raw_values_of(piece, columns, here)
                found.append((offset, values))
            offset += height
        return found, offset

    def _infer(self, sample: pl.DataFrame, early: Future[pl.DataFrame] | None) -> FileFacts:
        """``early``: the whole file read with the right schema already (or failing: read again,
        so the error comes from the final schema)."""
        candidates = sample_kinds(sample, self.null_values)
        if not self._in_memory():
            return whole_file(self._scan(), candidates, self.null_values, streaming=True)
        frame = None
        if early is not None:
            with contextlib.suppress(pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, EOFError):
                frame = early.result()
        if frame is None:
            frame = self._read_text(self._text)
        self._check_frame(frame)
        # Columns read as integers, bools or floats (_typed) are those kinds; the others are text
        # but for the integer columns, cast once for the check (whole_frame): the rest is typed
        # batch by batch, beside the inserts (_raw_batches).
        typed, past, again = self._typed_columns(frame, candidates)
        self._text = pl.Schema({c: pl.String if c in past else t for c, t in self._text.items()})
        if again:  # read those columns as text
            frame = self._read_text(pl.Schema({c: t if c in typed else self._text[c] for c, t in frame.schema.items()}),
                                    self._text)
            self._check_frame(frame)
        facts, self._frame = whole_frame(frame, {c: "text" if c in past else candidates.get(c) for c in frame.columns
                                                 if c not in typed and (c in candidates or c in past)},
                                         self.null_values)
        for c in past:
            facts.verdicts[c] = replace(facts.verdicts[c], why=PAST_RANGE)
        if typed:
            facts.nulls.update(frame.select(pl.col(c).null_count() for c in typed).row(0, named=True))
            facts.verdicts.update(typed)
        self._frame = self._as_written(self._frame, facts.verdicts)
        return facts

    def _typed_columns(self, frame: pl.DataFrame, candidates: dict[str, str | None],
                       ) -> tuple[dict[str, Verdict], set[str], bool]:
        """The columns polars read typed that keep their type (their verdicts); the float columns
        holding a number past a double's range (text, as written); whether any column is read again as text."""
        typed: dict[str, Verdict] = {}
        past: set[str] = set()
        again = False
        for c, t in frame.schema.items():
            kind = _typed_kind(t) if self._text.get(c) == pl.String else None
            if kind is None:  # read as text, a number by its value: 1e-400 is "0" (read raw below); a list
                numbers = t == pl.String and candidates.get(c) in ("int", "float")
                if (numbers or t == pl.List(pl.Float64)) and self._past_range(frame, c):
                    past.add(c)
                    again = again or not numbers  # (a list of them: read again as JSON text)
                continue
            verdict = typed_verdict(kind, candidates.get(c))
            if kind == "float" and self._past_range(frame, c):  # (first: 1, 1e-400 reads as int 1, 0)
                past.add(c)
                again = True
            elif verdict is None or (kind == "float" and not fifteen_digits(frame[c])):
                again = True  # (rare: a float column the text check finds another kind, or text)
            else:
                typed[c] = verdict
        return typed, past, again

    def _past_range(self, frame: pl.DataFrame, c: str) -> bool:
        """Whether float column ``c`` (or a text one of numbers) holds a number a double does not keep
        for want of range: the parser reads 1e-400 as 0 (1e400 it refuses), and a subnormal holds
        fewer than 15 digits. Only values below the smallest normal double can be one, and only in a
        piece that writes an ``e-`` of three digits or 200 fraction zeros (_may_underflow); then
        their texts tell (read raw, as _as_written does). True: the column is read as text, and loads
        as the file writes it.
        (A column of zeros costs a look at its pieces' bytes.)"""
        x = pl.col(c).cast(pl.Float64, strict=False)
        below = (pl.col(c).list.eval(pl.element().abs() < SMALLEST_NORMAL).list.any()
                 if frame.schema[c] == pl.List(pl.Float64) else x.abs() < SMALLEST_NORMAL)
        tiny = np.flatnonzero(frame.select(below.fill_null(False)).to_series().to_numpy())
        if not len(tiny):
            return False
        if sum(self._piece_rows) != frame.height:  # (never seen: the frame is _read_text's)
            return True
        piece_of = np.searchsorted(np.cumsum(self._piece_rows), tiny, side="right")
        tiny = tiny[~np.isin(piece_of, list(self._clean))]  # (another column's look found them clean: not read again)
        found = merge(self._raw_of_pieces([c], tiny, look=self._piece_may_underflow)[0]).get(c) if len(tiny) else None
        if found is None:
            return False
        v = pl.col("v").str.extract_all(_NUMBER).explode()  # (a list's text: its numbers)
        return bool(found[1].to_frame("v").select(underflows(v, v.cast(pl.Float64, strict=False)).any()).item())

    def _list_nulls(self) -> dict[str, int]:
        """NULL counts of the list columns (not inferred)."""
        lists = [c for c in self._text if c not in self.verdicts]
        if not lists:
            return {}
        return (self._frame.lazy() if self._frame is not None else self._scan()).select(
            pl.col(c).null_count() for c in lists).collect().row(0, named=True)

    def _scan(self) -> pl.LazyFrame:
        return pl.scan_ndjson(self.src.readable, schema=self._text)

    def _stream(self, batch_rows: int) -> Iterator[pl.DataFrame]:
        """The file a piece at a time (each piece's text columns as written: _as_written). The
        integer, bool and float columns without null tokens are read as their type, strictly (a
        value the text check passed parses to the double or integer its cast gives); a piece where
        that fails is read as text and cast (to_wire), as before."""
        typed = self._typed_wire(self.verdicts)
        for piece in self._streamed_pieces():
            df = None
            if not _same(typed, self._text):
                with contextlib.suppress(pl.exceptions.PolarsError):  # (the text read says why, if it is the data)
                    df = pl.read_ndjson(piece, schema=typed)
            if df is None:
                df = pl.read_ndjson(piece, schema=self._text)
            yield to_wire(self._as_written(df, self.verdicts, piece), self.verdicts, self.null_values)

    def _typed_wire(self, verdicts: dict[str, Verdict]) -> pl.Schema:
        """The text schema with the integer, bool and float columns as their wire type, but those
        with null tokens (a token that is a number, "-999", must become NULL, not a value)."""
        return pl.Schema({c: (v.wire if (v := verdicts.get(c)) is not None and not v.tokens
                              and v.kind in ("int", "bool", "float") else t) for c, t in self._text.items()})

    def _raw_batches(self, batch_rows: int) -> Iterator[pl.DataFrame]:
        batches = super()._raw_batches(batch_rows)
        if self._frame is None:  # streamed: typed in _stream
            return batches
        return (to_wire(df, self.verdicts, self.null_values) for df in batches)

    def diagnose(self) -> InputError | None:
        try:
            with open_binary(self.src) as raw:
                for lineno, line in enumerate(raw, 1):
                    if not line.strip():
                        continue
                    if line.startswith(BOM):  # (json.loads would skip it: polars does not)
                        return _marked(lineno, unmarked=self.src.inflated is not None and self.src.inflated.keep)
                    try:
                        value = json.loads(line, parse_float=_finite, parse_constant=_no_constant)
                    except _Unreadable as exc:
                        return InputError(f"line {lineno}: {exc}", line=lineno)
                    except (UnicodeDecodeError, ValueError) as exc:
                        return InputError(f"line {lineno} is not valid JSON: {str(exc)[:120]}", line=lineno)
                    if not isinstance(value, dict):
                        return InputError(f"line {lineno} is a JSON {type(value).__name__}, not an object",
                                          line=lineno)
        except (OSError, EOFError) as exc:
            return self._input_error(exc)
        return None


class _Unreadable(ValueError):
    """A value Python's JSON parser takes and polars refuses."""


def _finite(text: str) -> float:
    """A JSON number polars reads: Python's parser takes 1e400 as infinity, polars refuses it."""
    value = float(text)
    if math.isinf(value):
        raise _Unreadable(f"the number {text[:40]} is beyond a double's range, which the reader cannot read "
                          "(write it as a string)")
    return value


def _no_constant(text: str) -> float:
    """NaN and Infinity are not JSON: Python's parser takes them, polars refuses them."""
    raise _Unreadable(f"{text} is not a JSON value (write it as a string or null)")


def _typed_kind(dtype: pl.DataType) -> str | None:
    """The inference kind of a column a strict typed read gave (NdjsonReader._typed)."""
    return "int" if dtype == pl.Int64 else "bool" if dtype == pl.Boolean else "float" if dtype == pl.Float64 else None


def _keys(lines: Iterable[bytes]) -> list[str]:
    """Every key of the lines' objects, in order of appearance (slow path: shapes disagree)."""
    keys: dict[str, None] = {}
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            keys.update(dict.fromkeys(value))
    return list(keys)


_NUMBER = r"-?[0-9][0-9.]*([eE][-+]?[0-9]+)?"


def _may_underflow(piece: bytes) -> bool:
    """Whether ``piece`` may write a number below the smallest normal double (2.2e-308): one needs
    an exponent ``e-`` of three digits and more, or 200 zeros and more after a point (0.000...0001
    writes no exponent). An ``e-`` in text (an e-mail) or 1e-99 costs no raw look at the piece's zeros.
    (numpy: ~10 ms per 8 MiB piece; bytes' search for the zeros ~1 ms.)"""
    if _FRACTION_ZEROS in piece:
        return True
    b = np.frombuffer(piece, dtype=np.uint8)
    dash = np.flatnonzero(b[1:-3] == ord("-")) + 1  # (one byte before it, three after)
    dash = dash[(b[dash - 1] | 0x20) == ord("e")]
    return bool(((b[dash + 1] - 48 < 10) & (b[dash + 2] - 48 < 10) & (b[dash + 3] - 48 < 10)).any())


# Below 2.2e-308 a number writes 308 zeros before its first digit, counting its exponent's: under
# 200 after the point, its e- has three digits
_FRACTION_ZEROS = b"." + b"0" * 200


def _regex_literal(key: str) -> str:
    """A key as its plain JSON text, as a regex literal (other spellings of it do not match: safe)."""
    raw = json.dumps(key, ensure_ascii=False)[1:-1]
    return "".join(f"\\{c}" if c in _REGEX_META else c for c in raw)


_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~ ")


def _text_of(raw: pl.Schema) -> pl.Schema:
    return pl.Schema({c: _list_type(t) for c, t in raw.items()})


def _same(a: pl.Schema, b: pl.Schema) -> bool:
    """Same names, order and types (a Schema compares as a dict: without order)."""
    return list(a.items()) == list(b.items())


def _list_type(dtype: pl.DataType) -> pl.DataType:
    """Lists of scalars stay lists (a list that is always empty or null holds text); anything
    else is read as text."""
    if isinstance(dtype, pl.List) and not isinstance(dtype.inner, pl.Struct | pl.List):
        return pl.List(pl.String) if dtype.inner == pl.Null else dtype
    return pl.String()


@register("ndjson")
def _make(src: Source, options: dict) -> NdjsonReader:
    return NdjsonReader(src, null_values=options.get("null_values"))


def _marked(lineno: int, unmarked: bool) -> InputError:
    """A UTF-8 byte-order mark the copy without the file's first one (core/formats/unmarked.py)
    does not take away: a second one, one on a later line (files joined), or a copy that failed."""
    if lineno > 1:
        return InputError(f"line {lineno} starts with a UTF-8 byte-order mark (files joined together?): "
                          "only the file's start may hold one", line=lineno)
    if unmarked:
        return InputError("the file starts with two UTF-8 byte-order marks: save it with one at most", line=1)
    return InputError("the file starts with a UTF-8 byte-order mark and no copy without it could be made "
                      "(see the log): save it without one", line=1)
