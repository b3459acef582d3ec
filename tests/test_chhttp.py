"""The chhttp fixture, exercised through clickhouse-connect's real HTTP client against chDB over real HTTP."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import clickhouse_connect
import pyarrow as pa
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from tests.chhttp import ChHttpServer, parse_statement

USER = "chute"
PASSWORD = "s3cret-Pa55-never-logged"
BATCH = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.uint32()),
        "name": ["alpha", "beta", "gamma"],
        "amount": [1.5, 2.5, 3.5],
    }
)
BATCH_ROWS = [(1, "alpha", 1.5), (2, "beta", 2.5), (3, "gamma", 3.5)]
NO_DEDUP = {"deduplicate_insert": "disable"}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChHttpServer]:
    with ChHttpServer(tmp_path_factory.mktemp("chhttp") / "data", user=USER, password=PASSWORD) as srv:
        yield srv


@pytest.fixture
def client(server: ChHttpServer) -> Iterator[Client]:
    server.clear_faults()
    c = server.client()
    yield c
    c.close()
    server.clear_faults()


def make_table(client: Client, dedup_window: bool = True) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    settings = " SETTINGS non_replicated_deduplication_window = 1000" if dedup_window else ""
    client.command(
        f"CREATE TABLE {name} (id UInt32, name String, amount Float64) ENGINE = MergeTree ORDER BY id{settings}"
    )
    return name


def count(client: Client, table: str) -> int:
    return int(client.command(f"SELECT count() FROM {table}"))


def raw_get(
    server: ChHttpServer,
    query: str,
    *,
    basic: str | None = f"{USER}:{PASSWORD}",
    headers: dict[str, str] | None = None,
    **params: str,
) -> Any:
    """One GET outside clickhouse-connect (so nothing is retried); Basic auth as ``basic`` unless None."""
    hdrs = dict(headers or {})
    if basic is not None:
        hdrs["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    request = urllib.request.Request(f"{server.url}/?{urlencode({'query': query, **params})}", headers=hdrs)
    try:
        return NO_PROXY.open(request, timeout=10)
    except urllib.error.HTTPError as err:
        return err


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def last_insert(server: ChHttpServer) -> dict[str, Any]:
    return [r for r in server.requests() if r.get("is_insert")][-1]


# --- protocol ---------------------------------------------------------------------------------


def test_connect_and_version(server: ChHttpServer, client: Client) -> None:
    assert client.server_version.startswith("26.")
    assert client.query("SELECT version()").result_rows[0][0] == client.server_version
    with NO_PROXY.open(f"{server.url}/ping", timeout=5) as ping:
        assert ping.read() == b"Ok.\n"

    response = raw_get(server, "SELECT 1 AS x", query_id="qid-1", default_format="JSONEachRow")
    assert response.status == 200
    assert response.read() == b'{"x":1}\n'
    assert response.headers["X-ClickHouse-Query-Id"] == "qid-1"
    assert response.headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert response.headers["X-ClickHouse-Timezone"]
    assert response.headers["X-ClickHouse-Server-Display-Name"]
    assert "read_rows" in json.loads(response.headers["X-ClickHouse-Summary"])


def test_insert_arrow_with_token_round_trip(server: ChHttpServer, client: Client) -> None:
    table = make_table(client)
    settings = {"insert_deduplication_token": "file-a:0", "async_insert": 0}

    summary = client.insert_arrow(table, BATCH, settings=settings)

    assert summary.written_rows == 3
    assert client.query(f"SELECT id, name, amount FROM {table} ORDER BY id").result_rows == BATCH_ROWS
    sent = last_insert(server)["settings"]
    assert sent["insert_deduplication_token"] == "file-a:0"
    assert sent["async_insert"] == "0"
    client.insert_arrow(table, BATCH, settings=settings)  # same token again: the engine drops it
    assert count(client, table) == 3


def test_session_settings_persist_and_request_settings_do_not_leak(client: Client) -> None:
    client.command("SET max_threads = 3")
    assert client.command("SELECT getSetting('max_threads')") == 3
    assert client.command("SELECT getSetting('max_threads')", settings={"max_threads": 1}) == 1
    assert client.command("SELECT getSetting('max_threads')") == 3


def test_unknown_table_is_a_database_error_with_the_clickhouse_code(server: ChHttpServer, client: Client) -> None:
    with pytest.raises(DatabaseError) as info:
        client.query("SELECT * FROM no_such_table")
    assert info.value.code == 60
    assert info.value.name == "UNKNOWN_TABLE"
    assert "(version 26." in str(info.value)

    response = raw_get(server, "SELECT * FROM no_such_table")
    assert response.status == 404
    assert response.headers["X-ClickHouse-Exception-Code"] == "60"
    assert response.read().decode().startswith("Code: 60. DB::Exception: ")
    with pytest.raises(DatabaseError) as info:
        client.command("SELEC 1")
    assert info.value.code == 62


@pytest.mark.parametrize(
    ("compress", "request_encoding", "response_encoding"),
    [
        (True, "lz4", "zstd"),  # the client offers lz4,zstd,gzip,deflate; ClickHouse prefers zstd
        ("lz4", "lz4", "lz4"),
        ("zstd", "zstd", "zstd"),
        ("gzip", "gzip", "gzip"),
    ],
)
def test_compression(server: ChHttpServer, compress: bool | str, request_encoding: str, response_encoding: str) -> None:
    with server.client(compress=compress) as c:
        table = make_table(c)
        rows = [[i, f"name-{i}", i / 2] for i in range(2000)]
        assert c.insert(table, rows, settings={"insert_deduplication_token": "native-1"}).written_rows == 2000
        assert last_insert(server)["content_encoding"] == request_encoding

        result = c.query(f"SELECT id, name, amount FROM {table} ORDER BY id")
        assert [list(r) for r in result.result_rows] == rows
        query_log = [r for r in server.requests() if r.get("statement", "").startswith("SELECT id, name")]
        assert query_log[-1]["response_encoding"] == response_encoding

        c.insert_arrow(table, BATCH, settings={"insert_deduplication_token": "arrow-1"})  # IPC-compressed Arrow
        assert count(c, table) == 2003


def test_parse_statement_splits_insert_data_like_clickhouse() -> None:
    stmt = parse_statement(b"INSERT INTO t (`format`, b) SETTINGS async_insert = 0 FORMAT Native\n\x00FORMAT\n")
    assert stmt.is_insert
    assert stmt.insert_format == "Native"
    assert stmt.insert_head == b"INSERT INTO t (`format`, b)"
    assert stmt.insert_settings == b"SETTINGS async_insert = 0"
    assert stmt.data == b"\x00FORMAT\n"
    assert parse_statement(b"INSERT INTO t VALUES (1)").insert_format is None
    select = parse_statement(b"SELECT 'FORMAT x', format FROM t -- FORMAT y\n FORMAT Native")
    assert (select.output_format, select.returns_rows, select.is_insert) == ("Native", True, False)
    assert not parse_statement(b"CREATE TABLE t (a Int8) ENGINE = Memory").returns_rows


# --- faults -----------------------------------------------------------------------------------


def test_503_on_insert_fails_the_insert_and_applies_nothing(server: ChHttpServer, client: Client) -> None:
    table = make_table(client)
    server.set_fault("http_error", status=503, count=1, target="insert")
    before = server.stats()["faults"]["http_error"]

    with pytest.raises(OperationalError, match="503"):
        client.insert_arrow(table, BATCH, settings={"insert_deduplication_token": "b-1"})

    assert server.stats()["faults"]["http_error"] == before + 1
    assert count(client, table) == 0
    client.insert_arrow(table, BATCH, settings={"insert_deduplication_token": "b-1"})  # the rule is used up
    assert count(client, table) == 3


def test_503_on_reads_is_retried_by_the_client_until_it_gives_up(server: ChHttpServer, client: Client) -> None:
    server.set_fault("http_error", status=503, count=1, target="query")
    assert client.query("SELECT 42").result_rows == [(42,)]  # clickhouse-connect retries reads on 503
    assert server.faults() == []

    server.set_fault("http_error", status=503, target="query")  # every read, until cleared
    with pytest.raises(OperationalError):
        client.query("SELECT 42")


def test_injected_clickhouse_error(server: ChHttpServer, client: Client) -> None:
    server.set_fault("ch_error", code=241, message="Memory limit (total) exceeded", count=1)
    with pytest.raises(DatabaseError) as info:
        client.command("SELECT 1")
    assert (info.value.code, info.value.name) == (241, "MEMORY_LIMIT_EXCEEDED")
    assert client.command("SELECT 1") == 1


def test_delay_and_a_timeout_after_apply(server: ChHttpServer, client: Client) -> None:
    server.set_fault("delay", seconds=0.3, count=1)
    started = time.monotonic()
    assert client.command("SELECT 1") == 1
    assert time.monotonic() - started >= 0.3

    # The insert lands, then the answer is late: the client times out on an applied insert.
    table = make_table(client)
    server.set_fault("delay", seconds=3, after_apply=True, target="insert", count=1)
    with server.client(send_receive_timeout=1) as impatient, pytest.raises(OperationalError):
        impatient.insert_arrow(table, BATCH, settings={"insert_deduplication_token": "slow-1"})
    assert count(client, table) == 3


def test_cut_after_apply_then_retry_with_the_same_token_is_exactly_once(server: ChHttpServer, client: Client) -> None:
    table = make_table(client)
    settings = {"insert_deduplication_token": "file-b:0", "async_insert": 0}
    server.set_fault("cut_after_apply", count=1)
    cuts = server.stats()["faults"]["cut"]

    with pytest.raises(OperationalError):  # the connection dropped: the client cannot know the outcome
        client.insert_arrow(table, BATCH, settings=settings)

    assert server.stats()["faults"]["cut"] == cuts + 1
    assert count(client, table) == 3  # ...but the rows were applied
    client.insert_arrow(table, BATCH, settings=settings)  # the caller's retry, same token
    assert count(client, table) == 3


def test_cut_after_apply_then_retry_without_protection_duplicates(server: ChHttpServer, client: Client) -> None:
    """Negative control: the same cut and retry with deduplication off double the rows.

    In ClickHouse 26.x ``deduplicate_insert`` ('enable' by default) supersedes ``insert_deduplicate``, and without
    a token a dedup-window table still drops a block whose content hashes like a recent one, so "unprotected" has
    to be spelled ``deduplicate_insert='disable'``.
    """
    table = make_table(client)
    server.set_fault("cut_after_apply", count=1)

    with pytest.raises(OperationalError):
        client.insert_arrow(table, BATCH, settings=NO_DEDUP)
    assert count(client, table) == 3
    client.insert_arrow(table, BATCH, settings=NO_DEDUP)
    assert count(client, table) == 6

    # No token but dedup on: the first copy lands, the identical second is dropped by its content hash, and
    # insert_deduplicate=0 does not stop that: 26.x honours it only if deduplicate_insert='backward_compatible_choice'.
    client.insert_arrow(table, BATCH)
    client.insert_arrow(table, BATCH, settings={"insert_deduplicate": 0})
    assert count(client, table) == 9


def test_native_insert_is_resent_by_the_client_after_a_cut(server: ChHttpServer, client: Client) -> None:
    """clickhouse-connect itself replays a Native insert once when the connection drops (not Arrow inserts)."""
    rows = [list(r) for r in BATCH_ROWS]
    protected = make_table(client)
    server.set_fault("cut_after_apply", count=1)
    client.insert(protected, rows, settings={"insert_deduplication_token": "native-b:0"})  # no error surfaces
    assert count(client, protected) == 3

    unprotected = make_table(client)
    server.set_fault("cut_after_apply", count=1)
    client.insert(unprotected, rows, settings=NO_DEDUP)
    assert count(client, unprotected) == 6  # silently applied twice
    assert [r["status"] for r in server.requests() if r.get("is_insert")][-2:] == ["cut", 200]


def test_probabilistic_faults_replay_with_the_same_seed(server: ChHttpServer) -> None:
    def statuses() -> list[int]:
        server.set_faults([{"kind": "http_error", "status": 503, "probability": 0.5}], seed=1234)
        return [raw_get(server, "SELECT 1").status for _ in range(24)]

    first = statuses()
    server.clear_faults()
    assert first == statuses()
    assert set(first) == {200, 503}
    server.clear_faults()


def test_refused_connections_then_recovery(server: ChHttpServer, client: Client) -> None:
    table = make_table(client)
    client.insert_arrow(table, BATCH)

    server.refuse_for(1.0)
    with pytest.raises(OperationalError):
        client.command("SELECT 1")
    assert not client.ping()
    wait_until(client.ping)
    assert count(client, table) == 3


def test_stop_and_restart_keep_the_data(server: ChHttpServer, client: Client) -> None:
    table = make_table(client)
    client.insert_arrow(table, BATCH, settings={"insert_deduplication_token": "persist-1"})
    old_pid = server.pid

    server.stop()
    with pytest.raises(OperationalError):
        client.command("SELECT 1")
    server.start()

    assert server.pid != old_pid
    assert client.query(f"SELECT id, name, amount FROM {table} ORDER BY id").result_rows == BATCH_ROWS
    client.insert_arrow(table, BATCH, settings={"insert_deduplication_token": "persist-1"})  # dedup state survives
    assert count(client, table) == 3


# --- authentication ---------------------------------------------------------------------------


def test_wrong_password_is_516_and_never_logged(server: ChHttpServer) -> None:
    with pytest.raises(DatabaseError) as info:
        clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=USER, password="wrong")
    assert (info.value.code, info.value.name) == (516, "AUTHENTICATION_FAILED")

    wrong = raw_get(server, "SELECT 1", basic=f"{USER}:bad")
    assert (wrong.status, wrong.headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    bad_key = raw_get(server, "SELECT 1", basic=None, headers={"X-ClickHouse-User": USER, "X-ClickHouse-Key": "bad"})
    assert bad_key.status == 403
    good_key = raw_get(
        server, "SELECT 1", basic=None, headers={"X-ClickHouse-User": USER, "X-ClickHouse-Key": PASSWORD}
    )
    assert (good_key.status, good_key.read()) == (200, b"1\n")
    assert raw_get(server, "SELECT 1", basic=None, user=USER, password=PASSWORD).status == 200

    assert PASSWORD not in json.dumps(server.requests())
    assert PASSWORD not in Path(server.log_path).read_text()
