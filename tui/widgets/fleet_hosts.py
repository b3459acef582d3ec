"""The Fleet screen's host table: one row per chute writing to this ClickHouse database."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from chute.core.fleet import HostStatus
from chute.tui import format as fmt

STATUS_STYLE = {"running": "green", "paused": "yellow", "stopped": "bright_black", "STALE": "bold red reverse"}


class FleetHostsTable(DataTable):
    """Hosts by name; a stale heartbeat is flagged in bold reverse red (it stands out in monochrome too)."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for key, label in (("host", "Host"), ("status", "Status"), ("beat", "Beat"), ("loaded", "Loaded"),
                           ("dup", "Dup"), ("wait", "Wait"), ("held", "Held"), ("failed", "Failed"),
                           ("quar", "Quar"), ("rate", "Rows/s"), ("alerts", "Alerts")):
            self.add_column(label, key=key)

    @property
    def selected_host(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def show(self, hosts: list[HostStatus]) -> None:
        """Replace the rows, keeping the cursor on the same host."""
        keep = self.selected_host
        self.clear()
        for h in hosts:
            c = h.counts
            waiting = sum(c.get(s, 0) for s in ("seen", "settling", "queued", "loading"))
            alerts = ", ".join(a["name"] for a in h.alerts) or "-"  # firing only (critical, warning)
            self.add_row(
                h.host, Text(h.status, style=STATUS_STYLE.get(h.status, "")), fmt.age(h.age),
                fmt.count(c.get("loaded", 0)), fmt.count(c.get("duplicate", 0)), fmt.count(waiting),
                _warn(c.get("held", 0), "held"), _warn(c.get("failed", 0), "failed"),
                _warn(c.get("quarantined", 0), "quarantined"), f"{h.rows_per_s:,.0f}",
                Text(alerts, style="bold red" if h.alerts else ""), key=h.host)
        names = [h.host for h in hosts]
        if keep in names:
            self.move_cursor(row=names.index(keep))


def _warn(n: int, state: str) -> Text:
    return Text(fmt.count(n), style=fmt.STATE_STYLE[state] if n else "")
