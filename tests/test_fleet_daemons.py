"""Three chute daemons (subprocesses, separate data and state dirs) sharing one ClickHouse over HTTP
(tests/chhttp.py, the real engine behind the ClickHouse HTTP interface): the fleet view, remote
actions, fleet-wide duplicates after the dedup window, a race of two hosts, a SIGKILLed host."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chute.core.config import Config
from chute.core.errors import TargetError
from chute.core.fleet import FleetStore
from chute.core.ledger import Ledger
from chute.core.target import Target
from tests.conftest import ROOT, HttpTarget, chute_cmd, run_chute, wait_for

pytestmark = pytest.mark.slow
HOSTS = ("h1", "h2", "h3")
STALE = 4.0


@dataclasses.dataclass
class Host:
    name: str
    data: Path
    state: Path
    proc: subprocess.Popen | None = None

    def ledger(self) -> Ledger:
        return Ledger(self.state, readonly=True)

    def states(self) -> dict[str, str]:
        if not (self.state / Ledger.FILENAME).exists():
            return {}
        ledger = self.ledger()
        try:
            return {r.path: str(r.state) for r in ledger.list_files(current_only=True)}
        except sqlite3.OperationalError:  # the daemon is still creating its ledger
            return {}
        finally:
            ledger.close()

    def counts(self) -> dict[str, int]:
        ledger = self.ledger()
        try:
            return ledger.counts()
        finally:
            ledger.close()


def _env(http: HttpTarget, db: str, host: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, CHUTE_CLICKHOUSE_URL=http.url, CHUTE_PASSWORD_FILE=str(http.password_file),
               CHUTE_DATABASE=db, CHUTE_FLEET_MIRROR="true", CHUTE_FLEET_HOST=host, CHUTE_FLEET_INTERVAL="0.5",
               CHUTE_FLEET_STALE_SECONDS=str(STALE), CHUTE_SETTLE_SECONDS="0.3", CHUTE_RESCAN_SECONDS="1",
               CHUTE_LOG_FORMAT="text")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def fleet(http_target: HttpTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Host], str]]:
    """h1, h2, h3 with dedup_scope = fleet and a dedup window of one block (tokens expire at once);
    h3 waits for approval, so it has held files."""
    root = tmp_path_factory.mktemp("fleet")
    db = f"fleet_{uuid.uuid4().hex[:8]}"
    hosts: dict[str, Host] = {}
    for name in HOSTS:
        host = Host(name, root / name / "data", root / name / "state")
        host.data.mkdir(parents=True)
        extra = {"CHUTE_DEDUP_SCOPE": "fleet", "CHUTE_DEDUP_WINDOW": "1"}
        if name == "h3":
            extra["CHUTE_REQUIRE_APPROVAL"] = "true"
        host.proc = subprocess.Popen(chute_cmd("--no-ui", str(host.data), "--state-dir", str(host.state)), cwd=ROOT,
                                     env=_env(http_target, db, name, **extra), stdout=subprocess.DEVNULL,
                                     stderr=open(root / f"{name}.log", "w"))  # noqa: SIM115 - closed with the process
        hosts[name] = host
    try:
        yield hosts, db
    finally:
        for host in hosts.values():
            if host.proc and host.proc.poll() is None:
                host.proc.send_signal(signal.SIGTERM)
        for host in hosts.values():
            if host.proc:
                try:
                    host.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    host.proc.kill()


@pytest.fixture(scope="module")
def store(http_target: HttpTarget, fleet: tuple[dict[str, Host], str]) -> Iterator[FleetStore]:
    cfg = Config(clickhouse_url=http_target.url, password_file=http_target.password_file, database=fleet[1],
                 fleet_host="observer", fleet_stale_seconds=STALE)
    target = Target(cfg)
    yield FleetStore(cfg, target)
    target.close()


def _view_matches(store: FleetStore, hosts: dict[str, Host]) -> bool:
    try:
        seen = {h.host: h for h in store.hosts()}
    except TargetError:  # a loaded machine: no daemon has created the fleet tables yet
        return False
    for name, host in hosts.items():
        beat = seen.get(name)
        if beat is None or beat.status != "running" or beat.counts != host.counts():
            return False
        want = sorted((p, s) for p, s in host.states().items() if s in ("held", "failed", "quarantined"))
        if sorted((f.path, f.state) for f in store.host_files(name)) != want:
            return False
    return True


def test_fleet_view_is_correct_within_5s(fleet: tuple[dict[str, Host], str], store: FleetStore) -> None:
    hosts, _ = fleet
    (hosts["h1"].data / "clicks.csv").write_text("id,url\n1,/a\n2,/b\n")
    (hosts["h1"].data / "views.csv").write_text("id,n\n1,10\n")
    (hosts["h2"].data / "orders.csv").write_text("id,amount\n1,9.5\n")
    (hosts["h2"].data / "broken.csv").write_text("id,amount\n1,2,3,4\n2\n")
    (hosts["h3"].data / "invoices.csv").write_text("id,total\n1,100\n")
    want = {"h1": {"clicks.csv": "loaded", "views.csv": "loaded"},
            "h2": {"orders.csv": "loaded", "broken.csv": "quarantined"},
            "h3": {"invoices.csv": "held"}}
    wait_for(lambda: all(hosts[h].states() == want[h] for h in HOSTS), timeout=120, interval=0.1,
             what="each host's ledger to settle")
    settled = time.monotonic()
    wait_for(lambda: _view_matches(store, hosts), timeout=30, interval=0.1, what="the fleet view")
    lag = time.monotonic() - settled
    print(f"fleet view matched every ledger {lag:.2f}s after they settled")
    assert lag < 5.0
    out = run_chute("fleet", "--clickhouse", store.cfg.clickhouse_url, "--database", store.cfg.database,
                    env={"CHUTE_PASSWORD_FILE": str(store.cfg.password_file)})
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert set(lines) == set(HOSTS) and all(" running " in line for line in lines.values())
    out = run_chute("fleet", "--host", "h2", "--clickhouse", store.cfg.clickhouse_url,
                    "--database", store.cfg.database, env={"CHUTE_PASSWORD_FILE": str(store.cfg.password_file)})
    assert out.stdout.startswith("broken.csv\tbroken\tquarantined\t"), out.stdout + out.stderr


def test_action_on_h3_issued_from_h1_is_carried_out_by_h3(fleet: tuple[dict[str, Host], str],
                                                          store: FleetStore) -> None:
    hosts, _ = fleet
    wait_for(lambda: hosts["h3"].states().get("invoices.csv") == "held", timeout=60)
    # As host h1's operator: the command goes to h3's command channel, h3 runs it on its own files.
    out = run_chute("fleet", "--host", "h3", "approve", "invoices.csv", "--clickhouse", store.cfg.clickhouse_url,
                    "--database", store.cfg.database,
                    env={"CHUTE_PASSWORD_FILE": str(store.cfg.password_file), "CHUTE_FLEET_HOST": "h1",
                         "USER": "ops"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "h3: approved invoices.csv"
    wait_for(lambda: hosts["h3"].states().get("invoices.csv") == "loaded", timeout=60)
    ledger = hosts["h3"].ledger()
    try:
        approvals = [e for e in ledger.events() if e.from_state == "held" and e.to_state == "queued"]
    finally:
        ledger.close()
    assert [e.actor for e in approvals] == ["cli:h1@h1 (fleet)"]
    # Unknown hosts and files are refused with one line, not a traceback.
    bad = run_chute("fleet", "--host", "h9", "retry", "x.csv", "--clickhouse", store.cfg.clickhouse_url,
                    "--database", store.cfg.database, env={"CHUTE_PASSWORD_FILE": str(store.cfg.password_file)})
    assert bad.returncode == 2 and "no host 'h9'" in bad.stderr and "Traceback" not in bad.stderr


def test_same_file_on_two_hosts_loads_once_after_the_dedup_window(fleet: tuple[dict[str, Host], str],
                                                                  store: FleetStore) -> None:
    hosts, db = fleet
    body = "id,v\n" + "".join(f"{i},{i * 7}\n" for i in range(5000))
    (hosts["h1"].data / "sales.csv").write_text(body)
    wait_for(lambda: hosts["h1"].states().get("sales.csv") == "loaded", timeout=60)
    (hosts["h1"].data / "sales-0002.csv").write_text("id,v\n9,9\n")  # window of 1 block: sales.csv's token is gone
    wait_for(lambda: hosts["h1"].states().get("sales-0002.csv") == "loaded", timeout=60)
    (hosts["h2"].data / "sales-0001.csv").write_text(body)
    wait_for(lambda: hosts["h2"].states().get("sales-0001.csv") in ("duplicate", "loaded"), timeout=60)
    ledger = hosts["h2"].ledger()
    try:
        row = ledger.current("sales-0001.csv")
    finally:
        ledger.close()
    assert row.state == "duplicate", row
    assert "host h1" in row.reason or "already in table sales" in row.reason, row.reason
    count = store.target._call("query", f"SELECT count() FROM `{db}`.sales").result_rows[0][0]
    assert count == 5001


def test_killed_host_is_flagged_stale(fleet: tuple[dict[str, Host], str], store: FleetStore) -> None:
    hosts, _ = fleet
    wait_for(lambda: {h.host: h.status for h in store.hosts()}.get("h2") == "running", timeout=30)
    hosts["h2"].proc.send_signal(signal.SIGKILL)
    hosts["h2"].proc.wait(timeout=30)
    killed = time.monotonic()
    status = wait_for(lambda: (s := {h.host: h.status for h in store.hosts()})["h2"] == "STALE" and s,
                      timeout=STALE + 30, interval=0.2, what="h2 to be flagged stale")
    print(f"h2 flagged stale {time.monotonic() - killed:.1f}s after SIGKILL (stale after {STALE}s)")
    assert status == {"h1": "running", "h2": "STALE", "h3": "running"}
    out = run_chute("fleet", "--json", "--clickhouse", store.cfg.clickhouse_url, "--database", store.cfg.database,
                    env={"CHUTE_PASSWORD_FILE": str(store.cfg.password_file), "CHUTE_FLEET_STALE_SECONDS": str(STALE)})
    assert '"status": "STALE"' in out.stdout


@pytest.mark.parametrize("scope", ["fleet", "host"])
def test_race_of_two_hosts_loading_the_same_content_leaves_one_copy(http_target: HttpTarget, tmp_path: Path,
                                                                    scope: str) -> None:
    """Both hosts take the same content at the same moment (under different names, so the path-scoped
    count cannot hide a second copy): a failpoint holds each load after its duplicate checks until both
    are there, so neither can see the other's rows or mirror entry first. Fleet scope: one copy (shared
    tokens, content-wide verification).
    The host-scope control ends with two: the check below catches a broken system."""
    db = f"race_{uuid.uuid4().hex[:8]}"
    body = "id,v\n" + "".join(f"{i},{i % 97}\n" for i in range(200_000))
    procs = []
    meet = tmp_path / "rendezvous"
    meet.mkdir()
    for n, name in enumerate(("r1", "r2"), 1):
        data = tmp_path / name / "data"
        data.mkdir(parents=True)
        (data / f"events-000{n}.csv").write_text(body)
        env = _env(http_target, db, name, CHUTE_DEDUP_SCOPE=scope, CHUTE_BATCH_ROWS="20000",
                   CHUTE_FAILPOINTS=f"rendezvous={meet}:2",  # both past the duplicate checks, then insert
                   # A mirror lag longer than the load: neither host can see the other's entry in time.
                   CHUTE_FLEET_INTERVAL="30", CHUTE_FLEET_STALE_SECONDS="60")
        args = ("--no-ui", "--once", str(data), "--state-dir", str(tmp_path / name / "s"))
        procs.append(subprocess.Popen(chute_cmd(*args), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    cfg = Config(clickhouse_url=http_target.url, password_file=http_target.password_file, database=db)
    target = Target(cfg)
    try:
        count = target._call("query", f"SELECT count() FROM `{db}`.events").result_rows[0][0]
    finally:
        target.close()
    states = []
    for n, name in enumerate(("r1", "r2"), 1):
        ledger = Ledger(tmp_path / name / "s", readonly=True)
        row = ledger.current(f"events-000{n}.csv")
        states.append(str(row.state))
        print(f"race ({scope}): {name} {row.state} rows_loaded={row.rows_loaded} {row.reason or ''}")
        ledger.close()
    if scope == "host":
        assert count == 400_000  # each host verified its own path and replayed: two copies
        return
    assert count == 200_000, states
    assert set(states) <= {"loaded", "duplicate"} and "loaded" in states, states
