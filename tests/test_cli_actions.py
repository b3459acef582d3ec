"""`chute approve|retry|purge` name a version (--id) or many (--state/--table/--glob), as issue 10 asks."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
from pathlib import Path

import pytest

from chute.core.action_cli import actor
from tests.conftest import engine_query, run_chute
from tests.test_cli import _args, _one_clear_line


def _files(tmp: Path) -> list[dict]:
    out = run_chute("files", "--json", "--state-dir", str(tmp / "state")).stdout
    return [json.loads(line) for line in out.splitlines()]


def _csv(n: int) -> str:
    return "id,v\n" + "".join(f"{i},{i}\n" for i in range(1, n + 1))


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    tmp.rename(path)


def test_purge_by_id_removes_the_old_version_and_keeps_the_new_held_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _replace(data / "sales.csv", _csv(200))
    assert run_chute("--no-ui", "--once", *_args(tmp_path)).returncode == 0
    # Edited, not only appended to (a pure append would load just the new rows): a new version, held.
    _replace(data / "sales.csv", "id,v\n" + "".join(f"{i},{i}\n" for i in range(5, 225)))
    assert run_chute("--no-ui", "--once", *_args(tmp_path)).returncode == 3
    versions = sorted((f for f in _files(tmp_path) if f["path"] == "sales.csv"), key=lambda f: f["id"])
    old, new = versions
    assert (old["state"], new["state"]) == ("loaded", "held")
    text = run_chute("files", "--state-dir", str(tmp_path / "state")).stdout
    assert f"{old['id']}\tsales.csv\tsales\tloaded" in text  # the id `--id` takes, first on each line

    purged = run_chute("purge", "--id", str(old["id"]), "--state-dir", str(tmp_path / "state"), "--clickhouse",
                       f"chdb://{tmp_path / 'ch'}")
    assert purged.returncode == 0, purged.stderr
    assert "200 rows deleted" in purged.stdout and "kept (it is a newer file)" in purged.stdout
    assert (data / "sales.csv").exists()
    after = {f["id"]: f["state"] for f in _files(tmp_path)}
    assert after == {old["id"]: "purged", new["id"]: "held"}
    rows = engine_query(tmp_path / "ch", f"SELECT count() FROM sales WHERE _source_sha256 = '{old['sha256']}'")
    assert rows == [[0]] or rows == [["0"]]
    again = run_chute("purge", "--id", str(old["id"]), "--state-dir", str(tmp_path / "state"), "--clickhouse",
                      f"chdb://{tmp_path / 'ch'}")
    _one_clear_line(again, 2, "already purged")
    # Without --clickhouse it would act on the default engine: refused first, naming the right one.
    _one_clear_line(run_chute("purge", "--id", str(old["id"]), "--state-dir", str(tmp_path / "state")), 2,
                    f"chdb://{tmp_path / 'ch'}")


def test_bulk_lists_asks_once_and_dry_run_touches_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "orders").mkdir(parents=True)
    for i in range(3):
        _replace(data / "orders" / f"o{i}.csv", _csv(i + 1))
    _replace(data / "other.csv", _csv(9))
    assert run_chute("--no-ui", "--once", *_args(tmp_path, "--require-approval")).returncode == 3
    state = ["--state-dir", str(tmp_path / "state")]
    dry = run_chute("approve", "--state", "held", "--table", "orders", "--dry-run", *state)
    assert dry.returncode == 0, dry.stderr
    assert "approve would touch 3 files" in dry.stdout and "orders/o2.csv" in dry.stdout
    assert "other.csv" not in dry.stdout
    assert {f["state"] for f in _files(tmp_path)} == {"held"}
    # A script without a terminal must say --yes; nothing is done meanwhile.
    _one_clear_line(run_chute("approve", "--glob", "orders/*", *state), 2, "add --yes")
    assert {f["state"] for f in _files(tmp_path)} == {"held"}
    done = run_chute("approve", "--glob", "orders/*.csv", "--yes", *state)
    assert done.returncode == 0, done.stderr
    assert "3 done, 0 refused" in done.stdout
    states = {f["path"]: f["state"] for f in _files(tmp_path)}
    assert states == {"orders/o0.csv": "queued", "orders/o1.csv": "queued", "orders/o2.csv": "queued",
                      "other.csv": "held"}
    events = run_chute("events", "--json", *state).stdout.splitlines()
    assert all(not json.loads(e)["actor"].endswith("unknown") for e in events)
    _one_clear_line(run_chute("purge", "other.csv", "--id", "1", *state), 2, "exactly one")


def test_actor_is_the_os_account_when_user_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):  # cron, systemd units
        monkeypatch.delenv(name, raising=False)
    assert actor() == f"cli:{pwd.getpwuid(os.getuid()).pw_name}"


def _held(tmp: Path, n: int = 2) -> list[str]:
    (tmp / "data" / "orders").mkdir(parents=True)
    for i in range(n):
        _replace(tmp / "data" / "orders" / f"o{i}.csv", _csv(i + 1))
    assert run_chute("--no-ui", "--once", *_args(tmp, "--require-approval")).returncode == 3
    return ["--state-dir", str(tmp / "state")]


def _readable(fd: int, seconds: float) -> bool:
    """poll, not select: a pytest worker that has run many tests may hold a descriptor above
    select()'s FD_SETSIZE (1024), and select then raises "filedescriptor out of range"."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(seconds * 1000))


