"""Issue 10: LedgerTable renders a one-line plain cell itself (tui/widgets/ledger_table.py,
_one_line_cell) instead of through DataTable's Rich pipeline, which was most of a refresh's paint
(the Ages it changes) and of a jump's. It must give exactly what DataTable gives, cell for cell, in
every look a cell can have: cursor, hover, focus, marks, state colours, narrow and wide columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from chute.tui.demo import demo_app, wait_ready
from chute.tui.widgets.ledger_table import LedgerTable


def _compare(table: LedgerTable) -> tuple[int, int, int]:
    """(cells compared, cells the fast path took, cursor looks it told apart)."""
    compared = fast = told_apart = 0
    for row_index in range(min(table.row_count, 40)):
        row_style = table._get_row_style(row_index, table.rich_style)
        row = table._row_locations.get_key(row_index)
        for column_index, column in enumerate(table.ordered_columns):
            col = table._column_locations.get_key(column_index)
            width = column.get_render_width(table)
            for cursor, hover in ((False, False), (True, False), (False, True), (True, True)):
                compared += 1
                assert row is not None and col is not None
                mine = table._one_line_cell(row, col, row_index, column_index, row_style, width, cursor, hover)
                if mine is None:
                    continue
                fast += 1
                theirs = DataTable._render_cell(table, row_index, column_index, row_style, width, cursor, hover)
                assert mine == theirs, (table.id, row_index, col.value, cursor, hover, mine, theirs)
                if cursor:  # negative control: the comparison sees a wrong look
                    plain = DataTable._render_cell(table, row_index, column_index, row_style, width, False, hover)
                    told_apart += mine != plain
    return compared, fast, told_apart


@pytest.mark.parametrize("size", [(80, 24), (130, 36)])
async def test_plain_cells_render_as_datatable_renders_them(tmp_path: Path, monkeypatch: Any,
                                                             size: tuple[int, int]) -> None:
    monkeypatch.chdir(tmp_path)
    app = demo_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await wait_ready(pilot)
        await pilot.press("j", "space", "j", "j", "space")  # marks: a check in reverse, in the first column
        totals = [0, 0, 0]
        for pane in ("files", "errors", "quarantine"):
            app.show_pane(pane)
            await pilot.pause()
            table = app.main._table(pane)
            for focused in (True, False):
                table.has_focus = focused
                await pilot.pause()
                for k, n in enumerate(_compare(table)):
                    totals[k] += n
        compared, fast, told_apart = totals
        assert fast > compared // 3, f"the fast path took {fast} of {compared} cells"
        assert told_apart > 0, "the cursor's look must differ from a plain cell's"
