"""Prometheus metrics (core/metrics.py), scraped over HTTP from an in-process engine during real loads."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chute.core import __version__ as chute_version
from chute.core.config import parse_hostport
from chute.core.engine import Engine
from chute.core.metrics import sample_names
from tests.conftest import HttpTarget, state_of, wait_for
from tests.test_engine import csv_bytes, make_rows

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(engine: Engine) -> Samples:
    assert engine.metrics.address is not None
    host, port = engine.metrics.address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def test_scrape_during_a_real_load(engine_factory) -> None:
    engine = engine_factory(metrics_addr="127.0.0.1:0", batch_rows=100)
    assert engine.metrics.address is not None and engine.metrics.address[0] == "127.0.0.1"
    before = scrape(engine)
    assert value(before, "chute_clickhouse_up") == 1
    assert value(before, "chute_files", state="loaded") == 0
    assert value(before, "chute_batch_insert_seconds_count") == 0
    assert value(before, "chute_queue_depth") == 0
    assert value(before, "chute_oldest_waiting_seconds") == 0
    assert value(before, "chute_build_info", version=chute_version) == 1

    body = csv_bytes(make_rows(1000))
    (engine.cfg.data_dir / "sales.csv").write_bytes(body)
    wait_for(lambda: state_of(engine, "sales.csv") == "loaded", what="sales.csv loaded")
    # The outcome is counted just after the ledger says loaded (another thread): wait for it too.
    wait_for(lambda: value(scrape(engine), "chute_file_outcomes_total", outcome="loaded") == 1, what="outcome counted")
    after = scrape(engine)
    assert value(after, "chute_rows_loaded_total", table="sales") == 1000
    assert value(after, "chute_batch_insert_seconds_count") == 10  # 1000 rows in batches of 100
    assert 0 < value(after, "chute_batch_insert_seconds_sum") < 60  # type: ignore[operator]
    assert value(after, "chute_batch_insert_seconds_bucket", le="+Inf") == 10
    # Bytes are the source file's, shared out per batch (rounded down per batch).
    assert len(body) - 10 <= value(after, "chute_bytes_loaded_total", table="sales") <= len(body)  # type: ignore[operator]
    assert value(after, "chute_files", state="loaded") == 1
    assert value(after, "chute_file_outcomes_total", outcome="loaded") == 1
    assert value(after, "chute_errors_total", kind="input") == 0
    assert value(after, "chute_queue_depth") == 0
    assert value(after, "chute_ledger_bytes") > 0  # type: ignore[operator]
    for folder in ("data", "state", "engine"):
        assert value(after, "chute_disk_free_bytes", folder=folder) > 0  # type: ignore[operator]
        assert value(after, "chute_disk_size_bytes", folder=folder) > 0  # type: ignore[operator]
    assert value(after, "chute_memory_limit_bytes") > 0  # type: ignore[operator]
    assert value(after, "process_resident_memory_bytes") > 0  # type: ignore[operator]
    assert value(after, "process_cpu_seconds_total") > 0  # type: ignore[operator]
    assert value(after, "chute_alert_firing", level="warning", name="oldest_waiting") == 0

    # A bad file: quarantined, counted as an input error and in the files-by-state gauge.
    (engine.cfg.data_dir / "broken.csv.gz").write_bytes(b"\x1f\x8b not really gzip")
    wait_for(lambda: state_of(engine, "broken.csv.gz") == "quarantined", what="quarantine")
    # The error's kind is counted after the outcome (a ledger read in between): wait for both.
    wait_for(lambda: (s := scrape(engine)) and value(s, "chute_file_outcomes_total", outcome="quarantined") == 1
             and value(s, "chute_errors_total", kind="input") == 1, what="outcome and its error counted")
    last = scrape(engine)
    assert value(last, "chute_files", state="quarantined") == 1
    assert value(last, "chute_file_outcomes_total", outcome="quarantined") == 1
    assert value(last, "chute_errors_total", kind="input") == 1
    assert value(last, "chute_rows_loaded_total", table="sales") == 1000  # unchanged
    assert value(last, "chute_retries_total") == 0


def test_queue_depth_and_oldest_waiting_while_paused(engine_factory) -> None:
    engine = engine_factory(metrics_addr="127.0.0.1:0")
    engine.command("pause")
    for seed, name in enumerate(("a.csv", "b.csv")):
        (engine.cfg.data_dir / name).write_bytes(csv_bytes(make_rows(5, seed=seed * 100)))
    wait_for(lambda: state_of(engine, "a.csv") == "queued" and state_of(engine, "b.csv") == "queued",
             what="queued while paused")
    samples = scrape(engine)
    assert value(samples, "chute_queue_depth") == 2
    assert value(samples, "chute_files", state="queued") == 2
    assert value(samples, "chute_paused") == 1
    assert 0 < value(samples, "chute_oldest_waiting_seconds") < 60  # type: ignore[operator]
    engine.command("resume")
    wait_for(lambda: value(scrape(engine), "chute_files", state="loaded") == 2, what="both loaded")
    assert value(scrape(engine), "chute_queue_depth") == 0


def test_errors_by_kind_retries_and_reachability_over_http(engine_factory, http_target: HttpTarget,
                                                           tmp_path: Path) -> None:
    """Through the HTTP endpoint with faults: a ClickHouse error is retried; an outage flips the gauge."""
    engine = engine_factory(metrics_addr="127.0.0.1:0", clickhouse_url=http_target.url,
                            password_file=http_target.password_file)
    server = http_target.server
    server.set_fault("ch_error", target="insert", count=1, code=1002, message="injected")
    (engine.cfg.data_dir / "retry.csv").write_bytes(csv_bytes(make_rows(10)))
    wait_for(lambda: state_of(engine, "retry.csv") == "loaded", what="loaded after one retry")
    # Counted just after the ledger says loaded (the loader's thread): wait for the count, not the state.
    wait_for(lambda: value(scrape(engine), "chute_file_outcomes_total", outcome="loaded") == 1, what="outcome counted")
    samples = scrape(engine)
    assert value(samples, "chute_errors_total", kind="clickhouse") == 1
    assert value(samples, "chute_retries_total") == 1
    assert value(samples, "chute_file_outcomes_total", outcome="failed") == 1
    assert value(samples, "chute_file_outcomes_total", outcome="loaded") == 1
    assert value(samples, "chute_rows_loaded_total", table="retry") == 10

    server.set_fault("http_error", status=503)  # a proxy with no ClickHouse behind it: an outage
    (engine.cfg.data_dir / "outage.csv").write_bytes(csv_bytes(make_rows(10, seed=50)))
    wait_for(lambda: value(scrape(engine), "chute_clickhouse_up") == 0, what="ClickHouse marked unreachable")
    wait_for(lambda: value(scrape(engine), "chute_errors_total", kind="unreachable") >= 1,  # type: ignore[operator]
             what="the failed attempt counted")
    firing = scrape(engine)
    assert value(firing, "chute_alert_firing", level="warning", name="clickhouse_unreachable") == 1
    assert value(firing, "chute_errors_total", kind="unreachable") >= 1  # type: ignore[operator]
    assert [a.name for a in engine.snapshot().alerts if a.level == "warning"] == ["clickhouse_unreachable"]
    server.clear_faults()
    wait_for(lambda: state_of(engine, "outage.csv") == "loaded", timeout=30, what="loaded after the outage")
    wait_for(lambda: value(scrape(engine), "chute_file_outcomes_total", outcome="loaded") == 2, what="outcome counted")
    cleared = scrape(engine)
    assert value(cleared, "chute_clickhouse_up") == 1
    assert value(cleared, "chute_alert_firing", level="warning", name="clickhouse_unreachable") == 0


def test_metrics_are_off_by_default_and_bind_loopback(engine_factory) -> None:
    engine = engine_factory()
    assert engine.metrics.address is None
    assert parse_hostport("9464") == ("127.0.0.1", 9464)
    assert parse_hostport(":9464") == ("127.0.0.1", 9464)
    assert parse_hostport("0.0.0.0:9464") == ("0.0.0.0", 9464)
    assert parse_hostport("[::1]:9464") == ("::1", 9464)
    with pytest.raises(ValueError):
        parse_hostport("localhost:http")


def test_own_registry_exposes_every_family(engine_factory) -> None:
    """Nothing lands in prometheus_client's global registry; the names the rules and dashboard use exist."""
    from prometheus_client import REGISTRY

    engine = engine_factory()
    names = sample_names(engine.metrics.registry)
    for name in ("chute_files", "chute_rows_loaded_total", "chute_bytes_loaded_total",
                 "chute_batch_insert_seconds_bucket", "chute_retries_total", "chute_errors_total", "chute_queue_depth",
                 "chute_oldest_waiting_seconds",
                 "chute_clickhouse_up", "chute_ledger_bytes", "chute_disk_free_bytes", "chute_memory_available_bytes",
                 "process_cpu_seconds_total", "process_resident_memory_bytes"):
        assert name in names, name
    assert "chute_rows_loaded_total" not in sample_names(REGISTRY)


def test_health_endpoints_for_probes(engine_factory) -> None:
    """/healthz (liveness) and /readyz (readiness) answer beside /metrics."""
    import urllib.error

    engine = engine_factory(metrics_addr="127.0.0.1:0")
    host, port = engine.metrics.address

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    assert get("/healthz") == (200, "ok\n")
    assert get("/readyz")[0] == 200
    assert "chute_files" in get("/metrics")[1]
    engine.target_ok, engine.target_error = False, "Connection refused"
    assert get("/readyz") == (503, "not ready: Connection refused\n")
    assert get("/healthz")[0] == 200  # an outage is not a reason to restart the pod
    engine._stop.set()
    try:
        assert get("/healthz")[0] == 503
    finally:
        engine._stop.clear()
