"""The ledger: every file version, its batches and an append-only audit trail, in SQLite.

One process writes (the engine, serialised by a lock); any number read at once (WAL), so
``chute status`` works while a daemon runs.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chute.core.errors import UsageError
from chute.core.private import private_file, tighten
from chute.core.states import State

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,            -- relative to DATA_DIR, POSIX separators
    current INTEGER NOT NULL DEFAULT 1,  -- the newest version at this path
    dev INTEGER, inode INTEGER, size INTEGER, mtime_ns INTEGER,
    complete_hint INTEGER NOT NULL DEFAULT 0,  -- close-write or moved-in was seen
    sha256 TEXT,
    table_name TEXT NOT NULL,
    fmt TEXT, compression TEXT,
    state TEXT NOT NULL,
    rows INTEGER,                  -- data rows parsed from the file
    rows_loaded INTEGER NOT NULL DEFAULT 0,
    batch_rows INTEGER,            -- B, fixed at the first attempt
    generation INTEGER NOT NULL DEFAULT 0,  -- bumped on replay after purge
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL,
    error_kind TEXT,
    last_error TEXT,
    reason TEXT,
    moved_to TEXT,
    approved INTEGER NOT NULL DEFAULT 0,  -- an operator released this version
    first_seen REAL NOT NULL,
    updated_at REAL NOT NULL,
    loaded_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS files_current_path ON files(path) WHERE current = 1;
CREATE INDEX IF NOT EXISTS files_state ON files(state, next_attempt);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
CREATE INDEX IF NOT EXISTS files_updated ON files(updated_at);
CREATE TABLE IF NOT EXISTS batches(
    file_id INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    token TEXT NOT NULL,
    rows INTEGER NOT NULL,
    state TEXT NOT NULL,           -- intent | done
    sent_at REAL NOT NULL,
    acked_at REAL,
    PRIMARY KEY(file_id, generation, idx)
);
CREATE INDEX IF NOT EXISTS batches_acked ON batches(acked_at);
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    file_id INTEGER,
    path TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS events_file ON events(file_id);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TRIGGER IF NOT EXISTS events_append_only_u BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_d BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events is append-only'); END;
CREATE TABLE IF NOT EXISTS commands(
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    action TEXT NOT NULL,
    path TEXT,
    actor TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | done | error
    result TEXT,
    done_at REAL
);
-- Retention (core/gc.py): the content hashes of pruned ledger rows, so a pruned loaded file's
-- copy is still a duplicate and a replay still gets a fresh token generation.
CREATE TABLE IF NOT EXISTS kept_hashes(
    sha256 TEXT PRIMARY KEY,
    file_id INTEGER NOT NULL,      -- the pruned version that loaded it (or the last one pruned)
    path TEXT NOT NULL,
    table_name TEXT NOT NULL,
    rows INTEGER,
    generation INTEGER NOT NULL DEFAULT 0,  -- highest token generation its batches used
    loaded INTEGER NOT NULL DEFAULT 0,      -- 1: its rows are in ClickHouse (a copy is a duplicate)
    loaded_at REAL
) WITHOUT ROWID;
-- Every version of a path (versions(), the changed-content check before each load): without it
-- a ledger of 1M rows scans the table per file (150 ms at 300k rows; 0.04 ms with it).
CREATE INDEX IF NOT EXISTS files_path ON files(path);
CREATE TABLE IF NOT EXISTS intents(  -- write-ahead operator actions (core/intents.py)
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL,
    action TEXT NOT NULL,          -- purge | retry | archive | delete
    actor TEXT NOT NULL,
    from_state TEXT NOT NULL,      -- the version's state when the action began
    args TEXT NOT NULL,            -- JSON: everything the effect needs to run again after a crash
    status TEXT NOT NULL DEFAULT 'open',  -- open | done | rolled_back
    created REAL NOT NULL,
    closed REAL,
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS intents_open ON intents(file_id) WHERE status = 'open';
-- Small files sharing one insert (core/groups.py, docs/ARCHITECTURE.md#groups): the group and its
-- members in their fixed order, written before the insert; one ack marks every member's batch 0.
CREATE TABLE IF NOT EXISTS groups(
    id INTEGER PRIMARY KEY,
    table_name TEXT NOT NULL,
    token TEXT NOT NULL,
    state TEXT NOT NULL,           -- intent | done | abandoned
    created REAL NOT NULL,
    closed REAL
);
CREATE TABLE IF NOT EXISTS group_members(
    group_id INTEGER NOT NULL,
    pos INTEGER NOT NULL,          -- the member's place in the insert
    file_id INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    PRIMARY KEY(group_id, pos)
);
CREATE INDEX IF NOT EXISTS group_members_file ON group_members(file_id, generation);
-- Files loaded in the last minute (files/min, in every snapshot the console asks for each
-- second): without it the count reads every row (~0.9 ms of CPU at 10,000 files).
CREATE INDEX IF NOT EXISTS files_loaded ON files(loaded_at);
"""

# Columns added after a ledger was first created, as (table, column, declaration): applied at
# open when missing, so an existing ledger upgrades in place. Append only; never rename or drop.
ADDED_COLUMNS: list[tuple[str, str, str]] = [
    ("commands", "file_id", "INTEGER"),  # the version an action names (None: the newest at path)
    ("commands", "expect", "TEXT"),  # the state the operator saw; the engine refuses if it changed
    # Change detection sees a rewrite that restored the mtime (watcher; NULL: recorded before this).
    ("files", "ctime_ns", "INTEGER"),
    # Growing files: this version loads only the bytes after `byte_base` of the loaded version
    # `base_id`, its rows numbered from `row_base` + 1 (core/growing.py).
    ("files", "base_id", "INTEGER"),
    ("files", "byte_base", "INTEGER NOT NULL DEFAULT 0"),
    ("files", "row_base", "INTEGER NOT NULL DEFAULT 0"),
]


