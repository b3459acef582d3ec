"""Typed messages from worker threads to the UI thread."""

from __future__ import annotations

from textual.message import Message

from chute.tui.view import View


class Refreshed(Message):
    """A new view of the engine. When the UI falls behind, only the newest waiting one is applied."""

    def __init__(self, view: View) -> None:
        super().__init__()
        self.view = view

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Refreshed)


class ActionDone(Message):
    """An operator action finished (in the engine, or in the daemon when attached)."""

    def __init__(self, action: str, file_id: int | None, ok: bool, text: str) -> None:
        super().__init__()
        self.action = action
        self.file_id = file_id  # the one version acted on (None: pause/resume, or many)
        self.ok = ok
        self.text = text


class Stopped(Message):
    """The engine finished or abandoned the batch in flight and released everything."""
