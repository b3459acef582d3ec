"""core/early.py under review rv10. A `--once` whose one big file the ledger already holds (a
cron job re-running over a loaded folder) planned and hashed the whole file again, for nothing,
and its exit waited for that plan (a 256 MB CSV: 0.8 s against 0.5 s without the early plan);
now the early plan starts only for a file the ledger has not finished."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chute.core import early as early_mod
from chute.core.engine import Engine
from tests.conftest import state_of
from tests.test_early import _csv


@pytest.fixture
def small_is_big(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(early_mod, "EARLY_MIN_BYTES", 1)


def test_a_once_over_a_loaded_file_plans_nothing_early(engine_factory: Callable[..., Engine], tmp_path: Path,
                                                       small_is_big: None) -> None:
    path = tmp_path / "data" / "events" / "a.csv"
    _csv(path)
    first = engine_factory(once=True)
    assert first.early is not None and first.early._wanted is not None  # (the control: planned early)
    assert first.wait_idle(timeout=120)
    assert state_of(first, "events/a.csv") == "loaded"
    first.stop()
    second = engine_factory(first.cfg, once=True)
    assert second.early is not None and second.early._wanted is None and second.early._job is None
    assert second.wait_idle(timeout=120)
    assert state_of(second, "events/a.csv") == "loaded"
    path.write_text(path.read_text() + "3000,late,1.5,2026-11-30 10:00:00\n")  # a new version: planned early
    second.stop()
    third = engine_factory(first.cfg, once=True)
    assert third.early is not None and third.early._wanted is not None
    assert third.wait_idle(timeout=120)
