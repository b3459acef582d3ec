"""core/memory.py: the command line makes the allocators give freed pages back (issue 12, peak RSS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from chute.core import memory

_PROBE = """
import contextlib, json, os
from chute.core.cli import main
with contextlib.suppress(SystemExit):
    main(["--version"])
import polars, pyarrow  # loaded after the command line ran, as in a real run
print(json.dumps({k: os.environ.get(k) for k in ("_RJEM_MALLOC_CONF", "MIMALLOC_PURGE_DELAY")}))
"""


def _probe(env: dict[str, str]) -> dict[str, str | None]:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# polars puts its own jemalloc defaults first and appends what it finds (the last setting wins).
def test_the_command_line_sets_the_allocators_before_polars_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k not in memory.ALLOCATOR_ENV}
    got = _probe(env)
    assert (got["_RJEM_MALLOC_CONF"] or "").endswith("," + memory.ALLOCATOR_ENV["_RJEM_MALLOC_CONF"])
    assert got["MIMALLOC_PURGE_DELAY"] == "0"


def test_an_operators_own_allocator_setting_wins() -> None:
    env = {k: v for k, v in os.environ.items() if k not in memory.ALLOCATOR_ENV}
    env.update(_RJEM_MALLOC_CONF="dirty_decay_ms:5000", MIMALLOC_PURGE_DELAY="100")
    got = _probe(env)
    assert (got["_RJEM_MALLOC_CONF"] or "").endswith(",dirty_decay_ms:5000")
    assert got["MIMALLOC_PURGE_DELAY"] == "100"


def test_polars_defaults_inherited_from_a_parent_are_not_an_operators_setting() -> None:
    """A parent that imported polars (bench.suite, an orchestrator's worker) passes polars' own
    defaults down in the environment; chute's setting still applies (seen failing: the bench's
    chute ran with 500 ms decay, csv1m peak RSS 687 MB against 553)."""
    env = {k: v for k, v in os.environ.items() if k not in memory.ALLOCATOR_ENV}
    parent = subprocess.run([sys.executable, "-c", "import os, polars; print(os.environ['_RJEM_MALLOC_CONF'])"],
                            capture_output=True, text=True, env=env, timeout=120, check=True)
    inherited = parent.stdout.strip()  # what importing polars writes (the constant follows polars)
    assert inherited == memory.POLARS_JEMALLOC_DEFAULT
    env["_RJEM_MALLOC_CONF"] = inherited
    got = _probe(env)
    assert (got["_RJEM_MALLOC_CONF"] or "").endswith("," + memory.ALLOCATOR_ENV["_RJEM_MALLOC_CONF"])


_THREADS_PROBE = """
import contextlib, os
from chute.core.cli import main
with contextlib.suppress(SystemExit):
    main(["--version"])
import numpy  # (already loaded by then)
print(len(os.listdir("/proc/self/task")))
"""


def _threads(env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", _THREADS_PROBE], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_numpy_starts_no_blas_threads_under_the_command_line() -> None:
    """OpenBLAS's pool spun ~0.12 s of CPU per process for no work (seen failing: one more thread
    than with OPENBLAS_NUM_THREADS=1)."""
    env = {k: v for k, v in os.environ.items() if k not in memory.THREAD_ENV}
    assert _threads(env) == _threads({**env, "OPENBLAS_NUM_THREADS": "1"})
    # an operator's own setting wins (and the probe sees the pool's threads)
    assert _threads({**env, "OPENBLAS_NUM_THREADS": "2"}) == _threads(env) + 1


def test_trim_and_tune_are_safe_to_call_in_any_process() -> None:
    memory.trim()
    memory.trim()  # (the C library is looked up once)
