"""One configuration: TOML file < CHUTE_* environment < flags; `chute config [--check]`; `chute events`."""

from __future__ import annotations

import dataclasses
import getpass
import json
import re
import tomllib
from datetime import datetime
from pathlib import Path

import pytest

from chute.core import cli, config
from chute.core.config import Config, ConfigError
from tests.conftest import ROOT, run_chute, state_of, wait_for
from tests.test_engine import csv_bytes, make_rows

OPTIONS = [f.name for f in dataclasses.fields(Config) if f.name not in config.LISTS]


# No CHUTE_* from the caller's shell, no default config file of theirs (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("clean_env")


def write(tmp_path: Path, text: str, name: str = "chute.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- every option: an environment variable, a README row, a line in the example file ---------


def test_every_option_has_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(config._ENV.values()) == set(OPTIONS)
    samples = {"int": "7", "float": "0.5", "bool": "true", "str": "x", "Path": "/p", "Path | None": "/p"}
    for f in dataclasses.fields(Config):
        if f.name in config.LISTS:
            continue
        value = samples.get(str(f.type))
        if value is None:  # a kind this test has no sample for: its variable exists (checked above)
            continue
        if f.name == "clickhouse_url":
            value = "http://ch.example:8123"
        monkeypatch.setenv(f"CHUTE_{f.name.upper()}", value)
        try:
            cfg, sources = config.load_with_sources(None, {})
        except ConfigError as exc:
            assert exc.key == f.name  # range checks may refuse the sample: it still went through the env
        else:
            assert sources[f.name] == f"env CHUTE_{f.name.upper()}"
            assert getattr(cfg, f.name) == config._coerce(f.name, value)
        monkeypatch.delenv(f"CHUTE_{f.name.upper()}")


def test_every_option_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration"):]
    documented = set(re.findall(r"^\| `([a-z_]+)`", table, re.M)) | set(re.findall(r"/ `([a-z_]+)`", table))
    assert set(OPTIONS) <= documented, sorted(set(OPTIONS) - documented)
    example = (ROOT / "deploy" / "chute.toml").read_text()
    assert all(re.search(rf"^#? ?{name} = ", example, re.M) for name in OPTIONS), "deploy/chute.toml lists every key"
    assert config.check_file(ROOT / "deploy" / "chute.toml") == []


# -- precedence and error messages ---------------------------------------------------------


def test_precedence_defaults_file_env_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'metrics_addr = "127.0.0.1:9000"\nalert_oldest_waiting_seconds = 120\n'
                           'cluster = "from_file"\nworkers = 3\n')
    monkeypatch.setenv("CHUTE_METRICS_ADDR", "127.0.0.1:9100")
    monkeypatch.setenv("CHUTE_CLUSTER", "from_env")
    cfg, sources = config.load_with_sources(path, {"cluster": "from_flag", "workers": None})
    assert cfg.alert_oldest_waiting_seconds == 120.0 and sources["alert_oldest_waiting_seconds"] == f"file {path}"
    assert cfg.workers == 3  # a flag not given (None) does not override
    assert cfg.metrics_addr == "127.0.0.1:9100" and sources["metrics_addr"] == "env CHUTE_METRICS_ADDR"
    assert cfg.cluster == "from_flag" and sources["cluster"] == "flag"
    assert cfg.alert_error_rate == 0.05 and "alert_error_rate" not in sources  # default


def test_the_default_file_is_read_when_present(tmp_path: Path) -> None:
    default = config.default_config_file()
    assert str(default).startswith(str(tmp_path / "xdg"))
    default.parent.mkdir(parents=True)
    default.write_text('database = "from_default_file"\n')
    assert config.load(None, {}).database == "from_default_file"


