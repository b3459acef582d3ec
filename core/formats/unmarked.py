"""An NDJSON file that starts with a UTF-8 byte-order mark (PowerShell's ``Out-File -Encoding
utf8`` writes one): ClickHouse's own JSONEachRow skips it, polars refuses the file. Its content
after the mark goes to an unlinked temporary file, which every pass then parses by path, as a
compressed file's inflated content (Source.inflated); the hash and lineage stay the file's own."""

from __future__ import annotations

import shutil
import tempfile

from chute.core.formats.spill import RESERVE_SHARE
from chute.core.reader import Inflated, Source, open_binary

BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20


def unmark(src: Source) -> bool:
    """Parse ``src`` without its mark from now on; False when the temporary directory's disk has
    no room for its content (keeping its reserve, as a spill does) or the copy fails."""
    held = src.inflated
    size = held.size if held is not None else src.st.st_size * (1 if src.compression is None else 6)
    try:
        disk = shutil.disk_usage(tempfile.gettempdir())
    except OSError:
        return False
    if disk.free - size < RESERVE_SHARE * disk.total:
        return False
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
    except (OSError, EOFError, ValueError):  # (a full disk, or damage the reader names as before)
        copy.close()
        return False
    src.drop_inflated(force=True)
    src.inflated = Inflated(copy, total, nul, keep=True)
    return True
