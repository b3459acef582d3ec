"""Shown while the engine finishes or safely abandons the batch in flight."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import ModalScreen
from textual.widgets import LoadingIndicator, Static


class StoppingScreen(ModalScreen[None]):
    def compose(self) -> ComposeResult:
        yield Static("stopping… finishing or safely abandoning the batch in flight", id="stopping")
        yield LoadingIndicator()
