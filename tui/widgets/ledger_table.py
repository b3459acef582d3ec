"""A DataTable of ledger rows (file versions) that applies each refresh as a diff.

Rows are keyed by file id. A refresh adds new rows, removes gone ones, updates only the cells
whose content changed and re-sorts only when the order changed, so a table of hundreds of rows
costs almost nothing per tick. The cursor stays on its file, not on its row number: a row moving
under the cursor must never turn `d` into a purge of another file.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.color import Color
from textual.css.styles import RenderStyles
from textual.geometry import Region
from textual.screen import Screen
from textual.scrollbar import ScrollBar
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist, RowKey

from chute.core.ledger import FileRow
from chute.tui.widgets.steady_scrollbar import SteadyScrollBar

if TYPE_CHECKING:
    from chute.tui.view import View


@dataclass(frozen=True)
class Col:
    key: str
    label: str
    width: int  # content width; one more column of gap is added (cell_padding is 0 to save space)
    right: bool = False


class Order(str):
    """A cell that also carries its row's sort position (DataTable sorts on cell values only)."""

    rank: tuple[float, int]

    def __new__(cls, text: str, rank: tuple[float, int]) -> Order:
        obj = super().__new__(cls, text)
        obj.rank = rank
        return obj


class LedgerTable(DataTable[Any]):
    COLUMNS: ClassVar[list[Col]] = []
    ORDER_COLUMN: ClassVar[str] = "age"  # the column whose cells are Order values
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Details", tooltip="details of the selected file: schema, rows, timeline"),
        Binding("j", "cursor_down", "Down", show=False, tooltip="next row (vim)"),
        Binding("k", "cursor_up", "Up", show=False, tooltip="previous row (vim)"),
        Binding("g", "scroll_top", "First", show=False, tooltip="first row"),
        Binding("G", "scroll_bottom", "Last", show=False, tooltip="last row"),
        Binding("ctrl+d", "page_down", "Page down", show=False, tooltip="page down"),
        Binding("ctrl+u", "page_up", "Page up", show=False, tooltip="page up"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        # Before DataTable's __init__, whose watchers clear the caches.
        self._strips: LRUCache[tuple[Any, ...], Strip] = LRUCache(2000)  # finished lines: see _render_line
        self._cell_lines: LRUCache[tuple[Any, ...], list[list[Segment]]] = LRUCache(10000)  # cells: _render_cell
        self._versions: dict[RowKey, int] = {}  # row: bumped when any of its cells changes
        self._born: dict[RowKey, int] = {}  # row: when it was added
        self._cell_versions: dict[tuple[RowKey, ColumnKey], int] = {}
        self._version_clock = itertools.count()
        self._paint_looks: tuple[Style, tuple[Color, Color]] | None = None  # see render_lines
        self._paint_components: dict[tuple[str, ...], _KeptLooks] | None = None  # ... and get_component_styles
        super().__init__(cursor_type="row", cell_padding=0, **kwargs)
        self._rows: dict[str, FileRow] = {}
        self._models: dict[str, tuple[Any, ...]] = {}
        self._order: list[str] = []
        self._widths: dict[str, int] = {}
        self._marked: set[str] = set()  # rows marked with space for a bulk action (k9s)
        self._marks_later: set[str] = set()  # rows off screen whose mark is redrawn after the next paint
        self._rendered_width = -1
        self._width_hint = 0  # hidden: the width its pane will show it at (see fit_hidden)
        self._warmed_at = 0  # the version clock when warm() last rendered the rows on show
        self._shown_height = 0  # their number (the table's height then)
        self._components: tuple[object, ...] = ()  # the component styles the caches were rendered with
        self._looks: tuple[Style, ...] = ()
        self._window: tuple[int, int, int, int] | None = None  # while a diff is applied: _lines_on_show
        self._lines_changed: list[Region] = []  # ... and the lines it changed on show

    def on_mount(self) -> None:
        for col in self.COLUMNS:
            width = self.column_width(col)
            self._widths[col.key] = width
            self.add_column(_right(Text(col.label), width) if col.right else Text(col.label), width=_gap(width),
                            key=col.key)

    def column_width(self, col: Col) -> int:
        return col.width

    @property
    def room(self) -> int:
        """The width the columns are fitted to: the table's, or while hidden the one it will be shown at."""
        return self.size.width or self._width_hint

    def fit_hidden(self, width: int) -> bool:
        """Fit the columns of a hidden table (its pane not shown: size 0) to ``width``, the width
        of the panes: its first visit then finds them fitted. Fitting them when the pane is first
        shown re-rendered every visible row and laid the screen out a second time. True when
        the columns changed."""
        if self.size.width or not width or width == self._width_hint:
            return False
        self._width_hint = width
        if width != self._rendered_width:
            self._rendered_width = width
            self._update_count += 1  # every render DataTable kept is stale (as in _on_resize)
        return self._fit_columns()

    # -- what subclasses provide ----------------------------------------------------------

    def model(self, row: FileRow, view: View) -> tuple[Any, ...]:
        """What the row shows, as plain comparable values (one per column). The ORDER_COLUMN's
        value is ``(text, rank)``: the rank sorts, so a changed rank updates the cell too."""
        raise NotImplementedError

    def render_cell(self, key: str, value: Any, width: int) -> Any:
        return value

    # -- the diff -------------------------------------------------------------------------

    def apply(self, rows: list[FileRow], view: View) -> bool:
        """Make the table show ``rows`` in this order. True when anything changed."""
        with self._window_fixed():  # the same for every cell this diff updates
            return self._apply(rows, view)

    def _apply(self, rows: list[FileRow], view: View) -> bool:
        keep = self.selected_key
        fresh = {str(r.id): r for r in rows}
        changed = False
        gone = [k for k in self._models if k not in fresh]
        if len(gone) > 32 and len(gone) > len(self._models) // 2:
            # A new filter replaced most rows: DataTable.remove_row is O(rows), so start over.
            self.clear()
            self._models.clear()
            self._rows.clear()
            self._order = []
            gone = []
            changed = True
        self._marked &= set(fresh)
        for key in gone:
            self.remove_row(key)
            del self._models[key]
            self._rows.pop(key, None)
            changed = True
        for key, row in fresh.items():
            new = self.model(row, view)
            old = self._models.get(key)
            self._rows[key] = row
            if old is None:
                self.add_row(*self._cells(new, row), key=key)
                changed = True
            elif old != new:
                for col, a, b in zip(self.COLUMNS, old, new, strict=True):
                    if a != b:
                        self.update_cell(key, col.key, self._cell(col, b, row))
                changed = True
            self._models[key] = new
        order = list(fresh)
        if order != self._order:
            self._order = order
            self.sort(self.ORDER_COLUMN, key=lambda cell: cell.rank)
            changed = True
        if changed:
            self._keep_cursor(keep)
        return changed

    # -- render caches -----------------------------------------------------------------------
    #
    # DataTable keys every render cache on a table-wide generation that any change bumps (a cell,
    # a row added, a sort, a resize) and on the cursor's position, and drops them all on any
    # style update (a pane switch or a focus change re-applies the CSS of the whole pane). So a
    # pane switch, a jump back to rows seen before, an Age ticking on one row or a mark re-rendered
    # every cell of every visible row. Here finished lines (Strips) and rendered cells are kept by
    # what they show: the row (and the cell) and its version, bumped when it changes; its index
    # (a line carries it for mouse clicks); whether the cursor or the mouse is on it; the width
    # and the looks (styles, focus). A repaint renders only the cells that changed.

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        try:
            row_key, line_no = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        index = self._row_locations.get(row_key) if row_key in self._row_locations else None
        if index is None:  # the header
            return super()._render_line(y, x1, x2, base_style)
        cursor, hover = self.cursor_coordinate, self.hover_coordinate
        if self.cursor_type == "row":  # a row looks the same wherever the cursor is, unless on it
            on_cursor: object = cursor.row == index
            on_hover: object = hover.row == index
        else:
            on_cursor, on_hover = cursor, hover
        key = (row_key, self._versions.get(row_key), index, line_no, x1, x2, self.size.width, base_style, on_cursor,
               on_hover, self.cursor_type, self.show_cursor, self._show_hover_cursor, self._pseudo_class_state)
        strip = self._strips.get(key)
        if strip is None:
            strip = super()._render_line(y, x1, x2, base_style)
            self._strips.set(key, strip)
        return strip

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int, cursor: bool = False,
                     hover: bool = False) -> list[list[Segment]]:
        if row_index < 0 or column_index < 0:  # the header, row labels
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row = self._row_locations.get_key(row_index)
        col = self._column_locations.get_key(column_index)
        if row is None or col is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (row, col, self._born.get(row), self._cell_versions.get((row, col)), row_index, base_style, width,
               cursor, hover, self.show_cursor, self._show_hover_cursor, self._pseudo_class_state)
        lines = self._cell_lines.get(key)
        if lines is None:
            lines = self._one_line_cell(row, col, row_index, column_index, base_style, width, cursor, hover)
            if lines is None:
                lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._cell_lines.set(key, lines)
        return lines

    def _one_line_cell(self, row: RowKey, col: ColumnKey, row_index: int, column_index: int, base_style: Style,
                       width: int, cursor: bool, hover: bool) -> list[list[Segment]] | None:
        """What DataTable's Rich pipeline (markup, wrap, padding, three style layers) renders for a
        cell of plain text, unstyled or in one style, that fits its width: its text and the
        padding, each in the layered style. That pipeline took ~0.13 ms a cell: the Ages a refresh
        changes, and a page of rows a jump or a first visit shows, were most of their paint.
        None: anything else (spans, markup, a text too wide) is left to DataTable."""
        if not width or self.fixed_rows or self.fixed_columns:
            return None
        value = self._data[row][col]
        if isinstance(value, Text):
            if value.spans or value.justify not in (None, "default", "left") or "\n" in value.plain:
                return None
            plain, style = value.plain, value.style
        elif isinstance(value, str):
            if any(c in value for c in "[:\n"):  # markup or emoji codes: Text.from_markup reads them
                return None
            plain, style = value, ""
        else:
            return None
        if not plain.isprintable() or cell_len(plain) > width:
            return None
        component, post = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        pre = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component
        own = self.app.console.get_style(style) if style else None
        text = pre + Style.combine([Style.null(), own]) if own else pre
        text, pad = (text + post if text else post), (pre + post if pre else post)
        segments = [Segment(plain, text)]
        if cell_len(plain) < width:
            segments.append(Segment(" " * (width - cell_len(plain)), pad))
        return [segments]

    def update_cell(self, row_key: RowKey | str, column_key: ColumnKey | str, value: Any, *,
                    update_width: bool = False) -> None:
        """DataTable's, but the repaint covers only the changed row's line, if it is on screen (the
        stock one repaints the whole table), and only that cell's kept renders go stale."""
        row = row_key if isinstance(row_key, RowKey) else RowKey(row_key)
        col = column_key if isinstance(column_key, ColumnKey) else ColumnKey(column_key)
        if update_width:
            super().update_cell(row, col, value, update_width=True)
            self._touch(row, col)
            return
        if row not in self._row_locations or col not in self._column_locations:
            raise CellDoesNotExist(f"No cell exists for row_key={row!r}, column_key={col!r}.")
        self._data[row][col] = value
        self._cells_changed()
        self._touch(row, col)
        index = self._row_locations.get(row)
        scroll_y, height, top, width = self._window or self._lines_on_show()
        if index is not None and scroll_y <= index < scroll_y + height:  # else painted when scrolled to
            # Every row is one line high. Not DataTable's _refresh_region: it skips a hidden table,
            # whose kept lines the visit then showed (its size does not change, nothing repaints).
            line = Region(0, top + index, width, 1).translate(-self.scroll_offset)
            if self._window is not None:
                self._lines_changed.append(line)  # one refresh for the whole diff (_window_fixed)
            else:
                self.refresh(line)

    def _cells_changed(self) -> None:
        """DataTable's own caches (used when a cell is rendered anew) are stale. Its line offsets
        and ordered rows are keyed on the same count but do not change with a cell's content:
        carried over, not rebuilt for every row (500) at the next paint (~0.8 ms a refresh)."""
        old = self._update_count
        self._update_count = new = old + 1
        offsets = self._offset_cache.get(old)
        if offsets is not None:
            self._offset_cache[new] = offsets
        rows = self._ordered_row_cache.get((self.row_count, old))
        if rows is not None:
            self._ordered_row_cache[(self.row_count, new)] = rows

    def _lines_on_show(self) -> tuple[int, int, int, int]:
        """(first row on show, rows on show, header height, line width). Asking the widget its size
        and scroll walks the compositor: a refresh that changes sixty Ages asks once (apply)."""
        size = self.size or self._size  # hidden (its pane left): reported as 0, shown again at _size
        return (round(self.scroll_y), size.height, self.header_height if self.show_header else 0,
                max(size.width, self.virtual_size.width))

    @contextlib.contextmanager
    def _window_fixed(self) -> Iterator[None]:
        """Cells updated inside share one ask of the lines on show (_lines_on_show)."""
        self._window = self._lines_on_show()
        try:
            yield
        finally:
            self._window = None
            if self._lines_changed:
                lines, self._lines_changed = self._lines_changed, []
                self.refresh(*lines)

    def _touch(self, row: RowKey, col: ColumnKey) -> None:
        """A new version of the cell and its row: their kept renders are not used again."""
        self._versions[row] = self._cell_versions[row, col] = next(self._version_clock)

    def add_row(self, *cells: Any, height: int | None = 1, key: str | None = None, label: Any = None) -> RowKey:
        row = super().add_row(*cells, height=height, key=key, label=label)
        self._versions[row] = self._born[row] = next(self._version_clock)  # a key seen before a clear() is new
        return row

    def remove_row(self, row_key: RowKey | str) -> None:
        super().remove_row(row_key)
        row = row_key if isinstance(row_key, RowKey) else RowKey(row_key)
        self._versions.pop(row, None)
        self._born.pop(row, None)
        for col in self.columns:
            self._cell_versions.pop((row, col), None)

    def clear(self, columns: bool = False) -> LedgerTable:
        super().clear(columns)
        self._versions.clear()
        self._born.clear()
        self._cell_versions.clear()
        return self

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._strips.clear()
        self._cell_lines.clear()

    def settle(self) -> None:
        """What DataTable does at its next idle (column widths, the virtual size of new rows), now:
        a pane laid out ahead with the rows of the same refresh (MainScreen._warm_first) is laid
        out at its real size, not laid out again on its first visit."""
        if self._updated_cells:
            updated, self._updated_cells = self._updated_cells.copy(), set()
            self._update_column_widths(updated)
        if self._require_update_dimensions:
            self._require_update_dimensions = False
            new_rows, self._new_rows = self._new_rows.copy(), set()
            self._update_dimensions(new_rows)

    def warm(self) -> None:
        """Render the rows on show now, in the looks they have when the table has the focus (a
        pane's table gets it when the pane is shown), while the pane is laid out but not drawn
        (MainScreen._lay_out): its next visit finds them kept. The pretend focus changes only
        the pseudo-class the CSS reads (no Focus event, so no pane switch, no key goes here), and
        stays while the pane is hidden (see _on_blur)."""
        if not self.size or self.screen.focused is self:
            return  # the table shown renders by itself
        self._warmed_at = next(self._version_clock)
        self._shown_height = self.size.height
        self.has_focus = True  # the CSS is re-applied now (Textual updates styles synchronously)
        self.render_lines(Region(0, 0, self.size.width, self.size.height))

    def unwarmed(self) -> int:
        """Rows a visit would show that changed since :meth:`warm` rendered them (0 if never warmed)."""
        if not self._shown_height:
            return 0
        top = round(self.scroll_y)
        keys = (self._row_locations.get_key(i) for i in range(top, min(self.row_count, top + self._shown_height)))
        return sum(1 for key in keys if key is not None and self._versions.get(key, 0) > self._warmed_at)

    def render_lines(self, crop: Region) -> list[Strip]:
        self._check_styles()
        # The table's style and background walk the styles of every ancestor, and DataTable asks
        # for them once per line and once per row: a refresh whose Ages tick re-renders every row
        # on show. Nothing restyles the table while it renders, so they are read once per paint.
        self._paint_looks = (super().rich_style, super().background_colors)
        self._paint_components = {}
        try:
            return super().render_lines(crop)
        finally:
            self._paint_looks = self._paint_components = None

    def get_component_styles(self, *names: str) -> RenderStyles:
        """The same for the component styles: DataTable reads the header's Rich style (another walk
        of every ancestor's styles) for every row it renders, to use it only in row labels and
        fixed columns (none here)."""
        kept = self._paint_components
        if kept is None:
            return super().get_component_styles(*names)
        looks = kept.get(names)
        if looks is None:
            looks = kept[names] = _KeptLooks(super().get_component_styles(*names))
        return cast(RenderStyles, looks)

    @property
    def rich_style(self) -> Style:
        looks = self._paint_looks
        return looks[0] if looks is not None else super().rich_style

    @property
    def background_colors(self) -> tuple[Color, Color]:
        looks = self._paint_looks
        return looks[1] if looks is not None else super().background_colors

    def notify_style_update(self) -> None:
        """DataTable drops every cached render on any style update, and repaints. Here the caches
        go only when a style a row is drawn with changed: checked at the next paint by
        :meth:`_check_styles` (the component styles are updated after this call). The widget's
        own style and its focus are part of every cache key already, and a style that changed
        repaints the widget by itself (Textual's style setters, and its component-class pass,
        refresh what changed): an unconditional repaint here cost a second paint of the table on
        every pane switch (its focus moves, and with it the CSS of the pane)."""
        super(DataTable, self).notify_style_update()

    def _check_styles(self) -> None:
        components = tuple(self._component_styles.values())
        if len(components) == len(self._components) and all(map(operator.is_, components, self._components)):
            return  # no stylesheet pass since the last paint (the common case: compared by identity)
        self._components = components
        looks = tuple(self.get_component_rich_style(name) for name in sorted(self._component_styles))
        if looks != self._looks:
            self._looks = looks
            self._clear_caches()

    def _cells(self, model: tuple[Any, ...], row: FileRow) -> list[Any]:
        return [self._cell(col, value, row) for col, value in zip(self.COLUMNS, model, strict=True)]

    def _cell(self, col: Col, value: Any, row: FileRow) -> Any:
        if col.key == self.ORDER_COLUMN:
            text, rank = value
            return Order(text, rank)
        if col is self.COLUMNS[0] and str(row.id) in self._marked:
            # A mark reads without colour: a check and reverse video, in the first column.
            inner = self.render_cell(col.key, value, self._widths[col.key] - 2)
            return Text.assemble(("✓ ", "reverse bold"), inner if isinstance(inner, Text) else Text(str(inner)))
        cell = self.render_cell(col.key, value, self._widths[col.key])
        if not self._widths[col.key]:
            return ""
        if col.right:
            return _right(cell if isinstance(cell, Text) else Text(str(cell)), self._widths[col.key])
        return cell

    def _keep_cursor(self, key: str | None) -> None:
        if key is None or key not in self._models:
            return
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False)

    def _on_focus(self, event: events.Focus) -> None:
        """Widget's handler repaints the whole table on every Focus. A pane switch gives the table
        its focused looks ahead (MainScreen.action_pane), so the switch's paint draws them: the
        Focus arriving after that paint would paint the table a second time for nothing."""
        if self.has_focus:
            event.prevent_default()  # Widget's handler: has_focus (already set), a repaint, DescendantFocus
            if self.parent is not None:
                self.parent.post_message(events.DescendantFocus(self))

    def _on_blur(self, event: events.Blur) -> None:
        """A table whose pane was left keeps its focused looks: nobody sees them while the pane is
        hidden, and its next visit (which focuses it) finds them in place. Dropped and taken
        again, they cost a style pass of the table (~1.2 ms) after each switch's paint and
        another in the next switch. A table still shown (the filter box took the focus) loses them."""
        if not self.has_focus or self._pane_hidden():
            event.prevent_default()  # Widget's handler: has_focus = False, a repaint, DescendantBlur
            if self.parent is not None:
                self.parent.post_message(events.DescendantBlur(self))

    def _pane_hidden(self) -> bool:
        node: Any = self
        while isinstance(node, Widget) and not isinstance(node, Screen):
            if not node.display:
                return True
            node = node.parent
        return False

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        """Widget's, as a SteadyScrollBar (repainted only when its look changes)."""
        if self._vertical_scrollbar is None:
            self._vertical_scrollbar = self._steady_bar(vertical=True)
        return self._vertical_scrollbar

    @property
    def horizontal_scrollbar(self) -> ScrollBar:
        if self._horizontal_scrollbar is None:
            self._horizontal_scrollbar = self._steady_bar(vertical=False)
        return self._horizontal_scrollbar

    def _steady_bar(self, vertical: bool) -> ScrollBar:
        bar = SteadyScrollBar(vertical=vertical, name="vertical" if vertical else "horizontal",
                              thickness=self.scrollbar_size_vertical if vertical else self.scrollbar_size_horizontal)
        bar.display = False
        self.app._start_widget(self, bar)
        return bar

    def _on_resize(self, event: events.Resize) -> None:
        """Adaptive columns (path, table, reason) take the room a wider terminal gives; the
        selected row stays in view whatever the new height.

        Replaces DataTable's handler, which drops every cached render on any resize: a table
        shown again by a pane switch, or a line shorter because the filter box opened,
        re-rendered every visible row. A row's render depends on the width only."""
        event.prevent_default()
        if event.size.width != self._rendered_width:
            self._rendered_width = event.size.width
            self._update_count += 1  # what DataTable's handler did: every cached render is stale
        self.call_after_refresh(self._cursor_into_view)
        self._fit_columns()

    def _fit_columns(self) -> bool:
        changed = False
        for col in self.COLUMNS:
            width = self.column_width(col)
            if width != self._widths.get(col.key):
                self._widths[col.key] = width
                self.columns[col.key].width = _gap(width)  # type: ignore[index]
                changed = True
        if not changed:
            return False
        with self._window_fixed():
            for key, model in self._models.items():
                row = self._rows[key]
                for col, value in zip(self.COLUMNS, model, strict=True):
                    self.update_cell(key, col.key, self._cell(col, value, row))
        self.refresh()
        return True

    # -- selection ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor":
            return True if self.selected is not None else None
        return True

    @property
    def shown(self) -> list[FileRow]:
        """The rows on show, newest first."""
        return [self._rows[k] for k in self._order if k in self._models]

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - an empty or shrinking table has no selection
            return None

    @property
    def selected(self) -> FileRow | None:
        key = self.selected_key
        return self._rows.get(key) if key else None

    # -- marks (bulk actions) ---------------------------------------------------------------

    @property
    def marked(self) -> list[FileRow]:
        if not self._marked:  # the common case, asked several times per key (which keys apply)
            return []
        return [self._rows[k] for k in self._order if k in self._marked and k in self._models]

    def toggle_mark(self) -> None:
        key = self.selected_key
        if key is not None:
            self._set_marks(self._marked ^ {key})

    def mark_all(self) -> None:
        """Every row on show: the filtered set."""
        self._set_marks(set(self._models) if self._marked != set(self._models) else set())

    def clear_marks(self) -> None:
        self._set_marks(set())

    def _set_marks(self, marks: set[str]) -> None:
        """The rows on screen show their mark in this paint; the others (up to 500 with `*`) are
        redrawn right after it, so a bulk mark costs a key press what a page of rows costs."""
        changed, self._marked = marks ^ self._marked, marks
        top = round(self.scroll_y)
        rows = range(top, min(self.row_count, top + self.size.height))
        shown = {key.value for i in rows if (key := self._row_locations.get_key(i)) is not None and key.value}
        self._redraw_marks(changed & shown)
        later = changed - shown
        if later:
            if not self._marks_later:
                self.call_after_refresh(self._redraw_later)
            self._marks_later |= later

    def _redraw_later(self) -> None:
        later, self._marks_later = self._marks_later, set()
        self._redraw_marks(later)

    def _redraw_marks(self, keys: set[str]) -> None:
        first = self.COLUMNS[0]
        for key in keys:
            if key in self._models:  # drawn from the marks as they are now (_cell reads them)
                self.update_cell(key, first.key, self._cell(first, self._models[key][0], self._rows[key]))

    def select_id(self, file_id: int) -> bool:
        try:
            self.move_cursor(row=self.get_row_index(str(file_id)), animate=False)
        except RowDoesNotExist:
            return False
        return True


    def _cursor_into_view(self) -> None:
        # Not while hidden (a pane left: resized to nothing): "into view" of no lines scrolled
        # row 0 under the header, and the visit then showed the selected row off-screen.
        if self.row_count and self.size.height > self.header_height:
            self.scroll_to_region(self._get_row_region(self.cursor_row), animate=False, immediate=True,
                                  top=False)


class _KeptLooks:
    """A component's styles whose Rich style is read once (during one paint); the rest as they are."""

    def __init__(self, styles: RenderStyles) -> None:
        self._styles = styles
        self.rich_style = styles.rich_style

    def __getattr__(self, name: str) -> Any:
        return getattr(self._styles, name)


def _gap(width: int) -> int:
    """A column's width with its one-cell gap; a hidden column (width 0) takes no room at all."""
    return width + 1 if width else 0


def _right(text: Text, width: int) -> Text:
    """Right-aligned in ``width`` plus the one-cell gap (Rich's right justify would strip the gap)."""
    return Text.assemble(" " * max(0, width - text.cell_len), text, " ")
