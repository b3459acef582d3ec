"""The always-visible rates line: rows/s with a one-minute sparkline, MB/s, files/min, backlog, trouble."""

from __future__ import annotations

from rich.text import Text

from chute.core.states import State
from chute.tui import format as fmt
from chute.tui.widgets.rates import per_second
from chute.tui.widgets.view_line import ViewLine

SPARK_SECONDS = 60
SPARK_WIDTH = 12


class RatesStrip(ViewLine):
    def _line(self) -> Text:
        view = self.view
        if view is None:
            return Text("")
        snap = view.snap
        rows, _ = per_second(snap.history, view.now, SPARK_SECONDS)
        step = SPARK_SECONDS // SPARK_WIDTH
        buckets = [sum(rows[i:i + step]) / step for i in range(0, SPARK_SECONDS, step)]
        # (priority, segment) in display order; the lowest priority goes first when the line is short.
        parts: list[tuple[int, Text]] = [
            (0, Text.assemble((" ▲ ", "bold"), (fmt.rate(snap.rows_per_s), "bold"), " rows/s ",
                              (fmt.sparkline(buckets, SPARK_WIDTH), "cyan"))),
            (4, Text(f"{fmt.rate(snap.mb_per_s)} MB/s")),
            (5, Text(f"{fmt.rate(snap.files_per_min)} files/min")),
        ]
        waiting = view.count(State.QUEUED) + snap.settling
        # The ledger's count too: a big file being validated is loading before it reports progress.
        loading = max(len(snap.inflight), view.count(State.LOADING))
        parts.append((3, Text(f"{loading} loading, {waiting} waiting")))
        for state in (State.HELD, State.FAILED, State.QUARANTINED):
            n = view.count(state)
            if n:
                parts.append((1, Text(f"{n} {state}", style=fmt.STATE_STYLE[state])))
        if snap.open_actions:  # begun, not finished: `chute status` says which
            parts.append((2, Text(f"{snap.open_actions} unfinished", style="yellow")))
        sep = Text(" │ ", style="dim")
        while len(parts) > 1 and sum(p.cell_len for _, p in parts) + sep.cell_len * (len(parts) - 1) > self.size.width:
            parts.remove(max(parts, key=lambda item: item[0]))  # whole segments: a cut number would mislead
        line = sep.join(p for _, p in parts)
        line.no_wrap = True
        return line
