"""One handle on the embedded engine, kept for the life of a process that runs engines again and
again (``api.run_once``, ``api.load`` from a scheduler's worker).

chDB shuts an embedded engine down when its last handle closes and starts it again on the next
one, and each start leaves its MergeTree background threads behind, each holding 3 descriptors
(/proc/self/task/N/{stat,schedstat,io}): a process calling ``run_once()`` grew by ~5 threads and
~15 descriptors a call, past 1,024 descriptors after ~70 calls (tests/test_fd_leaks.py). With a
handle held between calls the engine stays up and nothing piles up.

chDB runs one engine path per process: a call naming another path releases the held one first.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

from chute.core.config import Config

log = logging.getLogger("chute.engine_hold")

_lock = threading.Lock()
_held: dict[str, Any] = {}  # at most one: chDB URL -> its client


def keep(cfg: Config) -> None:
    """Hold the embedded engine of ``cfg`` up (call it once the engine has started: a broken
    engine directory is the Target's to repair). Nothing for a ClickHouse over HTTP."""
    if not cfg.embedded:
        return
    url = f"chdb://{cfg.engine_path()}"
    with _lock:
        if url in _held:
            return
        _release_locked()
        try:
            import clickhouse_connect

            _held[url] = clickhouse_connect.get_client(dsn=url)
        except Exception:  # only an optimisation: the next run starts the engine again
            log.debug("could not hold the engine at %s open", url, exc_info=True)


def release() -> None:
    """Close the held handle (at exit, or before another engine path)."""
    with _lock:
        _release_locked()


def _release_locked() -> None:
    for client in _held.values():
        try:
            client.close()
        except Exception:  # closing at exit must not raise
            log.debug("closing the held engine handle failed", exc_info=True)
    _held.clear()


atexit.register(release)
