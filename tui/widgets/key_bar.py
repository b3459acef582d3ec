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
        line = Text(no_wrap=True, overflow="ellipsis")
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            if line:
                line.append("  ")
            line.append(self.app.get_key_display(binding), style=key_style if active.enabled else off_style)
            line.append(f" {binding.description}", style=text_style if active.enabled else off_style)
        if self.app.ENABLE_COMMAND_PALETTE:  # last: the first thing to go on a narrow terminal
            line.append("  ")
            line.append("^p", style=key_style)
            line.append(" Commands", style=text_style)
        return line
