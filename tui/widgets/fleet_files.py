"""The Fleet screen's drill-down: one host's held, failed and quarantined files (from its mirror)."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text

from chute.core.fleet import FleetFile
from chute.tui import format as fmt
from chute.tui.widgets.fitted_table import Fit, FittedTable


class FleetFilesTable(FittedTable):
    """At 80 columns the path and the reason share the room; tries, then age, go first."""

    COLUMNS: ClassVar[list[Fit]] = [
        Fit("age", "Age", 5), Fit("path", "Path", 10, least=16, path=True), Fit("state", "State", 9),
        Fit("tries", "Tries", 4), Fit("reason", "Reason", 8, least=16),
    ]

    def on_mount(self) -> None:
        self.files: list[FleetFile] = []

    @property
    def selected(self) -> FleetFile | None:
        if not self.files or not self.row_count:
            return None
        return self.files[min(self.cursor_row, len(self.files) - 1)]

    def show(self, files: list[FleetFile], now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.files = files
        self.put([(f"{f.host}:{f.file_id}", {
            "age": fmt.age(now - f.updated_at), "path": f.path, "state": fmt.state_text(f.state),
            "tries": str(f.attempts), "reason": Text(fmt.one_line(f.reason) if f.reason else "")}) for f in files])