class LedgerDamaged(UsageError):
    """The ledger file is not a readable SQLite database: one line, and the way out."""

    def __init__(self, path: Path, exc: BaseException) -> None:
        super().__init__(f"the ledger {path} is damaged ({exc}); `chute recover` rebuilds it from ClickHouse's "
                         "lineage columns (the damaged file is kept)")
        self.path = path


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    current: int
    dev: int | None
    inode: int | None
    size: int | None
    mtime_ns: int | None
    complete_hint: int
    sha256: str | None
    table_name: str
    fmt: str | None
    compression: str | None
    state: State
    rows: int | None
    rows_loaded: int
    batch_rows: int | None
    generation: int
    attempts: int
    next_attempt: float | None
    error_kind: str | None
    last_error: str | None
    reason: str | None
    moved_to: str | None
    approved: int
    first_seen: float
    updated_at: float
    loaded_at: float | None
    ctime_ns: int | None = None
    base_id: int | None = None
    byte_base: int = 0
    row_base: int = 0

    @classmethod
    def of(cls, row: sqlite3.Row, **changed: Any) -> FileRow:
        data = dict(row)
        data["state"] = State(data["state"])
        return cls(**{**data, **changed})

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["state"] = str(self.state)
        return out


@dataclass(frozen=True)
class GroupMember:
    """One file version in a group's insert (core/groups.py)."""

    file_id: int
    generation: int
    sha256: str
    rows: int
    batch_rows: int = 0  # B to fix for the version (group intent only)


@dataclass(frozen=True)
class Event:
    id: int
    ts: float
    file_id: int | None
    path: str | None
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    detail: str | None


