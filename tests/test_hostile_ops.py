"""Hostile review of issues 13/15/16: bad config files, bad ports, the API given odd arguments.

Each case is a defect that once ended in a traceback-like "unexpected error" (exit 1), a check that
said "ok" for a file the engine then refused, or a call that did something other than asked.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from chute.core import api, cli
from chute.core.errors import UsageError

# No CHUTE_* from the caller's shell, no default config file of theirs (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("clean_env")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_config_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "chute.toml"
    path.write_bytes(b"workers = 2\n\xff\xfe batch_rows = 5\n")
    code, _, err = run_cli(capsys, "config", "--check", str(path))
    assert code == 2, err
    assert "unexpected" not in err and "UTF-8" in err and str(path) in err
    code, _, err = run_cli(capsys, "status", "--config", str(path), "--state-dir", str(tmp_path / "s"))
    assert code == 2 and "UTF-8" in err, err


def test_routes_with_a_glob_or_table_that_is_not_a_string_are_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "chute.toml"
    path.write_text('[[routes]]\nglob = 1\ntable = "x"\n\n[[routes]]\nglob = "*.tsv"\ntable = 5\n\n'
                    '[[sources]]\npath = "' + str(tmp_path / "more") + '"\nname = "more"\nroutes = "x"\n')
    code, _, err = run_cli(capsys, "config", "--check", str(path))
    assert code == 2, err
    assert "line 2" in err and "'glob'" in err
    assert "line 7" in err and "'table'" in err
    assert "'routes' must be a list" in err
    # The engine refuses it with the same message, not with a TypeError from the matcher.
    (tmp_path / "data").mkdir()
    code, _, err = run_cli(capsys, "--no-ui", "--once", "--config", str(path), "--state-dir", str(tmp_path / "s"),
                           str(tmp_path / "data"))
    assert code == 2 and "unexpected" not in err, err


def test_a_notify_url_apprise_refuses_fails_config_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`config --check` said ok for `slack://`, then the engine refused to start with it."""
    path = tmp_path / "chute.toml"
    path.write_text('notify = ["json://127.0.0.1:9/hook", "slack://"]\n')
    code, _, err = run_cli(capsys, "config", "--check", str(path))
    assert code == 2, err
    assert "line 1" in err and "'slack://'" in err and "json://127.0.0.1" not in err


def test_a_refused_notify_url_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """apprise's own log line came out before chute's message: two lines for one problem."""
    (tmp_path / "data").mkdir()
    code, _, err = run_cli(capsys, "--no-ui", "--once", "--state-dir", str(tmp_path / "s"), "--notify", "foo://bar",
                           "--log-format", "text", str(tmp_path / "data"))
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "foo://bar" in lines[0], err


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_serve_port_out_of_range_is_a_usage_error(port: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "serve", "--port", port, "--state-dir", str(tmp_path / "s"),
                           "--clickhouse", f"chdb://{tmp_path / 'ch'}", str(tmp_path))
    assert code == 2, err
    assert "unexpected" not in err and "--port" in err


def test_serve_on_a_taken_port_starts_no_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The engine started (and loaded files) before the bind failed."""
    pytest.importorskip("textual_serve")
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(capsys, "serve", "--port", str(port), "--state-dir", str(state),
                               "--clickhouse", f"chdb://{tmp_path / 'ch'}", str(data))
    assert code == 2 and "cannot serve on" in err and "in use" in err, err
    assert not (state / "ledger.sqlite3").exists(), "an engine ran although the console could not be served"


def test_api_load_takes_one_path_as_well_as_a_list(tmp_path: Path) -> None:
    """A str is iterable: load("data/a.csv") used to ask for "/", "t", "m", ... one character each."""
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(UsageError) as info:
        api.load(str(data / "missing.csv"), data_dir=data, state_dir=tmp_path / "s")
    assert "missing.csv" in str(info.value)


def test_api_data_dir_that_is_a_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a\n1\n")
    with pytest.raises(UsageError) as info:
        api.run_once(path, state_dir=tmp_path / "s", clickhouse_url=f"chdb://{tmp_path / 'ch'}")
    assert "not a folder" in str(info.value), info.value



@pytest.mark.parametrize("glob", ["**/*.csv", "./*.csv", "./**/*.csv"])
def test_include_globs_written_the_usual_ways_match_top_level_files(glob: str) -> None:
    """`**/*.csv` and `./*.csv` ignored every file at the top of the folder (fnmatch needs the slash)."""
    from chute.core.sources import Admission

    admit = Admission((glob,), (), "all")
    assert admit.reason("a.csv") is None
    assert admit.reason("sub/a.csv") is None
    assert admit.reason("a.json") == "matches no include glob"
    assert Admission((), ("./" + glob.removeprefix("./"),), "all").reason("a.csv") is not None


def test_an_absolute_include_glob_is_a_config_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Globs are relative to the folder: an absolute one matched nothing, so every file was ignored."""
    path = tmp_path / "chute.toml"
    path.write_text(f'include = ["{tmp_path}/data/*.csv"]\n')
    code, _, err = run_cli(capsys, "config", "--check", str(path))
    assert code == 2 and "line 1" in err and "relative" in err, err


