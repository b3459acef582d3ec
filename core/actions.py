"""Operator actions: approve, retry, purge. Shared by the console, the CLI and the daemon."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from chute.core.config import Config
from chute.core.errors import ChuteError, UsageError
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
    ledger.transition(row.id, State.QUEUED, actor=actor, detail="approved", approved=1, next_attempt=None,
                      last_error=None, error_kind=None, expect=[State.HELD])
    return f"approved {row.path}"


def retry(cfg: Config, ledger: Ledger, row: FileRow, actor: str) -> str:
    if row.state not in (State.FAILED, State.QUARANTINED):
        raise UsageError(f"{row.path} is {row.state}: only failed or quarantined files can be retried")
    if row.state == State.QUARANTINED and row.moved_to:
        src, dest = cfg.data_dir / row.moved_to, cfg.data_dir / row.path
        if dest.exists():
            raise UsageError(f"cannot move {row.moved_to} back: {row.path} exists again")
        if src.exists() or src.is_symlink():
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
        Path(str(src) + ".reason.json").unlink(missing_ok=True)
        Path(str(src) + ".rejects.csv").unlink(missing_ok=True)
    dest = cfg.data_dir / row.path
    if not (dest.exists() or dest.is_symlink()):
        raise UsageError(f"{row.path} is no longer in the data folder")
    st = os.stat(dest, follow_symlinks=False)
    ledger.transition(row.id, State.QUEUED, actor=actor, detail="retry requested", attempts=0, next_attempt=None,
                      moved_to=None, dev=st.st_dev, inode=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns,
                      ctime_ns=st.st_ctime_ns, expect=[State.FAILED, State.QUARANTINED])
    return f"retrying {row.path}"


def purge(cfg: Config, ledger: Ledger, target: Target, row: FileRow, actor: str) -> str:
    if row.state in (State.LOADING, State.QUEUED, State.SETTLING, State.SEEN):
        raise UsageError(f"{row.path} is {row.state}; pause intake or wait before purging it")
    if row.state == State.PURGED:
        raise UsageError(f"{row.path} is already purged")
    # Claim the version first, so a retry the dispatcher starts meanwhile cannot run it (and
    # cannot overwrite the purge afterwards).
    claimed = ledger.transition(row.id, State.PURGED, actor=actor, generation=row.generation + 1,
                                next_attempt=None, detail="purge requested", expect=[row.state])
    if claimed is None:
        raise UsageError(f"{row.path} changed state while purging was requested; look again and retry")
    deleted = 0
    # Rows belong to this version only if it (not a twin elsewhere) inserted them.
    if row.sha256 and (row.state == State.LOADED or ledger.any_batches(row.id, row.generation)):
        try:
            deleted = target.count_source(row.table_name, row.sha256, row.path)
            target.delete_source(row.table_name, row.sha256, row.path)
        except ChuteError as exc:  # the rows are still there: so is the version, for another try
            ledger.transition(row.id, row.state, actor=actor, generation=row.generation, expect=[State.PURGED],
                              detail=f"purge failed, nothing deleted: {exc}")
            raise
    on_disk = cfg.data_dir / (row.moved_to or row.path)
    if row.moved_to and row.moved_to.startswith("("):
        on_disk = cfg.data_dir / row.path
    removed = False
    if _same_file(on_disk, row):  # never delete a newer file that took this one's name
        on_disk.unlink()
        removed = True
    for extra in (Path(str(on_disk) + ".reason.json"), Path(str(on_disk) + ".rejects.csv")):
        extra.unlink(missing_ok=True)
    outcome = "removed" if removed else ("already gone" if not on_disk.exists() else "kept (it is a newer file)")
    ledger.log(row.id, row.path, actor, "purge", f"{deleted} rows deleted from {row.table_name}, file {outcome}")
    return f"purged {row.path}: {deleted} rows deleted, file {outcome}"


def _same_file(path: Path, row: FileRow) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if row.inode is None:
        return True
    return (st.st_ino, st.st_size, st.st_mtime_ns) == (row.inode, row.size, row.mtime_ns)
