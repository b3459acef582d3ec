"""Issue 10, key latency: work done ahead for the hidden panes (MainScreen's warm-up) never lands on
the keys, and a pane switch restyles no table. Each test was seen failing on main (7ffa523): the
warm-up laid out the hidden panes on timers 50 ms apart whatever the keys did (the first key typed
after the console opened took one to three panes' layout: 25-99 ms of CPU in bench.console), the
first visit of the Rates pane rendered its sparklines and texts, each switch between two table
panes restyled both tables (the one left lost its focused looks after the switch's paint, the one
shown took them again), and the key bar rendered again every set of keys it had shown before."""

from __future__ import annotations

import time
from typing import Any

import pytest
from textual.css.stylesheet import Stylesheet
from textual.widget import Widget

from chute.tui.app import ChuteApp
from chute.tui.demo import wait_ready
from chute.tui.screens.main import MainScreen
from chute.tui.widgets.ledger_table import LedgerTable
from tests.test_tui_keys import settled

SMALL = (80, 24)


async def test_keys_typed_as_the_console_opens_each_wait_behind_one_pane_at_most(
        demo: ChuteApp, monkeypatch: pytest.MonkeyPatch) -> None:
    # Keys come faster than the idle wait: only the one-pane-per-key rule lets the warm-up on.
    monkeypatch.setattr(MainScreen, "QUIET", 30.0)
    warmed: list[str] = []
    lay_out = MainScreen._lay_out

    def counted(screen: MainScreen, pane: str, passes: int) -> None:
        warmed.append(pane)
        lay_out(screen, pane, passes)

    monkeypatch.setattr(MainScreen, "_lay_out", counted)
    async with demo.run_test(size=SMALL) as pilot:
        demo.last_key = time.monotonic()  # as if a key had just been typed: the panes wait for keys
        await wait_ready(pilot)
        per_key = []
        for _ in range(6):
            before = len(warmed)
            await pilot.press("j")
            await pilot.pause(0.15)  # three of the warm-up's 50 ms timers
            per_key.append(len(warmed) - before)
        assert max(per_key) <= 1, f"panes warmed between two keys: {per_key}"
        assert not demo.main.warming, f"the warm-up must go on while keys come: {per_key}, left {demo.main._to_warm}"


async def test_every_hidden_pane_is_laid_out_with_the_first_view(demo: ChuteApp) -> None:
    """The first keys typed find nothing left to warm (on timers, they took it)."""
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot)
        assert not demo.main.warming, f"left to warm after the first view: {demo.main._to_warm}"
        assert demo.main._laid_out == {"files", "rates", "errors", "quarantine"}


async def test_the_first_visit_of_the_rates_pane_renders_no_more_lines_than_a_later_one(
        demo: ChuteApp, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    render_line = Widget.render_line

    def counted(widget: Widget, y: int) -> Any:
        lines.append(type(widget).__name__)
        return render_line(widget, y)

    monkeypatch.setattr(Widget, "render_line", counted)
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot, refreshes=2)
        visits = []
        for _ in range(2):
            await settled(pilot)
            await pilot.press("1")
            await settled(pilot)
            lines.clear()
            await pilot.press("2")
            await pilot.pause()
            visits.append([n for n in lines if n in ("Sparkline", "Static")])
        first, later = visits
        assert len(first) <= len(later), f"first visit rendered {len(first)} lines ({first}), a later one {later}"


async def test_a_switch_between_table_panes_restyles_no_table(demo: ChuteApp, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    restyled: list[str] = []
    update_nodes = Stylesheet.update_nodes

    def recorded(sheet: Stylesheet, nodes: Any, animate: bool = False) -> None:
        nodes = list(nodes)
        restyled.extend(str(n.id) for n in nodes if isinstance(n, LedgerTable))
        update_nodes(sheet, nodes, animate)

    monkeypatch.setattr(Stylesheet, "update_nodes", recorded)
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot, refreshes=2)
        for key in "3412":  # every pane once
            await pilot.press(key)
        await settled(pilot)
        restyled.clear()
        for key in "34132":
            await pilot.press(key)
            await pilot.pause()
        assert restyled == [], f"tables restyled by pane switches: {restyled}"
        # The table shown has its focused looks, and loses them to the filter box.
        await pilot.press("1")
        await pilot.pause()
        files = demo.main.query_one("#files-table", LedgerTable)
        assert demo.main.focused is files and files.has_focus
        await pilot.press("slash")
        await pilot.pause()
        assert not files.has_focus, "a table still shown must look unfocused when the filter box has the focus"


async def test_the_key_bar_draws_a_set_of_keys_shown_before_from_its_kept_lines(
        demo: ChuteApp, monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.geometry import Region

    from chute.tui.widgets.key_bar import KeyBar

    renders: list[object] = []
    render = KeyBar.render

    checking = False

    def counted(bar: KeyBar) -> Any:
        if not checking:
            renders.append(bar._items)
        return render(bar)

    monkeypatch.setattr(KeyBar, "render", counted)
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot, refreshes=2)
        bar = demo.main.query_one(KeyBar)
        for key in "23412341":
            if key == "2":
                await settled(pilot)
                renders.clear()  # the second round: every set of keys was shown before
            await pilot.press(key)
            await pilot.pause()
            whole = Region(0, 0, *bar.size)
            shown = bar.render_lines(whole)
            checking = True
            bar._styles_cache.clear()
            assert shown == Widget.render_lines(bar, whole), f"pane {key}: the bar is not what it would render"
            bar._styles_cache.clear()
            checking = False
        assert renders == [], f"the key bar rendered again sets it showed before: {renders}"
