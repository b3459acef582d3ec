"""A big file's typed pieces, kept on disk between the one parse and the batches (issue 12: a file
over the in-memory size was parsed twice, once to infer its types and once for its batches).

The pieces go into an Arrow IPC stream in an unlinked temporary file as they are typed, and the
batches read them back: reading Arrow costs a copy, where parsing CSV again cost the whole parse.
The file is in the page cache, which is not the process's memory, and goes with its last reader.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

import polars as pl
import pyarrow as pa

_IN_MEMORY_FS = {"tmpfs", "ramfs", "devtmpfs", "unknown"}
# The disk the pieces go to is often ClickHouse's and the ledger's too. room() judges a compressed
# file by an estimate of its text (6x): a file that inflates further would fill the disk. The
# writes stop (and the file takes the streamed path, two parses, nothing on disk) when the free
# space falls below this share of the disk, checked every CHECK_BYTES written.
RESERVE_SHARE = 0.05
CHECK_BYTES = 32 << 20


class SpillReadError(RuntimeError):
    """Reading the pieces back from chute's own temporary file failed (a disk fault, not the
    input's): neither an OSError nor an Arrow error, so the reader does not report it as bad input
    and the loader retries the file (or pauses intake on a full disk)."""


def _fs_type(path: str) -> str:
    """The file system type of the mount holding ``path`` (from /proc/self/mountinfo)."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best) and " - " in line:
                best, kind = point, line.split(" - ", 1)[1].split()[0]
    return kind


class Spill:
    """Write pieces with :meth:`add`, then :meth:`done`; :meth:`frames` reads them back (again
    for every call: a resent or explained batch reads the same values)."""

    def __init__(self) -> None:
        self.file: BinaryIO = tempfile.TemporaryFile(prefix="chute-pieces-")  # noqa: SIM115 - closed by close()
        self._sink: pa.NativeFile | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self.rows = 0
        self._checked = 0  # bytes written when the free space was last looked at

    @staticmethod
    def room(size: int) -> bool:
        """Whether the temporary directory has room for about ``size`` bytes of pieces, twice over,
        on a disk: a memory-backed one (tmpfs) would hold them in memory after all (charged to the
        container), where the streamed path's two parses hold a batch at a time."""
        where = tempfile.gettempdir()
        try:
            return shutil.disk_usage(where).free > 2 * size and _fs_type(where) not in _IN_MEMORY_FS
        except OSError:
            return False

    def add(self, piece: pl.DataFrame) -> None:
        # polars' own layout (string views): no conversion either way, where large strings cost a
        # copy out and one back (0.05 + 0.1 s of CPU per 1M rows of text)
        table = piece.to_arrow(compat_level=pl.CompatLevel.newest())
        if self._writer is None:
            self._sink = pa.OSFile(self._path, "wb")  # (native writes; the file is still empty)
            self._writer = pa.ipc.new_stream(self._sink, table.schema)
        self._writer.write_table(table)
        self.rows += piece.height
        if self.size - self._checked >= CHECK_BYTES:
            self._checked = self.size
            self._keep_room()

    def _keep_room(self) -> None:
        disk = shutil.disk_usage(tempfile.gettempdir())
        if disk.free < RESERVE_SHARE * disk.total:
            raise OSError(errno.ENOSPC, f"the pieces stopped at {self.size >> 20} MiB: "
                                        f"{disk.free >> 20} MiB left on the temporary directory's disk")

    def done(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sink is not None:
            self._sink.close()

    def frames(self) -> Iterator[pl.DataFrame]:
        """The pieces in order, one at a time."""
        if not self.rows and self._sink is None:
            return
        try:
            with pa.OSFile(self._path, "rb") as raw, pa.ipc.open_stream(raw) as reader:
                for batch in reader:
                    yield pl.from_arrow(batch)  # type: ignore[misc]
        except (OSError, pa.ArrowException) as exc:
            raise SpillReadError(f"reading the file's typed pieces back from the temporary directory failed: "
                                 f"{exc}") from exc

    @property
    def _path(self) -> str:
        return f"/proc/self/fd/{self.file.fileno()}"

    def close(self) -> None:
        self._writer = None
        if self._sink is not None:
            self._sink.close()
        self.file.close()

    @property
    def size(self) -> int:
        return os.fstat(self.file.fileno()).st_size