def test_route_globs_match_top_level_files_the_same_way() -> None:
    from chute.core.routing import Route, table_for

    routes = (Route.parse({"glob": "**/*.tsv", "table": "tabs"}), Route.parse({"glob": "./x-*.csv", "table": "xs"}))
    assert table_for("a.tsv", routes) == "tabs" and table_for("d/a.tsv", routes) == "tabs"
    assert table_for("x-1.csv", routes) == "xs"


def test_a_mistyped_subcommand_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`chute stauts` said "data folder .../stauts does not exist" (it took the word for DATA_DIR)."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "stauts")
    assert code == 2 and "did you mean 'status'" in err, err
    (tmp_path / "stauts").mkdir()  # a folder of that name is a DATA_DIR after all
    assert cli._typo(["stauts"]) is None


def test_gc_without_an_engine_holds_the_state_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`chute gc` checked for an engine once, then ran VACUUM unlocked: an engine starting meanwhile
    shared the ledger with it (its writes waited on VACUUM's lock). Now none can start until gc is done;
    with an engine already running, gc prunes beside it and does not VACUUM."""
    from chute.core import gc
    from chute.core.engine import StateLock
    from chute.core.ledger import Ledger

    state, data = tmp_path / "state", tmp_path / "data"
    data.mkdir()
    state.mkdir()
    Ledger(state).close()
    seen: list[tuple[str | None, bool]] = []
    real = gc.run

    def spy(cfg, ledger, *, vacuum=False, **kw):  # type: ignore[no-untyped-def]
        seen.append((StateLock.holder(state), vacuum))
        return real(cfg, ledger, vacuum=vacuum, **kw)

    monkeypatch.setattr(gc, "run", spy)
    monkeypatch.setenv("CHUTE_LEDGER_KEEP", "1d")
    code, out, err = run_cli(capsys, "gc", "--state-dir", str(state))
    assert code == 0, err
    assert seen[0][0] is not None and seen[0][0].endswith("gc") and seen[0][1] is True
    assert StateLock.holder(state) is None  # released
    engine_lock = StateLock(state)
    engine_lock.acquire("daemon")
    try:
        code, out, err = run_cli(capsys, "gc", "--state-dir", str(state))
    finally:
        engine_lock.release()
    assert code == 0 and seen[1][1] is False and "engine running" in out, (out, err)


def test_retention_numbers_without_a_unit_are_bytes_and_units_may_be_spaced() -> None:
    """"1.5" was 1.5 *seconds* (archive gone at the next gc) while "1024" was bytes; "10 GiB" was refused."""
    from chute.core.sources import Keep

    assert Keep.parse("1.5") == Keep(None, 1) and Keep.parse("1024") == Keep(None, 1024)
    assert Keep.parse("10 GiB") == Keep(None, 10 * 2**30)
    assert Keep.parse("30 d, 2 GB") == Keep(30 * 86400, 2 * 10**9)


def test_ids_and_limits_beyond_sqlite_integers_are_usage_errors(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """An OverflowError / "datatype mismatch" (exit 1) for `--id 99999999999999999999`."""
    from chute.core.ledger import Ledger

    state = tmp_path / "state"
    state.mkdir()
    Ledger(state).close()
    huge = "9" * 25
    for argv in (["approve", "--id", huge], ["files", "--limit", huge], ["retry", "--id", "-3"]):
        code, _, err = run_cli(capsys, *argv, "--state-dir", str(state))
        assert code == 2 and "unexpected" not in err, (argv, err)
    with pytest.raises(UsageError):
        api.approve(id=10**30, state_dir=state)


def test_a_reader_that_stops_early_is_no_error(tmp_path: Path) -> None:
    """`chute events | head -1` ended in "unexpected error: BrokenPipeError"."""
    import subprocess

    from chute.core.ledger import Ledger
    from tests.conftest import chute_cmd

    state = tmp_path / "state"
    state.mkdir()
    ledger = Ledger(state)
    for i in range(5000):
        ledger.log(None, f"file-{i:05}.csv", "test", "note", "x" * 40)
    ledger.close()
    proc = subprocess.Popen(chute_cmd("events", "--state-dir", str(state)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, CHUTE_LOG_FORMAT="text"))
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and not err.strip(), err.decode()


def test_an_exporter_chute_does_not_have_is_named_not_turned_into_otlp(caplog: pytest.LogCaptureFixture) -> None:
    """OTEL_TRACES_EXPORTER=console switched OTLP on towards localhost:4318 (errors every few seconds)."""
    from chute.core import tracing

    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "console,otlp"})
    tracing.uninstall()
    try:
        with caplog.at_level("WARNING", logger="chute.tracing"):
            assert tracing.configure({"OTEL_TRACES_EXPORTER": "zipkin"}) is False
        assert "zipkin ignored" in caplog.text
    finally:
        tracing.uninstall()


@pytest.mark.parametrize("second", ["more", "more/sub"])
def test_two_sources_on_one_folder_are_a_config_problem(second: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The same folder under two names was watched twice: each file read twice, one copy a 'duplicate'."""
    path = tmp_path / "chute.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n\n[[sources]]\npath = "{tmp_path / "more"}"\nname = "a"\n\n'
                    f'[[sources]]\npath = "{tmp_path / second}"\nname = "b"\n')
    code, _, err = run_cli(capsys, "config", "--check", str(path))
    assert code == 2 and "overlap" in err and "'a'" in err and "'b'" in err, err


