"""Crash safety of a streamed text file with a B of its own (stream_batch_rows, core/batch_size.py
own_rows): SIGKILL mid-load at the protocol's worst moments, then finish; the table holds every
row once. The crash tests in test_crash.py pass --batch-rows, which turns a file's own B off, so
they never exercised it. Also: a version whose B the code before fixed (125,000) is resumed with it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.invariants import rows_and_disagreements
from tests.test_crash import _DUMPABLE, duplicate_check, kill_at

ROWS = 600_000


def _patched(stream_bytes: int) -> str:
    """chute, with this file counted as too big to parse in memory and a batch's text bound small."""
    return ("from chute.core.reader import Reader; Reader.IN_MEMORY_BYTES = 1 << 16; "
            f"from chute.core import batch_size; batch_size.STREAM_BATCH_BYTES = {stream_bytes}; " + _DUMPABLE)


def _ledger_b(state: Path) -> list[int]:
    db = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT batch_rows FROM files")]
    finally:
        db.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("old_b", [False, True], ids=["own-b", "b-fixed-by-the-code-before"])
def test_sigkill_while_streaming_with_its_own_b(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old_b: bool) -> None:
    data, state, engine = tmp_path / "data", tmp_path / "state", tmp_path / "ch"
    data.mkdir()
    path = data / "streamy.csv"
    path.write_text("id,name\n" + "".join(f"{i},n{i % 977}\n" for i in range(ROWS)))
    stream_bytes = path.stat().st_size // 4
    b = max(125_000, stream_bytes * ROWS // path.stat().st_size // 1_000 * 1_000)  # ~150,000: 4 or 5 batches
    args = ["--no-ui", "--once", str(data), "--state-dir", str(state), "--clickhouse", f"chdb://{engine}",
            "--settle-seconds", "0.1", "--workers", "1", "--log-format", "json"]
    code = _patched(stream_bytes)
    if old_b:  # the first attempt as the code before fixed B: 125,000, then the new code resumes it
        monkeypatch.setenv("CHUTE_STREAM_BATCH_ROWS", "0")
    for step, nth in (("insert_acked", 1), ("batch_intent", 2), ("batch_done", 1)):
        _kill(code, args, step, nth, tmp_path / "fp.log")
        monkeypatch.delenv("CHUTE_STREAM_BATCH_ROWS", raising=False)
        rows, dups = duplicate_check(engine, "streamy")
        assert dups == 0 and 0 < rows < ROWS, (step, rows, dups)
        assert _ledger_b(state) == [125_000 if old_b else b]
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert rows_and_disagreements(state, engine) == ((ROWS, 0), [])
    assert _ledger_b(state) == [125_000 if old_b else b]


def _kill(code: str, args: list[str], step: str, nth: int, marker: Path) -> None:
    import tests.test_crash as crash

    real = crash._DUMPABLE
    crash._DUMPABLE = code
    try:
        kill_at(args, step, nth, marker)
    finally:
        crash._DUMPABLE = real
