"""The `chute` command line (docs/CONTRACTS.md#command-line). Every mode shares one engine."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import humanize

from chute.core import __version__
from chute.core import config as config_mod
from chute.core.errors import ChuteError, UsageError
from chute.core.states import State

if TYPE_CHECKING:
    from chute.core.ledger import Ledger  # for the annotation; imported where it is used

log = logging.getLogger("chute")

SUBCOMMANDS = ("status", "files", "approve", "retry", "purge", "attach", "events", "config", "inspect", "gc",
               "serve", "fleet", "recover")
EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE = 0, 1, 2  # 3 (some files not loaded): api.RunResult.exit_code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, like every usage error
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("common options")
    g.add_argument("--clickhouse", metavar="URL", help="chdb:///abs/path or http(s)://user@host:port "
                   "(env CHUTE_CLICKHOUSE_URL; default: embedded chDB)")
    g.add_argument("--database", metavar="NAME", help="ClickHouse database (default: default)")
    g.add_argument("--state-dir", metavar="DIR", help="where the ledger lives (env CHUTE_STATE_DIR)")
    g.add_argument("--config", metavar="FILE", help="TOML configuration file")
    g.add_argument("--log-format", choices=["auto", "text", "json"], help="log line format (default: auto)")
    g.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default: info")


def _engine_flags(p: argparse.ArgumentParser) -> None:
    """Options of the engine; `chute config` takes them too, to show their effect."""
    p.add_argument("--require-approval", action="store_true", default=None,
                   help="every new file waits as held until approved")
    p.add_argument("--batch-rows", type=int, metavar="N", help="rows per insert (default 125000)")
    p.add_argument("--settle-seconds", type=float, metavar="S", help="quiet time before a file counts as complete")
    p.add_argument("--workers", type=int, metavar="N", help="loader threads (default 2)")
    p.add_argument("--after-load", choices=["keep", "archive", "delete"], help="what to do with a loaded file")
    p.add_argument("--metrics-addr", metavar="HOST:PORT", help="serve Prometheus metrics here "
                   "(env CHUTE_METRICS_ADDR; a bare port binds 127.0.0.1; default: off)")
    p.add_argument("--cluster", metavar="NAME", help="create tables ON CLUSTER NAME with Replicated engines")
    p.add_argument("--notify", action="append", metavar="URL", help="send alerts to this apprise URL "
                   "(slack://, mailto://, ntfy://, json://host/path, ...); repeatable")


# One line per subcommand for `chute --help`; a subcommand not listed here shows its parser's description.
SUMMARIES = {
    "status": "per-state counts, rates, recent errors and alerts (reads the ledger)",
    "files": "one line per file version: path, table, state, rows, reason",
    "approve": "release a held file for loading",
    "retry": "load a failed or quarantined file again",
    "purge": "delete a file's rows from ClickHouse and the file",
    "attach": "console attached to a running headless daemon on this host",
    "events": "the audit trail: who changed what, when and why",
    "config": "the effective configuration as TOML; --check FILE validates one",
    "inspect": "dry run: table, inferred types and why, null tokens, drift, first rows, problems",
    "recover": "rebuild a damaged ledger from the lineage columns in ClickHouse (nothing reloads)",
    "gc": "retention now: prune _archive/, _quarantine/ and old ledger rows (loaded hashes stay)",
    "fleet": "every chute host writing to this ClickHouse: heartbeats, counts, alerts; act on their files",
    "serve": "the console in a web browser (127.0.0.1; read-only unless started with a token)",
}


def _subcommand_lines() -> str:
    import shutil
    import textwrap

    width = max(40, shutil.get_terminal_size().columns - 2)  # as argparse wraps the options above
    lines = ["subcommands (chute NAME --help for each):"]
    for name in SUBCOMMANDS:
        summary = SUMMARIES.get(name) or (build_sub_parser(name).description or "").split("\n")[0]
        lines.append(textwrap.fill(summary, width, initial_indent=f"  {name:<10} ", subsequent_indent=" " * 13))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="chute", description="Watch a folder and load every new file into ClickHouse exactly once.",
                usage="chute [options] [DATA_DIR]\n       chute SUBCOMMAND [options]",
                epilog=_subcommand_lines(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", nargs="?", metavar="DATA_DIR", help="folder to watch (default ./data)")
    p.add_argument("--no-ui", action="store_true", help="run headless (daemon)")
    p.add_argument("--once", action="store_true", help="with --no-ui: load what is present now, then exit")
    _engine_flags(p)
    p.add_argument("--wait-for-clickhouse", type=float, default=0.0, metavar="S",
                   help="at start, wait up to S seconds for ClickHouse to answer")
    p.add_argument("--version", action="version", version=f"chute {__version__}")
    _common(p)
    return p


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) >= 2**63:  # SQLite's INTEGER: beyond it a datatype mismatch
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0 for all)")
    return int(text)


def build_sub_parser(name: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"chute {name}")
    if name in ("status", "files", "events", "gc", "fleet", "inspect"):
        p.add_argument("--json", action="store_true", help="machine-readable output")
    if name == "fleet":
        from chute.core import fleet_cli

        fleet_cli.add_arguments(p)
    if name == "inspect":  # core/preview.py
        p.add_argument("files", nargs="+", metavar="FILE", help="files to inspect (nothing is written anywhere)")
        p.add_argument("--data-dir", metavar="DIR", help="the data folder, for table routing (default ./data)")
        p.add_argument("--rows", type=int, default=5, metavar="N", help="first rows to show (default 5)")
    if name == "files":
        p.add_argument("--state", choices=[s.value for s in State], metavar="STATE",  # the list, wrapped, in help
                       help="only files in this state: " + ", ".join(s.value for s in State))
        p.add_argument("--limit", type=_count, default=0, help="at most N lines (newest first)")
    if name == "events":
        p.add_argument("--since", metavar="T", help="how long ago (3600, 15m, 2h, 7d) or an ISO time")
        p.add_argument("--path", metavar="PATH", help="only events of this file (relative to DATA_DIR)")
    if name in ("approve", "retry", "purge"):
        from chute.core import action_cli

        action_cli.add_arguments(p, [s.value for s in State])
        p.add_argument("--data-dir", metavar="DIR", help="the data folder (default: the ledger's)")
        p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a running daemon")
    if name == "attach":
        p.add_argument("--data-dir", metavar="DIR", help=argparse.SUPPRESS)
        p.add_argument("--read-only", action="store_true", help="look only: operator actions are refused")
    if name == "serve":  # tui/serve.py
        p.add_argument("data_dir", nargs="?", metavar="DATA_DIR", help="folder to watch when no daemon runs "
                       "(default: the running daemon's, else ./data)")
        p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        p.add_argument("--port", type=_port, default=8422, help="port (default 8422)")
        p.add_argument("--public-url", metavar="URL", help="the URL browsers use, when not http://HOST:PORT")
        p.add_argument("--token-file", metavar="FILE", help="file holding the token that allows actions "
                       "(env CHUTE_SERVE_TOKEN; without one the console is read-only)")
    if name == "recover":  # core/recover.py
        p.add_argument("--data-dir", metavar="DIR", help="the data folder (default ./data or the config's)")
        p.add_argument("--force", action="store_true", help="rebuild even if the ledger is readable")
    if name == "config":
        _engine_flags(p)
        p.add_argument("--check", nargs="?", const="", metavar="FILE",
                       help="validate FILE (default: --config, or the default file) and exit")
    _common(p)
    return p


def _config(args: argparse.Namespace, data_dir: str | None) -> config_mod.Config:
    return _config_sources(args, data_dir)[0]


def _config_sources(args: argparse.Namespace, data_dir: str | None) -> tuple[config_mod.Config, dict[str, str]]:
    overrides: dict[str, Any] = {
        "clickhouse_url": args.clickhouse,
        "database": args.database,
        "state_dir": args.state_dir,
        "log_format": args.log_format,
        "log_level": args.log_level,
    }
    for key in ("require_approval", "batch_rows", "settle_seconds", "workers", "after_load", "metrics_addr",
                "cluster", "notify"):
        overrides[key] = getattr(args, key, None)
    if data_dir:
        overrides["data_dir"] = str(Path(data_dir).resolve())
    cfg, sources = config_mod.load_with_sources(Path(args.config) if args.config else None, overrides)
    if not data_dir and cfg.data_dir == Path("data"):
        cfg = dataclasses.replace(cfg, data_dir=Path("data").resolve())
    return cfg, sources


# Set once a `--once` run has stopped its engine: everything is closed, flushed and recorded.
_once_stopped = threading.Event()
_ends_process = False  # the `chute` program itself (main()), which ends a `--once` with _exit_now


def _standard_fds() -> None:
    """Descriptors 0-2 that the caller closed (``2>&-``) are opened on /dev/null: else the next
    file chute opens (the ledger, a log) would take number 2, and a native library's write to
    stderr would land in it; and Python's sys.stderr would be None."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - the process's own stream


