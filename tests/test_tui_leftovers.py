"""Issue 10 leftovers: advice that follows the current state, a bulk confirm and a Fleet screen
that fit 80x24, and a Fleet screen that says how to turn the mirror on. Each test was seen
failing on the code before its fix (a17324f)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Region
from textual.widgets import Static

from chute.core.alerts import OUTCOMES
from chute.core.ledger import Ledger
from chute.core.states import State
from chute.tui.advice import advice
from chute.tui.app import ChuteApp
from chute.tui.demo import demo_app, seed_bulk, wait_ready
from chute.tui.screens.confirm import ConfirmScreen
from chute.tui.screens.details import DetailsScreen
from chute.tui.screens.fleet import FleetScreen
from chute.tui.view import Outcomes
from chute.tui.widgets.files_table import FilesTable
from chute.tui.widgets.ledger_table import LedgerTable
from chute.tui.widgets.selection_line import SelectionLine, compose
from tests.tui_helpers import refreshed, select, state, until, write_csv

SMALL = (80, 24)


def csv(n: int, start: int = 1) -> str:
    return "id,v\n" + "".join(f"{i},{i * 2}\n" for i in range(start, start + n))


def text_of(widget: Static | SelectionLine) -> str:
    return str(widget.render())


# A changed-content hold says "purge the old one first": once the old one is purged, the console
# must not keep telling the operator to do it.
async def test_hold_advice_follows_the_old_versions_current_state(console: Callable[..., ChuteApp]) -> None:
    app = console()
    data = app.engine.cfg.data_dir
    write_csv(data, "sales.csv", csv(20))
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: state(app, "sales.csv") == "loaded", what="loaded")
        old = app.reader.current("sales.csv")
        assert old is not None
        write_csv(data, "sales.csv", csv(22, start=5))
        await until(pilot, lambda: state(app, "sales.csv") == "held", what="new version held")
        new = app.reader.current("sales.csv")
        assert new is not None and "purge the old one first" in (new.last_error or new.reason or "")
        await select(pilot, "sales.csv")
        line = app.main.query_one("#files-sel", SelectionLine)
        assert "purge the old" in text_of(line)  # true while the old version is loaded
        app.engine.command("purge", None, actor="console:test", file_id=old.id, expect="loaded")
        await until(pilot, lambda: str(app.reader.get(old.id).state) == "purged", what="old purged")
        await refreshed(pilot)
        table = app.main.query_one(FilesTable)
        await until(pilot, lambda: table.select_id(new.id), what="held version listed")
        await pilot.pause()
        shown = text_of(line)
        assert "purge the old" not in shown, shown
        assert f"#{old.id}" in shown and "purged" in shown and "press a" in shown
        reason = str(table.get_cell(str(new.id), "reason"))
        assert "purge the old" not in reason and "purged" in reason, reason
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.settled, what="details")
        details = str(app.screen.query_one("#error", Static).render())
        assert "purge the old" not in details and "purged" in details, details


# The Fleet screen with this host's mirror off says so, and how to turn it on.
async def test_fleet_screen_says_how_to_turn_the_mirror_on(console: Callable[..., ChuteApp]) -> None:
    app = console(fleet_mirror=False)
    async with app.run_test(size=SMALL) as pilot:
        await refreshed(pilot)
        await pilot.press("f")
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        await until(pilot, lambda: screen.refreshes > 0, what="fleet refreshed")
        caption = text_of(screen.query_one("#fleet-host-caption", Static))
        assert "fleet_mirror = false" in caption and "fleet_mirror = true" in caption, caption
        assert "CHUTE_FLEET_MIRROR=true" in caption, caption


def inside(outer: object, inner: object) -> bool:
    """Region ``inner`` lies wholly within region ``outer``."""
    return outer.contains_region(inner)  # type: ignore[attr-defined]


# A bulk confirmation of many files fits 80x24: title, every file (scrolling), the keys line.
async def test_bulk_confirm_of_many_files_fits_80x24(console: Callable[..., ChuteApp]) -> None:
    app = console(require_approval=True)
    for i in range(30):
        write_csv(app.engine.cfg.data_dir, f"orders/order-{i:04d}.csv", csv(2, start=10 * i))
    async with app.run_test(size=SMALL) as pilot:
        await until(pilot, lambda: sum(1 for r in app.reader.list_files() if r.state == "held") == 30,
                    what="30 held")
        app.engine.command("approve", "orders/order-0000.csv", actor="console:test")  # marked, but skipped
        await until(pilot, lambda: state(app, "orders/order-0000.csv") == "loaded", what="one loaded")
        await refreshed(pilot)
        await until(pilot, lambda: len(app.main.query_one(FilesTable).shown) == 30, what="30 listed")
        await pilot.press("asterisk", "a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.pause()
        screen = app.screen
        whole = screen.region
        for part in ("#confirm", "#confirm-title", "#confirm-keys", "#yes", "#no"):
            widget = screen.query_one(part)
            assert inside(whole, widget.region), f"{part} at {widget.region} is cut off at 80x24"
        assert "1 marked file(s) skipped" in text_of(screen.query_one("#confirm-body"))
        listed = screen.query_one("#confirm-list")
        assert all(f"order-{i:04d}.csv" in text_of(listed) for i in range(1, 30)), "every file is listed"
        assert screen.query_one("#confirm-scroll").max_scroll_y > 0, "the list scrolls"
        await pilot.press("n")


# The Fleet tables drop and shorten columns to fit 80 columns, as the Files table does.
async def test_fleet_tables_fit_80_columns(console: Callable[..., ChuteApp]) -> None:
    app = console(require_approval=True, fleet_mirror=True, fleet_interval=0.3,
                  fleet_host="ingest-host-with-a-rather-long-name.example.internal")
    write_csv(app.engine.cfg.data_dir, "exports/2026/11/customer-invoices-final-v2.csv", csv(3))
    async with app.run_test(size=SMALL) as pilot:
        await until(pilot, lambda: state(app, "exports/2026/11/customer-invoices-final-v2.csv") == "held",
                    what="held")
        await pilot.press("f")
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        await until(pilot, lambda: screen.files_table.files, timeout=30, what="the host's held file")
        await pilot.pause()
        for table in (screen.hosts_table, screen.files_table):
            assert table.virtual_size.width <= table.size.width, \
                f"{table.id} is {table.virtual_size.width} wide in {table.size.width} columns"
        # What an operator needs stays: the host, its status, the file and why it waits.
        hosts = {str(k.value) for k in screen.hosts_table.columns}
        assert {"host", "status", "held", "failed"} <= hosts, hosts
        files = {str(k.value) for k in screen.files_table.columns}
        assert {"path", "state", "reason"} <= files, files


# The refresh's day and hour figures come from minutes counted once: they must equal a full count.
def test_outcome_counts_kept_per_minute_equal_a_full_count(tmp_path: Path) -> None:
    seed_bulk(tmp_path / "state", tmp_path / "data", 3000, now=1_800_000_000.0)
    reader = Ledger(tmp_path / "state", readonly=True)
    try:
        tally = Outcomes()
        for now in (1_800_000_000.0, 1_800_000_007.5, 1_800_000_061.0, 1_800_000_900.0, 1_800_002_000.0):
            for start in (now - 3600, now - 1234.5, 1_799_997_000.0):
                assert tally.since(reader, start, now) == reader.outcomes_since(start, OUTCOMES), (now, start)
    finally:
        reader.close()


def _painted(table: FilesTable) -> list[list[tuple[str, object]]]:
    """The table's visible lines as (text, style) segments, as the compositor would ask for them."""
    strips = table.render_lines(Region(0, 0, table.size.width, table.size.height))
    return [[(seg.text, seg.style) for seg in strip] for strip in strips]


