"""Prometheus metrics for an ingest host (``--metrics-addr``), on a registry of chute's own.

Two kinds: counters and a histogram that the engine's hooks move as work happens (rows and
bytes per table, batch insert latency, load outcomes, errors by kind, retries), and gauges
read from the ledger, the host and the engine at scrape time by :class:`EngineCollector`
(files by state, queue depth, oldest waiting file, ClickHouse reachable, ledger size, free
disk, memory, firing alerts). ``process_*`` (CPU, memory, file descriptors) come from
prometheus_client's ProcessCollector. prometheus_client is imported, and the counters made, on
first use: a `--once` over an empty folder never needs them (issue 12, tests/test_startup.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from chute.core import __version__, sysinfo
from chute.core.alerts import WAITING
from chute.core.config import parse_hostport
from chute.core.errors import UsageError
from chute.core.ledger import FileRow
from chute.core.states import State

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
else:
    Collector = object  # duck-typed by the registry; the real base only for the type checker

log = logging.getLogger("chute.metrics")

# Batch inserts take from milliseconds (small batch, embedded engine) to minutes (big batch, slow link).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
OUTCOMES = ("loaded", "duplicate", "held", "failed", "quarantined")
ERROR_KINDS = ("unreachable", "clickhouse", "verify", "input", "gone")
# The rules every engine knows, exported as 0/1 so a dashboard shows them before they ever fire.
ALERT_RULES = (("critical", "error_rate"), ("critical", "disk_nearly_full"), ("critical", "memory_nearly_exhausted"),
               ("warning", "oldest_waiting"), ("warning", "clickhouse_unreachable"))


class EngineCollector(Collector):
    """Gauges read at scrape time, so a scrape always sees the ledger as it is now."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # no describe: registering must not scrape (the engine may not have started)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from prometheus_client.core import GaugeMetricFamily

        engine = self.engine
        ledger = engine.ledger
        cfg = engine.cfg
        now = time.time()
        up = GaugeMetricFamily("chute_clickhouse_up", "1 when ClickHouse answers, 0 while it is unreachable")
        up.add_metric([], 1.0 if engine.target_ok else 0.0)
        yield up
        paused = GaugeMetricFamily("chute_paused", "1 while intake is paused by an operator")
        paused.add_metric([], 1.0 if engine.paused else 0.0)
        yield paused
        if ledger is not None:
            yield from self._ledger(ledger, now)
        free = GaugeMetricFamily("chute_disk_free_bytes", "Free bytes on the filesystem of a folder chute writes",
                                 labels=["folder"])
        size = GaugeMetricFamily("chute_disk_size_bytes", "Size of the filesystem of a folder chute writes",
                                 labels=["folder"])
        for disk in sysinfo.disks(cfg):
            free.add_metric([disk.folder], disk.free)
            size.add_metric([disk.folder], disk.total)
        yield free
        yield size
        mem = sysinfo.memory()
        if mem is not None:
            avail = GaugeMetricFamily("chute_memory_available_bytes",
                                      "Memory available (host, or cgroup when its limit is tighter)")
            avail.add_metric([], mem.available)
            limit = GaugeMetricFamily("chute_memory_limit_bytes", "Memory limit (host total, or cgroup limit)")
            limit.add_metric([], mem.limit)
            yield avail
            yield limit
        alerts = GaugeMetricFamily("chute_alert_firing", "1 while chute's own alert rule fires",
                                   labels=["level", "name"])
        firing = {(a.level, a.name) for a in engine.monitor.current() if a.level != "info"}
        for level, name in ALERT_RULES:
            alerts.add_metric([level, name], 1.0 if (level, name) in firing else 0.0)
        yield alerts

    def _ledger(self, ledger: Any, now: float) -> Iterator[GaugeMetricFamily]:
        from prometheus_client.core import GaugeMetricFamily

        counts = ledger.counts()
        files = GaugeMetricFamily("chute_files", "File versions in the ledger, by state", labels=["state"])
        for state in State:
            files.add_metric([state.value], counts.get(state.value, 0))
        yield files
        depth = GaugeMetricFamily("chute_queue_depth", "Files chute will load without an operator: seen, "
                                  "settling, queued, and failed with a retry scheduled")
        depth.add_metric([], sum(counts.get(s, 0) for s in ("seen", "settling", "queued")) +
                         ledger.retry_scheduled())
        yield depth
        oldest: FileRow | None = ledger.oldest_in(WAITING)
        age = GaugeMetricFamily("chute_oldest_waiting_seconds", "Age of the oldest file in seen, settling, "
                                "queued, failed or held (0 when none waits)")
        age.add_metric([], max(0.0, now - oldest.first_seen) if oldest else 0.0)
        yield age
        size = GaugeMetricFamily("chute_ledger_bytes", "Size of the ledger database and its write-ahead log")
        size.add_metric([], sysinfo.ledger_bytes(ledger.path))
        yield size


