"""What an operator can do about a file in its current state: one short line, with the key to press."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from chute.core.ledger import FileRow
from chute.core.states import State

PROBLEM_LABEL = {State.FAILED: "Error", State.QUARANTINED: "Error", State.HELD: "Held", State.DUPLICATE: "Skipped"}


def why(row: FileRow) -> tuple[str, str] | None:
    """(label, text) explaining a file that is not simply on its way or done; None otherwise."""
    label = PROBLEM_LABEL.get(row.state)
    text = row.last_error or row.reason
    return (label, text) if label and text else None


_HELD_FOR = re.compile(r"version #(\d+) was loaded with other content")


def as_now(row: FileRow, state_of: Callable[[int], str | None]) -> FileRow:
    """``row`` with its hold reason as it stands now. A changed-content hold names the version that
    was loaded at the time and says "purge the old one first"; once that version is purged (or
    otherwise gone), the advice would send the operator after something already done."""
    text = row.last_error or row.reason or ""
    found = _HELD_FOR.search(text) if row.state == State.HELD else None
    if found is None:
        return row
    old = int(found.group(1))
    now = state_of(old)
    if now is None or now == State.LOADED:
        return row
    # What changed first: the Reason column at 80 columns shows some 30 characters.
    text = f"old version #{old} {now} since: approve to load this one (changed content at a known path)"
    return replace(row, last_error=text) if row.last_error else replace(row, reason=text)


def advice(row: FileRow) -> str:
    why = (row.last_error or row.reason or "").lower()
    if row.state == State.HELD:
        if "approval" in why:
            return "press a to approve it"
        if "schema drift" in why:
            return "a adds the column(s) (ALTER TABLE ADD COLUMN) and loads it; d drops the file"
        if "since: approve" in why:  # the old version is gone (as_now)
            return "press a to load it"
        if "changed content" in why:
            return "a loads this version as well; or purge the old version first"
        return "press a to release it, or d to drop it"
    if row.state == State.FAILED:
        if row.error_kind == "unreachable":
            return "ClickHouse does not answer: it resumes by itself when the server is back"
        if row.next_attempt is not None:
            return "retrying by itself with backoff; r retries now"
        if row.error_kind == "gone":
            return "the file disappeared before it loaded: put it back, then press r"
        return "gave up: fix the cause, then press r to retry"
    if row.state == State.QUARANTINED:
        return "fix or replace the file, then r retries it; d deletes it"
    if row.state == State.DUPLICATE:
        return "nothing to do: the same content is already loaded"
    if row.state == State.LOADED:
        return "d purges its rows and the file"
    return ""
