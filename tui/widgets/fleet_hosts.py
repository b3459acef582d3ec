"""The Fleet screen's host table: one row per chute writing to this ClickHouse database."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from chute.core.fleet import HostStatus
from chute.tui import format as fmt
from chute.tui.widgets.auto_height import AutoHeight
from chute.tui.widgets.fitted_table import Fit, FittedTable

STATUS_STYLE = {"running": "green", "paused": "yellow", "stopped": "bright_black", "STALE": "bold red reverse"}


class FleetHostsTable(AutoHeight, FittedTable):
    """Hosts by name; a stale heartbeat is flagged in bold reverse red (it stands out in monochrome too).
    At 80 columns the counts an operator acts on stay; duplicates, rows/s and loaded go first."""

    COLUMNS: ClassVar[list[Fit]] = [
        Fit("host", "Host", 10, least=10), Fit("status", "Status", 9), Fit("beat", "Beat", 6),
        Fit("loaded", "Loaded", 3), Fit("dup", "Dup", 1), Fit("wait", "Wait", 5), Fit("held", "Held", 8),
        Fit("failed", "Failed", 8), Fit("quar", "Quar", 7), Fit("rate", "Rows/s", 2),
        Fit("alerts", "Alerts", 4, least=8),
    ]

    @property
    def selected_host(self) -> str | None:
        return self.selected_key

    def show(self, hosts: list[HostStatus]) -> None:
        """Replace the rows, keeping the cursor on the same host."""
        rows: list[tuple[str, dict[str, str | Text]]] = []
        for h in hosts:
            c = h.counts
            waiting = sum(c.get(s, 0) for s in ("seen", "settling", "queued", "loading"))
            alerts = ", ".join(a["name"] for a in h.alerts) or "-"  # firing only (critical, warning)
            rows.append((h.host, {
                "host": h.host, "status": Text(h.status, style=STATUS_STYLE.get(h.status, "")), "beat": fmt.age(h.age),
                "loaded": fmt.count(c.get("loaded", 0)), "dup": fmt.count(c.get("duplicate", 0)),
                "wait": fmt.count(waiting), "held": _warn(c.get("held", 0), "held"),
                "failed": _warn(c.get("failed", 0), "failed"), "quar": _warn(c.get("quarantined", 0), "quarantined"),
                "rate": f"{h.rows_per_s:,.0f}", "alerts": Text(alerts, style="bold red" if h.alerts else "")}))
        self.put(rows)


def _warn(n: int, state: str) -> Text:
    return Text(fmt.count(n), style=fmt.STATE_STYLE[state] if n else "")
