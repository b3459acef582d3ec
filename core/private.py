"""Private by default: chute's state dir is 0700 and its files 0600, whatever the umask.

The ledger says what was loaded and holds the command channel; the lock decides which engine
owns the ledger. Under a lax umask (000) another local user could read them, or rename the lock
and start a second engine on the same ledger. Modes are set explicitly (chmod is not subject to
the umask), and tightened on files an older chute created with the umask's modes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` (empty) if missing, and make it 0600 either way."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def tighten(*paths: Path) -> None:
    """0600 on those of ``paths`` that exist (SQLite's -wal and -shm come and go)."""
    for path in paths:
        try:
            if path.stat().st_mode & 0o777 != FILE_MODE:
                os.chmod(path, FILE_MODE)
        except FileNotFoundError:
            continue


def open_private(path: Path, mode: str = "a") -> TextIO:
    """A text file (a log) opened for appending, 0600."""
    private_file(path)
    return path.open(mode, encoding="utf-8")  # type: ignore[return-value]  # text mode: a TextIO
