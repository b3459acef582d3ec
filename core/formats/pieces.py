"""Delimited text cut into pieces at record boundaries, so that a file is parsed once, a piece at
a time, and each piece can be typed and let go before the next (issue 12: one parse, peak RSS).

A newline ends a record unless it is inside a quoted field, and in RFC 4180 text a position is
inside one exactly when an odd number of quote characters come before it. That holds only if
every quote sits where the grammar allows it, which is checked (with numpy, only over chunks that
hold quotes): a quote opening a field (an even number before it) follows a delimiter, a newline,
the start or another quote (an escaped pair), and a quote closing one (an odd number before it)
precedes a delimiter, a line end, the end or another quote. Any other quote (``27" wide``), and
anything else this module cannot cut with certainty, raises :class:`Uncuttable`: the caller
parses the file whole, as before.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import numpy as np

from chute.core.errors import FileChanged
from chute.core.reader import Source

PIECE_BYTES = 4 << 20
_NL, _CR, _QUOTE = 10, 13, 34
T = TypeVar("T")


class Uncuttable(Exception):
    """Record boundaries are not certain (a quote out of place): parse the file whole."""


def _quotes_at(chunk: bytes, scratch: np.ndarray) -> np.ndarray:
    """Offsets of the quote characters in ``chunk`` (most chunks of most files hold none).
    ``scratch``: a reused buffer for the comparison (a fresh one per chunk page-faults its memory
    in again: half the cost)."""
    if b'"' not in chunk:
        return np.empty(0, dtype=np.int64)
    if len(scratch) < len(chunk):
        scratch = np.empty(len(chunk), dtype=bool)
    hits = scratch[:len(chunk)]
    np.equal(np.frombuffer(chunk, dtype=np.uint8), _QUOTE, out=hits)
    return np.flatnonzero(hits)


class _Text:
    """The text read so far and not yet handed on: chunks, each with its quotes' offsets, and the
    quote state where it starts (quotes before it, the byte before it)."""

    def __init__(self, delimiter: str, quote: str, bom: bool) -> None:
        if len(delimiter.encode()) != 1 or quote != '"':
            raise Uncuttable(f"delimiter {delimiter!r}, quote {quote!r}")
        self.delim = delimiter.encode()[0]
        self.chunks: list[tuple[bytes, np.ndarray]] = []
        self.size = 0
        self.count = 0  # quotes before the text held
        self.prev = _NL  # the byte before it (the start of the text counts as a line start)
        self.start = 3 if bom else 0  # where the first field starts (after a byte-order mark)
        self.scratch = np.empty(0, dtype=bool)

    def add(self, chunk: bytes) -> None:
        if chunk:
            if len(self.scratch) < len(chunk):
                self.scratch = np.empty(len(chunk), dtype=bool)
            self.chunks.append((chunk, _quotes_at(chunk, self.scratch)))
            self.size += len(chunk)

    def cut(self, size: int) -> bytes | None:
        """The held text up to the last record boundary within ``size`` bytes (else within what
        is held), checked; None when there is none yet."""
        at = self._boundary(size)
        if at is None:
            return None
        i, end = at
        last, quotes = self.chunks[i]
        split = int(np.searchsorted(quotes, end))
        head = [*self.chunks[:i], (last[:end], quotes[:split])]
        tail = [(last[end:], quotes[split:] - end)] if end < len(last) else []
        self.chunks = tail + self.chunks[i + 1:]
        piece = self._check(head, final=False)
        self.size -= len(piece)
        return piece

    def rest(self) -> bytes:
        """Everything held, as the last piece of the file."""
        piece = self._check(self.chunks, final=True)
        self.chunks, self.size = [], 0
        return piece

    def _boundary(self, size: int) -> tuple[int, int] | None:
        """(chunk index, offset just after its newline) of the last newline outside quotes, not
        followed by another line end, at or before ``size`` bytes (else before the end of what is
        held); None when there is none."""
        starts, total = [], 0
        for chunk, _ in self.chunks:
            starts.append(total)
            total += len(chunk)
        odd_before = []  # quote parity at each chunk's start
        parity = self.count & 1
        for _, quotes in self.chunks:
            odd_before.append(parity)
            parity ^= len(quotes) & 1
        for limit in sorted({min(size, total - 1), total - 1}):
            tries = 0
            i = next(j for j in range(len(self.chunks) - 1, -1, -1) if starts[j] <= max(limit - 1, 0))
            pos = limit - starts[i]
            while i >= 0 and tries < 64:
                chunk, quotes = self.chunks[i]
                nl = chunk.rfind(b"\n", 0, pos)
                if nl < 0:
                    i -= 1
                    pos = len(self.chunks[i][0]) if i >= 0 else 0
                    continue
                tries += 1
                odd = odd_before[i] ^ (int(np.searchsorted(quotes, nl)) & 1)
                nxt = self._byte(i, nl + 1)
                if not odd and nxt is not None and nxt not in (_NL, _CR):
                    return i, nl + 1
                pos = nl
        return None

    def _byte(self, i: int, offset: int) -> int | None:
        while i < len(self.chunks):
            chunk = self.chunks[i][0]
            if offset < len(chunk):
                return chunk[offset]
            offset -= len(chunk)
            i += 1
        return None

    def _check(self, parts: list[tuple[bytes, np.ndarray]], final: bool) -> bytes:
        """The parts as one piece, once every quote in them is where the grammar allows it."""
        for k, (chunk, quotes) in enumerate(parts):
            if len(quotes):
                arr = np.frombuffer(chunk, dtype=np.uint8)
                before = np.where(quotes > 0, arr[np.maximum(quotes - 1, 0)], self.prev)
                if self.start:
                    before = np.where(quotes == self.start, _NL, before)
                ends = quotes + 1 >= len(chunk)
                after = arr[np.minimum(quotes + 1, len(chunk) - 1)]
                if ends.any():  # a quote ending a part: the next byte is the next part's first (or the end)
                    nxt = parts[k + 1][0][:1] if k + 1 < len(parts) else b""
                    after = np.where(ends, nxt[0] if nxt else _NL, after)
                opens = ((self.count + np.arange(len(quotes))) & 1) == 0
                ok_open = (before == self.delim) | (before == _NL) | (before == _QUOTE)
                ok_close = (after == self.delim) | (after == _NL) | (after == _CR) | (after == _QUOTE)
                if not bool(np.all(np.where(opens, ok_open, ok_close))):
                    raise Uncuttable("a quote out of place")
                self.count += len(quotes)
            if chunk:
                self.prev, self.start = chunk[-1], 0
        if final and self.count % 2:
            raise Uncuttable("a quoted field never closes")
        return b"".join(chunk for chunk, _ in parts)


def record_pieces(chunks: Iterator[bytes], delimiter: str, quote: str = '"',
                  size: int | None = None, bom: bool = False) -> Iterator[bytes]:
    """The text of ``chunks`` again, as pieces of whole records of about ``size`` bytes: each
    piece but the last ends with a newline, and none but the first starts with a line end (polars
    takes a piece's first line for its width, and a blank one has none). ``bom``: the text starts
    with a UTF-8 byte-order mark (its three bytes are no field's)."""
    size = size or PIECE_BYTES
    text = _Text(delimiter, quote, bom)
    for chunk in chunks:
        text.add(chunk)
        while text.size >= size:
            piece = text.cut(size)
            if piece is None:
                break
            yield piece
    if text.size:
        yield text.rest()


class PieceFeed(Generic[T]):
    """Pieces of a file parsed as text on a thread of its own, one piece ahead of the caller
    (polars releases the GIL: the next piece parses while the caller types the last; no more, each
    one held is memory). Iterate in file order; a failure of the cut or the parse is raised there;
    :meth:`close` stops it."""

    def __init__(self, chunks: Iterator[bytes], parse: Callable[[bytes, bool], T], delimiter: str,
                 quote: str, bom: bool, size: int | None = None) -> None:
        self._ready: queue.SimpleQueue[T | BaseException | None] = queue.SimpleQueue()
        self._turn = threading.Semaphore(1)  # taken to parse a piece, given back when the caller takes it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(chunks, parse, delimiter, quote, bom, size),
                                        name="chute-pieces", daemon=True)
        self._thread.start()

    def _run(self, chunks: Iterator[bytes], parse: Callable[[bytes, bool], T], delimiter: str,
             quote: str, bom: bool, size: int | None) -> None:
        try:
            cut = record_pieces(chunks, delimiter, quote, size, bom)
            first = True
            while self._wait_turn():
                piece = next(cut, None)
                if piece is None:
                    break
                parsed = parse(piece, first)
                del piece
                self._ready.put(parsed)
                first = False
            self._ready.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread as is
            self._ready.put(exc)

    def _wait_turn(self) -> bool:
        while not self._stop.is_set():
            if self._turn.acquire(timeout=0.05):
                return True
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            self._turn.release()  # (the next piece parses while this one is typed)
            yield item
            del item

    def close(self) -> None:
        """Stop reading (idempotent); returns once the thread has let go of the file."""
        self._stop.set()
        self._thread.join()


def text_chunks(src: Source, size: int = 4 << 20) -> Iterator[bytes]:
    """The file's text from the start, decompressed: from the inflated copy when there is one."""
    if src.compression is not None and src.inflated is None:
        from chute.core.formats.limits import _decompressed_chunks

        yield from _decompressed_chunks(src)
        return
    inflated = src.inflated
    fd, total = (inflated.file.fileno(), inflated.size) if inflated is not None else (src.fd, src.st.st_size)
    offset = 0
    while offset < total:
        data = os.pread(fd, min(size, total - offset), offset)
        if not data:
            raise FileChanged("file shrank while it was read")
        offset += len(data)
        yield data
