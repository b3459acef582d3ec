"""stderr_aside where the log cannot be opened (review, round 9): nothing moves, and the copy of
the terminal's descriptor it took first is not left open (seen failing: one descriptor leaked per
console run whose <state dir>/stderr.log could not be opened)."""

from __future__ import annotations

import os
from pathlib import Path

from chute.tui.stderr_aside import stderr_aside


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_log_that_cannot_be_opened_moves_nothing_and_leaks_nothing(tmp_path: Path) -> None:
    where = tmp_path / "stderr.log"
    where.mkdir()  # (a directory: the open fails, as it would on a read-only state dir)
    before = _open_fds()
    target = os.readlink("/proc/self/fd/2")
    with stderr_aside(where) as moved:
        assert moved is None
        assert os.readlink("/proc/self/fd/2") == target
    assert _open_fds() == before


def test_an_error_in_the_block_is_not_chained_to_the_failed_open(tmp_path: Path) -> None:
    """A crash of the console where the log could not be opened: its traceback is its own, not
    'During handling of the above exception (IsADirectoryError) ...'."""
    where = tmp_path / "stderr.log"
    where.mkdir()
    try:
        with stderr_aside(where):
            raise RuntimeError("the console crashed")
    except RuntimeError as exc:
        assert exc.__context__ is None, repr(exc.__context__)


def test_a_console_that_crashed_exits_non_zero(tmp_path: Path, chdb_path: Path, monkeypatch) -> None:
    """Textual prints the crash's traceback once the terminal is restored, and its run() returns
    None: `chute DATA` exited 0 after it (seen failing), as if the operator had quit."""
    from textual.app import App

    from chute.tui import app
    from tests.conftest import make_config

    def boom(self) -> None:
        raise RuntimeError("the console crashed")

    real_run = App.run
    monkeypatch.setattr(app.ChuteApp, "on_mount", boom, raising=False)
    monkeypatch.setattr(app.ChuteApp, "run", lambda self: real_run(self, headless=True))
    assert app.run_console(make_config(tmp_path, chdb_path)) == 1
