"""`make chaos`: hundreds of SIGKILLs at named steps across loads and every operator action.

    python -m tests.chaos [--kills 200] [--local-kills 30] [--endpoint-kills 12] [--seed N]

Not part of `make test` (it takes minutes). Phases:

1. **Remote** (chute over HTTP to tests/chhttp.py, chDB behind it; a chute process starts in
   ~1-2 s, so most kills run here): rounds of `chute --no-ui --once --after-load archive` killed
   at a loader step (``kill_at=STEP:N``), or with ``kill_any=P`` (random timing on top), and of
   `chute purge` / `chute retry` killed at an action step. New files (CSV, NDJSON.gz, Parquet,
   and hostile ones that quarantine) arrive as the old ones load. Every kill is checked: the
   process died by SIGKILL and the failpoint marker names the step; after every kill no row is
   duplicated.
2. **Endpoint kills**: a daemon loads while the HTTP endpoint is SIGKILLed and restarted.
3. **Local** (embedded chDB): the same rounds, fewer (a chDB start costs ~5 s).
4. **Disk full** (root only, a 6 MB tmpfs as the state dir; tests/test_resources.py has the
   assertions): skipped cleanly where mounting is impossible.
5. **Fuzz** (``python -m tests.fuzz``, the fidelity work's hostile-file run) when it exists.

After each phase a clean `--once` finishes everything, and the ledger and ClickHouse must agree
for every version (tests/invariants.py): rows expected (from the files the script wrote and did
not purge) == rows got, zero duplicates. Exit 0 when all held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.chhttp import ChHttpServer
from tests.invariants import Counts, clickhouse_counts, counts_via, disagreements, ledger_versions
from tests.procs import stop
from tests.test_engine import csv_bytes, make_rows

ROOT = Path(__file__).resolve().parent.parent
LOAD_STEPS = ("batch_intent", "insert_acked", "batch_done", "loaded", "archive_intent", "archive_moved",
              "quarantine_intent", "quarantine_moved")
PURGE_STEPS = ("purge_intent", "purge_deleted")
RETRY_STEPS = ("retry_intent", "retry_moved")
BATCH = 1000


@dataclass
class World:
    """What the script wrote: the truth the ledger and ClickHouse are checked against."""

    root: Path
    target: list[str]  # --clickhouse URL (+ env for the password)
    env: dict[str, str]
    counts: callable  # () -> Counts
    rng: random.Random
    files: dict[str, int] = field(default_factory=dict)  # path -> data rows, loadable and not purged
    bad: set[str] = field(default_factory=set)
    kills: Counter = field(default_factory=Counter)
    no_kill: int = 0
    approved: int = 0  # held good files the script approved, as an operator would (schema drift)
    problems: list[str] = field(default_factory=list)
    serial: int = 0

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def common(self) -> list[str]:
        return ["--state-dir", str(self.state), "--clickhouse", *self.target, "--log-format", "json"]

    def run(self, *args: str, failpoints: str = "", timeout: float = 600) -> subprocess.CompletedProcess:
        env = dict(os.environ, **self.env)
        if failpoints:
            env["CHUTE_FAILPOINTS"] = failpoints
        return subprocess.run([sys.executable, "-m", "chute.core", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)

    def once(self, failpoints: str = "") -> subprocess.CompletedProcess:
        return self.run("--no-ui", "--once", str(self.data), *self.common(), "--settle-seconds", "0.1",
                        "--batch-rows", str(BATCH), "--after-load", "archive", failpoints=failpoints)

    # -- files ------------------------------------------------------------------------------

    def add_files(self, n: int) -> None:
        before = dict(self.files)
        for _ in range(n):
            self.serial += 1
            k, kind = self.serial, self.rng.choice(("csv", "csv", "ndjson.gz", "parquet", "small", "bad"))
            rows = self.rng.randint(3, 12) * BATCH + self.rng.randint(0, BATCH - 1)
            if kind == "csv":
                rel, body = f"csv/c{k}.csv", csv_bytes(make_rows(rows, seed=k * 100_003))
            elif kind == "small":
                rows = self.rng.randint(1, 50)
                rel, body = f"small/s{k}.csv", csv_bytes(make_rows(rows, seed=k * 7919))
            elif kind == "ndjson.gz":
                lines = (json.dumps({"id": k * 1_000_000 + i, "v": f"x{i}", "f": i / 7}) for i in range(rows))
                rel, body = f"json/j{k}.ndjson.gz", gzip.compress(("\n".join(lines) + "\n").encode(), 1)
            elif kind == "parquet":
                table = pa.table({"id": pa.array(range(k * 1_000_000, k * 1_000_000 + rows), pa.int64()),
                                  "name": pa.array([f"n{i % 97}" for i in range(rows)])})
                path = self.data / "pq" / f"p{k}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(table, path, row_group_size=2 * BATCH)
                self.files[f"pq/p{k}.parquet"] = rows
                continue
            else:
                rel, body = f"bad/b{k}.ndjson", b'{"a": 1}\n{not json\n'
                self.bad.add(rel)
            path = self.data / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name("." + path.name)
            tmp.write_bytes(body)
            os.replace(tmp, path)  # complete files only: that is the watcher's part of issue 11
            if kind != "bad":
                self.files[rel] = rows
        self.journal("add " + " ".join(f"{rel}:{rows}" for rel, rows in self.files.items() if rel not in before))

    def pending(self) -> bool:
        states = {v["path"]: v["state"] for v in ledger_versions(self.state) if v["current"]} \
            if (self.state / "ledger.sqlite3").exists() else {}
        return any(states.get(rel) not in ("loaded", "purged") for rel in self.files)

    # -- rounds -----------------------------------------------------------------------------

    def journal(self, what: str, proc: subprocess.CompletedProcess | None = None) -> None:
        """One line per round in ROOT/rounds.log, for a post-mortem of a kept work folder (--keep)."""
        rc = "" if proc is None else f" -> exit {proc.returncode}"
        if proc is not None and proc.returncode not in (0, -signal.SIGKILL):  # why: its last line
            rc += ": " + (proc.stderr.strip().splitlines() or [""])[-1][:300]
        with (self.root / "rounds.log").open("a") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {what}{rc}\n")

    def killed(self, proc: subprocess.CompletedProcess, marker: Path, step: str | None) -> bool:
        """True when the failpoint killed the process (where it said); False when it finished first."""
        if proc.returncode == -signal.SIGKILL:
            reached = marker.read_text().split() if marker.exists() else []
            if not reached or (step is not None and reached[0] != step):
                self.problems.append(f"killed, but not at {step}: marker {reached}")
            self.kills[reached[0] if reached else "?"] += 1
            return True
        if proc.returncode not in (0, 2, 3) or "Traceback" in proc.stderr:
            self.problems.append(f"exit {proc.returncode}: {proc.stderr[-1500:]}")
        self.no_kill += 1
        return False

    def check_no_duplicates(self, when: str) -> None:
        dups = sum(c[4] for c in self.counts())
        if dups:
            self.problems.append(f"{dups} duplicate rows after {when}")

    def load_round(self) -> None:
        marker = self.root / "marker"
        marker.unlink(missing_ok=True)
        if self.rng.random() < 0.2:
            step, fp = None, f"kill_any=0.05,seed={self.rng.randint(1, 10**9)}"
        else:
            step = self.rng.choice(LOAD_STEPS)
            nth = self.rng.randint(1, 12 if step.startswith("batch") or step == "insert_acked" else 3)
            fp = f"kill_at={step}:{nth}"
        proc = self.once(f"{fp},marker={marker}")
        self.journal(f"load {fp} marker={marker.read_text().split() if marker.exists() else []}", proc)
        self.killed(proc, marker, step)
        self.check_no_duplicates(f"a load killed at {step or 'random'}")

    def action_round(self) -> None:
        marker = self.root / "marker"
        marker.unlink(missing_ok=True)
        versions = [v for v in ledger_versions(self.state) if v["current"]]
        if self.approve_held(versions, every=self.rng.random() < 0.5):
            return
        loaded = [v["path"] for v in versions if v["state"] == "loaded" and v["path"] in self.files]
        quarantined = [v["path"] for v in versions if v["state"] == "quarantined"]
        if quarantined and (self.rng.random() < 0.3 or not loaded):
            rel, step = self.rng.choice(quarantined), self.rng.choice(RETRY_STEPS)
            proc = self.run("retry", rel, *self.common(), failpoints=f"kill_at={step}:1,marker={marker}")
        elif loaded:
            rel, step = self.rng.choice(loaded), self.rng.choice(PURGE_STEPS)
            proc = self.run("purge", rel, *self.common(), failpoints=f"kill_at={step}:1,marker={marker}")
            if proc.returncode == -signal.SIGKILL:
                del self.files[rel]  # the intent is written: recovery finishes the purge
            elif proc.returncode == 0:
                del self.files[rel]
        else:
            return
        self.journal(f"{step.split('_')[0]} {rel} kill_at={step}:1", proc)
        if self.killed(proc, marker, step) and self.rng.random() < 0.5:
            # The operator's way out: the same command again (the other half is left to the restart).
            again = self.run("retry" if step in RETRY_STEPS else "purge", rel, *self.common())
            self.journal(f"  the same {step.split('_')[0]} {rel} again", again)
            if again.returncode != 0:
                self.problems.append(f"the same {step.split('_')[0]} again failed: {again.stderr[-500:]}")
        self.check_no_duplicates(f"an action killed at {step}")

    def approve_held(self, versions: list[dict], every: bool = True) -> int:
        """Approve good files held for schema drift (a later small file with an empty value in a column
        the table's first file made not Nullable: core/nullability.py), as the operator would.
        Approve is one ledger transaction: no step to kill. ``every=False``: approve none."""
        held = [v["path"] for v in versions if v["current"] and v["state"] == "held" and v["path"] in self.files]
        for rel in held if every else ():
            proc = self.run("approve", rel, *self.common())
            self.journal(f"approve {rel}", proc)
            if proc.returncode != 0:
                self.problems.append(f"approving held {rel} failed: {proc.stderr[-500:]}")
            self.approved += 1
        return len(held) if every else 0

    def finish(self, phase: str) -> dict[str, object]:
        """A clean run to the end; then the ledger and ClickHouse must agree with the script's truth."""
        if (self.state / "ledger.sqlite3").exists() and self.approve_held(ledger_versions(self.state)):
            self.once()  # what was approved loads (and may find more drift: approve once more below)
            self.approve_held(ledger_versions(self.state))
        done = self.once()
        if done.returncode not in (0, 3):
            self.problems.append(f"{phase}: the final --once exited {done.returncode}: {done.stderr[-1500:]}")
        counts = self.counts()
        got, dups = sum(c[3] for c in counts), sum(c[4] for c in counts)
        expected = sum(self.files.values())
        if (got, dups) != (expected, 0):
            self.problems.append(f"{phase}: rows expected {expected}, got {got}, duplicates {dups}")
        for problem in disagreements(self.state, counts=counts):
            self.problems.append(f"{phase}: {problem}")
        versions = ledger_versions(self.state)
        states = Counter(v["state"] for v in versions)
        current = {v["path"]: v for v in versions if v["current"]}
        in_clickhouse: Counter = Counter()
        for _table, path, _sha, rows, _dups in counts:
            in_clickhouse[path] += rows
        for rel in sorted(self.files):
            v = current.get(rel)
            if v is None or v["state"] != "loaded":
                self.problems.append(f"{phase}: {rel} ({self.files[rel]} rows) ended "
                                     f"{v and v['state']}: {v and (v['last_error'] or v['reason'])}")
            elif in_clickhouse[rel] != self.files[rel]:  # loaded, and the ledger agreeing, is not enough
                self.problems.append(f"{phase}: {rel} has {self.files[rel]} rows, ClickHouse holds "
                                     f"{in_clickhouse[rel]} (ledger #{v['id']}: rows {v['rows']}, "
                                     f"loaded {v['rows_loaded']})")
        for path in sorted(set(in_clickhouse) - set(self.files)):
            self.problems.append(f"{phase}: {in_clickhouse[path]} rows of {path}, which the script purged "
                                 "or never wrote as good")
        for rel in self.bad:
            row = [v for v in ledger_versions(self.state) if v["path"] == rel]
            if row and row[-1]["state"] != "quarantined":
                self.problems.append(f"{phase}: hostile {rel} ended {row[-1]['state']}, not quarantined")
        return {"rows_expected": expected, "rows_got": got, "duplicates": dups, "states": dict(states)}


def run_rounds(world: World, kills: int, budget_s: float) -> None:
    start = time.monotonic()
    world.add_files(6)
    while sum(world.kills.values()) < kills and time.monotonic() - start < budget_s:
        if not world.pending() or world.rng.random() < 0.15:
            world.add_files(world.rng.randint(1, 4))
        if world.rng.random() < 0.3 and (world.state / "ledger.sqlite3").exists():
            world.action_round()
        else:
            world.load_round()


def endpoint_kills(world: World, server: ChHttpServer, n: int) -> int:
    """A daemon loads while the endpoint is SIGKILLed mid-insert and comes back; nothing lost or doubled."""
    env = dict(os.environ, **world.env)
    proc = subprocess.Popen([sys.executable, "-m", "chute.core", "--no-ui", str(world.data), *world.common(),
                             "--settle-seconds", "0.1", "--batch-rows", str(BATCH)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = 0
    try:
        for _ in range(n):
            world.add_files(3)
            deadline = time.monotonic() + 120
            base = server.stats().get("inserts", 0) if server.running else 0
            # A condition, not a timer: the endpoint has taken at least one insert of the new files.
            while time.monotonic() < deadline and server.stats().get("inserts", 0) <= base:
                time.sleep(0.05)
            server.kill()
            done += 1
            time.sleep(world.rng.uniform(0.2, 1.5))
            server.start()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and world.pending():
            time.sleep(0.5)
    finally:
        stop(proc)
        if proc.returncode not in (0, -signal.SIGKILL):
            world.problems.append(f"daemon after endpoint kills exited {proc.returncode}")
    return done


def disk_full() -> dict[str, object]:
    """The resource-fault run (tests/test_resources.py) when this machine lets us mount a tmpfs."""
    if os.geteuid() != 0 or not (ROOT / "tests" / "test_resources.py").exists():
        return {"skipped": "needs root to mount a tmpfs"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_resources.py"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    return {"exit": proc.returncode, "summary": (proc.stdout.strip().splitlines() or [""])[-1]}


def fuzz() -> dict[str, object]:
    if importlib.util.find_spec("tests.fuzz") is None:
        return {"skipped": "tests/fuzz.py does not exist yet (the fidelity work's hostile-file run)"}
    proc = subprocess.run([sys.executable, "-m", "tests.fuzz"], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)
    return {"exit": proc.returncode, "tail": proc.stdout.strip().splitlines()[-5:]}


def remote_phase(tmp: Path, args: argparse.Namespace, report: dict[str, object]) -> tuple[World, int]:
    with ChHttpServer(tmp / "http-engine", user="chaos", password="chaos-pw") as server:
        client_lock = threading.Lock()

        def remote_counts() -> Counts:
            import clickhouse_connect

            with client_lock:
                client = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username="chaos",
                                                       password="chaos-pw", autogenerate_session_id=False)
                try:
                    return counts_via(client)
                finally:
                    client.close()

        url = f"http://chaos@127.0.0.1:{server.port}"
        remote = World(tmp / "remote", [url], {"CHUTE_CLICKHOUSE_PASSWORD": "chaos-pw"}, remote_counts,
                       random.Random(args.seed))
        remote.data.mkdir(parents=True)
        run_rounds(remote, args.kills, args.budget * 0.75)
        report["remote"] = remote.finish("remote")
        n = endpoint_kills(remote, server, args.endpoint_kills)
        report["endpoint_kills"] = n
        report["after_endpoint_kills"] = remote.finish("endpoint kills")
    return remote, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=165, help="SIGKILLs of chute over HTTP (default 165)")
    ap.add_argument("--local-kills", type=int, default=25, help="SIGKILLs of chute on embedded chDB (default 25)")
    ap.add_argument("--endpoint-kills", type=int, default=12, help="SIGKILLs of the HTTP endpoint (default 12)")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--budget", type=float, default=780, help="seconds for the kill rounds (default 780)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (printed) for a post-mortem")
    ap.add_argument("--local-only", action="store_true", help="only the embedded-chDB rounds")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    report: dict[str, object] = {"seed": args.seed}
    tmp = Path(tempfile.mkdtemp(prefix="chute-chaos-"))
    ok = True
    try:
        # 1 + 2: remote, then the endpoint kills
        remote, n = (None, 0) if args.local_only else remote_phase(tmp, args, report)
        # 3: local
        local_dir = tmp / "local"
        local = World(local_dir, [f"chdb://{local_dir / 'ch'}"], {}, lambda: clickhouse_counts(local_dir / "ch"),
                      random.Random(args.seed + 1))
        local.data.mkdir(parents=True)
        run_rounds(local, args.local_kills, max(60.0, args.budget - (time.monotonic() - t0)))
        report["local"] = local.finish("local")
        for world, name in ((remote, "remote"), (local, "local")):
            if world is None:
                continue
            report[f"{name}_kills"] = sum(world.kills.values())
            report[f"{name}_kills_by_step"] = dict(world.kills)
            report[f"{name}_rounds_that_finished_first"] = world.no_kill
            report[f"{name}_held_for_drift_and_approved"] = world.approved
            ok = ok and not world.problems
            report[f"{name}_problems"] = world.problems[:20]
        report["kills_total"] = sum(remote.kills.values() if remote else ()) + sum(local.kills.values()) + n
        report["disk_full"] = disk_full() if not args.local_only else {"skipped": "--local-only"}
        report["fuzz"] = fuzz() if not args.local_only else {"skipped": "--local-only"}
        ok = ok and report["disk_full"].get("exit", 0) == 0 and report["fuzz"].get("exit", 0) == 0
    finally:
        report["seconds"] = round(time.monotonic() - t0)
        print(json.dumps(report, indent=2, default=str))
        if args.keep:
            print(f"work folder kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("chaos: OK" if ok else "chaos: FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
