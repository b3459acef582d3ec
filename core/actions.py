"""Operator actions: approve, retry, purge. Shared by the console, the CLI and the daemon."""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path

from chute.core import action_rules, intents
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


def find_id(ledger: Ledger, file_id: int) -> FileRow:
    """One version, by the ledger id `chute files` and the console show."""
    row = ledger.get(file_id)
    if row is None:
        raise UsageError(f"no file with id {file_id} in the ledger (see `chute files`)")
    return row


def locate(cfg: Config, ledger: Ledger, path: str | None, file_id: int | None = None,
           expect: str | None = None) -> FileRow:
    """The version an action names; with ``expect`` (the state the operator was shown), refuse
    when it has moved on since, saying what changed, so a stale dialog never acts."""
    row = find_id(ledger, file_id) if file_id is not None else find(cfg, ledger, path or "")
    if expect is not None and row.state != expect:
        raise UsageError(f"#{row.id} {row.path} is now {row.state}, not {expect} as shown: nothing done; "
                         "look again")
    return row


def select(ledger: Ledger, action: str, state: str | None = None, table: str | None = None,
           glob: str | None = None) -> list[FileRow]:
    """Bulk: every version (oldest first) in ``state``, of ``table``, with a path matching ``glob``,
    that ``action`` applies to."""
    rows = ledger.list_files(state=state)
    return [r for r in reversed(rows)
            if action_rules.applies(action, r.state)
            and (table is None or r.table_name == table)
            and (glob is None or fnmatch.fnmatchcase(r.path, glob) or fnmatch.fnmatchcase(r.moved_to or "", glob))]


def _relative(cfg: Config, path: str) -> str:
    p = Path(path)
    if p.is_absolute():
        roots = [(Path(cfg.data_dir).resolve(), "")] + [  # an extra [[sources]] folder's files are "@NAME/..."
            (Path(s.path).resolve(), f"@{s.name}/") for s in cfg.sources if Path(s.path) != Path(cfg.data_dir)]
        for root, prefix in roots:
            if p.resolve().is_relative_to(root):
                return prefix + p.resolve().relative_to(root).as_posix()
        raise UsageError(f"{path} is not inside the data folder {cfg.data_dir}")
    root = Path(cfg.data_dir)
    if p.parts and (root / p).exists() is False and p.parts[0] == root.name and len(p.parts) > 1:
        return Path(*p.parts[1:]).as_posix()  # `chute retry data/x.csv` from the parent folder
    return p.as_posix()


def run(cfg: Config, ledger: Ledger, target: Target, action: str, path: str | None, actor: str, *,
        file_id: int | None = None, expect: str | None = None, engine_running: bool = True) -> str:
    """``engine_running=False``: a command acting while no engine holds the state folder."""
    row = locate(cfg, ledger, path, file_id, expect)
    if not engine_running and (why := action_rules.stalled(action, row.path, row.state)) is not None:
        raise UsageError(why)
    if action == "approve":
        return approve(ledger, row, actor)
    if action == "retry":
        return retry(cfg, ledger, row, actor)
    if action == "purge":
        return purge(cfg, ledger, target, row, actor)
    raise UsageError(f"unknown action {action!r}")


def approve(ledger: Ledger, row: FileRow, actor: str) -> str:
    if (why := action_rules.refusal("approve", row.path, row.state)) is not None:
        raise UsageError(why)
    pending = intents.open_for(ledger, row.id)
    if pending is not None:  # e.g. a purge a crash interrupted: finish that first
        raise UsageError(f"{row.path} has an unfinished {pending.action}; run it again or restart chute first")
    ledger.transition(row.id, State.QUEUED, actor=actor, detail="approved", approved=1, next_attempt=None,
                      last_error=None, error_kind=None, expect=[State.HELD])
    return f"approved {row.path}"


def retry(cfg: Config, ledger: Ledger, row: FileRow, actor: str) -> str:
    if (why := action_rules.refusal("retry", row.path, row.state)) is not None:
        raise UsageError(why)
    return intents.retry(cfg, ledger, row, actor)  # write-ahead: core/intents.py


def purge(cfg: Config, ledger: Ledger, target: Target, row: FileRow, actor: str) -> str:
    if (why := action_rules.refusal("purge", row.path, row.state)) is not None and row.state != State.PURGED:
        raise UsageError(why)
    return intents.purge(cfg, ledger, target, row, actor)  # write-ahead: core/intents.py

