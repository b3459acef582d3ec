"""The Rates pane: rows/s, MB/s and files/min over the last minutes, totals, error rate, in flight.

Rows/s and MB/s come from the snapshot's per-second history (last 10 minutes); files/min from
the audit trail, per minute (see :class:`chute.tui.view.LoadedPerMinute`).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from chute.tui import format as fmt
from chute.tui.view import View

SPAN = 600  # seconds shown


def per_second(history: list[tuple[float, int, int]], now: float, span: int = SPAN) -> tuple[list[float], list[float]]:
    """Dense rows/s and MB/s series over the last ``span`` seconds (seconds without a batch are 0)."""
    start = int(now) - span + 1
    rows = [0.0] * span
    mb = [0.0] * span
    for second, r, b in history:
        i = int(second) - start
        if 0 <= i < span:
            rows[i] += r
            mb[i] += b / 1e6
    return rows, mb


class Metric(Vertical):
    """A title line (now, peak) above a sparkline."""

    def __init__(self, title: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.title = title
        self._shown_title = Text()

    def compose(self) -> ComposeResult:
        yield Static(self.title, classes="metric-title")
        yield Sparkline([], summary_function=max)

    def show(self, series: list[float], now_value: float) -> None:
        peak = max(series, default=0.0)
        title = Text.assemble((self.title, "bold"), f"  now {fmt.rate(now_value)}", (f"  peak {fmt.rate(peak)}", "dim"))
        if title != self._shown_title:
            self._shown_title = title
            # One line high: no layout pass (by default an update lays out the whole screen, on
            # every refresh while the sparklines are shown).
            self.query_one(".metric-title", Static).update(title, layout=False)
        spark = self.query_one(Sparkline)
        if spark.data != series:
            spark.data = series


class Metrics(Horizontal):
    """rows/s, MB/s and files/min, stacked (Rates tab) or side by side (wide overview)."""

    def compose(self) -> ComposeResult:
        yield Metric("Rows/s", id="m-rows")
        yield Metric("MB/s", id="m-mb")
        yield Metric("Files/min", id="m-files")

    def show(self, view: View) -> None:
        rows, mb = per_second(view.snap.history, view.now)
        self.query_one("#m-rows", Metric).show(rows, view.snap.rows_per_s)
        self.query_one("#m-mb", Metric).show(mb, view.snap.mb_per_s)
        self.query_one("#m-files", Metric).show(view.files_per_min, view.snap.files_per_min)


class RatesPanel(Vertical):
    """Shown again on every switch to the pane: a view already shown costs nothing (an update of
    a Static lays out the whole screen again)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._shown: View | None = None

    def compose(self) -> ComposeResult:
        yield Static("Last 10 minutes", classes="metric-span")
        yield Metrics(classes="stacked")
        yield Static(id="totals")
        yield Static(id="inflight")

    def show(self, view: View) -> None:
        if view is self._shown:
            return
        self._shown = view
        self.query_one(Metrics).show(view)
        t = view.totals
        failing = view.count("failed", "quarantined")
        rate = f"{t.errors_hour / t.attempts_hour:.1%}" if t.attempts_hour else "0%"
        totals = Text.assemble(
            ("Last hour ", "bold"), f"{fmt.plural(t.rows_hour, 'row')}, {fmt.plural(t.files_hour, 'file')}   ",
            ("Today ", "bold"), f"{fmt.plural(t.rows_today, 'row')}, {fmt.plural(t.files_today, 'file')}\n",
            ("Error rate ", "bold"), (f"{rate}", "bold red" if t.errors_hour else ""),
            f" of {t.attempts_hour} loads in the last hour failed or were quarantined; now {failing} failing or "
            f"quarantined, {view.count('held')} held")
        for alert in view.snap.alerts:  # firing rules, and the daily summary (info)
            style = {"critical": "bold red", "warning": "bold yellow"}.get(alert.level, "dim")
            totals.append("\n")
            totals.append(f"{alert.level} ", style=style)
            totals.append(alert.message)
        _update(self.query_one("#totals", Static), totals)
        lines = Text.assemble(("In flight", "bold"), f"  {len(view.snap.inflight)} loading, "
                              f"{view.count('queued')} queued, {view.snap.settling} settling")
        for p in view.snap.inflight:
            elapsed = max(1e-6, view.now - p.started)
            speed = p.rows_done / elapsed
            eta = fmt.age((p.rows_total - p.rows_done) / speed) if speed and p.rows_total else "?"
            lines.append("\n  ")
            lines.append_text(fmt.progress_bar(p.rows_done, p.rows_total, width=10))
            lines.append(f"  {fmt.count(p.rows_done)}/{fmt.count(p.rows_total)} rows  "
                         f"{fmt.rate(speed)} rows/s  ETA {eta}  {p.path}")
        _update(self.query_one("#inflight", Static), lines)


def _update(static: Static, text: Text) -> None:
    """Only a change costs a layout pass (these are as high as their text)."""
    if text != static.content:
        static.update(text)

