"""The operator console: `chute [DATA_DIR]` (engine inside) and `chute attach` (daemon's engine).

The app pulls a :class:`chute.tui.view.View` from the engine on a fixed timer, in a thread worker, and
applies it as a diff inside ``batch_update``; input first, a timer's refresh never lands between a key
and its paint (see "the refresh loop"). Operator actions run in thread workers and report back with
:class:`chute.tui.messages.ActionDone`. The engine (or the attached daemon) never calls in.
"""

from __future__ import annotations

import gc
import getpass
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.filter import Monochrome, NoColor
from textual.timer import Timer

from chute.core import action_rules
from chute.core.config import Config
from chute.core.errors import ChuteError, UsageError
from chute.core.inspect import FileDetails, inspect_file
from chute.core.ledger import FileRow, Ledger
from chute.core.states import State
from chute.tui.advice import as_now
from chute.tui.commands import ChuteCommands
from chute.tui.messages import ActionDone, Refreshed, Stopped
from chute.tui.screens.confirm import ConfirmScreen
from chute.tui.screens.details import DetailsScreen
from chute.tui.screens.fleet import FleetScreen
from chute.tui.screens.help import HelpScreen, binding_rows
from chute.tui.screens.main import MainScreen
from chute.tui.screens.stopping import StoppingScreen
from chute.tui.stderr_aside import stderr_aside
from chute.tui.view import EngineLike, FileQuery, LoadedPerMinute, NewestFiles, Outcomes, PastRates, View, collect
from chute.tui.widgets.ledger_table import LedgerTable
from chute.tui.widgets.status_line import StatusLine

log = logging.getLogger("chute.console")

REFRESH_SECONDS = 1.0
INPUT_FIRST = 0.05  # seconds after a key's paint before a timer's refresh may start or apply (input first)
PAINT_LOST = 2.0  # a key whose paint has not reported by then is taken as painted (its screen went away)
KEYS_COMING = 0.5  # a key this recent: the operator is typing (a view collected now waits, see _keys_wait)
SPLIT = 0.1  # ... for the next key's paint, or this long without one
GC_THRESHOLDS = (10_000, 10, 10)  # while the console runs (see _apply)
TABLE_LIMIT = 500  # newest rows the Files pane shows; the caption says so when more match


