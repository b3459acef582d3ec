"""Issue 10: the console's garbage collections. With Python's default (a young collection every
700 objects), the bench's 108 keys made 200 collections, 18 of older generations, and a full one
(18 ms) landed on a pane switch. After the first view the console collects the young generation
every 10,000 objects (tui/app.py, GC_THRESHOLDS), and gives the process its own setting back on
exit. Seen failing on main: 60 keys made dozens of collections, some of older generations."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from chute.tui.demo import demo_app, wait_ready
from tests.test_tui_keys import settled


async def test_keys_cause_few_collections_and_none_of_older_generations(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = gc.get_threshold()
    app = demo_app(tmp_path)
    started: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_ready(pilot)
        await settled(pilot)
        gc.callbacks.append(record)
        try:
            for _ in range(20):
                await pilot.press("j", "k")
            for key in "23412341":
                await pilot.press(key)
        finally:
            gc.callbacks.remove(record)
    assert len(started) <= 12 and not [g for g in started if g > 0], \
        f"{len(started)} collections during 48 keys, generations {sorted(set(started))}"
    assert gc.get_threshold() == before, "the process's own collection thresholds are given back"
