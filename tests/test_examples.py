"""examples/: the orchestrator task bodies against the real engine; the DAG and flow files import
without Airflow or Prefect installed."""

from __future__ import annotations

import gzip
import importlib
import logging
import sys
from pathlib import Path

import pytest

from chute.core.states import State
from tests.conftest import ROOT, HttpTarget, make_config

EXAMPLES = ROOT / "examples"
GOOD = b"id,name\n1,a\n2,b\n"


@pytest.fixture(scope="module")
def tasks():  # noqa: ANN201 - the examples' module
    sys.path.insert(0, str(EXAMPLES))  # as Airflow's dags folder or `python prefect_flow.py` would
    try:
        yield importlib.import_module("chute_tasks")
    finally:
        sys.path.remove(str(EXAMPLES))


def _settings(cfg) -> dict:  # noqa: ANN001
    keys = ("clickhouse_url", "database", "state_dir", "settle_seconds", "password_file", "max_attempts",
            "require_approval", "backoff_base", "backoff_max")
    return {k: getattr(cfg, k) for k in keys}


def test_good_files_return_a_summary(tasks, tmp_path: Path, chdb_path: Path, caplog) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "a.csv").write_bytes(GOOD)
    (cfg.data_dir / "b.csv").write_bytes(GOOD)  # same content: a duplicate, which is fine
    with caplog.at_level(logging.INFO, logger="chute.task"):
        out = tasks.load_folder(cfg.data_dir, **_settings(cfg))
    assert out["files"] == 2 and out["rows"] == 2 and len(out["loaded"]) == len(out["duplicates"]) == 1
    assert any("2 rows into" in r.getMessage() for r in caplog.records)


def test_quarantined_fails_without_retry_and_logs_the_reason(tasks, tmp_path: Path, chdb_path: Path,
                                                             caplog) -> None:
    cfg = make_config(tmp_path, chdb_path, require_approval=False)
    (cfg.data_dir / "ok.csv").write_bytes(GOOD)
    (cfg.data_dir / "bad.csv.gz").write_bytes(gzip.compress(GOOD * 100)[:-30])
    with caplog.at_level(logging.INFO, logger="chute.task"), pytest.raises(tasks.BadInput) as err:
        tasks.load_folder(cfg.data_dir, **_settings(cfg))
    [bad] = err.value.files
    assert bad.path == "bad.csv.gz" and bad.state == State.QUARANTINED
    assert bad.reason and bad.reason in str(err.value)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [f"bad.csv.gz: quarantined: {bad.reason}"]


def test_held_skips(tasks, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, require_approval=True)
    (cfg.data_dir / "wait.csv").write_bytes(GOOD)
    with pytest.raises(tasks.Held, match="wait.csv: waiting for approval"):
        tasks.load_folder(cfg.data_dir, **_settings(cfg))


def test_clickhouse_failure_asks_for_a_retry(tasks, tmp_path: Path, http_target: HttpTarget) -> None:
    cfg = make_config(tmp_path, http_target, max_attempts=1)
    (cfg.data_dir / "x.csv").write_bytes(GOOD)
    http_target.server.set_fault("ch_error", target="insert", code=241, message="Memory limit exceeded")
    try:
        with pytest.raises(tasks.RetryLater, match="x.csv: .*Memory limit") as err:
            tasks.load_folder(cfg.data_dir, **_settings(cfg))
    finally:
        http_target.server.clear_faults()
    assert [f.state for f in err.value.files] == [State.FAILED]


def test_the_cli_variant_reads_exit_codes_and_reasons(tasks, tmp_path: Path) -> None:
    """`chute --once` in a subprocess, with an engine directory of its own."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.csv").write_bytes(GOOD)
    env = {"CHUTE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'engine'}", "CHUTE_STATE_DIR": str(tmp_path / "state")}
    chute = (sys.executable, "-m", "chute.core")
    assert tasks.load_folder_cli(data, chute=chute, env=env)["loaded"] == ["ok.csv"]
    (data / "empty.csv").write_bytes(b"")
    with pytest.raises(tasks.BadInput, match="empty.csv") as err:
        tasks.load_folder_cli(data, chute=chute, env=env)
    assert [f.path for f in err.value.files] == ["empty.csv"]
    with pytest.raises(RuntimeError, match="exited 2"):
        tasks.load_folder_cli(tmp_path / "missing", chute=chute, env=env)


@pytest.mark.parametrize("name", ["airflow_dag", "prefect_flow"])
def test_dag_and_flow_import_without_their_orchestrator(tasks, name: str) -> None:
    module = importlib.import_module(name)
    assert callable(module.load)  # the plain task body the DAG / flow wraps
    orchestrator = "airflow" if name == "airflow_dag" else "prefect"
    if importlib.util.find_spec(orchestrator) is None:
        assert (module.dag if name == "airflow_dag" else module.flow) is None
