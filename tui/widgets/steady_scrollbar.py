"""A table's scrollbar that repaints only when it would look different.

Textual repaints a widget's scrollbars whenever a style pass sets the widget's scrollbar colours,
even to the colours they already have: every focus change (each pane switch) does, so each
switch painted a second time, after its own paint, for scrollbars that had not changed (~3 ms).
"""

from __future__ import annotations

from typing import Any, Self

from rich.console import RenderableType
from textual.geometry import Region
from textual.scrollbar import ScrollBar
from textual.widget import Widget


class SteadyScrollBar(ScrollBar):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._painted: tuple[object, ...] | None = None  # what the last render drew

    def _look(self) -> tuple[object, ...]:
        """Everything ScrollBar.render reads."""
        parent = self.parent
        styles = parent.styles if parent is not None else None
        colours: tuple[object, ...] = ()
        if styles is not None:
            colours = (styles.scrollbar_background_active, styles.scrollbar_color_active,
                       styles.scrollbar_background_hover, styles.scrollbar_color_hover,
                       styles.scrollbar_background, styles.scrollbar_color)
            if isinstance(parent, Widget) and any(c.a < 1 for c in colours[0::2]):
                colours += (parent.background_colors,)
        return (colours, self.screen.styles.scrollbar_color.a, self.grabbed, self.mouse_over, self.window_virtual_size,
                self.window_size, self.position, self.thickness, self.vertical, self.size)

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False,
                recompose: bool = False) -> Self:
        if not (regions or layout or recompose):
            if not self.size or (isinstance(self.parent, Widget) and not self.parent.size):
                return self  # nothing on screen (a hidden pane, a bar 0 thick): a layout draws it when it shows
            if self._painted is not None and self._painted == self._look():
                return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def render(self) -> RenderableType:
        self._painted = self._look()
        return super().render()
