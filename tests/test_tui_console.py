"""The console driving a real in-process engine (embedded ClickHouse): every action, by keys."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.command import CommandPalette

from chute.core.attach import AttachedEngine
from chute.core.config import Config
from chute.core.engine import Engine
from chute.tui.app import ChuteApp, run_attached, run_console
from chute.tui.screens.confirm import ConfirmScreen
from chute.tui.screens.details import DetailsScreen
from chute.tui.screens.help import HelpScreen
from chute.tui.screens.main import MainScreen
from chute.tui.widgets.files_table import FilesTable
from chute.tui.widgets.status_line import StatusLine
from tests.conftest import make_config, query
from tests.tui_helpers import record_notes, refreshed, select, state, until, write_csv

SIZE = (100, 30)




def data_of(app: ChuteApp) -> Path:
    return app.engine.cfg.data_dir


def notes(app: ChuteApp) -> list[str]:
    return [n.message for n in app._notifications]  # what the operator saw


def enabled(app: ChuteApp, key: str) -> bool | None:
    """Whether the footer shows KEY enabled (True), dimmed (False) or not at all (None)."""
    active = app.screen.active_bindings.get(key)
    return None if active is None else active.enabled


async def test_files_errors_and_a_drifted_file_approved_from_its_details(console: Callable[..., ChuteApp]) -> None:
    app = console()
    data = data_of(app)
    write_csv(data, "events/e1.csv", "id,kind\n1,x\n2,y\n")
    seen = record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "events/e1.csv") == "loaded", what="e1 loaded")
        write_csv(data, "events/e2.csv", "id,kind,extra\n3,z,9\n")
        write_csv(data, "junk-0001.csv.gz", "this is not gzip\n")
        await until(pilot, lambda: state(app, "events/e2.csv") == "held"
                    and state(app, "junk-0001.csv.gz") == "quarantined", what="held and quarantined")
        await refreshed(pilot)
        shown = {r.path: str(r.state) for r in app.main.query_one(FilesTable).shown}
        assert shown == {"events/e1.csv": "loaded", "events/e2.csv": "held", "junk-0001.csv.gz": "quarantined"}
        assert "Errors 2" in str(app.main.query_one("#panes").get_tab("errors").label)

        await select(pilot, "events/e2.csv", pane="errors")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.details is not None,
                    what="details read")
        details = app.screen.details
        assert [(d.name, d.change) for d in details.diff if d.change] == [("extra", "new")]
        assert details.header == ["id", "kind", "extra"] and details.rows == [("3", "z", "9")]
        assert [e.to_state for e in details.events if e.to_state][-1] == "held"
        assert enabled(app, "a") is True and enabled(app, "r") is False

        await pilot.press("a")  # approving drift adds the column, then loads
        await until(pilot, lambda: state(app, "events/e2.csv") == "loaded", what="e2 loaded")
        # The note comes from the action's worker, which may post it after the load (and it expires in 6 s).
        await until(pilot, lambda: any("approved events/e2.csv" in n for n in seen), what="the approval's note")
        await until(pilot, lambda: app.screen.row.state == "loaded", what="details follow the file")
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        rows = query(app.engine, f"SELECT count() FROM `{app.engine.cfg.database}`.events WHERE extra = 9")
        assert rows == [(1,)]


async def test_approve_under_require_approval_and_disabled_keys(console: Callable[..., ChuteApp]) -> None:
    app = console(require_approval=True)
    write_csv(data_of(app), "orders.csv", "id,amount\n1,2.5\n2,3.5\n")
    seen = record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "orders.csv") == "held", what="held for approval")
        await select(pilot, "orders.csv")
        assert app.main.check_action("approve", ()) is True
        assert app.main.check_action("retry", ()) is None  # shown, but disabled
        assert enabled(app, "a") is True and enabled(app, "r") is False and enabled(app, "d") is True
        await pilot.press("a")
        await until(pilot, lambda: state(app, "orders.csv") == "loaded", what="loaded after approval")
        await refreshed(pilot)
        assert enabled(app, "a") is False  # the selection changed state: bindings were refreshed
        # Counted once the approval's own note is in (its worker may post it after the load); the notes
        # recorded, not those still shown: one expiring meanwhile is not "something happened".
        await until(pilot, lambda: any("approved orders.csv" in n for n in seen), what="the approval's note")
        before = len(seen)
        await pilot.press("a")  # does not apply to a loaded file: nothing happens
        await pilot.pause(0.3)
        assert len(seen) == before and state(app, "orders.csv") == "loaded"


async def test_purge_cancelled_three_ways_then_confirmed(console: Callable[..., ChuteApp]) -> None:
    app = console()
    path = write_csv(data_of(app), "sales.csv", "id,amount\n1,2.5\n2,3.5\n3,1.0\n")
    db = app.engine.cfg.database
    seen = record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "sales.csv") == "loaded", what="loaded")
        await select(pilot, "sales.csv")
        for answer in ("n", "escape", "enter"):  # No is the default: enter on the dialog says no
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
            await pilot.press(answer)
            await until(pilot, lambda: isinstance(app.screen, MainScreen), what="dialog closed")
            assert path.exists() and state(app, "sales.csv") == "loaded"
        assert sum("purge of sales.csv cancelled" in n for n in seen) == 3
        assert query(app.engine, f"SELECT count() FROM `{db}`.sales") == [(3,)]

        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await until(pilot, lambda: any("purged sales.csv: 3 rows deleted, file removed" in n for n in notes(app)),
                    what="the engine's answer")
        assert state(app, "sales.csv") == "purged" and not path.exists()
        assert query(app.engine, f"SELECT count() FROM `{db}`.sales") == [(0,)]


async def test_retry_a_quarantined_file_after_fixing_it(console: Callable[..., ChuteApp]) -> None:
    app = console()
    data = data_of(app)
    write_csv(data, "metrics-0001.csv.gz", "not gzip at all\n")
    seen = record_notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "metrics-0001.csv.gz") == "quarantined", what="quarantined")
        await select(pilot, "metrics-0001.csv.gz", pane="quarantine")
        assert enabled(app, "r") is True and enabled(app, "a") is False
        row = app.reader.current("metrics-0001.csv.gz")
        assert row is not None and row.moved_to
        (data / row.moved_to).write_bytes(gzip.compress(b"id,value\n1,10\n2,20\n"))  # the operator fixes it
        await pilot.press("r")
        await until(pilot, lambda: state(app, "metrics-0001.csv.gz") == "loaded", what="loaded after retry")
        assert (data / "metrics-0001.csv.gz").exists()
        await until(pilot, lambda: any("retrying metrics-0001.csv.gz" in n for n in seen), what="the retry's note")


async def test_retry_refused_is_reported_not_raised(console: Callable[..., ChuteApp]) -> None:
    app = console()
    write_csv(data_of(app), "ok.csv", "id\n1\n")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "ok.csv") == "loaded", what="loaded")
        row = app.reader.current("ok.csv")
        assert row is not None
        app.ask("retry", row)  # as the palette would: the key itself is disabled for a loaded file
        await until(pilot, lambda: any("retry does not apply" in n for n in notes(app)), what="warning")
        app.execute("retry", [row])  # and if it reaches the engine anyway, its refusal is shown
        await until(pilot, lambda: any("only failed or quarantined" in n for n in notes(app)), what="refusal")


async def test_pause_and_resume_intake(console: Callable[..., ChuteApp]) -> None:
    app = console()
    data = data_of(app)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert app.screen.active_bindings["p"].binding.action == "pause"
        await pilot.press("p")
        await until(pilot, lambda: app.engine.paused, what="paused")
        await refreshed(pilot)
        assert app.screen.active_bindings["p"].binding.action == "resume"
        assert "PAUSED" in str(app.main.query_one(StatusLine).render())
        write_csv(data, "later.csv", "id\n1\n")
        await until(pilot, lambda: state(app, "later.csv") == "queued", what="queued while paused")
        for _ in range(3):
            await refreshed(pilot)
        assert state(app, "later.csv") == "queued"
        await pilot.press("p")
        await until(pilot, lambda: state(app, "later.csv") == "loaded", what="loaded after resume")
        events = [e.action for e in app.reader.events() if e.action in ("pause", "resume")]
        assert events == ["pause", "resume"]
    # Pause is recorded for `chute attach`, and is not kept across a restart.
    engine = app.engine
    engine.command("pause")
    assert engine.ledger.meta("paused") == "1"
    engine.stop()
    attached = AttachedEngine(engine.cfg, holder=lambda: None)
    try:
        assert attached.paused  # as the engine left it
        again = console().engine
        assert not again.paused and not attached.paused
    finally:
        attached.close()


async def test_filter_vim_keys_help_and_palette(console: Callable[..., ChuteApp]) -> None:
    app = console()
    data = data_of(app)
    for i, name in enumerate(("alpha", "beta", "gamma")):
        write_csv(data, f"{name}.csv", f"id\n{i}\n")  # different content: no duplicates
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: all(state(app, f"{n}.csv") == "loaded" for n in ("alpha", "beta", "gamma")))
        await refreshed(pilot)
        table = app.main.query_one(FilesTable)
        paths = lambda: sorted(r.path for r in table.shown)  # noqa: E731
        assert paths() == ["alpha.csv", "beta.csv", "gamma.csv"]

        await pilot.press("G")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("j")
        assert table.cursor_row == 1

        await pilot.press("slash", *"bet")
        # "be" already leaves beta.csv alone: wait for the view of the whole word, not the first that fits.
        await until(pilot, lambda: paths() == ["beta.csv"]
                    and "matching “bet”" in str(app.main.query_one("#files-caption").render()), what="filtered")
        await pilot.press("enter")
        assert app.focused is table
        await pilot.press("escape")
        await until(pilot, lambda: len(paths()) == 3, what="filter cleared")

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = {key for _, rows in app.screen.sections for key, _ in rows}
        assert {"q", "?", "space", "ctrl+p", "enter", "a", "r", "d", "/", "j", "k", "g", "G", "y", "n",
                "esc/backspace", "1", "4"} <= keys
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)

        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"pause intake")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: app.engine.paused, what="paused from the palette")


async def test_quit_stops_the_engine(console: Callable[..., ChuteApp]) -> None:
    app = console()
    write_csv(data_of(app), "one.csv", "id\n1\n")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state(app, "one.csv") == "loaded", what="loaded")
        # The load's worker ends just after `loaded` (archive, counters): until then q asks first.
        await until(pilot, app.engine.idle, what="the load's worker done")
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None, what="exit")
    assert app.return_code == 0
    assert app.engine.stopping and app.engine.ledger is None  # type: ignore[attr-defined]


def test_console_and_attach_refuse_clearly(tmp_path: Path, chdb_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = make_config(tmp_path, chdb_path)
    missing = Config(data_dir=tmp_path / "nope", state_dir=tmp_path / "s1", clickhouse_url=cfg.clickhouse_url)
    assert run_console(missing) == 2
    assert "data folder" in capsys.readouterr().err
    assert run_attached(cfg) == 2
    assert "no ledger" in capsys.readouterr().err
    engine = Engine(cfg)
    engine.start()
    engine.stop()  # a ledger, but no daemon holds it
    assert run_attached(cfg) == 2
    assert "no chute daemon is running" in capsys.readouterr().err