def same_identity(row: FileRow, st: os.stat_result) -> bool:
    """Is ``st`` the file version ``row`` recorded? (dev, inode, size, mtime and, when recorded, ctime)"""
    if (row.dev, row.inode, row.size, row.mtime_ns) != (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
        return False
    return row.ctime_ns is None or row.ctime_ns == st.st_ctime_ns


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    """The file itself is broken (not a full disk, a lock or a permission): `chute recover` is the way out."""
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


def connect(path: Path, readonly: bool = False, immutable: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro{'&immutable=1' if immutable else ''}", uri=True, timeout=10,
                               check_same_thread=False)
    else:
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: an intent or a fixed batch size survives power loss, like the rows chDB fsyncs.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Ledger:
    """Thread-safe access to the ledger database in ``state_dir``."""

    FILENAME = "ledger.sqlite3"

    def __init__(self, state_dir: Path, readonly: bool = False) -> None:
        self.path = Path(state_dir) / self.FILENAME
        self.readonly = readonly
        self._lock = threading.RLock()
        if not readonly:
            private_file(self.path)  # 0600 before SQLite creates it (its -wal/-shm copy the mode)
        try:
            try:
                self._conn = connect(self.path, readonly)
                self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                if not readonly:
                    raise
                # A reader cannot create the -shm file on a full disk: read the file as it stands.
                self._conn = connect(self.path, readonly, immutable=True)
                self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if not readonly:
                self._create_schema()
                self._add_missing_columns()
                tighten(Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise UsageError(f"cannot open the ledger {self.path}: {exc} (is its disk full?)") from None
            raise LedgerDamaged(self.path, exc) from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError:  # disk full at commit: never leave the shared connection mid-transaction
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _q(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, tuple(args)).fetchall()

    def _create_schema(self) -> None:
        """Every table of a new ledger in one transaction: one fsync, not one per statement (a new
        ledger took ~0.1 s to create, each bench run's first step; issue 12). A ledger that has them
        writes nothing."""
        try:
            self._conn.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nINSERT OR IGNORE INTO meta(key, value) VALUES"
                                     f" ('schema_version', '{int(SCHEMA_VERSION)}');\nCOMMIT;")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _add_missing_columns(self) -> None:
        with self._tx() as c:
            for table, column, decl in ADDED_COLUMNS:
                have = {r["name"] for r in c.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    def meta(self, key: str) -> str | None:
        rows = self._q("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                      (key, value, value))

    @staticmethod
    def _event(c: sqlite3.Connection, file_id: int | None, path: str | None, actor: str, action: str,
               from_state: str | None, to_state: str | None, detail: str | None, ts: float) -> None:
        c.execute(
            "INSERT INTO events(ts, file_id, path, actor, action, from_state, to_state, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (ts, file_id, path, actor, action, from_state, to_state, detail),
        )

    # -- files ----------------------------------------------------------------------------

    def get(self, file_id: int) -> FileRow | None:
        rows = self._q("SELECT * FROM files WHERE id = ?", (file_id,))
        return FileRow.of(rows[0]) if rows else None

    def current(self, path: str) -> FileRow | None:
        rows = self._q("SELECT * FROM files WHERE path = ? AND current = 1", (path,))
        return FileRow.of(rows[0]) if rows else None

    def current_many(self, paths: list[str]) -> dict[str, FileRow]:
        """`current` of many paths in a few queries (a `--once` run's result over thousands of files)."""
        with self._lock:
            return {r["path"]: FileRow.of(r) for r in _in_chunks(
                self._conn, "SELECT * FROM files WHERE current = 1 AND path IN ({})", paths)}

    def versions(self, path: str) -> list[FileRow]:
        return [FileRow.of(r) for r in self._q("SELECT * FROM files WHERE path = ? ORDER BY id", (path,))]

    def observe(self, path: str, st: os.stat_result, table: str, fmt: str | None, compression: str | None,
                complete: bool, now: float | None = None) -> tuple[FileRow, bool]:
        """Record a sighting of ``path``. Returns (row, changed).

        A path with no current version, or whose current version is past loading and now
        has a different identity (dev, inode, size, mtime, ctime), gets a new version in state
        `seen`. A version still waiting (seen/settling/queued/failed) is updated in place.
        The ctime catches an in-place rewrite whose mtime was put back; a version recorded
        before ctimes were kept (NULL) is compared without it, and gets it filled in.
        """
        now = time.time() if now is None else now
        with self._tx() as c:
            return self._observe(c, path, st, table, fmt, compression, complete, now)

    def observe_many(self, sightings: list[tuple[str, os.stat_result, str, str | None, str | None, bool]]
                     ) -> list[tuple[FileRow, bool]]:
        """`observe` of many (path, stat, table, fmt, compression, complete) in one transaction: a
        scan that finds thousands of new files pays one fsync, not one per file."""
        now = time.time()
        with self._tx() as c:
            return [self._observe(c, *sighting, now) for sighting in sightings]

    def _observe(self, c: sqlite3.Connection, path: str, st: os.stat_result, table: str, fmt: str | None,
                 compression: str | None, complete: bool, now: float) -> tuple[FileRow, bool]:
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        row = c.execute("SELECT * FROM files WHERE path = ? AND current = 1", (path,)).fetchone()
        if row is not None:
            old = FileRow.of(row)
            same = same_identity(old, st)
            if same:
                if old.ctime_ns is None:
                    c.execute("UPDATE files SET ctime_ns = ? WHERE id = ?", (st.st_ctime_ns, old.id))
                if complete and not old.complete_hint:
                    c.execute("UPDATE files SET complete_hint = 1 WHERE id = ?", (old.id,))
                return old, False
            sent = c.execute("SELECT 1 FROM batches WHERE file_id = ? LIMIT 1", (old.id,)).fetchone()
            if old.state in (State.SEEN, State.SETTLING, State.QUEUED) and not old.rows_loaded and not sent:
                # Still being written: keep settling on the same version.
                c.execute(
                    "UPDATE files SET dev=?, inode=?, size=?, mtime_ns=?, ctime_ns=?, complete_hint=?, sha256=NULL,"
                    " updated_at=? WHERE id = ?",
                    (*ident, int(complete), now, old.id),
                )
                new = c.execute("SELECT * FROM files WHERE id = ?", (old.id,)).fetchone()
                return FileRow.of(new), True
            if old.state == State.LOADING:
                # The loader notices the change itself (it re-stats the open file).
                return old, False
            if c.execute("SELECT 1 FROM intents WHERE file_id = ? AND status = 'open' AND action = 'retry'",
                         (old.id,)).fetchone():
                # A retry is moving this very file back; it records the new identity itself.
                return old, False
            c.execute("UPDATE files SET current = 0 WHERE id = ?", (old.id,))
            if old.state not in (State.LOADED, State.DUPLICATE, State.QUARANTINED, State.PURGED, State.HELD):
                # Superseded before it finished: it never runs again; its partial rows (if any)
                # are removed when the new version loads.
                c.execute("UPDATE files SET state = 'failed', error_kind = 'superseded', next_attempt = NULL,"
                          " last_error = 'superseded by a newer version of the file', updated_at = ?"
                          " WHERE id = ?", (now, old.id))
                self._event(c, old.id, path, "watcher", "transition", old.state, State.FAILED,
                            "superseded by a newer version of the file", now)
        cur = c.execute(
            "INSERT INTO files(path, dev, inode, size, mtime_ns, ctime_ns, complete_hint, table_name, fmt,"
            " compression, state, first_seen, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (path, *ident, int(complete), table, fmt, compression, State.SEEN, now, now),
        )
        fid = cur.lastrowid
        detail = "new version of a known path" if row is not None else None
        self._event(c, fid, path, "watcher", "transition", None, State.SEEN, detail, now)
        new = c.execute("SELECT * FROM files WHERE id = ?", (fid,)).fetchone()
        return FileRow.of(new), True

    def transition(self, file_id: int, to: State, *, actor: str = "engine", detail: str | None = None,
                   expect: Iterable[State] | None = None, done_intent: tuple[int, str] | None = None,
                   **fields: Any) -> FileRow | None:
        """Move a file to ``to`` (optionally only from ``expect``), update fields, log the event.
        ``done_intent`` (id, outcome): the action that made this move closes in the same commit, so
        no reader sees the new state with the action still open (an operator's retry of a file just
        quarantined was refused as "unfinished"; a file just retried was loaded with its retry open,
        and its archive or quarantine then refused).

        Returns the new row, or None when the file was not in an expected state (the intent stays open).
        """
        with self._tx() as c:
            out = self._transition(c, file_id, to, actor, detail, expect, fields, time.time())
            if out is not None and done_intent is not None:
                self._close_intent(c, done_intent[0], "done", done_intent[1])
        return out

    def transition_many(self, moves: list[tuple[int, dict[str, Any]]], to: State, *, actor: str = "engine",
                        expect: Iterable[State] | None = None) -> list[int]:
        """`transition` of many versions (id, fields) in one transaction and a few statements: one
        fsync for a scan's files, not one each. Returns the ids that moved."""
        now = time.time()
        wanted = None if expect is None else {str(s) for s in expect}
        with self._tx() as c:
            old = {r["id"]: (r["path"], r["state"]) for r in _in_chunks(
                c, "SELECT id, path, state FROM files WHERE id IN ({})", [fid for fid, _ in moves])}
            moved = [(fid, fields) for fid, fields in moves
                     if fid in old and (wanted is None or old[fid][1] in wanted)]
            shapes: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
            for fid, fields in moved:
                shapes.setdefault(tuple(fields), []).append((*fields.values(), str(to), now, fid))
            for cols, args in shapes.items():
                sets = ", ".join(f"{k} = ?" for k in (*cols, "state", "updated_at"))
                c.executemany(f"UPDATE files SET {sets} WHERE id = ?", args)
            c.executemany("INSERT INTO events(ts, file_id, path, actor, action, from_state, to_state, detail)"
                          " VALUES (?, ?, ?, ?, 'transition', ?, ?, NULL)",
                          [(now, fid, old[fid][0], actor, old[fid][1], str(to)) for fid, _ in moved
                           if old[fid][1] != str(to)])
        return [fid for fid, _ in moved]

    def _transition(self, c: sqlite3.Connection, file_id: int, to: State, actor: str, detail: str | None,
                    expect: Iterable[State] | None, fields: dict[str, Any], now: float) -> FileRow | None:
        row = c.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            return None
        old = State(row["state"])
        if expect is not None and old not in set(expect):
            return None
        fields["state"] = str(to)
        fields["updated_at"] = now
        cols = ", ".join(f"{k} = ?" for k in fields)
        c.execute(f"UPDATE files SET {cols} WHERE id = ?", (*fields.values(), file_id))
        if old != to or detail:
            self._event(c, file_id, row["path"], actor, "transition", old, to, detail, now)
        return FileRow.of(c.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone())

    def claim(self, file_id: int) -> FileRow | None:
        """Move a version to `loading` if it is still runnable *and* still the current version of
        its path, in one transaction (the watcher may supersede it after the dispatcher chose it)."""
        with self._tx() as c:
            return self._claim(c, file_id, time.time())

    def claim_many(self, file_ids: list[int]) -> list[FileRow]:
        """`claim` for several versions in one transaction (a group, core/groups.py); the claimed ones,
        in the order given."""
        now = time.time()
        with self._tx() as c:
            rows = {r["id"]: r for r in _in_chunks(c, "SELECT * FROM files WHERE id IN ({})", file_ids)}
            busy = {r["file_id"] for r in _in_chunks(
                c, "SELECT file_id FROM intents WHERE status = 'open' AND file_id IN ({})", file_ids)}
            claimed = [rows[fid] for fid in file_ids if fid in rows and _runnable(rows[fid], fid in busy)]
            c.executemany("UPDATE files SET state = 'loading', next_attempt = NULL, updated_at = ? WHERE id = ?",
                          [(now, r["id"]) for r in claimed])
            c.executemany("INSERT INTO events(ts, file_id, path, actor, action, from_state, to_state, detail)"
                          " VALUES (?, ?, ?, 'engine', 'transition', ?, 'loading', NULL)",
                          [(now, r["id"], r["path"], r["state"]) for r in claimed])
        return [FileRow.of(r, state=State.LOADING, next_attempt=None, updated_at=now) for r in claimed]

    def _claim(self, c: sqlite3.Connection, file_id: int, now: float) -> FileRow | None:
        row = c.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        busy = c.execute("SELECT 1 FROM intents WHERE file_id = ? AND status = 'open'", (file_id,)).fetchone()
        if row is None or not _runnable(row, busy is not None):
            return None
        c.execute("UPDATE files SET state = 'loading', next_attempt = NULL, updated_at = ? WHERE id = ?",
                  (now, file_id))
        self._event(c, file_id, row["path"], "engine", "transition", row["state"], State.LOADING, None, now)
        return FileRow.of(c.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone())

    def update(self, file_id: int, **fields: Any) -> None:
        """Change fields without a state transition (sha256, rows, progress)."""
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as c:
            c.execute(f"UPDATE files SET {cols} WHERE id = ?", (*fields.values(), file_id))

    def log(self, file_id: int | None, path: str | None, actor: str, action: str, detail: str | None = None) -> None:
        """An audit entry that is not a state change (operator command, note)."""
        with self._tx() as c:
            self._event(c, file_id, path, actor, action, None, None, detail, time.time())

    def in_states(self, states: Iterable[State], limit: int = 10_000) -> list[FileRow]:
        names = [str(s) for s in states]
        marks = ",".join("?" * len(names))
        rows = self._q(f"SELECT * FROM files WHERE state IN ({marks}) ORDER BY id LIMIT ?", (*names, limit))
        return [FileRow.of(r) for r in rows]

    def has_pending(self, exclude_paths: Iterable[str] = ()) -> bool:
        """Is any version still on its way (seen to loading, or failed with a retry due)? Two indexed
        look-ups, however many finished versions the ledger holds. ``exclude_paths``: seen/settling
        versions at these paths do not count (files parked on a missing done-marker)."""
        ex = list(exclude_paths)
        parked = (f" OR (state IN ('seen', 'settling') AND path NOT IN ({','.join('?' * len(ex))}))" if ex
                  else " OR state IN ('seen', 'settling')")
        rows = self._q(f"SELECT EXISTS(SELECT 1 FROM files WHERE state IN ('queued', 'loading'){parked})"
                       " OR EXISTS(SELECT 1 FROM files WHERE state = 'failed' AND next_attempt IS NOT NULL) AS p", ex)
        return bool(rows[0]["p"])

    def runnable(self, now: float, exclude: Iterable[int] = (), limit: int = 16) -> list[FileRow]:
        """Queued files, and failed ones whose next attempt is due, oldest first; files of a type chute
        cannot read after the others (they are only moved aside: a flood of them must not hold up data)."""
        ex = list(exclude)
        # An empty `NOT IN ()` is spelled away: `NOT IN (NULL)` would match nothing.
        skip = f" AND id NOT IN ({','.join('?' * len(ex))})" if ex else ""
        rows = self._q(
            f"SELECT * FROM files WHERE current = 1"
            f" AND ((state = 'queued' AND (next_attempt IS NULL OR next_attempt <= ?))"
            f" OR (state = 'failed' AND next_attempt IS NOT NULL AND next_attempt <= ?))"
            f"{skip} ORDER BY fmt IS NULL, id LIMIT ?",
            (now, now, *ex, limit),
        )
        return [FileRow.of(r) for r in rows]

    def by_sha(self, sha256: str, states: Iterable[State], exclude_id: int) -> FileRow | None:
        names = [str(s) for s in states]
        marks = ",".join("?" * len(names))
        rows = self._q(
            f"SELECT * FROM files WHERE sha256 = ? AND id != ? AND state IN ({marks}) ORDER BY id LIMIT 1",
            (sha256, exclude_id, *names),
        )
        if rows:
            return FileRow.of(rows[0])
        return self._kept(sha256, exclude_id) if str(State.LOADED) in names else None

    def _kept(self, sha256: str, exclude_id: int) -> FileRow | None:
        """A loaded version that gc pruned from ``files``, rebuilt from ``kept_hashes`` (core/gc.py)."""
        rows = self._q("SELECT * FROM kept_hashes WHERE sha256 = ? AND loaded = 1 AND file_id != ?",
                       (sha256, exclude_id))
        if not rows:
            return None
        k = rows[0]
        return FileRow(id=k["file_id"], path=k["path"], current=0, dev=None, inode=None, size=None, mtime_ns=None,
                       complete_hint=0, sha256=sha256, table_name=k["table_name"], fmt=None, compression=None,
                       state=State.LOADED, rows=k["rows"], rows_loaded=k["rows"] or 0, batch_rows=None,
                       generation=k["generation"], attempts=0, next_attempt=None, error_kind=None, last_error=None,
                       reason="pruned from the ledger by gc; its hash is kept", moved_to=None, approved=0,
                       first_seen=k["loaded_at"] or 0.0, updated_at=k["loaded_at"] or 0.0, loaded_at=k["loaded_at"])

    def list_files(self, state: str | None = None, limit: int | None = None, current_only: bool = False,
                   search: str | None = None) -> list[FileRow]:
        where, args = [], []
        if state:
            where.append("state = ?")
            args.append(state)
        if current_only:
            where.append("current = 1")
        if search:
            where.append("(path LIKE ? OR table_name LIKE ? OR IFNULL(last_error, '') LIKE ?)")
            args += [f"%{search}%"] * 3
        sql = "SELECT * FROM files" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY updated_at DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [FileRow.of(r) for r in self._q(sql, args)]

    def versions_with_sha(self, sha256: str) -> list[FileRow]:
        return [FileRow.of(r) for r in self._q("SELECT * FROM files WHERE sha256 = ? ORDER BY id", (sha256,))]

    def changed_since(self, since: float, after_id: int | None = None, limit: int = 5000) -> list[FileRow]:
        """Versions updated at or after ``since`` (with ``after_id``: after (since, after_id), for the next
        page), oldest change first (the fleet mirror's feed)."""
        if after_id is None:
            rows = self._q("SELECT * FROM files WHERE updated_at >= ? ORDER BY updated_at, id LIMIT ?", (since, limit))
        else:
            rows = self._q("SELECT * FROM files WHERE updated_at > ? OR (updated_at = ? AND id > ?)"
                           " ORDER BY updated_at, id LIMIT ?", (since, since, after_id, limit))
        return [FileRow.of(r) for r in rows]

    def iter_files_json(self, state: str | None = None, limit: int | None = None,
                        chunk: int = 2_000) -> Iterator[str]:
        """`list_files` as JSON text, one FileRow.as_dict() object per row, newest first. SQLite writes
        the JSON (a third of the CPU of Python's json module), and rows are read chunk by chunk on a
        connection of its own, so the caller writes the first line while the rest are still on disk."""
        fields = FileRow.__dataclass_fields__
        # Laid out as json.dumps does ({"key": value, ...}: scripts match on that); REAL columns as 17
        # significant digits, which read back as the very same float.
        def value(name: str, kind: str) -> str:  # kind: the field's annotation
            if kind.startswith("int"):
                return f"ifnull({name}, 'null')"
            if kind.startswith("float"):
                return f"CASE WHEN {name} IS NULL THEN 'null' ELSE printf('%!.17g', {name}) END"
            return f"json_quote({name})"

        # One printf per row, not 60 concatenations (each copies the growing text): a quarter less CPU.
        layout = "{" + ", ".join(f'"{name}": %s' for name in fields) + "}"
        sql = f"SELECT printf('{layout}', " + ", ".join(value(name, str(f.type)) for name, f in fields.items()) + ")"
        sql += " FROM files" + (" WHERE state = ?" if state else "")
        sql += " ORDER BY updated_at DESC, id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        conn = connect(self.path, readonly=True)
        conn.row_factory = None
        try:
            cur = conn.execute(sql, (state,) if state else ())
            size = 64  # a small first read: the first line goes out before the rest is fetched
            while rows := cur.fetchmany(size):
                for (text,) in rows:
                    yield text
                size = chunk
        finally:
            conn.close()

    def counts(self) -> dict[str, int]:
        return {r["state"]: r["n"] for r in self._q("SELECT state, count(*) AS n FROM files GROUP BY state")}

    def recover_interrupted(self) -> list[FileRow]:
        """At start: a version left `loading` by a crash goes back to `queued` (its acks are kept)."""
        rows = self.in_states([State.LOADING])
        for row in rows:
            self.transition(row.id, State.QUEUED, detail="recovered: was loading when chute stopped")
        return rows

    # -- batches (docs/ARCHITECTURE.md#intent-and-ack) ---------------------------------

    def done_batches(self, file_id: int, generation: int) -> dict[int, int]:
        rows = self._q("SELECT idx, rows FROM batches WHERE file_id = ? AND generation = ? AND state = 'done'",
                       (file_id, generation))
        return {r["idx"]: r["rows"] for r in rows}

    def batch_tokens(self, file_id: int, generation: int) -> dict[int, str]:
        """{batch index: token} of every batch of this generation sent (acknowledged or not)."""
        rows = self._q("SELECT idx, token FROM batches WHERE file_id = ? AND generation = ?", (file_id, generation))
        return {r["idx"]: r["token"] for r in rows}

    def any_batches(self, file_id: int, generation: int) -> bool:
        """Was any batch of this generation sent (acknowledged or not)?"""
        rows = self._q("SELECT 1 FROM batches WHERE file_id = ? AND generation = ? LIMIT 1", (file_id, generation))
        return bool(rows)

    def intent(self, file_id: int, generation: int, idx: int, token: str, rows: int) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO batches(file_id, generation, idx, token, rows, state, sent_at) VALUES (?,?,?,?,?,?,?)"
                " ON CONFLICT(file_id, generation, idx) DO UPDATE SET sent_at = excluded.sent_at",
                (file_id, generation, idx, token, rows, "intent", time.time()),
            )

    def ack(self, file_id: int, generation: int, idx: int, rows_loaded: int) -> None:
        now = time.time()
        with self._tx() as c:
            c.execute("UPDATE batches SET state = 'done', acked_at = ? WHERE file_id = ? AND generation = ?"
                      " AND idx = ?", (now, file_id, generation, idx))
            c.execute("UPDATE files SET rows_loaded = ?, updated_at = ? WHERE id = ?", (rows_loaded, now, file_id))

    def loaded_since(self, since: float) -> int:
        rows = self._q("SELECT count(*) AS n FROM files WHERE loaded_at >= ?", (since,))
        return int(rows[0]["n"])

    def token_generation(self, sha256: str, file_id: int, generation: int) -> int:
        """A generation whose tokens no earlier version of this content ever used (docs/ARCHITECTURE.md#generations)."""
        rows = self._q(
            "SELECT MAX(b.generation) AS g FROM batches b JOIN files f ON f.id = b.file_id"
            " WHERE f.sha256 = ? AND f.id != ?", (sha256, file_id))
        kept = self._q("SELECT generation FROM kept_hashes WHERE sha256 = ? AND file_id != ?", (sha256, file_id))
        used = max([g for g in (rows[0]["g"], kept[0]["generation"] if kept else None) if g is not None], default=None)
        return generation if used is None else max(generation, used + 1)

    def rows_acked_since(self, since: float) -> int:
        rows = self._q("SELECT IFNULL(SUM(rows), 0) AS n FROM batches WHERE acked_at >= ?", (since,))
        return int(rows[0]["n"])

    def rows_acked_per_minute(self, since: float, until: float) -> dict[int, int]:
        """Rows acknowledged in [since, until), by wall-clock minute (its start): core/tally.py."""
        rows = self._q("SELECT CAST(acked_at / 60 AS INTEGER) * 60 AS m, SUM(rows) AS n FROM batches"
                       " WHERE acked_at >= ? AND acked_at < ? GROUP BY m", (since, until))
        return {int(r["m"]): int(r["n"]) for r in rows}

    # -- events ---------------------------------------------------------------------------

    def events(self, since: float | None = None, file_id: int | None = None, limit: int = 1000) -> list[Event]:
        where, args = [], []
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if file_id is not None:
            where.append("file_id = ?")
            args.append(file_id)
        sql = "SELECT * FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC LIMIT ?"
        return [Event(**dict(r)) for r in reversed(self._q(sql, (*args, limit)))]

    # -- monitoring (core/alerts.py, core/metrics.py) ------------------------------------

    def outcomes_since(self, since: float, states: Iterable[State]) -> dict[str, int]:
        """How many transitions into each of ``states`` the audit trail holds since ``since`` (indexed by ts)."""
        names = [str(s) for s in states]
        marks = ",".join("?" * len(names))
        rows = self._q(f"SELECT to_state, count(*) AS n FROM events WHERE ts >= ? AND to_state IN ({marks})"
                       " GROUP BY to_state", (since, *names))
        return {r["to_state"]: int(r["n"]) for r in rows}

    def outcomes_per_minute(self, since: float, until: float, states: Iterable[State]) -> dict[int, dict[str, int]]:
        """Transitions into each of ``states`` in [since, until), by wall-clock minute (its start).
        A finished minute never changes, so the console counts it once (tui/view.py)."""
        names = [str(s) for s in states]
        marks = ",".join("?" * len(names))
        rows = self._q(f"SELECT CAST(ts / 60 AS INTEGER) * 60 AS m, to_state, count(*) AS n FROM events"
                       f" WHERE ts >= ? AND ts < ? AND to_state IN ({marks}) GROUP BY m, to_state",
                       (since, until, *names))
        out: dict[int, dict[str, int]] = {}
        for r in rows:
            out.setdefault(int(r["m"]), {})[r["to_state"]] = int(r["n"])
        return out

    def oldest_in(self, states: Iterable[State]) -> FileRow | None:
        """The version in one of ``states`` that chute first saw longest ago."""
        names = [str(s) for s in states]
        marks = ",".join("?" * len(names))
        rows = self._q(f"SELECT * FROM files WHERE state IN ({marks}) ORDER BY first_seen, id LIMIT 1", names)
        return FileRow.of(rows[0]) if rows else None

    def retry_scheduled(self) -> int:
        """Failed versions with a next attempt due (the rest wait for `chute retry`)."""
        rows = self._q("SELECT count(*) AS n FROM files WHERE state = 'failed' AND next_attempt IS NOT NULL")
        return int(rows[0]["n"])

    def load_attempts(self, file_ids: Iterable[int]) -> dict[int, int]:
        """Times each version started loading, from the audit trail (a retry resets ``attempts``,
        which paces the backoff; the operator wants every try)."""
        ids = list(file_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._q(f"SELECT file_id, count(*) AS n FROM events WHERE file_id IN ({marks}) AND to_state = ?"
                       " GROUP BY file_id", (*ids, str(State.LOADING)))
        return {int(r["file_id"]): int(r["n"]) for r in rows}

    def acked_per_second(self, since: float, until: float) -> list[tuple[float, int, int]]:
        """(second, rows, bytes) acknowledged per second in [since, until]; bytes estimated per file
        from its size and row count."""
        rows = self._q(
            "SELECT CAST(b.acked_at AS INTEGER) AS s, SUM(b.rows) AS r,"
            " SUM(b.rows * IFNULL(f.size * 1.0 / NULLIF(f.rows, 0), 0)) AS n"
            " FROM batches b JOIN files f ON f.id = b.file_id"
            " WHERE b.acked_at >= ? AND b.acked_at <= ? GROUP BY s ORDER BY s", (since, until))
        return [(float(r["s"]), int(r["r"]), int(r["n"])) for r in rows]

    def recent_errors(self, limit: int = 20) -> list[FileRow]:
        rows = self._q(
            "SELECT * FROM files WHERE last_error IS NOT NULL AND state IN ('failed', 'quarantined', 'held')"
            " ORDER BY updated_at DESC LIMIT ?", (limit,))
        return [FileRow.of(r) for r in rows]

    # -- commands (the local channel: `chute approve|retry|purge` and `attach`) -----------

    def enqueue_command(self, action: str, path: str | None, actor: str, file_id: int | None = None,
                        expect: str | None = None) -> int:
        with self._tx() as c:
            cur = c.execute("INSERT INTO commands(ts, action, path, actor, file_id, expect) VALUES (?, ?, ?, ?, ?, ?)",
                            (time.time(), action, path, actor, file_id, expect))
            return int(cur.lastrowid or 0)

    def pending_commands(self) -> list[sqlite3.Row]:
        return self._q("SELECT * FROM commands WHERE status = 'pending' ORDER BY id")

    def finish_command(self, command_id: int, ok: bool, result: str) -> None:
        with self._tx() as c:
            c.execute("UPDATE commands SET status = ?, result = ?, done_at = ? WHERE id = ?",
                      ("done" if ok else "error", result, time.time(), command_id))

    def withdraw_command(self, command_id: int, result: str) -> bool:
        """Take back a command no daemon has picked up (its asker saw the daemon stop), so the next
        daemon does not carry it out later. False when a daemon has already answered it."""
        with self._tx() as c:
            cur = c.execute("UPDATE commands SET status = 'error', result = ?, done_at = ? WHERE id = ? "
                            "AND status = 'pending'", (result, time.time(), command_id))
            return cur.rowcount == 1

    def command(self, command_id: int) -> sqlite3.Row | None:
        rows = self._q("SELECT * FROM commands WHERE id = ?", (command_id,))
        return rows[0] if rows else None

    # -- intents (write-ahead operator actions, core/intents.py) --------------------------

    def open_intent(self, file_id: int, action: str, actor: str, args: str, *, expect: Iterable[State],
                    **fields: Any) -> int | None:
        """Record an intent for ``file_id`` if it is in one of ``expect`` and has no other open
        intent, and update ``fields`` in the same transaction. Returns the intent id or None."""
        now = time.time()
        with self._tx() as c:
            row = c.execute("SELECT state, path FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None or State(row["state"]) not in set(expect):
                return None
            if c.execute("SELECT 1 FROM intents WHERE file_id = ? AND status = 'open'", (file_id,)).fetchone():
                return None
            cur = c.execute("INSERT INTO intents(file_id, action, actor, from_state, args, created)"
                            " VALUES (?, ?, ?, ?, ?, ?)", (file_id, action, actor, row["state"], args, now))
            if fields:
                fields["updated_at"] = now
                cols = ", ".join(f"{k} = ?" for k in fields)
                c.execute(f"UPDATE files SET {cols} WHERE id = ?", (*fields.values(), file_id))
            self._event(c, file_id, row["path"], actor, f"{action} intent", None, None, None, now)
            return int(cur.lastrowid or 0)

    def close_intent(self, intent_id: int, status: str, outcome: str) -> None:
        with self._tx() as c:
            self._close_intent(c, intent_id, status, outcome)

    @staticmethod
    def _close_intent(c: sqlite3.Connection, intent_id: int, status: str, outcome: str) -> None:
        c.execute("UPDATE intents SET status = ?, outcome = ?, closed = ? WHERE id = ? AND status = 'open'",
                  (status, outcome, time.time(), intent_id))

    def open_intent_count(self) -> int:
        """Actions begun and not finished, for status lines (a partial index keeps it cheap)."""
        try:
            return int(self._q("SELECT count(*) FROM intents WHERE status = 'open'")[0][0])
        except sqlite3.OperationalError:  # a ledger from before intents, opened read-only (not upgraded)
            return 0

    def open_intents(self, file_id: int | None = None) -> list[sqlite3.Row]:
        if file_id is None:
            return self._q("SELECT * FROM intents WHERE status = 'open' ORDER BY id")
        return self._q("SELECT * FROM intents WHERE status = 'open' AND file_id = ? ORDER BY id", (file_id,))

    # -- rebuilding (chute recover, core/recover.py) --------------------------------------

    def insert_version(self, fields: dict[str, Any], actor: str, detail: str) -> int:
        """A version reconstructed from outside the ledger (ClickHouse's lineage columns)."""
        now = time.time()
        fields = {"first_seen": now, "updated_at": now, **fields}
        cols = ", ".join(fields)
        with self._tx() as c:
            cur = c.execute(f"INSERT INTO files({cols}) VALUES ({', '.join('?' * len(fields))})",
                            tuple(str(v) if isinstance(v, State) else v for v in fields.values()))
            fid = int(cur.lastrowid or 0)
            self._event(c, fid, fields["path"], actor, "transition", None, str(fields["state"]), detail, now)
            return fid

    # -- groups: small files sharing one insert (core/groups.py, docs/ARCHITECTURE.md#groups) --------

    def group_intent(self, table: str, token: str, members: list[GroupMember]) -> int:
        """Write-ahead, in one transaction: the group, its members in order, each member's batch 0
        as an intent under the group's token, and each member's hash, rows and B."""
        now = time.time()
        with self._tx() as c:
            gid = int(c.execute("INSERT INTO groups(table_name, token, state, created) VALUES (?, ?, 'intent', ?)",
                                (table, token, now)).lastrowid or 0)
            c.executemany("INSERT INTO group_members(group_id, pos, file_id, generation, sha256, rows)"
                          " VALUES (?, ?, ?, ?, ?, ?)",
                          [(gid, pos, m.file_id, m.generation, m.sha256, m.rows) for pos, m in enumerate(members)])
            c.executemany("INSERT INTO batches(file_id, generation, idx, token, rows, state, sent_at)"
                          " VALUES (?, ?, 0, ?, ?, 'intent', ?) ON CONFLICT(file_id, generation, idx)"
                          " DO UPDATE SET token = excluded.token, sent_at = excluded.sent_at",
                          [(m.file_id, m.generation, token, m.rows, now) for m in members])
            c.executemany("UPDATE files SET sha256 = ?, rows = ?, batch_rows = IFNULL(batch_rows, ?), updated_at = ?"
                          " WHERE id = ?", [(m.sha256, m.rows, m.batch_rows, now, m.file_id) for m in members])
            return gid

    def group_ack(self, group_id: int) -> None:
        """ClickHouse acknowledged the group's insert: every member's batch 0 is done, in one transaction."""
        now = time.time()
        with self._tx() as c:
            c.execute("UPDATE groups SET state = 'done', closed = ? WHERE id = ? AND state = 'intent'", (now, group_id))
            members = c.execute("SELECT file_id, generation, rows FROM group_members WHERE group_id = ?",
                                (group_id,)).fetchall()
            c.executemany("UPDATE batches SET state = 'done', acked_at = ? WHERE file_id = ? AND generation = ?"
                          " AND idx = 0", [(now, m["file_id"], m["generation"]) for m in members])
            c.executemany("UPDATE files SET rows_loaded = ?, updated_at = ? WHERE id = ? AND generation = ?",
                          [(m["rows"], now, m["file_id"], m["generation"]) for m in members])
            # A member whose own try failed (even one that gave up) now has its rows in: due now, to verify.
            c.executemany("UPDATE files SET next_attempt = ? WHERE id = ? AND generation = ? AND state = 'failed'"
                          " AND current = 1", [(now, m["file_id"], m["generation"]) for m in members])

    def abandon_group(self, group_id: int, why: str) -> None:
        """The group cannot be replayed as it was (its rows were deleted first): close it and move each
        member still at the group's generation to a fresh one (docs/ARCHITECTURE.md#generations)."""
        now = time.time()
        with self._tx() as c:
            c.execute("UPDATE groups SET state = 'abandoned', closed = ? WHERE id = ? AND state = 'intent'",
                      (now, group_id))
            for m in c.execute("SELECT m.file_id, f.path FROM group_members m JOIN files f ON f.id = m.file_id"
                               " WHERE m.group_id = ? AND f.generation = m.generation", (group_id,)).fetchall():
                c.execute("UPDATE files SET generation = generation + 1, rows_loaded = 0, updated_at = ? WHERE id = ?",
                          (now, m["file_id"]))
                self._event(c, m["file_id"], m["path"], "engine", "group abandoned", None, None, why, now)

    def open_group(self, file_id: int, generation: int) -> int | None:
        """The group whose insert this version's batch ``generation``:0 may be in, still unacknowledged."""
        rows = self._q("SELECT g.id FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.file_id = ?"
                       " AND m.generation = ? AND g.state = 'intent' ORDER BY g.id DESC LIMIT 1",
                       (file_id, generation))
        return int(rows[0]["id"]) if rows else None

    def open_groups(self) -> dict[int, tuple[int, int]]:
        """Versions whose batch is in a group insert never acknowledged: {file_id: (group id, members)}
        (`chute files`/`status`: a crash left them `loading` until the group is settled)."""
        try:
            rows = self._q("SELECT m.file_id, g.id, (SELECT count(*) FROM group_members n WHERE n.group_id = g.id)"
                           " AS n FROM groups g JOIN group_members m ON m.group_id = g.id JOIN files f"
                           " ON f.id = m.file_id WHERE g.state = 'intent' AND f.generation = m.generation")
        except sqlite3.OperationalError:  # read-only on a ledger from before groups: none
            return {}
        return {int(r["file_id"]): (int(r["id"]), int(r["n"])) for r in rows}

    def group(self, group_id: int) -> tuple[sqlite3.Row, list[GroupMember]] | None:
        """A group and its members, in their order."""
        rows = self._q("SELECT * FROM groups WHERE id = ?", (group_id,))
        if not rows:
            return None
        members = self._q("SELECT file_id, generation, sha256, rows FROM group_members WHERE group_id = ?"
                          " ORDER BY pos", (group_id,))
        return rows[0], [GroupMember(m["file_id"], m["generation"], m["sha256"], m["rows"]) for m in members]

    def fresh_versions(self, file_ids: list[int]) -> set[int]:
        """Of ``file_ids``: the versions that are the only one at their path and never sent a batch
        (nothing to clear, resume or gatekeep by path: core/combined.py)."""
        with self._lock:
            return {r["id"] for r in _in_chunks(
                self._conn, "SELECT f.id FROM files f WHERE f.id IN ({})"
                " AND NOT EXISTS (SELECT 1 FROM files o WHERE o.path = f.path AND o.id != f.id)"
                " AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.file_id = f.id)", file_ids)}

    def count_present(self, file_ids: list[int]) -> int:
        """How many of ``file_ids`` are still in the ledger (gc deletes rows; the console drops them)."""
        with self._lock:
            return sum(r[0] for r in _in_chunks(self._conn, "SELECT count(*) FROM files WHERE id IN ({})", file_ids))

    def known_content(self, shas: dict[int, str]) -> set[str]:
        """Of the contents ``{file_id: sha256}``: those some other version has (or had: kept_hashes),
        and those two of them share (a duplicate, a held twin or an older generation to pass)."""
        out = {sha for sha, n in Counter(shas.values()).items() if n > 1}
        items = list(shas.items())
        for i in range(0, len(items), 400):
            part = items[i:i + 400]
            marks = ",".join("?" * len(part))
            hashes, ids = [s for _, s in part], [f for f, _ in part]
            out.update(r["sha256"] for r in self._q(
                f"SELECT sha256 FROM files WHERE sha256 IN ({marks}) AND id NOT IN ({marks})"
                f" UNION SELECT sha256 FROM kept_hashes WHERE sha256 IN ({marks})", [*hashes, *ids, *hashes]))
        return out

    def loaded_many(self, outcomes: list[tuple[int, int, str]]) -> list[int]:
        """`transition(id, LOADED, ...)` from `loading` for many versions in one transaction
        (``(file_id, rows_loaded, detail)``). Returns the ids that were still `loading`."""
        now = time.time()
        done = []
        with self._tx() as c:
            for file_id, rows, detail in outcomes:
                cur = c.execute("UPDATE files SET state = 'loaded', rows_loaded = ?, loaded_at = ?, last_error = NULL,"
                                " error_kind = NULL, updated_at = ? WHERE id = ? AND state = 'loading' RETURNING path",
                                (rows, now, now, file_id)).fetchone()
                if cur is not None:
                    self._event(c, file_id, cur["path"], "engine", "transition", State.LOADING, State.LOADED, detail,
                                now)
                    done.append(file_id)
        return done


def _runnable(row: sqlite3.Row, busy: bool) -> bool:
    """A version the loader may claim: the current one, queued or due for a retry, and no
    operator's action on it unfinished (``busy``: an open intent, core/intents.py)."""
    return row["current"] == 1 and not busy and (
        row["state"] == State.QUEUED or (row["state"] == State.FAILED and row["next_attempt"] is not None))


def _in_chunks(c: sqlite3.Connection, sql: str, ids: list[int] | list[str]) -> Iterator[sqlite3.Row]:
    """``sql`` with ``IN ({})`` over ``ids`` (or paths), in parts below SQLite's limit on bound values."""
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        yield from c.execute(sql.format(",".join("?" * len(part))), part)
