"""While the console owns the terminal, the process's stderr (file descriptor 2) goes to a file.

Native libraries write there directly, not through logging: a Rust panic in polars prints its
message (and a stack trace under RUST_BACKTRACE), chDB and Arrow print warnings. Over the
console's screen such a line tears it. Textual draws on ``sys.__stderr__``; it gets a copy of the
terminal's descriptor, and descriptor 2 points at ``<state dir>/stderr.log`` until the console ends.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

KEEP_BYTES = 10 << 20  # a log past this size is set aside when the next console starts


@contextmanager
def stderr_aside(path: Path) -> Iterator[Path | None]:
    """Descriptor 2 to ``path`` (0600, appended) inside the block; the path, or None (nothing
    moved) where it cannot be opened or stderr has no descriptor."""
    fds = _open(path)
    if fds is None:
        yield None  # (outside an except clause: an error of the block is not chained to the OSError)
        return
    err, aside, terminal = fds
    copy = os.fdopen(terminal, "w", encoding=err.encoding, errors=err.errors, closefd=True)
    saved = sys.__stderr__, sys.stderr
    os.dup2(aside, 2)
    os.close(aside)
    sys.__stderr__ = sys.stderr = copy  # type: ignore[misc]  # (Textual draws on it)
    try:
        yield path
    finally:
        copy.flush()
        os.dup2(copy.fileno(), 2)
        sys.__stderr__, sys.stderr = saved  # type: ignore[misc]
        copy.close()


def _open(path: Path) -> tuple[TextIO, int, int] | None:
    """(stderr, the log's descriptor, a copy of the terminal's), or None with nothing left open."""
    err = sys.__stderr__
    try:
        if err is None:
            return None
        err.flush()
        fd = err.fileno()
        if path.exists() and path.stat().st_size > KEEP_BYTES:  # (one earlier log kept, as .1)
            path.replace(path.with_name(path.name + ".1"))
        aside = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except (OSError, ValueError):  # (a closed or detached stderr, a log that cannot be opened)
        return None
    try:
        return err, aside, os.dup(fd)
    except OSError:
        os.close(aside)
        return None
