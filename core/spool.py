"""Insert bodies for the embedded engine, kept on disk instead of in memory (issue 12, peak RSS).

chDB takes an insert body only as a file (clickhouse-connect's driver writes it to a temporary
file for ``INSERT ... FROM INFILE``), so a batch encoded in memory was held twice on its way: as
an Arrow IPC buffer in the send queue (about 12 MB per 125,000-row batch, up to five batches at
once between the producer, the queue and the insert lanes), then as that file. Encoded straight
into a file, a batch waits in the page cache, which is not the process's memory, and the insert
names that file (core/target.py Target.insert): no copy at all.

The file goes when the batch is sent, or when the batch is dropped unsent (a halted pipeline):
its finalizer runs as soon as nothing refers to the batch any more.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import weakref
from typing import TYPE_CHECKING

from chute.core.resources import TempDirFull, no_space

if TYPE_CHECKING:
    import pyarrow as pa


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


_PROC_FD = os.path.isdir("/proc/self/fd")  # (Linux; elsewhere a named file, removed when sent or dropped)
_LIVE: weakref.WeakSet[SpooledBody] = weakref.WeakSet()  # bodies whose file is on disk


def discard_all() -> None:
    """Remove every body's file now: for an exit that skips the garbage collector (cli._exit_now),
    which alone frees a body held in a reference cycle (the traceback of an insert that was refused)."""
    for body in list(_LIVE):
        body.discard()


class SpooledBody:
    """An Arrow IPC file of one batch in the temporary directory, read by ``INSERT ... FROM INFILE``
    (again by each resend: the same bytes)."""

    def __init__(self, data: pa.Table) -> None:
        import pyarrow as pa

        if _PROC_FD:
            # Unlinked from the start, named to the engine by /proc/self/fd (chDB runs in this
            # process): the file goes with the process however it ends. A named file outlived a
            # SIGKILL, ~28 MB per queued 250,000-row batch, for good (review round 9).
            held = tempfile.TemporaryFile(prefix="chute-batch-", suffix=".arrow")  # noqa: SIM115 - closed by discard()
            self.path = f"/proc/self/fd/{held.fileno()}"
            remove = held.close
        else:
            fd, self.path = tempfile.mkstemp(prefix="chute-batch-", suffix=".arrow")
            os.close(fd)
            remove = functools.partial(_unlink, self.path)
        self._finalizer = weakref.finalize(self, remove)
        _LIVE.add(self)
        try:
            with pa.OSFile(self.path, "wb") as sink, pa.ipc.new_file(sink, data.schema) as writer:
                writer.write_table(data)
        except OSError as exc:
            self.discard()
            if no_space(exc):  # the temporary directory's disk, not the state dir's:
                # intake pauses until it has room for the batch (taken for a full state dir, whose probe
                # passed at once, the file was planned and refused again every few seconds for good)
                raise TempDirFull(f"no room in the temporary directory for a batch of {data.num_rows} rows "
                                  f"({data.nbytes >> 20} MiB): {exc}", data.nbytes) from None
            raise
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Remove the file now (idempotent)."""
        self._finalizer()
