"""Stopping a child process one way everywhere: the tests, the chaos run and the benchmarks."""

from __future__ import annotations

import signal
import subprocess


def stop(proc: subprocess.Popen, timeout: float = 60.0, sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` (SIGTERM: chute finishes or safely abandons its batch and exits 0), wait up to
    ``timeout`` seconds, then SIGKILL. Returns the exit code (negative: the signal that ended it)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
