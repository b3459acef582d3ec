"""chute's engine: watch a folder, load every new file into ClickHouse exactly once.

Nothing in this package imports Textual or Rich; the console in ``tui`` and the
headless daemon both drive the same :class:`chute.core.engine.Engine`.
"""

__version__ = "0.1.0"
