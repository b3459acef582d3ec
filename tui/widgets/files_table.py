"""The Files pane: one row per file version, newest first, with live progress."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text

from chute.core.ledger import FileRow
from chute.core.states import State
from chute.tui import format as fmt
from chute.tui.view import View
from chute.tui.widgets.ledger_table import Col, LedgerTable


class FilesTable(LedgerTable):
    COLUMNS: ClassVar[list[Col]] = [
        Col("path", "Path", 24),
        Col("table", "Table", 8),
        Col("state", "State", 11),
        Col("progress", "Progress", 9),
        Col("rows", "Rows", 9, right=True),
        Col("size", "Size", 8, right=True),
        Col("age", "Age", 4),
        Col("reason", "Reason", 60),
    ]
    FIXED = sum(c.width + 1 for c in COLUMNS if c.key not in ("path", "reason")) + 1 + 2  # + path gap, scrollbar

    def column_width(self, col: Col) -> int:
        if col.key not in ("path", "reason") or not self.size.width:
            return col.width
        room = self.size.width - self.FIXED
        # Narrow: the path takes what is left (the reason is on the line below the table).
        # Wide: path and reason share it.
        path = max(18, min(56, room if self.size.width < 100 else room // 2))
        return path if col.key == "path" else max(30, room - path - 1)

    def model(self, row: FileRow, view: View) -> tuple[Any, ...]:
        pct = None
        if row.state == State.LOADING:
            live = view.progress.get(row.id)
            done, total = (live.rows_done, live.rows_total) if live else (row.rows_loaded, row.rows or 0)
            pct = int(done * 100 / total) if total else 0
        return (row.path, row.table_name, str(row.state), pct, row.rows, row.size,
                (fmt.age(view.now - row.updated_at), (-row.updated_at, -row.id)), reason(row, view.now, view))

    def render_cell(self, key: str, value: Any, width: int) -> Any:
        if key == "path":
            return Text(fmt.shorten(value, width))
        if key == "state":
            return fmt.state_text(value)
        if key == "progress":
            return "" if value is None else fmt.progress_bar(value, 100, width=4)
        if key == "rows":
            return fmt.count(value)
        if key == "size":
            return fmt.size(value)
        if key in ("table", "reason"):
            return Text(fmt.shorten(value, width) if key == "table" else value)
        return value


def reason(row: FileRow, now: float, view: View | None = None) -> str:
    """Why the file is where it is, in one line."""
    if row.state == State.QUEUED and view is not None and view.snap.paused:
        return view.pause_note
    if row.state == State.FAILED and row.next_attempt is not None:
        wait = fmt.age(row.next_attempt - now)
        return fmt.one_line(f"{row.last_error} (retry {'now' if wait == 'now' else 'in ' + wait})")
    if row.state in (State.FAILED, State.QUARANTINED, State.HELD, State.DUPLICATE):
        return fmt.one_line(row.last_error or row.reason)
    if row.state == State.LOADED and row.moved_to:
        return f"→ {row.moved_to}"
    return ""
