"""Deployment files (deploy/): rules, dashboard, compose, Dockerfile, systemd unit; and the cluster DDL.

Docker cannot run here (no engine), nor ClickHouse's ON CLUSTER (chDB has no Keeper): those are
checked by parsing them, the SQL by ClickHouse's own parser (``formatQuery`` on chDB). promtool and
systemd-analyze run when installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from chute.core import schema
from chute.core.alerts import Monitor
from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.core.metrics import Metrics, sample_names
from chute.core.schema import Column, create_database_sql, create_table_sql
from chute.core.target import INSERT_SETTINGS, Target
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "chute-rules.yml"
DASHBOARD = DEPLOY / "grafana" / "chute-dashboard.json"
METRIC = re.compile(r"\b((?:chute|process)_[a-z0-9_]+)\b")


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name core/metrics.py's registry can expose (a ledger, no engine running)."""
    tmp = tmp_path_factory.mktemp("metrics")
    ledger = Ledger(tmp)
    engine = SimpleNamespace(ledger=ledger, cfg=Config(data_dir=tmp, state_dir=tmp), target_ok=True,
                             target_error=None, paused=False)
    engine.monitor = Monitor(engine)
    names = sample_names(Metrics(engine).registry)
    ledger.close()
    return names


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


# -- Prometheus rules and the Grafana dashboard ---------------------------------------------


def test_rules_use_only_metrics_chute_exposes(exposed: set[str]) -> None:
    assert METRIC.findall("rate(chute_rows_loaded_total{a=\"b\"}[5m]) / process_cpu_seconds_total") == [
        "chute_rows_loaded_total", "process_cpu_seconds_total"]
    assert "chute_rows_loaded_total" in exposed and "chute_no_such_metric" not in exposed
    recorded = {r["record"] for r in rules() if "record" in r}
    for rule in rules():
        used = set(METRIC.findall(rule["expr"])) - recorded
        assert used <= exposed, (rule.get("alert") or rule.get("record"), used - exposed)


def test_rules_mirror_chutes_own_rules() -> None:
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    severities = {name: r["labels"]["severity"] for name, r in alerts.items()}
    assert severities == {
        "ChuteErrorRateHigh": "critical", "ChuteDiskNearlyFull": "critical", "ChuteMemoryNearlyExhausted": "critical",
        "ChuteOldestFileWaiting": "warning", "ChuteClickHouseUnreachable": "warning", "ChuteDown": "critical",
        "ChuteDailySummary": "info",
    }
    defaults = Config()
    assert f"> {defaults.alert_error_rate}" in alerts["ChuteErrorRateHigh"]["expr"]
    assert "[15m]" in alerts["ChuteErrorRateHigh"]["expr"] and ">= 3" in alerts["ChuteErrorRateHigh"]["expr"]
    assert f"< {defaults.alert_disk_free_ratio}" in alerts["ChuteDiskNearlyFull"]["expr"]
    assert f"< {defaults.alert_memory_free_ratio}" in alerts["ChuteMemoryNearlyExhausted"]["expr"]
    assert f"> {defaults.alert_oldest_waiting_seconds:.0f}" in alerts["ChuteOldestFileWaiting"]["expr"]
    assert all(r["annotations"]["summary"] and r["annotations"]["description"] for r in alerts.values())


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_checks_and_unit_tests_the_rules(tmp_path: Path) -> None:
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(RULES.with_name("chute-rules.test.yml"))]):
        proc = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text().replace("/etc/prometheus/chute-rules.yml",
                                                                            str(RULES))
    (tmp_path / "prometheus.yml").write_text(config)
    proc = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prometheus_config_scrapes_chute_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/chute-rules.yml"]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "chute")  # ChuteDown uses up{job="chute"}
    assert job["static_configs"][0]["targets"] == ["chute:9464"]


def test_dashboard_uses_only_metrics_chute_exposes(exposed: set[str]) -> None:
    board = json.loads(DASHBOARD.read_text())
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    for expr in exprs:
        assert set(METRIC.findall(expr)) <= exposed, (expr, set(METRIC.findall(expr)) - exposed)
        assert 'instance=~"$instance"' in expr, expr
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"] if p["type"] != "row")
    covered = {m for e in exprs for m in METRIC.findall(e)}
    for needed in ("chute_files", "chute_rows_loaded_total", "chute_batch_insert_seconds_bucket", "chute_retries_total",
                   "chute_errors_total", "chute_queue_depth", "chute_oldest_waiting_seconds", "chute_clickhouse_up",
                   "chute_ledger_bytes", "chute_disk_free_bytes", "process_cpu_seconds_total",
                   "process_resident_memory_bytes", "chute_alert_firing"):
        assert needed in covered, needed
    provisioning = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert provisioning["datasources"][0]["type"] == "prometheus"


