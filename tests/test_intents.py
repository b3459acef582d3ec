"""Operator actions are write-ahead and resumable (issue 11, defect 1 and its siblings).

Each test SIGKILLs a real `chute` process at a named step (core/failpoints.py), checks that the
kill happened there (exit by SIGKILL, the marker file names the step), then finishes the action
the two ways an operator would (the same command again, or a restart) and checks that the
ledger and ClickHouse agree for every version (tests/invariants.py).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_chute
from tests.invariants import disagreements, ledger_versions, open_intents, rows_and_disagreements
from tests.test_engine import csv_bytes, make_rows

ROWS = 3000


def _common(tmp: Path) -> list[str]:
    return ["--state-dir", str(tmp / "state"), "--clickhouse", f"chdb://{tmp / 'ch'}"]


def _once(tmp: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_chute("--no-ui", "--once", str(tmp / "data"), *_common(tmp), "--settle-seconds", "0.1",
                     "--batch-rows", "500", "--log-format", "json", *extra, env=env)


def _killed_at(proc: subprocess.CompletedProcess, marker: Path, step: str) -> None:
    """The process died by SIGKILL, and at the step the test named (not somewhere a timer chose)."""
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert marker.exists() and marker.read_text().split()[0] == step, marker.read_text() if marker.exists() else ""


def _failpoint(tmp: Path, step: str, nth: int = 1) -> tuple[dict[str, str], Path]:
    marker = tmp / f"fp-{step}.log"
    marker.unlink(missing_ok=True)
    return {"CHUTE_FAILPOINTS": f"kill_at={step}:{nth},marker={marker}"}, marker


def _state(tmp: Path, path: str) -> str:
    return [v for v in ledger_versions(tmp / "state") if v["path"] == path][-1]["state"]


@pytest.mark.parametrize("step", ["purge_intent", "purge_deleted"])
@pytest.mark.parametrize("finish", ["same command", "restart"])
def test_killed_purge_finishes_and_rows_agree(tmp_path: Path, step: str, finish: str) -> None:
    """Defect 1: a purge killed part-way used to leave the version `purged`, its rows in ClickHouse,
    the file on disk, and "already purged" on a second try; the same content under a new name then
    loaded twice. Now: the same command or a restart finishes it, and nothing is orphaned."""
    data = tmp_path / "data"
    data.mkdir()
    body = csv_bytes(make_rows(ROWS))
    (data / "p.csv").write_bytes(body)
    assert _once(tmp_path).returncode == 0
    env, marker = _failpoint(tmp_path, step)
    _killed_at(run_chute("purge", "p.csv", *_common(tmp_path), env=env), marker, step)

    if finish == "same command":
        again = run_chute("purge", "p.csv", *_common(tmp_path))
        assert again.returncode == 0 and "purg" in again.stdout, again.stderr
    else:
        assert _once(tmp_path).returncode == 0
    assert _state(tmp_path, "p.csv") == "purged"
    assert not (data / "p.csv").exists()
    assert rows_and_disagreements(tmp_path / "state", tmp_path / "ch") == ((0, 0), [])
    # The same content under a new name loads once: nothing of the purged version is left to double it.
    (data / "q.csv").write_bytes(body)
    assert _once(tmp_path).returncode == 0
    assert rows_and_disagreements(tmp_path / "state", tmp_path / "ch") == ((ROWS, 0), [])


@pytest.mark.parametrize("step", ["loaded", "archive_intent", "archive_moved"])
def test_killed_archive_is_finished_at_restart(tmp_path: Path, step: str) -> None:
    """after_load=archive killed around the move: the restart moves it (or records the move), and
    the file is never loaded twice."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_bytes(csv_bytes(make_rows(ROWS)))
    env, marker = _failpoint(tmp_path, step)
    _killed_at(_once(tmp_path, "--after-load", "archive", env=env), marker, step)
    assert _once(tmp_path, "--after-load", "archive").returncode == 0
    version = [v for v in ledger_versions(tmp_path / "state") if v["path"] == "a.csv"]
    assert [v["state"] for v in version] == ["loaded"], version
    assert not (data / "a.csv").exists()
    assert version[0]["moved_to"] and (data / version[0]["moved_to"]).exists(), version
    assert rows_and_disagreements(tmp_path / "state", tmp_path / "ch") == ((ROWS, 0), [])


def test_killed_delete_after_load_is_finished_at_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "d.csv").write_bytes(csv_bytes(make_rows(ROWS)))
    env, marker = _failpoint(tmp_path, "loaded")
    _killed_at(_once(tmp_path, "--after-load", "delete", env=env), marker, "loaded")
    assert (data / "d.csv").exists()
    assert _once(tmp_path, "--after-load", "delete").returncode == 0
    assert not (data / "d.csv").exists()
    assert [v["moved_to"] for v in ledger_versions(tmp_path / "state")] == ["(deleted)"]
    assert disagreements(tmp_path / "state", tmp_path / "ch") == []


