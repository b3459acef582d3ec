"""Retention: `chute gc` and the engine's daily run.

- ``_archive/`` and ``_quarantine/``: files older than ``archive_keep`` / ``quarantine_keep``
  (age since they were moved aside: ctime, which a rename sets) are removed, then the oldest
  until the folder is under the size.
- The ledger: finished versions (loaded, duplicate, purged; superseded or moved-away failed and
  quarantined ones) last changed before ``ledger_keep``, whose file no longer sits at its path,
  are deleted with their batches; events older than ``ledger_keep`` too. Before a version goes,
  its sha256 goes to ``kept_hashes``: a copy of a pruned loaded file is still a duplicate, and
  a replay still gets a token generation never used (docs/ARCHITECTURE.md#generations). A loaded file still in the
  folder (``after_load = keep``) keeps its row: forgetting it would load it again as new.
- The events table is append-only (triggers). gc is its one sanctioned deleter: each chunk
  drops the delete trigger, deletes and re-creates it in one transaction (a crash rolls all
  three back), and the run is itself recorded as an event (actor ``gc``) with what it removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.core.sources import Keep, extra_sources, parse_age, primary_source

log = logging.getLogger("chute.gc")

CHUNK = 20_000
DAY_META = "gc_day"  # ledger meta: the local date of the last daily run
# Versions that will not change again. Failed (no retry scheduled) and quarantined ones too, once
# their file is gone from its path and from _quarantine/ (checked per row: `chute retry` needs them).
FINISHED = "('loaded', 'duplicate', 'purged')"
_TRIGGER = ("CREATE TRIGGER IF NOT EXISTS events_append_only_d BEFORE DELETE ON events"
            " BEGIN SELECT RAISE(ABORT, 'events is append-only'); END")


@dataclass
class Report:
    archive_files: int = 0
    archive_bytes: int = 0
    quarantine_files: int = 0
    quarantine_bytes: int = 0
    files_pruned: int = 0
    batches_pruned: int = 0
    events_pruned: int = 0
    hashes_kept: int = 0
    groups_pruned: int = 0
    intents_pruned: int = 0
    commands_pruned: int = 0
    ledger_bytes_before: int = 0
    ledger_bytes_after: int = 0
    vacuumed: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        parts = [f"archive: {self.archive_files} files ({self.archive_bytes} bytes)",
                 f"quarantine: {self.quarantine_files} files ({self.quarantine_bytes} bytes)",
                 f"ledger: {self.files_pruned} versions, {self.batches_pruned} batches, {self.events_pruned} events "
                 f"pruned, {self.hashes_kept} hashes kept",
                 f"closed: {self.groups_pruned} groups, {self.intents_pruned} intents, "
                 f"{self.commands_pruned} commands pruned",
                 f"ledger file {self.ledger_bytes_before} -> {self.ledger_bytes_after} bytes"]
        return "gc removed " + "; ".join(parts) + "".join(f"; {n}" for n in self.notes)


def _moved_aside_at(st: os.stat_result) -> float:
    # A rename keeps the mtime of the original and sets the ctime: the later one is when it arrived here.
    return max(st.st_mtime, st.st_ctime)


def prune_folder(folder: Path, keep: Keep, now: float) -> tuple[int, int]:
    """Remove files past ``keep`` under ``folder``: (files, bytes) removed."""
    if keep.unlimited or not folder.is_dir():
        return 0, 0
    entries = []
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            entries.append((_moved_aside_at(st), st.st_size, path))
    entries.sort()
    total = sum(size for _, size, _ in entries)
    removed = freed = 0
    for at, size, path in entries:
        too_old = keep.age is not None and now - at > keep.age
        too_big = keep.size is not None and total > keep.size
        if not (too_old or too_big):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("gc could not remove %s: %s", path, exc.strerror,
                        extra={"event": "gc_error", "path": str(path)})
            continue
        removed, freed, total = removed + 1, freed + size, total - size
    for dirpath, _dirs, _names in sorted(os.walk(folder), reverse=True):  # deepest first: empty folders go
        if Path(dirpath) != folder:
            with contextlib.suppress(OSError):  # not empty
                os.rmdir(dirpath)
    return removed, freed


def _prunable(conn: Any, cfg: Config, cutoff: float, after_id: int) -> tuple[list[int], int]:
    """One chunk of version ids gc may delete, and the last id looked at (0: done)."""
    rows = conn.execute(
        # Never the newest id: SQLite gives a new row MAX(id) + 1, so deleting the top row would hand
        # its ledger id (`chute files`, --id N, events) to the next file.
        "SELECT id, path, current, state, moved_to FROM files WHERE id > ? AND updated_at < ?"
        " AND id < (SELECT MAX(id) FROM files)"
        f" AND (state IN {FINISHED} OR (state IN ('failed', 'quarantined') AND next_attempt IS NULL))"
        " ORDER BY id LIMIT ?", (after_id, cutoff, CHUNK)).fetchall()
    ids = []
    for r in rows:
        # A file still at its path keeps its row: without it the next scan would take it as new.
        if (r["current"] or r["state"] == "failed") and os.path.lexists(cfg.locate(r["path"])):
            continue
        if r["state"] == "quarantined" and r["moved_to"] and os.path.lexists(cfg.locate(r["moved_to"])):
            continue  # still in _quarantine/: `chute retry` needs its row
        ids.append(r["id"])
    return ids, (rows[-1]["id"] if rows else 0)


def prune_ledger(ledger: Ledger, cfg: Config, keep_age: float, now: float, report: Report) -> None:
    cutoff = now - keep_age
    conn = ledger._conn
    last = 0
    while True:
        with ledger._lock:
            ids, last = _prunable(conn, cfg, cutoff, last)
        if ids:
            marks = ",".join("?" * len(ids))
            with ledger._tx() as c:
                kept = c.execute(
                    "INSERT INTO kept_hashes(sha256, file_id, path, table_name, rows, generation, loaded, loaded_at)"
                    " SELECT f.sha256, f.id, f.path, f.table_name, f.rows,"
                    "  IFNULL((SELECT MAX(b.generation) FROM batches b WHERE b.file_id = f.id), 0),"
                    "  f.state = 'loaded', f.loaded_at"
                    f" FROM files f WHERE f.id IN ({marks}) AND f.sha256 IS NOT NULL"
                    " ON CONFLICT(sha256) DO UPDATE SET generation = MAX(generation, excluded.generation),"
                    "  loaded = MAX(loaded, excluded.loaded),"
                    "  file_id = CASE WHEN excluded.loaded THEN excluded.file_id ELSE file_id END,"
                    "  path = CASE WHEN excluded.loaded THEN excluded.path ELSE path END",
                    ids).rowcount
                report.hashes_kept += max(kept, 0)
                report.batches_pruned += c.execute(f"DELETE FROM batches WHERE file_id IN ({marks})", ids).rowcount
                report.files_pruned += c.execute(f"DELETE FROM files WHERE id IN ({marks})", ids).rowcount
        if not last:
            break
    while True:
        with ledger._tx() as c:
            c.execute("DROP TRIGGER IF EXISTS events_append_only_d")
            n = c.execute("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts < ? ORDER BY id LIMIT ?)",
                          (cutoff, CHUNK)).rowcount
            c.execute(_TRIGGER)
        report.events_pruned += n
        if n < CHUNK:
            break
    _prune_closed(ledger, cutoff, report)


def _prune_closed(ledger: Ledger, cutoff: float, report: Report) -> None:
    """Closed groups (with their members), intents and answered commands closed before ``cutoff``.
    An open one never goes: an unacknowledged group is replayed, an open intent finished at start."""
    with ledger._tx() as c:
        old = "SELECT id FROM groups WHERE state != 'intent' AND closed < ?"
        c.execute(f"DELETE FROM group_members WHERE group_id IN ({old})", (cutoff,))
        report.groups_pruned += c.execute(f"DELETE FROM groups WHERE id IN ({old})", (cutoff,)).rowcount
        report.intents_pruned += c.execute("DELETE FROM intents WHERE status != 'open' AND closed < ?",
                                           (cutoff,)).rowcount
        report.commands_pruned += c.execute("DELETE FROM commands WHERE status != 'pending' AND done_at < ?",
                                            (cutoff,)).rowcount


def run(cfg: Config, ledger: Ledger, *, now: float | None = None, vacuum: bool = False,
        actor: str = "gc") -> Report:
    """One gc pass over the folders and the ledger, recorded in the audit trail."""
    t0 = time.perf_counter()
    now = time.time() if now is None else now
    report = Report(ledger_bytes_before=_ledger_bytes(ledger))
    primary = primary_source(cfg)
    folders = [(Path(cfg.data_dir), primary)] + [(Path(s.path), s) for s in extra_sources(cfg)]
    for root, source in folders:  # each folder its own _archive/ and _quarantine/, its own keep (or the top one)
        n, size = prune_folder(root / "_archive", Keep.parse((source and source.archive_keep) or cfg.archive_keep), now)
        report.archive_files, report.archive_bytes = report.archive_files + n, report.archive_bytes + size
        n, size = prune_folder(root / "_quarantine",
                               Keep.parse((source and source.quarantine_keep) or cfg.quarantine_keep), now)
        report.quarantine_files, report.quarantine_bytes = report.quarantine_files + n, report.quarantine_bytes + size
    if cfg.ledger_keep:
        prune_ledger(ledger, cfg, parse_age(cfg.ledger_keep), now, report)
    if vacuum and report.files_pruned + report.events_pruned:
        with ledger._lock:
            ledger._conn.execute("VACUUM")
            ledger._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        report.vacuumed = True
    report.ledger_bytes_after = _ledger_bytes(ledger)
    report.seconds = round(time.perf_counter() - t0, 3)
    ledger.log(None, None, actor, "gc", report.line())
    log.info("%s", report.line(), extra={"event": "gc", "duration_s": report.seconds,
                                         "files_pruned": report.files_pruned, "events_pruned": report.events_pruned})
    return report


def _ledger_bytes(ledger: Ledger) -> int:
    return sum(p.stat().st_size for p in ledger.path.parent.glob(ledger.path.name + "*") if p.is_file())


def configured(cfg: Config) -> bool:
    return bool(cfg.ledger_keep or cfg.archive_keep or cfg.quarantine_keep
                or any(s.archive_keep or s.quarantine_keep for s in cfg.sources))


class DailyGc:
    """The engine's automatic gc: once a day at ``gc_at`` (local), in its own thread (no VACUUM:
    free pages are reused, so the file stops growing; `chute gc` with no engine running shrinks it)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._day: str | None = None
        self._thread: threading.Thread | None = None

    def tick(self, now: float | None = None) -> bool:
        cfg = self.engine.cfg
        if not (cfg.gc_at and configured(cfg)) or (self._thread is not None and self._thread.is_alive()):
            return False
        now = time.time() if now is None else now
        local = time.localtime(now)
        today = time.strftime("%Y-%m-%d", local)
        hh, mm = (int(x) for x in cfg.gc_at.split(":"))
        if self._day is None and self.engine.ledger is not None:
            self._day = self.engine.ledger.meta(DAY_META) or ""  # a restart does not run it twice a day
        if (local.tm_hour, local.tm_min) < (hh, mm) or self._day == today:
            return False
        self._day = today
        if self.engine.ledger is not None:
            self.engine.ledger.set_meta(DAY_META, today)
        self._thread = threading.Thread(target=self._run, name="chute-gc", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        ledger = self.engine.ledger
        if ledger is None:
            return
        try:
            run(self.engine.cfg, ledger, actor="gc:daily")
        except Exception:
            log.exception("daily gc failed", extra={"event": "gc_error"})
