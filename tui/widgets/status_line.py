"""The header line: ClickHouse target and whether it answers, the data folder, intake state."""

from __future__ import annotations

from rich.text import Text

from chute.tui import format as fmt
from chute.tui.widgets.view_line import ViewLine


class StatusLine(ViewLine):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.stopping = False

    def _looks(self) -> tuple[object, ...]:
        return (self.size, self.stopping)

    def _line(self) -> Text:
        view = self.view
        if view is None:
            return Text(" chute  starting…", style="bold")
        snap = view.snap
        sep = Text(" │ ", style="dim")
        gone = view.attached and not view.daemon
        if gone:
            # Nothing runs: not ClickHouse's fault, and nothing is "running".
            badge = Text(" DAEMON GONE ", style="reverse bold")
        elif self.stopping:
            badge = Text(" STOPPING… ", style="reverse bold yellow on black")
        elif snap.paused:
            badge = Text(" PAUSED ", style="reverse bold yellow on black")
        else:
            badge = Text(" RUNNING ", style="reverse bold green on black")
        wide = self.size.width >= 100
        right = Text()
        if view.attached:
            pid = " ".join((view.daemon or "").split()[:2])  # 'pid N' of 'pid N mode'
            if view.daemon:
                right = Text(f"attached to {pid} " if wide else "attached ", style="bold")
        right.append_text(badge)
        if gone:
            health = Text("? ", style="bold")
            target = f"{snap.target} (not checked: no daemon)"
        elif snap.target_ok:
            health = Text("● ", style="green")
            target = snap.target
        else:
            health = Text("✗ DOWN ", style="bold red")
            target = f"{snap.target}: {fmt.one_line(snap.target_error, 80)}"
        left = Text.assemble((" chute", "bold"), sep, health)
        # What is left goes to the target and the data folder, each shortened in the middle.
        room = self.size.width - left.cell_len - right.cell_len - 2 * sep.cell_len - len("data ") - 1
        if snap.target_ok and snap.server_version and len(target) + len(snap.server_version) + 3 <= room // 2:
            target += f" ({snap.server_version})"  # the version only when the whole URL fits with it
        target_w = max(12, min(len(target), room // 2))
        data_w = max(8, room - target_w)
        line = Text.assemble(left, (fmt.shorten(target, target_w), "" if snap.target_ok or gone else "red"), sep,
                             ("data ", "dim"), fmt.shorten(_dir(snap.data_dir), data_w))
        line.append(" " * max(1, self.size.width - line.cell_len - right.cell_len))
        line.append_text(right)
        line.no_wrap = True
        line.truncate(self.size.width)
        return line


def _dir(path: str) -> str:
    return path if path.startswith(("/", "~", ".")) else f"./{path}"