def main(argv: list[str] | None = None) -> int:
    global _ends_process
    _ends_process = argv is None
    if argv is None:
        _standard_fds()
    code = _main(argv)
    if argv is None and _once_stopped.is_set():  # the `chute` program itself, not a caller's main([...])
        _exit_now(code)
    return code


def _exit_now(code: int) -> NoReturn:
    """End a finished `--once` process without tearing the interpreter down: module teardown and
    chDB's engine shutdown (it waits on its background merges) cost 0.1-0.25 s after the result
    is known (issue 12). The ledger is closed and ClickHouse holds every acknowledged insert
    before this point; skipping the teardown is no worse than a SIGKILL after it (tests/test_crash.py)."""
    spool = sys.modules.get("chute.core.spool")
    if spool is not None:  # (os._exit skips the collector that would remove bodies held in cycles)
        spool.discard_all()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _main(argv: list[str] | None = None) -> int:
    from chute.core.memory import tune_allocators

    tune_allocators()  # before polars and pyarrow load (core/memory.py)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            return _subcommand(argv[0], argv[1:])
        _typo(argv)
        return _run(argv)
    except UsageError as exc:
        print(f"chute: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ChuteError as exc:
        print(f"chute: {exc}", file=sys.stderr)
        return EXIT_UNEXPECTED
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `chute files | head`: the reader left; that is not an error
        _quiet_stdout()
        return EXIT_OK
    except sqlite3.DatabaseError as exc:  # found past the ledger's opening check
        from chute.core.ledger import is_damage

        if is_damage(exc):
            print(f"chute: error: the ledger is damaged ({exc}); `chute recover` rebuilds it from ClickHouse's "
                  "lineage columns", file=sys.stderr)
        else:
            print(f"chute: error: the ledger cannot be used: {exc} (is the state dir's disk full?)", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # one line, never a traceback; details at debug level
        log.debug("unexpected error", exc_info=True)
        print(f"chute: unexpected error: {type(exc).__name__}: {exc} (run with --log-level debug for details)",
              file=sys.stderr)
        return EXIT_UNEXPECTED


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise BrokenPipeError again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _typo(argv: list[str]) -> None:
    """`chute stauts`: a mistyped subcommand, not a DATA_DIR that does not exist."""
    import difflib

    word = argv[0] if argv else ""
    if word and not word.startswith("-") and "/" not in word and not Path(word).exists():
        close = difflib.get_close_matches(word, SUBCOMMANDS, n=1)
        if close:
            raise UsageError(f"unknown subcommand {word!r} (did you mean {close[0]!r}?) and no folder of that name")


# -- running the engine -------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    from chute.core import logsetup
    from chute.core.engine import Engine

    args = build_parser().parse_args(argv)
    if args.once and not args.no_ui:
        raise UsageError("--once needs --no-ui")
    cfg = _config(args, args.data_dir)
    if not args.no_ui:
        try:
            from chute.tui.app import run_console  # the console is optional at import time for headless hosts
        except ImportError as exc:
            raise UsageError(f"the console is not available ({exc}); use --no-ui") from None
        return run_console(cfg, wait_for_clickhouse=args.wait_for_clickhouse)
    logsetup.configure(cfg.log_format, cfg.log_level)
    engine = Engine(cfg, once=args.once, mode="once" if args.once else "daemon")
    stop = threading.Event()
    stopped_by: list[int] = []

    def _signal(signum: int, _frame: object) -> None:
        log.info("received %s: finishing the batch in flight, then stopping", signal.Signals(signum).name)
        stopped_by.append(signum)
        stop.set()

    signal.signal(signal.SIGINT, _signal)
    signal.signal(signal.SIGTERM, _signal)
    engine.start(wait_for_target=args.wait_for_clickhouse)
    try:
        if args.once:
            from chute.core.progress import ProgressLine

            with ProgressLine(engine):
                while not stop.is_set() and not engine.wait_idle(timeout=0.5):
                    pass
            return _once_exit(engine, stopped_by[0] if stopped_by else None)
        while not stop.wait(1.0):
            pass
        return EXIT_OK
    finally:
        engine.stop(close_target=not (args.once and _ends_process))  # (_exit_now skips chDB's shutdown)
        log.info("stopped")
        if args.once:
            _once_stopped.set()


def _once_exit(engine: Any, signum: int | None) -> int:
    """0 only when every file ended loaded or duplicate (docs/CONTRACTS.md): a run a signal
    stopped with files still to do exits 128 + the signal, as a shell reports it."""
    from chute.core import api

    result = api.once_result(engine)
    if signum is not None and not result.ok:
        log.warning("once: stopped by %s before every file ended: %s (the next run or start goes on with them)",
                    signal.Signals(signum).name, result.summary())
        return 128 + signum
    log.info("once: %s", result.summary())
    return result.exit_code


# -- subcommands that read or steer through the ledger ---------------------------------------


def _subcommand(name: str, argv: list[str]) -> int:
    args = build_sub_parser(name).parse_args(argv)
    if name == "config":
        return _config_cmd(args)
    if name == "fleet":
        from chute.core.fleet_cli import run as fleet_run

        return fleet_run(_config(args, None), args)
    data_dir = getattr(args, "data_dir", None)
    cfg = _config(args, data_dir)
    from chute.core import logsetup

    logsetup.configure(cfg.log_format, cfg.log_level)
    if name == "attach":
        from chute.tui.app import run_attached

        return run_attached(cfg, read_only=args.read_only)
    if name == "serve":
        return _serve(cfg, args)
    if name in ("approve", "retry", "purge"):
        return _action(cfg, name, args)
    if name == "gc":
        return _gc(cfg, args.json)
    if name == "inspect":
        from chute.core.preview import inspect_cmd

        return inspect_cmd(cfg, args.files, args.json, args.rows)
    if name == "recover":
        from chute.core import recover

        print(recover.run(cfg, force=args.force))
        return EXIT_OK
    ledger = _read_ledger(cfg)
    try:
        if name == "status":
            return _status(cfg, ledger, args.json)
        if name == "files":
            return _files(ledger, args.state, args.limit, args.json)
        if name == "events":
            return _events(ledger, args.since, args.json, args.path)
    finally:
        ledger.close()
    return EXIT_USAGE


def _serve(cfg: config_mod.Config, args: argparse.Namespace) -> int:
    try:
        from chute.tui.serve import read_token, run_serve
    except ImportError as exc:
        raise UsageError(f"`chute serve` needs textual-serve: pip install 'chute[serve]' ({exc})") from None
    from chute.core.ledger import Ledger

    if not args.data_dir and (cfg.state_dir / Ledger.FILENAME).exists():  # the daemon's folder
        ledger = Ledger(cfg.state_dir, readonly=True)
        owner = ledger.meta("data_dir")
        ledger.close()
        if owner:
            cfg = dataclasses.replace(cfg, data_dir=Path(owner))
    return run_serve(cfg, host=args.host, port=args.port, token=read_token(args.token_file),
                     public_url=args.public_url, config_file=args.config)


def _read_ledger(cfg: config_mod.Config) -> Ledger:
    from chute.core.ledger import Ledger

    if not (cfg.state_dir / Ledger.FILENAME).exists():
        raise UsageError(f"no ledger in {cfg.state_dir}: chute has not run with this state dir (see --state-dir)")
    return Ledger(cfg.state_dir, readonly=True)


def _status(cfg: config_mod.Config, ledger: Any, as_json: bool) -> int:
    from chute.core import api, untyped_status

    now = time.time()
    status = api.status(config=cfg)
    data = status.as_dict()
    running, rows_1h, errors = data["running"], data["rows_last_hour"], data["recent_errors"]
    data["fleet"] = json.loads(ledger.meta("fleet") or "null")  # core/fleet.py: host name, mirror error
    waiting, listed = untyped_status.read(ledger) if running else (0, [])
    data["untyped_waiting"] = {"count": waiting, "paths": listed}  # not in the ledger yet (core/untyped_status.py)
    if as_json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    print(f"chute {__version__}  data: {data['data_dir']}  engine: {running or 'not running'}")
    print("  ".join(f"{s}: {n}" for s, n in data["counts"].items() if n) or "no files yet")
    print(f"rows/s (1 min): {humanize.intcomma(data['rows_per_s_1m'])}   rows last hour: "
          f"{humanize.intcomma(rows_1h)}   files loaded last hour: {data['files_loaded_last_hour']}")
    if errors:
        print("recent errors:")
        for e in errors:
            print(f"  {humanize.naturaltime(now - e['at']):>16}  {e['state']:<11} {e['path']}: {e['error']}")
    for alert in data["alerts"]:
        print(f"{alert['level'].upper():<8} {alert['name']}: {alert['message']}")
    if waiting:
        more = f" (and {waiting - len(listed)} more)" if waiting > len(listed) else ""
        print(f"waiting to settle, of a type chute cannot read (recorded and quarantined once quiet for "
              f"settle_seconds with no writer): {', '.join(listed)}{more}")
    _print_open_actions(status.open_actions, now)
    if unacked := ledger.open_groups():
        groups = sorted({gid for gid, _ in unacked.values()})
        print(f"unacknowledged group inserts: {len(groups)} ({len(unacked)} files): " + _unacked(groups[0], 0))
    if data["fleet"] and running:
        fleet = data["fleet"]
        print(f"fleet: host {fleet['host']}, " + (f"mirror paused: {fleet['error']}" if fleet["error"]
                                                   else "mirroring to ClickHouse (see `chute fleet`)"))
    return EXIT_OK


def _print_open_actions(actions: list[Any], now: float) -> None:
    """Write-ahead actions begun and not finished (core/intents.py): what, on which version, since when."""
    if actions:
        print(f"open actions ({len(actions)}, begun and not finished):")
    for a in actions:
        print(f"  {a.action:<8} {a.path} (version {a.version_id}, was {a.from_state}, by {a.actor}, "
              f"since {humanize.naturaltime(now - a.since)}): {a.way_forward}")


def _gc(cfg: config_mod.Config, as_json: bool) -> int:
    """`chute gc`: one retention pass; the ledger file shrinks (VACUUM) only while no engine runs."""
    from chute.core import action_cli, gc
    from chute.core.engine import StateLock
    from chute.core.ledger import Ledger

    _read_ledger(cfg).close()  # the same clear message when there is no ledger yet
    lock: StateLock | None = StateLock(cfg.state_dir)
    try:  # no engine: hold the state dir, so none starts while VACUUM locks the ledger
        lock.acquire("gc")  # type: ignore[union-attr]
    except UsageError:
        lock = None  # an engine runs: prune beside it, no VACUUM
    ledger = Ledger(cfg.state_dir)
    try:
        owner = ledger.meta("data_dir")
        if owner:
            cfg = dataclasses.replace(cfg, data_dir=Path(owner))
        if not gc.configured(cfg):
            print("chute gc: nothing to do: set ledger_keep, archive_keep or quarantine_keep", file=sys.stderr)
        running = lock is None
        report = gc.run(cfg, ledger, vacuum=not running, actor=action_cli.actor())
        if running:
            report.notes.append("engine running: freed ledger pages are reused, the file is not shrunk")
    finally:
        ledger.close()
        if lock is not None:
            lock.release()
    print(json.dumps(report.as_dict(), indent=2) if as_json else report.line())
    return EXIT_OK


def _config_cmd(args: argparse.Namespace) -> int:
    """`chute config`: the effective configuration as TOML. `--check [FILE]`: validate a file, name line and key."""
    if args.check is not None:
        chosen = args.check or args.config
        path = Path(chosen) if chosen else config_mod.config_path(None)
        if path is None:
            raise UsageError(f"no configuration file to check: none given and {config_mod.default_config_file()} "
                             "does not exist")
        problems = config_mod.check_file(path)
        for problem in problems:
            print(f"chute: {problem}", file=sys.stderr)
        if problems:
            return EXIT_USAGE
        print(f"{path}: ok")
        return EXIT_OK
    cfg, sources = _config_sources(args, None)
    print(config_mod.dump(cfg, sources), end="")
    return EXIT_OK


def _files(ledger: Any, state: str | None, limit: int, as_json: bool) -> int:
    if as_json:  # streamed: the first line at once, memory flat however long the ledger
        out = sys.stdout
        for n, line in enumerate(ledger.iter_files_json(state=state, limit=limit or None)):
            out.write(line + "\n")
            if n == 0:
                out.flush()
        return EXIT_OK
    rows = ledger.list_files(state=state, limit=limit or None)
    unacked = ledger.open_groups()
    for r in rows:
        reason = r.last_error or r.reason or ""
        if r.id in unacked and r.state in (State.LOADING, State.QUEUED, State.FAILED):
            reason = _unacked(*unacked[r.id]) + (f"; {reason}" if reason else "")
        rows_txt = "-" if r.rows is None else str(r.rows)
        # The id first: `chute purge --id N` names exactly this version.
        print(f"{r.id}\t{r.path}\t{r.table_name}\t{r.state}\t{rows_txt}\t{reason}")
    return EXIT_OK


def _unacked(group_id: int, members: int) -> str:
    """Why a version shows `loading` with no engine: its group's insert may or may not have landed."""
    of = f" of {members} files" if members else ""
    return (f"in group insert #{group_id}{of} never acknowledged (a crash?): chute replays it, or removes its rows, "
            "before these files load again")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _since(since: str, now: float) -> float:
    """``3600``, ``90s``, ``15m``, ``2h``, ``7d`` ago, or an ISO time (local unless it has an offset)."""
    text = since.strip().lower()
    try:
        if text[-1:] in _UNITS:
            return now - float(text[:-1]) * _UNITS[text[-1]]
        return now - float(text)
    except ValueError:
        from datetime import datetime

        try:
            return datetime.fromisoformat(since).timestamp()
        except ValueError:
            raise UsageError(f"--since {since!r}: give a duration (3600, 15m, 2h, 7d) or an ISO time") from None


def _events(ledger: Any, since: str | None, as_json: bool, path: str | None = None) -> int:
    """The audit trail, oldest first: when, who (actor), what (transition or action), which file, why."""
    start = _since(since, time.time()) if since else None
    for ev in ledger.events(since=start, limit=100_000):
        if path and ev.path != path:
            continue
        if as_json:
            utc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ev.ts)) + f".{int(ev.ts % 1 * 1000):03d}Z"
            print(json.dumps(dict(ev.__dict__, time=utc)))
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ev.ts))
            change = f"{ev.from_state or '-'} -> {ev.to_state}" if ev.to_state else ev.action
            print(f"{when}  {ev.actor:<10} {change:<24} {ev.path or ''}  {ev.detail or ''}".rstrip())
    return EXIT_OK


