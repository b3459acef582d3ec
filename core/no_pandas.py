"""Keep pandas out of chute's processes: importing it costs about a second of start-up.

pyarrow imports pandas the first time almost any of its Python entry points runs (``pa.array``,
``pa.scalar``, ``fill_null``...), only to ask whether the input is a pandas object. chute never
hands it one. So chute lets that first probe fail: pyarrow then remembers "no pandas" and never
asks again. An explicit pandas conversion (``Table.to_pandas``) still imports it as usual.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder


class _RefusePandas(MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is not needed by chute", name=name)


def keep_pandas_out() -> None:
    """Answer pyarrow's one-time pandas probe with "not installed" (idempotent; a no-op when
    pandas is already imported, since then it costs nothing more)."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    refuse = _RefusePandas()
    sys.meta_path.insert(0, refuse)
    try:
        pa.array([0])  # the probe: pyarrow tries `import pandas` once and records the answer
    finally:
        sys.meta_path.remove(refuse)
