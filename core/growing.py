"""Growing files: a new version that starts with a loaded version's exact bytes loads only
the records appended after them (issue 11).

The conditions: plain (uncompressed) CSV, TSV or NDJSON; the newest loaded version at the path
(the base) ended on a record boundary (a newline); and the new content's first ``base.size``
bytes hash to the base's sha256. Then the appended bytes, behind the CSV's header line, are
copied into an unlinked temporary file in the state dir and read like any file. Their rows:

- ``_source_sha256`` is the sha256 of the whole new file (the version that brought them in),
  so ``count()`` per sha and path verifies exactly this version's rows, its tokens
  (``<sha>:<B>:<i>``) are its own, and purging it removes only what it added;
- ``_source_row`` continues from the rows before it (``row_base``), so a path's rows are
  numbered 1..N across all its versions.

The decision is fixed in the ledger (``base_id``, ``byte_base``, ``row_base``) before the
first insert, so a restart resends the same batches; a version that already sent batches as
a whole file stays a whole file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from chute.core.errors import FileChanged
from chute.core.formats.delimited import CsvReader
from chute.core.ledger import FileRow, Ledger
from chute.core.reader import Reader, Source, head_bytes
from chute.core.routing import Route
from chute.core.states import State

APPENDABLE_FORMATS = ("csv", "tsv", "ndjson")
_CHUNK = 4 << 20


class Append:
    """What a version loads: the whole file (inactive) or the records after ``byte_base``."""

    def __init__(self, ledger: Ledger, row: FileRow, state_dir: Path) -> None:
        self.ledger = ledger
        self.row = row
        self.state_dir = state_dir
        self.base: FileRow | None = None
        self.sha256: str | None = None  # of the whole file, when active
        self.csv_opts: dict | None = None
        self._part: Source | None = None
        self._header = b""  # the header record copied in front of the appended records
        self._base_lines: int | None = None  # lines of the base's bytes, once counted

    @property
    def active(self) -> bool:
        return self.base is not None

    def __enter__(self) -> Append:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._part is not None:
            self._part.close()

    def prepare(self, src: Source, opts: Route, sent: bool) -> Source:
        """The source to read: ``src`` itself, or the appended records of it. ``sent``: batches
        of this version were already sent (so its earlier decision stands)."""
        base = self._base(src, sent)
        if base is None:
            return src
        whole, prefix_ok = _hash_with_prefix(src, base.size or 0, base.sha256 or "")
        if not prefix_ok:
            if self.row.base_id is not None:  # same identity as when decided: cannot happen short of damage
                raise FileChanged(f"{src.path.name} no longer starts with the content of version #{base.id}")
            return src
        self.base, self.sha256 = base, whole
        header = b""
        if self.row.fmt in ("csv", "tsv"):
            dialect = CsvReader(src, tsv=self.row.fmt == "tsv", delimiter=opts.delimiter, header=opts.header)
            dialect._dialect(*head_bytes(src, CsvReader.SAMPLE_BYTES))
            self.csv_opts = {"delimiter": dialect.delimiter, "header": bool(dialect.header)}
            if dialect.header:
                header = _first_record(os.pread(src.fd, 1 << 20, 0), dialect.quote)
                if not header:  # (no header's end in the first MiB: the file loads whole)
                    self.base = self.sha256 = self.csv_opts = None
                    return src
        self._header = header
        self._part = _tail(src, base.size or 0, header, self.state_dir)
        return self._part

    def record_lines(self, src: Source, reader: Reader) -> Callable[[list[int]], list[int]]:
        """The line in the whole file each record of ``reader`` starts on (Fitter ``lines``)."""
        if self.base is None:
            return reader.record_lines
        return lambda records: [line + self.lines_before(src) for line in reader.record_lines(records)]

    def lines_before(self, src: Source) -> int:
        """What a line of the appended part (its header copied in front) is behind in the whole
        file: the base's lines, which are more than its records where a quoted field spans lines,
        less the copied header's. Counted once, only when something is named by its line."""
        if self.base is None:
            return 0
        if self._base_lines is None:
            self._base_lines = _newlines(src, self.byte_base)
        return self._base_lines - self._header.count(b"\n")

    @property
    def byte_base(self) -> int:
        return (self.base.size or 0) if self.base else 0

    @property
    def row_base(self) -> int:
        return (self.base.row_base + (self.base.rows or 0)) if self.base else 0

    def _base(self, src: Source, sent: bool) -> FileRow | None:
        row = self.row
        if row.base_id is not None:
            return self.ledger.get(row.base_id)
        if sent or row.compression or row.fmt not in APPENDABLE_FORMATS:
            return None
        loaded = [v for v in self.ledger.versions(row.path) if v.id < row.id and v.state == State.LOADED]
        if not loaded:
            return None
        base = loaded[-1]
        size = base.size or 0
        if not base.sha256 or base.rows is None or not 0 < size < src.st.st_size:
            return None
        if os.pread(src.fd, 1, size - 1) != b"\n":  # the base ended mid-record: not an append
            return None
        return base


def _first_record(head: bytes, quote: str | None) -> bytes:
    """The header record's bytes, its line end included: a quoted name can span lines. b"" where
    it does not end in ``head``."""
    mark = ord(quote) if quote else -1
    inside = False
    for i, byte in enumerate(head):  # (a header: a few hundred bytes)
        if byte == mark:
            inside = not inside  # (a doubled quote inside toggles twice)
        elif byte == 0x0A and not inside:
            return head[:i + 1]
    return b""


def _newlines(src: Source, size: int) -> int:
    """Line ends in the first ``size`` bytes of ``src`` (the base ends on one)."""
    count, offset = 0, 0
    while offset < size:
        chunk = os.pread(src.fd, min(_CHUNK, size - offset), offset)
        if not chunk:
            break
        count += chunk.count(b"\n")
        offset += len(chunk)
    return count


def _hash_with_prefix(src: Source, prefix: int, want: str) -> tuple[str, bool]:
    """(sha256 of the whole file, whether its first ``prefix`` bytes hash to ``want``): one pass."""
    h = hashlib.sha256()
    offset, size, ok = 0, src.st.st_size, False
    while offset < size:
        step = min(_CHUNK, size - offset, prefix - offset if offset < prefix else _CHUNK)
        chunk = os.pread(src.fd, step, offset)
        if not chunk:
            break
        h.update(chunk)
        offset += len(chunk)
        if offset == prefix:
            ok = h.copy().hexdigest() == want
    return h.hexdigest(), ok


def _tail(src: Source, start: int, header: bytes, state_dir: Path) -> Source:
    """An unlinked file holding ``header`` + the bytes of ``src`` from ``start`` (copied in the kernel)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=state_dir, prefix=".append-")
    os.unlink(name)  # nothing to clean up after a crash
    try:
        os.write(fd, header)
        offset, end = start, src.st.st_size
        while offset < end:
            try:
                n = os.copy_file_range(src.fd, fd, end - offset, offset)
            except OSError:  # (EXDEV and friends on older kernels) copy through userspace
                n = os.write(fd, os.pread(src.fd, min(_CHUNK, end - offset), offset))
            if n == 0:
                break
            offset += n
        if offset != end:
            raise FileChanged(f"{src.path.name} shrank while its appended records were copied")
        return Source(path=src.path, fd=fd, st=os.fstat(fd), compression=None)
    except BaseException:
        os.close(fd)
        raise
