"""OpenTelemetry traces, one per file version: settle, hash, parse and insert per batch, verify, after-load.

Off by default. The standard variables turn it on: ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or ``OTEL_TRACES_EXPORTER=otlp``) sends spans over
OTLP/HTTP to Jaeger or any collector; ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_EXPORTER_OTLP_HEADERS`` and the BatchSpanProcessor's ``OTEL_BSP_*`` apply as usual;
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` keeps it off.

When off, nothing of OpenTelemetry is imported: the loader's hooks get :data:`NOOP`, whose
methods do nothing, so tracing costs a few attribute look-ups per batch (bench: not measurable).
The loader asks :func:`current` for the trace of the file its thread is loading; threads of the
insert pipeline get the trace handed over explicitly (context variables do not cross pools).
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chute.core.ledger import FileRow

log = logging.getLogger("chute.tracing")

_lock = threading.Lock()
_tracer: Any = None  # an opentelemetry Tracer once configured; None: off
_provider: Any = None
_configured = False
_current: contextvars.ContextVar[Any] = contextvars.ContextVar("chute_file_trace")


class _Noop:
    """Every hook when tracing is off: one shared object, no allocation per call."""

    __slots__ = ()

    def __enter__(self) -> _Noop:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def step(self, name: str, **attrs: Any) -> _Noop:
        return self

    def span_at(self, name: str, start: float, end: float, **attrs: Any) -> None:
        return None

    def set(self, **attrs: Any) -> None:
        return None

    def finish(self, outcome: str | None, reason: str | None = None) -> None:
        return None

    def __bool__(self) -> bool:
        return False


NOOP = _Noop()


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard OTEL_* variables ask for traces."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _exporters(env)
    if exporters:  # only OTLP is chute's: "console" or "zipkin" must not turn into OTLP to localhost:4318
        return "otlp" in exporters
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def _exporters(env: Mapping[str, str]) -> set[str]:
    return {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()}


def configure(env: Mapping[str, str] = os.environ) -> bool:
    """Set tracing up from the environment, once per process. Returns whether it is on."""
    global _configured, _tracer, _provider
    with _lock:
        if _configured:
            return _tracer is not None
        _configured = True
        others = _exporters(env) - {"otlp", "none"}
        if others and env.get("OTEL_SDK_DISABLED", "").strip().lower() != "true":
            log.warning("OTEL_TRACES_EXPORTER=%s: chute exports traces over OTLP/HTTP only (otlp); %s ignored",
                        env["OTEL_TRACES_EXPORTER"], ", ".join(sorted(others)))
        if not wanted(env):
            return False
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning("OTEL_* asks for traces, but OpenTelemetry is not installed: pip install 'chute[otel]'")
            return False
        if env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")) \
                not in ("http/protobuf", ""):
            log.warning("chute exports traces over OTLP/HTTP (http/protobuf) only; the protocol setting is ignored")
        # Resource.create reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES; "chute" unless they say otherwise.
        attrs = {} if env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "") \
            else {SERVICE_NAME: "chute"}
        provider = TracerProvider(resource=Resource.create(attrs))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _provider, _tracer = provider, provider.get_tracer("chute")
        log.info("tracing on: OTLP/HTTP to %s", env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                 or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "the default endpoint")
        return True


def install(provider: Any) -> None:
    """Trace into this TracerProvider (tests, or an application that set OpenTelemetry up itself)."""
    global _configured, _tracer, _provider
    with _lock:
        _configured, _provider, _tracer = True, provider, provider.get_tracer("chute")


def uninstall() -> None:
    """Back to off (and to reading the environment at the next :func:`configure`)."""
    global _configured, _tracer, _provider
    with _lock:
        _configured, _provider, _tracer = False, None, None


def flush(timeout_s: float = 5.0) -> None:
    """Send what is buffered (at engine stop: a once-run's spans must not wait for the next tick)."""
    provider = _provider
    if provider is not None:
        provider.force_flush(int(timeout_s * 1000))


@contextmanager
def file_trace(row: FileRow) -> Iterator[Any]:
    """The trace of one load attempt of ``row``, current in this thread while it runs."""
    if not _configured:
        configure()
    tracer = _tracer
    if tracer is None:
        yield NOOP
        return
    trace = FileTrace(tracer, row)
    token = _current.set(trace)
    try:
        yield trace
    finally:
        _current.reset(token)
        trace.end()


def current() -> Any:
    """The trace of the file this thread loads, or NOOP."""
    return _current.get(NOOP)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class FileTrace:
    """A root span ``chute.file`` for one attempt at one version, and its step spans."""

    def __init__(self, tracer: Any, row: FileRow) -> None:
        from opentelemetry import trace

        self._tracer = tracer
        self._outcome: tuple[str | None, str | None] = (None, None)
        first = row.attempts == 0 and row.rows_loaded == 0 and str(row.state) == "queued"
        self.base = {"chute.path": row.path, "chute.table": row.table_name, "chute.version_id": row.id}
        attrs = dict(self.base, **{"chute.bytes": row.size or 0, "chute.attempt": row.attempts + 1,
                                   "chute.generation": row.generation})
        # The first attempt's trace starts when the file was first seen, so its settle time is inside it.
        self._span = tracer.start_span("chute.file", attributes=attrs,
                                       start_time=_ns(row.first_seen) if first else None)
        self._ctx = trace.set_span_in_context(self._span)
        if first and row.updated_at >= row.first_seen:
            self.span_at("settle", row.first_seen, row.updated_at)

    def __bool__(self) -> bool:
        return True

    @contextmanager
    def step(self, name: str, **attrs: Any) -> Iterator[Any]:
        with self._tracer.start_as_current_span(name, context=self._ctx, attributes=dict(self.base, **_attrs(attrs)),
                                                record_exception=True, set_status_on_exception=True) as span:
            yield _Span(span)

    def span_at(self, name: str, start: float, end: float, **attrs: Any) -> None:
        """A step timed elsewhere (wall-clock seconds), e.g. settling before the load began."""
        span = self._tracer.start_span(name, context=self._ctx, attributes=dict(self.base, **_attrs(attrs)),
                                       start_time=_ns(start))
        span.end(end_time=_ns(max(start, end)))

    def set(self, **attrs: Any) -> None:
        self._span.set_attributes(_attrs(attrs))

    def finish(self, outcome: str | None, reason: str | None = None) -> None:
        self._outcome = (outcome, reason)

    def end(self) -> None:
        outcome, reason = self._outcome
        if outcome:
            self._span.set_attribute("chute.outcome", outcome)
        if reason:
            self._span.set_attribute("chute.reason", reason)
        if outcome in ("failed", "quarantined"):
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR, reason or outcome))
        self._span.end()


class _Span:
    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def set(self, **attrs: Any) -> None:
        self._span.set_attributes(_attrs(attrs))


def _attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {f"chute.{k}": v for k, v in attrs.items() if v is not None}
