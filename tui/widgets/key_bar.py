"""The footer: the keys that apply here, on one line, the disabled ones dimmed.

One Text render instead of Textual's Footer, which recomposes a widget per key on every bindings
change (about 20 ms each time, several times per pane switch): the bar only repaints.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.screen import Screen
from textual.widget import Widget


class KeyBar(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"keybar--key", "keybar--description", "keybar--disabled"}

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        text_style = self.get_component_rich_style("keybar--description")
        off_style = self.get_component_rich_style("keybar--disabled")
        items: list[tuple[Text, bool]] = []  # (key and label, enabled)
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            items.append((Text.assemble(
                (self.app.get_key_display(binding), key_style if active.enabled else off_style),
                (f" {binding.description}", text_style if active.enabled else off_style)), active.enabled))
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
