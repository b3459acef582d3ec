"""File descriptors: a test process that runs hundreds of engines, and a daemon that loads for
months, must not pile them up (a pytest worker once held more than 1,024: session 4's closing note).

What piled up: chDB shuts its engine down when the last handle on it closes and starts it again on
the next one, and each start leaves its MergeTree background threads behind (~5 threads, each
holding 3 descriptors on /proc/self/task/N/). tests/conftest.py's ``embedded_path`` keeps one
handle open for the session; tests/fdguard.py fails any test that leaves descriptors open.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chute.core.engine import Engine
from tests import fdguard
from tests.conftest import ROOT, chute_cmd, drop_databases, make_config, wait_for
from tests.procs import stop


def _csv(path: Path, rows: int, salt: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,name,amount\n" + "".join(f"{i},{salt}n{i},{i}.5\n" for i in range(rows)))


def _fds(pid: int) -> int:
    """``pid``'s descriptors, less chDB's per-thread ones (its pool grows by itself under load)."""
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += not fdguard.is_thread_stat(os.readlink(f"/proc/{pid}/fd/{name}"))
        except OSError:
            continue
    return count


def _executor_threads(chdb: Path) -> int:
    """chDB's MergeTree background executor threads (made at each engine start, never joined)."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb}")
    try:
        rows = client.query("SELECT value FROM system.metrics WHERE metric = 'MergeTreeBackgroundExecutorThreads'")
        return int(rows.result_rows[0][0])
    finally:
        client.close()


def test_engines_started_one_after_another_leave_no_threads_or_descriptors(tmp_path: Path, chdb_path: Path) -> None:
    """Three in-process engines, one after the other, each loading a file: chDB's background
    threads stay as many, and the descriptors other than its threads' stay where the first left
    them. Without the handle the session keeps open, each engine start left 5 executor threads
    and ~15 descriptors behind (seen failing on the old conftest: 10, 15, 20 threads)."""
    threads, fds = [], []
    for i in range(3):
        cfg = make_config(tmp_path / f"run{i}", chdb_path, workers=2)
        _csv(cfg.data_dir / "t" / "a.csv", 50, salt=str(i))
        engine = Engine(cfg, once=True)
        engine.start()
        try:
            assert engine.wait_idle(timeout=120)
        finally:
            engine.stop()
        drop_databases([cfg])
        threads.append(_executor_threads(chdb_path))
        fds.append(sum(not fdguard.is_thread_stat(t) for t in fdguard.open_fds().values()))
    assert threads[0] == threads[1] == threads[2], threads
    assert fds[2] - fds[0] <= 3, fds


def test_the_guard_counts_a_tests_leftovers_but_not_chdb_threads_or_session_fixtures(tmp_path: Path) -> None:
    """Negative control of tests/fdguard.py: descriptors a test leaves open are counted, chDB's
    per-thread ones and a wider fixture's are not, and a process holding too many thread
    descriptors fails whatever opened them."""
    before = fdguard.open_fds()
    files = [(tmp_path / f"f{i}").open("w") for i in range(fdguard.LIMIT + 1)]
    try:
        after = fdguard.open_fds()
        new = fdguard.leaked(before, after, set())
        assert len(new) == fdguard.LIMIT + 1
        message = fdguard.verdict(new, after)
        assert message is not None and f"{fdguard.LIMIT + 1} file descriptors left open" in message
        assert str(tmp_path / "f0") in message
        wider = {(fd, t) for fd, t in new.items()}
        assert fdguard.leaked(before, after, wider) == {}  # a session fixture's are its own
    finally:
        for f in files:
            f.close()
    tid = os.getpid()
    stats = {100 + i: f"/proc/{tid}/task/{tid + i}/stat" for i in range(fdguard.THREAD_FDS + 1)}
    assert fdguard.leaked({}, stats, set()) == {}
    assert "descriptors of chDB threads" in (fdguard.verdict({}, stats) or "")
    assert fdguard.verdict({}, dict(list(stats.items())[:fdguard.THREAD_FDS])) is None
    # a background merge's part files are chDB's own until it ends; a finished part's are counted
    store = "/tmp/x/chdb0/store/92d/92d41cef-1178-4bd9-8704-e348a805fa72"
    merging = {200 + i: f"{store}/tmp_merge_all_1_6_1/f{i}.bin" for i in range(fdguard.LIMIT + 4)}
    assert fdguard.leaked({}, merging, set()) == {}
    done = {200 + i: f"{store}/all_1_6_1/f{i}.bin" for i in range(fdguard.LIMIT + 4)}
    assert len(fdguard.leaked({}, done, set())) == fdguard.LIMIT + 4


