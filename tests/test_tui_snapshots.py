"""Snapshots of the console on the seeded demo (tui/demo.py): a real ledger with fixed rows and
timestamps, attached, with a frozen clock and UTC, so every run renders the same screen."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from chute.tui.app import ChuteApp
from chute.tui.demo import demo_app, prepare, wait_ready
from tests.colour_modes import Sixteen

DRIFTED = "events/events-2026-11-28-0007.csv"


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChuteApp]:
    app = demo_app(tmp_path)
    monkeypatch.chdir(tmp_path)  # the demo's ledger names its data folder relative to it
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"  # the timeline shows local times
    time.tzset()
    try:
        yield app
    finally:
        app.engine.stop()  # detach: its two ledger connections
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_main_screen_80x24(snap_compare, demo: ChuteApp) -> None:
    assert snap_compare(demo, terminal_size=(80, 24), run_before=wait_ready)


def test_main_screen_120x36_shows_sparklines(snap_compare, demo: ChuteApp) -> None:
    assert snap_compare(demo, terminal_size=(120, 36), run_before=wait_ready)


def test_details_of_a_drifted_file(snap_compare, demo: ChuteApp) -> None:
    async def open_details(pilot: Pilot) -> None:
        await wait_ready(pilot)
        await prepare(pilot, pane="files", select=DRIFTED, keys=["enter"])

    assert snap_compare(demo, terminal_size=(100, 36), run_before=open_details)


def test_help_screen(snap_compare, demo: ChuteApp) -> None:
    async def open_help(pilot: Pilot) -> None:
        await wait_ready(pilot)
        await prepare(pilot, keys=["question_mark"])

    assert snap_compare(demo, terminal_size=(100, 36), run_before=open_help)


def test_quarantine_pane(snap_compare, demo: ChuteApp) -> None:
    async def show(pilot: Pilot) -> None:
        await wait_ready(pilot)
        await prepare(pilot, pane="quarantine")

    assert snap_compare(demo, terminal_size=(80, 24), run_before=show)


def test_errors_pane(snap_compare, demo: ChuteApp) -> None:
    async def show(pilot: Pilot) -> None:
        await wait_ready(pilot)
        await prepare(pilot, pane="errors")

    assert snap_compare(demo, terminal_size=(100, 30), run_before=show)


def test_confirm_purge_names_the_version(snap_compare, demo: ChuteApp) -> None:
    async def confirm(pilot: Pilot) -> None:
        await wait_ready(pilot)
        await prepare(pilot, pane="files", select="orders/orders-2026-11-28-0012.csv", keys=["d"])

    assert snap_compare(demo, terminal_size=(80, 24), run_before=confirm)


# Without colour (NO_COLOR=1) and on a 16-colour terminal (tests/colour_modes.py), small and large.


@pytest.fixture
def colourless(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> ChuteApp:
    monkeypatch.setenv("NO_COLOR", "1")  # read when the app is built
    return request.getfixturevalue("demo")


@pytest.fixture
def sixteen(demo: ChuteApp) -> ChuteApp:
    demo._filters.append(Sixteen())
    return demo


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_main_screen_no_color(snap_compare, colourless: ChuteApp, size: tuple[int, int]) -> None:
    assert snap_compare(colourless, terminal_size=size, run_before=wait_ready)


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_main_screen_16_colours(snap_compare, sixteen: ChuteApp, size: tuple[int, int]) -> None:
    assert snap_compare(sixteen, terminal_size=size, run_before=wait_ready)
