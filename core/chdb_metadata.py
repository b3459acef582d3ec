"""Empty table definitions in an embedded chDB folder: what a CREATE TABLE on a full disk leaves.

On a full disk chDB's CREATE TABLE succeeds yet writes a 0-byte ``metadata/<db>/<table>.sql``
(seen with chDB 26.x on a tmpfs). The table works until the process ends; the next start then
fails for the whole engine ("Error initializing EmbeddedServer", the cause only on stderr:
"Empty query ... Cannot parse definition from metadata file"). An empty definition holds
nothing to lose, and ClickHouse's own server removes such files at start; so when chDB will not
open, chute moves them aside (never deletes them) and tries once more. The live half, a table
whose definition was not stored, is caught right after CREATE in ``Target`` (core/target.py).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

log = logging.getLogger("chute.chdb_metadata")


def empty_definitions(engine: Path) -> list[Path]:
    """0-byte database (``metadata/<db>.sql``) and table (``metadata/<db>/<t>.sql``) definitions."""
    meta = engine / "metadata"
    if not meta.is_dir():
        return []
    found = []
    for path in sorted([*meta.glob("*.sql"), *meta.glob("*/*.sql")]):
        try:
            if path.is_file() and path.stat().st_size == 0:
                found.append(path)
        except OSError:
            continue
    return found


def set_aside(engine: Path, keep: Path) -> list[Path]:
    """Move every empty definition out of ``engine`` into ``keep``; returns where each went."""
    moved = []
    for path in empty_definitions(engine):
        keep.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = path.parent.name if path.parent != engine / "metadata" else ""
        dest = keep / f"{db + '.' if db else ''}{path.name}.empty-{time.strftime('%Y%m%dT%H%M%S')}"
        shutil.move(path, dest)  # the state dir may be another filesystem: a 0-byte copy
        log.warning("ClickHouse would not start: %s was an empty table definition (a CREATE TABLE on a full "
                    "disk); moved it to %s, the table is created again when a file for it arrives", path, dest)
        moved.append(dest)
    return moved
