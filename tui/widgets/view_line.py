"""A one-line widget drawn from the console's view (the status line, the rates strip): a line
that reads the same as last second is not painted again, and a paint reuses the line the
refresh already made for this very view."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from chute.tui.view import View


class ViewLine(Static):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.view: View | None = None
        self._shown = Text()
        self._shown_for: tuple[View | None, tuple[object, ...]] = (None, ())  # (view, _looks())

    def show(self, view: View) -> None:
        self.view = view
        line = self._line()
        if line != self._shown:  # a line that reads the same every second is not painted again
            self._shown = line
            self.refresh()
        self._shown_for = (view, self._looks())

    def render(self) -> Text:
        view, looks = self._shown_for
        if view is not None and view is self.view and looks == self._looks():
            return self._shown  # made by show() for this very view, at this width
        return self._line()

    def _looks(self) -> tuple[object, ...]:
        """What the line depends on besides the view."""
        return (self.size,)

    def _line(self) -> Text:
        raise NotImplementedError
