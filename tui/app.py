"""The operator console: `chute [DATA_DIR]` (engine inside) and `chute attach` (daemon's engine).

The app pulls a :class:`chute.tui.view.View` from the engine on a fixed timer, in a thread worker, and
applies it as a diff inside ``batch_update``. Operator actions run in thread workers and report
back with :class:`chute.tui.messages.ActionDone`. The engine (or the attached daemon) never calls in.
"""

from __future__ import annotations

import getpass
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType

from chute.core.config import Config
from chute.core.errors import ChuteError, UsageError
from chute.core.inspect import FileDetails, inspect_file
from chute.core.ledger import FileRow, Ledger
from chute.core.states import State
from chute.tui.commands import ChuteCommands
from chute.tui.messages import ActionDone, Refreshed, Stopped
from chute.tui.screens.confirm import ConfirmScreen
from chute.tui.screens.details import DetailsScreen
from chute.tui.screens.help import HelpScreen, binding_rows
from chute.tui.screens.main import MainScreen
from chute.tui.screens.stopping import StoppingScreen
from chute.tui.view import EngineLike, FileQuery, LoadedPerMinute, NewestFiles, View, collect
from chute.tui.widgets.ledger_table import LedgerTable
from chute.tui.widgets.status_line import StatusLine

log = logging.getLogger("chute.console")

REFRESH_SECONDS = 1.0
TABLE_LIMIT = 500  # newest rows the Files pane shows; the caption says so when more match
NOT_PURGEABLE = frozenset({State.SEEN, State.SETTLING, State.QUEUED, State.LOADING, State.PURGED})


