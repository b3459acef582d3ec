"""Crash safety: SIGKILL a loading daemon again and again, then finish with --once.

The check — rows == source rows and no (_source_sha256, _source_row) pair twice — runs after
every crash, not only at the end. The negative control runs the same crashes with
deduplication disabled and must be caught by the same check.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, chute_cmd, engine_query, run_chute
from tests.test_engine import csv_bytes, make_rows

ROWS = 30_000
BATCH = 500
CYCLES = 6


def duplicate_check(engine_dir: Path, table: str) -> tuple[int, int]:
    """(rows in the table, how many (sha, row) pairs occur more than once)."""
    rows = engine_query(engine_dir, f"SELECT count() FROM default.`{table}`")[0][0] if engine_query(
        engine_dir, f"EXISTS TABLE default.`{table}`")[0][0] else 0
    if not rows:
        return 0, 0
    dups = engine_query(engine_dir, f"SELECT count() FROM (SELECT _source_sha256, _source_row, count() AS n "
                                    f"FROM default.`{table}` GROUP BY 1, 2 HAVING n > 1)")[0][0]
    return int(rows), int(dups)


def crash_cycles(tmp: Path, failpoints: str, seed: int) -> tuple[list[tuple[int, int]], Path, Path]:
    data, state, engine = tmp / "data", tmp / "state", tmp / "ch"
    data.mkdir()
    (data / "crashy.csv").write_bytes(csv_bytes(make_rows(ROWS)))
    rng = random.Random(seed)
    args = [str(data), "--state-dir", str(state), "--clickhouse", f"chdb://{engine}", "--batch-rows", str(BATCH),
            "--settle-seconds", "0.1", "--workers", "1", "--log-format", "json"]
    observed = []
    for cycle in range(CYCLES):
        env = {"CHUTE_FAILPOINTS": f"kill_after_insert=0.08,seed={seed * 100 + cycle}{failpoints}"}
        proc = subprocess.Popen(chute_cmd("--no-ui", *args), cwd=ROOT, env={**_env(), **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(1.5, 3.5))  # the failpoint may kill it first
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)  # and if not, we do, wherever it is
            proc.wait()
        observed.append(duplicate_check(engine, "crashy"))
    return observed, state, engine


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _finish(tmp: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_chute("--no-ui", "--once", str(tmp / "data"), "--state-dir", str(tmp / "state"), "--clickhouse",
                     f"chdb://{tmp / 'ch'}", "--batch-rows", str(BATCH), "--settle-seconds", "0.1",
                     "--log-format", "json", env=env)


@pytest.mark.slow
def test_sigkill_while_loading_never_duplicates_or_loses(tmp_path: Path) -> None:
    observed, state, engine = crash_cycles(tmp_path, "", seed=1)
    assert all(dups == 0 for _, dups in observed), observed
    assert any(0 < rows < ROWS for rows, _ in observed), f"no crash landed mid-load: {observed}"
    done = _finish(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert duplicate_check(engine, "crashy") == (ROWS, 0)
    files = run_chute("files", "--json", "--state-dir", str(state))
    assert '"state": "loaded"' in files.stdout


@pytest.mark.slow
def test_negative_control_without_dedup_is_caught(tmp_path: Path) -> None:
    """Same crashes, deduplication off: the same check must see duplicate rows."""
    observed, _, engine = crash_cycles(tmp_path, ",no_dedup", seed=1)
    assert any(dups > 0 for _, dups in observed), f"the check did not catch duplicates: {observed}"
    # chute's count() verification catches them too, replays under a new token generation,
    # and ends with exactly the source rows.
    done = _finish(tmp_path, env={"CHUTE_FAILPOINTS": "no_dedup"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "verification failed" in run_chute("events", "--state-dir", str(tmp_path / "state")).stdout
    assert duplicate_check(engine, "crashy") == (ROWS, 0)


def test_interrupted_daemon_exits_zero_and_resumes(tmp_path: Path) -> None:
    """SIGTERM mid-load: exit 0, the batch in flight finishes or is abandoned, nothing lost."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.csv").write_bytes(csv_bytes(make_rows(ROWS)))
    args = [str(data), "--state-dir", str(tmp_path / "state"), "--clickhouse", f"chdb://{tmp_path / 'ch'}",
            "--batch-rows", "300", "--settle-seconds", "0.1", "--log-format", "json"]
    proc = subprocess.Popen(chute_cmd("--no-ui", *args), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = run_chute("files", "--json", "--state-dir", str(tmp_path / "state"))
        if '"rows_loaded": 0' not in out.stdout and '"state": "loading"' in out.stdout:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    done = run_chute("--no-ui", "--once", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert duplicate_check(tmp_path / "ch", "big") == (ROWS, 0)
