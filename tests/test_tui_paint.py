"""Issue 10, the refresh's paint: what a table reads again for every row it renders anew (an Age
ticking re-renders every row on show, every second). Each test was seen failing on main
(7ffa523): DataTable read the header's Rich style (a walk of every ancestor's styles) for each
row, and a changed cell made the next paint rebuild the line offsets of every row (500)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.css.styles import RenderStyles
from textual.geometry import Region

from chute.tui.app import ChuteApp
from chute.tui.demo import wait_ready
from chute.tui.widgets.ledger_table import LedgerTable
from tests.test_tui_keys import settled

SMALL = (80, 24)


def _touch_every_row(table: LedgerTable) -> None:
    """Every row on show changes, as when their Ages tick (the same text: only versions move)."""
    first = table.COLUMNS[0].key
    with table._window_fixed():
        for key in table._order:
            table.update_cell(key, first, table.get_cell(key, first))


async def test_a_paint_reads_the_tables_component_styles_once_not_once_per_row(
        demo: ChuteApp, monkeypatch: pytest.MonkeyPatch) -> None:
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot, refreshes=2)
        await settled(pilot)
        table = demo.main.query_one("#files-table", LedgerTable)
        whole = Region(0, 0, *table.size)
        before = table.render_lines(whole)
        _touch_every_row(table)
        reads: list[int] = []
        inner = RenderStyles.rich_style

        def counted(styles: RenderStyles) -> Any:
            reads.append(1)
            return inner.fget(styles)  # type: ignore[attr-defined]

        monkeypatch.setattr(RenderStyles, "rich_style", property(counted))
        after = table.render_lines(whole)
        monkeypatch.undo()
        rows = min(table.row_count, table.size.height - 1)
        assert rows >= 8, "the test needs a screenful of rows"
        assert after == before, "the same rows, rendered anew, must look the same"
        assert len(reads) <= 4, f"{len(reads)} reads of component styles to render {rows} rows"


async def test_a_changed_cell_keeps_the_tables_line_offsets(demo: ChuteApp) -> None:
    async with demo.run_test(size=SMALL) as pilot:
        await wait_ready(pilot, refreshes=2)
        await settled(pilot)
        table = demo.main.query_one("#files-table", LedgerTable)
        offsets, rows = table._y_offsets, table.ordered_rows
        _touch_every_row(table)
        assert table._y_offsets is offsets, "a cell's content changed: the line offsets were rebuilt"
        assert table.ordered_rows is rows
        # A row removed (or added, or a sort) still rebuilds them.
        gone = table._order[0]
        table.remove_row(gone)
        assert len(table._y_offsets) == len(offsets) - 1
        assert all(key.value != gone for key, _ in table._y_offsets)
