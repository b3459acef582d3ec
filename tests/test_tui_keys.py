"""Issue 10, key latency: what a key press makes the console render, in counts (the same on a quiet
or a loaded machine), and that the render caches behind it never paint anything stale. Each
count test was seen failing on the code before (32851df): a pane switch, a jump back, a
height-only resize and a cursor move between a short and a long row re-rendered every visible
row or laid out the whole screen; a bulk mark re-rendered every cell of every visible row."""

from __future__ import annotations

import gc
from typing import Any

import pytest
import rich.console
from textual.geometry import Region
from textual.screen import Screen
from textual.widgets import DataTable

from chute.tui.app import ChuteApp
from chute.tui.demo import wait_ready
from chute.tui.widgets.files_table import FilesTable
from chute.tui.widgets.ledger_table import LedgerTable

SMALL = (80, 24)


async def settled(pilot: Any, timeout: float = 60.0) -> None:
    """Until the hidden panes' warm-up (tui/screens/main.py) has run: it renders rows on timers,
    which on a loaded machine land inside whatever a test counts next."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    await pilot.pause()
    while pilot.app.main.warming:
        if loop.time() > deadline:
            raise TimeoutError(f"hidden panes still warming after {timeout:.0f} s")
        await pilot.pause(0.02)


class Counts:
    """Calls of a few Textual/Rich methods, counted while a test runs (monkeypatched)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n: dict[str, int] = {}
        # DataTable calls _get_row_style once per row it renders anew (a miss of every cache).
        self._count(monkeypatch, DataTable, "_get_row_style", "rows")
        self._count(monkeypatch, rich.console.Console, "render_lines", "cells")  # mostly table cells
        # A layout pass of the whole screen (a scroll also goes through _refresh_layout: not counted).
        self._count(monkeypatch, Screen, "_refresh_layout", "layouts", unless="scroll")

    def _count(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str, label: str, unless: str = "") -> None:
        inner = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            if not kwargs.get(unless):
                self.n[label] = self.n.get(label, 0) + 1
            return inner(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)

    def clear(self) -> None:
        self.n.clear()

    def __getitem__(self, label: str) -> int:
        return self.n.get(label, 0)


@pytest.mark.parametrize("what, keys", [("a pane switch and back", ["2", "1", "3", "4", "1"]),
                                        ("jumps to rows shown before", ["G", "g"]),
                                        ("a height-only resize", [])])
async def test_rows_seen_before_are_not_rendered_again(demo: ChuteApp, monkeypatch: pytest.MonkeyPatch, what: str,
                                                       keys: list[str]) -> None:
    counts = Counts(monkeypatch)
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot)
        await pilot.press("G", "g", "3", "4", "1")  # every row once, and each pane once
        await pilot.pause()
        await settled(pilot)
        counts.clear()
        if keys:
            await pilot.press(*keys)
        else:
            await pilot.resize_terminal(80, 22)  # fewer rows: nothing new to show
        await pilot.pause()
        assert counts["rows"] == 0, f"{what} re-rendered {counts['rows']} rows"


async def test_cursor_moves_do_not_lay_the_screen_out(demo: ChuteApp, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = Counts(monkeypatch)
    async with demo.run_test(size=(120, 36)) as pilot:  # wide: some selections fit one line, some not
        await wait_ready(pilot)
        await pilot.press(*"jjjjjjjjjj")
        await pilot.pause()
        await settled(pilot)
        counts.clear()
        await pilot.press(*"kkkkkkkkkkjjjjjjjjjj")  # loaded rows (short) and failed/held ones (long)
        await pilot.pause()
        assert counts["layouts"] == 0, f"{counts['layouts']} layout passes for 20 cursor moves"


async def test_a_bulk_mark_renders_one_cell_per_row(demo: ChuteApp, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = Counts(monkeypatch)
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot)
        table = demo.main.query_one(FilesTable)
        await pilot.pause()
        await settled(pilot)
        counts.clear()
        await pilot.press("asterisk")
        await pilot.pause()
        visible = table.size.height - 1  # the header
        assert len(table.marked) == len(table.shown)
        # The mark changes the first column only: the other cells of a row come from the cache
        # (a marked cell is two Rich renders: the cell and the text inside it; 8 columns were 16).
        assert counts["cells"] <= 3 * visible, f"{counts['cells']} Rich renders for {visible} marked rows"


def _painted(table: LedgerTable) -> list[list[tuple[str, object]]]:
    strips = table.render_lines(Region(0, 0, table.size.width, table.size.height))
    return [[(seg.text, seg.style) for seg in strip] for strip in strips]


def _repainted(table: LedgerTable) -> list[list[tuple[str, object]]]:
    table._clear_caches()  # Textual's own full invalidation, and ours: what an uncached paint shows
    return _painted(table)


# Kept renders must paint exactly what an uncached paint shows after whatever a key can change:
# panes, focus, the theme (colours), the width. A check that misses a style change is caught.
async def test_kept_renders_follow_panes_focus_theme_and_width(demo: ChuteApp,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot)
        table = demo.main.query_one(FilesTable)
        steps: list[tuple[str, Any]] = [
            ("panes", ["2", "3", "1"]), ("jump", ["G"]), ("filter box focused", ["slash"]),
            ("back to the table", ["enter"]), ("marks", ["space", "space", "asterisk"]), ("top", ["g"]),
        ]
        for what, keys in steps:
            await pilot.press(*keys)
            await pilot.pause()
            assert _painted(table) == _repainted(table), what
        demo.theme = "textual-light"
        await pilot.pause()
        assert _painted(table) == _repainted(table), "theme"
        await pilot.resize_terminal(100, 24)
        await pilot.pause()
        assert _painted(table) == _repainted(table), "width"
        # Negative control: renders kept across a style change that is not noticed paint the old colours.
        _painted(table)
        monkeypatch.setattr(LedgerTable, "_check_styles", lambda self: None)
        demo.theme = "textual-dark"
        await pilot.pause()
        assert _painted(table) != _repainted(table), "the comparison must catch renders kept across a theme change"


# The console moves what is alive after its first view out of the collector's reach (a full
# collection stopped keys for ~100 ms), and gives it back when it closes.
async def test_console_freezes_its_heap_while_open_and_unfreezes_on_exit(demo: ChuteApp) -> None:
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot)
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


