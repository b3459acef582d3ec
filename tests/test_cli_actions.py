"""`chute approve|retry|purge` name a version (--id) or many (--state/--table/--glob), as issue 10 asks."""

from __future__ import annotations

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
    again = run_chute("purge", "--id", str(old["id"]), "--state-dir", str(tmp_path / "state"))
    _one_clear_line(again, 2, "already purged")


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
    nothing = run_chute("retry", "--state", "held", "--yes", *state)
    assert nothing.returncode == 0 and "nothing to retry" in nothing.stdout
    _one_clear_line(run_chute("purge", "other.csv", "--id", "1", *state), 2, "exactly one")


def test_actor_is_the_os_account_when_user_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):  # cron, systemd units
        monkeypatch.delenv(name, raising=False)
    assert actor() == f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
