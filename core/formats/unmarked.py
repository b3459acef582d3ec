"""An NDJSON file that starts with a UTF-8 byte-order mark (PowerShell's ``Out-File -Encoding
utf8`` writes one): ClickHouse's own JSONEachRow skips it, polars refuses the file. Its content
after the mark goes to an unlinked temporary file, which every pass then parses by path, as a
compressed file's inflated content (Source.inflated); the hash and lineage stay the file's own.
No room for the copy is a full disk (core/resources.py: intake pauses until space returns), as
it says nothing about the file; a copy bigger than the whole disk is refused (no space returning
would make room for it)."""

from __future__ import annotations

import shutil
import tempfile

from chute.core.errors import InputError
from chute.core.formats.spill import RESERVE_SHARE
from chute.core.reader import Inflated, Source, open_binary
from chute.core.resources import TempDirFull, no_space

BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20


def unmark(src: Source) -> bool:
    """Parse ``src`` without its mark from now on; False when the copy fails (the mark gone, a read
    error: the reader then names what it finds). Raises TempDirFull when the temporary directory's
    disk has no room for its content (keeping its reserve, as a spill does), InputError when it
    never could."""
    held = src.inflated
    size = held.size if held is not None else src.st.st_size * (1 if src.compression is None else 6)
    try:
        disk = shutil.disk_usage(tempfile.gettempdir())
    except OSError:
        return False
    need = size + int(RESERVE_SHARE * disk.total)
    if need > disk.total and (held is not None or src.compression is None):  # (a size known, not estimated)
        # No space that could return would ever hold it: a pause would wait for good (and `--once` never end).
        raise InputError(f"the file starts with a UTF-8 byte-order mark and its copy without it ({size >> 20} MiB) "
                         f"cannot fit the temporary directory's disk ({disk.total >> 20} MiB, keeping "
                         f"{RESERVE_SHARE:.0%}) even empty: save it without one, or set TMPDIR to a bigger disk",
                         line=1)
    if disk.free < need:
        raise TempDirFull(f"no room in the temporary directory for a copy of {src.path.name} without its "
                          f"UTF-8 byte-order mark: {size >> 20} MiB needed, {disk.free >> 20} MiB free "
                          f"(keeping {RESERVE_SHARE:.0%} of the disk)", need)
    copy = tempfile.TemporaryFile(prefix="chute-unmarked-")  # noqa: SIM115 - held by Inflated
    total, nul = 0, False
    try:
        with open_binary(src) as raw:
            if raw.read(len(BOM)) != BOM:
                raise OSError("the mark is gone")  # (a file rewritten in between: the plan finds out)
            while chunk := raw.read(_CHUNK):
                copy.write(chunk)
                total += len(chunk)
                nul = nul or chunk.find(b"\x00") >= 0
        copy.flush()
    except (OSError, EOFError, ValueError) as exc:  # (a full disk, or damage the reader names as before)
        copy.close()
        if no_space(exc):
            raise TempDirFull(f"the temporary directory filled up while {src.path.name} was copied without its "
                              f"UTF-8 byte-order mark: {exc}", need) from None
        return False
    src.drop_inflated(force=True)
    src.inflated = Inflated(copy, total, nul, keep=True)
    return True