# A pane's first visit costs what a later one does: its columns were fitted to the pane's width
# while it was hidden (not when it is first shown, which re-rendered every row and laid the
# screen out again), and the rows it will show were rendered at idle time, in the looks they
# will have when shown. Seen failing on the code before (a first visit re-rendered 20+ rows).
async def test_a_panes_first_visit_renders_no_more_than_a_later_one(demo: ChuteApp,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    counts = Counts(monkeypatch)
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot, refreshes=2)
        await pilot.pause()
        first: dict[str, tuple[int, int]] = {}
        for key in ["2", "3", "4", "1"]:
            await settled(pilot)
            counts.clear()
            await pilot.press(key)
            await pilot.pause()
            first[key] = (counts["rows"], counts["layouts"])
        for key in ["2", "3", "4", "1"]:
            await settled(pilot)
            counts.clear()
            await pilot.press(key)
            await pilot.pause()
            later = (counts["rows"], counts["layouts"])
            assert first[key][0] <= later[0], f"pane {key}: first visit rendered {first[key][0]} rows, later {later[0]}"
            assert first[key][1] <= later[1], f"pane {key}: first visit {first[key][1]} layouts, later {later[1]}"


# Rows rendered ahead for a hidden pane (in the looks of a focused table) paint exactly what an
# uncached paint shows when the pane is first visited, and the table shown keeps its focus.
async def test_rows_rendered_ahead_paint_what_a_visit_shows(demo: ChuteApp) -> None:
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot, refreshes=2)
        await pilot.pause()
        main = demo.main
        assert isinstance(main.focused, FilesTable), "the warm-up must leave the focus where it was"
        for key, pane in [("3", "errors"), ("4", "quarantine"), ("1", "files")]:
            await pilot.press(key)
            await pilot.pause()
            table = main.query_one(f"#{pane}-table", LedgerTable)
            assert main.focused is table
            assert _painted(table) == _repainted(table), pane


# Rows that change while their pane is hidden (here every Age, as two minutes pass) are rendered
# again at idle time, not on the next visit.
async def test_rows_changed_while_hidden_are_rendered_before_the_visit(demo: ChuteApp,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    counts = Counts(monkeypatch)
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot, refreshes=2)
        await pilot.press("3", "1")
        await pilot.pause()
        errors = demo.main.query_one("#errors-table", LedgerTable)
        before = dict(errors._versions)
        later = demo.now() + 120
        demo.now = lambda: later
        await wait_ready(pilot, refreshes=demo.refreshes + 1)
        assert errors._versions != before, "the test needs rows that changed"
        for _ in range(100):  # the warm-up runs at idle, one pane per moment
            if not demo.main._to_warm and not demo.main._warm_due:
                break
            await pilot.pause(0.05)
        await settled(pilot)
        counts.clear()
        await pilot.press("3")
        await pilot.pause()
        assert counts["rows"] == 0, f"the visit rendered {counts['rows']} rows changed while hidden"


# A pane switch changes the tabs and the panes' area, not the whole screen, and everything it
# changes is drawn in the switch's own paint. Seen failing on the code before: every switch
# rendered the whole screen a second time (Screen.focused repaints the screen on any focus
# change), and the tab underline, the table's focus looks and the key bar each came a paint later.
async def test_a_pane_switch_never_renders_the_whole_screen(demo: ChuteApp, monkeypatch: pytest.MonkeyPatch) -> None:
    from textual._compositor import Compositor

    counts = Counts(monkeypatch)
    counts._count(monkeypatch, Compositor, "render_full_update", "full")
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot, refreshes=2)
        await pilot.press("2", "3", "4", "1")  # each pane once
        await pilot.pause()
        counts.clear()
        await pilot.press("2", "3", "4", "1", "3", "1")
        await pilot.pause()
        assert counts["full"] == 0, f"{counts['full']} renders of the whole screen for 6 pane switches"
        main = demo.main
        assert main.focused is main.query_one(FilesTable) and main.query_one(FilesTable).has_focus
