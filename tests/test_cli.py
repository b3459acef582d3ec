"""The command line as scripts and operators use it (docs/CONTRACTS.md#command-line)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.chhttp import ChHttpServer
from tests.conftest import HTTP_PASSWORD, HTTP_USER, ROOT, chute_cmd, run_chute, wait_for
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


BAR = b"\r\x1b[2K["  # ProgressLine's redraw: wipe the line, then the bar


def _slow_remote(tmp: Path, srv: ChHttpServer, name: str) -> tuple[list[str], dict[str, str]]:
    """A 1000-row file into a ClickHouse whose inserts take 2 s each (10 batches): a load that
    lasts long enough for the 0.5 s progress tick, with the bar's threshold at 1 row."""
    data = tmp / name
    data.mkdir()
    (data / "x.csv").write_bytes(csv_bytes(make_rows(1000)))
    srv.set_fault("delay", seconds=2.0, target="insert")
    args = ["--no-ui", "--once", str(data), "--state-dir", str(tmp / f"state-{name}"), "--clickhouse",
            f"http://{HTTP_USER}@127.0.0.1:{srv.port}", "--database", name, "--batch-rows", "100",
            "--settle-seconds", "0.1"]
    return args, {**os.environ, "CHUTE_CLICKHOUSE_PASSWORD": HTTP_PASSWORD, "CHUTE_PROGRESS_MIN_ROWS": "1"}


def _run_on_a_pty(args: list[str], env: dict[str, str], on_output: Callable[[bytes], None]) -> tuple[int, bytes]:
    """Run chute with stdout and stderr on a pseudo-terminal; ``on_output`` sees everything so far."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(chute_cmd(*args), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave)
    os.close(slave)
    out = b""
    try:
        while True:
            poller = select.poll()  # not select(): a busy worker may hold descriptors above 1024
            poller.register(master, select.POLLIN)
            if poller.poll(1000):
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    chunk = b""
                if not chunk:
                    break
                out += chunk
                on_output(out)
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=120), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_progress_line_only_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal a long load draws a bar (rows, rows/s, ETA); piped, the same load never does."""
    with ChHttpServer(tmp_path / "ch", user=HTTP_USER, password=HTTP_PASSWORD) as srv:
        args, env = _slow_remote(tmp_path, srv, "tty")

        def release_once_drawn(out: bytes) -> None:  # the bar is there: let the rest of the inserts through
            if BAR in out and b"rows/s" in out and srv.faults():
                srv.clear_faults()

        code, out = _run_on_a_pty(args, env, release_once_drawn)
        assert code == 0, out[-2000:]
        assert BAR in out and b"1,000 rows" in out, out[-2000:]
        assert not srv.faults(), "the bar never showed while inserts were held back"
        assert b"\r\x1b[2K" in out.split(BAR)[-1], "the last bar is wiped, not left under the shell prompt"

        args, env = _slow_remote(tmp_path, srv, "piped")
        srv.set_fault("delay", seconds=2.0, target="insert", count=3)  # ~6 s of loading: a dozen ticks
        proc = subprocess.run(chute_cmd(*args), cwd=ROOT, env=env, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert b"\r" not in proc.stderr + proc.stdout


def test_a_once_stopped_before_every_file_ended_does_not_exit_0(tmp_path: Path) -> None:
    """Found by the round-8 review: a `--once` stopped by SIGTERM mid-run exited 0, which says
    "every file ended loaded or duplicate" to a script, with files still to load. It exits
    128 + the signal (143) and says what was left; a run that then finishes exits 0."""
    import sqlite3
    from contextlib import closing

    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        (data / f"part{i}.csv").write_bytes(csv_bytes(make_rows(150_000, seed=i)))
    proc = subprocess.Popen(chute_cmd("--no-ui", "--once", *_args(tmp_path, "--workers", "1")), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ledger = tmp_path / "state" / "ledger.sqlite3"

    def loading() -> bool:
        try:
            with closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=1)) as db:
                return db.execute("SELECT count() FROM files WHERE state = 'loading'").fetchone()[0] > 0
        except sqlite3.Error:
            return False

    try:
        wait_for(loading, timeout=120, what="a file loading")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err[-2000:])
    assert "stopped by SIGTERM" in err, err[-2000:]
    again = run_chute("--no-ui", "--once", *_args(tmp_path))
    assert again.returncode == 0, again.stderr[-2000:]


def test_a_direct_action_refuses_another_clickhouse_than_the_loads_went_to(tmp_path: Path) -> None:
    """Found by the round-8 review: `chute purge PATH` with no engine running and no --clickhouse
    acted on the default embedded engine, not the one the files were loaded into (there it failed
    on a missing table; had that engine held such a table, it would have deleted rows there and
    marked the file purged while its rows stayed). It refuses and names the ClickHouse to use."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "small.csv").write_bytes(csv_bytes(make_rows(20)))
    assert run_chute("--no-ui", "--once", *_args(tmp_path)).returncode == 0
    state = str(tmp_path / "state")
    other = run_chute("purge", "small.csv", "--state-dir", state, "--clickhouse", f"chdb://{tmp_path / 'other'}")
    _one_clear_line(other, 2, f"chdb://{tmp_path / 'ch'}")
    files = {json.loads(line)["path"]: json.loads(line) for line in
             run_chute("files", "--json", "--state-dir", state).stdout.splitlines()}
    assert files["small.csv"]["state"] == "loaded"  # nothing was done
    right = run_chute("purge", "small.csv", "--state-dir", state, "--clickhouse", f"chdb://{tmp_path / 'ch'}")
    assert right.returncode == 0, right.stderr  # the control: the ClickHouse the loads went to
    files = {json.loads(line)["path"]: json.loads(line) for line in
             run_chute("files", "--json", "--state-dir", state).stdout.splitlines()}
    assert files["small.csv"]["state"] == "purged"


def test_a_once_run_with_stderr_closed_loads(tmp_path: Path) -> None:
    """`chute --no-ui --once ... 2>&-` (a cron line) ended with "AttributeError ... isatty", exit 1
    (found by the round-9 review): descriptors the caller closed are opened on /dev/null, so the
    ledger cannot take number 2 either (a native library's stderr write would land in it)."""
    data = tmp_path / "data"
    (data / "t").mkdir(parents=True)
    (data / "t" / "a.csv").write_bytes(b"id,v\n1,x\n2,y\n")
    proc = subprocess.run(chute_cmd("--no-ui", "--once", str(data), "--state-dir", str(tmp_path / "s"),
                                    "--clickhouse", f"chdb://{tmp_path / 'ch'}"),
                          cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=120,
                          preexec_fn=lambda: os.close(2))
    assert proc.returncode == 0, proc.stdout
    out = run_chute("files", "--json", "--state-dir", str(tmp_path / "s"))
    assert json.loads(out.stdout.splitlines()[0])["state"] == "loaded", out.stdout
