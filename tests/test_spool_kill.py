"""An insert body waiting on disk (core/spool.py) must not outlive its process, however it ends: a
SIGKILL (an OOM kill, `kill -9`, a crash) left every queued batch in the temporary directory for
good, ~28 MB per 250,000-row batch of the 1M-row CSV (review round 9: 2,405 files, 719 MB, had
piled up in /tmp on the shared machine)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

_HOLD = """
import sys, time
import polars as pl
from chute.core.reader import with_lineage
from chute.core.spool import SpooledBody
bodies = [SpooledBody(with_lineage(pl.DataFrame({"id": range(50_000)}), "t/a.csv", "a" * 64, 0)) for _ in range(3)]
print("held", flush=True)
time.sleep(600)
"""


def _left(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir() if p.name.startswith("chute-batch-"))


def test_a_killed_process_leaves_no_insert_body_behind(tmp_path: Path) -> None:
    where = tmp_path / "tmp"
    where.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _HOLD], cwd=ROOT, env=dict(os.environ, TMPDIR=str(where)),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        links = [os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        held = {Path(link.removesuffix(" (deleted)")).name for link in links if str(where) in link}
        assert len(held | set(_left(where))) == 3  # (the bodies are on disk while held: named or open)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert _left(where) == []
