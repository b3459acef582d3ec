"""`chute serve`: the console in a web browser (textual-serve), attached to a headless engine.

Each browser session runs its own `chute attach` process (textual-serve's model), so the console
in the browser is the one in a terminal, driving the engine through the ledger. When no engine
holds the state dir, serve runs one itself (as `chute --no-ui` would).

Security: binds 127.0.0.1 unless told otherwise. Without a token every session is read-only
(core/readonly.py). With a token (CHUTE_SERVE_TOKEN or --token-file; never argv), opening
``/?token=...`` once sets an HttpOnly, SameSite=Strict cookie, and sessions presenting it may act.
WebSocket connections from another origin are refused (a web page elsewhere cannot drive it), and
requests naming another host are refused (DNS rebinding cannot turn a foreign name into this one).
"""

from __future__ import annotations

import hmac
import logging
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from chute.core.config import Config

log = logging.getLogger("chute.serve")

COOKIE = "chute_token"


def attach_command(cfg: Config, *, read_only: bool, config_file: str | None = None) -> str:
    """The shell command one browser session runs: `chute attach` on this state dir."""
    argv = [sys.executable, "-m", "chute.core", "attach", "--state-dir", str(cfg.state_dir),
            "--data-dir", str(cfg.data_dir)]
    if config_file:
        argv += ["--config", config_file]
    if read_only:
        argv.append("--read-only")
    return shlex.join(argv)


class ConsoleServer(Server):
    def __init__(self, cfg: Config, *, host: str, port: int, token: str | None, public_url: str | None = None,
                 config_file: str | None = None) -> None:
        self.token = token or None
        self.read_only_command = attach_command(cfg, read_only=True, config_file=config_file)
        self.actions_command = attach_command(cfg, read_only=False, config_file=config_file)
        title = f"chute — {cfg.data_dir}" + ("" if token else " (read-only)")
        super().__init__(self.read_only_command, host=host, port=port, title=title, public_url=public_url)
        self.hosts = {urlsplit(self.public_url).netloc, f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
        if host not in ("0.0.0.0", "::", ""):
            self.hosts.add(f"{host}:{port}")

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._check_host)
        return app

    @web.middleware
    async def _check_host(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.host not in self.hosts:
            raise web.HTTPMisdirectedRequest(text=f"this console answers to {', '.join(sorted(self.hosts))} only "
                                                  "(--public-url names another)")
        return await handler(request)

    def initialize_logging(self) -> None:  # chute's own log setup stays in charge
        pass

    async def on_startup(self, app: web.Application) -> None:
        mode = "actions with the token" if self.token else "read-only"
        log.info("console served at %s (%s)", self.public_url, mode)

    def allowed(self, request: web.Request) -> bool:
        """Whether this request carries the token (cookie); always False without a token configured."""
        given = request.cookies.get(COOKIE, "")
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())  # type: ignore[union-attr]

    async def handle_index(self, request: web.Request) -> Any:
        given = request.query.get("token")
        if given is not None:
            if not self.token or not hmac.compare_digest(given.encode(), self.token.encode()):
                raise web.HTTPForbidden(text="wrong token")
            # Keep the token out of the address bar and history: a cookie carries it from here on.
            response = web.HTTPFound("/")
            response.set_cookie(COOKIE, given, httponly=True, samesite="Strict", path="/")
            raise response
        return await super().handle_index(request)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin")
        if origin and origin.rstrip("/") != self.public_url.rstrip("/") and origin.split("//")[-1] != request.host:
            raise web.HTTPForbidden(text="cross-origin console connections are refused")
        command = self.actions_command if self.allowed(request) else self.read_only_command
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        service: AppService | None = None
        try:
            await websocket.prepare(request)
            # textual-serve wants close() -> None; aiohttp's returns a bool it ignores.
            service = AppService(command, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                                 close=websocket.close,  # type: ignore[arg-type]
                                 download_manager=self.download_manager, debug=False)
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except Exception:
            log.exception("console session failed")
        finally:
            if service is not None:
                await service.stop()
        return websocket


def read_token(token_file: str | None) -> str | None:
    """The action token: CHUTE_SERVE_TOKEN, or the first line of a file (never argv)."""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            from chute.core.errors import UsageError

            raise UsageError(f"cannot read the token file {token_file}: {exc.strerror}") from None
    else:
        token = os.environ.get("CHUTE_SERVE_TOKEN", "").strip()
    if token and len(token) < 16:
        from chute.core.errors import UsageError

        raise UsageError("the serve token is too short: use 16 characters or more")
    return token or None


def _check_bindable(host: str, port: int) -> None:
    """Bind and let go, as aiohttp will (SO_REUSEADDR): a taken port or a foreign address fails here."""
    from chute.core.errors import UsageError

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(addr)
    except OSError as exc:
        raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


def run_serve(cfg: Config, *, host: str, port: int, token: str | None, public_url: str | None = None,
              config_file: str | None = None) -> int:
    """Serve the console until SIGINT/SIGTERM; run an engine here when none holds the state dir."""
    from chute.core.engine import Engine, StateLock

    _check_bindable(host, port)  # before an engine starts loading for a console that cannot be served
    engine = None
    if StateLock.holder(cfg.state_dir) is None:
        engine = Engine(cfg, mode="serve")
        engine.start()
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        log.warning("serving on %s without a token: anyone who reaches it sees the console (read-only)", host)
    try:
        ConsoleServer(cfg, host=host, port=port, token=token, public_url=public_url,
                      config_file=config_file).serve()
    except OSError as exc:  # the port is taken, or the address is not this host's
        from chute.core.errors import UsageError

        raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        if engine is not None:
            engine.stop()
    return 0
