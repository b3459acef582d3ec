"""The Fleet screen: host A's console (in-process engine) sees host B (a daemon subprocess) on the
same ClickHouse over HTTP, drills into B's held file, and approves it; B carries it out."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import uuid
from pathlib import Path

from chute.core.engine import Engine
from chute.core.ledger import Ledger
from chute.tui.app import ChuteApp
from chute.tui.screens.confirm import ConfirmScreen
from chute.tui.screens.fleet import FleetScreen
from chute.tui.screens.help import HelpScreen
from tests.conftest import ROOT, HttpTarget, chute_cmd, make_config
from tests.test_fleet_daemons import _env
from tests.tui_helpers import record_notes, until, write_csv


def b_state(state_dir: Path, rel: str) -> str | None:
    if not (state_dir / Ledger.FILENAME).exists():
        return None
    ledger = Ledger(state_dir, readonly=True)
    try:
        row = ledger.current(rel)
        return None if row is None else str(row.state)
    except sqlite3.OperationalError:  # the daemon is still creating its ledger
        return None
    finally:
        ledger.close()


async def test_console_on_host_a_approves_a_file_on_host_b(http_target: HttpTarget, tmp_path: Path) -> None:
    db = f"tuifleet_{uuid.uuid4().hex[:8]}"
    b_data, b_state_dir = tmp_path / "b" / "data", tmp_path / "b" / "state"
    b_data.mkdir(parents=True)
    write_csv(b_data, "invoices.csv", "id,total\n1,10\n")
    write_csv(b_data, "refunds.csv", "id,total\n1,-3\n")
    daemon = subprocess.Popen(chute_cmd("--no-ui", str(b_data), "--state-dir", str(b_state_dir)), cwd=ROOT,
                              env=_env(http_target, db, "host-b", CHUTE_REQUIRE_APPROVAL="true"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = Engine(make_config(tmp_path / "a", http_target, database=db, fleet_mirror=True, fleet_host="host-a",
                                fleet_interval=0.5), mode="console")
    engine.start()
    try:
        app = ChuteApp(engine, refresh_seconds=0.5, actor="console:alice")
        seen = record_notes(app)  # a note lives 5-6 s; B's round trip through the mirror may take longer
        async with app.run_test(size=(110, 30)) as pilot:
            await until(pilot, lambda: b_state(b_state_dir, "invoices.csv") == "held"
                        and b_state(b_state_dir, "refunds.csv") == "held", timeout=90, what="B holds its files")
            await pilot.press("f")
            screen = app.screen
            assert isinstance(screen, FleetScreen)

            def hosts() -> set[str]:
                table = screen.hosts_table
                return {str(table.get_row_at(i)[0]) for i in range(table.row_count)}

            await until(pilot, lambda: hosts() == {"host-a", "host-b"}, timeout=60, what="both hosts listed")
            # Drill into host B: its held files, from its mirror.
            while screen.hosts_table.selected_host != "host-b":
                await pilot.press("down")
            await until(pilot, lambda: sorted(f.path for f in screen.files_table.files) == ["invoices.csv",
                                                                                             "refunds.csv"],
                        timeout=30, what="B's held files")
            await pilot.press("tab")
            assert screen.files_table.has_focus
            while screen.files_table.selected.path != "invoices.csv":
                await pilot.press("down")
            await pilot.press("r")  # retry does not apply to a held file: refused here, nothing sent
            await pilot.press("a")
            await until(pilot, lambda: b_state(b_state_dir, "invoices.csv") == "loaded", timeout=60,
                        what="B loads the approved file")
            await until(pilot, lambda: any("host-b: approved invoices.csv" in n for n in seen), timeout=30,
                        what="B's answer")
            assert any("retry does not apply" in n for n in seen)
            assert b_state(b_state_dir, "refunds.csv") == "held"
            # Purge asks first; "n" sends nothing.
            await until(pilot, lambda: [f.path for f in screen.files_table.files] == ["refunds.csv"], timeout=30)
            await pilot.press("d")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            assert b_state(b_state_dir, "refunds.csv") == "held"
            # The help lists the Fleet screen's keys; escape goes back to the panes.
            await pilot.press("escape")
            assert not isinstance(app.screen, FleetScreen)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
        ledger = Ledger(b_state_dir, readonly=True)
        try:
            actors = [e.actor for e in ledger.events() if e.from_state == "held" and e.to_state == "queued"]
        finally:
            ledger.close()
        assert actors == ["console:alice@host-a (fleet)"]
    finally:
        engine.stop()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
