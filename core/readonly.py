"""A read-only view of an engine: everything to look at, no operator actions.

What `chute serve` runs for a browser without the token (and `chute attach --read-only`): the
console works as usual, and an action answers with why it is refused instead of running.
"""

from __future__ import annotations

from typing import Any

from chute.core.errors import UsageError

REFUSAL = ("this console is read-only: actions need `chute serve` started with a token "
           "(CHUTE_SERVE_TOKEN or --token-file) and the page opened with ?token=...")


class ReadOnlyEngine:
    """Delegates everything to ``engine`` except :meth:`command`, which refuses."""

    read_only = True

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def command(self, action: str, path: str | None = None, actor: str = "operator", **version: Any) -> str:
        raise UsageError(f"{action}: {REFUSAL}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)
