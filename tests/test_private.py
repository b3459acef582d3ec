"""Private by default, a way out of a damaged ledger, and a quiet `chute files | head` (issue 11, defect 6)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, chute_cmd, run_chute
from tests.invariants import ledger_versions, rows_and_disagreements, total_rows
from tests.test_engine import csv_bytes, make_rows


def _args(tmp: Path) -> list[str]:
    return ["--state-dir", str(tmp / "state"), "--clickhouse", f"chdb://{tmp / 'ch'}"]


def _once(tmp: Path, umask: int = -1) -> subprocess.CompletedProcess:
    return subprocess.run(chute_cmd("--no-ui", "--once", str(tmp / "data"), *_args(tmp), "--settle-seconds", "0.1",
                                    "--log-format", "json"), cwd=ROOT, capture_output=True, text=True, timeout=180,
                          umask=umask)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_is_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_bytes(csv_bytes(make_rows(10)))
    done = _once(tmp_path, umask=0)
    assert done.returncode == 0, done.stderr[-2000:]
    state = tmp_path / "state"
    assert _mode(state) == 0o700
    files = [p for p in state.iterdir() if p.name.startswith(("ledger", "chute.lock"))]
    assert {p.name for p in files} >= {"ledger.sqlite3", "chute.lock"}
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_an_older_lax_state_dir_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    os.chmod(state, 0o777)
    (state / "ledger.sqlite3").touch()
    os.chmod(state / "ledger.sqlite3", 0o666)
    assert _once(tmp_path).returncode == 0
    assert (_mode(state), _mode(state / "ledger.sqlite3")) == (0o700, 0o600)


def test_console_log_is_private(tmp_path: Path) -> None:
    from chute.core.private import open_private

    old = os.umask(0)
    try:
        with open_private(tmp_path / "console.log") as f:
            f.write("x\n")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "console.log") == 0o600


def test_damaged_ledger_one_line_then_recover_reloads_nothing(tmp_path: Path) -> None:
    """A damaged ledger: one clear line naming the way out; `chute recover` rebuilds it from the lineage
    columns; a restart then loads nothing again and shows every file loaded."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.csv").write_bytes(csv_bytes(make_rows(1200)))
    (data / "sub" / "b.csv").write_bytes(csv_bytes(make_rows(300, seed=5)))
    (data / "bad.ndjson").write_bytes(b"{not json\n")
    assert _once(tmp_path).returncode == 3
    before = total_rows(tmp_path / "ch")
    assert before == (1500, 0)
    ledger = tmp_path / "state" / "ledger.sqlite3"
    with ledger.open("r+b") as f:  # the header and the first pages: "file is not a database"
        f.write(os.urandom(8192))

    for argv in (["status"], ["files"], ["--no-ui", "--once", str(data)]):
        proc = run_chute(*argv, *_args(tmp_path))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (argv, proc.stderr)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "damaged" in lines[0] and "chute recover" in lines[0], (argv, proc.stderr)

    rec = run_chute("recover", "--data-dir", str(data), *_args(tmp_path))
    assert rec.returncode == 0, rec.stderr[-2000:]
    assert "2 version(s) loaded (2 matched on disk" in rec.stdout and "1 quarantined" in rec.stdout, rec.stdout
    assert list((tmp_path / "state").glob("ledger.sqlite3.damaged-*"))

    again = _once(tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    states = {v["path"]: v["state"] for v in ledger_versions(tmp_path / "state")}
    assert states == {"a.csv": "loaded", "sub/b.csv": "loaded", "bad.ndjson": "quarantined"}
    assert rows_and_disagreements(tmp_path / "state", tmp_path / "ch") == (before, [])  # zero new rows
    files = run_chute("files", *_args(tmp_path))
    assert files.returncode == 0 and files.stdout.count("\tloaded\t") == 2
    # A readable ledger is not rebuilt by accident.
    refused = run_chute("recover", "--data-dir", str(data), *_args(tmp_path))
    assert refused.returncode == 2 and "nothing to recover" in refused.stderr


def test_files_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """`chute files | head`: the reader leaves early; chute exits without a word."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_bytes(b"x\n1\n")
    assert _once(tmp_path).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "chute.core", "files", *_args(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before chute writes a byte
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert (proc.returncode, err) == (0, b"")
