"""What the console looks like on a 16-colour terminal (TERM=xterm, a bare tmux): every colour
downgraded to the nearest of the 16 standard ones, as Rich does when it writes to such a terminal.
As a Textual line filter, so snapshots (SVG, always truecolor) show what the operator would see."""

from __future__ import annotations

from functools import lru_cache

from rich.color import Color as RichColor
from rich.color import ColorSystem
from rich.segment import Segment
from rich.style import Style
from rich.terminal_theme import DEFAULT_TERMINAL_THEME
from textual.color import Color
from textual.filter import LineFilter


@lru_cache(256)
def _sixteen(color: RichColor | None) -> RichColor | None:
    if color is None or color.is_default:
        return color
    rgb = color.downgrade(ColorSystem.STANDARD).get_truecolor(DEFAULT_TERMINAL_THEME)
    return RichColor.from_rgb(*rgb)


@lru_cache(1024)
def sixteen_style(style: Style) -> Style:
    return style + Style.from_color(_sixteen(style.color), _sixteen(style.bgcolor))


class Sixteen(LineFilter):
    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [Segment(text, sixteen_style(style) if style else style, control)
                for text, style, control in segments]
