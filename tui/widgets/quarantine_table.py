"""The Quarantine pane: files moved aside as bad input, with the reason and where they are now."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text

from chute.core.ledger import FileRow
from chute.tui import format as fmt
from chute.tui.view import View
from chute.tui.widgets.ledger_table import Col, LedgerTable


class QuarantineTable(LedgerTable):
    COLUMNS: ClassVar[list[Col]] = [
        Col("age", "Age", 4),
        Col("path", "Path", 22),
        Col("table", "Table", 8),
        Col("size", "Size", 8, right=True),
        Col("reason", "Reason", 200),
    ]

    def column_width(self, col: Col) -> int:
        if col.key not in ("path", "reason") or not self.room:
            return col.width
        path = max(18, min(36, (self.room - 24) // 3 + 4))  # the message matters more
        if col.key == "path":
            return path
        others = sum(c.width + 1 for c in self.COLUMNS if c.key not in ("path", "reason")) + path + 1
        return max(20, self.room - others - 2)  # the rest, so a cut message ends in …

    def model(self, row: FileRow, view: View) -> tuple[Any, ...]:
        return ((fmt.age(view.now - row.updated_at), (-row.updated_at, -row.id)), row.path, row.table_name, row.size,
                fmt.one_line(row.reason or row.last_error))

    def render_cell(self, key: str, value: Any, width: int) -> Any:
        if key == "path":
            return Text(fmt.shorten(value, width))
        if key == "size":
            return fmt.size(value)
        return Text(fmt.one_line(str(value), width))
