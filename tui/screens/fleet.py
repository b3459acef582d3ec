"""The Fleet screen (`f`): every chute host writing to this ClickHouse database, and one host's
held, failed and quarantined files. Actions on a file are sent to the host that owns it, as a row
in ``_chute_commands`` that host polls (core/fleet.py): this console never touches its files.

Everything that talks to ClickHouse runs in thread workers and reports back by message."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from chute.core.config import Config
from chute.core.errors import ChuteError
from chute.core.fleet import FleetFile, FleetStore, HostStatus
from chute.core.target import Target
from chute.tui.screens.confirm import ConfirmScreen
from chute.tui.widgets.fleet_files import FleetFilesTable
from chute.tui.widgets.fleet_hosts import FleetHostsTable
from chute.tui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from chute.tui.app import ChuteApp

REFRESH_SECONDS = 2.0
ANSWER_SECONDS = 60.0  # how long an action waits for the other host's answer before saying it is queued
APPLIES = {"approve": ("held",), "retry": ("failed", "quarantined"), "purge": ("held", "failed", "quarantined")}


class FleetRefreshed(Message):
    def __init__(self, hosts: list[HostStatus], host: str | None, files: list[FleetFile], error: str | None) -> None:
        super().__init__()
        self.hosts, self.host, self.files, self.error = hosts, host, files, error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, FleetRefreshed)


class FleetActionDone(Message):
    def __init__(self, text: str, ok: bool) -> None:
        super().__init__()
        self.text, self.ok = text, ok


class FleetScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f", "app.pop_screen", "Back", tooltip="back to the panes"),
        Binding("a", "act('approve')", "Approve", tooltip="ask the file's host to approve it"),
        Binding("r", "act('retry')", "Retry", tooltip="ask the file's host to retry it"),
        Binding("d", "act('purge')", "Purge", tooltip="ask the file's host to purge it (asks y/n)"),
    ]

    def __init__(self, cfg: Config, actor: str) -> None:
        super().__init__()
        self.cfg = cfg
        self.actor = actor
        self.store: FleetStore | None = None
        self.refreshes = 0  # tests wait on it
        self._busy = False

    def compose(self) -> ComposeResult:
        yield Static(f"Fleet: chute hosts writing to database {self.cfg.database}", id="fleet-title")
        yield FleetHostsTable(id="fleet-hosts")
        yield Static("", id="fleet-host-caption")
        yield FleetFilesTable(id="fleet-files")
        yield KeyBar()

    def on_mount(self) -> None:
        self.set_interval(REFRESH_SECONDS, self.reload)
        self.reload()

    def on_unmount(self) -> None:
        if self.store is not None:
            self.store.target.close()

    @property
    def hosts_table(self) -> FleetHostsTable:
        return self.query_one(FleetHostsTable)

    @property
    def files_table(self) -> FleetFilesTable:
        return self.query_one(FleetFilesTable)

    def reload(self) -> None:
        if not self._busy:
            self._busy = True
            self._collect(self.hosts_table.selected_host)

    @work(thread=True, group="fleet-poll", exit_on_error=False)
    def _collect(self, host: str | None) -> None:
        try:
            if self.store is None:  # its own connection: never the engine's loading threads'
                self.store = FleetStore(self.cfg, Target(self.cfg))
            hosts = self.store.hosts()
            host = host if host in {h.host for h in hosts} else (hosts[0].host if hosts else None)
            files = self.store.host_files(host) if host else []
            self.post_message(FleetRefreshed(hosts, host, files, None))
        except ChuteError as exc:
            no_tables = getattr(exc, "code", None) == 60
            self.post_message(FleetRefreshed([], None, [], "no chute has reported to this database yet"
                                             if no_tables else str(exc)))

    def on_fleet_refreshed(self, message: FleetRefreshed) -> None:
        self._busy = False
        self.hosts_table.show(message.hosts)
        caption = self.query_one("#fleet-host-caption", Static)
        if message.error:
            text = f"fleet view unavailable: {message.error}"
        elif message.host:
            stale = [h.host for h in message.hosts if h.stale]
            note = f"   stale: {', '.join(stale)}" if stale else ""
            text = f"{message.host}: {len(message.files)} held, failed or quarantined file(s){note}"
        else:
            text = "no hosts"
        if not self.cfg.fleet_mirror:  # the likely reason this host is missing: say how to add it
            text = (f"{text}\nThis chute does not report here (fleet_mirror = false): set fleet_mirror = true in "
                    "its config file or CHUTE_FLEET_MIRROR=true, then restart it.")
        caption.update(text)
        self.files_table.show(message.files, now=cast("ChuteApp", self.app).now())  # the console's clock
        self.refreshes += 1

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.hosts_table:
            self.reload()  # drill into the host under the cursor

    # -- actions: sent to the file's own host --------------------------------------------------

    def action_act(self, action: str) -> None:
        chosen = self.files_table.selected
        if chosen is None:
            self.app.notify("select a file of a host first (tab moves to the files)", severity="warning")
            return
        if chosen.state not in APPLIES[action]:
            self.app.notify(f"{action} does not apply to {chosen.path}: it is {chosen.state}", severity="warning")
            return
        if action != "purge":
            self.send(action, chosen)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.send("purge", chosen)

        self.app.push_screen(ConfirmScreen(f"Purge {chosen.path} on {chosen.host}?",
                                           f"Host {chosen.host} deletes the rows this file loaded into "
                                           f"{chosen.table_name} and removes the file. This cannot be undone."),
                             answered)

    @work(thread=True, group="fleet-actions")
    def send(self, action: str, file: FleetFile) -> None:
        try:
            store = self.store or FleetStore(self.cfg, Target(self.cfg))
            cid = store.send_command(file.host, action, file.path, self.actor)
            deadline = time.monotonic() + ANSWER_SECONDS
            while time.monotonic() < deadline:
                cmd = store.command(cid)
                if cmd and cmd["status"] in ("done", "error"):
                    ok = cmd["status"] == "done"
                    self.post_message(FleetActionDone(f"{file.host}: {cmd['result']}", ok))
                    return
                time.sleep(0.3)
            self.post_message(FleetActionDone(f"{file.host} has not answered yet; the {action} stays queued for it",
                                              False))
        except ChuteError as exc:
            self.post_message(FleetActionDone(f"{action} not sent: {exc}", False))

    def on_fleet_action_done(self, message: FleetActionDone) -> None:
        self.app.notify(message.text, severity="information" if message.ok else "error",
                        timeout=6 if message.ok else 10)
        self.reload()
