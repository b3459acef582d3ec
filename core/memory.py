"""Give freed memory back to the system as batches go (issue 12: peak RSS against the engine's own).

A chute process runs three allocators: polars' jemalloc, pyarrow's mimalloc and glibc's malloc
(Python, chDB, clickhouse-connect). By default each keeps the pages it freed for reuse (jemalloc
for ten seconds, glibc in up to eight arenas per core until trimmed), so a file's batches, which
pass through all three, leave the process at the sum of what each still holds. Measured on a
1M-row file, median of 3 whole ``--once`` processes: Parquet 699 -> 573 MB peak RSS, CSV.gz 813
-> 704 MB, CPU time within noise. An operator's own setting of these variables wins.
"""

from __future__ import annotations

import ctypes
import functools
import os

# Read when each library is loaded: set before polars and pyarrow are imported. (polars puts its
# own jemalloc defaults before what it finds here; jemalloc takes the last setting of each option.)
ALLOCATOR_ENV = {
    "_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0",  # polars' jemalloc (prefixed build)
    "MIMALLOC_PURGE_DELAY": "0",  # pyarrow's default pool
}
# What importing polars writes into the environment when the variable is unset: a chute started
# by a Python process that imported polars (a bench, an orchestrator's worker) inherits it, and it
# is polars' default, not an operator's choice (measured: csv1m peak RSS 687 MB with it, 553 without).
POLARS_JEMALLOC_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"
# numpy's OpenBLAS starts a thread per core at import and lets them spin after its start, though
# chute does no linear algebra: ~0.06 s of CPU at import and ~0.06 s more in the next second, 5% of a
# 1M-row CSV's `--once` (perf: blas_thread_server). One thread: no pool. Read when numpy loads.
THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1"}
_M_ARENA_MAX = -8  # glibc mallopt(3)
ARENAS = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library's symbols as the process already has them (glibc: mallopt, malloc_trim)."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def tune_allocators() -> None:
    """Before the first import of polars, pyarrow or numpy (the command line does it first thing)."""
    if os.environ.get("_RJEM_MALLOC_CONF") == POLARS_JEMALLOC_DEFAULT:
        del os.environ["_RJEM_MALLOC_CONF"]  # inherited from a parent's polars import, see above
    for key, value in {**ALLOCATOR_ENV, **THREAD_ENV}.items():
        os.environ.setdefault(key, value)
    libc = _libc()
    if libc is not None and "MALLOC_ARENA_MAX" not in os.environ and hasattr(libc, "mallopt"):
        libc.mallopt(_M_ARENA_MAX, ARENAS)


def trim() -> None:
    """Return glibc's free pages now (after a file: a daemon need not keep its biggest file's peak)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
