"""File states of the ledger (docs/ARCHITECTURE.md#file-states)."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    SEEN = "seen"
    SETTLING = "settling"
    QUEUED = "queued"
    LOADING = "loading"
    LOADED = "loaded"
    DUPLICATE = "duplicate"
    HELD = "held"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    PURGED = "purged"


# States in which a file needs nothing more from the engine by itself.
FINAL = frozenset({State.LOADED, State.DUPLICATE, State.HELD, State.QUARANTINED, State.PURGED})
