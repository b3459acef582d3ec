"""Issue 10: a switch to the Rates pane (which has nothing to focus) is drawn in one paint. Before,
the table left kept its focus until the layout hid it, lost it after the switch's paint, and the
table and the key bar painted a second time (seen failing on main)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.screen import Screen

from chute.tui.demo import demo_app, wait_ready
from tests.test_tui_keys import settled


async def test_a_switch_to_the_rates_pane_paints_the_key_bar_and_the_table_left_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    paints: list[set[str]] = []
    paint = Screen._on_timer_update

    def recorded(screen: Screen[Any]) -> None:
        paints.append({type(w).__name__ for w in screen._dirty_widgets})
        paint(screen)

    monkeypatch.setattr(Screen, "_on_timer_update", recorded)  # before the screen's timer binds it
    app = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_ready(pilot, refreshes=2)
        for key in ("2", "1", "2", "1", "2"):  # the first visit, then later ones
            await settled(pilot)
            await pilot.press("1" if key == "2" else "2")
            await settled(pilot)
            paints.clear()
            await pilot.press(key)
            await settled(pilot)
            if key != "2":
                continue
            assert app.focused is None
            later = [p & {"KeyBar", "FilesTable"} for p in paints[1:]]
            assert not any(later), f"painted again after the switch: {later}"
