"""One line under a table: the highlighted file's full path, why it is in its state (or how far its
load has come), and what to do about it."""

from __future__ import annotations

from typing import Any

from rich.cells import get_character_cell_size
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
    the table's last row come and go under the operator's eyes. A cut always ends in …; when the
    line is too long, the reason is cut first, so that what to do (and its keys) stays on screen
    (at 80x24 a long reason pushed "then r moves it back" off the end)."""

    MAX_LINES = 2

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._parts: tuple[Text, str, Text] = (Text(), "", Text())

    def render(self) -> Text:
        return compose(*self._parts, self.size.width or 80, self.MAX_LINES)

    def show(self, row: FileRow | None, view: View | None) -> None:
        parts = self._line(row, view) if row is not None else (Text(), "", Text())
        if parts != self._parts:
            self._parts = parts
            self.refresh()

    @staticmethod
    def _line(row: FileRow, view: View | None) -> tuple[Text, str, Text]:
        """(path, state and progress; the reason; what to do), joined to fit when rendered."""
        text = Text.assemble((fmt.escaped(row.path), "bold"), " ", fmt.state_text(row.state))
        live = view.progress.get(row.id) if view is not None else None
        if row.state == State.LOADING and live is not None and view is not None:
            speed = live.rows_done / max(1e-6, view.now - live.started)
            eta = fmt.age((live.rows_total - live.rows_done) / speed) if speed and live.rows_total else "?"
            text.append(f"  {fmt.count(live.rows_done)} of {fmt.count(live.rows_total)} rows, "
                        f"{fmt.rate(speed)} rows/s, ETA {eta}")
        if row.state == State.QUEUED and view is not None and view.snap.paused:
            text.append(f"  {view.pause_note}", style="bold")
        problem = why(row)
        hint = advice(row)
        return text, fmt.one_line(problem[1], 300) if problem else "", Text(f"  → {hint}" if hint else "",
                                                                              style="italic")


MIN_REASON = 16  # cells of the reason kept before the advice gives way (it is whole in the details screen)


def compose(head: Text, reason: str, hint: Text, width: int, lines: int) -> Text:
    """``head``, ``reason`` and ``hint`` in at most ``lines`` lines of ``width``: the reason is cut
    (…) to the longest that leaves the hint whole, if that keeps MIN_REASON cells of it; else the
    whole is cut at its end as before."""

    def joined(cut: int) -> Text:
        text = head.copy()
        if reason:
            text.append("  " + (reason if cut >= len(reason) else reason[:max(cut - 1, 0)] + "…"))
        text.append_text(hint)
        return text

    whole = joined(len(reason))
    if not reason or not hint.plain or _fits(whole, width, lines):
        return fit(whole, width, lines)
    lo, hi = MIN_REASON, len(reason) - 1  # the longest cut that fits, by bisection (fit is cheap)
    if not _fits(joined(lo), width, lines):
        return fit(whole, width, lines)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _fits(joined(mid), width, lines) else (lo, mid - 1)
    return fit(joined(lo), width, lines)


def _fits(text: Text, width: int, lines: int) -> bool:
    return not _wrap(text, width, lines)[1]


def fit(text: Text, width: int, lines: int) -> Text:
    """``text`` wrapped into at most ``lines`` lines of ``width``, the last cut with … if needed."""
    return _wrap(text, width, lines)[0]


def _wrap(text: Text, width: int, lines: int) -> tuple[Text, bool]:
    """(the wrapped text, whether its end was cut)."""
    if text.cell_len <= width:
        return text, False
    out = Text()
    rest = text
    cut_end = False
    for n in range(lines):
        if rest.cell_len <= width or n == lines - 1:
            cut_end = rest.cell_len > width
            piece = rest.copy()
            piece.truncate(width, overflow="ellipsis")
            out.append_text(piece)
            break
        # Break at the last space that fits, so words are not split. In cells, not characters: a
        # CJK or emoji character takes two, and a line over the width wraps again on screen.
        room = max(_chars_within(rest.plain, width), 1)
        cut = rest.plain.rfind(" ", 0, room + 1)
        cut = cut if cut > room // 2 else room
        out.append_text(rest[:cut])
        out.append("\n")
        rest = rest[cut:]
        rest = rest[len(rest.plain) - len(rest.plain.lstrip(" ")):]
    return out, cut_end


def _chars_within(plain: str, width: int) -> int:
    """How many of ``plain``'s first characters fit in ``width`` cells."""
    if plain[:width].isascii():
        return min(len(plain), width)  # (one cell each: the usual case, without a loop)
    cells = 0
    for i, char in enumerate(plain[:width]):  # (no more: most take a cell or two, few none)
        cells += get_character_cell_size(char)
        if cells > width:
            return i
    return min(len(plain), width)
