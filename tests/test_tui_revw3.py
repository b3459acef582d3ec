"""Hostile review of the keys6 merge (issue 10), round 7. Each test was seen failing on c69711c."""

from __future__ import annotations

import dataclasses

import pytest
from textual import events
from textual.widgets import ContentSwitcher, Input, TabbedContent

from chute.tui.app import ChuteApp
from chute.tui.demo import wait_ready
from chute.tui.screens.main import MainScreen
from chute.tui.widgets.ledger_table import LedgerTable
from tests.test_tui_warm import SMALL
from tests.tui_helpers import until


@pytest.mark.parametrize("pane", ["2", "3", "4"])
async def test_slash_from_another_pane_puts_the_keys_typed_next_in_the_filter(
        demo: ChuteApp, pane: str) -> None:
    """`/` shows the Files pane and focuses the filter box; the pane switch's TabActivated,
    arriving after it, focused the Files table again: what was typed next ran as commands
    (`enter` opened a file's details; `state:held` would approve, purge, quit)."""
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot)
        await pilot.press(pane)
        await pilot.pause()
        await pilot.press("slash")
        await pilot.pause()
        await pilot.press("x", "enter")
        await pilot.pause()
        box = demo.main.query_one("#filter", Input)
        assert isinstance(demo.screen, MainScreen), f"a key typed in the filter ran as a command: {demo.screen}"
        assert box.value == "x", f"the filter box got {box.value!r} of 'x'"
        assert demo.main.query_one(TabbedContent).active == "files"



async def test_a_burst_of_pane_switches_ends_on_the_pane_of_the_last_key(demo: ChuteApp) -> None:
    """Keys that arrive faster than the console handles them (key repeat, a paste, a laggy link)
    are queued: each pane switch focuses the pane's table, and Textual's TabPane tells its
    TabbedContent about that focus by a message handled later, which made the pane of that old
    focus active again. Seen in tmux: 240 switches (1 3 4 2 ...) then `3` ended on Quarantine."""
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot)
        for key in ["1", "3", "4", "2"] * 20 + ["3"]:
            demo.post_message(events.Key(key, key))  # queued at once, as a burst read from the terminal
        await until(pilot, lambda: not demo.message_queue_size, what="the keys handled")
        await pilot.pause(0.3)
        main = demo.main
        assert main.query_one(TabbedContent).active == "errors"
        assert main.query_one(ContentSwitcher).current == "errors"
        assert main.focused is main.query_one("#errors-table")


async def test_a_pane_left_before_the_first_view_shows_its_selected_row_when_visited(
        demo: ChuteApp) -> None:
    """A key typed as the console opens (`3`) hides the Files pane; its table, resized to nothing,
    scrolled its cursor "into view" of no lines (scroll_y 1, row 0 hidden under the header). On
    the visit, the first rows drawn came from before the scroll, and a `j` then showed a row twice
    and the first row not at all: the selected row off-screen."""
    async with demo.run_test(size=(120, 36)) as pilot:
        await pilot.press("3")
        await wait_ready(pilot)
        await pilot.press("1")
        await pilot.pause()
        table = demo.main.query_one("#files-table", LedgerTable)
        assert table.cursor_row == 0 and table.scroll_y == 0, f"row 0 selected, scrolled to {table.scroll_y}"
        await pilot.press("j", "j")
        await pilot.pause()
        assert table.scroll_y == 0 and table.cursor_row == 2


async def test_a_row_changed_while_its_pane_is_hidden_is_drawn_fresh_on_the_visit(
        demo: ChuteApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hidden table keeps its size (Textual reports 0 while hidden): a changed cell on its rows
    on show was not marked for repaint, and the visit no longer restyles the table (it keeps its
    focused looks), so the Errors pane showed the old error beside a selection line with the new."""
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot)
        monkeypatch.setattr(demo, "poll", lambda: None)  # the demo's own refreshes would put the row back
        await pilot.pause(0.3)
        view = demo.view
        assert view is not None and view.errors
        errors = list(view.errors)
        errors[0] = dataclasses.replace(errors[0], last_error="ZZZ new error", reason="ZZZ new error")
        with demo.batch_update():
            demo.main.show(dataclasses.replace(view, errors=errors))
        await pilot.press("3")
        await pilot.pause()
        table = demo.main.query_one("#errors-table", LedgerTable)
        assert table.cursor_row == 0
        shown = demo.screen._compositor.render_update(full=True)
        line = table.region.y + table.header_height  # the first row, on screen
        text = "".join(segment.text for segment in shown.strips[line]) if hasattr(shown, "strips") else None
        assert text is not None and "ZZZ" in text, f"the Errors pane shows {text!r}"
