"""Format readers, one module per format, behind a small registry.

``reader_for`` picks the reader for a format name (from core/routing.py's suffix table). The
modules import only ``chute.core.reader`` (the shared base) and ``chute.core.formats.infer``;
nothing in them imports this package back, so there is no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable

from chute.core.errors import InputError
from chute.core.reader import Reader, Source

# format name -> factory(src, options) -> Reader
_REGISTRY: dict[str, Callable[[Source, dict], Reader]] = {}


def register(*names: str) -> Callable[[Callable[[Source, dict], Reader]], Callable[[Source, dict], Reader]]:
    def add(factory: Callable[[Source, dict], Reader]) -> Callable[[Source, dict], Reader]:
        for name in names:
            _REGISTRY[name] = factory
        return factory
    return add


def reader_for(src: Source, fmt: str | None, options: dict | None = None) -> Reader:
    if fmt is None:
        raise InputError(f"unknown file type {src.path.name!r}: expected .csv, .tsv, .txt, .ndjson, .jsonl, .json or "
                         ".parquet, optionally with .gz or .zst")
    factory = _REGISTRY.get(fmt)
    if factory is None:
        raise InputError(f"format {fmt!r} is not supported")
    return factory(src, {**(options or {}), "fmt": fmt})


# The readers register themselves on import (after the registry exists).
from chute.core.formats import delimited, ndjson, parquet  # noqa: E402,F401