def test_file_errors_name_line_and_key(tmp_path: Path) -> None:
    cases = {
        'database = "x"\nbatch_rowz = 5\n': (2, "batch_rowz", "did you mean 'batch_rows'"),
        'database = "x"\n\nworkers = "2"\n': (3, "workers", "not a whole number"),
        "require_approval = 1\n": (1, "require_approval", "not true or false"),
        'database = "x"\nafter_load = "shred"\n': (2, "after_load", "keep, archive or delete"),
        'metrics_addr = "localhost:http"\n': (1, "metrics_addr", "HOST:PORT"),
        "alert_error_rate = 5\n": (1, "alert_error_rate", "(0, 1]"),
        '[[routes]]\nglob = "a/*"\ntable = "a"\n[[routes]]\ntable = "b"\ncolour = "red"\n': (6, "colour", "entry 2"),
        "[extra]\nname = 1\n": (1, "extra", "unknown key"),
        "[database]\nname = 1\n": (1, "database", "is not a string"),
    }
    for text, (line, key, words) in cases.items():
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as info:
            config.load(path, {})
        assert info.value.line == line and info.value.key == key, (text, info.value)
        assert f"config file {path}, line {line}: " in str(info.value) and words in str(info.value)


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'database = "x"\nworkers = [1,\nbatch_rows = 2\n')
    problems = config.check_file(path)
    assert len(problems) == 1 and problems[0].line == 3 and "TOML syntax error" in str(problems[0])


def test_environment_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUTE_WORKERS", "two")
    with pytest.raises(ConfigError, match="environment CHUTE_WORKERS: workers: 'two' is not a whole number"):
        config.load(None, {})
    monkeypatch.setenv("CHUTE_WORKERS", "0")
    with pytest.raises(ConfigError, match=r"workers must be at least 1 \(CHUTE_WORKERS\)"):
        config.load(None, {})
    monkeypatch.delenv("CHUTE_WORKERS")
    monkeypatch.setenv("CHUTE_REQUIRE_APPROVAL", "maybe")
    with pytest.raises(ConfigError, match="CHUTE_REQUIRE_APPROVAL"):
        config.load(None, {})
    for word, expect in (("yes", True), ("0", False), ("OFF", False), ("on", True)):
        monkeypatch.setenv("CHUTE_REQUIRE_APPROVAL", word)
        assert config.load(None, {}).require_approval is expect


# -- `chute config` and `chute config --check` ---------------------------------------------


def test_config_check_reports_every_problem_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, 'database = "x"\nbatch_rowz = 5\nworkers = "2"\nafter_load = "shred"\n\n'
                           '[[routes]]\nglob = "a/*"\ntable = "t"\ncolour = "red"\n')
    code, out, err = run_cli(capsys, "config", "--check", str(path))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert [re.search(r"line (\d+)", ln).group(1) for ln in lines] == ["2", "3", "4", "9"]  # type: ignore[union-attr]
    assert "unknown key 'batch_rowz' (did you mean 'batch_rows'?)" in lines[0]
    assert "after_load must be keep, archive or delete" in lines[2]
    assert "[[routes]] entry 1: unknown key 'colour'" in lines[3]

    good = write(tmp_path, 'database = "x"\n', "good.toml")
    assert run_cli(capsys, "config", "--check", str(good)) == (0, f"{good}: ok\n", "")
    assert run_cli(capsys, "config", "--config", str(good), "--check")[0] == 0  # --check alone: the --config file
    code, _, err = run_cli(capsys, "config", "--check")
    assert code == 2 and "no configuration file to check" in err
    code, _, err = run_cli(capsys, "config", "--check", str(tmp_path / "missing.toml"))
    assert code == 2 and "does not exist" in err


