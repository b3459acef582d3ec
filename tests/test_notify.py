"""Issue 13: alerts reach people through apprise (here a local json:// webhook receiver)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chute.core.alerts import Alert
from chute.core.notify import Message, Notifier
from tests.conftest import state_of, wait_for
from tests.test_engine import csv_bytes, make_rows


class Receiver:
    """An HTTP endpoint that records every JSON body posted to it; ``hang`` makes it never answer."""

    def __init__(self, hang: bool = False) -> None:
        self.bodies: list[dict] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if hang:
                    outer.release.wait(30)
                outer.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def titles(self) -> list[str]:
        return [b["title"] for b in list(self.bodies)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_a_real_alert_fires_and_resolves_to_a_webhook(engine_factory, receiver: Receiver) -> None:
    engine = engine_factory(notify=(receiver.url,), alert_oldest_waiting_seconds=0.5, notify_summary_at="")
    engine.command("pause")
    (engine.cfg.data_dir / "late.csv").write_bytes(csv_bytes(make_rows(3)))
    wait_for(lambda: any("oldest_waiting firing" in t for t in receiver.titles()), timeout=60, what="firing")
    fired = next(b for b in receiver.bodies if "firing" in b["title"])
    assert fired["type"] == "warning"
    for needle in ("host: ", "rule: oldest_waiting", "level: warning", "value: late.csv has waited", "files: late.csv"):
        assert needle in fired["message"], fired
    engine.command("resume")
    wait_for(lambda: state_of(engine, "late.csv") == "loaded", what="loaded")
    wait_for(lambda: any("RESOLVED] oldest_waiting" in t for t in receiver.titles()), timeout=60, what="resolved")
    resolved = next(b for b in receiver.bodies if "RESOLVED" in b["title"])
    assert resolved["type"] == "success" and "was: late.csv has waited" in resolved["message"]
    assert sum("oldest_waiting firing" in t for t in receiver.titles()) == 1  # once, not once per evaluation


def test_a_hanging_receiver_never_blocks_ingestion(engine_factory) -> None:
    hanging = Receiver(hang=True)
    hanging.thread.start()
    try:
        engine = engine_factory(notify=(hanging.url,), alert_oldest_waiting_seconds=0.2, notify_summary_at="")
        engine.command("pause")
        for i in range(3):
            (engine.cfg.data_dir / f"f{i}.csv").write_bytes(csv_bytes(make_rows(5, seed=i)))
        wait_for(lambda: state_of(engine, "f2.csv") == "queued", what="queued")
        # The alert fires; its message is stuck in the receiver while the files load anyway.
        wait_for(lambda: engine.monitor.notifier._queue.qsize() == 0 and
                 any(a.name == "oldest_waiting" for a in engine.snapshot().alerts), timeout=60, what="firing")
        engine.command("resume")
        wait_for(lambda: all(state_of(engine, f"f{i}.csv") == "loaded" for i in range(3)), timeout=60,
                 what="loaded while the receiver hangs")
        assert hanging.bodies == []
    finally:
        hanging.release.set()
        hanging.server.shutdown()
        hanging.server.server_close()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _collecting(clock: Clock, **kw: object) -> tuple[Notifier, list[Message]]:
    sent: list[Message] = []

    def send(msg: Message) -> bool:
        sent.append(msg)
        return True

    return Notifier(send, clock=clock, host="ingest-1", **kw), sent  # type: ignore[arg-type]


def _drain(n: Notifier) -> None:
    n.close()


def test_rate_limits_flapping_and_the_hourly_cap() -> None:
    clock = Clock(1_000_000.0)
    n, sent = _collecting(clock, min_interval=300, max_per_hour=3)
    a = Alert("critical", "error_rate", "error rate 50%")
    n.fired(a)
    clock.t += 10
    n.resolved(a)
    clock.t += 10
    n.fired(a)  # flapping within the interval: held back...
    clock.t += 10
    n.resolved(a)  # ...and so is its all-clear
    clock.t += 400
    n.fired(a)
    for i in range(5):  # other rules: the hourly cap (3) holds back the rest
        n.fired(Alert("warning", f"rule{i}", "x"))
    clock.t += 3600
    n.fired(Alert("warning", "later", "y"))
    _drain(n)
    titles = [m.title for m in sent]
    assert titles == ["[chute CRITICAL] error_rate firing on ingest-1", "[chute RESOLVED] error_rate on ingest-1",
                      "[chute CRITICAL] error_rate firing on ingest-1", "[chute WARNING] later firing on ingest-1"]
    assert "(1 earlier message(s) held back by the rate limit)" in sent[2].body  # the flapping one
    assert "(5 earlier message(s) held back by the rate limit)" in sent[-1].body


def test_daily_summary_once_a_day_at_the_configured_time() -> None:
    clock = Clock(time.mktime((2026, 11, 28, 7, 59, 0, 0, 0, -1)))
    n, _ = _collecting(clock, summary_at="08:00")
    assert not n.summary_due(clock.t)
    clock.t += 60
    assert n.summary_due(clock.t) and not n.summary_due(clock.t + 600)
    assert n.summary_due(clock.t + 86400)
    _drain(n)
    today = time.strftime("%Y-%m-%d", time.localtime(clock.t))
    restarted, _ = _collecting(clock, summary_at="08:00")
    assert not restarted.summary_due(clock.t + 300, last_day=today)  # a restart sends no second one
    first, _ = _collecting(clock, summary_at="08:00")
    assert not first.summary_due(clock.t + 300)  # a first start after 08:00 waits for tomorrow...
    assert first.summary_due(clock.t + 86400)
    _drain(restarted)
    _drain(first)


def test_send_failures_are_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(msg: Message) -> bool:
        raise ConnectionError("receiver down")

    n = Notifier(refuse, host="h")
    with caplog.at_level("WARNING", logger="chute.notify"):
        for i in range(3):
            n.fired(Alert("warning", f"r{i}", "x"))
        n.close()
    assert n.stats.failed == 3 and n.stats.sent == 0
    assert sum("could not send notification" in r.getMessage() for r in caplog.records) == 1


def test_a_bad_notify_url_is_a_usage_error(tmp_path: Path) -> None:
    from tests.conftest import run_chute

    (tmp_path / "data").mkdir()
    proc = run_chute("--no-ui", "--once", str(tmp_path / "data"), "--state-dir", str(tmp_path / "s"),
                     "--clickhouse", f"chdb://{tmp_path / 'ch'}", "--notify", "nosuchscheme://x")
    assert proc.returncode == 2 and "not one apprise understands" in proc.stderr and "Traceback" not in proc.stderr


def test_clickhouse_outage_pages_and_all_clears(tmp_path: Path, http_target, receiver: Receiver) -> None:
    """The page most teams get first: ClickHouse stops answering (HTTP 503 from every request), then returns."""
    from chute.core.engine import Engine
    from tests.conftest import make_config

    cfg = make_config(tmp_path, http_target, notify=(receiver.url,), notify_summary_at="")
    engine = Engine(cfg)
    engine.start()
    try:
        http_target.server.set_fault("http_error", status=503)
        wait_for(lambda: any("clickhouse_unreachable firing" in t for t in receiver.titles()), timeout=60,
                 what="the outage page")
        fired = next(b for b in receiver.bodies if "clickhouse_unreachable firing" in b["title"])
        assert "HTTP 503" in fired["message"] and "rule: clickhouse_unreachable" in fired["message"]
        http_target.server.clear_faults()
        wait_for(lambda: any("RESOLVED] clickhouse_unreachable" in t for t in receiver.titles()), timeout=60,
                 what="the all-clear")
    finally:
        http_target.server.clear_faults()
        engine.stop()
