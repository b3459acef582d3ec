"""A full disk, for real (issue 11, defect 5): the state dir, then the embedded engine's folder,
on a small tmpfs. Intake pauses, one alert fires, the log stays short, and everything resumes by
itself when space returns, with no file left in `loading`. Skipped where tmpfs cannot be mounted.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, chute_cmd, run_chute, wait_for
from tests.invariants import ledger_versions, rows_and_disagreements
from tests.procs import stop

ROWS = 20_000


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to give the space back)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 65536):
                pass
        with contextlib.suppress(OSError):  # and the last few bytes a 64 KiB write could not take
            while os.write(fd, b"\0" * 512):
                pass
    finally:
        os.close(fd)
    return filler


def write_csv(path: Path, k: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name)
    tmp.write_text("id,v\n" + "".join(f"{i},{i * k}\n" for i in range(ROWS)))
    os.replace(tmp, path)


def _states(state: Path) -> dict[str, str]:
    try:
        return {v["path"]: v["state"] for v in ledger_versions(state) if v["current"]}
    except sqlite3.OperationalError:  # the engine has not made its tables yet
        return {}


def _log_lines(log: Path) -> list[dict]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def _scenario(tmp: Path, state: Path, engine: Path, full_folder: Path, alert: str) -> None:
    data = tmp / "data"
    data.mkdir()
    log = tmp / "chute.log"
    with log.open("w") as out:
        proc = subprocess.Popen(chute_cmd("--no-ui", str(data), "--state-dir", str(state), "--clickhouse",
                                          f"chdb://{engine}", "--settle-seconds", "0.1", "--log-format", "json"),
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        for k in range(2):  # the table exists before the disk fills (chDB cannot create one on a full disk)
            write_csv(data / "t" / f"a{k}.csv", k)
        wait_for(lambda: (state / "ledger.sqlite3").exists() and list(_states(state).values()) == ["loaded"] * 2,
                 timeout=120, what="the first files loaded")
        filler = fill(full_folder)
        for k in range(2, 5):
            write_csv(data / "t" / f"a{k}.csv", k)
        wait_for(lambda: any(r.get("msg", "").startswith(f"alert critical {alert}") for r in _log_lines(log)),
                 timeout=120, what=f"the {alert} alert")
        full_since = len(_log_lines(log))
        time.sleep(5)  # how loud is chute while the disk stays full? (an upper bound, not a wait for a state)
        while_full = _log_lines(log)[full_since:]
        filler.unlink()
        wait_for(lambda: _states(state) == {f"t/a{k}.csv": "loaded" for k in range(5)}, timeout=180,
                 what="every file loaded after space returned")
        # Said just after the guard lets intake go (the health thread): the loads may come first.
        wait_for(lambda: any("space is back" in r.get("msg", "") for r in _log_lines(log)), timeout=60,
                 what="the all-clear in the log")
        lines = _log_lines(log)
        assert len(while_full) <= 10, while_full
        assert sum(r.get("msg", "").startswith("alert critical") for r in lines) == 1, \
            [r["msg"] for r in lines if "alert" in r.get("msg", "")]
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert not any(v["state"] == "loading" for v in ledger_versions(state))
    assert rows_and_disagreements(state, engine) == ((5 * ROWS, 0), [])
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)  # a loaded machine is slow, never wrong: no wall-clock windows
def test_state_dir_full_pauses_alerts_once_and_resumes(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "8m") as state:
        _scenario(tmp_path, state, tmp_path / "ch", state, "state_dir_full")


@pytest.mark.slow
@pytest.mark.timeout(900)  # a loaded machine is slow, never wrong: no wall-clock windows
def test_target_full_pauses_alerts_once_and_resumes(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ch", "40m") as engine:
        _scenario(tmp_path, tmp_path / "state", engine, engine, "target_full")


def test_status_reads_a_ledger_on_a_full_disk(tmp_path: Path) -> None:
    """Reading needs no space: `chute status` works while the state dir is full."""
    (tmp_path / "data").mkdir()
    with tmpfs(tmp_path / "state", "4m") as state:
        done = run_chute("--no-ui", "--once", str(tmp_path / "data"), "--state-dir", str(state), "--clickhouse",
                         f"chdb://{tmp_path / 'ch'}")
        assert done.returncode == 0, done.stderr
        fill(state)
        status = run_chute("status", "--state-dir", str(state))
        assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr


def test_a_repeating_error_is_logged_now_and_then() -> None:
    import logging

    from chute.core.ratelimit import RateLimit

    limit = RateLimit(interval=3600, burst=3)

    def record(msg: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("chute.watcher", level, __file__, 1, msg, None, None)

    passed = [limit.filter(record("watcher tick failed")) for _ in range(10_000)]
    assert sum(passed) == 3
    assert limit.filter(record("another error"))  # a different message is not a loop
    assert all(limit.filter(record("loaded x", logging.INFO)) for _ in range(100))  # info is never cut
    limit.interval = 0  # the window is over: the next line says how many were cut
    line = record("watcher tick failed")
    assert limit.filter(line) and "9997 more like this" in line.getMessage()


def test_every_failpoint_step_in_the_code_is_declared() -> None:
    import re

    from chute.core.failpoints import STEPS

    used = set()
    for path in (ROOT / "core").rglob("*.py"):
        used |= set(re.findall(r'failpoints\.step\("(\w+)"\)', path.read_text()))
    assert used == set(STEPS)
