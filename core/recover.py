"""`chute recover`: rebuild a damaged ledger from ClickHouse's lineage columns.

Every row chute inserts carries `_source_path`, `_source_sha256` and `_source_row` (docs/CONTRACTS.md#where-rows-go),
so ClickHouse itself says which file versions were loaded and with how many rows. The rebuilt
ledger marks those versions `loaded`, with the identity (inode, size, mtime) of the file still
on disk (or in the archive) when its content matches, so the watcher sees nothing new and
nothing is loaded twice. A version whose file holds more records than ClickHouse has (a crash
mid-load) is queued again: its deduplication tokens drop the batches already in, and the count
check replays it under a new generation if they cannot. Quarantined files are taken back from
their `.reason.json`. The damaged ledger is kept beside the new one, renamed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chute.core.config import Config
from chute.core.errors import ChuteError, TargetError, UsageError
from chute.core.ledger import Ledger, is_damage
from chute.core.reader import hash_and_plan, hash_fd, open_source, reader_for
from chute.core.routing import format_of, options_for
from chute.core.schema import qualified
from chute.core.states import State
from chute.core.target import Target, classify

log = logging.getLogger("chute.recover")
ACTOR = "recover"


@dataclass
class Found:
    """One file version as ClickHouse's lineage columns show it."""

    table: str
    path: str
    sha256: str
    rows: int
    max_row: int
    ingested: float


def damaged(state_dir: Path) -> str | None:
    """Why the ledger in ``state_dir`` cannot be used (None: it opens and passes SQLite's quick check)."""
    path = state_dir / Ledger.FILENAME
    if not path.exists():
        return "there is no ledger"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            conn.execute("SELECT count(*) FROM files").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):  # a full disk or a lock is not damage: rebuilding would not help
            raise UsageError(f"cannot read the ledger {path}: {exc}") from None
        return str(exc)
    return None if result == "ok" else str(result)


def move_aside(state_dir: Path) -> Path | None:
    """Rename the ledger (and its -wal/-shm) out of the way; returns the new name of the main file."""
    path = state_dir / Ledger.FILENAME
    if not path.exists():
        return None
    kept = state_dir / f"{Ledger.FILENAME}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{path}{suffix}")
        if part.exists():
            part.rename(Path(f"{kept}{suffix}"))
    return kept


def lineage(target: Target) -> list[Found]:
    """Every (table, path, sha256) with rows in the database, in one query per table."""
    db = target.database
    try:
        client = target.client()
        tables = [r[0] for r in client.query(
            "SELECT DISTINCT table FROM system.columns WHERE database = {db:String} AND name = '_source_sha256'",
            parameters={"db": db}).result_rows]
        found = []
        for table in sorted(tables):
            rows = client.query(
                f"SELECT _source_path, _source_sha256, count(), max(_source_row), toUnixTimestamp(max(_ingested_at))"
                f" FROM {qualified(db, table)} GROUP BY 1, 2").result_rows
            found += [Found(table, str(p), str(s), int(n), int(m), float(t)) for p, s, n, m, t in rows]
        return found
    except ChuteError:
        raise
    except Exception as exc:  # noqa: BLE001 - one clear line
        raise classify(exc, remote=not target.cfg.embedded) from None


def _content(cfg: Config, path: Path, table: str) -> tuple[str, int | None, Any] | None:
    """(sha256, data rows or None when unreadable, stat) of a file on disk, or None when absent."""
    if not path.is_file():
        return None
    fmt, compression = format_of(path.name)
    try:
        with open_source(path, compression, cfg.max_file_bytes) as src:
            opts = options_for(table, cfg.routes)
            csv_opts = {"delimiter": opts.delimiter, "header": opts.header} if fmt in ("csv", "tsv") else None
            try:
                plan = hash_and_plan(src, reader_for(src, fmt, csv_opts))
                return src.sha256, plan.rows, src.st
            except ChuteError:
                return hash_fd(src.fd, src.st.st_size)[0], None, src.st
    except ChuteError:
        return None


def _archived(cfg: Config, rel: str) -> list[Path]:
    base = cfg.archive_dir / rel
    return [p for p in [base, *sorted(base.parent.glob(base.name + ".*"))] if p.is_file()] if base.parent.is_dir() \
        else []


def rebuild(cfg: Config, ledger: Ledger, target: Target) -> dict[str, int]:
    """Fill an empty ledger from ClickHouse (and the quarantine folder). Returns counts by outcome."""
    found = lineage(target)
    by_path: dict[str, list[Found]] = {}
    for f in found:
        by_path.setdefault(f.path, []).append(f)
    stats = {"loaded": 0, "on_disk": 0, "archived": 0, "requeued": 0, "quarantined": 0, "tables": len(
        {f.table for f in found})}
    for rel, versions in sorted(by_path.items()):
        _rebuild_path(cfg, ledger, rel, versions, stats)
    stats["quarantined"] = _quarantined(cfg, ledger, set(by_path))
    return stats


