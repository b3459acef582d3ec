"""Which runnable files go to a load slot together: runs of small files of one table share one
insert (core/groups.py, docs/ARCHITECTURE.md#groups), big files go alone.

Kept apart from core/groups.py so that the engine's dispatch loop does not import the loader (an
empty `--once` never builds one: tests/test_startup.py).
"""

from __future__ import annotations

import resource

from chute.core.config import Config
from chute.core.ledger import FileRow

# A dispatch candidate: at most this many bytes on disk. Whether it joins a group is decided
# after its plan (rows within B and group_max_rows).
SMALL_BYTES = 4 << 20
# A group keeps each member's file open from its hash to its verification (the re-check reads
# the descriptor): a dispatch takes at most a quarter of the process's descriptors per group.
FD_BUDGET = max(2, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4)


def dispatch(cfg: Config, rows: list[FileRow], free: int) -> list[list[FileRow]]:
    """Work for ``free`` load slots from runnable ``rows`` (oldest first): runs of small files of
    one table, up to ``group_max_files`` each, and big files alone."""
    work: list[list[FileRow]] = []
    filling: dict[str, list[FileRow]] = {}
    for row in rows:
        if cfg.group_max_files <= 1 or (row.size or 0) > SMALL_BYTES:
            work.append([row])
            continue
        group = filling.get(row.table_name)
        if group is None or len(group) >= min(cfg.group_max_files, FD_BUDGET):
            group = filling[row.table_name] = []
            work.append(group)
        group.append(row)
    return work[:free]