def _repainted(table: FilesTable) -> list[list[tuple[str, object]]]:
    table._clear_caches()  # Textual's own full invalidation: what an uncached paint shows
    return _painted(table)


# The key-latency caches (only the rows a cursor move or a changed cell touches are re-rendered)
# must paint exactly what a paint without caches paints; a stale cache is caught (negative control).
async def test_row_caches_paint_what_an_uncached_paint_shows(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = demo_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await wait_ready(pilot)
        table = app.main.query_one(FilesTable)
        await pilot.press("j", "j", "space", "k", "j", "j", "space")
        await pilot.pause()
        key = table.selected_key
        assert key is not None
        table.update_cell(key, "rows", "424,242")
        for press in ([], ["k"], ["j", "j"], ["asterisk"], ["G"], ["asterisk"], ["g"]):
            await pilot.press(*press)
            await pilot.pause()
            assert _painted(table) == _repainted(table), press
        # Negative control: a changed cell whose cached renders are kept shows the old value.
        _painted(table)
        monkeypatch.setattr(LedgerTable, "_touch", lambda self, row, col: None)
        table.update_cell(table.selected_key, "rows", "777,777")
        assert _painted(table) != _repainted(table), "the comparison must catch a stale row"


# At 80x24 a quarantined file's long path and reason pushed the advice off the two-line selection
# line: the reason now gives way (seen failing: "→ bad input: fix or replac…").
async def test_the_advice_stays_whole_under_a_long_reason_at_80x24(console: Callable[..., ChuteApp]) -> None:
    app = console()
    header = "id," + ",".join(f"a_rather_long_column_name_{i}" for i in range(12)) + "\n"
    write_csv(app.engine.cfg.data_dir, "exports/2026/11/customer-orders-eu-west.csv",
              header + "1," + ",".join("x" for _ in range(12)) + "\n2,short\n")
    async with app.run_test(size=SMALL) as pilot:
        path = "exports/2026/11/customer-orders-eu-west.csv"
        await until(pilot, lambda: state(app, path) == "quarantined", what="quarantined")
        await refreshed(pilot)
        await select(pilot, path)
        line = app.main.query_one("#files-sel", SelectionLine)
        await until(pilot, lambda: "customer-orders" in text_of(line), what="selected")
        shown = " ".join(text_of(line).split())
        assert "fix or replace the file, then r retries it; d deletes it" in shown, shown
        assert "line 3" in shown or "…" in shown, shown  # the reason is there, cut if it must be
        assert all(len(row) <= 80 for row in text_of(line).splitlines())


# Wide characters (CJK, emoji: two cells each) in a path or a reason: the lines were cut by
# characters, not cells, so a first line of 137 cells at width 80 wrapped again on screen and the
# advice on the second line was pushed out of the two-line widget (seen failing: [137, 58]).
@pytest.mark.parametrize("width", [40, 60, 80, 200])
@pytest.mark.parametrize(("head", "reason"), [
    ("データ/注文/顧客注文データ東京.csv", "列「金額」の値が数値ではありません（データ行 3）" * 4),
    ("data/🎉🎉🎉🎉🎉/orders.csv", "bad 🎉 value " * 30),
    ("注文" * 30 + ".csv", "値" * 200),
], ids=["cjk", "emoji", "cjk-long-path"])
def test_the_selection_line_counts_cells_not_characters(head: str, reason: str, width: int) -> None:
    hint = "  → fix or replace the file, then r retries it; d deletes it"
    text = compose(Text(head + " quarantined", style="bold"), reason, Text(hint, style="italic"), width, 2)
    lines = text.plain.split("\n")
    assert len(lines) <= 2 and all(cell_len(line) <= width for line in lines), [cell_len(x) for x in lines]
    if width >= 80 and cell_len(head) < 40:
        assert text.plain.endswith(hint.strip()), text.plain  # room for it: the reason gave way


# A file name may hold a newline (or another control character): the selection line printed it, so
# "odd\nname.csv" with a long reason took three lines of the two-line widget and its advice went
# (seen failing: 3 lines). Every state's advice at the usual widths, with a long reason.
@pytest.mark.parametrize("width", [40, 60, 80, 200])
@pytest.mark.parametrize("state", [State.HELD, State.FAILED, State.QUARANTINED, State.DUPLICATE, State.LOADED,
                                   State.QUEUED])
def test_the_selection_line_keeps_a_path_with_a_newline_on_its_lines(state: State, width: int) -> None:
    from tests.test_groups import file_row

    row = dataclasses.replace(file_row(7, "exports/odd\nname\t\x1b[2J.csv", "t", 10), state=state,
                              last_error="column 'amount': 'abc'\nin data row 3 is not a number " * 6)
    text = compose(*SelectionLine._line(row, None), width, 2)
    lines = text.plain.split("\n")
    assert len(lines) <= 2 and all(cell_len(line) <= width for line in lines), lines
    assert "\x1b" not in text.plain and "\t" not in text.plain
    assert "odd\\nname" in text.plain.replace("\n", "")  # (shown as written, escaped)
    hint = " ".join(advice(row).split())
    if width >= 80 and hint:
        assert " ".join(text.plain.split()).endswith(hint), text.plain


def test_a_table_shows_a_path_with_a_newline_whole() -> None:
    """The files table showed "odd" for "odd\\nname.csv" (seen failing): a cell shows one line."""
    from chute.tui import format as fmt

    assert fmt.shorten("odd\nname.csv", 40) == "odd\\nname.csv"
    assert fmt.shorten("a/b/" + "x" * 50 + "\t.csv", 20).endswith("x\\t.csv")


# Every advice at 80x24 beside the path of the test above and a long reason: the schema-drift
# advice (96 characters) left no room for any of its reason, so the line was cut at its end and
# the keys (a, d) went (seen failing), as the quarantine advice's had.
@pytest.mark.parametrize(("state", "changes"), [
    (State.HELD, {"reason": "awaiting approval (require_approval = true)"}),
    (State.HELD, {"reason": "new column(s) discount, coupon not in table orders (schema drift)"}),
    (State.HELD, {"reason": "changed content at a known path: version #3 was loaded with other content"}),
    (State.HELD, {"reason": "held by the operator"}),
    (State.FAILED, {"error_kind": "unreachable", "last_error": "connection refused"}),
    (State.FAILED, {"next_attempt": 1.0, "last_error": "Code: 241. DB::Exception: memory limit exceeded"}),
    (State.FAILED, {"error_kind": "gone", "last_error": "t.csv disappeared"}),
    (State.FAILED, {"last_error": "gave up after 6 attempts: Code: 241. DB::Exception: memory limit"}),
    (State.QUARANTINED, {"last_error": "ragged row at line 3: 2 fields, fewer than the header's 13"}),
    (State.DUPLICATE, {"reason": "same content as exports/2026/11/customer-orders-eu-west-copy.csv"}),
], ids=["approval", "drift", "changed", "held", "unreachable", "retrying", "gone", "gave-up", "quarantined",
        "duplicate"])
def test_every_advice_stays_whole_beside_a_long_path_at_80(state: State, changes: dict) -> None:
    from tests.test_groups import file_row

    row = dataclasses.replace(file_row(7, "exports/2026/11/customer-orders-eu-west.csv", "orders", 10), state=state,
                              **changes)
    row = dataclasses.replace(row, **{k: (v + "; " + v + "; " + v if isinstance(v, str) and k != "error_kind" else v)
                                      for k, v in changes.items()})
    hint = " ".join(advice(row).split())
    assert hint
    shown = " ".join(compose(*SelectionLine._line(row, None), 80, 2).plain.split())
    assert shown.endswith(hint), shown
