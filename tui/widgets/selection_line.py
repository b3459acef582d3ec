"""One line under a table: the highlighted file's full path, why it is in its state (or how far its
load has come), and what to do about it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from chute.core.ledger import FileRow
from chute.core.states import State
from chute.tui import format as fmt
from chute.tui.advice import advice, why
from chute.tui.view import View


class SelectionLine(Widget):
    """Rendered on demand: it changes on every cursor move. Always two lines high (the second is
    for advice that does not fit on the first): a height that followed the text made the whole
    screen lay out again (~10 ms) whenever the cursor moved between a short and a long row, and
    the table's last row come and go under the operator's eyes. A cut always ends in …."""

    MAX_LINES = 2

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._text = Text()

    def render(self) -> Text:
        return fit(self._text, self.size.width or 80, self.MAX_LINES)

    def show(self, row: FileRow | None, view: View | None) -> None:
        text = self._line(row, view) if row is not None else Text()
        if text != self._text:
            self._text = text
            self.refresh()

    @staticmethod
    def _line(row: FileRow, view: View | None) -> Text:
        text = Text.assemble((row.path, "bold"), " ", fmt.state_text(row.state))
        live = view.progress.get(row.id) if view is not None else None
        if row.state == State.LOADING and live is not None and view is not None:
            speed = live.rows_done / max(1e-6, view.now - live.started)
            eta = fmt.age((live.rows_total - live.rows_done) / speed) if speed and live.rows_total else "?"
            text.append(f"  {fmt.count(live.rows_done)} of {fmt.count(live.rows_total)} rows, "
                        f"{fmt.rate(speed)} rows/s, ETA {eta}")
        if row.state == State.QUEUED and view is not None and view.snap.paused:
            text.append(f"  {view.pause_note}", style="bold")
        problem = why(row)
        if problem:
            text.append(f"  {fmt.one_line(problem[1], 300)}")
        hint = advice(row)
        if hint:
            text.append(f"  → {hint}", style="italic")
        return text


def fit(text: Text, width: int, lines: int) -> Text:
    """``text`` wrapped into at most ``lines`` lines of ``width``, the last cut with … if needed."""
    if text.cell_len <= width:
        return text
    out = Text()
    rest = text
    for n in range(lines):
        if rest.cell_len <= width or n == lines - 1:
            piece = rest.copy()
            piece.truncate(width, overflow="ellipsis")
            out.append_text(piece)
            break
        # Break at the last space that fits, so words are not split.
        plain = rest.plain[: width + 1]
        cut = plain.rfind(" ")
        cut = cut if cut > width // 2 else width
        out.append_text(rest[:cut])
        out.append("\n")
        rest = rest[cut:]
        rest = rest[len(rest.plain) - len(rest.plain.lstrip(" ")):]
    return out
