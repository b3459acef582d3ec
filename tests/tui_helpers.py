"""Helpers for the console's tests: wait on the app without fixed sleeps, write input files."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from chute.tui.app import ChuteApp
from chute.tui.widgets.ledger_table import LedgerTable


async def until(pilot: Pilot, predicate: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """Poll ``predicate`` while the app keeps running, up to ``timeout`` seconds (generous, as wait_for's)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = predicate()
        if value:
            return value
        if pilot.app._exception is not None:  # the console crashed: waiting longer shows nothing new
            raise AssertionError(f"the console failed while waiting for {what or predicate}") from pilot.app._exception
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}\n{describe(pilot.app)}")


def describe(app: Any) -> str:
    """What the console was doing when a wait timed out: a flake on a busy machine must be
    explainable from its report alone."""
    lines = [f"screens: {[type(s).__name__ for s in app.screen_stack]}, focused: {app.focused!r}"]
    lines += [f"worker {w.name} of {type(w.node).__name__} group={w.group} state={w.state.name}" for w in app.workers]
    screen = app.screen
    if hasattr(screen, "details"):
        details = screen.details
        rows = None if details is None else len(details.rows)
        sample = screen.query_one("#sample")
        lines.append(f"details: {'not loaded' if details is None else f'{rows} rows'}, sample size {sample.size} "
                     f"virtual {sample.virtual_size} display {sample.display} rows {sample.row_count} "
                     f"dims pending {sample._require_update_dimensions} layout pending {sample._layout_required}; "
                     f"screen layout pending {screen._layout_required} dirty {len(screen._dirty_widgets)} "
                     f"timer active {screen._update_timer._active.is_set()}; batch {app._batch_count}")
    for attr in ("refreshes", "_polling", "_tick_due", "_held", "_unpainted"):
        if hasattr(app, attr):
            lines.append(f"{attr}={getattr(app, attr)!r}")
    return "\n".join(lines)


def record_notes(app: ChuteApp) -> list[str]:
    """Every notification from now on, also those that timed out meanwhile (a slow machine: an action's
    note lives 6 s, and the load it started may take longer than that to be seen)."""
    seen: list[str] = []
    shown = app.notify

    def notify(message: str, *args: object, **kwargs: object) -> None:
        seen.append(str(message))
        shown(message, *args, **kwargs)  # type: ignore[arg-type]

    app.notify = notify  # type: ignore[method-assign]
    return seen


def state(app: ChuteApp, path: str) -> str | None:
    """The state the console's own ledger connection reads for PATH."""
    row = app.reader.current(path)
    return None if row is None else str(row.state)


async def refreshed(pilot: Pilot) -> None:
    """Until the console applied a view taken after this call."""
    app: ChuteApp = pilot.app  # type: ignore[assignment]
    seen = app.refreshes
    app.poll()
    await until(pilot, lambda: app.refreshes > seen, what="a refresh")


async def select(pilot: Pilot, path: str, pane: str = "files") -> None:
    """Show PANE and put its cursor on PATH (as j/k would), once the pane lists it, as it is now."""
    app: ChuteApp = pilot.app  # type: ignore[assignment]
    await refreshed(pilot)
    app.show_pane(pane)
    table = app.main.query_one(f"#{pane}-table", LedgerTable)

    def found() -> bool:
        row = next((r for r in table.shown if r.path == path), None)
        return row is not None and table.select_id(row.id)

    await until(pilot, found, what=f"{path} in the {pane} pane")
    await pilot.pause()
    assert table.selected is not None and table.selected.path == path


def write_csv(data: Path, rel: str, text: str, gz: bool = False) -> Path:
    """Write a file the way a producer should: to a temporary name, then rename into place."""
    path = data / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    tmp.rename(path)
    return path