def _at_the_prompt(args: list[str], keys: bytes) -> tuple[int, str]:
    """Run a bulk action in a terminal (a pty), answer its [y/N] with ``keys``; (exit code, output)."""
    import pty
    import time

    from tests.conftest import chute_cmd

    cmd = chute_cmd(*args)
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvp(cmd[0], cmd)
    out = b""
    deadline = time.monotonic() + 120
    try:
        while b"[y/N]" not in out and time.monotonic() < deadline:
            if _readable(fd, 1.0):
                out += os.read(fd, 4096)
        os.write(fd, keys)
        exited = False
        while time.monotonic() < deadline:
            # Once the child has exited, read what it wrote last before stopping (it used to be
            # lost when the exit was seen first: "nothing done" missing from the output).
            exited = exited or bool(os.waitpid(pid, os.WNOHANG)[0])
            if exited or _readable(fd, 0.2):
                chunk = b""
                with contextlib.suppress(OSError):  # EIO: the child closed the terminal, all read
                    chunk = os.read(fd, 4096)
                out += chunk
                if exited and not chunk:
                    break
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return -1, out.decode(errors="replace")
    finally:
        os.close(fd)
    return 0, out.decode(errors="replace")


@pytest.mark.parametrize("keys", [b"\x04", b"\x03"], ids=["ctrl-d", "ctrl-c"])
def test_ctrl_d_or_ctrl_c_at_the_bulk_question_cancels_cleanly(tmp_path: Path, keys: bytes) -> None:
    state = _held(tmp_path)
    code, out = _at_the_prompt(["approve", "--glob", "orders/*", *state], keys)
    assert code == 0, f"still waiting after {keys!r}: {out}"  # ctrl-c used to hang until enter (polars threads)
    assert "Error" not in out and "nothing done" in out, out
    assert {f["state"] for f in _files(tmp_path)} == {"held"}


def test_dry_run_of_one_path_names_the_version_and_whether_the_action_applies(tmp_path: Path) -> None:
    state = _held(tmp_path)
    _one_clear_line(run_chute("purge", "nonexistent.csv", "--dry-run", *state), 2, "no file")
    _one_clear_line(run_chute("retry", "orders/o0.csv", "--dry-run", *state), 2, "only failed or quarantined")
    dry = run_chute("approve", "orders/o1.csv", "--dry-run", *state)
    assert dry.returncode == 0 and "would approve #" in dry.stdout, (dry.stdout, dry.stderr)


def test_a_state_the_action_never_applies_to_is_an_error(tmp_path: Path) -> None:
    state = _held(tmp_path)
    _one_clear_line(run_chute("approve", "--state", "quarantined", "--yes", *state), 2, "approve applies to held")
    nothing = run_chute("approve", "--glob", "nomatch*", "--yes", *state)  # a filter that matches nothing is fine
    assert nothing.returncode == 0 and "nothing to approve" in nothing.stdout


def test_a_reader_that_goes_away_early_gets_no_error(tmp_path: Path) -> None:
    """`chute files | head -1`: the pipe closes before chute writes; that is not an error."""
    import subprocess

    from tests.conftest import chute_cmd

    state = _held(tmp_path)
    proc = subprocess.Popen(chute_cmd("files", *state), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `head` after its lines
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == "", err


def test_cli_takes_back_what_a_dead_daemon_never_did(tmp_path: Path) -> None:
    """Hostile review: `chute purge` whose daemon was killed left the purge queued for the next one."""
    from chute.core.action_cli import Item, via_daemon
    from chute.core.ledger import Ledger

    state = _held(tmp_path)
    results = via_daemon(state[1], "purge", [Item("#1", file_id=1, expect="held")], "cli:t", wait=60,
                         holder=lambda: None)
    assert results == [(False, "the daemon stopped before carrying it out: purge withdrawn, nothing done")]
    ledger = Ledger(Path(state[1]))
    try:
        assert ledger.pending_commands() == []
    finally:
        ledger.close()


def test_an_action_on_a_version_a_killed_run_left_loading_says_to_start_chute(tmp_path: Path) -> None:
    """With no engine running, nothing will move a version a killed run left `loading` (here: a
    member of a group insert never acknowledged): "pause intake or wait" sent the operator waiting
    for nothing. The refusal says so and what settles it."""
    data = tmp_path / "data"
    (data / "sales").mkdir(parents=True)
    for i in range(3):  # one table: one group
        _replace(data / "sales" / f"s{i}.csv", _csv(5 + i))
    killed = run_chute("--no-ui", "--once", *_args(tmp_path, "--workers", "1"),  # one slot: one group
                       env={"CHUTE_FAILPOINTS": f"kill_at=group_inserted:1,marker={tmp_path / 'fp.log'}"})
    assert killed.returncode != 0 and (tmp_path / "fp.log").read_text().startswith("group_inserted")
    assert {f["state"] for f in _files(tmp_path)} == {"loading"}
    state = ["--state-dir", str(tmp_path / "state"), "--clickhouse", f"chdb://{tmp_path / 'ch'}"]
    for action in ("purge", "retry"):
        _one_clear_line(run_chute(action, "sales/s0.csv", *state), 2, "no engine is running")
    assert run_chute("--no-ui", "--once", *_args(tmp_path)).returncode == 0  # what the message advises
    assert {f["state"] for f in _files(tmp_path)} == {"loaded"}
    purged = run_chute("purge", "sales/s0.csv", *state)
    assert purged.returncode == 0 and "5 rows deleted" in purged.stdout, purged.stderr
