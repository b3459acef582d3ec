"""Issue 13: `chute --help` lists the subcommands, `chute config` takes engine flags, `config --check`
reports every problem, and JSON log lines carry the file's fields."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from chute.core import cli, logsetup
from tests.conftest import run_chute
from tests.test_engine import csv_bytes, make_rows

# No CHUTE_* from the caller's shell, no default config file of theirs (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("clean_env")


def test_help_lists_every_subcommand_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    listed = dict(re.findall(r"^  ([a-z]+) +(\S.*)$", out[out.index("subcommands"):], re.M))
    assert set(cli.SUBCOMMANDS) <= set(listed), out
    assert all(len(listed[name]) > 10 for name in cli.SUBCOMMANDS)


def test_config_accepts_every_engine_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = cli.main(["config", "--batch-rows", "5000", "--workers", "3", "--settle-seconds", "0.5",
                     "--after-load", "archive", "--require-approval", "--metrics-addr", "9464",
                     "--cluster", "c1", "--notify", "json://127.0.0.1:1/a", "--notify", "ntfy://topic",
                     "--state-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    for line in ("batch_rows = 5000  # flag", "workers = 3  # flag", "settle_seconds = 0.5  # flag",
                 'after_load = "archive"  # flag', "require_approval = true  # flag", 'cluster = "c1"  # flag',
                 'notify = ["json://127.0.0.1:1/a", "ntfy://topic"]  # flag'):
        assert line in out, out


def test_config_check_reports_every_problem_of_a_route_and_a_source(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[routes]]\nglob = "a/*"\ntable = "t"\ndrift = "sideways"\ncolour = "red"\n'
                    '[[sources]]\npath = "/x"\nbackfill = "sometimes"\ninclude = 3\n'
                    'gc_at = "25:00"\n')
    code = cli.main(["config", "--check", str(path)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    lines = {int(re.search(r"line (\d+)", ln).group(1)) for ln in err}  # type: ignore[union-attr]
    assert {4, 5, 8, 9} <= lines, err
    assert any("drift" in ln for ln in err) and any("colour" in ln for ln in err)
    assert any("backfill" in ln for ln in err) and any("include" in ln for ln in err)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]


def test_json_log_lines_carry_file_fields(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_bytes(csv_bytes(make_rows(25)))
    (data / "bad.csv").write_bytes(b"")  # empty: quarantined as bad input
    proc = run_chute("--no-ui", "--once", str(data), "--state-dir", str(tmp_path / "state"),
                     "--clickhouse", f"chdb://{tmp_path / 'ch'}", "--settle-seconds", "0.1",
                     "--log-format", "json")
    lines = _json_lines(proc.stderr)
    loaded = [ln for ln in lines if ln.get("event") == "loaded"]
    assert loaded, proc.stderr
    ln = loaded[0]
    assert ln["path"] == "orders.csv" and ln["table"] == "orders" and ln["rows"] == 25
    assert isinstance(ln["file_id"], int) and "version" in ln and ln["duration_s"] >= 0
    bad = [ln for ln in lines if ln.get("path") == "bad.csv" and ln.get("event")]
    assert bad and bad[0]["error_kind"] and bad[0]["duration_s"] >= 0, proc.stderr


def test_warnings_keep_their_exception_and_debug_shows_the_traceback() -> None:
    log = logging.getLogger("chute.test")

    def emit(fmt: str, level: str) -> str:
        stream = io.StringIO()
        logsetup.configure(fmt, level, stream)
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            log.warning("could not write", exc_info=True, extra={"path": "a.csv"})
        return stream.getvalue()

    try:
        line = json.loads(emit("json", "info"))
        assert line["error"].startswith("OSError") and line["path"] == "a.csv" and "traceback" not in line
        assert "Traceback" in json.loads(emit("json", "debug"))["traceback"]
        assert "Traceback" not in emit("text", "info") and "No space left" in emit("text", "info")
        assert "Traceback (most recent call last)" in emit("text", "debug")
    finally:
        logging.getLogger().handlers[:] = []
        logging.getLogger().setLevel(logging.WARNING)
