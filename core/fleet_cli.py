"""`chute fleet`: every host writing to this ClickHouse database, one host's problem files, and
actions sent to a host through its own command channel (core/fleet.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import humanize

from chute.core.config import Config
from chute.core.errors import TargetError, UsageError
from chute.core.fleet import ACTIONS, FleetFile, FleetStore, HostStatus
from chute.core.target import PROBE_TIMEOUT, AccessError, Target

STATE_COLUMNS = ("loaded", "duplicate", "queued", "loading", "held", "failed", "quarantined")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", metavar="HOST", help="one host: its held, failed and quarantined files")
    p.add_argument("action", nargs="?", choices=ACTIONS, help="with --host: send this action to that host")
    p.add_argument("path", nargs="?", metavar="PATH", help="the file (relative to that host's data folder)")
    p.add_argument("--wait", type=float, default=60.0, metavar="S", help="seconds to wait for the host's answer")


def run(cfg: Config, args: argparse.Namespace) -> int:
    if args.action and not args.host:
        raise UsageError("an action needs --host HOST (the host whose file it is)")
    if args.action in ("approve", "retry", "purge") and not args.path:
        raise UsageError(f"{args.action} needs the PATH of the file on host {args.host}")
    # A look at the fleet answers in seconds or says why not: a ClickHouse that accepts the connection
    # and never answers held `chute fleet` for the insert timeout (300 s), and longer.
    cfg = dataclasses.replace(cfg, insert_timeout=min(cfg.insert_timeout, PROBE_TIMEOUT),
                              connect_timeout=min(cfg.connect_timeout, PROBE_TIMEOUT))
    target = Target(cfg)
    try:
        store = FleetStore(cfg, target)
        try:
            target.check()
            if args.action:
                return _send(store, args)
            if args.host:
                return _host(store, args.host, args.json)
            return _hosts(store, args.json)
        except AccessError as exc:
            raise UsageError(f"ClickHouse at {cfg.masked_url()}: {exc}") from None
        except TargetError as exc:
            if exc.code == 60:  # UNKNOWN_TABLE
                print("[]" if args.json else f"no chute has reported to database {cfg.database} yet "
                      "(the fleet mirror is on by default; fleet_mirror = false turns it off)")
                return 0
            raise UsageError(f"ClickHouse at {cfg.masked_url()}: {exc}") from None
    finally:
        target.close()


def _hosts(store: FleetStore, as_json: bool) -> int:
    hosts = store.hosts()
    if as_json:
        print(json.dumps([h.as_dict() for h in hosts], indent=2))
        return 0
    for line in host_lines(hosts):
        print(line)
    sizes = {h.batch_rows for h in hosts if h.dedup_scope == "fleet" and h.status != "stopped"}
    if len(sizes) > 1:
        print(f"warning: hosts with dedup_scope = fleet use different batch_rows ({sorted(sizes)}): two of them "
              "loading the same content at the same moment would not share tokens")
    return 0


def host_lines(hosts: list[HostStatus]) -> list[str]:
    """The fleet as a table: one line per host, stale ones flagged."""
    head = f"{'HOST':<20} {'STATUS':<8} {'HEARTBEAT':>10} " + " ".join(f"{s[:7].upper():>7}" for s in STATE_COLUMNS)
    lines = [head + f" {'ROWS/S':>9}  ALERTS"]
    for h in hosts:
        counts = " ".join(f"{h.counts.get(s, 0):>7}" for s in STATE_COLUMNS)
        alerts = ", ".join(f"{a['level']}:{a['name']}" for a in h.alerts) or "-"
        lines.append(f"{h.host:<20} {h.status:<8} {_age(h.age):>10} {counts} {h.rows_per_s:>9,.0f}  {alerts}")
    if len(lines) == 1:
        lines.append("(no hosts)")
    return lines


def _age(seconds: float) -> str:
    return f"{seconds:.0f}s ago" if seconds < 120 else humanize.naturaldelta(seconds) + " ago"


def _host(store: FleetStore, host: str, as_json: bool) -> int:
    files = store.host_files(host)
    known = any(h.host == host for h in store.hosts())
    if not known:
        raise UsageError(f"no host {host!r} in the fleet (see `chute fleet`)")
    if as_json:
        print(json.dumps([f.as_dict() for f in files], indent=2))
        return 0
    for line in file_lines(files) if files else [f"{host}: no held, failed or quarantined files"]:
        print(line)
    return 0


def file_lines(files: list[FleetFile]) -> list[str]:
    return [f"{f.path}\t{f.table_name}\t{f.state}\t{'-' if f.rows is None else f.rows}\t{f.reason}" for f in files]


def _send(store: FleetStore, args: argparse.Namespace) -> int:
    if not any(h.host == args.host for h in store.hosts()):
        raise UsageError(f"no host {args.host!r} in the fleet (see `chute fleet`)")
    cid = store.send_command(args.host, args.action, args.path or "", f"cli:{store.host}")
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        cmd = store.command(cid)
        if cmd and cmd["status"] in ("done", "error"):
            if cmd["status"] == "done":
                print(f"{args.host}: {cmd['result']}")
                return 0
            print(f"chute: error: {args.host}: {cmd['result']}")
            return 2
        time.sleep(0.3)
    print(f"chute: host {args.host} has not answered in {args.wait:.0f}s; the command stays queued for it")
    return 1