# -- containers -----------------------------------------------------------------------------


def test_compose_runs_clickhouse_with_chute_beside_it() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    ch, chute = services["clickhouse"], services["chute"]
    assert ch["image"].startswith("clickhouse/clickhouse-server:")
    assert "CMD" in ch["healthcheck"]["test"] and "/ping" in " ".join(ch["healthcheck"]["test"])
    assert "./clickhouse/initdb:/docker-entrypoint-initdb.d:ro" in ch["volumes"]
    assert chute["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert chute["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert "--no-ui" in chute["command"] and chute["command"][-1] == "/data"
    env = chute["environment"]
    assert env["CHUTE_CLICKHOUSE_URL"] == "http://chute@clickhouse:8123"  # the least-privilege user, no password
    assert env["CHUTE_PASSWORD_FILE"] == "/run/secrets/chute_password" and "chute_password" in chute["secrets"]
    assert env["CHUTE_METRICS_ADDR"] == "0.0.0.0:9464" and env["CHUTE_STATE_DIR"] == "/state"
    assert all(key.startswith("CHUTE_") and key[6:].lower() in Config.__dataclass_fields__ for key in env)
    assert "CHUTE_CLICKHOUSE_PASSWORD" not in env  # the password is a secret file, never an env value
    assert chute["read_only"] is True and chute["cap_drop"] == ["ALL"]
    assert compose["secrets"]["chute_password"]["file"] == "./secrets/chute_password"
    assert services["prometheus"]["profiles"] == ["monitoring"] and services["grafana"]["profiles"] == ["monitoring"]
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    assert "chute-rules.yml" in mounts and "chute-dashboard.json" in mounts


def test_dockerfile_builds_an_unprivileged_headless_image() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0].startswith("FROM python:3.12-slim")
    assert "RUN python -m venv /opt/chute && /opt/chute/bin/pip install --no-cache-dir ." in lines
    assert "USER chute" in lines and "useradd --system --uid 10001" in text
    assert 'ENTRYPOINT ["chute"]' in lines
    assert json.loads(lines[-1].removeprefix("CMD "))[:1] == ["--no-ui"]
    assert "EXPOSE 9464" in lines and "HEALTHCHECK" in text and "/healthz" in text
    assert "STOPSIGNAL SIGTERM" in lines
    for copied in ("pyproject.toml", "core", "tui"):
        assert re.search(rf"^COPY .*\b{copied}\b", text, re.M), copied
        assert f"!{copied}" in (DEPLOY / "Dockerfile.dockerignore").read_text()


def test_initdb_script_creates_the_least_privilege_user() -> None:
    script = (DEPLOY / "clickhouse" / "initdb" / "10-chute-user.sh").read_text()
    assert script.startswith("#!/bin/bash") and "set -euo pipefail" in script
    assert (DEPLOY / "clickhouse" / "initdb" / "10-chute-user.sh").stat().st_mode & 0o111  # executed, not sourced
    assert "IDENTIFIED WITH sha256_hash BY '${hash}'" in script and "/run/secrets/chute_password" in script
    assert "GRANT CREATE TABLE, INSERT, SELECT, ALTER DELETE, ALTER ADD COLUMN ON" in script
    assert "GRANT ALL" not in script and "access_management" not in script.lower()


# -- systemd --------------------------------------------------------------------------------


def unit() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / "chute.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_unit_is_hardened() -> None:
    u = unit()
    assert u["User"] == ["chute"] and u["Group"] == ["chute"]
    assert "--no-ui" in u["ExecStart"][0] and u["ExecStart"][0].endswith("/srv/chute/data")
    assert u["Restart"] == ["on-failure"] and u["KillSignal"] == ["SIGTERM"]
    for key, value in (("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"),
                       ("ProtectHome", "yes"), ("PrivateDevices", "yes"), ("CapabilityBoundingSet", "")):
        assert u[key] == [value], key
    assert u["ReadWritePaths"] == ["/srv/chute/data /var/lib/chute"]
    env = dict(e.split("=", 1) for e in u["Environment"])
    assert env["CHUTE_STATE_DIR"] == "/var/lib/chute" and env["CHUTE_METRICS_ADDR"] == "127.0.0.1:9464"
    assert env["CHUTE_PASSWORD_FILE"] == "%d/clickhouse-password"
    assert u["LoadCredential"] == ["clickhouse-password:/etc/chute/clickhouse-password"]
    assert all(k[6:].lower() in Config.__dataclass_fields__ for k in env)
    assert "MemoryDenyWriteExecute" not in u  # chDB JIT-compiles expressions


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify wants ExecStart's binary to exist; /opt/chute is where an install puts it.
    text = (DEPLOY / "systemd" / "chute.service").read_text().replace("/opt/chute/bin/chute", "/bin/true")
    (tmp_path / "chute.service").write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "chute.service")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "chute.service" not in proc.stderr, proc.stderr


