"""The footer: the keys that apply here, on one line, the disabled ones dimmed.

One Text render instead of Textual's Footer, which recomposes a widget per key on every bindings
change (about 20 ms each time, several times per pane switch): the bar only repaints.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.geometry import Region
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget


class KeyBar(Widget):
    """Bindings change several times per key press (focus moves, a pane switch, a selection):
    the bar is repainted only when what it shows changed, and its line is built once for it."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"keybar--key", "keybar--description", "keybar--disabled"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._items: tuple[tuple[str, str, bool], ...] | None = None  # (key shown, description, enabled)
        self._line: tuple[object, Text] | None = None  # (what it was built from, the line)
        self._drawn: dict[tuple[object, ...], list[Strip]] = {}  # see render_lines

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def update_keys(self) -> None:
        """Now, not when the screen's bindings signal arrives (after the next paint): a pane
        switch draws the bar in its own paint."""
        self._bindings_changed(self.screen)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        items = self._shown_items()
        if items != self._items:
            self._items = items
            self.refresh()

    def _shown_items(self) -> tuple[tuple[str, str, bool], ...]:
        items: list[tuple[str, str, bool]] = []
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            items.append((self.app.get_key_display(binding), binding.description, active.enabled))
        return tuple(items)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line = None  # the key and description styles may have changed
        self._drawn.clear()

    def render_lines(self, crop: Region) -> list[Strip]:
        """The bar goes back and forth between a few sets of keys (one per pane and kind of row
        selected): a set drawn before is drawn from the lines kept for it, not rendered again
        (~1 ms on every pane switch). Its looks change only with a style update (cleared there)."""
        made_of = (self._items, crop, self.size)
        strips = self._drawn.get(made_of)
        if strips is None:
            strips = super().render_lines(crop)
            if self._items is not None:  # the first paint computes them (render)
                if len(self._drawn) >= 16:
                    self._drawn.clear()
                self._drawn[(self._items, crop, self.size)] = strips
        return strips

    def render(self) -> Text:
        if self._items is None:  # the first paint: the screen's widgets all exist now
            self._items = self._shown_items()
        made_of = (self._items, self.size.width)
        if self._line is None or self._line[0] != made_of:
            self._line = (made_of, self._build())
        return self._line[1]

    def _build(self) -> Text:
        assert self._items is not None
        key_style = self.get_component_rich_style("keybar--key")
        text_style = self.get_component_rich_style("keybar--description")
        off_style = self.get_component_rich_style("keybar--disabled")
        items = [(Text.assemble((key, key_style if on else off_style), (f" {label}", text_style if on else off_style)),
                  on) for key, label, on in self._items]
        palette = Text.assemble(("^p", key_style), (" Commands", text_style))
        # Whole items only, never a bare key: when the bar is short, dimmed keys go first, then the
        # last ones; the palette (which reaches every action) always stays.
        room = (self.size.width or 80) - (palette.cell_len + 2 if self.app.ENABLE_COMMAND_PALETTE else 0)
        while items and sum(t.cell_len + 2 for t, _ in items) - 2 > room:
            dimmed = [i for i, (_, on) in enumerate(items) if not on]
            items.pop(dimmed[-1] if dimmed else -1)
        line = Text("  ").join(t for t, _ in items)
        line.no_wrap = True
        if self.app.ENABLE_COMMAND_PALETTE:
            if line:
                line.append("  ")
            line.append_text(palette)
        return line
