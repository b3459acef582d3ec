"""examples/: the orchestrator task bodies against the real engine; the DAG and flow files import
without Airflow or Prefect installed."""

from __future__ import annotations

import gzip
import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chute.core.states import State
from tests.conftest import ROOT, HttpTarget, make_config

EXAMPLES = ROOT / "examples"
GOOD = b"id,name\n1,a\n2,b\n"


@pytest.fixture(scope="module")
def tasks():
    sys.path.insert(0, str(EXAMPLES))  # as Airflow's dags folder or `python prefect_flow.py` would
    try:
        yield importlib.import_module("chute_tasks")
    finally:
        sys.path.remove(str(EXAMPLES))


def _settings(cfg) -> dict:
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
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "chute.task"]
    assert errors == [f"bad.csv.gz: quarantined: {bad.reason}"]


def test_held_skips(tasks, tmp_path: Path, chdb_path: Path, caplog) -> None:
    cfg = make_config(tmp_path, chdb_path, require_approval=True)
    (cfg.data_dir / "wait.csv").write_bytes(GOOD)
    with caplog.at_level(logging.INFO, logger="chute.task"), \
            pytest.raises(tasks.Held, match="wait.csv: waiting for approval"):
        tasks.load_folder(cfg.data_dir, **_settings(cfg))
    assert [r.levelno for r in caplog.records if r.name == "chute.task"] == [logging.WARNING]


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


def test_the_prefect_flow_runs_when_prefect_is_installed(tmp_path: Path) -> None:
    """Not part of make test (Prefect is not a test dependency): run it where Prefect is installed."""
    pytest.importorskip("prefect", reason="Prefect is not installed (the task functions are tested above)")
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.csv").write_bytes(GOOD)
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), CHUTE_STATE_DIR=str(tmp_path / "state"),
               CHUTE_CLICKHOUSE_URL=f"chdb://{tmp_path / 'engine'}",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300")  # a fresh Prefect database migrates first
    run = [sys.executable, "prefect_flow.py", str(data)]
    ok = subprocess.run(run, cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0 and "ok.csv: loaded, 2 rows into ok" in ok.stdout + ok.stderr
    (data / "empty.csv").write_bytes(b"")
    bad = subprocess.run(run, cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=600)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "empty.csv: quarantined: empty file" in out and "Retrying" not in out


def test_the_airflow_dag_runs_when_airflow_is_installed(tmp_path: Path) -> None:
    """Not part of make test (Airflow is not a test dependency): `airflow dags test` where it is installed."""
    pytest.importorskip("airflow", reason="Airflow is not installed (the task functions are tested above)")
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.csv").write_bytes(GOOD)
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__DAGS_FOLDER=str(EXAMPLES),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", CHUTE_DATA_DIR=str(data), CHUTE_STATE_DIR=str(tmp_path / "state"),
               CHUTE_CLICKHOUSE_URL=f"chdb://{tmp_path / 'engine'}")
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, capture_output=True, timeout=600, check=True)

    def dag_test() -> tuple[int, str]:
        proc = subprocess.run([*airflow, "dags", "test", "chute_ingest"], env=env, capture_output=True, text=True,
                              timeout=600)
        return proc.returncode, proc.stdout + proc.stderr

    code, out = dag_test()
    assert code == 0 and "ok.csv: loaded, 2 rows into ok" in out and "new_state=success" in out
    (data / "ok.csv").write_bytes(GOOD.replace(b"a", b"z"))  # changed content at a known path: held
    code, out = dag_test()
    assert "ok.csv: held: changed content" in out and "new_state=skipped" in out
    (data / "empty.csv").write_bytes(b"")
    code, out = dag_test()
    assert code != 0 and "empty.csv: quarantined: empty file" in out and "new_state=failed" in out
    assert "up_for_retry" not in out
