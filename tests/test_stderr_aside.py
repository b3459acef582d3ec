"""While the console owns the terminal, writes to file descriptor 2 (polars' Rust panics, chDB's
and Arrow's warnings: they bypass logging) go to <state dir>/stderr.log, not over the screen; the
console itself draws on a copy of the terminal's descriptor, and descriptor 2 comes back after."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chute.tui.stderr_aside import stderr_aside


@contextmanager
def _terminal(capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Descriptor 2 on a pipe standing in for the terminal (pytest's own capture of it suspended,
    as it moves descriptor 2 itself between phases); its reading end."""
    with capfd.disabled(), _on_pipe(monkeypatch) as r:
        yield r


@contextmanager
def _on_pipe(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    r, w = os.pipe()
    saved = os.dup(2)
    os.dup2(w, 2)
    os.close(w)
    monkeypatch.setattr(sys, "__stderr__", os.fdopen(2, "w", closefd=False))
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    try:
        yield r
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(r)


def _drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""


def test_native_writes_go_aside_and_the_console_still_draws(capfd: pytest.CaptureFixture, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "stderr.log"
    with _terminal(capfd, monkeypatch) as terminal:
        _aside(log, terminal)


def _aside(log: Path, terminal: int) -> None:
    with stderr_aside(log) as where:
        assert where == log
        os.write(2, b"thread panicked at field.rs\n")  # what a native library does
        sys.__stderr__.write("drawn by the console\n")
        sys.__stderr__.flush()
    os.write(2, b"after the console\n")
    assert log.read_bytes() == b"thread panicked at field.rs\n"
    assert _drain(terminal) == b"drawn by the console\nafter the console\n"
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_the_console_run_moves_native_writes_aside(capfd: pytest.CaptureFixture, tmp_path: Path, chdb_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """run_console (the `chute DATA` path) wraps the app's run: a native write while it runs does
    not reach the terminal (negative control: the same write before it does)."""
    from chute.tui import app
    from tests.conftest import make_config

    def run(self) -> int:
        os.write(2, b"native noise while the console runs\n")
        return 0

    monkeypatch.setattr(app.ChuteApp, "run", run)
    cfg = make_config(tmp_path, chdb_path)
    with _terminal(capfd, monkeypatch) as terminal:
        os.write(2, b"before\n")
        assert app.run_console(cfg) == 0
        seen = _drain(terminal)
    assert b"before\n" in seen and b"native noise" not in seen, seen
    assert b"native noise while the console runs" in (cfg.state_dir / "stderr.log").read_bytes()


def test_a_big_log_is_set_aside_when_the_next_console_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capfd: pytest.CaptureFixture) -> None:
    """stderr.log grew without end (found by the round-9 review): past KEEP_BYTES it becomes
    stderr.log.1 (one kept) when a console starts; a small one is appended to (the control)."""
    from chute.tui import stderr_aside as module

    monkeypatch.setattr(module, "KEEP_BYTES", 100)
    log = tmp_path / "stderr.log"
    log.write_bytes(b"x" * 50)
    with _terminal(capfd, monkeypatch):
        with stderr_aside(log):
            os.write(2, b"first\n")
        assert log.read_bytes() == b"x" * 50 + b"first\n"
        log.write_bytes(b"y" * 200)
        with stderr_aside(log):
            os.write(2, b"second\n")
    assert log.read_bytes() == b"second\n"
    assert (tmp_path / "stderr.log.1").read_bytes() == b"y" * 200