def test_config_prints_the_effective_configuration_as_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'batch_rows = 5000\nclickhouse_url = "https://ingest@ch.example:8443"\n'
                           '[[routes]]\nglob = "exports/*.csv"\ntable = "orders"\n')
    monkeypatch.setenv("CHUTE_WORKERS", "4")
    monkeypatch.setenv("CHUTE_CLICKHOUSE_PASSWORD", "hunter2-secret")
    code, out, err = run_cli(capsys, "config", "--config", str(path), "--database", "from_flag",
                             "--state-dir", str(tmp_path / "state"))
    assert code == 0, err
    assert "hunter2" not in out and "# password: set in CHUTE_CLICKHOUSE_PASSWORD (not shown)" in out
    assert f"batch_rows = 5000  # file {path}" in out
    assert "workers = 4  # env CHUTE_WORKERS" in out
    assert 'database = "from_flag"  # flag' in out
    parsed = tomllib.loads(out)
    assert parsed["routes"] == [{"glob": "exports/*.csv", "table": "orders"}]
    # What it prints is a configuration file that gives the same configuration back.
    again = write(tmp_path, out, "again.toml")
    monkeypatch.delenv("CHUTE_WORKERS")
    assert config.load(again, {}) == config.load(path, {"workers": 4, "database": "from_flag",
                                                        "state_dir": str(tmp_path / "state"),
                                                        "data_dir": str(Path("data").resolve())})
    assert config.check_file(again) == []


def test_config_output_never_shows_a_url_password(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = Config(clickhouse_url="http://u:topsecret@h:8123")  # refused by validation, masked anyway
    assert "topsecret" not in config.dump(cfg) and "u:***@h" in config.dump(cfg)


# -- `chute events`: who did what to which file, when, why -----------------------------------


def test_events_tell_who_did_what_when_and_why(engine_factory) -> None:
    engine = engine_factory(require_approval=True)
    (engine.cfg.data_dir / "orders.csv").write_bytes(csv_bytes(make_rows(7)))
    wait_for(lambda: state_of(engine, "orders.csv") == "held", what="held for approval")
    state = str(engine.cfg.state_dir)
    proc = run_chute("approve", "orders.csv", "--state-dir", state)  # through the engine's command channel
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: state_of(engine, "orders.csv") == "loaded", what="loaded after approval")

    proc = run_chute("events", "--json", "--state-dir", state)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    mine = [e for e in events if e["path"] == "orders.csv"]
    changes = [(e["actor"], e["from_state"], e["to_state"]) for e in mine if e["to_state"]]
    user = f"cli:{getpass.getuser()}"  # the OS account, also when $USER is unset (issue 10)
    assert changes[0] == ("watcher", None, "seen")
    assert ("engine", "loading", "held") in changes
    assert (user, "held", "queued") in changes  # who approved it
    assert changes[-1] == ("engine", "loading", "loaded")
    held = next(e for e in mine if e["to_state"] == "held")
    assert "approval" in held["detail"]  # why
    assert mine[-1]["detail"] == "7 rows into orders"
    assert all(e["ts"] <= f["ts"] for e, f in zip(events, events[1:], strict=False))  # oldest first
    assert datetime.fromisoformat(mine[-1]["time"]).timestamp() == pytest.approx(mine[-1]["ts"], abs=0.001)
    assert any(e["action"] == "approve" or e.get("detail") == "approved" for e in mine)

    text = run_chute("events", "--since", "1h", "--path", "orders.csv", "--state-dir", state).stdout.splitlines()
    assert len(text) == len(mine)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  engine\s+loading -> loaded\s+orders.csv  7 rows into orders",
                    text[-1]), text[-1]
    assert any(f"{user}" in ln and "held -> queued" in ln and "approved" in ln for ln in text)
    assert run_chute("events", "--since", "2099-01-01T00:00:00", "--state-dir", state).stdout == ""
    bad = run_chute("events", "--since", "yesterday", "--state-dir", state)
    assert bad.returncode == 2 and "give a duration" in bad.stderr and "Traceback" not in bad.stderr


def test_config_says_why_a_files_own_batch_size_is_off(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's batch_rows turns memory_batch_rows and stream_batch_rows off (0): `chute config`
    said `stream_batch_rows = 0  # default`, whose default is 500000 (seen failing)."""
    monkeypatch.setenv("CHUTE_BATCH_ROWS", "125000")
    path = write(tmp_path, "stream_batch_rows = 400000\n")
    code, out, err = run_cli(capsys, "config", "--config", str(path), "--state-dir", str(tmp_path / "state"))
    assert code == 0, err
    assert "memory_batch_rows = 0  # off: batch_rows is set" in out
    assert f"stream_batch_rows = 400000  # file {path}" in out  # (set as well: as set)
