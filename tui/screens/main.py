"""The main screen: header, rates strip, and the Files / Rates / Errors / Quarantine panes.

80x24 shows one pane at a time under a one-line rates strip; from 110x32 up, sparklines for
rows/s, MB/s and files/min sit above the panes as well.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, DataTable, Input, Static, TabbedContent, TabPane

from chute.core.ledger import FileRow
from chute.tui import format as fmt
from chute.tui.view import FileQuery, View
from chute.tui.widgets.alert_bar import AlertBar
from chute.tui.widgets.errors_table import ErrorsTable
from chute.tui.widgets.files_table import FilesTable
from chute.tui.widgets.key_bar import KeyBar
from chute.tui.widgets.ledger_table import LedgerTable
from chute.tui.widgets.panes import Panes
from chute.tui.widgets.quarantine_table import QuarantineTable
from chute.tui.widgets.rates import Metrics, RatesPanel
from chute.tui.widgets.rates_strip import RatesStrip
from chute.tui.widgets.selection_line import SelectionLine
from chute.tui.widgets.status_line import StatusLine

if TYPE_CHECKING:
    from chute.tui.app import ChuteApp

class MainScreen(Screen[None]):
    # Screen's own `focused` repaints the whole screen on every focus change: with a pane switch
    # that was a second full render after the switch's layout paint. Focus looks come from CSS
    # (:focus), whose changes repaint the widgets they touch by themselves.
    focused: Reactive[Widget | None] = Reactive(None, repaint=False)
    QUIET = 0.5  # seconds without a key before hidden panes' changed rows are rendered ahead
    WARM_ROWS = 4  # ... when at least this many rows on show changed
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", tooltip="approve the selected held file"),
        Binding("r", "retry", "Retry", tooltip="retry the selected failed or quarantined file"),
        Binding("d", "purge", "Purge", tooltip="delete the selected file and the rows it loaded (asks y/n)"),
        # priority: runs as the key arrives, so keys typed right after it already reach the box
        Binding("slash", "filter", "Filter", priority=True,
                tooltip="filter files: words match path, table, error; state:held"),
        Binding("space", "mark", "Mark", tooltip="mark or unmark the selected file; a/r/d then act on the marked"),
        Binding("asterisk", "mark_all", "Mark all", show=False,
                tooltip="mark every file shown (the filtered set), or unmark all"),
        Binding("escape", "clear_filter", "Clear filter", tooltip="clear the filter"),
        Binding("1", "pane('files')", "Files", show=False, tooltip="Files pane"),
        Binding("2", "pane('rates')", "Rates", show=False, tooltip="Rates pane"),
        Binding("3", "pane('errors')", "Errors", show=False, tooltip="Errors pane"),
        Binding("4", "pane('quarantine')", "Quarantine", show=False, tooltip="Quarantine pane"),
    ]

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield RatesStrip(id="strip")
        yield AlertBar(id="alerts")
        yield Metrics(id="overview")
        with Panes(id="panes"):
            with TabPane("Files", id="files"):
                yield Static(id="files-caption")
                yield FilesTable(id="files-table")
                yield Input(placeholder="filter: words match path, table or error; state:held", id="filter")
                yield SelectionLine(id="files-sel")
            with TabPane("Rates", id="rates"):
                yield RatesPanel()
            with TabPane("Errors", id="errors"):
                yield ErrorsTable(id="errors-table")
                yield SelectionLine(id="errors-sel")
            with TabPane("Quarantine", id="quarantine"):
                yield QuarantineTable(id="quarantine-table")
                yield SelectionLine(id="quarantine-sel")
        yield KeyBar()

    @property
    def chute(self) -> ChuteApp:
        return cast("ChuteApp", self.app)

    def on_mount(self) -> None:
        self._keys_state: tuple[object, ...] = ()
        self._blurred_once = False
        self._laid_out: set[str] = {"files"}  # panes laid out once (shown, or out of sight)
        self._to_warm: list[str] = []  # hidden panes to lay out or whose changed rows to render
        self._warm_due = False
        self._warm_step_at = 0.0  # time.monotonic() when the last pane was warmed
        self._warmed_once = False
        self._labels: dict[str, str] = {}
        self.query_one(FilesTable).focus()
        self._tables = list(self.query(LedgerTable))  # composed once; a query walks the DOM (every second)
        for table in self._tables:
            # Now, as the cursor moves, not when RowHighlighted arrives (four message hops later,
            # usually after a paint): the selection line is drawn in the same paint as the cursor.
            self.watch(table, "cursor_coordinate", self._selection_changed, init=False)
        self.call_after_refresh(self.chute.start_polling)

    # -- applying a refresh (inside the app's batch_update) ---------------------------------

    def show(self, view: View) -> None:
        before = self.selected
        self.query_one(StatusLine).show(view)
        self.query_one(RatesStrip).show(view)
        self.query_one(AlertBar).show(view.snap.alerts)
        overview = self.query_one("#overview", Metrics)
        if overview.display:
            overview.show(view)
        if self.query_one(TabbedContent).active == "rates":
            self.query_one(RatesPanel).show(view)
        self._fit_hidden()
        self.query_one(FilesTable).apply(view.files, view)
        self.query_one(ErrorsTable).apply(view.errors, view)
        self.query_one(QuarantineTable).apply(view.quarantine, view)
        self._captions(view)
        # Hidden panes are laid out with the first view, and their changed rows rendered at idle. A
        # few changed rows (an Age ticking) cost a visit ~1 ms each, less than a warm-up (~15 ms).
        if self._warmed_once:
            self._warm_later([p for p in ("files", "errors", "quarantine")
                              if self._table(p).unwarmed() >= self.WARM_ROWS])
        else:
            self._warm_first()
        self._warmed_once = True
        after = self.selected
        if after != before or (after is not None and after.state == "loading"):
            self._selection_changed()

    # -- first visits cost what later ones do ------------------------------------------------

    @property
    def warming(self) -> bool:
        """Hidden panes still to lay out or render ahead (on timers: tests wait for it to end)."""
        return bool(self._to_warm) or self._warm_due

    def _warm_first(self) -> None:
        """Every hidden pane laid out (three passes) and rendered now, with the first view: the
        console shows its first rows ~50 ms later, but the first keys typed no longer take it (on
        timers, they took the warm-up of one to three panes each: 25-99 ms of CPU in bench.console)."""
        shown = self.query_one(ContentSwitcher).current
        panes = [p for p in ("rates", "errors", "quarantine", "files") if p != shown]
        if not self.is_current:  # another screen on top: at idle, later
            self._warm_later(panes)
            return
        for pane in panes:
            self._lay_out(pane, passes=1 if pane in self._laid_out else 3)
            self._laid_out.add(pane)

    def _warm_later(self, panes: list[str]) -> None:
        self._to_warm += [p for p in panes if p not in self._to_warm]
        if self._to_warm and not self._warm_due:
            self._warm_due = True
            self.set_timer(0.05, self._warm_next)

    def _warm_next(self) -> None:
        """One pane per idle moment: a key never waits behind more than one."""
        self._warm_due = False
        shown = self.query_one(ContentSwitcher).current
        self._to_warm = [p for p in self._to_warm if p != shown]  # the shown pane renders by itself
        if not self._to_warm or not self.is_current:
            return  # another screen on top: resumed by the next view
        if self._to_warm[0] in self._laid_out and time.monotonic() - self.chute.last_key < self.QUIET:
            # Rows changed while hidden: rendered once the keys pause, never between two keys.
            self._warm_due = True
            self.set_timer(self.QUIET, self._warm_next)
            return
        if not self._warm_step_allowed():
            self._warm_due = True
            self.set_timer(0.05, self._warm_next)
            return
        pane = self._to_warm.pop(0)
        self._lay_out(pane, passes=1 if pane in self._laid_out else 3)
        self._laid_out.add(pane)
        self._warm_step_at = time.monotonic()
        self._warm_later([])

    def _warm_step_allowed(self) -> bool:
        """Input first: while keys come, at most one pane is warmed per key, after its paint. The
        first panes' warm-up (~10-15 ms each) otherwise all landed on the first key or two typed
        after the console opened; with no key for QUIET seconds, one pane per timer. Never while the
        app has messages waiting (a key typed goes first)."""
        app = self.chute
        if app.key_unpainted or app.message_queue_size:
            return False
        return time.monotonic() - app.last_key >= self.QUIET or app.last_key > self._warm_step_at

    def _lay_out(self, pane: str, passes: int) -> None:
        """A widget's first layout asks for two more (its sizes settle in steps): on a pane's first
        visit that was three layout passes of the screen instead of one. Here the pane is laid
        out while nothing is drawn (a batch: no output, no paint), then hidden again, and its table
        renders the rows it will show (LedgerTable.warm)."""
        switcher = self.query_one(ContentSwitcher)
        shown, hidden = switcher.visible_content, switcher.get_child_by_id(pane)
        # No Hide/Show events: the shown pane's focused table, told it was hidden, would
        # give up the focus; the warmed pane gets them when it is really shown.
        table = self._table_of(pane)
        if table is not None:
            table.settle()
        with self.app.batch_update(), self.prevent(events.Hide, events.Show):
            if pane == "rates" and self.chute.view is not None:
                self.query_one(RatesPanel).show(self.chute.view)  # laid out with its content
            if shown is not None:
                shown.display = False
            hidden.display = True
            for _ in range(passes):  # a first layout settles in three passes, later ones in one
                self._refresh_layout()
            if table is not None:
                table.warm()
            else:  # the Rates pane: its sparklines and texts, drawn now, are kept until they change
                for widget in hidden.walk_children(Widget, with_self=True):
                    if widget.display and widget.size:
                        widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
            focused = self.focused
            if isinstance(focused, LedgerTable) and not self._blurred_once:
                # A table's first blur (its pane left) re-applies its scrollbars' CSS with a
                # layout pass that later ones do not need: done here once, out of sight.
                self._blurred_once = True
                focused.has_focus = False
                focused.has_focus = True
            hidden.display = False
            if shown is not None:
                shown.display = True
            self._refresh_layout()

    def _table_of(self, pane: str) -> LedgerTable | None:
        return None if pane == "rates" else self._table(pane)

    def _table(self, pane: str) -> LedgerTable:
        return self.query_one(f"#{pane}-table", LedgerTable)

    def _fit_hidden(self) -> None:
        """The tables of hidden panes fit their columns to the panes' width now, not on their first visit."""
        width = self.query_one(ContentSwitcher).size.width
        for table in self._tables:
            table.fit_hidden(width)

    def _captions(self, view: View) -> None:
        shown = len(view.files)
        if view.query.error:
            caption = f"✗ filter: {view.query.error}"
        elif view.query.text:
            what = f"newest {shown} matching" if view.files_capped else f"{shown} matching"
            caption = f"{what} “{view.query.text}” (of {fmt.plural(view.total_files, 'file')})"
        elif view.files_capped:
            caption = f"newest {shown} of {fmt.plural(view.total_files, 'file')} (/ to filter)"
        else:
            caption = f"{fmt.plural(shown, 'file')}, newest first"
        marked = len(self.query_one(FilesTable).marked)  # the caption is the Files pane's
        if marked:
            caption += f" · {marked} marked (a/r/d act on them, space unmarks)"
        errors, quarantined = len(view.errors), view.count("quarantined")
        labels = {
            "#files-caption": caption,
            "files": f"Files {fmt.count(view.total_files)}",
            "errors": f"Errors {errors}" if errors else "Errors",
            "quarantine": f"Quarantine {quarantined}" if quarantined else "Quarantine",
        }
        tabs = self.query_one(TabbedContent)
        for key, text in labels.items():
            if self._labels.get(key) == text:
                continue  # an unchanged label must not cost a layout pass every second
            self._labels[key] = text
            if key.startswith("#"):
                self.query_one(key, Static).update(text, layout=False)  # one fixed line: no layout pass
            else:
                tabs.get_tab(key).label = text

    # -- selection ------------------------------------------------------------------------

    @property
    def active_table(self) -> LedgerTable | None:
        pane = self.query_one(TabbedContent).active
        if pane == "rates" or not pane:
            return None
        return self.query_one(f"#{pane}-table", LedgerTable)

    @property
    def selected(self) -> FileRow | None:
        table = self.active_table
        return table.selected if table is not None else None

    def _selection_changed(self) -> None:
        table = self.active_table
        if table is not None:
            pane = table.id.removesuffix("-table") if table.id else ""
            self.query_one(f"#{pane}-sel", SelectionLine).show(table.selected, self.chute.view)
        # Bindings are refreshed only when a key turns enabled or disabled, not on every cursor move.
        keys = tuple(self.check_action(a, ()) for a in ("approve", "retry", "purge")) + (table is None,)
        if keys != self._keys_state:
            self._keys_state = keys
            self.refresh_bindings()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._selection_changed()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_details()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._laid_out.add(str(event.pane.id))
        table = self.active_table
        if table is not None:
            # focus() repaints the table even when it has the focus. The filter box (in the Files
            # pane) keeps it: `/` from another pane focused it before this message came.
            typing = table is self._table("files") and self.focused is self.query_one("#filter", Input)
            if self.focused is not table and not typing:
                table.focus()
        elif self.chute.view is not None:
            self.query_one(RatesPanel).show(self.chute.view)
        self._selection_changed()

    # -- keys -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("approve", "retry", "purge") and self.chute.daemon_gone:
            return None  # attached, and nothing would carry it out: shown, dimmed
        if action in ("approve", "retry", "purge"):
            if self.active_table is None:
                return False  # the Rates pane has no files to act on
            marked = self.active_table.marked
            if marked:
                return True if any(self.chute.action_applies(action, r) for r in marked) else None
            return True if self.chute.action_applies(action, self.selected) else None
        if action == "details":
            return True if self.selected is not None else None
        if action == "clear_filter":
            return bool(self.query_one("#filter", Input).display or self.chute.query_text)
        if action == "filter":
            return not self.query_one("#filter", Input).has_focus  # there, / is a character
        if action in ("mark", "mark_all"):
            return self.active_table is not None and self.active_table.row_count > 0
        return True

    def action_details(self) -> None:
        if self.selected is not None:
            self.chute.open_details(self.selected)

    def action_approve(self) -> None:
        self._ask("approve")

    def action_retry(self) -> None:
        self._ask("retry")

    def action_purge(self) -> None:
        self._ask("purge")

    def _ask(self, action: str) -> None:
        table = self.active_table
        marked = table.marked if table is not None else []
        if marked:
            self.chute.ask_many(action, marked)
            return
        row = self.selected
        if row is not None:
            self.chute.ask(action, row)

    def action_mark(self) -> None:
        if self.active_table is not None:
            self.active_table.toggle_mark()
            self.active_table.action_cursor_down()
            self._marks_changed()

    def action_mark_all(self) -> None:
        if self.active_table is not None:
            self.active_table.mark_all()
            self._marks_changed()

    def clear_marks(self) -> None:
        for table in self.query(LedgerTable):
            table.clear_marks()
        self._marks_changed()

    def _marks_changed(self) -> None:
        if self.chute.view is not None:
            self._captions(self.chute.view)
        self._keys_state = ()
        self._selection_changed()

    def action_pane(self, pane: str) -> None:
        if pane == "rates" and self.chute.view is not None:
            # Before the switch: the panel's new lines are laid out in the switch's own layout pass.
            self.query_one(RatesPanel).show(self.chute.view)
        # Everything the switch changes is changed now, so that it is drawn in one paint: the tab
        # underline, the table's focused looks, the selection line and the key bar each used to
        # arrive after the first paint (a message or a callback later) and paint again.
        self.query_one(TabbedContent).active = pane
        self._underline(pane)
        if pane != "rates":  # focused now, not when TabActivated arrives: one paint of the table, not two
            table = self._table(pane)
            self.set_focus(table, scroll_visible=False)
            if self.focused is table:  # drawn focused in this paint, not when Focus arrives (LedgerTable._on_focus)
                table.has_focus = True
        elif isinstance(self.focused, LedgerTable):
            # The Rates pane has nothing to focus. Left to the layout, the table hidden lost its
            # focus after the switch's paint: its blur and the key bar then painted a second time.
            # It keeps its focused looks while hidden (LedgerTable._on_blur).
            self.set_focus(None, scroll_visible=False)
        self._selection_changed()
        self.query_one(KeyBar).update_keys()

    def _underline(self, pane: str) -> None:
        """Tabs moves its underline after the next paint (call_after_refresh), a second paint per
        switch; put in place now, the later move finds it there (no change, no paint)."""
        tab = self.query_one(TabbedContent).get_tab(pane)
        start, end = tab.virtual_region.shrink(tab.styles.gutter).column_span
        underline: Any = self.query_one("Underline")  # textual.widgets._tabs.Underline, not exported
        underline.highlight_start, underline.highlight_end = start, end

    def action_filter(self) -> None:
        self.action_pane("files")
        box = self.query_one("#filter", Input)
        box.display = True
        self.set_focus(box)  # now, not after a refresh: the next key must land in the box
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.chute.set_filter("")
        self.query_one(FilesTable).focus()
        self.refresh_bindings()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.chute.set_filter(event.value, echo=False)  # never write back into the box being typed in
        event.input.set_class(bool(FileQuery(event.value).error), "-invalid")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.display = False
        self.query_one(FilesTable).focus()
        self.refresh_bindings()

    def show_filter(self, text: str) -> None:
        """The filter was set from elsewhere (command palette)."""
        box = self.query_one("#filter", Input)
        with box.prevent(Input.Changed):
            box.value = text
        box.set_class(bool(FileQuery(text).error), "-invalid")
        box.display = bool(text)
        self.refresh_bindings()
