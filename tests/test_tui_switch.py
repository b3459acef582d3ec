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


def _bulk_app(tmp_path: Path, files: int = 3000) -> Any:
    import time

    from chute.core.attach import AttachedEngine
    from chute.core.config import Config
    from chute.tui.app import ChuteApp
    from chute.tui.demo import seed_bulk

    seed_bulk(tmp_path / "state", tmp_path / "data", files, now=time.time())
    engine = AttachedEngine(Config(data_dir=tmp_path / "data", state_dir=tmp_path / "state"),
                            holder=lambda: "pid 1 daemon")
    return ChuteApp(engine, refresh_seconds=3600.0)  # one view: no refresh lands on the keys


# Every pane switch, with tables long enough to scroll, is one paint. Before, a style pass on a
# focus change set each table's scrollbar colours to the colours they had, which repainted the
# scrollbars after the switch's paint (seen failing on main); and a bar drawn is never stale.
async def test_every_pane_switch_is_one_paint_and_scrollbars_stay_current(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chute.tui.widgets.ledger_table import LedgerTable
    from chute.tui.widgets.steady_scrollbar import SteadyScrollBar

    paints: list[set[str]] = []
    paint = Screen._on_timer_update

    def recorded(screen: Screen[Any]) -> None:
        layout = {"layout"} if screen._layout_required else set()
        paints.append({type(w).__name__ for w in screen._dirty_widgets} | layout)
        paint(screen)

    monkeypatch.setattr(Screen, "_on_timer_update", recorded)
    app = _bulk_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_ready(pilot)
        for visit, key in enumerate("23412341"):
            await settled(pilot)
            paints.clear()
            await pilot.press(key)
            await settled(pilot)
            if visit < 4:
                continue  # a first visit (its selection line is drawn once more); later ones:
            drawn = [p for p in paints if p]  # a timer tick with nothing to draw is no paint
            assert len(drawn) == 1, f"pane {key}: {len(drawn)} paints: {drawn}"
        for key in ("G", "k", "g", "j", "j"):  # the bar's thumb moves
            await pilot.press(key)
            await settled(pilot)
            for table in app.main.query(LedgerTable):
                bar = table.vertical_scrollbar
                assert isinstance(bar, SteadyScrollBar)
                if table.size and bar.size and bar._painted is not None:
                    assert bar._painted == bar._look(), f"{table.id}: its scrollbar shows an old look after {key}"
