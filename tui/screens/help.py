"""Every key, generated from the bindings themselves so the help cannot drift from them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from chute.core.states import State
from chute.tui import format as fmt

_KEY_NAMES = {"question_mark": "?", "slash": "/", "escape": "esc", "space": "space", "enter": "enter", "asterisk": "*",
              "pagedown": "pgdn", "pageup": "pgup", "ctrl+home": "ctrl+home", "ctrl+end": "ctrl+end"}

STATE_HELP = {
    State.SEEN: "noticed, not yet known to be complete",
    State.SETTLING: "waiting until size and mtime stay quiet",
    State.QUEUED: "complete, waiting for a loader",
    State.LOADING: "being inserted (progress shown)",
    State.LOADED: "every row in ClickHouse, verified by count",
    State.DUPLICATE: "same content already loaded: skipped",
    State.HELD: "waits for you: approval, schema drift or changed content",
    State.FAILED: "ClickHouse refused or was unreachable; retried with backoff",
    State.QUARANTINED: "bad input, moved to _quarantine with a reason file",
    State.PURGED: "its rows deleted and the file removed on request",
}


def key_display(key: str) -> str:
    return "/".join(_KEY_NAMES.get(k, k) for k in key.split(","))


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, Binding) and b.description:
            rows.append((key_display(b.key), b.tooltip or b.description))
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close"),
        Binding("j,down", "scroll('down')", "Down", show=False),
        Binding("k,up", "scroll('up')", "Up", show=False),
        Binding("g,home", "scroll('top')", "First", show=False),
        Binding("G,end", "scroll('bottom')", "Last", show=False),
        Binding("pagedown,ctrl+d", "scroll('page_down')", "Page down", show=False),
        Binding("pageup,ctrl+u", "scroll('page_up')", "Page up", show=False),
    ]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("chute console — keys", style="bold"), id="help-title")
            yield Static(self._keys())
            yield Static(self._states())

    def _keys(self) -> Table:
        outer = Table.grid()
        for title, rows in self.sections:
            outer.add_row(Text(title, style="bold underline"))
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="bold cyan", no_wrap=True, min_width=14)
            grid.add_column()
            merged: dict[str, list[str]] = {}
            for key, what in rows:  # one line per key: space pauses or resumes
                if what not in merged.setdefault(key, []):
                    merged[key].append(what)
            for key, whats in merged.items():
                grid.add_row(key, " / ".join(whats))
            outer.add_row(grid)
        return outer

    def _states(self) -> Table:
        outer = Table.grid()
        outer.add_row(Text("File states", style="bold underline"))
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True, min_width=14)
        table.add_column()
        for state, what in STATE_HELP.items():
            table.add_row(fmt.state_text(state), what)
        outer.add_row(table)
        return outer

    def action_scroll(self, direction: str) -> None:
        scroll = self.query_one("#help", VerticalScroll)
        moves = {"down": scroll.scroll_down, "up": scroll.scroll_up, "top": scroll.scroll_home,
                 "bottom": scroll.scroll_end, "page_down": scroll.scroll_page_down, "page_up": scroll.scroll_page_up}
        moves[direction](animate=False)
