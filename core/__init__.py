"""chute's engine: watch a folder, load every new file into ClickHouse exactly once.

Nothing in this package imports Textual or Rich; the console in ``tui`` and the
headless daemon both drive the same :class:`chute.core.engine.Engine`.
"""

__version__ = "0.1.0"

# The public API (core/api.py), re-exported lazily: `import chute.core` stays cheap (no engine,
# ClickHouse client or Arrow import) until one of these is used.
_API = ("ActionResult", "FileInfo", "LoadProblems", "NotAnswered", "RunResult", "Status",
        "approve", "files", "load", "make_config", "purge", "retry", "run_once", "status")


def __getattr__(name: str) -> object:
    if name in _API:
        from chute.core import api

        return getattr(api, name)
    raise AttributeError(f"module 'chute.core' has no attribute {name!r}")
