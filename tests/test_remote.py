"""The remote path: chute against ClickHouse over real HTTP(S) (tests/chhttp.py, chDB behind it).

Outages, flaky links, 5xx storms, TLS and the password, end to end. No mocks: every request
goes through clickhouse-connect's HTTP client to a server process, which injects the faults.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from chute.core import failpoints
from chute.core.config import Config, validate_url
from chute.core.engine import Engine
from chute.core.errors import InputError, TargetError, UsageError
from chute.core.states import State
from tests.chhttp import ChHttpServer, free_port
from tests.conftest import (
    HTTP_PASSWORD,
    HTTP_USER,
    ROOT,
    HttpTarget,
    chute_cmd,
    make_config,
    query,
    run_chute,
    state_of,
    wait_for,
)
from tests.invariants import current_versions
from tests.test_engine import csv_bytes, make_rows

# Small backoff so retries happen within the test; settle fast.
FAST = {"settle_seconds": 0.2, "backoff_base": 0.05, "backoff_max": 0.5}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HttpTarget]:
    """A ClickHouse HTTP server of this test's own (faults, stops and request logs stay private)."""
    secret = tmp_path / "password"
    secret.write_text(HTTP_PASSWORD + "\n")
    secret.chmod(0o600)
    with ChHttpServer(tmp_path / "ch", user=HTTP_USER, password=HTTP_PASSWORD, seed=7) as srv:
        yield HttpTarget(srv, secret)


def remote_config(tmp: Path, target: HttpTarget, **overrides: Any) -> Config:
    return make_config(tmp, target, **{**FAST, **overrides})


def start(cfg: Config, engines: list[Engine]) -> Engine:
    engine = Engine(cfg)
    engine.start()
    engines.append(engine)
    return engine


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    started: list[Engine] = []
    yield started
    for engine in started:
        if not engine.stopping:
            engine.stop()


def dup_pairs(engine: Engine, table: str) -> int:
    db = engine.cfg.database
    return query(engine, f"SELECT count() FROM (SELECT _source_sha256, _source_row, count() AS n "
                         f"FROM `{db}`.`{table}` GROUP BY 1, 2 HAVING n > 1)")[0][0]


def rows_loaded(engine: Engine, rel: str) -> int:
    row = engine.ledger.current(rel)
    return row.rows_loaded if row else 0


def count(engine: Engine, table: str) -> int:
    return query(engine, f"SELECT count() FROM `{engine.cfg.database}`.`{table}`")[0][0]


