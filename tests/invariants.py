"""The crash invariant, checked from outside: rows in ClickHouse and the ledger agree, for every version.

For each (table, _source_path, _source_sha256) in ClickHouse, the ledger's versions of that
path and content must account for exactly those rows (a `loaded` version for its rows_loaded,
every other final state for none), no (_source_sha256, _source_row) pair may occur twice, and
no rows may exist that no loaded version claims. Used by tests/test_crash.py,
tests/test_intents.py and the chaos run (tests/chaos.py).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
Counts = list[tuple[str, str, str, int, int]]


def counts_via(client: Any, database: str = "default") -> Counts:
    """(table, path, sha, rows, duplicate rows) for every file version with rows in ClickHouse."""
    tables = [r[0] for r in client.query(
        "SELECT DISTINCT table FROM system.columns WHERE database = {db:String} AND name = '_source_sha256'",
        parameters={"db": database}).result_rows]
    out: Counts = []
    for t in tables:
        q = (f"SELECT _source_path, _source_sha256, count(), count() - uniqExact(_source_row)"
             f" FROM `{database}`.`{t.replace('`', '')}` GROUP BY 1, 2")
        out += [(t, p, s, int(n), int(d)) for p, s, n, d in client.query(q).result_rows]
    return out


_SUBPROCESS = ("import json, sys, clickhouse_connect\n"
               "from tests.invariants import counts_via\n"
               "print(json.dumps(counts_via(clickhouse_connect.get_client(dsn=sys.argv[1]), sys.argv[2])))\n")


def clickhouse_counts(engine_dir: Path, database: str = "default") -> Counts:
    """``counts_via`` for an embedded engine directory, from a fresh process (this one may hold another path)."""
    proc = subprocess.run([sys.executable, "-c", _SUBPROCESS, f"chdb://{engine_dir}", database], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise AssertionError(f"counting rows failed: {proc.stderr[-2000:]}")
    return [tuple(r) for r in json.loads(proc.stdout)]


def ledger_versions(state_dir: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{state_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM files ORDER BY id")]
    finally:
        conn.close()


def current_versions(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Each path's current version, read straight from the ledger (no chute process per look, so a
    polling test does not load the machine); empty while the ledger or its tables do not exist yet."""
    try:
        return {v["path"]: v for v in ledger_versions(state_dir) if v["current"]}
    except sqlite3.OperationalError:
        return {}


def open_intents(state_dir: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{state_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM intents WHERE status = 'open'")]
    except sqlite3.OperationalError:  # a ledger from before intents existed
        return []
    finally:
        conn.close()


def disagreements(state_dir: Path, engine_dir: Path | None = None, database: str = "default",
                  counts: Counts | None = None) -> list[str]:
    """Every way the ledger and ClickHouse disagree (empty: they agree). Call when every version is final."""
    expected: dict[tuple[str, str], int] = defaultdict(int)
    problems = []
    for v in ledger_versions(state_dir):
        if v["state"] in ("loading", "queued", "seen", "settling"):
            problems.append(f"#{v['id']} {v['path']} is still {v['state']}")
        if v["state"] == "loaded" and v["sha256"]:
            expected[(v["path"], v["sha256"])] += int(v["rows_loaded"])
    found: dict[tuple[str, str], int] = defaultdict(int)
    if counts is None:
        assert engine_dir is not None
        counts = clickhouse_counts(engine_dir, database)
    for table, path, sha, rows, dups in counts:
        found[(path, sha)] += rows
        if dups:
            problems.append(f"{table}: {path} ({sha[:12]}) has {dups} duplicate rows")
    for key in sorted(set(expected) | set(found)):
        if expected.get(key, 0) != found.get(key, 0):
            problems.append(f"{key[0]} ({key[1][:12]}): ledger says {expected.get(key, 0)} rows, "
                            f"ClickHouse holds {found.get(key, 0)}")
    problems += [f"intent #{i['id']} ({i['action']}) still open" for i in open_intents(state_dir)]
    return problems


def total_rows(engine_dir: Path, database: str = "default") -> tuple[int, int]:
    """(rows, duplicate rows) over every table."""
    return _totals(clickhouse_counts(engine_dir, database))


def rows_and_disagreements(state_dir: Path, engine_dir: Path,
                           database: str = "default") -> tuple[tuple[int, int], list[str]]:
    """``total_rows`` and ``disagreements`` from one count (one engine start in a fresh process, not two)."""
    counts = clickhouse_counts(engine_dir, database)
    return _totals(counts), disagreements(state_dir, counts=counts)


def _totals(counts: Counts) -> tuple[int, int]:
    return sum(c[3] for c in counts), sum(c[4] for c in counts)
