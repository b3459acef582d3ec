"""A yes/no question whose default is No: enter, escape and n all say no; only y (or a click on Yes)
says yes. The buttons never take focus, so no arrow key plus enter can turn into a yes.

A bulk question lists its files in a scrolling box sized to what the terminal leaves, so title,
buttons and keys stay on screen at 80x24 however many files there are."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
        Binding("enter", "answer(False)", "No", show=False),
    ]

    def __init__(self, title: str, body: str, yes_label: str = "Yes, purge", about: tuple[tuple[int, str], ...] = (),
                 items: list[str] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.yes_label = yes_label
        self.about = about  # (file id, state shown) of the versions the question is about
        self.items = items or []  # one line per file of a bulk question, listed above the body

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(self.title_text, id="confirm-title")
            if self.items:
                with VerticalScroll(id="confirm-scroll"):
                    yield Static("\n".join(self.items), id="confirm-list", markup=False)
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
        self.call_after_refresh(self._fit)

    def on_mount(self) -> None:
        self.call_after_refresh(self._fit)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """The file list takes the lines the rest of the dialog leaves (one line of screen kept
        free above and below); at least three, so it still reads as a list."""
        if not self.items:
            return
        box = self.query_one("#confirm-scroll", VerticalScroll)
        dialog = self.query_one("#confirm", Vertical)
        others = sum(w.outer_size.height + w.styles.margin.height for w in dialog.children
                     if w is not box and w.display)
        room = self.size.height - 2 - dialog.styles.gutter.height - others - box.styles.margin.height
        box.styles.max_height = max(3, room)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class _ClickOnly(Button, can_focus=False):
    """A button for the mouse only: the keyboard answers with y / n / esc / enter."""
