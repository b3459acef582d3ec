"""The main screen's tabbed panes: switched by the console's keys, never by a stale focus message."""

from __future__ import annotations

from textual.widgets import TabbedContent, TabPane


class Panes(TabbedContent):
    """A TabPane tells its TabbedContent when something inside it is focused, by a message
    handled later, and the pane is made active then. Keys queued faster than they are handled
    (key repeat, a paste, a laggy link) each switch panes and focus that pane's table: the
    messages of the earlier switches, arriving after the last one, switched back to their panes
    (240 switches ending on `3` ended on Quarantine). Only a pane that still holds the focus is
    made active."""

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        focused = self.screen.focused
        if focused is None or event.tab_pane not in focused.ancestors:
            event.stop()
            event.prevent_default()  # TabbedContent's handler: self.active = that pane
