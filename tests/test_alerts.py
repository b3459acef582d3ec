"""Alert rules (core/alerts.py): each one firing and clearing, from pure inputs and from a real ledger."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from chute.core import alerts, sysinfo
from chute.core.alerts import Inputs, Monitor, Thresholds, Waiting, evaluate
from chute.core.attach import AttachedEngine
from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.core.states import State
from chute.core.sysinfo import Disk, Memory
from tests.conftest import make_config, run_chute, state_of, wait_for
from tests.test_engine import csv_bytes, make_rows

NOW = 1_800_000_000.0
TH = Thresholds()


def names(found: list[alerts.Alert], level: str | None = None) -> list[str]:
    return [a.name for a in found if level is None or a.level == level]


def firing(inp: Inputs) -> list[str]:
    return [a.name for a in evaluate(inp, TH) if a.level != "info"]


# -- each rule, firing and clearing --------------------------------------------------------


def test_error_rate_fires_above_five_percent_and_clears() -> None:
    assert firing(Inputs(NOW, outcomes={"loaded": 94, "failed": 4, "quarantined": 2})) == ["error_rate"]  # 6%
    assert firing(Inputs(NOW, outcomes={"loaded": 95, "failed": 5})) == []  # exactly 5% is not above
    assert firing(Inputs(NOW, outcomes={"loaded": 100})) == []
    assert firing(Inputs(NOW, outcomes={})) == []
    alert = alerts.rule_error_rate(Inputs(NOW, outcomes={"loaded": 6, "duplicate": 1, "failed": 3}), TH)
    assert alert is not None and alert.level == "critical" and "30%" in alert.message and "3 of 10" in alert.message


def test_error_rate_needs_three_errors() -> None:
    """One or two bad files among a few are not an incident; a third is."""
    assert firing(Inputs(NOW, outcomes={"loaded": 1, "quarantined": 2})) == []
    assert firing(Inputs(NOW, outcomes={"loaded": 1, "quarantined": 3})) == ["error_rate"]


def test_error_rate_threshold_comes_from_config() -> None:
    strict = Thresholds.of(Config(alert_error_rate=0.01))
    assert alerts.rule_error_rate(Inputs(NOW, outcomes={"loaded": 195, "failed": 3}), strict) is not None
    assert alerts.rule_error_rate(Inputs(NOW, outcomes={"loaded": 195, "failed": 3}), TH) is None


def test_disk_fires_per_folder_below_the_ratio_and_clears() -> None:
    full = Disk("state", "/var/lib/chute", free=4 * 2**30, total=100 * 2**30)
    roomy = Disk("data", "/srv/data", free=50 * 2**30, total=100 * 2**30)
    found = evaluate(Inputs(NOW, disks=(roomy, full)), TH)
    assert names(found, "critical") == ["disk_nearly_full"]
    assert found[0].subject == "state" and "/var/lib/chute" in found[0].message and "4.0 GiB" in found[0].message
    assert firing(Inputs(NOW, disks=(roomy, replace(full, free=6 * 2**30)))) == []


def test_memory_fires_below_the_ratio_and_clears() -> None:
    low = Memory(available=3 * 2**20, limit=100 * 2**20, scope="cgroup")
    assert firing(Inputs(NOW, memory=low)) == ["memory_nearly_exhausted"]
    assert "cgroup" in evaluate(Inputs(NOW, memory=low), TH)[0].message
    assert firing(Inputs(NOW, memory=replace(low, available=10 * 2**20))) == []
    assert firing(Inputs(NOW, memory=None)) == []


def test_oldest_waiting_fires_past_the_threshold_and_clears() -> None:
    waiting = Waiting("exports/a.csv", "held", first_seen=NOW - 601)
    found = evaluate(Inputs(NOW, oldest_waiting=waiting), TH)
    assert names(found, "warning") == ["oldest_waiting"]
    assert "exports/a.csv" in found[0].message and "held" in found[0].message
    assert firing(Inputs(NOW, oldest_waiting=replace(waiting, first_seen=NOW - 599))) == []
    assert firing(Inputs(NOW, oldest_waiting=None)) == []
    short = Thresholds.of(Config(alert_oldest_waiting_seconds=30))
    assert alerts.rule_oldest_waiting(Inputs(NOW, oldest_waiting=replace(waiting, first_seen=NOW - 31)), short)


def test_unreachable_fires_only_when_known_unreachable() -> None:
    found = evaluate(Inputs(NOW, reachable=False, target_error="Connection refused"), TH)
    assert names(found, "warning") == ["clickhouse_unreachable"] and "Connection refused" in found[0].message
    assert firing(Inputs(NOW, reachable=True)) == []
    assert firing(Inputs(NOW, reachable=None)) == []  # `chute status` with no engine running: unknown


def test_daily_summary_is_always_there_as_info_and_last() -> None:
    inp = Inputs(NOW, reachable=False, outcomes={"failed": 3}, day_rows=1_234_567,
                 day_outcomes={"loaded": 12, "duplicate": 1, "failed": 3, "quarantined": 1, "held": 2})
    found = evaluate(inp, TH)
    assert [a.level for a in found] == ["critical", "warning", "info"]
    assert found[-1].name == "daily_summary"
    assert found[-1].message == ("last 24 h: 12 files loaded, 1,234,567 rows, 1 duplicate, 4 errors, 2 held")


def test_summary_is_due_when_the_local_day_changes() -> None:
    evening = time.mktime((2026, 11, 28, 23, 59, 0, 0, 0, -1))
    assert alerts.summary_due(None, evening) == (False, "2026-11-28")  # not at start
    assert alerts.summary_due("2026-11-28", evening)[0] is False
    assert alerts.summary_due("2026-11-28", evening + 120) == (True, "2026-11-29")


# -- from a real ledger --------------------------------------------------------------------


def _file(ledger: Ledger, data: Path, name: str) -> int:
    path = data / name
    path.write_text("a\n1\n")
    row, _ = ledger.observe(name, os.stat(path), "t", "csv", None, complete=True)
    return row.id


def test_error_window_from_the_audit_trail(tmp_path: Path) -> None:
    """failed/quarantined transitions in the last 15 minutes fire the rule; 15 minutes later it clears."""
    ledger = Ledger(tmp_path)
    cfg = Config(data_dir=tmp_path, state_dir=tmp_path)
    for i in range(3):
        fid = _file(ledger, tmp_path, f"bad{i}.csv")
        ledger.transition(fid, State.LOADING)
        ledger.transition(fid, State.QUARANTINED if i else State.FAILED, detail="bad input")
    ok = _file(ledger, tmp_path, "good.csv")
    ledger.transition(ok, State.LOADING)
    ledger.transition(ok, State.LOADED, loaded_at=time.time())
    now = time.time()
    inp = alerts.gather(cfg, ledger, now)
    assert inp.outcomes == {"failed": 1, "quarantined": 2, "loaded": 1}
    assert alerts.error_rate(inp.outcomes) == (3, 4, 0.75)
    assert "error_rate" in names(evaluate(inp, TH))
    later = alerts.gather(cfg, ledger, now + alerts.ERROR_WINDOW + 1)
    assert later.outcomes == {} and "error_rate" not in names(evaluate(later, TH))
    assert later.day_outcomes["quarantined"] == 2  # still in the daily summary
    ledger.close()


def test_oldest_waiting_from_the_ledger_clears_when_loaded(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    cfg = Config(data_dir=tmp_path, state_dir=tmp_path)
    fid = _file(ledger, tmp_path, "slow.csv")
    seen = ledger.get(fid).first_seen  # type: ignore[union-attr]
    assert "oldest_waiting" in names(evaluate(alerts.gather(cfg, ledger, seen + 601), TH))
    assert "oldest_waiting" not in names(evaluate(alerts.gather(cfg, ledger, seen + 10), TH))
    ledger.transition(fid, State.HELD, detail="waiting for approval")
    assert "oldest_waiting" in names(evaluate(alerts.gather(cfg, ledger, seen + 601), TH))  # held waits too
    ledger.transition(fid, State.LOADED)
    assert "oldest_waiting" not in names(evaluate(alerts.gather(cfg, ledger, seen + 601), TH))
    ledger.close()


def test_probes_read_this_host(tmp_path: Path) -> None:
    cfg = Config(data_dir=tmp_path, state_dir=tmp_path / "state", clickhouse_url=f"chdb://{tmp_path}/ch")
    found = {d.folder: d for d in sysinfo.disks(cfg)}
    assert set(found) == {"data", "state", "engine"}  # missing folders measure their nearest parent
    assert all(0 < d.free <= d.total for d in found.values())
    mem = sysinfo.memory()
    assert mem is not None and 0 < mem.available <= mem.limit


def test_cgroup_limit_wins_when_tighter(tmp_path: Path) -> None:
    proc, cgroup = tmp_path / "proc", tmp_path / "cg"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal:       16000000 kB\nMemAvailable:   12000000 kB\n")
    (proc / "self" / "cgroup").write_text("0::/system.slice/chute.service\n")
    group = cgroup / "system.slice" / "chute.service"
    group.mkdir(parents=True)
    (group / "memory.max").write_text(str(1000 * 2**20))
    (group / "memory.current").write_text(str(990 * 2**20))
    (group / "memory.stat").write_text(f"anon 1\ninactive_file {40 * 2**20}\n")
    mem = sysinfo.memory(proc, cgroup)
    assert mem == Memory(available=50 * 2**20, limit=1000 * 2**20, scope="cgroup")  # page cache counts as free
    (group / "memory.max").write_text("max\n")
    assert sysinfo.memory(proc, cgroup).scope == "host"  # type: ignore[union-attr]


# -- the live monitor: log lines, health for `status`, the daily summary ---------------------


def test_monitor_logs_firing_clearing_and_the_daily_summary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ledger = Ledger(tmp_path)
    engine = SimpleNamespace(ledger=ledger, cfg=Config(data_dir=tmp_path, state_dir=tmp_path),
                             target_ok=False, target_error="Connection refused")
    clock = [time.mktime((2026, 11, 28, 23, 59, 0, 0, 0, -1))]
    monitor = Monitor(engine, clock=lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="chute.alerts"):
        assert "clickhouse_unreachable" in names(monitor.tick())
        assert alerts.recorded_health(ledger, running=True) == (False, "Connection refused")
        assert alerts.recorded_health(ledger, running=False) == (None, None)
        monitor.tick()  # still firing: logged once
        engine.target_ok, engine.target_error = True, None
        assert "clickhouse_unreachable" not in names(monitor.current())  # reachability is live
        clock[0] += 120  # past local midnight
        monitor.tick()
    lines = [r.getMessage() for r in caplog.records]
    assert sum("alert warning clickhouse_unreachable: ClickHouse unreachable" in ln for ln in lines) == 1
    assert [r.levelname for r in caplog.records if "alert warning" in r.getMessage()] == ["WARNING"]
    assert "alert cleared: clickhouse_unreachable" in lines
    assert sum(ln.startswith("daily summary: last 24 h: 0 files loaded") for ln in lines) == 1
    assert json.loads(ledger.meta(alerts.HEALTH_META))["reachable"] is True  # type: ignore[arg-type]
    ledger.close()


def test_engine_snapshot_and_status_show_alerts(engine_factory, tmp_path: Path) -> None:
    """A file left waiting past the threshold: the console's snapshot and `chute status` both say so."""
    engine = engine_factory(alert_oldest_waiting_seconds=0.5)
    engine.command("pause")
    (engine.cfg.data_dir / "late.csv").write_bytes(csv_bytes(make_rows(3)))
    wait_for(lambda: state_of(engine, "late.csv") == "queued", what="queued")
    wait_for(lambda: "oldest_waiting" in names(engine.snapshot().alerts), what="the warning in the snapshot")
    alert = next(a for a in engine.snapshot().alerts if a.name == "oldest_waiting")
    assert alert.level == "warning" and "late.csv" in alert.message and "queued" in alert.message
    assert engine.snapshot().alerts[-1].name == "daily_summary"
    attached = AttachedEngine(engine.cfg)  # `chute attach`: the same alerts, from the ledger
    try:
        assert "oldest_waiting" in names(attached.snapshot().alerts)
    finally:
        attached.close()

    state = str(engine.cfg.state_dir)
    env = {"CHUTE_ALERT_OLDEST_WAITING_SECONDS": "0.5"}
    proc = run_chute("status", "--json", "--state-dir", state, env=env)
    assert proc.returncode == 0, proc.stderr
    found = {a["name"]: a for a in json.loads(proc.stdout)["alerts"]}
    assert found["oldest_waiting"]["level"] == "warning" and "late.csv" in found["oldest_waiting"]["message"]
    assert "clickhouse_unreachable" not in found  # the running engine recorded it reaches ClickHouse
    assert found["daily_summary"]["level"] == "info"
    text = run_chute("status", "--state-dir", state, env=env).stdout
    assert "WARNING  oldest_waiting: late.csv has waited" in text
    assert "INFO     daily_summary: last 24 h:" in text

    engine.command("resume")
    wait_for(lambda: state_of(engine, "late.csv") == "loaded", what="loaded")
    wait_for(lambda: "oldest_waiting" not in names(engine.snapshot().alerts), what="the warning clears")
    proc = run_chute("status", "--json", "--state-dir", state, env=env)
    assert "oldest_waiting" not in {a["name"] for a in json.loads(proc.stdout)["alerts"]}


def test_status_with_no_engine_does_not_guess_reachability(tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    cfg.state_dir.mkdir(parents=True)
    ledger = Ledger(cfg.state_dir)
    ledger.set_meta("data_dir", str(cfg.data_dir))
    ledger.set_meta(alerts.HEALTH_META, json.dumps({"reachable": False, "error": "stale", "ts": 0}))
    ledger.close()
    proc = run_chute("status", "--json", "--state-dir", str(cfg.state_dir))
    assert proc.returncode == 0, proc.stderr
    assert [a["name"] for a in json.loads(proc.stdout)["alerts"]] == ["daily_summary"]