def test_chute_config_masks_passwords_in_notify_urls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The dump says "secrets masked" but printed mailto://bob:s3cret@... in full."""
    code, out, err = run_cli(capsys, "config", "--notify", "mailto://bob:s3cret@example.com",
                             "--notify", "json://127.0.0.1:9/hook", "--state-dir", str(tmp_path))
    assert code == 0, err
    assert "s3cret" not in out and "mailto://bob:***@example.com" in out and "json://127.0.0.1:9/hook" in out


def test_the_cli_task_judges_this_run_not_last_weeks_quarantine(tmp_path: Path) -> None:
    """load_folder_cli read every problem in the ledger's history: a run whose only problem was a held
    file failed as BadInput (do not retry) because of a file quarantined runs ago."""
    import importlib
    import sys

    from tests.conftest import ROOT

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        tasks = importlib.import_module("chute_tasks")
    finally:
        sys.path.remove(str(ROOT / "examples"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.csv").write_bytes(b"id\n1\n")
    (data / "empty.csv").write_bytes(b"")
    env = {"CHUTE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'engine'}", "CHUTE_STATE_DIR": str(tmp_path / "state"),
           "CHUTE_SETTLE_SECONDS": "0"}
    chute = (sys.executable, "-m", "chute.core")
    with pytest.raises(tasks.BadInput):
        tasks.load_folder_cli(data, chute=chute, env=env)
    (data / "new.csv").write_bytes(b"id\n2\n")
    with pytest.raises(tasks.Held) as err:
        tasks.load_folder_cli(data, chute=chute, env=dict(env, CHUTE_REQUIRE_APPROVAL="true"))
    assert [f.path for f in err.value.files] == ["new.csv"]


def test_help_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The subcommand list of `chute --help` (up to 104 characters) and --state's choices wrapped at 80."""
    monkeypatch.setenv("COLUMNS", "80")
    texts = {"chute": cli.build_parser().format_help()}
    texts.update({name: cli.build_sub_parser(name).format_help() for name in cli.SUBCOMMANDS})
    wide = [(name, line) for name, text in texts.items() for line in text.splitlines() if len(line) > 80]
    assert not wide, wide


def _silent_server() -> tuple[socket.socket, int]:
    """A "ClickHouse" that accepts connections and never answers."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(50)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


def test_a_clickhouse_that_never_answers_is_reported_in_seconds(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The engine's start and `chute fleet` waited out the insert timeout (300 s) on such a server."""
    import time

    server, port = _silent_server()
    (tmp_path / "data").mkdir()
    try:
        t0 = time.monotonic()
        with pytest.raises(UsageError, match="no answer"):
            api.run_once(tmp_path / "data", clickhouse_url=f"http://127.0.0.1:{port}", state_dir=tmp_path / "s")
        t1 = time.monotonic()
        code, _, err = run_cli(capsys, "fleet", "--clickhouse", f"http://127.0.0.1:{port}",
                               "--state-dir", str(tmp_path / "s"))
        t2 = time.monotonic()
    finally:
        server.close()
    assert code == 2 and "no answer" in err, err
    assert t1 - t0 < 60 and t2 - t1 < 60, (t1 - t0, t2 - t1)
