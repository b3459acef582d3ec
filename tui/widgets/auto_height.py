"""Tables that take the height of their rows (CSS `height: auto`) and are filled after they are
laid out: the details screen's first rows, the Fleet screen's hosts.

Textual keeps a widget's box model until the widget's layout count moves, and a new virtual size
(the rows measured, in the table's idle) does not move it while a layout request is pending. A
screen layout between the rows' arrival and that idle (a busy machine) left the table as high as
it was empty, 0 lines, for good. A refresh queued behind the idle comes when no request is
pending, so it counts (tests/test_tui_details_layout.py)."""

from __future__ import annotations

from textual.geometry import Size
from textual.widgets import DataTable


class AutoHeight:
    """Mixin for a DataTable (sub)class laid out with `height: auto`."""

    def watch_virtual_size(self, old: Size, new: Size) -> None:
        table: DataTable = self  # type: ignore[assignment]
        height = table.styles.height
        if old.height != new.height and height is not None and height.is_auto:
            table.call_later(table.refresh, layout=True)


class AutoHeightTable(AutoHeight, DataTable):
    """A plain DataTable as high as its rows."""
