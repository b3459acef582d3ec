"""Health endpoints beside /metrics, for Kubernetes probes and load balancers.

- ``/healthz`` (liveness): 200 while the engine's threads run; 503 when one died or the engine
  is stopping. A restart helps only then: an unreachable ClickHouse is not a reason.
- ``/readyz`` (readiness): 200 when ClickHouse answers; 503 with the reason otherwise (files
  wait meanwhile; the pod shows not-ready instead of being restarted).
Anything else is Prometheus' exposition (prometheus_client's WSGI app).
"""

from __future__ import annotations

import threading
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _get_best_family, _SilentHandler


def check(engine: Any, path: str) -> tuple[bool, str]:
    if path == "/readyz":
        if engine.target_ok:
            return True, "ready: ClickHouse answers\n"
        return False, f"not ready: {engine.target_error or 'ClickHouse does not answer'}\n"
    threads = getattr(engine, "_threads", [])
    dead = [t.name for t in threads if not t.is_alive()]
    if getattr(engine, "stopping", False) or dead:
        return False, f"unhealthy: {'stopping' if not dead else 'stopped threads: ' + ', '.join(dead)}\n"
    return True, "ok\n"


def app_for(registry: Any, engine: Any) -> Any:
    metrics = make_wsgi_app(registry)

    def app(environ: dict, start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok, text = check(engine, path)
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [text.encode()]
        return metrics(environ, start_response)

    return app


def start_server(host: str, port: int, registry: Any, engine: Any) -> tuple[WSGIServer, threading.Thread]:
    """prometheus_client's start_http_server, with the health paths in front."""

    class Server(ThreadingWSGIServer):
        pass

    Server.address_family, host = _get_best_family(host, port)
    httpd = make_server(host, port, app_for(registry, engine), Server, handler_class=_SilentHandler)
    thread = threading.Thread(target=httpd.serve_forever, name="chute-metrics", daemon=True)
    thread.start()
    return httpd, thread
