"""Issue 10: the console acts on exactly what the operator sees, and never mis-types.

One Pilot regression test per numbered defect of the issue (each was seen failing on the code
before the fix), against a real in-process engine (embedded ClickHouse).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from textual import events
from textual.command import CommandPalette
from textual.keys import _character_to_key
from textual.widgets import Input, Static

from chute.core.attach import AttachedEngine
from chute.tui import app as app_module
from chute.tui.app import ChuteApp
from chute.tui.screens.confirm import ConfirmScreen
from chute.tui.screens.details import DetailsScreen
from chute.tui.screens.help import HelpScreen
from chute.tui.screens.main import MainScreen
from chute.tui.widgets.files_table import FilesTable
from chute.tui.widgets.ledger_table import LedgerTable
from chute.tui.widgets.rates_strip import RatesStrip
from chute.tui.widgets.status_line import StatusLine
from tests.conftest import query
from tests.tui_helpers import record_notes, refreshed, select, state, until, write_csv

SIZE = (100, 30)




def csv(n: int, start: int = 1) -> str:
    return "id,v\n" + "".join(f"{i},{i * 2}\n" for i in range(start, start + n))


def notes(app: ChuteApp) -> list[str]:
    return [n.message for n in app._notifications]


def type_fast(app: ChuteApp, text: str) -> None:
    """Every key queued at once, as a paste or a laggy SSH link delivers them."""
    assert app._driver is not None
    for ch in text:
        key = ch if ch.isalnum() else _character_to_key(ch)
        event = events.Key(key, ch)
        event.set_sender(app)
        app._driver.send_message(event)


def rows_of(app: ChuteApp, table: str, sha: str) -> int:
    sql = f"SELECT count() FROM `{app.engine.cfg.database}`.{table} WHERE _source_sha256 = {{s:String}}"
    return int(query(app.engine, sql, s=sha)[0][0])


# 1. Purge deletes the version the dialog names, not the newest one at that path.
async def test_purge_of_an_old_version_purges_that_version(console: Callable[..., ChuteApp]) -> None:
    app = console()
    data = app.engine.cfg.data_dir
    write_csv(data, "sales.csv", csv(200))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "sales.csv") == "loaded", what="loaded")
        old = app.reader.current("sales.csv")
        assert old is not None and old.sha256
        write_csv(data, "sales.csv", csv(220, start=5))  # edited, not only appended to: a new version, held
        await until(pilot, lambda: state(app, "sales.csv") == "held", what="new version held")
        new = app.reader.current("sales.csv")
        assert new is not None and new.id != old.id
        await refreshed(pilot)
        table = app.main.query_one(FilesTable)
        await until(pilot, lambda: table.select_id(old.id), what="old version listed")
        await pilot.pause()
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        title, body = app.screen.title_text, app.screen.body
        # Hostile review: the dialog said it "removes the file sales.csv", which is the newer version's.
        assert "removes the file" not in body and f"keeps the file sales.csv: it is a newer version (#{new.id}" in body
        await pilot.press("y")
        await until(pilot, lambda: str(app.reader.get(old.id).state) == "purged", timeout=15, what="old purged")
        assert rows_of(app, "sales", old.sha256) == 0
        assert (data / "sales.csv").exists(), "the newer held file must stay on disk"
        fresh = app.reader.get(new.id)
        assert fresh is not None and str(fresh.state) == "held"
        assert f"#{old.id}" in title  # the dialog names the version by its id


# 2. Keys typed right after `/` go to the filter; none of them runs as a command.
async def test_keys_typed_right_after_slash_go_to_the_filter(console: Callable[..., ChuteApp]) -> None:
    app = console(require_approval=True)
    write_csv(app.engine.cfg.data_dir, "h.csv", csv(3))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "h.csv") == "held", what="held")
        await select(pilot, "h.csv")
        type_fast(app, "/state:quarantined")  # q quits, a approves, r retries, d purges
        box = app.main.query_one("#filter", Input)
        await until(pilot, lambda: box.value == "state:quarantined", timeout=10, what="all typed into the box")
        await refreshed(pilot)
        assert app.is_running and not app._stopping
        assert isinstance(app.screen, MainScreen)
        assert state(app, "h.csv") == "held"
        assert app.query_text == "state:quarantined"


# 3. The filter box keeps exactly what was typed; an unknown state is an error shown in place.
async def test_filter_keeps_what_was_typed_and_rejects_unknown_states(console: Callable[..., ChuteApp]) -> None:
    app = console()
    data = app.engine.cfg.data_dir
    for i in (11, 12):
        write_csv(data, f"orders-00{i}.csv", csv(2, start=i))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "orders-0012.csv") == "loaded" and state(app, "orders-0011.csv")
                    == "loaded", what="loaded")
        await refreshed(pilot)
        box = app.main.query_one("#filter", Input)
        for chunk in ("/orde", "rs-0", "012"):  # typing in bursts, refreshes in between
            type_fast(app, chunk)
            await refreshed(pilot)
        await until(pilot, lambda: app.query_text == "orders-0012", what="filter applied")
        await refreshed(pilot)
        assert box.value == "orders-0012"
        assert [r.path for r in app.main.query_one(FilesTable).shown] == ["orders-0012.csv"]
        await pilot.press("escape")
        await pilot.press("slash", *"state:quaratined")
        await until(pilot, lambda: app.query_text == "state:quaratined", what="typed")
        await refreshed(pilot)
        assert app.main.query_one(FilesTable).shown == []
        caption = str(app.main.query_one("#files-caption").render())
        assert "unknown state" in caption and "quarantined" in caption
        assert box.has_class("-invalid")
        await pilot.press("escape", "slash", *"x/y")  # in the box, / is a character
        await until(pilot, lambda: box.value == "x/y", what="a slash typed into the filter")


# 4. The confirm acts only on the state it showed; only `y` says yes.
async def test_confirm_refuses_when_the_file_changed_and_only_y_confirms(console: Callable[..., ChuteApp]) -> None:
    app = console(require_approval=True)
    write_csv(app.engine.cfg.data_dir, "c.csv", csv(20))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "c.csv") == "held", what="held")
        await select(pilot, "c.csv")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("right", "enter")  # the hint says enter cancels: it must
        await until(pilot, lambda: isinstance(app.screen, MainScreen), what="dialog closed")
        assert state(app, "c.csv") == "held"
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm again")
        app.engine.command("approve", "c.csv", actor="someone-else")  # meanwhile, from elsewhere
        await until(pilot, lambda: state(app, "c.csv") == "loaded", what="loaded meanwhile")
        warning = app.screen.query_one("#confirm-changed", Static)
        await until(pilot, lambda: "is now loaded (was held)" in str(warning.render()), what="the dialog says so")
        await pilot.press("y")
        await until(pilot, lambda: any("now loaded, not held" in n for n in notes(app)), what="refusal shown")
        row = app.reader.current("c.csv")
        assert row is not None and str(row.state) == "loaded" and row.sha256
        assert rows_of(app, "c", row.sha256) == 20


# 7. Honest status: daemon gone, paused intake on queued files, q asks while loading, a summary on exit.
async def test_status_says_daemon_gone_paused_by_whom_and_quit_asks(console: Callable[..., ChuteApp]) -> None:
    app = console()
    data = app.engine.cfg.data_dir
    write_csv(data, "big.csv", csv(400_000))
    async with app.run_test(size=SIZE) as pilot:
        # q while a file loads asks first.
        await until(pilot, lambda: state(app, "big.csv") == "loading", timeout=60, what="big.csv loading")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="quit asks")
        assert "Quit while files load?" in app.screen.title_text
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), what="still running")
        assert app.is_running and not app.engine.stopping
        # Paused: a queued file says who paused intake, and since when.
        await refreshed(pilot)
        await pilot.press("p")
        await until(pilot, lambda: app.engine.paused, what="paused")
        write_csv(data, "later.csv", csv(3))
        await until(pilot, lambda: state(app, "later.csv") == "queued", what="queued while paused")
        await select(pilot, "later.csv")
        line = str(app.main.query_one("#files-sel").render())
        assert "waiting: intake paused by console:test since" in line
        cells = app.main.query_one(FilesTable).get_row(str(app.reader.current("later.csv").id))
        assert str(cells[-1]).startswith("waiting: intake pa")  # the rest is on the selection line
        await pilot.press("p")
        await until(pilot, lambda: state(app, "later.csv") == "loaded" and state(app, "big.csv") == "loaded",
                    timeout=120, what="loaded after resume")
    summary = app_module.exit_summary(app.engine.cfg, 0.0, attached=False)
    assert summary.startswith("chute: stopped; this session 2 loaded, 0 failed")

    # The daemon is gone: nothing runs, ClickHouse is not blamed, actions are off.
    app.engine.stop()
    attached = ChuteApp(AttachedEngine(app.engine.cfg, holder=lambda: None), refresh_seconds=0.2)
    async with attached.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        header = str(attached.main.query_one(StatusLine).render())
        assert "DAEMON GONE" in header and "RUNNING" not in header and "DOWN" not in header
        await select(pilot, "later.csv")
        assert attached.screen.active_bindings["d"].enabled is False
        assert attached.screen.active_bindings["p"].enabled is False
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(attached.screen, MainScreen)


# 8. Figures that were wrong or noisy.
async def test_figures_tries_reasons_plurals_history_and_help_keys(console: Callable[..., ChuteApp]) -> None:
    app = console()
    data = app.engine.cfg.data_dir
    write_csv(data, "kinds.csv", "id,kind\n1,a\n2,b\n3,a\n")
    write_csv(data, "bad-0001.csv.gz", "not gzip\n")  # not gzip: quarantined
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "kinds.csv") == "loaded" and state(app, "bad-0001.csv.gz")
                    == "quarantined", what="loaded and quarantined")
        bad = app.reader.current("bad-0001.csv.gz")
        await select(pilot, "bad-0001.csv.gz", pane="quarantine")
        app.engine.command("pause")
        await pilot.press("r")
        await until(pilot, lambda: state(app, "bad-0001.csv.gz") == "queued", what="queued again")
        row = app.reader.current("bad-0001.csv.gz")
        assert row is not None and row.last_error is None and row.reason is None, "the old reason is history"
        app.engine.command("resume")
        await until(pilot, lambda: state(app, "bad-0001.csv.gz") == "quarantined", what="quarantined twice")
        await select(pilot, "bad-0001.csv.gz", pane="errors")
        await refreshed(pilot)
        errors = app.main.query_one("#errors-table", LedgerTable)
        tries = str(errors.get_row(str(bad.id))[3]).strip()
        assert tries == "2", tries
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.details is not None,
                    what="details")
        summary = _plain(app.screen.query_one("#summary", Static).content)
        assert "rows  parsed" not in summary and "not hashed yet" not in summary, summary
        assert " 2" in summary.split("attempts", 1)[1][:8], summary
        await pilot.press("escape")
        await select(pilot, "kinds.csv")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.details is not None,
                    what="details of a loaded file")
        assert not app.screen.details.drifted, app.screen.details.diff  # String vs LowCardinality(String)
        await pilot.press("escape")
        await pilot.press("2")  # Rates: "1 file" loaded in the last hour, not "1 files"
        await until(pilot, lambda: "1 file" in _plain(app.main.query_one("#totals", Static).content), what="totals")
        assert "1 files" not in _plain(app.main.query_one("#totals", Static).content)
        await pilot.press("1")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        scroll = app.screen.query_one("#help")
        await pilot.press("G")
        await until(pilot, lambda: scroll.scroll_y > 0, what="G goes to the end")
        await pilot.press("g")
        await until(pilot, lambda: scroll.scroll_y == 0, what="g goes to the top")
        await pilot.press("escape")
    # A restart keeps the rows/s history, as files/min keeps its own.
    app.engine.stop()
    again = console()
    async with again.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert again.view is not None and sum(r for _, r, _ in again.view.snap.history) >= 3
        # A big file validating is loading before it reports progress.
        snap = dataclasses.replace(again.view.snap, inflight=[], counts={"loading": 1})
        strip = again.main.query_one(RatesStrip)
        strip.show(dataclasses.replace(again.view, snap=snap))
        assert "1 loading" in strip.render().plain
        strip.show(dataclasses.replace(again.view, snap=dataclasses.replace(snap, open_actions=2)))
        assert "2 unfinished" in strip.render().plain  # actions a crash interrupted (chute status names them)
def _plain(content: object) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, file=__import__("io").StringIO())
    console.print(content)
    return console.export_text()


# Bulk in the console: space marks (k9s), * marks the filtered set; a stray space never pauses intake.
async def test_marks_and_bulk_actions_confirmed_once(console: Callable[..., ChuteApp]) -> None:
    app = console(require_approval=True)
    data = app.engine.cfg.data_dir
    for i in range(3):
        write_csv(data, f"orders/o{i}.csv", csv(2, start=10 * i))
    write_csv(data, "other.csv", csv(5, start=100))
    seen = record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: all(state(app, p) == "held" for p in
                                       ("orders/o0.csv", "orders/o1.csv", "orders/o2.csv", "other.csv")), what="held")
        await refreshed(pilot)
        table = app.main.query_one(FilesTable)
        await pilot.press("g")
        first = table.selected
        await pilot.press("space")
        await pilot.pause()
        assert not app.engine.paused, "space marks; it must never stop ingestion"
        assert first is not None and [r.id for r in table.marked] == [first.id]
        await pilot.press("space")  # the cursor moved down: marks the next one too
        assert len(table.marked) == 2
        await pilot.press("asterisk")  # all shown ...
        await pilot.press("asterisk")  # ... then none
        assert table.marked == []
        await pilot.press("slash", *"orders", "enter")
        await until(pilot, lambda: len(table.shown) == 3, what="filtered to orders")
        await pilot.press("ctrl+p")  # the palette offers the filtered set too
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"mark every")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: len(table.marked) == 3, what="marked from the palette")
        assert "3 marked" in str(app.main.query_one("#files-caption").render())
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="one confirmation")
        assert "Approve 3 files?" in app.screen.title_text
        await pilot.press("y")
        await until(pilot, lambda: all(state(app, f"orders/o{i}.csv") == "loaded" for i in range(3)),
                    what="the three approved and loaded")
        assert state(app, "other.csv") == "held"
        # Posted by the action's worker after its third command: the third load may finish first.
        await until(pilot, lambda: any("3 of 3 done" in n for n in seen), what="the bulk action's note")
        assert table.marked == []


async def test_daemon_gone_disables_actions_everywhere_and_the_exit_line_says_so(
        console: Callable[..., ChuteApp]) -> None:
    """Hostile review: the details screen and the command palette still offered r/d, and the
    exit line said "the daemon keeps running" about a daemon that was killed."""
    from chute.tui.commands import ChuteCommands

    app = console()
    write_csv(app.engine.cfg.data_dir, "bad.csv", "a,b\n1,2,3\n")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "bad.csv") == "quarantined", timeout=60, what="quarantined")
    app.engine.stop()
    attached = ChuteApp(AttachedEngine(app.engine.cfg, holder=lambda: None), refresh_seconds=0.2)
    async with attached.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await select(pilot, "bad.csv")
        titles = [title for title, _, _ in ChuteCommands(attached.screen).commands()]
        assert not any(t.startswith(("Retry", "Purge", "Pause", "Resume")) for t in titles), titles
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(attached.screen, DetailsScreen), what="details")
        await pilot.pause()
        assert attached.screen.active_bindings["r"].enabled is False
        assert attached.screen.active_bindings["d"].enabled is False
    line = app_module.exit_summary(app.engine.cfg, 0.0, attached=True, daemon_running=False)
    assert "keeps running" not in line and "no daemon" in line, line


async def test_q_right_after_a_confirmed_bulk_purge_lets_it_finish(console: Callable[..., ChuteApp]) -> None:
    """Hostile review: `y` then `q` stopped the engine under the purge worker: one file purged,
    the rest failed with 'Cannot operate on a closed database' in the log, and nothing said so."""
    from chute.core.ledger import Ledger

    app = console()
    for i in range(12):
        write_csv(app.engine.cfg.data_dir, f"f{i:02d}.csv", csv(3, start=i * 10))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: all(state(app, f"f{i:02d}.csv") == "loaded" for i in range(12)), timeout=60,
                    what="all loaded")
        # Each load's worker ends just after `loaded`: until then the q below would ask "Quit while files load?".
        await until(pilot, app.engine.idle, what="the loads' workers done")
        await refreshed(pilot)
        app.show_pane("files")
        await pilot.pause()
        real = app.engine.command

        def slow(*args: Any, **kwargs: Any) -> str:  # each purge takes a while, as on a busy server
            import time

            time.sleep(0.1)
            return real(*args, **kwargs)

        app.engine.command = slow  # type: ignore[method-assign]
        await pilot.press("asterisk", "d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="bulk confirm")
        await pilot.press("y", "q")
        await until(pilot, lambda: not app.is_running, timeout=60, what="stopped")
    ledger = Ledger(app.engine.cfg.state_dir, readonly=True)
    try:
        states = {r.path: str(r.state) for r in ledger.list_files(limit=100)}
    finally:
        ledger.close()
    assert states == {f"f{i:02d}.csv": "purged" for i in range(12)}, states
