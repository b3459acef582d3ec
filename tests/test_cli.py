"""The command line as scripts and operators use it (DESIGN section 1)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT, chute_cmd, run_chute, wait_for
from tests.test_engine import csv_bytes, make_rows


def _args(tmp: Path, *extra: str) -> list[str]:
    return [str(tmp / "data"), "--state-dir", str(tmp / "state"), "--clickhouse", f"chdb://{tmp / 'ch'}",
            "--settle-seconds", "0.1", *extra]


def _one_clear_line(proc: subprocess.CompletedProcess, code: int, needle: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("chute")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_missing_data_dir(tmp_path: Path) -> None:
    _one_clear_line(run_chute("--no-ui", "--once", *_args(tmp_path)), 2, "does not exist")


def test_bad_url(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    proc = run_chute("--no-ui", "--once", str(tmp_path / "data"), "--clickhouse", "ftp://nope")
    _one_clear_line(proc, 2, "bad ClickHouse URL")


def test_password_in_url_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    proc = run_chute("--no-ui", "--once", str(tmp_path / "data"), "--clickhouse", "http://u:hunter2@127.0.0.1:1")
    _one_clear_line(proc, 2, "CHUTE_CLICKHOUSE_PASSWORD")
    assert "hunter2" not in proc.stderr + proc.stdout


def test_unwritable_state_dir(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "afile").write_text("")
    proc = run_chute("--no-ui", "--once", str(tmp_path / "data"), "--state-dir", str(tmp_path / "afile" / "state"))
    _one_clear_line(proc, 2, "not writable")


def test_unreachable_clickhouse(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    proc = run_chute("--no-ui", "--once", str(tmp_path / "data"), "--state-dir", str(tmp_path / "state"),
                     "--clickhouse", "http://127.0.0.1:9")
    _one_clear_line(proc, 2, "cannot reach ClickHouse")


def test_bad_option_is_usage_error(tmp_path: Path) -> None:
    proc = run_chute("--no-such-flag")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_once_exit_codes_and_json_logs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.csv").write_bytes(csv_bytes(make_rows(20)))
    ok = run_chute("--no-ui", "--once", *_args(tmp_path))
    assert ok.returncode == 0, ok.stderr
    # stderr is not a terminal here: every log line is a JSON object
    records = [json.loads(line) for line in ok.stderr.splitlines() if line.strip()]
    assert any("loaded good.csv" in r["msg"] for r in records)
    (data / "bad.csv.gz").write_bytes(b"\x1f\x8b not really gzip")
    bad = run_chute("--no-ui", "--once", *_args(tmp_path))
    assert bad.returncode == 3, bad.stderr
    files = {json.loads(line)["path"]: json.loads(line) for line in
             run_chute("files", "--json", "--state-dir", str(tmp_path / "state")).stdout.splitlines()}
    assert files["good.csv"]["state"] == "loaded" and files["good.csv"]["rows"] == 20
    assert files["bad.csv.gz"]["state"] == "quarantined" and files["bad.csv.gz"]["last_error"]
    text = run_chute("files", "--state", "quarantined", "--state-dir", str(tmp_path / "state")).stdout
    assert text.split("\t", 1)[1].startswith("bad.csv.gz\tbad\tquarantined")  # after the ledger id


def test_status_and_commands_while_daemon_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_bytes(csv_bytes(make_rows(10)))
    daemon = subprocess.Popen(chute_cmd("--no-ui", *_args(tmp_path, "--require-approval")), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state = str(tmp_path / "state")
    try:
        def status() -> dict:
            proc = run_chute("status", "--json", "--state-dir", state)
            return json.loads(proc.stdout) if proc.returncode == 0 else {}

        wait_for(lambda: status().get("counts", {}).get("held") == 1, timeout=60, what="held")
        st = status()
        assert st["running"].startswith("pid") and "daemon" in st["running"]
        # A second engine on the same state dir is refused with a clear line.
        second = run_chute("--no-ui", "--once", *_args(tmp_path))
        _one_clear_line(second, 2, "another chute is running")
        approved = run_chute("approve", "a.csv", "--state-dir", state)
        assert approved.returncode == 0 and "approved a.csv" in approved.stdout, approved.stderr
        wait_for(lambda: status().get("counts", {}).get("loaded") == 1, timeout=60, what="loaded")
        nothing = run_chute("retry", "a.csv", "--state-dir", state)
        _one_clear_line(nothing, 2, "only failed or quarantined")
        events = run_chute("events", "--json", "--state-dir", state).stdout.splitlines()
        assert any(json.loads(e)["actor"].startswith("cli:") for e in events)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err[-2000:]
    assert "Traceback" not in err


def test_commands_without_a_daemon(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "p.csv").write_bytes(csv_bytes(make_rows(10)))
    assert run_chute("--no-ui", "--once", *_args(tmp_path)).returncode == 0
    purged = run_chute("purge", "p.csv", "--state-dir", str(tmp_path / "state"), "--clickhouse",
                       f"chdb://{tmp_path / 'ch'}")
    assert purged.returncode == 0 and "10 rows deleted" in purged.stdout, purged.stderr
    assert not (data / "p.csv").exists()
    unknown = run_chute("approve", "nope.csv", "--state-dir", str(tmp_path / "state"))
    _one_clear_line(unknown, 2, "no file 'nope.csv'")


def test_status_without_ledger(tmp_path: Path) -> None:
    _one_clear_line(run_chute("status", "--state-dir", str(tmp_path / "none")), 2, "no ledger")


def test_progress_line_only_on_a_terminal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.csv").write_bytes(csv_bytes(make_rows(5)))
    start = time.monotonic()
    proc = run_chute("--no-ui", "--once", *_args(tmp_path))
    assert proc.returncode == 0 and "\r" not in proc.stderr
    assert time.monotonic() - start < 60