class ChuteApp(App[int]):
    CSS_PATH: ClassVar[str] = "chute.tcss"
    TITLE = "chute"
    COMMANDS = App.COMMANDS | {ChuteCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", tooltip="quit (the engine finishes or safely abandons the batch in flight)"),
        Binding("question_mark", "help", "Help", tooltip="this help"),
        # p, not space: a stray space (k9s marks rows with it) must never stop ingestion
        Binding("p", "pause", "Pause", tooltip="pause intake: no new file starts loading"),
        Binding("p", "resume", "Resume", tooltip="resume intake"),
        Binding("f", "fleet", "Fleet", tooltip="every chute host on this ClickHouse; act on their files"),
    ]

    def __init__(self, engine: EngineLike, *, now: Callable[[], float] = time.time,
                 refresh_seconds: float = REFRESH_SECONDS, limit: int = TABLE_LIMIT, actor: str | None = None) -> None:
        super().__init__()
        if self.no_color:
            # NO_COLOR means no colour, not grey: Textual's Monochrome filter turns magenta and red
            # into dark grey on near-black. Without colour, bold/underline/reverse carry the meaning.
            self._filters = [NoColor() if isinstance(f, Monochrome) else f for f in self._filters]
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
        self._outcomes = Outcomes()  # counted once per finished minute, not per refresh
        # The attached engine reads its history from the ledger already; an engine of its own starts empty.
        self._past = PastRates() if engine.mode != "attach" else None
        self._was_paused: tuple[bool, str | None] = (False, None)
        self.last_key = 0.0  # time.monotonic() of the last key pressed
        self._unpainted = 0  # keys handled whose paint has not happened yet
        self._painted_at = 0.0  # time.monotonic() when the last key's paint ended
        self._paints = 0  # keys painted so far
        self._split: tuple[int, float] | None = None  # a view that arrived while keys came: (_paints, when)
        self._tick_due: float | None = None  # a timer's refresh not applied yet: when it was due
        self._held: Refreshed | None = None  # its view, collected while keys were coming
        self._wake: Timer | None = None  # the timer that looks again once the keys may have paused
        self._gc_thresholds: tuple[int, int, int] | None = None  # the process's, restored on unmount

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self.last_key = time.monotonic()  # work that can wait (MainScreen's warm-up) waits for a pause
            self._unpainted += 1
            self.call_after_refresh(self._key_painted)  # runs once the screen has painted what the key did
        await super().on_event(event)

    def _key_painted(self) -> None:
        self._unpainted = max(0, self._unpainted - 1)
        self._painted_at = time.monotonic()
        self._paints += 1
        if self._tick_due is not None:
            self._when_quiet()  # a refresh waiting for this paint

    @property
    def key_unpainted(self) -> bool:
        """A key is being handled or its paint has not happened yet (work that can wait, waits)."""
        return bool(self._unpainted) and time.monotonic() - self.last_key < PAINT_LOST

    def get_default_screen(self) -> MainScreen:
        return MainScreen()

    def start_polling(self) -> None:
        """Called once the main screen's widgets exist (a view arriving earlier has nowhere to go)."""
        self.set_interval(self.refresh_seconds, self._tick)
        self.poll()

    def on_unmount(self) -> None:
        self._stopping = True  # a refresh still in flight must not report the closed ledger
        self.reader.close()
        gc.unfreeze()  # see on_refreshed: a process that goes on (tests) must be able to collect this app
        if self._gc_thresholds is not None:
            gc.set_threshold(*self._gc_thresholds)

    @property
    def main(self) -> MainScreen:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("main screen not mounted")

    # -- the refresh loop -----------------------------------------------------------------
    #
    # Input first, as terminals and editors do: a refresh landing on a key (its apply is a few ms
    # on the UI thread, its collect holds the GIL for a few more) made a pane switch miss its
    # frame. A timer's refresh (its collect, then its apply) waits until no key is being handled
    # or painted and the last paint is INPUT_FIRST old. It is never starved: one tick late it only
    # waits for the key in hand to be painted, and a tick that finds it still waiting is merged
    # into it (one refresh, not two): while keys come without a pause, one refresh every two ticks.
    # While the operator types, the collect and the apply go in two gaps between keys, not one: a
    # view collected then is applied after the next key's paint (or once SPLIT passes without a
    # key), so no key waits behind a whole refresh (its collect holds the GIL ~3-5 ms, its apply
    # and paint take ~10 ms of the UI thread).

    def _tick(self) -> None:
        if self._tick_due is None:
            self._tick_due = time.monotonic()
        # else the last tick's refresh is still waiting or collecting: this tick merges into it
        self._when_quiet()

    def _keys_wait(self) -> float | None:
        """How long a timer's refresh waits for the keys: None to go now, 0 until the key in hand
        is painted (_key_painted looks again), else the seconds until the keys' pause."""
        if self._tick_due is None:
            return None
        now = time.monotonic()
        late = now - self._tick_due
        if late >= 2 * self.refresh_seconds:
            return None  # whatever happens: a refresh is never starved
        if self._unpainted:
            if now - self.last_key < PAINT_LOST:
                return 0.0
            self._unpainted = 0
        if self._held is not None and self._split is not None:
            paints, arrived = self._split
            if paints == self._paints and now - arrived < SPLIT:
                return SPLIT - (now - arrived)
        if late >= self.refresh_seconds:
            return None
        quiet = self._painted_at + INPUT_FIRST - now
        return quiet if quiet > 0 else None

    def _when_quiet(self) -> None:
        """Start the waiting refresh's collect, or apply its view, once the keys allow it."""
        if self._tick_due is None or self._stopping:
            return
        wait = self._keys_wait()
        if wait is not None:
            if wait and self._wake is None:  # one timer at a time, not one per key
                self._wake = self.set_timer(wait, self._woken)
            return
        if self._held is not None:
            held, self._held = self._held, None
            self._apply(held)
        elif not self._polling:
            self.poll()

    def _woken(self) -> None:
        self._wake = None
        self._when_quiet()

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
            view = collect(self.engine, self.reader, query, self.now(), self.limit, self._per_minute, self._newest,
                           self._past, self._outcomes)
        except Exception as exc:  # noqa: BLE001 - a failed tick must not kill the console; the next one retries
            if not self._stopping:
                log.warning("console refresh failed: %s", exc)
            self._polling = False
            self._tick_due = None  # the next tick tries again
            return
        self.post_message(Refreshed(view))

    def on_refreshed(self, message: Refreshed) -> None:
        self._polling = False
        now = time.monotonic()
        self._split = (self._paints, now) if now - self.last_key < KEYS_COMING else None
        self._held = message
        if self._keys_wait() is not None:  # applied once the keys allow (the newest view collected wins)
            self._when_quiet()
            return
        self._apply(message)

    def _apply(self, message: Refreshed) -> None:
        self._tick_due, self._held, self._split = None, None, None
        if self._stopping or not any(isinstance(s, MainScreen) for s in self.screen_stack):
            return  # quitting: the screens are going away
        view = message.view
        self.view = view
        paused_changed = self.refreshes == 0 or (view.snap.paused, view.daemon) != self._was_paused
        self._was_paused = (view.snap.paused, view.daemon)
        t0 = time.perf_counter()
        try:
            with self.batch_update():
                self.main.show(view)
        except NoMatches:  # a refresh that lands while the app is being torn down (its widgets are gone)
            return
        self.apply_seconds = time.perf_counter() - t0
        if self.refreshes == 0:
            # Everything alive now (Textual, polars, the widgets, the first page of rows) lives as
            # long as the console: moved out of the collector's reach, a full collection (which
            # stops the UI thread for ~100 ms with 10,000 files) has half as much to walk.
            gc.freeze()
            # The young generation is collected every 10,000 objects, not 700: 108 keys of the
            # bench made 200 collections (100 ms), 18 of them older generations (a full one: 18 ms
            # on one key); now about 8 of 3-7 ms, none older.
            self._gc_thresholds = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLDS)
        self.refreshes += 1
        if isinstance(self.screen, DetailsScreen):
            shown = self.screen.row.id
            fresh = next((r for r in (*view.files, *view.errors, *view.quarantine) if r.id == shown), None)
            if fresh is not None:
                self.screen.follow(fresh)
        if isinstance(self.screen, ConfirmScreen) and self.screen.about:
            self._recheck(self.screen)
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

    def set_filter(self, text: str, echo: bool = True) -> None:
        """``echo``: also show it in the filter box (from the palette; not from the box itself)."""
        if text != self._query.text:
            self._query = FileQuery(text)
            if echo:
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
        return row is not None and action_rules.applies(action, row.state)

    def inspect(self, row: FileRow) -> FileDetails:
        """Runs in the details screen's thread worker."""
        fresh = self.reader.get(row.id) or row
        fresh = as_now(fresh, lambda file_id: str(old.state) if (old := self.reader.get(file_id)) else None)
        return inspect_file(self.engine.cfg, fresh, self.reader, self.engine.target)

    def open_details(self, row: FileRow) -> None:
        self.push_screen(DetailsScreen(row, self.inspect, now=self.now))

    # -- operator actions -----------------------------------------------------------------

    def ask(self, action: str, row: FileRow) -> None:
        """One file: the version on screen (by id), in the state on screen (the engine re-checks)."""
        if not self.action_applies(action, row):
            self.notify(f"{action} does not apply to {row.path}: it is {row.state}", severity="warning")
            return
        if action != "purge":
            self.execute(action, [row])
            return
        rows = f"the {row.rows_loaded:,} rows it loaded into {row.table_name}" if row.rows_loaded else "no rows"
        where = row.moved_to or row.path
        newest = None if row.moved_to else self.reader.current(row.path)
        if newest is not None and newest.id != row.id:  # the file at that path is another version's
            disk = f"keeps the file {row.path}: it is a newer version (#{newest.id}, {newest.state})"
        else:
            disk = f"removes the file {where} from the data folder"
        body = (f"#{row.id} {row.path}  ({row.state})\n\nDeletes {rows} and {disk}. This cannot be undone. "
                "If the file changes state first, nothing is done.")
        self._confirm("purge", [row], f"Purge #{row.id} {row.path}?", body)

    def _recheck(self, dialog: ConfirmScreen) -> None:
        """An open question whose file moved on says so, instead of going stale."""
        notes = []
        for file_id, shown in dialog.about[:50]:
            fresh = self.reader.get(file_id)
            if fresh is not None and str(fresh.state) != shown:
                notes.append(f"⚠ #{file_id} {fresh.path} is now {fresh.state} (was {shown}): y leaves it alone")
        dialog.changed(notes)

    def ask_many(self, action: str, rows: list[FileRow]) -> None:
        """Marked (or filtered) files: those the action applies to, listed, confirmed once."""
        fit = [r for r in rows if self.action_applies(action, r)]
        if not fit:
            self.notify(f"{action} applies to none of the {len(rows)} marked files", severity="warning")
            return
        listed = [f"#{r.id} {r.path}  ({r.state})" for r in fit]  # the dialog scrolls them
        skipped = f"{len(rows) - len(fit)} marked file(s) skipped: {action} does not apply\n" \
            if len(fit) < len(rows) else ""
        body = f"{skipped}Each is done only if it is still in the state shown."
        self._confirm(action, fit, f"{action.capitalize()} {len(fit)} files?", body, listed)

    def _confirm(self, action: str, rows: list[FileRow], title: str, body: str, items: list[str] | None = None
                 ) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.execute(action, rows)
                self.main.clear_marks()
            else:
                what = rows[0].path if len(rows) == 1 else f"{len(rows)} files"
                self.notify(f"{action} of {what} cancelled", timeout=3)

        about = tuple((r.id, str(r.state)) for r in rows)
        self.push_screen(ConfirmScreen(title, body, yes_label=f"Yes, {action}", about=about, items=items), answered)

    @work(thread=True, group="actions")
    def execute(self, action: str, rows: list[FileRow] | None) -> None:
        if rows is None:  # pause / resume
            self.post_message(ActionDone(action, None, *self._command(action, None)))
            return
        results = [self._command(action, row) for row in rows]
        failed = [text for ok, text in results if not ok]
        if len(rows) == 1:
            ok, text = results[0]
        else:
            ok = not failed
            text = f"{len(rows) - len(failed)} of {len(rows)} done" + (f"; refused: {failed[0]}" if failed else "")
        self.post_message(ActionDone(action, rows[0].id if len(rows) == 1 else None, ok, text))

    def _command(self, action: str, row: FileRow | None) -> tuple[bool, str]:
        try:
            if row is None:
                return True, self.engine.command(action, None, actor=self.actor)
            return True, self.engine.command(action, None, actor=self.actor, file_id=row.id, expect=str(row.state))
        except ChuteError as exc:
            return False, str(exc)
        except Exception as exc:  # shown to the operator, never a crash
            log.exception("%s %s failed", action, row.path if row else "")
            return False, f"{type(exc).__name__}: {exc}"

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, title=message.action if message.ok else f"{message.action} refused",
                    severity="information" if message.ok else "error", timeout=6 if message.ok else 10)
        if isinstance(self.screen, DetailsScreen) and self.screen.row.id == message.file_id:
            self.screen.reload()
        self.poll()

    @property
    def daemon_gone(self) -> bool:
        """Attached, and the daemon stopped: every action would only wait in the queue."""
        return self.view is not None and self.view.attached and not self.view.daemon

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pause":
            return None if self.daemon_gone and not self.engine_paused else not self.engine_paused
        if action == "resume":
            return None if self.daemon_gone and self.engine_paused else self.engine_paused
        return True

    def action_pause(self) -> None:
        self.execute("pause", None)

    def action_resume(self) -> None:
        self.execute("resume", None)

    def action_fleet(self) -> None:
        if not isinstance(self.screen, FleetScreen):
            self.push_screen(FleetScreen(self.engine.cfg, self.actor))

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
            ("Confirmation (purge, bulk)", binding_rows(ConfirmScreen.BINDINGS)),
            ("Fleet", binding_rows(FleetScreen.BINDINGS) + [("tab", "between the hosts and a host's files")]),
        ]
        self.push_screen(HelpScreen(sections))

    # -- quitting -------------------------------------------------------------------------

    async def action_quit(self) -> None:
        if self._stopping or isinstance(self.screen, ConfirmScreen):
            return
        loading = self._loading_now() if self.engine.mode != "attach" else 0
        if loading:
            def answered(yes: bool | None) -> None:
                if yes:
                    self.call_later(self._quit_now)

            body = (f"{loading} file(s) are loading. Quitting stops ingestion here: the batch in flight "
                    "finishes or is safely abandoned, and the rest resumes at the next start.")
            self.push_screen(ConfirmScreen("Quit while files load?", body, yes_label="Yes, quit"), answered)
            return
        await self._quit_now()

    def _loading_now(self) -> int:
        """Files loading right now (not as of the last refresh): a big file being validated counts
        before it reports progress."""
        try:
            snap = self.engine.snapshot()
        except Exception:  # noqa: BLE001 - quitting must work even when the engine cannot say
            return 0
        return max(len(snap.inflight), snap.counts.get(State.LOADING, 0))

    async def _quit_now(self) -> None:
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
        # Actions the operator confirmed finish first: `y` then `q` must not cut a bulk purge short
        # (the engine's ledger and ClickHouse would close under it).
        for worker in [w for w in self.workers if w.group == "actions"]:
            while not worker.is_finished:
                time.sleep(0.05)
        self.engine.stop()
        self.post_message(Stopped())

    def on_stopped(self, message: Stopped) -> None:
        self.exit(0)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def exit_summary(cfg: Config, since: float, attached: bool, daemon_running: bool = True) -> str:
    """The one line left on the terminal after the console closes: what happened while it ran."""
    try:
        ledger = Ledger(cfg.state_dir, readonly=True)
        try:
            done = ledger.outcomes_since(since, [State.LOADED, State.FAILED, State.QUARANTINED, State.HELD])
            held = ledger.counts().get(State.HELD, 0)
        finally:
            ledger.close()
    except Exception:  # noqa: BLE001 - a summary must never turn an exit into a traceback
        return "chute: detached" if attached else "chute: stopped"
    what = ("detached (the daemon keeps running)" if daemon_running else "detached (no daemon is running: "
            "start `chute --no-ui`)") if attached else "stopped"
    line = (f"chute: {what}; this session {done.get(State.LOADED, 0)} loaded, {done.get(State.FAILED, 0)} failed, "
            f"{done.get(State.QUARANTINED, 0)} quarantined, {done.get(State.HELD, 0)} held")
    if held:
        line += f"; {held} held in all (chute files --state held)"
    return line


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
    started = time.time()
    try:
        with stderr_aside(cfg.state_dir / "stderr.log"):
            code = _run(ChuteApp(engine))
    finally:
        if not engine.stopping:
            engine.stop()
        print(exit_summary(cfg, started, attached=False), file=sys.stderr)
    return code


def _run(app: ChuteApp) -> int:
    """The app's exit code: on a crash Textual prints the traceback and run() returns None, its
    return_code is 1 (not the 0 of an operator's quit)."""
    code = app.run()
    return code if code is not None else (app.return_code or 0)


def run_attached(cfg: Config, read_only: bool = False) -> int:
    """`chute attach`: the same console, driving a headless daemon through the ledger.
    ``read_only``: every action is refused (what `chute serve` runs without a token)."""
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
    if read_only:
        from chute.core.readonly import ReadOnlyEngine

        engine = ReadOnlyEngine(engine)  # type: ignore[assignment]
    started = time.time()
    try:
        with stderr_aside(cfg.state_dir / "stderr.log"):
            code = _run(ChuteApp(engine))
    finally:
        engine.stop()
        print(exit_summary(engine.cfg, started, attached=True, daemon_running=engine.daemon is not None),
              file=sys.stderr)
    return code or 0

