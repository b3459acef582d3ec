"""Details of one file version: summary, full error, schema against the table (drift as a diff),
the first rows, and the timeline of its events. The file is read in a thread worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from chute.core.inspect import FileDetails
from chute.core.ledger import FileRow
from chute.core.states import FINAL, State
from chute.tui import format as fmt
from chute.tui.advice import advice, why
from chute.tui.widgets.auto_height import AutoHeightTable
from chute.tui.widgets.key_bar import KeyBar

DIFF_STYLE = {"new": ("+", "bold green"), "missing": ("-", "red"), "type": ("~", "yellow"),
              "nullable": ("~", "yellow"), "": (" ", "")}
DIFF_NOTE = {"new": "not in the table: holds the file (schema drift)", "missing": "not in the file: default/NULL",
             "type": "different type: ClickHouse converts, or refuses the batch",
             "nullable": "file has empty values, table column is not Nullable", "": ""}


class DetailsLoaded(Message):
    def __init__(self, details: FileDetails) -> None:
        super().__init__()
        self.details = details


class DetailsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "app.pop_screen", "Back", tooltip="back to the list"),
        Binding("a", "act('approve')", "Approve", tooltip="approve this held file"),
        Binding("r", "act('retry')", "Retry", tooltip="retry this failed or quarantined file"),
        Binding("d", "act('purge')", "Purge", tooltip="purge this file and its rows (asks y/n)"),
        Binding("j", "scroll('down')", "Down", show=False, tooltip="scroll down (vim)"),
        Binding("k", "scroll('up')", "Up", show=False, tooltip="scroll up (vim)"),
        Binding("g", "scroll('home')", "Top", show=False, tooltip="top"),
        Binding("G", "scroll('end')", "Bottom", show=False, tooltip="bottom"),
    ]

    def __init__(self, row: FileRow, inspect: Callable[[FileRow], FileDetails],
                 now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.row = row
        self.inspect = inspect
        self.now = now
        self.details: FileDetails | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="details-title")
        with VerticalScroll(id="details-body"):
            yield Static(id="summary")
            yield Static(id="error")
            yield Static("Schema: file against table", classes="section")
            yield Static("reading the file…", id="schema")
            yield Static("First rows", classes="section")
            yield AutoHeightTable(id="sample", cursor_type="none", zebra_stripes=True)
            yield Static(id="sample-note")
            yield Static("Timeline", classes="section")
            yield Static(id="timeline")
        yield KeyBar()

    def on_mount(self) -> None:
        self._title()
        self.reload()

    @work(thread=True, exclusive=True, group="details")
    def reload(self) -> None:
        self.post_message(DetailsLoaded(self.inspect(self.row)))

    @property
    def settled(self) -> bool:
        """The file was read and its first rows are laid out (tests and screenshots wait for this)."""
        if self.details is None:
            return False
        return not self.details.rows or self.query_one("#sample", DataTable).size.height > 1

    def follow(self, row: FileRow) -> None:
        """A refresh saw this file change: a new state re-reads everything, progress only the summary."""
        if row.updated_at == self.row.updated_at:
            return
        if row.state != self.row.state:
            self.row = row
            self.reload()
            return
        self.row = row
        self._title()
        if self.details is not None:
            self.details = replace(self.details, row=row)
            self.query_one("#summary", Static).update(self._summary(self.details))

    def on_details_loaded(self, message: DetailsLoaded) -> None:
        d = message.details
        self.details = d
        self.row = d.row
        self._title()
        self.query_one("#summary", Static).update(self._summary(d))
        self.query_one("#error", Static).update(self._error(d))
        self.query_one("#schema", Static).update(self._schema(d))
        table = self.query_one("#sample", DataTable)
        table.clear(columns=True)
        if d.rows:
            table.add_columns(*[Text(h) for h in d.header])
            table.add_rows([[Text(v) for v in r] for r in d.rows])
        table.display = bool(d.rows)
        note = self.query_one("#sample-note", Static)
        note.update(Text(d.read_note or "", style="italic"))
        note.display = bool(d.read_note)
        self.query_one("#timeline", Static).update(self._timeline(d))
        self.refresh_bindings()

    def _title(self) -> None:
        title = Text.assemble((" " + self.row.path, "bold"), "  ", fmt.state_text(self.row.state),
                              (f"  version #{self.row.id}", "dim"))
        self.query_one("#details-title", Static).update(title)

    def _summary(self, d: FileDetails) -> Table:
        r = d.row
        grid = Table.grid(padding=(0, 1))
        for _ in range(4):
            grid.add_column(no_wrap=True)
        now = self.now()
        grid.add_row(Text("table", style="dim"), r.table_name, Text("size", style="dim"), fmt.size(r.size))
        parsed = "none parsed" if r.rows is None else f"{fmt.count(r.rows)} parsed"
        tries = sum(1 for e in d.events if e.to_state == State.LOADING) or r.attempts  # a retry resets attempts
        grid.add_row(Text("rows", style="dim"), f"{parsed}, {fmt.count(r.rows_loaded)} loaded",
                     Text("attempts", style="dim"), str(tries))
        grid.add_row(Text("first seen", style="dim"), fmt.ago(now - r.first_seen),
                     Text("changed", style="dim"), fmt.ago(now - r.updated_at))
        if d.location != r.path:
            grid.add_row(Text("now at", style="dim"), d.location, "", "")
        unhashed = "not hashed: never read in full" if r.state in FINAL else "not hashed yet"
        grid.add_row(Text("sha256", style="dim"), f"{r.sha256[:32]}…" if r.sha256 else unhashed, "", "")
        return grid

    def _error(self, d: FileDetails) -> Text:
        text = Text()
        problem = why(d.row)
        if problem:
            text.append(f"{problem[0]}  ", style="bold red" if problem[0] == "Error" else "bold yellow")
            text.append(problem[1])
            if d.error_at:
                text.append(f"  ({d.error_at})", style="dim")
            text.append("\n")
        hint = advice(d.row)
        if hint:
            text.append("What to do  ", style="bold")
            text.append(hint, style="italic")
        return text

    def _schema(self, d: FileDetails) -> RenderableType:
        if not d.file_columns:
            return Text(d.read_note or "no columns read", style="italic")
        grid = Table(box=None, padding=(0, 1), show_edge=False)
        if d.table_columns is None:
            grid.add_column("column")
            grid.add_column("file type")
            grid.add_column("why")
            for c in d.file_columns:
                grid.add_row(Text(c.name), c.type, Text(d.why.get(c.name, ""), style="dim"))
        else:
            for name in ("", "column", "file", "table", ""):
                grid.add_column(name, no_wrap=name != "")
            for diff in d.diff:
                sign, style = DIFF_STYLE[diff.change]
                note = DIFF_NOTE[diff.change] or d.why.get(diff.name, "")  # no drift: why this type
                grid.add_row(Text(sign, style=style), Text(diff.name, style=style), diff.file_type or "—",
                             diff.table_type or "—", Text(note, style=style or "dim"))
        if not d.table_note:
            return grid
        return Group(grid, Text(d.table_note, style="italic dim"))

    def _timeline(self, d: FileDetails) -> Table:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column()
        for ev in d.events:
            change = Text.assemble(fmt.state_text(ev.from_state or "·"), " → ", fmt.state_text(ev.to_state)) \
                if ev.to_state else Text(ev.action)
            grid.add_row(time.strftime("%H:%M:%S", time.localtime(ev.ts)), ev.actor, change, Text(ev.detail or ""))
        return grid

    # -- keys -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "act":
            if self.app.daemon_gone:  # type: ignore[attr-defined]
                return None  # attached, and nothing would carry it out: shown, dimmed
            return True if self.app.action_applies(str(parameters[0]), self.row) else None  # type: ignore[attr-defined]
        return True

    def action_act(self, action: str) -> None:
        self.app.ask(action, self.row)  # type: ignore[attr-defined]

    def action_scroll(self, where: str) -> None:
        body = self.query_one("#details-body", VerticalScroll)
        {"down": body.scroll_down, "up": body.scroll_up, "home": body.scroll_home, "end": body.scroll_end}[where]()
