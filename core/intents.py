"""Write-ahead operator actions: an intent in the ledger first, then the effect, then the final state.

Purge, retry, the after-load archive/delete and the loader's quarantine move each change something
outside the ledger (ClickHouse rows, files on disk). Done in the wrong order, a crash between two writes leaves
them disagreeing: issue 11 found a version marked `purged` whose rows were still in ClickHouse.
So each action first records an intent holding everything its effect needs (paths, content
hash, table, the file's identity); then performs steps that are each safe to run twice; then
writes the final state and closes the intent. ``recover`` (engine start, and the same command
issued again) runs every open intent to its end, or rolls it back when its premise is gone.

Approve has no effect outside the ledger: it is one ledger transaction, atomic by itself.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chute.core import failpoints
from chute.core.config import Config
from chute.core.errors import ChuteError, UsageError
from chute.core.ledger import FileRow, Ledger
from chute.core.states import State
from chute.core.target import Target

log = logging.getLogger("chute.intents")


@dataclass(frozen=True)
class Intent:
    id: int
    file_id: int
    action: str
    actor: str
    from_state: State
    args: dict[str, Any]

    @classmethod
    def of(cls, row: sqlite3.Row) -> Intent:
        return cls(row["id"], row["file_id"], row["action"], row["actor"], State(row["from_state"]),
                   json.loads(row["args"]))


def open_for(ledger: Ledger, file_id: int) -> Intent | None:
    rows = ledger.open_intents(file_id)
    return Intent.of(rows[0]) if rows else None


def _begin(ledger: Ledger, row: FileRow, action: str, actor: str, args: dict[str, Any],
           expect: tuple[State, ...], **fields: Any) -> Intent:
    iid = ledger.open_intent(row.id, action, actor, json.dumps(args), expect=expect, **fields)
    if iid is None:
        pending = open_for(ledger, row.id)
        if pending is not None:
            again = f"run `chute {pending.action} {row.path}` again" if pending.action in ("purge", "retry") \
                else "try again in a moment"
            raise UsageError(f"{row.path} has an unfinished {pending.action} (by {pending.actor}); {again}, or "
                             "restart chute, to finish it first")
        raise UsageError(f"{row.path} changed state while {action} was requested; look again and retry")
    return Intent(iid, row.id, action, actor, row.state, args)


# -- purge ----------------------------------------------------------------------------------


def purge(cfg: Config, ledger: Ledger, target: Target, row: FileRow, actor: str) -> str:
    pending = open_for(ledger, row.id)
    if pending is not None and pending.action == "purge":
        return _run_purge(cfg, ledger, target, pending, resumed=True)
    if row.state in (State.LOADING, State.QUEUED, State.SETTLING, State.SEEN):
        raise UsageError(f"{row.path} is {row.state}; pause intake or wait before purging it")
    if row.state == State.PURGED:
        raise UsageError(f"{row.path} is already purged")
    # Ledger paths throughout ("@NAME/..." for a [[sources]] folder): cfg.locate finds them on disk.
    on_disk = row.path if not row.moved_to or row.moved_to.startswith("(") else row.moved_to
    args = {
        "path": row.path, "table": row.table_name, "sha256": row.sha256, "generation": row.generation,
        "next_attempt": row.next_attempt, "on_disk": on_disk,
        "identity": [row.inode, row.size, row.mtime_ns],
        # Rows belong to this version only if it (not a twin elsewhere) inserted them.
        "has_rows": bool(row.sha256 and (row.state == State.LOADED or ledger.any_batches(row.id, row.generation))),
    }
    # The intent also takes the version off the retry schedule: nothing may load it meanwhile.
    intent = _begin(ledger, row, "purge", actor, args, (row.state,), next_attempt=None)
    failpoints.step("purge_intent")
    return _run_purge(cfg, ledger, target, intent, resumed=False)


def _run_purge(cfg: Config, ledger: Ledger, target: Target, intent: Intent, resumed: bool) -> str:
    a = intent.args
    deleted = 0
    if a["has_rows"]:
        try:
            deleted = target.count_source(a["table"], a["sha256"], a["path"])
            target.delete_source(a["table"], a["sha256"], a["path"])
        except ChuteError as exc:
            if not resumed:  # nothing was deleted: the version stays as it was, for another try
                ledger.update(intent.file_id, next_attempt=a["next_attempt"])
                ledger.close_intent(intent.id, "rolled_back", f"ClickHouse failed: {exc}")
                ledger.log(intent.file_id, a["path"], intent.actor, "purge",
                           f"purge failed, nothing deleted: {exc}")
            raise
    failpoints.step("purge_deleted")
    on_disk = cfg.locate(a["on_disk"])
    removed = False
    if _same_file(on_disk, a["identity"]):  # never delete a newer file that took this one's name
        on_disk.unlink()
        removed = True
    for extra in (Path(str(on_disk) + ".reason.json"), Path(str(on_disk) + ".rejects.csv")):
        extra.unlink(missing_ok=True)
    outcome = "removed" if removed else ("already gone" if not on_disk.exists() else "kept (it is a newer file)")
    row = ledger.get(intent.file_id)
    if row is not None and row.state != State.PURGED:
        ledger.transition(intent.file_id, State.PURGED, actor=intent.actor, generation=a["generation"] + 1,
                          next_attempt=None, detail="purged" + (" (finished after an interruption)" if resumed else ""))
    summary = f"{deleted} rows deleted from {a['table']}, file {outcome}"
    ledger.log(intent.file_id, a["path"], intent.actor, "purge", summary)
    ledger.close_intent(intent.id, "done", summary)
    verb = "finished purging" if resumed else "purged"
    return f"{verb} {a['path']}: {deleted} rows deleted, file {outcome}"


# -- retry ----------------------------------------------------------------------------------


def retry(cfg: Config, ledger: Ledger, row: FileRow, actor: str) -> str:
    pending = open_for(ledger, row.id)
    if pending is not None and pending.action == "retry":
        return _run_retry(cfg, ledger, pending)
    if row.state not in (State.FAILED, State.QUARANTINED):
        raise UsageError(f"{row.path} is {row.state}: only failed or quarantined files can be retried")
    src = None
    if row.state == State.QUARANTINED and row.moved_to:
        src = row.moved_to
        dest = cfg.locate(row.path)
        if dest.exists() and not cfg.locate(src).exists():
            src = None  # moved back by hand: take it where it is
        elif dest.exists():
            raise UsageError(f"cannot move {row.moved_to} back: {row.path} exists again")
    here = cfg.locate(row.path)
    if src is None and not (here.exists() or here.is_symlink()):
        raise UsageError(f"{row.path} is no longer in the data folder")
    intent = _begin(ledger, row, "retry", actor, {"path": row.path, "from": src}, (row.state,), next_attempt=None)
    failpoints.step("retry_intent")
    return _run_retry(cfg, ledger, intent)


def _run_retry(cfg: Config, ledger: Ledger, intent: Intent) -> str:
    a = intent.args
    dest = cfg.locate(a["path"])
    if a["from"]:
        src = cfg.locate(a["from"])
        if (src.exists() or src.is_symlink()) and not (dest.exists() or dest.is_symlink()):
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
        failpoints.step("retry_moved")
        Path(str(src) + ".reason.json").unlink(missing_ok=True)
        Path(str(src) + ".rejects.csv").unlink(missing_ok=True)
    if not (dest.exists() or dest.is_symlink()):
        ledger.close_intent(intent.id, "rolled_back", "the file is gone")
        ledger.update(intent.file_id, moved_to=None)
        raise UsageError(f"{a['path']} is no longer in the data folder")
    st = os.stat(dest, follow_symlinks=False)
    # Queued and the retry closed in one commit: the loader may take it at once, and its own
    # archive or quarantine intent is refused while another action is open.
    if ledger.transition(intent.file_id, State.QUEUED, actor=intent.actor, detail="retry requested", attempts=0,
                         next_attempt=None, moved_to=None, last_error=None, error_kind=None, reason=None,  # history now
                         dev=st.st_dev, inode=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns,
                         ctime_ns=st.st_ctime_ns, expect=[State.FAILED, State.QUARANTINED],
                         done_intent=(intent.id, "requeued")) is None:
        ledger.close_intent(intent.id, "done", "requeued")
    return f"retrying {a['path']}"


# -- after load: archive or delete ------------------------------------------------------------


def begin_after_load(cfg: Config, ledger: Ledger, row: FileRow, dest: Path | None) -> Intent | None:
    """Before a version becomes `loaded`: the intent to archive (to ``dest``) or delete its file.
    A crash after `loaded` then still finishes the move at the next start."""
    mode = cfg.after_load
    if mode == "keep":
        return None
    args = {"path": row.path, "mode": mode, "identity": [row.inode, row.size, row.mtime_ns],
            "dest": cfg.ledger_path(dest, row.path) if dest is not None else None}
    iid = ledger.open_intent(row.id, mode, "engine", json.dumps(args), expect=(State.LOADING,))
    failpoints.step("archive_intent")
    return None if iid is None else Intent(iid, row.id, mode, "engine", State.LOADING, args)


def after_load(cfg: Config, ledger: Ledger, intent: Intent) -> None:
    row = ledger.get(intent.file_id)
    if row is None or row.state != State.LOADED:  # the load did not finish: a later one decides anew
        ledger.close_intent(intent.id, "rolled_back", "the version was not loaded")
        return
    a = intent.args
    src = cfg.locate(a["path"])
    outcome = "file gone"
    try:
        if a["mode"] == "delete":
            if _same_file(src, a["identity"]):
                src.unlink()
            failpoints.step("archive_moved")
            ledger.update(row.id, moved_to="(deleted)")
            outcome = "deleted"
        else:
            dest = cfg.locate(a["dest"])
            if _same_file(src, a["identity"]) and not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest)
            failpoints.step("archive_moved")
            if _same_file(dest, a["identity"]):
                ledger.update(row.id, moved_to=a["dest"])
                outcome = f"archived to {a['dest']}"
    except OSError as exc:
        log.warning("loaded %s but could not %s it: %s", a["path"], a["mode"], exc.strerror)
        outcome = f"could not {a['mode']}: {exc.strerror}"
    ledger.close_intent(intent.id, "done", outcome)


# -- the loader's quarantine ------------------------------------------------------------------


def quarantine(cfg: Config, ledger: Ledger, row: FileRow, reason: dict[str, Any], dest: Path) -> str | None:
    """Move a bad file (a `loading` version) to ``dest`` in _quarantine/ with its reason file, then mark
    it `quarantined`. Write-ahead: a crash between the move and the ledger used to leave the file in
    _quarantine/ and the version `loading`, requeued at the next start and then "gone". Returns
    ``moved_to`` (None: the file could not be moved, or was gone)."""
    args = {"path": row.path, "identity": [row.inode, row.size, row.mtime_ns],
            "dest": cfg.ledger_path(dest, row.path), "reason": reason}
    iid = ledger.open_intent(row.id, "quarantine", "engine", json.dumps(args), expect=(State.LOADING,))
    if iid is None:  # no longer ours (or another action is open): record the verdict, move nothing
        _quarantined(ledger, row.id, reason, None)
        return None
    failpoints.step("quarantine_intent")
    return _run_quarantine(cfg, ledger, Intent(iid, row.id, "quarantine", "engine", State.LOADING, args))


def _run_quarantine(cfg: Config, ledger: Ledger, intent: Intent) -> str | None:
    """Each step checks first, so a restart runs it again safely: move (if the file is still where it
    was and the same), reason file beside it, then the state."""
    a = intent.args
    src, dest = cfg.locate(a["path"]), cfg.locate(a["dest"])
    moved, link_moved = None, False
    try:
        if _ours(src, a["identity"]) and not (dest.exists() or dest.is_symlink()):
            dest.parent.mkdir(parents=True, exist_ok=True)
            # A symlink moves as the link; a relative one points elsewhere from _quarantine/, so
            # the identity check below cannot find it: this move itself says it is ours.
            link_moved = src.is_symlink()
            os.replace(src, dest)
        failpoints.step("quarantine_moved")
        if link_moved or _ours(dest, a["identity"]):
            Path(str(dest) + ".reason.json").write_text(json.dumps(a["reason"], indent=2) + "\n")
            moved = a["dest"]
    except OSError as exc:
        log.warning("could not move %s to quarantine: %s", a["path"], exc.strerror)
    outcome = f"moved to {moved}" if moved else "not moved"
    # Quarantined and the intent closed in one commit: an operator's retry of the file it shows
    # quarantined is never refused as "unfinished".
    if not _quarantined(ledger, intent.file_id, a["reason"], moved, done_intent=(intent.id, outcome)):
        ledger.close_intent(intent.id, "done", outcome)
    return moved


def _quarantined(ledger: Ledger, file_id: int, reason: dict[str, Any], moved: str | None,
                 done_intent: tuple[int, str] | None = None) -> bool:
    text = str(reason.get("reason") or "quarantined")
    return ledger.transition(file_id, State.QUARANTINED, error_kind="input", last_error=text, reason=text,
                             moved_to=moved, next_attempt=None, detail=text, expect=[State.LOADING],
                             done_intent=done_intent) is not None


# -- recovery ---------------------------------------------------------------------------------


def recover(cfg: Config, ledger: Ledger, target: Target) -> list[str]:
    """Finish (or roll back) every action a crash interrupted. Returns one line per intent."""
    done = []
    for raw in ledger.open_intents():
        intent = Intent.of(raw)
        try:
            if intent.action == "purge":
                done.append(_run_purge(cfg, ledger, target, intent, resumed=True))
            elif intent.action == "retry":
                done.append(_run_retry(cfg, ledger, intent))
            elif intent.action == "quarantine":
                _run_quarantine(cfg, ledger, intent)
                done.append(f"finished quarantining {intent.args['path']}")
            elif intent.action in ("archive", "delete"):
                after_load(cfg, ledger, intent)
                done.append(f"finished {intent.action} of {intent.args['path']}")
            else:
                ledger.close_intent(intent.id, "rolled_back", f"unknown action {intent.action!r}")
        except UsageError as exc:  # its premise is gone (the file vanished): rolled back, said why
            log.warning("the interrupted %s of %s was rolled back: %s", intent.action, intent.args.get("path"), exc)
            continue
        except ChuteError as exc:  # ClickHouse away: the intent stays open for the next start
            log.warning("could not finish the interrupted %s of %s yet: %s", intent.action,
                        intent.args.get("path"), exc)
            continue
        log.info("recovered: %s", done[-1])
    return done


def _ours(path: Path, identity: list[int | None]) -> bool:
    """The file (or, for a symlink quarantined for where it points, the link) the version recorded."""
    return _same_file(path, identity) or (path.is_symlink() and _same_file(path, identity, follow=True))


def _same_file(path: Path, identity: list[int | None], follow: bool = False) -> bool:
    try:
        st = os.stat(path, follow_symlinks=follow)
    except OSError:  # gone, or a link that leads nowhere (a loop, a dead end)
        return False
    if identity[0] is None:
        return True
    return [st.st_ino, st.st_size, st.st_mtime_ns] == list(identity)