@pytest.mark.parametrize("step", ["retry_intent", "retry_moved"])
def test_killed_retry_finishes_on_the_same_command(tmp_path: Path, step: str) -> None:
    """Killed after moving a quarantined file back: the second `chute retry` used to refuse ("exists
    again") and the ledger still said quarantined. Now it finishes, and the file runs again."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "bad.ndjson").write_bytes(b'{"a": 1}\n{not json\n')
    assert _once(tmp_path).returncode == 3
    assert _state(tmp_path, "bad.ndjson") == "quarantined"
    env, marker = _failpoint(tmp_path, step)
    _killed_at(run_chute("retry", "bad.ndjson", *_common(tmp_path), env=env), marker, step)
    again = run_chute("retry", "bad.ndjson", *_common(tmp_path))
    assert again.returncode == 0 and "retrying bad.ndjson" in again.stdout, again.stderr
    assert _state(tmp_path, "bad.ndjson") == "queued" and (data / "bad.ndjson").exists()
    assert open_intents(tmp_path / "state") == []
    assert _once(tmp_path).returncode == 3  # bad input stays bad: quarantined again, with its reason
    assert _state(tmp_path, "bad.ndjson") == "quarantined"


@pytest.mark.parametrize("step", ["quarantine_intent", "quarantine_moved"])
def test_killed_quarantine_move_is_finished_at_restart(tmp_path: Path, step: str) -> None:
    """Issue 11 leftover: killed between moving a bad file to _quarantine/ and the ledger write, the
    version stayed `loading`, was requeued at the next start and found its file gone: a stray file in
    _quarantine/ (no reason file) and a ledger that no longer knew where it was. Now the move is
    write-ahead: the restart finishes it, and `chute retry` brings the file back as usual."""
    import json

    data = tmp_path / "data"
    data.mkdir()
    (data / "bad.ndjson").write_bytes(b'{"a": 1}\n{not json\n')
    env, marker = _failpoint(tmp_path, step)
    _killed_at(_once(tmp_path, env=env), marker, step)
    restart = _once(tmp_path)  # the start finishes the open intent (this run itself may load nothing)
    assert restart.returncode in (0, 3) and "Traceback" not in restart.stderr, restart.stderr
    [version] = [v for v in ledger_versions(tmp_path / "state") if v["path"] == "bad.ndjson"]
    assert (version["state"], version["moved_to"]) == ("quarantined", "_quarantine/bad.ndjson"), version
    assert version["error_kind"] == "input" and version["reason"], version
    assert not (data / "bad.ndjson").exists()
    assert sorted(p.name for p in (data / "_quarantine").iterdir()) == ["bad.ndjson", "bad.ndjson.reason.json"]
    reason = json.loads((data / "_quarantine" / "bad.ndjson.reason.json").read_text())
    assert (reason["path"], reason["reason"]) == ("bad.ndjson", version["reason"])
    assert open_intents(tmp_path / "state") == []
    back = run_chute("retry", "bad.ndjson", *_common(tmp_path))
    assert back.returncode == 0 and (data / "bad.ndjson").exists(), back.stderr
    assert not (data / "_quarantine" / "bad.ndjson").exists()


def test_a_version_with_an_open_intent_is_never_claimed(tmp_path: Path) -> None:
    """Something may make a version runnable meanwhile (a retry schedule, ClickHouse coming back):
    the loader still must not take it while an operator's action on it is unfinished."""
    import os
    import time

    from chute.core.ledger import Ledger
    from chute.core.states import State

    (tmp_path / "f.csv").write_text("a\n1\n")
    ledger = Ledger(tmp_path)
    row, _ = ledger.observe("f.csv", os.stat(tmp_path / "f.csv"), "f", "csv", None, complete=True)
    ledger.transition(row.id, State.FAILED, next_attempt=time.time() - 1)
    iid = ledger.open_intent(row.id, "purge", "test", "{}", expect=[State.FAILED])
    assert iid is not None
    assert ledger.open_intent(row.id, "retry", "test", "{}", expect=[State.FAILED]) is None  # one at a time
    assert ledger.claim(row.id) is None
    assert ledger.open_intent_count() == 1  # the console's status line counts it
    ledger.close_intent(iid, "rolled_back", "test")
    assert ledger.open_intent_count() == 0
    assert ledger.claim(row.id) is not None
    ledger.close()


def test_status_shows_an_unfinished_action_until_it_is_finished(tmp_path: Path) -> None:
    """Issue 11 leftover: an action a crash interrupted was invisible; `chute status` (text and --json)
    now names it (action, version, path, since when) and the way to finish it, until it is finished."""
    import json

    data = tmp_path / "data"
    data.mkdir()
    (data / "bad.ndjson").write_bytes(b'{"a": 1}\n{not json\n')
    assert _once(tmp_path).returncode == 3
    version = ledger_versions(tmp_path / "state")[-1]["id"]
    env, marker = _failpoint(tmp_path, "retry_intent")
    _killed_at(run_chute("retry", "bad.ndjson", *_common(tmp_path), env=env), marker, "retry_intent")

    text = run_chute("status", *_common(tmp_path))
    assert text.returncode == 0, text.stderr
    assert "open actions (1, begun and not finished)" in text.stdout, text.stdout
    assert f"retry    bad.ndjson (version {version}, was quarantined" in text.stdout, text.stdout
    assert "`chute retry bad.ndjson` again" in text.stdout
    doc = json.loads(run_chute("status", "--json", *_common(tmp_path)).stdout)
    [action] = doc["open_actions"]
    assert (action["action"], action["path"], action["version_id"], action["from_state"]) == \
        ("retry", "bad.ndjson", version, "quarantined")
    assert action["since"] > 0 and "again" in action["way_forward"]

    assert run_chute("retry", "bad.ndjson", *_common(tmp_path)).returncode == 0
    assert "open actions" not in run_chute("status", *_common(tmp_path)).stdout
    assert json.loads(run_chute("status", "--json", *_common(tmp_path)).stdout)["open_actions"] == []