def _loaded(state: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM files WHERE state = 'loaded'").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


@pytest.mark.timeout(600)
def test_a_daemon_loading_round_after_round_holds_no_more_descriptors(tmp_path: Path) -> None:
    """A running `chute --no-ui` takes three rounds of 150 small files and 3 bigger ones into
    one table: its descriptors (less chDB's per-thread ones) after each later round are those after
    the first. Measured by hand on 3 rounds of 500 + 20 files into 3 tables: 102, 103, 104 in all
    (+1 per table: its deduplication log), up to ~580 while a round's groups hold members open."""
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(chute_cmd("--no-ui", str(data), "--state-dir", str(state), "--clickhouse",
                                      f"chdb://{tmp_path / 'ch'}", "--settle-seconds", "0.2"),
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        after = []
        for rnd in range(3):
            for i in range(150):
                _csv(data / "t" / f"r{rnd}-s{i:03d}.csv", 10, salt=f"{rnd}-{i}-")
            for i in range(3):
                _csv(data / "t" / f"r{rnd}-big{i}.csv", 20_000, salt=f"{rnd}-{i}-")
            wait_for(lambda n=153 * (rnd + 1): _loaded(state) >= n, timeout=300, interval=0.2,
                     what=f"round {rnd} loaded")
            if after:  # back to where the first round left it (a group may still be closing its files)
                wait_for(lambda: _fds(proc.pid) <= after[0] + 3, timeout=60,
                         what=f"descriptors back to {after[0]} + 3 after round {rnd}: {_fds(proc.pid)}")
            after.append(_fds(proc.pid))
    finally:
        stop(proc, timeout=60)
        log.close()


_RUNS = """
import json, sys
from pathlib import Path
import clickhouse_connect
from chute.core import api, engine_hold
root = Path(sys.argv[1])
if sys.argv[2] == "no-hold":
    engine_hold.keep = lambda cfg: None
out = []
for i in range(4):
    data = root / f"data{i}" / "t"
    data.mkdir(parents=True)
    (data / "a.csv").write_text("id,name\\n" + "".join(f"{j},n{i}-{j}\\n" for j in range(20)))
    result = api.run_once(root / f"data{i}", state_dir=root / f"state{i}", clickhouse_url=f"chdb://{root / 'ch'}")
    assert result.exit_code == 0, result.summary()
    client = clickhouse_connect.get_client(dsn=f"chdb://{root / 'ch'}")
    rows = client.query("SELECT value FROM system.metrics WHERE metric = 'MergeTreeBackgroundExecutorThreads'")
    out.append(int(rows.result_rows[0][0]))
    client.close()
print(json.dumps(out))
"""


@pytest.mark.parametrize("hold", ["hold", "no-hold"])
def test_run_once_called_again_and_again_in_one_process_starts_chdb_once(tmp_path: Path, hold: str) -> None:
    """A scheduler's worker calling ``api.run_once`` four times: chDB's background threads stay as
    many (core/engine_hold.py). Negative control: without the held handle each call started chDB
    again and left 5 more behind (so the check catches the pile-up)."""
    proc = subprocess.run([sys.executable, "-c", _RUNS, str(tmp_path), hold], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    threads = json.loads(proc.stdout.strip().splitlines()[-1])
    if hold == "hold":
        assert len(set(threads)) == 1, threads
    else:
        assert threads[3] >= threads[0] + 10, threads
