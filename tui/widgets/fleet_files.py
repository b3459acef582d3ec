"""The Fleet screen's drill-down: one host's held, failed and quarantined files (from its mirror)."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import DataTable

from chute.core.fleet import FleetFile
from chute.tui import format as fmt


class FleetFilesTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.files: list[FleetFile] = []
        for key, label in (("age", "Age"), ("path", "Path"), ("state", "State"), ("tries", "Tries"),
                           ("reason", "Reason")):
            self.add_column(label, key=key)

    @property
    def selected(self) -> FleetFile | None:
        if not self.files or not self.row_count:
            return None
        return self.files[min(self.cursor_row, len(self.files) - 1)]

    def show(self, files: list[FleetFile], now: float | None = None) -> None:
        now = time.time() if now is None else now
        keep = self.selected
        self.files = files
        self.clear()
        for f in files:
            self.add_row(fmt.age(now - f.updated_at), f.path, fmt.state_text(f.state), str(f.attempts),
                         Text(f.reason.splitlines()[0] if f.reason else ""), key=f"{f.host}:{f.file_id}")
        if keep is not None:
            ids = [f.file_id for f in files]
            if keep.file_id in ids:
                self.move_cursor(row=ids.index(keep.file_id))
