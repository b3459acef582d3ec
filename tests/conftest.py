"""Shared fixtures. Everything runs against the real ClickHouse engine (chDB); no mocks.

chDB allows one engine path per process, so in-process tests share one path for the whole
session and isolate themselves by database name; tests that need their own engine run chute
as a subprocess.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chute.core.config import Config
from chute.core.engine import Engine
from tests.chhttp import ChHttpServer
from tests.fdguard import fd_guard, pytest_fixture_setup  # noqa: F401 - no test leaves descriptors open

ROOT = Path(__file__).resolve().parent.parent

# The fleet mirror (core/fleet.py) is on by default; tests that are not about it run without its
# extra thread and tables (tests/test_fleet*.py turn it on), including chute subprocesses.
# `CHUTE_FLEET_MIRROR=true pytest ...` runs any test with the mirror on.
os.environ.setdefault("CHUTE_FLEET_MIRROR", "false")
FLEET_MIRROR = os.environ["CHUTE_FLEET_MIRROR"] == "true"


@pytest.fixture(autouse=True)
def _root_logging() -> Iterator[None]:
    """A test that runs chute's CLI in-process gets chute's root handler on pytest's capture stream;
    left in place, later tests' log lines go to that closed stream ("--- Logging error ---")."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for added in [h for h in root.handlers if h not in handlers]:
        added.close()  # (a file handler of the test's would keep its descriptor)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def embedded_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The one chDB path this test process uses (chDB allows one per process).

    One handle stays open for the session: when an engine's last handle closes, chDB shuts down and
    the next handle starts it again, and each restart leaves ~5 MergeTree background threads behind,
    each holding 3 descriptors (/proc/self/task/N/{stat,schedstat,io}). A worker that started and
    stopped a few hundred engines held >1,024 descriptors (tests/test_fd_leaks.py shows it)."""
    import clickhouse_connect

    path = tmp_path_factory.mktemp("chdb")
    keep = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    yield path
    keep.close()


@pytest.fixture(scope="session")
def chdb_path(embedded_path: Path) -> Path:
    return embedded_path


@dataclasses.dataclass(frozen=True)
class HttpTarget:
    """A ClickHouse HTTP endpoint for in-process engines: URL without password, password in a 0600 file."""

    server: ChHttpServer
    password_file: Path

    @property
    def url(self) -> str:
        return f"http://{HTTP_USER}@127.0.0.1:{self.server.port}"


HTTP_USER = "chute"
HTTP_PASSWORD = "Zq7-http-fixture-pw-91e2"


@pytest.fixture(scope="session")
def http_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpTarget]:
    """One ClickHouse-over-HTTP server (tests/chhttp.py, chDB behind it) for the session, with auth."""
    root = tmp_path_factory.mktemp("chhttp")
    secret = root / "password"
    secret.write_text(HTTP_PASSWORD + "\n")
    secret.chmod(0o600)
    with ChHttpServer(root / "engine", user=HTTP_USER, password=HTTP_PASSWORD) as server:
        yield HttpTarget(server, secret)


@pytest.fixture(params=["chdb", "http"])
def any_target(request: pytest.FixtureRequest, embedded_path: Path) -> Iterator[Path | HttpTarget]:
    """The embedded engine's path, or an HTTP endpoint: tests taking this run against both.

    A test module opts in by overriding ``chdb_path`` with it (see tests/test_engine.py), so
    ``make_config`` and ``engine_factory`` build engines for either target.
    """
    if request.param == "chdb":
        yield embedded_path
        return
    target: HttpTarget = request.getfixturevalue("http_target")
    target.server.clear_faults()
    yield target
    target.server.clear_faults()


def make_config(tmp: Path, chdb: Path | HttpTarget, **overrides: Any) -> Config:
    """A fast test configuration; ``chdb`` is the embedded engine's path or an HttpTarget."""
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    where: dict[str, Any] = {"clickhouse_url": f"chdb://{chdb}"}
    if isinstance(chdb, HttpTarget):
        where = {"clickhouse_url": chdb.url, "password_file": chdb.password_file}
    base = Config(
        data_dir=data,
        state_dir=tmp / "state",
        **where,
        database=f"t_{uuid.uuid4().hex[:12]}",
        settle_seconds=0.3,
        rescan_seconds=1.0,
        backoff_base=0.05,
        backoff_max=0.5,
        log_format="text",
        fleet_mirror=FLEET_MIRROR,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def cfg(tmp_path: Path, chdb_path: Path) -> Config:
    return make_config(tmp_path, chdb_path)


@pytest.fixture
def target(cfg: Config) -> Iterator[Any]:
    """A checked Target on this test's database with a table ``t (id Int64, name String)``."""
    from chute.core.schema import Column
    from chute.core.target import Target

    t = Target(cfg)
    t.check()
    t.create_table("t", [Column("id", "Int64"), Column("name", "String")])
    yield t
    t.close()
    drop_databases([cfg])


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The console on the demo's ledger (chute.tui.demo), its engine stopped at teardown."""
    from chute.tui.demo import demo_app

    monkeypatch.chdir(tmp_path)  # the demo's ledger names its data folder relative to it
    app = demo_app(tmp_path)
    yield app
    app.engine.stop()  # detach: its two ledger connections


@pytest.fixture
def engine_factory(tmp_path: Path, chdb_path: Path) -> Iterator[Callable[..., Engine]]:
    """Start an in-process engine (stopped at teardown). Keyword arguments override Config."""
    engines: list[Engine] = []

    def start(cfg: Config | None = None, once: bool = False, **overrides: Any) -> Engine:
        config = cfg if cfg is not None else make_config(tmp_path, chdb_path, **overrides)
        engine = Engine(config, once=once)
        engine.start()
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        if not engine.stopping:
            engine.stop()
    drop_databases([engine.cfg for engine in engines])


def drop_databases(cfgs: list[Config]) -> None:
    """Drop the embedded databases of a test's engines: chDB keeps each MergeTree table's
    deduplication log open (one descriptor per table) for as long as the table exists."""
    import clickhouse_connect

    for url, names in _by_url(cfgs).items():
        client = clickhouse_connect.get_client(dsn=url)
        try:
            for name in names:
                client.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
        finally:
            client.close()


def _by_url(cfgs: list[Config]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for c in cfgs:
        if c.embedded and c.clickhouse_url:
            out.setdefault(c.clickhouse_url, set()).add(c.database)
    return out


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll until ``predicate`` is true. The default is generous: a passing wait returns at once, and a load
    on a busy 2-core CI machine (two xdist workers, chDB's threads) can queue for tens of seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def query(engine: Engine, sql: str, **params: Any) -> list[tuple]:
    return engine.target.client().query(sql, parameters=params or None).result_rows


def state_of(engine: Engine, rel: str) -> str | None:
    assert engine.ledger is not None
    row = engine.ledger.current(rel)
    return None if row is None else str(row.state)


# -- chute as a subprocess ------------------------------------------------------------------


def chute_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "chute.core", *args]


def run_chute(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(chute_cmd(*args), cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def engine_query(engine_dir: Path, sql: str) -> list[list[Any]]:
    """Query an embedded engine directory from a fresh process (this one may hold another path)."""
    code = (
        "import json, sys, clickhouse_connect\n"
        f"c = clickhouse_connect.get_client(dsn='chdb://{engine_dir}')\n"
        "rows = c.query(sys.argv[1]).result_rows\n"
        "print(json.dumps([list(r) for r in rows], default=str))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, sql], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"query failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CHUTE_* from the caller's shell, and no default config file of theirs."""
    for name in list(os.environ):
        if name.startswith("CHUTE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def console(tmp_path: Path, chdb_path: Path):
    """A console on a started engine (the engine is stopped at teardown unless the test quit it).
    Textual is imported here, not at the top: most tests never need it."""
    from chute.core.engine import Engine
    from chute.tui.app import ChuteApp

    engines: list[Engine] = []

    def make(**overrides: Any) -> ChuteApp:
        engine = Engine(make_config(tmp_path, chdb_path, **overrides), mode="console")
        engine.start()
        engines.append(engine)
        return ChuteApp(engine, refresh_seconds=0.2, actor="console:test")

    yield make
    for engine in engines:
        if not engine.stopping:
            engine.stop()
    drop_databases([engine.cfg for engine in engines])
