"""The loader's libraries imported on a thread of their own while ClickHouse starts (issue 12).

A start-up spends ~0.25 s importing and starting chDB (or connecting) and, before the first load,
~0.15 s importing the loader (polars, the formats). Much of chDB's start runs outside the GIL, so
on a machine with a core to spare the two overlap. Only where the loader will be wanted: a daemon
(it builds the loader at start), or a `--once` whose data folder has something in it (an empty
`--once` never imports polars: tests/test_startup.py).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("chute.prefetch")


def loader_soon(data_dir: Path, once: bool) -> None:
    if once and not _has_entries(data_dir):
        return
    threading.Thread(target=_import, name="chute-prefetch", daemon=True).start()


def _has_entries(folder: Path) -> bool:
    """Anything but hidden and chute's own (``_archive``, ``_quarantine``) entries."""
    try:
        with os.scandir(folder) as entries:
            return any(not e.name.startswith((".", "_")) for e in entries)
    except OSError:
        return False


def _import() -> None:
    try:
        for name in ("chute.core.loader", "chute.core.native"):  # (the native read: the Parquet reader)
            importlib.import_module(name)
    except Exception:  # the engine's own import raises it again, where it is reported
        log.debug("prefetching the loader failed", exc_info=True)
