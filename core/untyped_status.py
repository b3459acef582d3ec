"""Files of a type chute cannot read that the watcher keeps out of the ledger while they settle
(docs/ARCHITECTURE.md#complete-files), made visible to `chute status` and `chute attach`.

Only the engine's process knows them: a writer's temporary name must leave no ledger row, yet an
operator must still see why a file sits in the folder untouched (an `app.log` a service keeps
open stays there for good). The engine's health tick writes them to the ledger's meta table when
they change; readers believe it only while that engine runs."""

from __future__ import annotations

import json

from chute.core.ledger import Ledger

META_KEY = "untyped_waiting"
LISTED = 20  # paths kept in the meta value; the count is always whole


class UntypedBoard:
    """Publishes the watcher's parked untyped files, writing only when the list changes."""

    def __init__(self) -> None:
        self._last = ""

    def publish(self, ledger: Ledger, paths: list[str]) -> None:
        value = json.dumps({"count": len(paths), "paths": sorted(paths)[:LISTED]}) if paths else ""
        if value != self._last:
            ledger.set_meta(META_KEY, value)
            self._last = value


def read(ledger: Ledger) -> tuple[int, list[str]]:
    """(how many, up to LISTED paths) as the running engine last published them."""
    raw = ledger.meta(META_KEY)
    if not raw:
        return 0, []
    data = json.loads(raw)
    return int(data["count"]), list(data["paths"])
