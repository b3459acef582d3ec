"""Chaos for combined groups (core/combined.py): hundreds of small CSVs of one table land while
chute (`--once` and a daemon) is SIGKILLed at group steps or at random, with purges and retries.

    python -m tests.chaos_small [SEED] [KILLS]

Like tests/chaos.py (its World and checks), over HTTP (tests/chhttp.py); not part of `make test`.
Exit 0 when every good row is in ClickHouse exactly once and every bad file is quarantined.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.chaos import ROOT, World
from tests.chhttp import ChHttpServer
from tests.invariants import counts_via

GROUP_STEPS = ("group_intent", "group_inserted", "group_done", "group_verified", "loaded", "batch_intent",
               "insert_acked", "quarantine_intent")


class Small(World):
    def add_files(self, n: int) -> None:
        for _ in range(n):
            self.serial += 1
            k = self.serial
            rows = self.rng.randint(1, 30)
            if self.rng.random() < 0.04:
                rel, body = f"small/b{k}.csv", f'id,name,amount\n{k},"open,1.5\n{k},x,2.5\n'.encode()
                self.bad.add(rel)
            else:
                rel = f"small/s{k}.csv"
                body = ("id,name,amount\n" + "".join(f"{k * 1000 + j},n{k}-{j},{j}.25\n" for j in range(rows))).encode()
                if self.rng.random() < 0.05:
                    body = body[:-1]  # no trailing newline
                self.files[rel] = rows
            path = self.data / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name("." + path.name)
            tmp.write_bytes(body)
            os.replace(tmp, path)
        self.journal(f"add {n} (serial {self.serial})")

    def once(self, failpoints: str = "") -> subprocess.CompletedProcess:
        return self.run("--no-ui", "--once", str(self.data), *self.common(), "--settle-seconds", "0.1",
                        "--workers", "2", failpoints=failpoints)

    def load_round(self) -> None:
        marker = self.root / "marker"
        marker.unlink(missing_ok=True)
        if self.rng.random() < 0.6:
            step, fp = None, f"kill_any=0.05,seed={self.rng.randint(1, 10**9)}"
        else:
            step = self.rng.choice(GROUP_STEPS)
            fp = f"kill_at={step}:{self.rng.randint(1, 4)}"
        if self.rng.random() < 0.3:
            self.daemon_round(fp, marker, step)
            return
        proc = self.once(f"{fp},marker={marker}")
        self.journal(f"load {fp}", proc)
        self.killed(proc, marker, step)
        self.check_no_duplicates(f"a load killed at {step or 'random'}")

    def daemon_round(self, fp: str, marker: Path, step: str | None) -> None:
        env = dict(os.environ, **self.env, CHUTE_FAILPOINTS=f"{fp},marker={marker}")
        proc = subprocess.Popen([sys.executable, "-m", "chute.core", "--no-ui", str(self.data), *self.common(),
                                 "--settle-seconds", "0.1", "--workers", "2"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(4):  # files land while it runs
            self.add_files(self.rng.randint(20, 60))
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline and self.pending():
            time.sleep(0.5)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        cp = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
        self.journal(f"daemon {fp}", cp)
        self.kills["daemon"] += 1
        if "Traceback" in err:
            self.problems.append(f"daemon traceback: {err[-1500:]}")
        self.check_no_duplicates("a daemon killed")


def main() -> int:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    kills = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    tmp = Path(tempfile.mkdtemp(prefix="chaos-small-"))
    with ChHttpServer(tmp / "http-engine", user="chaos", password="chaos-pw") as server:
        lock = threading.Lock()

        def counts():
            import clickhouse_connect
            with lock:
                c = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username="chaos",
                                                  password="chaos-pw", autogenerate_session_id=False)
                try:
                    return counts_via(c)
                finally:
                    c.close()

        w = Small(tmp / "remote", [f"http://chaos@127.0.0.1:{server.port}"], {"CHUTE_CLICKHOUSE_PASSWORD": "chaos-pw",
                                                                              "CHUTE_GROUP_MAX_FILES": "100"},
                  counts, random.Random(seed))
        w.data.mkdir(parents=True)
        w.add_files(200)
        start = time.monotonic()
        while sum(w.kills.values()) < kills and time.monotonic() - start < 900:
            if w.rng.random() < 0.4:
                w.add_files(w.rng.randint(10, 80))
            if w.rng.random() < 0.2 and (w.state / "ledger.sqlite3").exists():
                w.action_round()
            else:
                w.load_round()
        report = w.finish("small")
        print(report, dict(w.kills), "no_kill", w.no_kill)
        for p in w.problems:
            print("PROBLEM", p)
        print("dir", tmp)
    if not w.problems:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if w.problems else 0


if __name__ == "__main__":
    sys.exit(main())
