"""`chute attach`: the console on a real headless daemon (its own process and embedded ClickHouse),
through the ledger and the command channel. Every action is carried out by the daemon."""

from __future__ import annotations

import gzip
import io
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Static

from chute.core.attach import AttachedEngine, RecordedSchemas
from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.tui.app import ChuteApp
from chute.tui.screens.confirm import ConfirmScreen
from chute.tui.screens.details import DetailsScreen
from chute.tui.screens.main import MainScreen
from chute.tui.widgets.status_line import StatusLine
from tests.conftest import ROOT, wait_for
from tests.procs import stop
from tests.tui_helpers import refreshed, select, state, until, write_csv

SIZE = (100, 30)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Config, subprocess.Popen]]:
    """A headless daemon in approval mode on three files: two good ones (held) and a broken one
    (quarantined: input is checked before approval is asked for)."""
    data, sd = tmp_path / "data", tmp_path / "state"
    write_csv(data, "a.csv", "id,name\n1,x\n2,y\n")
    write_csv(data, "b.csv", "id,name\n3,z\n")
    write_csv(data, "bad-0001.csv.gz", "not gzip\n")
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chute.core", "--no-ui", str(data), "--state-dir", str(sd), "--clickhouse",
         f"chdb://{tmp_path}/ch", "--settle-seconds", "0.2", "--require-approval"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (sd / Ledger.FILENAME).exists(), timeout=60, what="the daemon's ledger")

        def settled() -> bool:
            ledger = Ledger(sd, readonly=True)
            try:
                return {r.path: str(r.state) for r in ledger.list_files()} == {
                    "a.csv": "held", "b.csv": "held", "bad-0001.csv.gz": "quarantined"}
            except sqlite3.OperationalError:
                return False  # the daemon has created the file but not its tables yet
            finally:
                ledger.close()

        wait_for(settled, timeout=60, what="two files held for approval, one quarantined")
        yield Config(data_dir=data, state_dir=sd), proc
    finally:
        stop(proc, timeout=30)
        log.close()


async def test_attached_console_steers_the_daemon(daemon: tuple[Config, subprocess.Popen]) -> None:
    cfg, proc = daemon
    engine = AttachedEngine(cfg)
    app = ChuteApp(engine, refresh_seconds=0.2, actor="console:attach-test")
    data = cfg.data_dir
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        header = str(app.main.query_one(StatusLine).render())
        assert f"attached to pid {proc.pid}" in header and "RUNNING" in header

        await select(pilot, "a.csv")
        await pilot.press("a")
        await until(pilot, lambda: state(app, "a.csv") == "loaded", what="a.csv approved and loaded by the daemon")
        events = [e for e in app.reader.events(file_id=app.reader.current("a.csv").id) if e.detail == "approved"]
        assert events and events[-1].actor == "console:attach-test"

        # The daemon's target and the table it created, as it recorded them in the ledger: the
        # attached console opens no ClickHouse of its own.
        await refreshed(pilot)
        url = f"chdb://{cfg.data_dir.parent}/ch"
        assert app.view is not None and app.view.snap.target == url and app.view.snap.server_version
        header = str(app.main.query_one(StatusLine).render())  # the URL, shortened in the middle to fit
        assert "● chdb://" in header and header.rstrip().endswith("RUNNING")
        await select(pilot, "a.csv")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.details is not None,
                    what="details of a.csv")
        details = app.screen.details
        assert details.table_note == RecordedSchemas.schema_note
        assert [(c.name, c.type) for c in details.table_columns] == [("id", "Int64"), ("name", "String")]
        assert [(d.name, d.change) for d in details.diff] == [("id", ""), ("name", "")]
        shown = _text(app.screen.query_one("#schema", Static).content)
        assert "Int64" in shown and "String" in shown and RecordedSchemas.schema_note in shown
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))

        await select(pilot, "bad-0001.csv.gz", pane="quarantine")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen.details is not None)
        details = app.screen.details
        assert details.read_note and "not gzip" in details.read_note  # readable, not an exception
        await pilot.press("escape")
        row = app.reader.current("bad-0001.csv.gz")
        (data / row.moved_to).write_bytes(gzip.compress(b"id,name\n9,fixed\n"))
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("r")
        await until(pilot, lambda: state(app, "bad-0001.csv.gz") == "held", what="fixed file back, awaiting approval")
        await select(pilot, "bad-0001.csv.gz")
        await pilot.press("a")
        await until(pilot, lambda: state(app, "bad-0001.csv.gz") == "loaded", what="fixed file loaded")

        await select(pilot, "a.csv")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        # The daemon claims the version (state purged), deletes its rows, removes the file, then answers.
        await until(pilot, lambda: any("purged a.csv: 2 rows deleted, file removed" in n.message
                                       for n in app._notifications), what="the daemon's answer")
        assert state(app, "a.csv") == "purged" and not (data / "a.csv").exists()

        await pilot.press("p")
        await until(pilot, lambda: engine.paused, what="daemon paused")
        await refreshed(pilot)
        assert "PAUSED" in str(app.main.query_one(StatusLine).render())
        assert app.screen.active_bindings["p"].binding.action == "resume"
        await pilot.press("p")
        await until(pilot, lambda: not engine.paused, what="daemon resumed")
        # The daemon's own log says who paused and resumed it from the attached console.
        log = cfg.data_dir.parent / "daemon.log"
        await until(pilot, lambda: "intake resumed by console:attach-test" in log.read_text(), what="daemon log")
        assert "intake paused by console:attach-test" in log.read_text()

        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None, what="detached")
    assert app.return_code == 0
    assert proc.poll() is None  # quitting an attached console leaves the daemon running
    assert state_of_daemon(cfg, "b.csv") == "held"


def _text(renderable: object) -> str:
    """What a widget's Rich content reads as on a 100-column terminal."""
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def state_of_daemon(cfg: Config, path: str) -> str | None:
    ledger = Ledger(cfg.state_dir, readonly=True)
    try:
        row = ledger.current(path)
        return None if row is None else str(row.state)
    finally:
        ledger.close()


def test_a_command_whose_daemon_dies_is_withdrawn_not_left_for_the_next_daemon(tmp_path: Path) -> None:
    """Hostile review: the daemon killed while a console's purge waited left the purge queued, and
    the next daemon started (maybe days later) carried it out. Now it is withdrawn and said so."""
    from chute.core.errors import UsageError

    state = tmp_path / "state"
    state.mkdir()
    Ledger(state).close()
    alive = iter([True, True, True])  # alive when asked, then killed while the command waits
    cfg = Config(data_dir=tmp_path / "data", state_dir=state)
    eng = AttachedEngine(cfg, holder=lambda: "pid 1 daemon" if next(alive, False) else None, command_timeout=60)
    try:
        with pytest.raises(UsageError, match="stopped before carrying it out"):
            eng.command("purge", None, actor="t", file_id=1, expect="loaded")
    finally:
        eng.close()
    ledger = Ledger(state)
    try:
        assert ledger.pending_commands() == []
    finally:
        ledger.close()