def _rebuild_path(cfg: Config, ledger: Ledger, rel: str, versions: list[Found], stats: dict[str, int]) -> None:
    """Every version ClickHouse holds for one path; the current one is the content on disk, else the newest."""
    here = _content(cfg, cfg.data_dir / rel, versions[0].table)
    current = next((v for v in versions if here and here[0] == v.sha256), None) or max(
        versions, key=lambda v: v.ingested)
    for v in sorted(versions, key=lambda v: v.ingested):
        fmt, compression = format_of(rel)
        fields: dict[str, Any] = {
            "path": rel, "current": int(v is current), "sha256": v.sha256, "table_name": v.table, "fmt": fmt,
            "compression": compression, "rows": v.rows, "rows_loaded": v.rows, "state": State.LOADED,
            "loaded_at": v.ingested, "approved": 1,
        }
        detail = f"rebuilt from ClickHouse: {v.rows} rows in {v.table}"
        where = _where(cfg, rel, v, here, fields, stats)
        if where is not None:
            st = where[2]
            fields.update(dev=st.st_dev, inode=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns)
            if _unfinished(cfg, v, where[1]) and "moved_to" not in fields:
                # Stopped part-way: finish it. Its tokens drop what is in; the count check guards the rest.
                fields.update(state=State.QUEUED, rows=where[1], loaded_at=None)
                detail = f"rebuilt from ClickHouse: {v.rows} of {where[1]} rows were loaded; loading the rest"
                stats["requeued"] += 1
        if fields["state"] == State.LOADED:
            stats["loaded"] += 1
        ledger.insert_version(fields, ACTOR, detail)


def _where(cfg: Config, rel: str, v: Found, here: tuple[str, int | None, Any] | None, fields: dict[str, Any],
           stats: dict[str, int]) -> tuple[str, int | None, Any] | None:
    """The file that holds this version's content: in the data folder, or in the archive (``moved_to``)."""
    if here and here[0] == v.sha256:
        stats["on_disk"] += 1
        return here
    for candidate in _archived(cfg, rel):
        seen = _content(cfg, candidate, v.table)
        if seen and seen[0] == v.sha256:
            fields["moved_to"] = str(candidate.relative_to(cfg.data_dir))
            stats["archived"] += 1
            return seen
    return None


def _unfinished(cfg: Config, v: Found, rows_on_disk: int | None) -> bool:
    """The file holds more records than ClickHouse has of it, and the table keeps every row sent
    (no skipped bad rows, no key filtering), so the difference is a load that stopped part-way."""
    opts = options_for(v.table, cfg.routes)
    exact = not (opts.on_bad_rows == "skip" or opts.skip_existing_keys or opts.key)
    return exact and rows_on_disk is not None and rows_on_disk > v.rows


def _quarantined(cfg: Config, ledger: Ledger, known: set[str]) -> int:
    """Versions that were quarantined, from the reason files beside them."""
    n = 0
    if not cfg.quarantine_dir.is_dir():
        return 0
    for reason_file in sorted(cfg.quarantine_dir.rglob("*.reason.json")):
        moved = Path(str(reason_file).removesuffix(".reason.json"))
        try:
            reason = json.loads(reason_file.read_text())
            rel = str(reason["path"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not moved.is_file() or rel in known:
            continue
        st = moved.stat()
        fmt, compression = format_of(rel)
        text = str(reason.get("reason") or "quarantined")
        ledger.insert_version({
            "path": rel, "current": 1, "sha256": reason.get("sha256"), "table_name": reason.get("table") or "",
            "fmt": fmt, "compression": compression, "state": State.QUARANTINED, "reason": text,
            "last_error": text, "error_kind": "input", "moved_to": str(moved.relative_to(cfg.data_dir)),
            "dev": st.st_dev, "inode": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
        }, ACTOR, f"rebuilt from {reason_file.name}")
        known.add(rel)
        n += 1
    return n


def run(cfg: Config, force: bool = False) -> str:
    """`chute recover`: check, move the damaged ledger aside, rebuild. Returns the summary line."""
    from chute.core.engine import StateLock, prepare_dirs

    prepare_dirs(cfg)
    holder = StateLock.holder(cfg.state_dir)
    if holder:
        raise UsageError(f"a chute is running on this state dir ({holder}); stop it before `chute recover`")
    why = damaged(cfg.state_dir)
    if why is None and not force:
        raise UsageError(f"the ledger in {cfg.state_dir} is readable; nothing to recover (--force rebuilds it "
                         "from ClickHouse anyway)")
    lock = StateLock(cfg.state_dir)
    lock.acquire("recover")
    target = Target(cfg)
    try:
        try:
            target.check()
        except TargetError as exc:
            raise UsageError(f"cannot reach ClickHouse at {cfg.masked_url()}: {exc}") from None
        kept = move_aside(cfg.state_dir)
        ledger = Ledger(cfg.state_dir)
        try:
            ledger.set_meta("data_dir", str(Path(cfg.data_dir).resolve()))
            stats = rebuild(cfg, ledger, target)
            ledger.log(None, None, ACTOR, "recover", json.dumps(stats))
        finally:
            ledger.close()
    finally:
        target.close()
        lock.release()
    kept_txt = f"; the old ledger is kept as {kept.name}" if kept else ""
    return (f"rebuilt the ledger from {stats['tables']} table(s) in ClickHouse: {stats['loaded']} version(s) loaded "
            f"({stats['on_disk']} matched on disk, {stats['archived']} in the archive), {stats['requeued']} to "
            f"finish, {stats['quarantined']} quarantined{kept_txt}")
