"""chute's commands in the command palette (ctrl+p): actions on the selected file, intake, panes,
quick filters, and jumping to any file shown in the Files pane."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from chute.tui.app import ChuteApp

Command = tuple[str, str, Callable[[], object]]


class ChuteCommands(Provider):
    @property
    def chute(self) -> ChuteApp:
        return cast("ChuteApp", self.app)

    def commands(self) -> list[Command]:
        app = self.chute
        out: list[Command] = []
        gone = app.daemon_gone  # attached, and no daemon would carry an action out: offer none
        if app.engine_paused and not gone:
            out.append(("Resume intake", "start loading files again", app.action_resume))
        elif not gone:
            out.append(("Pause intake", "finish the batch in flight, start no new file", app.action_pause))
        table = app.main.active_table
        marked = table.marked if table is not None else []
        for action, verb in (("approve", "Approve"), ("retry", "Retry"), ("purge", "Purge")):
            fit = [r for r in marked if app.action_applies(action, r)]
            if fit and not gone:
                out.append((f"{verb} {len(fit)} marked files", "listed, confirmed once",
                            partial(app.ask_many, action, marked)))
        if table is not None:
            out.append(("Mark every file shown", "the filtered set; then a, r or d act on all of them",
                        app.main.action_mark_all))
        row = app.current_row()
        if row is not None:
            for action, verb, what in (("approve", "Approve", "load this held file"),
                                       ("retry", "Retry", "try this file again now"),
                                       ("purge", "Purge", "delete the file and the rows it loaded (asks first)")):
                if app.action_applies(action, row) and not gone:
                    out.append((f"{verb} {row.path}", what, partial(app.ask, action, row)))
            out.append((f"Details of {row.path}", "schema, first rows, timeline, full error",
                        partial(app.open_details, row)))
        for pane in ("files", "rates", "errors", "quarantine"):
            out.append((f"Show {pane}", f"switch to the {pane} pane", partial(app.show_pane, pane)))
        for state in ("held", "failed", "quarantined", "loading"):
            out.append((f"Filter: {state} files", f"only files in state {state}",
                        partial(app.set_filter, f"state:{state}")))
        out.append(("Filter files…", "type words to match path, table or error", app.start_filter))
        out.append(("Clear filter", "show every file again", partial(app.set_filter, "")))
        out.append(("Keys", "every key of the console", app.action_help))
        return out

    async def discover(self) -> Hits:
        for title, help_text, callback in self.commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self.commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
        if len(query) >= 2:  # jump to a file shown in the Files pane
            for row in self.chute.shown_files():
                score = matcher.match(row.path)
                if score > 0:
                    yield Hit(score * 0.9, matcher.highlight(row.path), partial(self.chute.go_to, row),
                              help=f"{row.state} · {row.table_name}")
