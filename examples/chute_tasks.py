"""Task bodies for orchestrators: plain functions an Airflow DAG or a Prefect flow wraps.

They load a folder once through chute's Python API (or through `chute --no-ui --once` and its
exit codes) and turn the outcome into one of three exceptions an orchestrator understands:

- :class:`BadInput`   a file was quarantined: fail the task, do NOT retry (the input is bad);
- :class:`RetryLater` a file failed on ClickHouse's side: fail the task, let it retry;
- :class:`Held`       files wait for an operator (`chute approve PATH`): skip the task.

Every file's outcome and reason goes to the task log first. Tested against the real engine in
tests/test_examples.py; the orchestrators themselves are not needed for that.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chute.core import api
from chute.core.states import State

log = logging.getLogger("chute.task")


class TaskProblem(Exception):
    """Base of the outcomes below; ``files`` lists the versions behind it (api.FileInfo)."""

    def __init__(self, message: str, files: Sequence[api.FileInfo]) -> None:
        super().__init__(message)
        self.files = list(files)


class BadInput(TaskProblem):
    """At least one file is quarantined: retrying the task cannot help."""


class RetryLater(TaskProblem):
    """At least one file failed to load (ClickHouse unreachable or refusing): a retry may help."""


class Held(TaskProblem):
    """Every problem file waits for an operator's decision: nothing is broken."""


def load_folder(data_dir: str | os.PathLike[str], *, logger: logging.Logger | None = None,
                **settings: Any) -> dict[str, Any]:
    """Load every new file in ``data_dir`` once; return a summary for XCom / the flow's result.

    ``settings`` are chute's configuration keys (clickhouse_url=, database=, state_dir=, ...).
    """
    logger = logger or log
    result = api.run_once(data_dir, **settings)
    return _judge(result.files, logger)


def load_folder_cli(data_dir: str | os.PathLike[str], *, chute: Sequence[str] = ("chute",),
                    logger: logging.Logger | None = None, env: dict[str, str] | None = None,
                    timeout: float = 3600) -> dict[str, Any]:
    """The same through the command line, for an orchestrator that runs chute in another environment:
    the exit code of `chute --no-ui --once` says whether to look closer, `chute files --json` says why."""
    logger = logger or log
    full_env = dict(os.environ, **(env or {}))
    started = time.time()
    proc = subprocess.run([*chute, "--no-ui", "--once", os.fspath(data_dir)], env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    for line in proc.stderr.splitlines():
        logger.info("chute: %s", line)
    if proc.returncode not in (0, 3):  # 2: usage or configuration, 1: unexpected
        raise RuntimeError(f"chute --once exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    listing = subprocess.run([*chute, "files", "--json"], env=full_env, capture_output=True, text=True,
                             timeout=600, check=True)
    rows = [json.loads(line) for line in listing.stdout.splitlines() if line.strip()]
    newest: dict[str, api.FileInfo] = {}
    for r in rows:  # this run's files, as the API's: in the folder now, or moved aside by this run
        if r["current"] and ((Path(data_dir) / r["path"]).exists() or r["updated_at"] >= started):
            newest.setdefault(r["path"], _info(r))
    files = list(newest.values()) if proc.returncode == 3 else [f for f in newest.values() if f.ok]
    return _judge(files, logger)


def _info(r: dict[str, Any]) -> api.FileInfo:
    return api.FileInfo(id=r["id"], path=r["path"], table=r["table_name"], state=State(r["state"]), rows=r["rows"],
                        rows_loaded=r["rows_loaded"], size=r["size"], sha256=r["sha256"],
                        reason=r["last_error"] or r["reason"], attempts=r["attempts"], moved_to=r["moved_to"],
                        updated_at=r["updated_at"], loaded_at=r["loaded_at"])


def _judge(files: Sequence[api.FileInfo], logger: logging.Logger) -> dict[str, Any]:
    for f in files:
        if f.ok:
            logger.info("%s: %s, %d rows into %s", f.path, f.state, f.rows_loaded, f.table)
        else:  # held waits for a decision; the rest went wrong
            level = logging.WARNING if f.state == State.HELD else logging.ERROR
            logger.log(level, "%s: %s: %s", f.path, f.state, f.reason or "no reason recorded")
    quarantined = [f for f in files if f.state == State.QUARANTINED]
    failed = [f for f in files if not f.ok and f.state not in (State.QUARANTINED, State.HELD)]
    held = [f for f in files if f.state == State.HELD]
    if quarantined:
        raise BadInput(_say(quarantined, "quarantined (bad input; see the reason files in _quarantine/)"),
                       quarantined + failed + held)
    if failed:
        raise RetryLater(_say(failed, "failed to load"), failed + held)
    if held:
        raise Held(_say(held, "held for an operator (chute approve PATH)"), held)
    return {
        "files": len(files),
        "rows": sum(f.rows_loaded for f in files if f.state == State.LOADED),
        "loaded": [f.path for f in files if f.state == State.LOADED],
        "duplicates": [f.path for f in files if f.state == State.DUPLICATE],
    }


def _say(files: Sequence[api.FileInfo], what: str) -> str:
    return f"{len(files)} file(s) {what}: " + "; ".join(f"{f.path}: {f.reason}" for f in files)
