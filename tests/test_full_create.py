"""The engine's disk fills up while chDB creates a table (issue 11 leftover): a file for a new table
arrives on a full disk, then space comes back. The table must be created and the file loaded,
with nothing left half-made that blocks it. Skipped where tmpfs cannot be mounted (needs root).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, chute_cmd, run_chute, wait_for
from tests.invariants import disagreements, ledger_versions, total_rows
from tests.test_resources import ROWS, _log_lines, _states, fill, tmpfs, write_csv


@pytest.mark.slow
@pytest.mark.timeout(900)  # a loaded machine is slow, never wrong: no wall-clock windows
def test_new_table_on_a_full_engine_disk_is_created_when_space_returns(tmp_path: Path) -> None:
    from chute.core import chdb_metadata

    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    log = tmp_path / "chute.log"
    with tmpfs(tmp_path / "ch", "40m") as engine, log.open("w") as out:
        proc = subprocess.Popen(chute_cmd("--no-ui", str(data), "--state-dir", str(state), "--clickhouse",
                                          f"chdb://{engine}", "--settle-seconds", "0.1", "--log-format", "json"),
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            write_csv(data / "t" / "a0.csv", 1)
            wait_for(lambda: _states(state) == {"t/a0.csv": "loaded"}, timeout=120, what="the first file loaded")
            filler = fill(engine)
            write_csv(data / "u" / "b0.csv", 2)  # table u does not exist yet: CREATE TABLE on a full disk
            wait_for(lambda: any("b0.csv" in str(r) and r.get("level") in ("WARNING", "ERROR", "CRITICAL")
                                 or r.get("msg", "").startswith("alert critical target_full")
                                 for r in _log_lines(log)), timeout=120, what="the full disk noticed")
            filler.unlink()
            wait_for(lambda: _states(state) == {"t/a0.csv": "loaded", "u/b0.csv": "loaded"}, timeout=300,
                     what=f"both files loaded after space returned: {_states(state)}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, log.read_text()[-3000:]
        assert not any(v["state"] == "loading" for v in ledger_versions(state))
        assert total_rows(engine) == (2 * ROWS, 0)
        assert disagreements(state, engine) == []
        assert "Traceback" not in log.read_text()
        # The damage used to show only here: chDB would not start again on an empty definition file.
        assert chdb_metadata.empty_definitions(engine) == []
        again = run_chute("--no-ui", "--once", str(data), "--state-dir", str(state), "--clickhouse",
                          f"chdb://{engine}")
        assert again.returncode == 0, again.stderr[-3000:]


def test_an_empty_table_definition_left_by_a_full_disk_is_set_aside_at_start(tmp_path: Path) -> None:
    """What a CREATE TABLE on a full disk left behind before (a 0-byte metadata/default/u.sql) made
    chDB refuse to start at all ("Error initializing EmbeddedServer"). Now chute moves the empty
    definition aside, says so, starts, and creates the table again for the file that needs it."""
    data, state, engine = tmp_path / "data", tmp_path / "state", tmp_path / "ch"
    args = ("--no-ui", "--once", str(data), "--state-dir", str(state), "--clickhouse", f"chdb://{engine}",
            "--settle-seconds", "0.1")
    write_csv(data / "t" / "a0.csv", 1)
    assert run_chute(*args).returncode == 0
    (engine / "metadata" / "default" / "u.sql").write_bytes(b"")  # what the full disk left
    write_csv(data / "u" / "b0.csv", 2)
    done = run_chute(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "empty table definition" in done.stderr and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert [p.name.split(".empty-")[0] for p in (state / "broken-chdb-metadata").iterdir()] == ["default.u.sql"]
    assert _states(state) == {"t/a0.csv": "loaded", "u/b0.csv": "loaded"}
    assert total_rows(engine) == (2 * ROWS, 0)
    assert disagreements(state, engine) == []
