"""A yes/no question whose default is No: enter, escape and n all say no; only y (or a click on Yes)
says yes. The buttons never take focus, so no arrow key plus enter can turn into a yes."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
        Binding("enter", "answer(False)", "No", show=False),
    ]

    def __init__(self, title: str, body: str, yes_label: str = "Yes, purge", about: tuple[tuple[int, str], ...] = ()
                 ) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.yes_label = yes_label
        self.about = about  # (file id, state shown) of the versions the question is about

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(self.title_text, id="confirm-title")
            yield Static(self.body, id="confirm-body", markup=False)
            yield Static("", id="confirm-changed", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield _ClickOnly("No", id="no", variant="primary")
                yield _ClickOnly(self.yes_label, id="yes", variant="error")
            yield Static("y: yes    n, esc or enter: no", id="confirm-keys", markup=False)

    def changed(self, notes: list[str]) -> None:
        """Some version left the state shown while the question was open: say so (y is refused for it)."""
        line = self.query_one("#confirm-changed", Static)
        line.update("\n".join(notes))
        line.display = bool(notes)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class _ClickOnly(Button, can_focus=False):
    """A button for the mouse only: the keyboard answers with y / n / esc / enter."""
