"""A small DataTable whose columns fit the terminal's width: too wide, the flexible columns (names,
reasons) are shortened with …, and when that is not enough the least needed columns are left
out, lowest priority first, as the Files table does. Used by the Fleet screen's two tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.widgets import DataTable

from chute.tui import format as fmt

GAP = 2  # DataTable's cell padding: one column each side


@dataclass(frozen=True)
class Fit:
    key: str
    label: str
    keep: int  # priority: when the table is too wide, the lowest goes first
    least: int = 0  # a flexible column's narrowest (…); 0: fixed, shown whole or not at all
    path: bool = False  # cut in the middle, so the file name at the end stays


def widths(cols: list[Fit], natural: dict[str, int], room: int) -> dict[str, int]:
    """Each shown column's width, in ``room`` cells: natural widths when they fit; else the
    lowest-priority columns go until the rest fits at their narrowest, and the flexible ones
    share what is left, up to their natural widths."""
    shown = list(cols)

    def least(c: Fit) -> int:
        return min(natural[c.key], c.least) if c.least else natural[c.key]

    while len(shown) > 1 and sum(least(c) + GAP for c in shown) > room:
        shown.remove(min(shown, key=lambda c: c.keep))
    out = {c.key: least(c) for c in shown}
    spare = room - sum(w + GAP for w in out.values())
    flexible = sorted((c for c in shown if c.least), key=lambda c: -c.keep)
    while spare > 0:  # a cell at a time, in turn, so a long path does not take all a reason needs
        growing = [c for c in flexible if out[c.key] < natural[c.key]]
        for c in growing[:spare]:
            out[c.key] += 1
        spare -= len(growing[:spare])
        if not growing:
            break
    return out


def cut(cell: str | Text, width: int, path: bool = False) -> Text:
    """A cell in ``width`` cells, ending in … when cut (a path keeps its end)."""
    if path and not isinstance(cell, Text):
        return Text(fmt.shorten(cell, width))
    text = cell.copy() if isinstance(cell, Text) else Text(cell)
    if text.cell_len > width:
        text.truncate(width, overflow="ellipsis")
    return text


class FittedTable(DataTable[Any]):
    COLUMNS: ClassVar[list[Fit]] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._cells: list[tuple[str, dict[str, str | Text]]] = []
        self._widths: dict[str, int] = {}

    def put(self, rows: list[tuple[str, dict[str, str | Text]]]) -> None:
        """Replace the rows (key, cells by column key); columns are refitted to the content."""
        keep = self.selected_key
        self._cells = rows
        natural = {c.key: max([len(c.label), *(_len(r[c.key]) for _, r in rows)]) for c in self.COLUMNS}
        room = (self.size.width or 80) - 1  # the vertical scrollbar
        fitted = widths(self.COLUMNS, natural, room)
        if fitted != self._widths:
            self._widths = fitted
            self.clear(columns=True)
            for c in self.COLUMNS:
                if c.key in fitted:
                    self.add_column(c.label, width=fitted[c.key], key=c.key)
        else:
            self.clear()
        paths = {c.key for c in self.COLUMNS if c.path}
        for key, cells in rows:
            self.add_row(*(cut(cells[c], w, c in paths) for c, w in fitted.items()), key=key)
        keys = [k for k, _ in rows]
        if keep in keys:
            self.move_cursor(row=keys.index(keep))

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def on_resize(self) -> None:
        if self._cells:
            self.put(self._cells)


def _len(cell: str | Text) -> int:
    return cell.cell_len if isinstance(cell, Text) else Text(cell).cell_len
