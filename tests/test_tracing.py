"""OpenTelemetry traces (core/tracing.py): spans per file version with the SDK's in-memory exporter, and
once end to end, chute in a subprocess exporting OTLP/HTTP to a receiver in this test."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from chute.core import tracing
from chute.core.states import State
from tests.conftest import ROOT, make_config, state_of, wait_for

ROWS = b"id,name\n" + b"".join(f"{i},n{i}\n".encode() for i in range(1, 6))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()
        provider.shutdown()


def test_one_trace_per_file_version_with_every_step(spans, engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path, batch_rows=2, after_load="archive")
    (cfg.data_dir / "ev.csv").write_bytes(ROWS)  # 5 rows in batches of 2: three inserts
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "ev.csv") == State.LOADED, what="loaded")
    wait_for(lambda: any(s.name == "chute.file" for s in spans.get_finished_spans()), what="root span")
    finished = spans.get_finished_spans()
    [root] = [s for s in finished if s.name == "chute.file"]
    row = engine.ledger.current("ev.csv")
    assert dict(root.attributes).items() >= {"chute.path": "ev.csv", "chute.table": "ev", "chute.version_id": row.id,
                                             "chute.rows": 5, "chute.bytes": len(ROWS), "chute.sha256": row.sha256,
                                             "chute.outcome": "loaded"}.items()
    children = [s for s in finished if s.parent is not None and s.parent.span_id == root.context.span_id]
    assert all(s.context.trace_id == root.context.trace_id for s in children)
    names = [s.name for s in sorted(children, key=lambda s: s.start_time)]
    assert names[0] == "settle" and names[-2:] == ["verify", "after_load"]
    assert names.count("parse") == 3 and names.count("insert") == 3 and "hash" in names and "table" in names
    inserts = sorted((s for s in children if s.name == "insert"), key=lambda s: s.attributes["chute.batch"])
    assert [s.attributes["chute.rows"] for s in inserts] == [2, 2, 1]
    assert inserts[0].attributes["chute.token"] == f"{row.sha256}:2:0"
    assert all(s.attributes["chute.path"] == "ev.csv" and s.attributes["chute.version_id"] == row.id for s in children)
    settle = next(s for s in children if s.name == "settle")
    assert root.start_time == settle.start_time <= settle.end_time <= root.end_time


def test_a_quarantined_file_is_an_error_span_with_its_reason(spans, engine_factory, tmp_path: Path,
                                                             chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "bad.csv.gz").write_bytes(gzip.compress(ROWS * 100)[:-30])
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "bad.csv.gz") == State.QUARANTINED, what="quarantined")
    root = wait_for(lambda: next((s for s in spans.get_finished_spans() if s.name == "chute.file"), None))
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes["chute.outcome"] == "quarantined" and root.attributes["chute.reason"]


def test_the_environment_decides(monkeypatch) -> None:
    assert not tracing.wanted({})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert not tracing.wanted({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})


class _Receiver(http.server.ThreadingHTTPServer):
    """The OTLP/HTTP trace endpoint of a collector: POST /v1/traces, protobuf body."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(inner) -> None:
                body = inner.rfile.read(int(inner.headers["Content-Length"]))
                self.paths.append(inner.path)
                if inner.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                self.requests.append(req)
                inner.send_response(200)
                inner.send_header("Content-Type", "application/x-protobuf")
                inner.end_headers()
                inner.wfile.write(b"")

            def log_message(inner, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def _run_once(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "ev.csv").write_bytes(ROWS)
    code = (
        "import json, sys\n"
        "from chute.core import api\n"
        "r = api.run_once(sys.argv[1], clickhouse_url=sys.argv[2], state_dir=sys.argv[3], batch_rows=2)\n"
        "otel = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "print(json.dumps({'states': r.counts, 'otel': otel}))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.run([sys.executable, "-c", code, str(data), f"chdb://{tmp_path / 'engine'}",
                           str(tmp_path / "state")], cwd=ROOT, env=dict(clean, **env), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(proc.stdout.strip().splitlines()[-1])


def test_end_to_end_over_otlp_http(tmp_path: Path) -> None:
    receiver = _Receiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}"
        _, out = _run_once(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "chute-e2e"})
        assert out["states"] == {"loaded": 1}
        spans, services = [], set()
        for req in receiver.requests:
            for rs in req.resource_spans:
                services |= {a.value.string_value for a in rs.resource.attributes if a.key == "service.name"}
                for ss in rs.scope_spans:
                    spans += list(ss.spans)
        assert set(receiver.paths) == {"/v1/traces"} and services == {"chute-e2e"}
        names = sorted(s.name for s in spans)
        assert names.count("insert") == 3 and {"chute.file", "settle", "hash", "verify", "after_load"} <= set(names)
        [root] = [s for s in spans if s.name == "chute.file"]
        attrs = {a.key: a.value for a in root.attributes}
        assert attrs["chute.path"].string_value == "ev.csv" and attrs["chute.rows"].int_value == 5
        assert {s.trace_id for s in spans} == {root.trace_id}
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_off_by_default_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    """The negative control: without OTEL_* nothing is sent, and OpenTelemetry is never imported."""
    _, out = _run_once(tmp_path, {})
    assert out == {"states": {"loaded": 1}, "otel": []}