def ledger_batches(state_dir: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{state_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT f.path, b.idx, b.generation, b.token, b.state FROM batches b "
                            "JOIN files f ON f.id = b.file_id ORDER BY f.path, b.idx").fetchall()
    finally:
        conn.close()


def insert_requests(srv: ChHttpServer) -> list[tuple[str, Any]]:
    """(token, status) of every insert the server saw, oldest first."""
    return [(r["settings"].get("insert_deduplication_token", ""), r["status"])
            for r in srv.requests() if r.get("is_insert")]


# -- the URL -------------------------------------------------------------------------------


def test_url_forms_become_client_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chute.core.target import http_client_kwargs

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("CHUTE_CLICKHOUSE_PASSWORD", "pw-from-env")
    kw = http_client_kwargs(Config(clickhouse_url="http://ch.example"))
    assert (kw["interface"], kw["host"], kw["port"], kw["username"]) == ("http", "ch.example", 8123, "default")
    assert (kw["password"], kw["compress"], kw["query_retries"], kw["dedicated_pool"]) == ("pw-from-env", "lz4", 0,
                                                                                          True)
    assert "verify" not in kw and "ca_cert" not in kw and "proxy_path" not in kw
    kw = http_client_kwargs(Config(clickhouse_url=f"https://loader%40corp@[::1]/ch/?ca_cert={ca}&compress=zstd"))
    assert (kw["interface"], kw["host"], kw["port"], kw["username"]) == ("https", "::1", 8443, "loader@corp")
    assert (kw["ca_cert"], kw["compress"], kw["proxy_path"]) == (str(ca), "zstd", "/ch")
    kw = http_client_kwargs(Config(clickhouse_url="https://h:9440?verify=false&compress=none"))
    assert (kw["port"], kw["verify"], kw["compress"]) == (9440, False, False)
    assert http_client_kwargs(Config(clickhouse_url="https://h?ca_cert=certifi&verify=1"))["verify"] is True

    monkeypatch.delenv("CHUTE_CLICKHOUSE_PASSWORD")
    secret = tmp_path / "pw"
    secret.write_text("pw-from-file\n")
    assert http_client_kwargs(Config(clickhouse_url="http://h", password_file=secret))["password"] == "pw-from-file"
    assert http_client_kwargs(Config(clickhouse_url="http://h"))["password"] == ""

    for url, why in [
        ("http://h?ca_cert=/x.pem", "needs https"),
        ("https://h?verify=maybe", "verify=maybe"),
        ("https://h?ca_cert=/no/such.pem", "does not exist"),
        ("http://h?timeout=3", "unknown option 'timeout'"),
        ("http://h?compress=snappy", "compress=snappy"),
        (f"https://h?client_key={ca}", "needs client_cert"),
    ]:
        with pytest.raises(UsageError, match=re.escape(why)):
            http_client_kwargs(Config(clickhouse_url=url))
    with pytest.raises(UsageError, match="CHUTE_CLICKHOUSE_PASSWORD"):
        validate_url("http://u:secret@h:8123")
    # From the command line: one clear line, exit 2.
    (tmp_path / "data").mkdir()
    proc = run_chute("--no-ui", "--once", str(tmp_path / "data"), "--state-dir", str(tmp_path / "state"),
                     "--clickhouse", "http://127.0.0.1:9?verfy=false")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "unknown option 'verfy'" in proc.stderr


# -- what clickhouse-connect raises, and what chute makes of it --------------------------------

BATCH = pa.table({"a": pa.array([1, 2, 3], pa.int64())})


FAULTS: list[tuple[Any, type, bool | None, str]] = [
    ({"kind": "http_error", "status": 500}, TargetError, False, "HTTP 500 Internal Server Error"),
    ({"kind": "http_error", "status": 502}, TargetError, True, "HTTP 502 Bad Gateway"),
    ({"kind": "http_error", "status": 503}, TargetError, True, "HTTP 503 Service Unavailable"),
    ({"kind": "http_error", "status": 504}, TargetError, True, "HTTP 504 Gateway Timeout"),
    ({"kind": "http_error", "status": 429}, TargetError, True, "HTTP 429 Too Many Requests"),
    ({"kind": "ch_error", "code": 241}, TargetError, False, "(MEMORY_LIMIT_EXCEEDED)"),
    ({"kind": "ch_error", "code": 209}, TargetError, False, "(SOCKET_TIMEOUT)"),
    ({"kind": "ch_error", "code": 33}, TargetError, False, "incomplete request body"),
    ({"kind": "ch_error", "code": 516}, TargetError, False, "refused the login"),
    ({"kind": "ch_error", "code": 27}, InputError, None, "rejected the data: Code: 27."),
    ({"kind": "ch_error", "code": 6}, InputError, None, "(CANNOT_PARSE_TEXT)"),
    ({"kind": "cut_before_apply"}, TargetError, True, "connection closed before the answer"),
    ({"kind": "cut_after_apply"}, TargetError, True, "connection closed before the answer"),
    ({"kind": "delay", "seconds": 1.6}, TargetError, True, "no answer before the timeout"),
    ("refuse", TargetError, True, "connection refused"),
]


@pytest.mark.parametrize(("fault", "kind", "unreachable", "words"), FAULTS,
                         ids=[f"{f['kind'] if isinstance(f, dict) else f}-{f.get('status') or f.get('code') or ''}"
                              if isinstance(f, dict) else f for f, *_ in FAULTS])
def test_every_fault_is_classified(tmp_path: Path, server: HttpTarget, fault: Any, kind: type,
                                   unreachable: bool | None, words: str) -> None:
    """Only ClickHouse's data codes are the input's fault; every transport or server trouble is retryable."""
    from chute.core.target import AccessError, Target

    target = Target(remote_config(tmp_path, server, insert_timeout=1.0))
    try:
        target.check()
        target._call("command", f"CREATE TABLE `{target.database}`.t (a Int64) ENGINE = MergeTree ORDER BY a")
        body = target.encode(BATCH)
        if fault == "refuse":
            server.server.refuse_for(1.5)
        else:
            server.server.set_faults([{**fault, "target": "insert", "count": 1}])
        with pytest.raises(Exception) as info:  # the type is what this test checks
            target._call("raw_insert", f"`{target.database}`.t", body.names, body.body, fmt="Arrow",
                         settings={"insert_deduplication_token": "tok-1"})
        err = info.value
        assert type(err) is kind or (kind is TargetError and isinstance(err, TargetError)), repr(err)
        if unreachable is not None:
            assert err.unreachable is unreachable
        assert words in str(err)
        assert isinstance(err, AccessError) == ("login" in words)
        assert "?" not in str(err) and "for url" not in str(err) and len(str(err)) < 300  # no URL noise
        if fault == "refuse":
            assert not target.ping() and "refused" in (target.probe_error or "")
            wait_for(target.ping, timeout=10, what="listening again")
    finally:
        target.close()


def test_uncertain_insert_is_resent_at_once_with_the_same_token(tmp_path: Path, server: HttpTarget) -> None:
    from chute.core.target import INSERT_RETRY_DELAYS, Target

    srv = server.server
    target = Target(remote_config(tmp_path, server))
    try:
        target.check()
        target._call("command", f"CREATE TABLE `{target.database}`.t (a Int64) ENGINE = MergeTree ORDER BY a "
                                "SETTINGS non_replicated_deduplication_window = 100")
        body = target.encode(BATCH)
        srv.set_fault("cut_after_apply", count=len(INSERT_RETRY_DELAYS))
        target.insert("t", body, "tok-a")  # applied, cut, resent twice: ClickHouse drops the copies
        assert insert_requests(srv)[-3:] == [("tok-a", "cut"), ("tok-a", "cut"), ("tok-a", 200)]
        srv.set_fault("cut_after_apply", count=len(INSERT_RETRY_DELAYS) + 1)
        with pytest.raises(TargetError) as info:  # the link stays bad: the loader takes over
            target.insert("t", body, "tok-b")
        assert info.value.unreachable
        assert target.ping()  # ...while the server itself answers
        rows = target._call("query", f"SELECT count() FROM `{target.database}`.t").result_rows
        assert rows == [(6,)]  # tok-a once, tok-b once (applied by the first of its three cut sends)
    finally:
        target.close()


# -- connections -----------------------------------------------------------------------------


def test_batches_reuse_kept_connections(tmp_path: Path, server: HttpTarget, engines: list[Engine]) -> None:
    srv = server.server
    cfg = remote_config(tmp_path, server, batch_rows=100, workers=1, insert_parallel=2)
    engine = start(cfg, engines)
    rows = make_rows(3000)  # 30 batches
    (cfg.data_dir / "first.csv").write_bytes(csv_bytes(rows))
    wait_for(lambda: state_of(engine, "first.csv") == State.LOADED, what="first.csv loaded")
    srv.reset_stats()
    (cfg.data_dir / "second.csv").write_bytes(csv_bytes(rows[::-1]))
    wait_for(lambda: state_of(engine, "second.csv") == State.LOADED, what="second.csv loaded")
    stats = srv.stats()
    assert stats["inserts"] == 30 and stats["inserts_applied"] == 30
    # Every thread keeps its keep-alive connection: 30 batches and the file's queries open none
    # (at most the health probe's first connection, if its first tick falls in this window).
    assert stats["connections"] <= 1, stats
    assert count(engine, "second") == 3000
    # Query answers travel compressed (lz4); insert bodies are Arrow IPC with lz4 buffers.
    selects = [r for r in srv.requests() if r.get("statement", "").startswith("SELECT count()")]
    assert selects and all(r["response_encoding"] == "lz4" for r in selects)


@pytest.mark.parametrize("compress", ["zstd", "none"])
def test_compress_option_reaches_the_wire(tmp_path: Path, server: HttpTarget, compress: str) -> None:
    from chute.core.target import Target

    srv = server.server
    cfg = dataclasses.replace(remote_config(tmp_path, server),
                              clickhouse_url=f"{server.url}?compress={compress}")
    target, plain = Target(cfg), Target(remote_config(tmp_path, server))
    try:
        target.check()
        target._call("command", f"CREATE TABLE `{target.database}`.t (a Int64, s String) ENGINE = MergeTree "
                                "ORDER BY a")
        big = pa.table({"a": pa.array(range(20_000), pa.int64()),
                        "s": [f"row {i} of a file: {i * 7919 % 1000} units" for i in range(20_000)]})
        body, default = target.encode(big), plain.encode(big)
        # Arrow IPC buffers: zstd well below the default lz4; none is the raw size.
        ratio = len(body.body) / len(default.body)
        assert ratio < 0.8 if compress == "zstd" else ratio > 1.5, ratio
        target.insert("t", body, "tok-z")
        rows = target._call("query", f"SELECT count(), sum(length(s)) FROM `{target.database}`.t").result_rows
        assert rows == [(20_000, sum(len(s) for s in big.column("s").to_pylist()))]
        last = [r for r in srv.requests() if r.get("statement", "").startswith("SELECT count()")][-1]
        assert last["response_encoding"] == (None if compress == "none" else compress)
    finally:
        target.close()
        plain.close()


# -- outages ---------------------------------------------------------------------------------


class _Doorman:
    """Holds a port where ClickHouse will be, and resets every connection: counts the daemon's tries."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.knocks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.knocks += 1
            # RST, not FIN: no TIME_WAIT left behind on the port the server takes next.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.mark.slow
def test_server_down_at_start_then_up_later(tmp_path: Path) -> None:
    """The daemon waits (--wait-for-clickhouse), logging one line per 30 s rather than one per try;
    without the option it says so in one line and exits 2."""
    port = free_port()
    srv = ChHttpServer(tmp_path / "ch", port=port, user=HTTP_USER, password=HTTP_PASSWORD)
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    sources = {f"part_{i}.csv": make_rows(1500, seed=i * 10_000) for i in range(3)}
    for name, rows in sources.items():
        (data / name).write_bytes(csv_bytes(rows))
    url = f"http://{HTTP_USER}@127.0.0.1:{port}"
    env = {**os.environ, "CHUTE_CLICKHOUSE_PASSWORD": HTTP_PASSWORD}
    common = [str(data), "--state-dir", str(state), "--clickhouse", url, "--batch-rows", "400",
              "--settle-seconds", "0.2", "--log-format", "json"]

    refused = run_chute("--no-ui", "--once", *common, env=env)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "cannot reach ClickHouse" in refused.stderr and "connection refused" in refused.stderr

    doorman = _Doorman(port)
    proc = subprocess.Popen(chute_cmd("--no-ui", *common, "--wait-for-clickhouse", "120"), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Enough tries (one a second, each at least one connection) that a line per try would show.
        wait_for(lambda: doorman.knocks >= 8 or proc.poll() is not None, timeout=90, what="the daemon's tries")
        doorman.close()
        assert proc.poll() is None, proc.communicate()
        srv.start()
        client = srv.client()

        def all_loaded() -> bool:
            out = run_chute("files", "--json", "--state-dir", str(state)).stdout
            states = [json.loads(line)["state"] for line in out.splitlines()]
            return len(states) == 3 and set(states) == {"loaded"}

        wait_for(all_loaded, timeout=60, interval=0.3, what="all files loaded after the server came up")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
        total = client.query("SELECT count(), uniqExact(_source_sha256, _source_row) FROM default.part").result_rows
        assert total == [(4500, 4500)]
        waiting = [json.loads(line) for line in err.splitlines() if "waiting up to" in line]
        assert 1 <= len(waiting) <= 2, "one line per 30 s while waiting, not one per try"
        assert "Traceback" not in err
        client.close()
    finally:
        doorman.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        srv.close()


def test_outage_mid_file_waits_then_resends_only_unacknowledged_batches(
        tmp_path: Path, server: HttpTarget, engines: list[Engine]) -> None:
    """Kill the server mid-file: the file waits as failed (not quarantined, attempts kept), resumes by itself
    when the server is back, and the next attempt sends only the batches never acknowledged, with their tokens."""
    srv = server.server
    cfg = remote_config(tmp_path, server, batch_rows=100, workers=1, insert_parallel=1)
    engine = start(cfg, engines)
    rows = make_rows(4000)  # 40 batches
    srv.set_fault("delay", seconds=0.03, target="insert")  # pace the inserts so the kill lands mid-file
    (cfg.data_dir / "big.csv").write_bytes(csv_bytes(rows))
    wait_for(lambda: rows_loaded(engine, "big.csv") >= 1000, what="a quarter acknowledged")
    srv.kill()
    wait_for(lambda: state_of(engine, "big.csv") == State.FAILED, what="failed while the server is gone")
    row = engine.ledger.current("big.csv")
    assert row.error_kind == "unreachable" and row.next_attempt is not None
    assert not engine.target_ok and "refused" in (engine.target_error or "")
    acked = {b["idx"]: b["token"] for b in ledger_batches(cfg.state_dir) if b["state"] == "done"}
    assert 10 <= len(acked) < 40
    time.sleep(2.0)  # many backoff periods (max 0.5 s): nothing is quarantined, no attempts burn
    row = engine.ledger.current("big.csv")
    assert row.state == State.FAILED and row.attempts <= 1
    assert engine.ledger.counts().get("quarantined", 0) == 0

    srv.start()  # same data path: what was acknowledged is there
    wait_for(lambda: state_of(engine, "big.csv") == State.LOADED, what="loaded after the server returned")
    assert engine.target_ok
    assert count(engine, "big") == 4000 and dup_pairs(engine, "big") == 0
    sha = engine.ledger.current("big.csv").sha256
    batches = {b["idx"]: b["token"] for b in ledger_batches(cfg.state_dir)}
    assert batches == {i: f"{sha}:100:{i}" for i in range(40)}
    resent = [tok for tok, status in insert_requests(srv) if status == 200]
    assert sorted(resent) == sorted(tok for idx, tok in batches.items() if idx not in acked)


def test_cut_after_apply_on_30_percent_of_inserts_is_exactly_once(
        tmp_path: Path, server: HttpTarget, engines: list[Engine]) -> None:
    srv = server.server
    cfg = remote_config(tmp_path, server, batch_rows=100)
    srv.set_faults([{"kind": "cut_after_apply", "probability": 0.3}], seed=11)
    engine = start(cfg, engines)
    sources = {f"flaky_{i}.csv": make_rows(2000, seed=i * 10_000) for i in range(3)}
    for name, rows in sources.items():
        (cfg.data_dir / name).write_bytes(csv_bytes(rows))
    for name in sources:
        wait_for(lambda n=name: state_of(engine, n) == State.LOADED, timeout=60, what=f"{name} loaded")
    stats = srv.stats()
    assert stats["faults"]["cut"] >= 10 and stats["inserts_applied"] > 60  # applied twice, kept once
    assert count(engine, "flaky") == 6000 and dup_pairs(engine, "flaky") == 0
    assert not any("verification failed" in (e.detail or "") for e in engine.ledger.events())


def test_negative_control_without_tokens_duplicates(
        tmp_path: Path, server: HttpTarget, engines: list[Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    """Same cuts with deduplication off: the rows check catches the duplicates (so it would catch a regression)."""
    monkeypatch.setitem(failpoints._spec, "no_dedup", "1")
    srv = server.server
    cfg = remote_config(tmp_path, server, batch_rows=100, max_attempts=2)
    srv.set_faults([{"kind": "cut_after_apply", "probability": 0.3}], seed=11)
    engine = start(cfg, engines)
    (cfg.data_dir / "flaky_0.csv").write_bytes(csv_bytes(make_rows(2000)))
    wait_for(lambda: engine.idle() and state_of(engine, "flaky_0.csv") == State.FAILED, timeout=60,
             what="gave up")
    found = [re.search(r"holds (\d+) rows of this file, expected (\d+)", e.detail or "")
             for e in engine.ledger.events()]
    counts = [(int(m.group(1)), int(m.group(2))) for m in found if m]
    assert counts and all(seen > expected == 2000 for seen, expected in counts), counts


def test_5xx_storm_ends_failed_never_quarantined_then_retry_loads_once(
        tmp_path: Path, server: HttpTarget, engines: list[Engine]) -> None:
    srv = server.server
    cfg = remote_config(tmp_path, server, batch_rows=200, max_attempts=3)
    engine = start(cfg, engines)
    srv.set_faults([{"kind": "http_error", "status": 500, "target": "insert", "probability": 0.5},
                    {"kind": "http_error", "status": 503, "target": "insert"}], seed=3)
    names = [f"storm_{i}.csv" for i in range(3)]
    for i, name in enumerate(names):
        (cfg.data_dir / name).write_bytes(csv_bytes(make_rows(1000, seed=i * 10_000)))
    for name in names:
        wait_for(lambda n=name: (r := engine.ledger.current(n)) is not None and r.state == State.FAILED
                 and r.next_attempt is None, timeout=60, what=f"{name} gave up")
    assert engine.ledger.counts().get("quarantined", 0) == 0
    for name in names:
        row = engine.ledger.current(name)
        assert row.attempts == 3 and "HTTP 50" in row.last_error and row.error_kind == "clickhouse"
    assert srv.stats()["faults"]["http_error"] >= 9

    srv.clear_faults()
    for name in names:  # through the running engine's command channel, as an operator would
        proc = run_chute("retry", name, "--state-dir", str(cfg.state_dir))
        assert proc.returncode == 0, proc.stderr
    for name in names:
        wait_for(lambda n=name: state_of(engine, n) == State.LOADED, what=f"{name} loaded after retry")
    assert count(engine, "storm") == 3000 and dup_pairs(engine, "storm") == 0


def test_storm_on_every_request_waits_instead_of_giving_up(
        tmp_path: Path, server: HttpTarget, engines: list[Engine]) -> None:
    """503 to everything (a proxy with no ClickHouse behind it) is an outage: files wait, attempts kept."""
    srv = server.server
    cfg = remote_config(tmp_path, server, max_attempts=2)
    engine = start(cfg, engines)
    srv.set_fault("http_error", status=503)
    (cfg.data_dir / "held_back.csv").write_bytes(csv_bytes(make_rows(300)))
    wait_for(lambda: state_of(engine, "held_back.csv") == State.FAILED, what="failed")
    wait_for(lambda: not engine.snapshot().target_ok, what="the engine knows")
    assert "HTTP 503" in (engine.snapshot().target_error or "")
    time.sleep(1.5)
    row = engine.ledger.current("held_back.csv")
    assert row.state == State.FAILED and row.next_attempt is not None and row.error_kind == "unreachable"
    srv.clear_faults()
    wait_for(lambda: state_of(engine, "held_back.csv") == State.LOADED, what="loaded once the storm passed")
    assert count(engine, "held_back") == 300


# -- the password ------------------------------------------------------------------------------


def test_password_never_leaks(tmp_path: Path) -> None:
    password = "Pw-7f3c-DISTINCTIVE-never-shown"
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    (data / "sales.csv").write_bytes(csv_bytes(make_rows(500)))
    with ChHttpServer(tmp_path / "ch", user=HTTP_USER, password=password) as srv:
        url = f"http://{HTTP_USER}@127.0.0.1:{srv.port}"
        env = {**os.environ, "CHUTE_CLICKHOUSE_PASSWORD": password}
        common = ["--state-dir", str(state), "--clickhouse", url]
        # Enough in a row to get past the in-place resends, so errors reach the logs and the ledger.
        srv.set_faults([{"kind": "http_error", "status": 503, "target": "insert", "count": 8},
                        {"kind": "cut_after_apply", "count": 8}])
        proc = subprocess.Popen(chute_cmd("--no-ui", str(data), *common, "--batch-rows", "100", "--settle-seconds",
                                          "0.2", "--log-level", "debug", "--log-format", "json"),
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: current_versions(state).get("sales.csv", {}).get("state") == "loaded", timeout=60,
                     what="sales loaded")
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
            seen = [cmdline]
            for args in (["status"], ["status", "--json"], ["files", "--json"], ["events", "--json"]):
                out = run_chute(*args, *common)
                assert out.returncode == 0, out.stderr
                seen += [out.stdout, out.stderr]
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        seen += [out, err]
        assert proc.returncode == 0, err[-2000:]
        assert "failed sales.csv: ClickHouse" in err, err[-3000:]  # the faults were hit and logged
        # A wrong password: one line, exit 2, and the wrong password is not echoed either.
        wrong = run_chute("--no-ui", "--once", str(data), *common,
                          env={"CHUTE_CLICKHOUSE_PASSWORD": "Wrong-DISTINCTIVE-guess"})
        assert wrong.returncode == 2 and "refused the login" in wrong.stderr, wrong.stderr
        assert "Wrong-DISTINCTIVE-guess" not in wrong.stdout + wrong.stderr
        # From a password file instead of the environment.
        secret = tmp_path / "pw"
        secret.write_text(password + "\n")
        config = tmp_path / "chute.toml"
        config.write_text(f'password_file = "{secret}"\n')
        (data / "more.csv").write_bytes(csv_bytes(make_rows(50, seed=900)))
        assert "CHUTE_CLICKHOUSE_PASSWORD" not in os.environ
        once = run_chute("--no-ui", "--once", str(data), *common, "--config", str(config), "--log-level", "debug")
        assert once.returncode == 0, once.stderr
        seen += [once.stdout, once.stderr]
        ledger_bytes = b"".join(p.read_bytes() for p in state.iterdir() if p.is_file())
        server_log = Path(srv.log_path).read_text()
        assert srv.stats()["auth_failures"] >= 1
    everything = "\n".join(seen)
    assert "sales.csv" in everything  # the captures are real
    assert password not in everything
    assert password.encode() not in ledger_bytes
    assert password not in server_log


# -- TLS ---------------------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a server certificate for localhost/127.0.0.1 signed by it."""
    d = tmp_path_factory.mktemp("tls")
    f = {n: d / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem", "ext.cnf", "other.key",
                             "other.pem")}
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(f["ca.key"]), "-out", str(f["ca.pem"]),
             "-days", "2", "-subj", "/CN=chute test CA")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(f["srv.key"]), "-out", str(f["srv.csr"]),
             "-subj", "/CN=localhost")
    f["ext.cnf"].write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nkeyUsage=digitalSignature,keyEncipherment\n"
                            "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(f["srv.csr"]), "-CA", str(f["ca.pem"]), "-CAkey", str(f["ca.key"]),
             "-CAcreateserial", "-out", str(f["srv.pem"]), "-days", "2", "-extfile", str(f["ext.cnf"]))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(f["other.key"]), "-out",
             str(f["other.pem"]), "-days", "2", "-subj", "/CN=some other CA")
    return f


