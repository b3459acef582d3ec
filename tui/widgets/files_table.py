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
    NARROW = 120  # below this, Progress and Size give their room to the reason (progress shows in State)
    FLEX = ("path", "table", "reason")

    def column_width(self, col: Col) -> int:
        width = self.room
        if not width:
            return col.width
        narrow = width < self.NARROW
        if narrow and col.key in ("progress", "size"):
            return 0
        if col.key not in self.FLEX:
            return col.width
        fixed = sum(c.width + 1 for c in self.COLUMNS if c.key not in self.FLEX
                    and not (narrow and c.key in ("progress", "size")))
        room = width - fixed - 1 - 3  # scrollbar; the gaps of the flexible columns
        # What an on-call needs first is why (the reason): it keeps at least a third of the room.
        table = 7 if narrow else min(16, max(8, room // 8))
        path = max(16, min(56, (room - table) * 2 // 5 if narrow else (room - table) // 2))
        reason_w = max(12, room - table - path)
        return {"path": path, "table": table, "reason": reason_w}[col.key]

    def model(self, row: FileRow, view: View) -> tuple[Any, ...]:
        pct = None
        if row.state == State.LOADING:
            live = view.progress.get(row.id)
            done, total = (live.rows_done, live.rows_total) if live else (row.rows_loaded, row.rows or 0)
            pct = int(done * 100 / total) if total else 0
        return (row.path, row.table_name, (str(row.state), pct), pct, row.rows, row.size,
                (fmt.age(view.now - row.updated_at), (-row.updated_at, -row.id)), reason(row, view.now, view))

    def render_cell(self, key: str, value: Any, width: int) -> Any:
        if key == "path":
            return Text(fmt.shorten(value, width))
        if key == "state":
            state, pct = value
            text = fmt.state_text(state)
            if pct is not None and not self._widths.get("progress"):
                text.append(f" {pct}%")  # narrow: the Progress column is hidden
            return text
        if key == "progress":
            return "" if value is None else fmt.progress_bar(value, 100, width=4)
        if key == "rows":
            return fmt.count(value)
        if key == "size":
            return fmt.size(value)
        if key == "table":
            return Text(fmt.shorten(value, width))
        if key == "reason":
            return Text(fmt.one_line(value, width))  # cut with …, never mid-word silently
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
