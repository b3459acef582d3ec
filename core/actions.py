"""Operator actions: approve, retry, purge. Shared by the console, the CLI and the daemon."""

from __future__ import annotations

import logging
from pathlib import Path

from chute.core import intents
from chute.core.config import Config
from chute.core.errors import UsageError
from chute.core.ledger import FileRow, Ledger
from chute.core.states import State
from chute.core.target import Target

log = logging.getLogger("chute.actions")


def find(cfg: Config, ledger: Ledger, path: str) -> FileRow:
    """The version an operator means by PATH: relative to DATA_DIR, absolute, or its quarantine copy."""
    rel = _relative(cfg, path)
    row = ledger.current(rel)
    if row is not None:
        return row
    for candidate in ledger.list_files(search=rel, limit=50):
        if candidate.moved_to == rel:
            return candidate
    raise UsageError(f"no file {rel!r} in the ledger (see `chute files`)")


def _relative(cfg: Config, path: str) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(Path(cfg.data_dir).resolve()).as_posix()
        except ValueError:
            raise UsageError(f"{path} is not inside the data folder {cfg.data_dir}") from None
    root = Path(cfg.data_dir)
    if p.parts and (root / p).exists() is False and p.parts[0] == root.name and len(p.parts) > 1:
        return Path(*p.parts[1:]).as_posix()  # `chute retry data/x.csv` from the parent folder
    return p.as_posix()


def run(cfg: Config, ledger: Ledger, target: Target, action: str, path: str, actor: str) -> str:
    row = find(cfg, ledger, path)
    if action == "approve":
        return approve(ledger, row, actor)
    if action == "retry":
        return retry(cfg, ledger, row, actor)
    if action == "purge":
        return purge(cfg, ledger, target, row, actor)
    raise UsageError(f"unknown action {action!r}")


def approve(ledger: Ledger, row: FileRow, actor: str) -> str:
    if row.state != State.HELD:
        raise UsageError(f"{row.path} is {row.state}, not held: nothing to approve")
    pending = intents.open_for(ledger, row.id)
    if pending is not None:  # e.g. a purge a crash interrupted: finish that first
        raise UsageError(f"{row.path} has an unfinished {pending.action}; run it again or restart chute first")
    ledger.transition(row.id, State.QUEUED, actor=actor, detail="approved", approved=1, next_attempt=None,
                      last_error=None, error_kind=None, expect=[State.HELD])
    return f"approved {row.path}"


def retry(cfg: Config, ledger: Ledger, row: FileRow, actor: str) -> str:
    return intents.retry(cfg, ledger, row, actor)  # write-ahead: core/intents.py


def purge(cfg: Config, ledger: Ledger, target: Target, row: FileRow, actor: str) -> str:
    return intents.purge(cfg, ledger, target, row, actor)  # write-ahead: core/intents.py

