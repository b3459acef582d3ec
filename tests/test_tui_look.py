"""Issue 10, defects 5 and 6: the console reads without colour, on 16 colours, and at 80x24.

On the seeded demo (tui/demo.py): a real ledger, attached, frozen clock, so every run is the same.
The screen is taken as the terminal would get it (every line filter applied), segment by segment.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console
from rich.segment import Segment
from rich.style import Style

from chute.tui.app import ChuteApp
from chute.tui.demo import demo_app, prepare, wait_ready
from chute.tui.widgets.files_table import FilesTable
from tests.colour_modes import Sixteen


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable]:
    monkeypatch.chdir(tmp_path)  # the demo's ledger names its data folder relative to it
    monkeypatch.setenv("TZ", "UTC")

    made: list[ChuteApp] = []

    def make() -> ChuteApp:
        made.append(demo_app(tmp_path))
        return made[-1]

    yield make
    for app in made:
        app.engine.stop()  # detach: its two ledger connections


def screen_segments(app: ChuteApp) -> list[Segment]:
    """What the terminal receives for the whole screen, with the app's filters applied."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      color_system="truecolor", legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return [s for s in console._record_buffer if s.text.strip()]


def lines(app: ChuteApp) -> list[str]:
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=False, record=True)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text().splitlines()


def _colourless(style: Style) -> bool:
    return (style.color is None or style.color.is_default) and (style.bgcolor is None or style.bgcolor.is_default)


def _rgb(color: object) -> object:
    """The colour as the 16-colour terminal shows it (the Sixteen filter already mapped it)."""
    if color is None or color.is_default:  # type: ignore[attr-defined]
        return None
    return color.get_truecolor()  # type: ignore[attr-defined]


# 5. NO_COLOR: no grey on near-black; what needs an operator stands out by attributes.
async def test_no_color_marks_operator_states_and_the_alert_by_attributes(demo, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = demo()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ready(pilot)
        segments = screen_segments(app)
        for state in ("held", "failed", "quarantined"):
            cells = [s for s in segments if s.text.strip() == state]
            assert cells, state
            assert all(_colourless(s.style) for s in cells), (state, [str(s.style) for s in cells])
            assert all(s.style.bold and s.style.underline for s in cells), state
        badge = next(s for s in segments if "CRITICAL" in s.text)
        assert badge.style.reverse and _colourless(badge.style), str(badge.style)
        dimmed = [s for s in segments if s.text.strip() in ("a", "Approve", "r", "Retry")]
        assert dimmed and all(s.style.strike for s in dimmed), [str(s.style) for s in dimmed]
        enabled = [s for s in segments if s.text.strip() in ("Filter", "Quit")]
        assert enabled and not any(s.style.strike for s in enabled)


# 5. 16 colours (TERM=xterm): disabled keys and operator states keep a colour of their own.
async def test_sixteen_colours_keep_disabled_keys_visible(demo) -> None:
    app = demo()
    app._filters.append(Sixteen())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ready(pilot)
        segments = screen_segments(app)
        for label in ("Approve", "Retry", "quarantined", "CRITICAL"):
            seg = next(s for s in segments if s.text.strip() == label or label in s.text)
            fg, bg = _rgb(seg.style.color), _rgb(seg.style.bgcolor)
            assert fg != bg, (label, str(seg.style))


# 6. 80x24: the reason is on screen, cuts end in …, ^p has its label, the selection stays in view.
async def test_80x24_shows_reason_and_next_step_first(demo) -> None:
    app = demo()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_ready(pilot)
        text = lines(app)
        header = next(i for i, line in enumerate(text) if line.startswith("Path"))
        assert "Reason" in text[header]
        assert text[header].index("Reason") <= 60, "the reason must get real room"
        failed = next(line for line in text if " failed " in line and "yments-0003" in line)
        assert "ClickHouse refused" in failed and failed.rstrip().endswith("…")
        alert = next(line for line in text if "CRITICAL" in line)
        assert alert.rstrip().endswith("…")
        assert text[-1].rstrip().endswith("^p Commands")
        await prepare(pilot, pane="files", select="events/events-2026-11-28-0007.csv")
        sel = [line for line in lines(app)[-4:-1] if line.strip()]
        assert any("→" in line for line in sel), sel  # the next step is shown, wrapped if need be
        assert all(len(line.rstrip()) <= 80 for line in sel)
        # A resize that hides the selected row scrolls it back into view.
        table = app.main.query_one(FilesTable)
        table.move_cursor(row=table.row_count - 1)
        await pilot.pause()
        await pilot.resize_terminal(80, 12)
        await pilot.pause(0.2)
        region = table._get_row_region(table.cursor_row)
        assert table.scroll_y < region.y < table.scroll_y + table.size.height, region  # under the header


def test_exit_summary_without_a_ledger_is_one_line(tmp_path: Path) -> None:
    from chute.core.config import Config
    from chute.tui.app import exit_summary

    cfg = Config(data_dir=tmp_path, state_dir=tmp_path / "none")
    assert exit_summary(cfg, 0.0, attached=True) == "chute: detached"
    assert exit_summary(cfg, 0.0, attached=False) == "chute: stopped"
