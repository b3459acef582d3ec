"""Which operator action applies to which file state: the one table the engine, the CLI and the
console all read (the console greys a key out with it, the engine refuses with it)."""

from __future__ import annotations

from chute.core.states import State

ACTIONS = ("approve", "retry", "purge")

# action -> the states it applies to.
APPLIES: dict[str, frozenset[State]] = {
    "approve": frozenset({State.HELD}),
    "retry": frozenset({State.FAILED, State.QUARANTINED}),
    # Not while the engine may be working on it (seen..loading), and not twice.
    "purge": frozenset({State.LOADED, State.DUPLICATE, State.HELD, State.FAILED, State.QUARANTINED}),
}

_BUSY = frozenset({State.SEEN, State.SETTLING, State.QUEUED, State.LOADING})


def applies(action: str, state: str | None) -> bool:
    return state is not None and state in APPLIES.get(action, frozenset())


def refusal(action: str, path: str, state: str) -> str | None:
    """Why ``action`` does not apply to a file in ``state`` (None when it does), in the operator's words."""
    if applies(action, state):
        return None
    if action not in APPLIES:
        return f"unknown action {action!r}"
    if action == "approve":
        return f"{path} is {state}, not held: nothing to approve"
    if action == "retry":
        return f"{path} is {state}: only failed or quarantined files can be retried"
    if state in _BUSY:
        return f"{path} is {state}; pause intake or wait before purging it"
    return f"{path} is already purged"


def stalled(action: str, path: str, state: str) -> str | None:
    """With no engine running, why ``action`` cannot run on a version a stopped run left loading
    (None: not loading). Waiting would not help; a run settles it (a crashed load, an unacknowledged group)."""
    if state != State.LOADING:  # seen, settling, queued: the next run takes them as usual
        return None
    return (f"{path} is {state} but no engine is running: a run stopped before finishing it; start chute "
            f"(e.g. `chute --once`) to settle it, then {action} again")
