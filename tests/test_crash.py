"""Crash safety: SIGKILL a loading chute again and again at named steps, then finish with --once.

Kills are placed by failpoints (core/failpoints.py ``kill_at=STEP:N``), not by wall-clock
timers: each cycle dies at the N-th time it reaches STEP, however slow the machine is, and
the test checks it did (exit by SIGKILL, the marker file names the step). The check — rows ==
source rows and no (_source_sha256, _source_row) pair twice — runs after every crash, not only
at the end. The negative control runs the same crashes with deduplication disabled and must be
caught by the same check.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, chute_cmd, run_chute
from tests.invariants import clickhouse_counts, current_versions, rows_and_disagreements
from tests.test_engine import csv_bytes, make_rows

ROWS = 30_000
BATCH = 500  # 60 batches: six cycles of at most 7 batches each never finish the file
CYCLES = 6
# The protocol's worst moments, in turn: intent written but nothing sent; ClickHouse acknowledged
# but the ledger did not; the ledger acknowledged.
STEPS = ("insert_acked", "batch_intent", "batch_done")


def duplicate_check(engine_dir: Path, table: str) -> tuple[int, int]:
    """(rows in the table, how many of them repeat a (sha, row) pair). One engine start, not two."""
    counts = [c for c in clickhouse_counts(engine_dir) if c[0] == table]
    return sum(c[3] for c in counts), sum(c[4] for c in counts)


# chute, with every Python thread's stack written to stderr on SIGWINCH (chDB takes SIGABRT for itself,
# so PYTHONFAULTHANDLER's dump never comes).
_DUMPABLE = ("import faulthandler, runpy, signal; faulthandler.register(signal.SIGWINCH, all_threads=True); "
             "runpy.run_module('chute.core', run_name='__main__')")


def kill_at(args: list[str], step: str, nth: int, marker: Path, extra: str = "",
            timeout: float = 240) -> None:
    """Run chute until the failpoint kills it at the ``nth`` hit of ``step``; prove that is what happened.
    A run that neither dies nor ends within ``timeout`` (under pytest-timeout's 300 s) fails the test
    with what it was doing: its threads and where each waits, and the end of its log."""
    marker.unlink(missing_ok=True)
    env = {**_env(), "CHUTE_FAILPOINTS": f"kill_at={step}:{nth},marker={marker}{extra}"}
    with subprocess.Popen([sys.executable, "-c", _DUMPABLE, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as child:
        try:
            _, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            threads = _threads(child.pid)
            child.send_signal(signal.SIGWINCH)  # every Python thread's stack to its stderr
            try:
                _, err = child.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                _, err = child.communicate()
            raise AssertionError(f"chute neither reached {step}:{nth} nor ended in {timeout:.0f} s; its threads "
                                 f"(name: kernel wait):\n{threads}\nits log and Python stacks:\n{err[-12000:]}"
                                 ) from None
    proc = subprocess.CompletedProcess(child.args, child.returncode, "", err)
    assert proc.returncode == -signal.SIGKILL, f"not killed at {step}:{nth} (exit {proc.returncode}): " \
                                               f"{proc.stderr[-2000:]}"
    assert marker.read_text().split()[:2] == [step, str(nth)], marker.read_text()


def _threads(pid: int) -> str:
    """Each thread of ``pid``: its name and the kernel function it sleeps in (/proc)."""
    out = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            out.append(f"{(task / 'comm').read_text().strip()}: {(task / 'wchan').read_text().strip() or 'running'}")
        except OSError:
            continue
    return "\n".join(out)


def crash_cycles(tmp: Path, failpoints: str, seed: int) -> tuple[list[tuple[int, int]], Path, Path]:
    data, state, engine = tmp / "data", tmp / "state", tmp / "ch"
    data.mkdir()
    (data / "crashy.csv").write_bytes(csv_bytes(make_rows(ROWS)))
    rng = random.Random(seed)
    args = ["--no-ui", "--once", str(data), "--state-dir", str(state), "--clickhouse", f"chdb://{engine}",
            "--batch-rows", str(BATCH), "--settle-seconds", "0.1", "--workers", "1", "--log-format", "json"]
    observed = []
    for cycle in range(CYCLES):
        step = STEPS[cycle % len(STEPS)] if not failpoints else "insert_acked"
        kill_at(args, step, rng.randint(1, 7), tmp / "failpoint.log", failpoints)
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
@pytest.mark.timeout(900)  # a loaded machine is slow, never wrong: no wall-clock windows
def test_sigkill_while_loading_never_duplicates_or_loses(tmp_path: Path) -> None:
    observed, state, engine = crash_cycles(tmp_path, "", seed=1)
    assert all(dups == 0 for _, dups in observed), observed
    assert all(0 < rows < ROWS for rows, _ in observed), f"a crash did not land mid-load: {observed}"
    done = _finish(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert rows_and_disagreements(state, engine) == ((ROWS, 0), [])  # (crashy is the only table)
    files = run_chute("files", "--json", "--state-dir", str(state))
    assert '"state": "loaded"' in files.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)  # a loaded machine is slow, never wrong: no wall-clock windows
def test_negative_control_without_dedup_is_caught(tmp_path: Path) -> None:
    """Same crashes, deduplication off: the same check must see duplicate rows."""
    observed, _, engine = crash_cycles(tmp_path, ",no_dedup", seed=1)
    # Every kill after ClickHouse's ack and before the ledger's leaves a batch that is sent again
    # at the next start: without deduplication it lands twice, from the second cycle on.
    assert all(dups > 0 for _, dups in observed[1:]), f"the check did not catch duplicates: {observed}"
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
        big = current_versions(tmp_path / "state").get("big.csv", {})
        if big.get("state") == "loading" and big.get("rows_loaded"):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    done = run_chute("--no-ui", "--once", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert duplicate_check(tmp_path / "ch", "big") == (ROWS, 0)
