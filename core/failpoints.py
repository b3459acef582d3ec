"""Failpoints for crash and negative-control tests, set with ``CHUTE_FAILPOINTS``.

``CHUTE_FAILPOINTS="kill_at=insert_acked:3,marker=/tmp/fp.log"``:
- ``kill_at=STEP:N``: SIGKILL this process the N-th time it reaches the named STEP (default
  N=1). Several may be joined with ``+`` (``kill_at=purge_intent:1+archive_moved:2``). Before
  dying it appends ``STEP N pid`` to the ``marker`` file (fsynced), so a test can prove the
  kill landed where it meant to, not wherever a timer happened to be.
- ``kill_any=P``: at every named step, SIGKILL with probability P (random timing on top).
- ``kill_after_insert=P``: the old spelling of ``kill_any`` limited to ``insert_acked``.
- ``no_dedup``: send inserts without tokens and with deduplication disabled. Exists only so
  a test can show that its duplicate check catches a broken system. Never use it in production.
- ``pause_at=STEP:N``, ``gate=PATH``: the N-th time STEP is reached, create ``PATH.reached`` and
  wait (up to 120 s) until PATH exists, so a test can break something at exactly that moment
  (drop a table, stop the server) and then let the process go on. In-process tests set these
  with ``monkeypatch.setitem(failpoints._spec, ...)``.
- ``seed=N``: seed for the probabilities.
- ``group_reorder``: replay an unacknowledged group in reverse order (so under another token).
  The negative control of tests/test_groups.py; never use it in production.
- ``rendezvous=DIR:N``: after the duplicate checks and before its first insert, a load waits
  (up to 60 s) until N processes have reached that point (files in DIR), so a test can make
  two hosts load the same content at the same moment (tests/test_fleet_daemons.py).

Steps (``STEPS``) are the protocol's and the actions' worst moments; ``step(name)`` marks
one. (A full disk is tested for real, on a tmpfs: tests/test_resources.py.) Unset (the
default), every failpoint is off and a step costs one dict lookup.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

# The named steps, in the order they happen. Keep in sync with the step() calls.
STEPS = (
    "batch_intent",    # loader: intent for batch i written, insert not yet sent
    "insert_acked",    # loader: ClickHouse acknowledged batch i, the ledger has not
    "batch_done",      # loader: the ledger recorded the ack
    "group_intent",    # groups: the group's intent written, its insert not yet sent
    "group_replay",    # groups: an unacknowledged group rebuilt for its replay, the insert not yet sent
    "group_inserted",  # groups: ClickHouse acknowledged the group's insert (or its replay), the ledger has not
    "group_done",      # groups: the ledger recorded the group's ack, members not yet verified
    "group_verified",  # groups: the members' rows counted, none yet `loaded`
    "loaded",          # loader: the version is `loaded`; archive/delete not yet done
    "archive_intent",  # after-load move/delete: intent written, file not yet moved
    "archive_moved",   # after-load move/delete: file moved or deleted, ledger not yet told
    "quarantine_intent",  # loader's quarantine: intent written, bad file not yet moved
    "quarantine_moved",   # loader's quarantine: file moved to _quarantine/, ledger not yet told
    "purge_intent",    # purge: intent written, rows not yet deleted
    "purge_deleted",   # purge: rows deleted, file and ledger not yet done
    "retry_intent",    # retry: intent written, quarantined file not yet moved back
    "retry_moved",     # retry: file moved back, ledger not yet requeued
)

_spec: dict[str, str] = {}
for part in filter(None, (os.environ.get("CHUTE_FAILPOINTS") or "").split(",")):
    key, _, value = part.partition("=")
    _spec[key.strip()] = value.strip() or "1"

_rng = random.Random(int(_spec.get("seed", "0")) or None)
_hits: dict[str, int] = {}
_lock = threading.Lock()


def _targets(key: str) -> dict[str, int]:
    out = {}
    for item in filter(None, _spec.get(key, "").split("+")):
        name, _, nth = item.partition(":")
        out[name] = int(nth or "1")
    return out


_kill_at = _targets("kill_at")


def enabled(name: str) -> bool:
    return name in _spec


def active() -> bool:
    return bool(_spec)


def _die(name: str, nth: int) -> None:
    marker = _spec.get("marker")
    if marker:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, f"{name} {nth} {os.getpid()}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def step(name: str) -> None:
    """The process reached step ``name``: die here if a failpoint says so."""
    if not _spec:
        return
    with _lock:
        nth = _hits[name] = _hits.get(name, 0) + 1
        p = _spec.get("kill_any")
        if name == "insert_acked" and p is None:
            p = _spec.get("kill_after_insert")
        if _kill_at.get(name) == nth or (p is not None and _rng.random() < float(p)):
            _die(name, nth)
    if _targets("pause_at").get(name) == nth:
        _pause(Path(_spec["gate"]))


def _pause(gate: Path) -> None:
    """Wait (outside the lock: other steps go on) until the test opens ``gate``."""
    Path(f"{gate}.reached").touch()
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def rendezvous(name: str) -> None:
    spec = _spec.get(name)
    if spec is None:
        return
    folder, _, count = spec.rpartition(":")
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(Path(folder).iterdir())) < int(count) and time.monotonic() < deadline:
        time.sleep(0.01)