# -- SQL: grants in the README, and the cluster DDL -------------------------------------------


def format_query(target: Target, sql: str) -> str:
    """ClickHouse's own parser: raises on a syntax error, an unknown privilege or clause."""
    return target.client().query("SELECT formatQuery({q:String})", parameters={"q": sql}).result_rows[0][0]


@pytest.fixture
def target(cfg: Config):
    t = Target(cfg)
    t.check()
    yield t
    t.close()


def test_readme_grants_parse(target: Target) -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("```sql", readme.index("**The ClickHouse user.**")) + 6:]
    block = block[:block.index("```")]
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", block).split(";") if s.strip()]
    assert len(statements) == 5
    for sql in statements:
        format_query(target, sql)
    script = (DEPLOY / "clickhouse" / "initdb" / "10-chute-user.sh").read_text()
    sql = script[script.index("<<SQL") + 5:script.index("\nSQL\n")].replace("\\`", "`")
    sql = sql.replace("${db}", "ingest").replace("${hash}", "0" * 64)
    for statement in [s.strip() for s in re.sub(r"--[^\n]*", "", sql).split(";") if s.strip()]:
        format_query(target, statement)
    # Every setting chute sends is named in the README, so an admin knows what not to pin.
    for name in [*INSERT_SETTINGS, "insert_deduplication_token", "deduplicate_insert", "mutations_sync",
                 "lightweight_deletes_sync"]:
        assert f"`{name}`" in readme, name


COLUMNS = [Column("id", "Int64"), Column("name", "Nullable(String)")]


def test_cluster_ddl_is_replicated_on_cluster(target: Target) -> None:
    sql = create_table_sql("ingest", "events", COLUMNS, 100_000, cluster="ingest_cluster")
    assert sql.startswith("CREATE TABLE IF NOT EXISTS `ingest`.`events` ON CLUSTER `ingest_cluster` (")
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in sql
    assert "replicated_deduplication_window = 100000" in sql
    assert f"replicated_deduplication_window_seconds = {7 * 24 * 3600}" in sql
    assert "non_replicated_deduplication_window" not in sql
    assert "fsync_after_insert = 1" in sql
    keyed = create_table_sql("ingest", "events", COLUMNS, 100_000, key=("id",), cluster="ingest_cluster")
    assert ("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', "
            "_ingested_at) ORDER BY (`id`)") in keyed
    assert create_database_sql("ingest", "ingest_cluster") == \
        "CREATE DATABASE IF NOT EXISTS `ingest` ON CLUSTER `ingest_cluster`"
    # No Keeper here, so ON CLUSTER cannot run: ClickHouse's parser checks the statements instead,
    # and system.merge_tree_settings that the settings exist.
    for statement in (sql, keyed, create_database_sql("ingest", "ingest_cluster")):
        formatted = format_query(target, statement)
        assert "ON CLUSTER ingest_cluster" in formatted
    known = {r[0] for r in target.client().query("SELECT name FROM system.merge_tree_settings").result_rows}
    used = set(re.findall(r"(\w+) = \d+", sql[sql.index("SETTINGS"):]))
    assert used and used <= known, used - known


def test_single_server_ddl_runs_on_the_real_engine(target: Target) -> None:
    assert create_database_sql("ingest") == "CREATE DATABASE IF NOT EXISTS `ingest`"
    assert create_table_sql("d", "t", COLUMNS, 7) == create_table_sql("d", "t", COLUMNS, 7, cluster=None)
    target.create_table("plain", COLUMNS)
    ddl = target.table_settings("plain")
    assert "ENGINE = MergeTree" in ddl and "non_replicated_deduplication_window = 100000" in ddl
    assert "Replicated" not in ddl and "ON CLUSTER" not in ddl
    assert schema.replicated("MergeTree").startswith("ReplicatedMergeTree('/clickhouse/tables/")


def test_alertmanager_routes_chutes_alerts() -> None:
    """Prometheus sends to Alertmanager; every severity chute's rules use has a route; resolutions are sent."""
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    am = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in am["receivers"]}
    routes = am["route"]["routes"]
    assert am["route"]["receiver"] in receivers and all(r["receiver"] in receivers for r in routes)
    severities = {r["labels"]["severity"] for r in rules() if "labels" in r}
    routed = {m.split('"')[1] for r in routes for m in r["matchers"] if m.startswith("severity=")}
    assert severities - {"warning"} <= routed  # warning goes to the default receiver
    assert receivers["chute-oncall"]["webhook_configs"][0]["send_resolved"] is True
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert compose["services"]["alertmanager"]["profiles"] == ["monitoring"]