class Metrics:
    """One per engine. The server runs only with ``metrics_addr``; the counters move from the engine's
    hooks while it runs (nothing else reads them)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._registry: CollectorRegistry | None = None
        self._server: Any = None
        self._thread: Any = None
        self.address: tuple[str, int] | None = None

    @property
    def registry(self) -> CollectorRegistry:
        """chute's own registry (never prometheus_client's global one), built on first use."""
        with self._lock:
            if self._registry is None:
                self._registry = self._build()
        return self._registry

    def _build(self) -> CollectorRegistry:
        from prometheus_client import CollectorRegistry, Counter, Histogram, Info, ProcessCollector

        reg = CollectorRegistry()
        self.rows = Counter("chute_rows_loaded", "Rows acknowledged by ClickHouse, per table", ["table"],
                            registry=reg)
        self.bytes = Counter("chute_bytes_loaded", "Source-file bytes loaded (pro rata per batch), per table",
                             ["table"], registry=reg)
        self.latency = Histogram("chute_batch_insert_seconds", "Time from sending a batch to its acknowledgement",
                                 buckets=LATENCY_BUCKETS, registry=reg)
        self.outcomes = Counter("chute_file_outcomes", "Load attempts by how they ended "
                                "(loaded, duplicate, held, failed, quarantined)", ["outcome"], registry=reg)
        self.errors = Counter("chute_errors", "Failed or quarantined load attempts, by error kind "
                              "(unreachable, clickhouse, verify, input, gone)", ["kind"], registry=reg)
        self.retries = Counter("chute_retries", "Load attempts of a file whose previous attempt failed",
                               registry=reg)
        # Every known label at 0 from the start: rate() and increase() miss a series' first step.
        for outcome in OUTCOMES:
            self.outcomes.labels(outcome)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        Info("chute_build", "chute version", registry=reg).info({"version": __version__})
        ProcessCollector(registry=reg)
        reg.register(EngineCollector(self.engine))
        return reg

    # -- hooks (called from loader threads) -----------------------------------------------

    def on_batch(self, table: str, rows: int, nbytes: int, secs: float) -> None:
        if self._server is None:
            return  # no endpoint, nothing reads them: no prometheus_client import for a `--once` (issue 12)
        self.registry  # noqa: B018 - builds the counters on first use
        self.rows.labels(table).inc(rows)
        self.bytes.labels(table).inc(nbytes)
        self.latency.observe(secs)

    def on_outcome(self, row: FileRow, outcome: State | None) -> None:
        """After the loader took ``row`` (as it was picked up) to ``outcome``; the ledger has the error kind."""
        if outcome is None or self._server is None:
            return  # not started: another worker or an operator got there first; or no endpoint
        self.registry  # noqa: B018 - builds the counters on first use
        if row.state == State.FAILED:
            self.retries.inc()  # an attempt of a file whose previous attempt failed
        if outcome in (State.QUEUED, State.SETTLING):
            return  # deferred, interrupted or changed while loading: no attempt ended
        self.outcomes.labels(outcome.value).inc()
        if outcome in (State.FAILED, State.QUARANTINED):
            fresh = self.engine.ledger.get(row.id) if self.engine.ledger else None
            kind = (fresh.error_kind if fresh else None) or ("input" if outcome == State.QUARANTINED else "unknown")
            self.errors.labels(kind).inc()

    # -- the endpoint ---------------------------------------------------------------------

    def serve(self, addr: str) -> None:
        if not addr:
            return
        try:
            host, port = parse_hostport(addr)
        except ValueError as exc:
            raise UsageError(f"metrics_addr {exc}") from None
        try:
            from chute.core import health

            self._server, self._thread = health.start_server(host, port, self.registry, self.engine)  # + /healthz
        except OSError as exc:
            raise UsageError(f"cannot serve metrics on {addr}: {exc.strerror or exc}") from None
        self.address = (host, self._server.server_port)
        log.info("metrics on http://%s:%d/metrics", host if ":" not in host else f"[{host}]", self.address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def sample_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry can expose (counters' ``_total``, histograms' ``_bucket`` ...)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "info": ("_info",), "summary": ("", "_count", "_sum", "_created")}
    names = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, ()))
        names.update(s.name for s in family.samples)
    return names
