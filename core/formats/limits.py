"""Bounded memory: a file whose one record, or whose decompressed size, would blow up memory is
quarantined with the reason and the line before any parser sees it.

The parsers (polars) hold a record, and a decompressed file that goes the in-memory path, whole.
So: a per-record limit (the longest line, measured with numpy on the decompressed bytes, never
per line in Python) and a decompression-ratio guard (a 1 MB gzip that inflates to 1 GiB). Plain
files smaller than the record limit cannot hold an oversized record and are not scanned at all,
so the common case costs nothing.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, cast

import numpy as np
from humanize import naturalsize
from isal import isal_zlib

from chute.core.errors import InputError
from chute.core.reader import Inflated, Reader, Source

MAX_RECORD_BYTES = 64 << 20  # one line of text (a CSV record without quoted newlines, an NDJSON object)
MAX_RATIO = 100  # decompressed / compressed size ...
RATIO_FLOOR = 256 << 20  # ... checked only once the output passes this size: small bombs are harmless
_CHUNK = 4 << 20
_ISAL_ERROR = cast(type[Exception], isal_zlib.error)  # (its stub declares an instance)


def check_limits(src: Source, max_record: int = MAX_RECORD_BYTES, max_ratio: int = MAX_RATIO,
                 text: bool = True) -> None:
    """Raise InputError (a quarantine) when a record or the decompression ratio is over its limit."""
    if src.compression is None:
        if text and max_record and src.st.st_size > max_record:
            _scan(_plain_chunks(src), max_record, None, again=lambda: _plain_chunks(src))
        return
    allowed = max(RATIO_FLOOR, src.st.st_size * max_ratio) if max_ratio else None
    # A file the readers parse in memory anyway is kept as it is inflated here, so that no parser
    # inflates it again (src.inflated); past the in-memory size it is let go and the readers
    # stream the file as before.
    keep = src.st.st_size * 6 <= Reader.IN_MEMORY_BYTES  # (the readers' own estimate, Reader._in_memory)
    sink = _Sink() if keep else None
    try:
        src.text_size = _scan(_decompressed_chunks(src), max_record if text else 0, allowed, max_ratio, sink,
                              again=lambda: _decompressed_chunks(src))
    except BaseException:
        if sink is not None:
            sink.drop()
        raise
    src.drop_inflated()
    src.inflated = sink.done() if sink is not None else None


class _Sink:
    """The inflated bytes, written to an unlinked temporary file as they come (Source.inflated).
    Bounded by the in-memory size, like the bytes it replaces: past it, or when the disk refuses
    it, it is let go and the readers inflate the file themselves."""

    def __init__(self) -> None:
        self.file: BinaryIO | None = None
        self.size = 0
        self.nul = False

    def add(self, chunk: bytes) -> None:
        if self.size < 0:
            return  # let go
        self.size += len(chunk)
        if self.size > Reader.IN_MEMORY_BYTES:
            self.drop()
            return
        try:
            if self.file is None:
                self.file = tempfile.TemporaryFile(prefix="chute-inflated-")  # noqa: SIM115 - held by Inflated
            self.file.write(chunk)
        except OSError:  # (a full disk: the readers' own inflation needs none)
            self.drop()
            return
        self.nul = self.nul or chunk.find(b"\x00") >= 0

    def drop(self) -> None:
        if self.file is not None:
            self.file.close()
        self.file, self.size = None, -1

    def done(self) -> Inflated | None:
        if self.file is None:
            return None
        try:
            self.file.flush()
        except OSError:
            self.drop()
            return None
        return Inflated(self.file, self.size, self.nul)


def _scan(chunks: Iterator[bytes], max_record: int, max_total: int | None, ratio: int = 0,
          sink: _Sink | None = None, *, again: Callable[[], Iterator[bytes]]) -> int:
    """Each chunk goes to ``sink`` (when given) once the limits pass it. Returns the bytes read.

    Records are checked by their ends only (:func:`_run_after`); a record found over the limit
    is then located exactly by :func:`_exact` over ``again()``, the same bytes from the start."""
    total = 0
    run: int | None = 0  # bytes since the last newline
    for chunk in chunks:
        total += len(chunk)
        if max_total is not None and total > max_total:
            raise InputError(f"decompresses to over {max_total >> 20} MiB, more than {ratio}x its compressed "
                             "size (decompression-ratio guard against zip bombs)")
        if max_record:
            run = _run_after(chunk, run or 0, max_record)
            if run is None:
                _exact(again(), max_record)  # raises, with the record's line
                raise InputError(f"a record is over {naturalsize(max_record, binary=True)}, beyond the limit per "
                                 "record (max_record_bytes)")
        if sink is not None:
            sink.add(chunk)
    return total


def _run_after(chunk: bytes, run: int, limit: int) -> int | None:
    """Bytes since the last newline once ``chunk`` (which follows ``run`` such bytes) is read, or
    None when a record ending in it, or still open, is over ``limit``. A record between two of its
    newlines is shorter than the chunk, so in a chunk no longer than the limit only its ends count:
    two memchr calls instead of a look at every byte (numpy: ~0.1 s of CPU per 64 MB, 1.5 s for a
    1 GB CSV)."""
    first = chunk.find(b"\n")
    if first < 0:
        run += len(chunk)
        return run if run <= limit else None
    if run + first > limit:
        return None
    if len(chunk) > limit:  # (a limit below the chunk size: the records inside count too)
        nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
        if len(nl) > 1 and int(np.diff(nl).max()) - 1 > limit:
            return None
    run = len(chunk) - chunk.rfind(b"\n") - 1
    return run if run <= limit else None


def _exact(chunks: Iterator[bytes], max_record: int) -> None:
    """Every byte looked at: raise the first record over the limit with its line number."""
    line = 1
    run = 0  # bytes since the last newline
    for chunk in chunks:
        nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
        if not len(nl):
            run += len(chunk)
        else:
            longest = max(run + int(nl[0]), int(np.diff(nl).max()) - 1 if len(nl) > 1 else 0)
            if longest > max_record:
                at = line if run + int(nl[0]) > max_record else line + 1 + int(np.argmax(np.diff(nl)))
                raise _too_long(at, longest, max_record)
            line += len(nl)
            run = len(chunk) - int(nl[-1]) - 1
        if run > max_record:
            raise _too_long(line, run, max_record)


def _too_long(line: int, size: int, limit: int) -> InputError:
    return InputError(f"record at line {line} is over {naturalsize(size, binary=True)}, beyond the limit of "
                      f"{naturalsize(limit, binary=True)} per record (max_record_bytes)", line=line)


def _plain_chunks(src: Source) -> Iterator[bytes]:
    offset = 0
    while offset < src.st.st_size:
        chunk = os.pread(src.fd, _CHUNK, offset)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk


def _decompressed_chunks(src: Source) -> Iterator[bytes]:
    try:
        if src.compression == "gzip":
            yield from _gunzip(src)
        else:
            yield from _coalesced(_unzstd(src))
    except (zlib.error, _ISAL_ERROR, OSError, EOFError, ValueError) as exc:
        raise InputError(f"truncated or corrupt {src.compression} data: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("zstandard"):
            raise InputError(f"truncated or corrupt {src.compression} data: {exc}") from None
        raise


def _compressed(src: Source) -> Iterator[bytes]:
    """The file's bytes as it was opened, 1 MiB at a time (pread: the descriptor's offset is not ours)."""
    offset = 0
    while offset < src.st.st_size:
        data = os.pread(src.fd, 1 << 20, offset)
        if not data:
            return
        offset += len(data)
        yield data


def _gunzip(src: Source) -> Iterator[bytes]:
    """Every member of a (possibly multi-member) gzip file, output bounded per step. A stream cut
    short is an error here, not a shorter content (parsers read what this yields: Source.inflated).
    ISA-L's inflate (isal): the same bytes and checks as zlib's, in 0.05 s of CPU where zlib took
    0.13 s (1M-row CSV.gz, 64 MB)."""
    d = isal_zlib.decompressobj(wbits=31)
    fed = False  # whether the current member's decompressor has had input
    for data in _compressed(src):
        while data:
            fed = True
            out = d.decompress(data, _CHUNK)
            if out:
                yield out
            data = d.unconsumed_tail
            if d.eof:  # the rest of this input is the next member's (and only there: zlib may
                # leave it in the unconsumed tail too, which read twice loaded the member twice)
                data = d.unused_data
                d, fed = isal_zlib.decompressobj(wbits=31), False
    if fed and not d.eof:
        out = d.flush()  # output held back by the per-step bound
        if out:
            yield out
        if not d.eof:
            raise EOFError("the gzip stream ends before its end-of-stream marker")


# zstd's output per input byte is bounded (an RLE block: 128 KiB from 4 bytes), so input fed in
# steps this small bounds each step's output (32 MiB) before the ratio guard looks at it.
_ZSTD_STEP = 1 << 10


def _unzstd(src: Source) -> Iterator[bytes]:
    """Every frame of a zstd file. A frame cut short is an error (its stream reader would end quietly)."""
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    d = dctx.decompressobj()
    fed = False
    for data in _compressed(src):
        view = memoryview(data)
        for i in range(0, len(data), _ZSTD_STEP):
            piece: bytes | memoryview = view[i:i + _ZSTD_STEP]
            while piece:
                fed = True
                out = d.decompress(piece)
                if out:
                    yield out
                piece = b""
                if d.eof:
                    piece = d.unused_data
                    d, fed = dctx.decompressobj(), False
    if fed and not d.eof:
        raise EOFError("the zstd stream ends inside a frame")


def _coalesced(parts: Iterator[bytes]) -> Iterator[bytes]:
    """Small outputs gathered into chunks of about _CHUNK (the record scan costs per chunk)."""
    held: list[bytes] = []
    size = 0
    for part in parts:
        held.append(part)
        size += len(part)
        if size >= _CHUNK:
            yield b"".join(held)
            held, size = [], 0
    if held:
        yield b"".join(held)
