"""The public Python API (core/api.py) against the real engine (chDB): typed results, typed errors."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from chute.core import api
from chute.core.errors import ChuteError, UsageError
from chute.core.states import State
from tests.conftest import ROOT, make_config, query, wait_for

GOOD = b"id,name\n1,a\n2,b\n3,c\n"


def test_run_once_reports_each_file_with_its_reason(tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "good.csv").write_bytes(GOOD)
    (cfg.data_dir / "broken.csv.gz").write_bytes(gzip.compress(GOOD * 50)[:-30])  # truncated
    result = api.run_once(config=cfg, timeout=120)
    assert isinstance(result, api.RunResult)
    by_path = {f.path: f for f in result.files}
    assert by_path["good.csv"].state == State.LOADED and by_path["good.csv"].rows_loaded == 3
    assert by_path["good.csv"].table == "good" and by_path["good.csv"].ok
    bad = by_path["broken.csv.gz"]
    assert bad.state == State.QUARANTINED and bad.reason and bad.moved_to
    assert result.exit_code == 3 and not result.ok and result.problems == [bad]
    assert result.counts == {"loaded": 1, "quarantined": 1}
    with pytest.raises(api.LoadProblems) as err:
        result.raise_for_problems()
    assert isinstance(err.value, ChuteError) and not err.value.held_only
    assert "broken.csv.gz: quarantined: " in str(err.value) and bad.reason in str(err.value)


def test_status_and_files_are_typed_and_match_the_cli(tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "a.csv").write_bytes(GOOD)
    (cfg.data_dir / "b.csv").write_bytes(b"")  # empty: quarantined
    api.run_once(config=cfg, timeout=120)
    st = api.status(config=cfg)
    assert isinstance(st, api.Status) and st.running is None
    assert st.counts["loaded"] == 1 and st.counts["quarantined"] == 1 and st.files_loaded_last_hour == 1
    assert [e.path for e in st.recent_errors] == ["b.csv"]
    listed = api.files(config=cfg)
    assert {f.path: str(f.state) for f in listed} == {"a.csv": "loaded", "b.csv": "quarantined"}
    assert [f.path for f in api.files("loaded", config=cfg)] == ["a.csv"]
    assert [f.id for f in api.files(path="a.csv", config=cfg)] == [next(f.id for f in listed if f.path == "a.csv")]
    assert api.files(state=State.QUARANTINED, config=cfg)[0].as_dict()["state"] == "quarantined"
    with pytest.raises(UsageError, match="unknown state"):
        api.files("nope", config=cfg)


def test_held_files_are_approved_by_path_or_id(tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, require_approval=True)
    (cfg.data_dir / "one.csv").write_bytes(GOOD)
    (cfg.data_dir / "two.csv").write_bytes(GOOD.replace(b"a", b"z"))
    result = api.run_once(config=cfg, timeout=120)
    assert {str(f.state) for f in result.files} == {"held"} and result.exit_code == 3
    with pytest.raises(api.LoadProblems) as err:
        result.raise_for_problems()
    assert err.value.held_only and "waiting for approval" in str(err.value)

    done = api.approve("one.csv", config=cfg)
    assert isinstance(done, api.ActionResult) and done.message == "approved one.csv" and not done.via_daemon
    two = next(f for f in result.files if f.path == "two.csv")
    assert api.approve(id=two.id, config=cfg).path == "two.csv"
    with pytest.raises(UsageError, match="not held"):
        api.approve("one.csv", config=cfg)  # already queued: a clear refusal
    again = api.run_once(config=cfg, timeout=120)
    assert again.ok and again.exit_code == 0 and again.counts == {"loaded": 2}


def test_actions_go_through_a_running_daemon(tmp_path: Path, chdb_path: Path, engine_factory) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "t.csv").write_bytes(GOOD)
    engine = engine_factory(cfg)
    loaded = api.load(["t.csv"], config=cfg, timeout=60)  # a daemon holds the state dir: load waits on it
    assert [(f.path, str(f.state)) for f in loaded.files] == [("t.csv", "loaded")]
    assert api.status(config=cfg).running
    purged = api.purge(str(cfg.data_dir / "t.csv"), config=cfg, wait=60)
    assert purged.via_daemon and purged.message.startswith("purged t.csv: 3 rows deleted")
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.t")[0][0] == 0
    wait_for(lambda: api.files(config=cfg)[0].state == State.PURGED, what="purged")


def test_load_named_paths_without_a_daemon(tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "sub").mkdir()
    (cfg.data_dir / "sub" / "x.csv").write_bytes(GOOD)
    result = api.load([cfg.data_dir / "sub" / "x.csv"], config=cfg, timeout=120)
    assert [(f.path, f.table, str(f.state)) for f in result.files] == [("sub/x.csv", "sub", "loaded")]


def test_typed_errors_instead_of_tracebacks(tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    with pytest.raises(UsageError, match="no ledger"):
        api.status(config=cfg)
    with pytest.raises(UsageError, match="not inside the data folder"):
        api.load([tmp_path / "elsewhere.csv"], config=cfg)
    with pytest.raises(UsageError, match="is not in the data folder"):
        api.load(["missing.csv"], config=cfg)
    (cfg.data_dir / "a.csv").write_bytes(GOOD)
    api.run_once(config=cfg, timeout=120)
    with pytest.raises(UsageError, match="give a path or an id"):
        api.retry("a.csv", id=1, config=cfg)
    with pytest.raises(UsageError, match="only failed or quarantined"):
        api.retry("a.csv", config=cfg)
    with pytest.raises(UsageError, match="no file with id 999"):
        api.purge(id=999, config=cfg)
    with pytest.raises(UsageError, match="no file .nothing.csv. in the ledger"):
        api.purge("nothing.csv", config=cfg)


def test_settings_build_the_config_like_the_cli(tmp_path: Path, chdb_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CHUTE_STATE_DIR", str(tmp_path / "from-env"))
    cfg = api.make_config(tmp_path, clickhouse_url=f"chdb://{chdb_path}", batch_rows=7)
    assert cfg.data_dir == tmp_path.resolve() and cfg.batch_rows == 7
    assert cfg.state_dir == tmp_path / "from-env"
    with pytest.raises(UsageError, match="either config= or settings"):
        api.make_config(config=cfg, workers=3)
    with pytest.raises(UsageError):
        api.make_config(tmp_path, workers="many")


def test_importing_chute_core_stays_cheap_and_reexports_the_api() -> None:
    code = (
        "import sys, chute.core as c\n"
        "heavy = [m for m in ('chute.core.engine', 'chute.core.api', 'polars', 'pyarrow', 'clickhouse_connect')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from chute.core import api\n"
        "assert c.run_once is api.run_once and c.LoadProblems is api.LoadProblems\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
