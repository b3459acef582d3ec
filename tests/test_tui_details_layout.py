"""The details screen's first rows are laid out whatever the order of Textual's layout work. On a
busy machine a screen layout could land between the rows' arrival and the table's idle, and the
table kept the height it had empty (0 lines) for good: CI timed out waiting for the details
(test_hold_advice_follows_the_old_versions_current_state). Here that layout is forced at the
worst moment; seen failing (height 0, virtual height 21) before the fix in DetailsScreen."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from chute.tui.app import ChuteApp
from chute.tui.screens.details import DetailsLoaded, DetailsScreen
from chute.tui.widgets.auto_height import AutoHeight, AutoHeightTable
from chute.tui.widgets.fleet_hosts import FleetHostsTable
from tests.tui_helpers import select, state, until, write_csv


async def test_first_rows_are_laid_out_after_a_layout_lands_between(
        console: Callable[..., ChuteApp], monkeypatch: pytest.MonkeyPatch) -> None:
    app = console()
    write_csv(app.engine.cfg.data_dir, "sales.csv", "id,v\n" + "".join(f"{i},{i * 2}\n" for i in range(30)))
    loaded = DetailsScreen.on_details_loaded

    def loaded_then_laid_out(self: DetailsScreen, message: DetailsLoaded) -> None:
        loaded(self, message)
        self._refresh_layout()  # the screen lays out before the table's idle measures its rows

    monkeypatch.setattr(DetailsScreen, "on_details_loaded", loaded_then_laid_out)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: state(app, "sales.csv") == "loaded", what="loaded")
        await select(pilot, "sales.csv")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.details is not None,
                    what="details read")
        table = app.screen.query_one("#sample", DataTable)
        # The header and every sampled row (20), within the table's max-height of 22.
        await until(pilot, lambda: table.size.height == 21, what="first rows laid out", timeout=10)


class _Tables(App[None]):
    """Two tables as high as their rows, filled once laid out empty: the race forced for each."""

    CSS = "DataTable { height: auto; max-height: 12; }"

    def compose(self) -> ComposeResult:
        yield DataTable(id="plain")
        yield AutoHeightTable(id="auto")

    def fill(self) -> None:
        for table in self.query(DataTable):
            table.clear(columns=True)
            table.add_columns("id", "v")
            table.add_rows([(str(i), str(i * 2)) for i in range(5)])
            table.display = True  # as DetailsScreen does: the table asks for a layout
        self.screen._refresh_layout()  # before the tables' idle measures the rows


@pytest.mark.parametrize("which, height", [("auto", 6), ("plain", 0)])
async def test_auto_height_tables_survive_the_race(which: str, height: int) -> None:
    """AutoHeightTable (and FleetHostsTable, which mixes AutoHeight in) ends 6 lines high; a plain
    DataTable stays at 0: the negative control that shows the harness forces the race."""
    app = _Tables()
    async with app.run_test(size=(60, 30)) as pilot:
        await pilot.pause()
        app.fill()
        table = app.query_one(f"#{which}", DataTable)
        await until(pilot, lambda: table.virtual_size.height == 6, what="rows measured")
        for _ in range(5):
            await pilot.pause()
        assert table.size.height == height
        assert issubclass(FleetHostsTable, AutoHeight)