def _action(cfg: config_mod.Config, name: str, args: argparse.Namespace) -> int:
    """Through a running engine's command channel if there is one; otherwise here and now."""
    from chute.core import action_cli
    from chute.core.engine import StateLock, open_ledger, prepare_dirs

    ledger = _read_ledger(cfg)
    try:
        owner = ledger.meta("data_dir")
        if owner and not getattr(args, "data_dir", None):
            cfg = dataclasses.replace(cfg, data_dir=Path(owner))
        items, listed = action_cli.plan(cfg, ledger, name, args)
        loaded_into = ledger.meta("target")  # (the URL as the engine last started, password masked)
    finally:
        ledger.close()
    bulk = not (args.path is not None or args.file_id is not None)
    if bulk and not action_cli.confirm(name, listed, args):
        return EXIT_OK
    if args.dry_run:
        print(f"would {name} {items[0].label}")
        return EXIT_OK
    actor = action_cli.actor()
    if StateLock.holder(cfg.state_dir):
        return action_cli.report(action_cli.via_daemon(cfg.state_dir, name, items, actor, args.wait))
    if name != "approve" and loaded_into and loaded_into != cfg.masked_url():  # (approve touches the ledger only)
        # Rows of another ClickHouse would be deleted, or none, and the ledger would say done.
        raise UsageError(f"the files in {cfg.state_dir} were loaded into {loaded_into}, not {cfg.masked_url()}: "
                         f"pass --clickhouse for that one (or CHUTE_CLICKHOUSE_URL)")
    from chute.core import actions
    from chute.core.engine import StateLock as Lock
    from chute.core.target import Target

    prepare_dirs(cfg)
    lock = Lock(cfg.state_dir)
    lock.acquire("cli")
    ledger = open_ledger(cfg)
    target = Target(cfg)
    results: list[tuple[bool, str]] = []
    try:
        for it in items:
            try:
                results.append((True, actions.run(cfg, ledger, target, name, it.path, actor, file_id=it.file_id,
                                                  expect=it.expect, engine_running=False)))
            except UsageError as exc:
                if not bulk:
                    raise
                results.append((False, str(exc)))
        # ... and whatever else a killed engine or command left half-done (core/intents.py).
        from chute.core import intents

        intents.recover(cfg, ledger, target)
        return action_cli.report(results)
    finally:
        target.close()
        ledger.close()
        lock.release()
