"""Several folders in one engine: one watcher per [[sources]] folder, seen by the engine as one.

DATA_DIR's watcher is the one chute always had; each extra source gets its own (its own
include/exclude/backfill and routes) whose ledger paths carry the "@NAME/" prefix, so the
loader, the actions and the console find each file through ``Config.locate``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chute.core.config import Config
from chute.core.errors import UsageError
from chute.core.ledger import Ledger
from chute.core.sources import extra_sources
from chute.core.watcher import Watcher


class Watchers:
    """The engine's view of several watchers: the interface of one :class:`Watcher`."""

    def __init__(self, cfg: Config, watchers: list[Watcher]) -> None:
        self.cfg = cfg
        self.watchers = watchers

    def start(self, observe: bool = True) -> None:
        for w in self.watchers:
            w.start(observe=observe)

    def stop(self) -> None:
        for w in self.watchers:
            w.stop()

    def scan(self) -> None:
        for w in self.watchers:
            w.scan()

    @property
    def settling(self) -> int:
        return sum(w.settling for w in self.watchers)

    @property
    def scanned_paths(self) -> set[str]:
        return {w.prefix + p for w in self.watchers for p in w.scanned_paths}

    def untyped_waiting(self) -> list[str]:
        return [p for w in self.watchers for p in w.untyped_waiting()]

    def waiting_for_marker(self) -> set[str]:
        return set().union(*(w.waiting_for_marker() for w in self.watchers))

    def _owner(self, rel: str) -> tuple[Watcher, str]:
        _, prefix, inner = self.cfg.split(rel)
        return next(w for w in self.watchers if w.prefix == prefix), inner

    def hint(self, rel: str) -> None:
        w, inner = self._owner(rel)
        w.hint(inner)

    def forget(self, rel: str) -> None:
        w, inner = self._owner(rel)
        w.forget(inner)


def watcher_for(cfg: Config, ledger: Ledger, on_queued: Callable[[], None]) -> Watcher | Watchers:
    """DATA_DIR's watcher alone (as always), or one per folder when [[sources]] name more."""
    extras = extra_sources(cfg)
    if not extras:
        return Watcher(cfg, ledger, on_queued=on_queued)
    for source in extras:
        if not Path(source.path).is_dir():
            raise UsageError(f"source {source.name!r}: folder {source.path} does not exist")
    return Watchers(cfg, [Watcher(cfg, ledger, on_queued=on_queued)]
                    + [Watcher(cfg, ledger, on_queued=on_queued, source=s) for s in extras])