class ChuteApp(App[int]):
    CSS_PATH: ClassVar[str] = "chute.tcss"
    TITLE = "chute"
    COMMANDS = App.COMMANDS | {ChuteCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", tooltip="quit (the engine finishes or safely abandons the batch in flight)"),
        Binding("question_mark", "help", "Help", tooltip="this help"),
        Binding("space", "pause", "Pause", tooltip="pause intake: no new file starts loading"),
        Binding("space", "resume", "Resume", tooltip="resume intake"),
    ]

    def __init__(self, engine: EngineLike, *, now: Callable[[], float] = time.time,
                 refresh_seconds: float = REFRESH_SECONDS, limit: int = TABLE_LIMIT, actor: str | None = None) -> None:
        super().__init__()
        self.animation_level = "none"  # over SSH an animated tab underline is only latency
        self.engine = engine
        self.now = now
        self.refresh_seconds = refresh_seconds
        self.limit = limit
        self.actor = actor or f"console:{_user()}"
        # The console's own read-only connection: its queries never wait on the engine's writer lock.
        self.reader = Ledger(engine.cfg.state_dir, readonly=True)
        self.view: View | None = None
        self.refreshes = 0  # views applied (tests and the bench wait on it)
        self.apply_seconds = 0.0  # UI-thread time the last view took to apply (the bench reads it)
        self._query = FileQuery()
        self._polling = False
        self._poll_again = False
        self._stopping = False
        self._per_minute = LoadedPerMinute()
        self._newest = NewestFiles(limit)
        self._was_paused = False

    def get_default_screen(self) -> MainScreen:
        return MainScreen()

    def start_polling(self) -> None:
        """Called once the main screen's widgets exist (a view arriving earlier has nowhere to go)."""
        self.set_interval(self.refresh_seconds, self.poll)
        self.poll()

    def on_unmount(self) -> None:
        self._stopping = True  # a refresh still in flight must not report the closed ledger
        self.reader.close()

    @property
    def main(self) -> MainScreen:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("main screen not mounted")

    # -- the refresh loop -----------------------------------------------------------------

    def poll(self) -> None:
        """Ask for a fresh view; at most one collection runs at a time."""
        if self._stopping:
            return
        if self._polling:
            self._poll_again = True
            return
        self._polling = True
        self._collect(self._query)

    @work(thread=True, group="poll", exit_on_error=False)
    def _collect(self, query: FileQuery) -> None:
        try:
            view = collect(self.engine, self.reader, query, self.now(), self.limit, self._per_minute, self._newest)
        except Exception as exc:  # noqa: BLE001 - a failed tick must not kill the console; the next one retries
            if not self._stopping:
                log.warning("console refresh failed: %s", exc)
            self._polling = False
            return
        self.post_message(Refreshed(view))

    def on_refreshed(self, message: Refreshed) -> None:
        self._polling = False
        if self._stopping or not any(isinstance(s, MainScreen) for s in self.screen_stack):
            return  # quitting: the screens are going away
        view = message.view
        self.view = view
        paused_changed = self.refreshes == 0 or view.snap.paused != self._was_paused
        self._was_paused = view.snap.paused
        t0 = time.perf_counter()
        with self.batch_update():
            self.main.show(view)
        self.apply_seconds = time.perf_counter() - t0
        self.refreshes += 1
        if isinstance(self.screen, DetailsScreen):
            shown = self.screen.row.id
            fresh = next((r for r in (*view.files, *view.errors, *view.quarantine) if r.id == shown), None)
            if fresh is not None:
                self.screen.follow(fresh)
        if paused_changed:
            self.refresh_bindings()
        if self._poll_again or view.query != self._query:
            self._poll_again = False
            self.poll()

    # -- what the panes and the palette ask for -------------------------------------------

    @property
    def engine_paused(self) -> bool:
        return self.view.snap.paused if self.view is not None else bool(self.engine.paused)

    @property
    def query_text(self) -> str:
        return self._query.text

    def set_filter(self, text: str) -> None:
        if text != self._query.text:
            self._query = FileQuery(text)
            self.main.show_filter(text)
            self.poll()

    def start_filter(self) -> None:
        self.main.action_filter()

    def show_pane(self, pane: str) -> None:
        self.main.action_pane(pane)

    def shown_files(self) -> list[FileRow]:
        return list(self.view.files) if self.view is not None else []

    def go_to(self, row: FileRow) -> None:
        self.show_pane("files")
        self.main.query_one("#files-table", LedgerTable).select_id(row.id)

    def current_row(self) -> FileRow | None:
        if isinstance(self.screen, DetailsScreen):
            return self.screen.row
        return self.main.selected

    def action_applies(self, action: str, row: FileRow | None) -> bool:
        if row is None:
            return False
        if action == "approve":
            return row.state == State.HELD
        if action == "retry":
            return row.state in (State.FAILED, State.QUARANTINED)
        if action == "purge":
            return row.state not in NOT_PURGEABLE
        return False

    def inspect(self, row: FileRow) -> FileDetails:
        """Runs in the details screen's thread worker."""
        fresh = self.reader.get(row.id) or row
        return inspect_file(self.engine.cfg, fresh, self.reader, self.engine.target)

    def open_details(self, row: FileRow) -> None:
        self.push_screen(DetailsScreen(row, self.inspect, now=self.now))

    # -- operator actions -----------------------------------------------------------------

    def ask(self, action: str, row: FileRow) -> None:
        if not self.action_applies(action, row):
            self.notify(f"{action} does not apply to {row.path}: it is {row.state}", severity="warning")
            return
        if action != "purge":
            self.execute(action, row.path)
            return
        rows = f"the {row.rows_loaded:,} rows it loaded into {row.table_name}" if row.rows_loaded else "no rows"
        where = row.moved_to or row.path
        body = (f"{row.path}  ({row.state})\n\nDeletes {rows} and removes the file {where} from the data folder. "
                "This cannot be undone.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.execute("purge", row.path)
            else:
                self.notify(f"purge of {row.path} cancelled", timeout=3)

        self.push_screen(ConfirmScreen(f"Purge {row.path}?", body), answered)

    @work(thread=True, group="actions")
    def execute(self, action: str, path: str | None) -> None:
        try:
            text, ok = self.engine.command(action, path, actor=self.actor), True
        except ChuteError as exc:
            text, ok = str(exc), False
        except Exception as exc:  # noqa: BLE001 - shown to the operator, never a crash
            log.exception("%s %s failed", action, path)
            text, ok = f"{type(exc).__name__}: {exc}", False
        self.post_message(ActionDone(action, path, ok, text))

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, title=message.action if message.ok else f"{message.action} refused",
                    severity="information" if message.ok else "error", timeout=6 if message.ok else 10)
        if isinstance(self.screen, DetailsScreen) and self.screen.row.path == message.path:
            self.screen.reload()
        self.poll()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pause":
            return not self.engine_paused
        if action == "resume":
            return self.engine_paused
        return True

    def action_pause(self) -> None:
        self.execute("pause", None)

    def action_resume(self) -> None:
        self.execute("resume", None)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        sections = [
            ("Everywhere", binding_rows(self.BINDINGS) + [("ctrl+p", "command palette: every action, any file")]),
            ("Files, Errors, Quarantine", binding_rows(LedgerTable.BINDINGS[:1]) + binding_rows(MainScreen.BINDINGS)
             + binding_rows(LedgerTable.BINDINGS[1:])
             + [("up/down", "move"), ("pgup/pgdn", "page"), ("left/right", "scroll sideways"),
                ("tab", "move between the pane tabs and the table")]),
            ("Filter box", [("enter", "keep the filter, back to the table"), ("esc", "clear the filter")]),
            ("Details", binding_rows(DetailsScreen.BINDINGS)),
            ("Purge confirmation", binding_rows(ConfirmScreen.BINDINGS) + [("enter", "the focused button (No)")]),
        ]
        self.push_screen(HelpScreen(sections))

    # -- quitting -------------------------------------------------------------------------

    async def action_quit(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self.engine.mode == "attach":
            self.engine.stop()  # detach only: the daemon keeps running
            self.exit(0)
            return
        status = self.main.query_one(StatusLine)
        status.stopping = True
        status.refresh()
        self.push_screen(StoppingScreen())
        self._stop_engine()

    @work(thread=True, group="stop")
    def _stop_engine(self) -> None:
        self.engine.stop()
        self.post_message(Stopped())

    def on_stopped(self, message: Stopped) -> None:
        self.exit(0)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _log_to_file(cfg: Config, name: str) -> Path | None:
    """Log lines go to a file while the console owns the terminal (a line on stderr would tear it)."""
    from chute.core import logsetup
    from chute.core.private import open_private, private_dir

    try:
        private_dir(cfg.state_dir)
        path = cfg.state_dir / name
        logsetup.configure("text", cfg.log_level, stream=open_private(path))  # 0600: core/private.py
        return path
    except OSError:
        logging.getLogger().handlers[:] = [logging.NullHandler()]
        return None


def run_console(cfg: Config, wait_for_clickhouse: float = 0.0) -> int:
    """`chute [DATA_DIR]`: the console with the engine running inside."""
    from chute.core.engine import Engine

    _log_to_file(cfg, "console.log")
    engine = Engine(cfg, mode="console")
    if wait_for_clickhouse:
        print(f"chute: waiting up to {wait_for_clickhouse:.0f}s for ClickHouse at {cfg.masked_url()}…",
              file=sys.stderr)
    try:
        engine.start(wait_for_target=wait_for_clickhouse)
    except UsageError as exc:
        print(f"chute: error: {exc}", file=sys.stderr)
        return 2
    try:
        code = ChuteApp(engine).run()
    finally:
        if not engine.stopping:
            engine.stop()
    return code or 0


def run_attached(cfg: Config) -> int:
    """`chute attach`: the same console, driving a headless daemon through the ledger."""
    from chute.core.attach import AttachedEngine

    try:
        engine = AttachedEngine(cfg)
    except UsageError as exc:
        print(f"chute: error: {exc}", file=sys.stderr)
        return 2
    if engine.daemon is None:
        engine.close()
        print(f"chute: error: no chute daemon is running with state dir {cfg.state_dir} "
              "(start one with `chute --no-ui DATA_DIR`, or run `chute DATA_DIR` for a console with its own engine)",
              file=sys.stderr)
        return 2
    _log_to_file(cfg, "attach.log")
    try:
        code = ChuteApp(engine).run()
    finally:
        engine.stop()
    return code or 0