class TlsProxy:
    """TLS in front of the plain HTTP endpoint, as a server's https port (or a TLS-terminating proxy) is."""

    def __init__(self, backend_port: int, cert: Path, key: Path) -> None:
        self.backend_port = backend_port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(conn,), daemon=True).start()

    def _pipe(self, raw: socket.socket) -> None:
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # the client refused our certificate
            return
        self.handshakes += 1
        back = socket.create_connection(("127.0.0.1", self.backend_port))
        try:
            while True:
                ready, _, _ = select.select([tls, back], [], [], 1.0)
                if tls in ready or tls.pending():
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    back.sendall(chunk)
                if back in ready:
                    chunk = back.recv(65536)
                    if not chunk:
                        return
                    tls.sendall(chunk)
        except (ssl.SSLError, OSError):
            return
        finally:
            tls.close()
            back.close()

    def close(self) -> None:
        self._closed = True
        self.sock.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_with_a_ca_file_and_the_verify_option(tmp_path: Path, server: HttpTarget, engines: list[Engine],
                                                     tls_files: dict[str, Path]) -> None:
    proxy = TlsProxy(server.server.port, tls_files["srv.pem"], tls_files["srv.key"])
    try:
        base = f"https://{HTTP_USER}@localhost:{proxy.port}"

        def config(url: str, sub: str) -> Config:
            return dataclasses.replace(remote_config(tmp_path / sub, server), clickhouse_url=url)

        cfg = config(f"{base}?ca_cert={tls_files['ca.pem']}", "verified")
        engine = start(cfg, engines)
        (cfg.data_dir / "secure.csv").write_bytes(csv_bytes(make_rows(700)))
        wait_for(lambda: state_of(engine, "secure.csv") == State.LOADED, what="loaded over TLS")
        assert count(engine, "secure") == 700 and proxy.handshakes >= 1

        for url, sub in ((base, "system-ca"), (f"{base}?ca_cert={tls_files['other.pem']}", "wrong-ca")):
            with pytest.raises(UsageError, match="TLS certificate was not accepted.*ca_cert=FILE"):
                Engine(config(url, sub)).start(wait_for_target=30)  # fails at once: waiting cannot fix it

        cfg = config(f"https://{HTTP_USER}@127.0.0.1:{proxy.port}?verify=false", "unverified")
        engine = start(cfg, engines)
        (cfg.data_dir / "insecure.csv").write_bytes(csv_bytes(make_rows(70)))
        wait_for(lambda: state_of(engine, "insecure.csv") == State.LOADED, what="loaded without verification")
    finally:
        proxy.close()
