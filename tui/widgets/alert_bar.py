"""The most severe firing alert, on one line under the rates strip; hidden while none fires."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from chute.core.alerts import Alert

STYLE = {"critical": "reverse bold red", "warning": "reverse bold yellow"}


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
        text.no_wrap = True
        text.overflow = "ellipsis"
        self.update(text)
