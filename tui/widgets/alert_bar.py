"""The most severe firing alert, on one line under the rates strip; hidden while none fires."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from chute.core.alerts import Alert

# Reverse of a named colour on black: black on red in any palette, and still inverted without colour.
STYLE = {"critical": "reverse bold red on black", "warning": "reverse bold yellow on black"}


class AlertBar(Static):
    _shown: list[Alert] | None = None

    def show(self, alerts: list[Alert]) -> None:
        firing = [a for a in alerts if a.level in STYLE]
        if firing == self._shown:
            return  # unchanged: no layout pass
        self._shown = firing
        self.display = bool(firing)
        if not firing:
            return
        top = firing[0]
        text = Text.assemble((f" {top.level.upper()} ", STYLE[top.level]), " ", top.message)
        if len(firing) > 1:
            text.append(f"  (+{len(firing) - 1} more: Rates pane)", style="dim")
        self._text = text
        self.refresh()

    def render(self) -> Text:
        text = getattr(self, "_text", Text())
        if text.cell_len > self.size.width > 0:
            text = text.copy()
            text.truncate(self.size.width, overflow="ellipsis")  # a cut always shows it is cut
        return text
