"""`chute approve|retry|purge`: one version (PATH = newest, or --id N) or many (--state/--table/--glob).

Many are listed first and confirmed once (``--yes`` for scripts, ``--dry-run`` to only list). Each
item then names its version by ledger id and the state it was listed in, so a file that moved on
between the listing and the action is refused with what changed, never acted on blindly.
"""

from __future__ import annotations

import argparse
import getpass
import os
import select
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from chute.core import action_rules, actions
from chute.core.config import Config
from chute.core.errors import UsageError
from chute.core.ledger import FileRow, Ledger

EXIT_OK, EXIT_UNEXPECTED, EXIT_REFUSED = 0, 1, 2


@dataclass(frozen=True)
class Item:
    """One action to run: a version by id (bulk, or --id) or the newest at a path."""

    label: str
    path: str | None = None
    file_id: int | None = None
    expect: str | None = None


def actor() -> str:
    """Who acts, for the audit trail: the OS account, even when $USER is unset (cron, systemd)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def version_id(text: str) -> int:
    """An --id: a ledger row id (SQLite INTEGER; a larger number used to end in an OverflowError)."""
    if not text.isdigit() or not 1 <= int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version id (the first column of `chute files`)")
    return int(text)


def add_arguments(p: argparse.ArgumentParser, states: list[str]) -> None:
    p.add_argument("path", metavar="PATH", nargs="?", help="file path, relative to DATA_DIR or absolute "
                   "(its newest version)")
    p.add_argument("--id", type=version_id, metavar="N", dest="file_id",
                   help="one version, by the id `chute files` shows")
    p.add_argument("--state", choices=states, metavar="STATE",
                   help="every file in this state (bulk): " + ", ".join(states))
    p.add_argument("--table", metavar="T", help="every file of this table (bulk)")
    p.add_argument("--glob", metavar="G", help="every file whose path matches G, e.g. 'orders/*.csv' (bulk)")
    p.add_argument("--yes", action="store_true", help="do not ask before a bulk action (scripts)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be touched")


def _line(row: FileRow) -> str:
    return f"  {row.id:>6}  {row.state:<11} {row.table_name:<16} {row.path}"


def _engine_running(cfg: Config) -> bool:
    from chute.core.engine import StateLock  # the engine module is big: only for a dry run

    return StateLock.holder(cfg.state_dir) is not None


def plan(cfg: Config, ledger: Ledger, name: str, args: argparse.Namespace) -> tuple[list[Item], list[FileRow]]:
    """What the arguments name: (items to run, rows to list before asking; empty for one PATH/--id)."""
    bulk = any(v is not None for v in (args.state, args.table, args.glob))
    given = sum([args.path is not None, args.file_id is not None, bulk])
    if given != 1:
        raise UsageError(f"chute {name}: give PATH, --id N, or --state/--table/--glob (exactly one of these)")
    if args.path is not None:
        if args.dry_run:  # say which version, and whether the action applies, as the real run would
            row = actions.find(cfg, ledger, args.path)
            why = action_rules.refusal(name, row.path, row.state)
            if why is not None and not _engine_running(cfg):
                why = action_rules.stalled(name, row.path, row.state) or why
            if why is not None:
                raise UsageError(why)
            return [Item(f"#{row.id} {row.path} ({row.state})", path=args.path)], []
        return [Item(args.path, path=args.path)], []
    if args.file_id is not None:
        row = actions.find_id(ledger, args.file_id)
        return [Item(f"#{row.id} {row.path}", file_id=row.id)], []
    if args.state is not None and not action_rules.applies(name, args.state):
        fits = ", ".join(sorted(action_rules.APPLIES[name]))
        raise UsageError(f"{name} applies to {fits} files, never to {args.state}: --state {args.state} selects "
                         "nothing to do")
    rows = actions.select(ledger, name, state=args.state, table=args.table, glob=args.glob)
    return [Item(f"#{r.id} {r.path}", file_id=r.id, expect=str(r.state)) for r in rows], rows


def confirm(name: str, rows: list[FileRow], args: argparse.Namespace) -> bool:
    """List the files, then ask once (or not at all: --yes, --dry-run)."""
    print(f"{name} would touch {len(rows)} file{'s' if len(rows) != 1 else ''}:" if rows
          else f"nothing to {name}: no file matches that {name} applies to")
    print("      id  state       table            path" if rows else "", end="\n" if rows else "")
    for row in rows:
        print(_line(row))
    if not rows or args.dry_run:
        return False
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{name} of {len(rows)} files needs confirmation: run it in a terminal, or add --yes")
    try:
        answer = _ask(f"{name} these {len(rows)} files? [y/N] ").strip().lower()
    except (EOFError, KeyboardInterrupt):  # ctrl-d / ctrl-c: a no, said clearly
        answer = ""
        print()
    if answer not in ("y", "yes"):
        print("nothing done")
        return False
    return True


def _ask(prompt: str) -> str:
    """input(), but ctrl-c works: SIGINT may land on a polars worker thread, which does not
    interrupt the main thread's read, so wait in short selects and let Python run its handler."""
    print(prompt, end="", flush=True)
    while not select.select([sys.stdin], [], [], 0.2)[0]:
        pass
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line


def via_daemon(state_dir: object, name: str, items: list[Item], who: str, wait: float,
               holder: Callable[[], str | None] | None = None) -> list[tuple[bool, str]]:
    """Queue every item on the running engine's command channel, then collect the answers."""
    from pathlib import Path

    from chute.core.engine import StateLock

    ledger = Ledger(Path(str(state_dir)))
    alive = holder or (lambda: StateLock.holder(Path(str(state_dir))))
    try:
        ids = [ledger.enqueue_command(name, it.path, who, it.file_id, it.expect) for it in items]
        out: dict[int, tuple[bool, str]] = {}
        deadline = time.monotonic() + wait
        checked = time.monotonic()
        while len(out) < len(ids) and time.monotonic() < deadline:
            for cid in ids:
                cmd = None if cid in out else ledger.command(cid)
                if cmd is not None and cmd["status"] != "pending":
                    out[cid] = (cmd["status"] == "done", str(cmd["result"]))
            if len(out) < len(ids) and time.monotonic() - checked > 0.5:
                checked = time.monotonic()
                if alive() is None:  # the daemon died: take back what it has not done, or the next one would
                    gone = f"the daemon stopped before carrying it out: {name} withdrawn, nothing done"
                    for cid in ids:
                        if cid not in out and ledger.withdraw_command(cid, gone):
                            out[cid] = (False, gone)
                    continue
            if len(out) < len(ids):
                time.sleep(0.1)
        return [out.get(cid, (False, f"the running engine has not answered in {wait:.0f}s; the command stays "
                              "queued")) for cid in ids]
    finally:
        ledger.close()


def report(results: list[tuple[bool, str]]) -> int:
    failed = 0
    for ok, text in results:
        if ok:
            print(text)
        else:
            failed += 1
            print(f"chute: error: {text}", file=sys.stderr)
    if len(results) > 1:
        print(f"{len(results) - failed} done, {failed} refused")
    timed_out = any("has not answered" in t for ok, t in results if not ok)
    return EXIT_UNEXPECTED if timed_out else (EXIT_REFUSED if failed else EXIT_OK)
