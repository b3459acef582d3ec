"""Failpoints for crash and negative-control tests, set with ``CHUTE_FAILPOINTS``.

``CHUTE_FAILPOINTS="kill_after_insert=0.3,no_dedup"``:
- ``kill_after_insert=P``: with probability P, SIGKILL this process right after ClickHouse
  acknowledged an insert and before the ledger records it (the protocol's worst moment).
- ``no_dedup``: send inserts without tokens and with deduplication disabled. Exists only so
  a test can show that its duplicate check catches a broken system. Never use it in production.
- ``seed=N``: seed for the probabilities.
- ``rendezvous=DIR:N``: after the duplicate checks and before its first insert, a load waits
  (up to 60 s) until N processes have reached that point (files in DIR), so a test can make
  two hosts load the same content at the same moment (tests/test_fleet_daemons.py).

Unset (the default) every failpoint is off and costs one dict lookup.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

_spec: dict[str, str] = {}
for part in filter(None, (os.environ.get("CHUTE_FAILPOINTS") or "").split(",")):
    key, _, value = part.partition("=")
    _spec[key.strip()] = value.strip() or "1"

_rng = random.Random(int(_spec.get("seed", "0")) or None)


def enabled(name: str) -> bool:
    return name in _spec


def maybe_kill(name: str) -> None:
    p = _spec.get(name)
    if p is not None and _rng.random() < float(p):
        os.kill(os.getpid(), signal.SIGKILL)


def rendezvous(name: str) -> None:
    spec = _spec.get(name)
    if spec is None:
        return
    folder, _, count = spec.rpartition(":")
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(Path(folder).iterdir())) < int(count) and time.monotonic() < deadline:
        time.sleep(0.01)
