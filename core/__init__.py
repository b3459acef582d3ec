"""chute's engine: watch a folder, load every new file into ClickHouse exactly once.

Nothing in this package imports Textual or Rich; the console in ``tui`` and the
headless daemon both drive the same :class:`chute.core.engine.Engine`.
"""

import os as _os

__version__ = "0.1.0"

# polars' allocator (jemalloc, configured by this variable) gives freed memory back to the OS at
# once instead of keeping it about ten seconds: a file's parse buffers and text columns then stop
# counting toward the process's peak while its batches are inserted (1M-row CSV, whole process:
# about 45-100 MB less peak RSS, no measurable CPU; issue 12). Read when polars loads, so set here,
# before anything imports it; a value already in the environment wins.
_os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")

# The public API (core/api.py), re-exported lazily: `import chute.core` stays cheap (no engine,
# ClickHouse client or Arrow import) until one of these is used.
_API = ("ActionResult", "FileInfo", "LoadProblems", "NotAnswered", "RunResult", "Status",
        "approve", "files", "load", "make_config", "purge", "retry", "run_once", "status")


def __getattr__(name: str) -> object:
    if name in _API:
        from chute.core import api

        return getattr(api, name)
    raise AttributeError(f"module 'chute.core' has no attribute {name!r}")
