"""A hostile user against the watcher's untyped files (docs/ARCHITECTURE.md#complete-files) and
`--once`'s result: what broke, kept broken-able by these tests."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
from pathlib import Path

from chute.core.config import Config
from chute.core.ledger import Ledger
from chute.core.routing import Route
from chute.core.states import State
from chute.core.watcher import Hint, Watcher
from tests.conftest import make_config, wait_for


def _watcher(tmp_path: Path, settle: float, **overrides: object) -> tuple[Watcher, Ledger, Path]:
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    state.mkdir()
    cfg = dataclasses.replace(Config(), data_dir=data, state_dir=state, settle_seconds=settle, rescan_seconds=60,
                              **overrides)
    ledger = Ledger(state)
    return Watcher(cfg, ledger, on_queued=threading.Event().set), ledger, data


def test_once_counts_a_file_quarantined_before_a_later_rescan(tmp_path: Path) -> None:
    """`--once` reads where each file it found ended from ``scanned_paths``. A rescan after an
    unreadable file went to _quarantine (it now waits settle_seconds, so a rescan often comes
    between) dropped it: `--once` said "1 loaded" and exited 0 with a file quarantined."""
    watcher, ledger, data = _watcher(tmp_path, settle=60)
    try:
        (data / "notes.xml").write_text("<a/>\n")
        (data / "ok.csv").write_text("id\n1\n")
        watcher.start(observe=False)  # as `--once` runs it: no events, scans on the timer
        (data / "notes.xml").unlink()  # (moved to _quarantine by the loader)
        watcher.scan()
        assert watcher.scanned_paths == {"notes.xml", "ok.csv"}
    finally:
        watcher.stop()
        ledger.close()


def test_a_daemons_scanned_paths_do_not_grow_with_its_history(tmp_path: Path) -> None:
    """Negative control of the fix above: a daemon (events on) keeps only the last scan's paths, so
    a folder that sees millions of files over months does not grow the set without end."""
    watcher, ledger, data = _watcher(tmp_path, settle=60)
    try:
        (data / "old.csv").write_text("id\n1\n")
        watcher.start(observe=True)
        (data / "old.csv").unlink()
        watcher.scan()
        assert "old.csv" not in watcher.scanned_paths
    finally:
        watcher.stop()
        ledger.close()


def test_special_files_with_unreadable_names_are_quarantined_with_their_reason(
        engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """A UNIX socket was retried 6 times as an "unexpected OSError" (open(2) says ENXIO) and ended
    `failed`; a relative symlink moved into _quarantine/ points elsewhere from there, so the move
    was recorded as "not moved" and no reason file was written beside it."""
    cfg = make_config(tmp_path, chdb_path, settle_seconds=0.2)
    data, outside = cfg.data_dir, tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.xml").write_text("root:hunter2\n")
    (data / "in.xml").write_text("<a/>\n")
    os.symlink("../outside/secret.xml", data / "out-link.xml")  # relative, pointing outside
    (data / "_kept.xml").write_text("<b/>\n")  # (ignored by its name: it stays where it is)
    os.symlink("_kept.xml", data / "in-link.bin")  # relative, pointing inside
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(data / "sock.xml"))
        engine = engine_factory(cfg)
        names = {"sock.xml": "not a regular file", "out-link.xml": "symlink pointing outside the data folder",
                 "in-link.bin": "unknown file type", "in.xml": "unknown file type"}

        def ended() -> bool:
            rows = [engine.ledger.current(n) for n in names]
            return all(r is not None and r.state in (State.QUARANTINED, State.FAILED) for r in rows)

        wait_for(ended, timeout=60, what="special files quarantined")
        for name, why in names.items():
            row = engine.ledger.current(name)
            assert row is not None and row.state == State.QUARANTINED, (name, row and row.state, row and row.last_error)
            assert why in (row.last_error or ""), (name, row.last_error)
            assert row.moved_to, name
            assert not (data / name).exists() and not (data / name).is_symlink(), name
            info = json.loads(Path(str(data / row.moved_to) + ".reason.json").read_text())
            assert info["path"] == name and info["reason"] == row.last_error
    # The targets were never moved.
    assert (outside / "secret.xml").read_text() == "root:hunter2\n" and (data / "_kept.xml").exists()


def test_status_and_attach_show_untyped_files_kept_out_of_the_ledger(
        engine_factory, tmp_path: Path, chdb_path: Path, capsys) -> None:
    """An untyped file kept out of the ledger while it settles (a service's `app.log` held open
    stays there for good) was invisible to `chute status` ("no files yet") and to `chute attach`
    (settling 0); only the in-process console counted it."""
    from chute.core import cli
    from chute.core.attach import AttachedEngine

    cfg = make_config(tmp_path, chdb_path, settle_seconds=600)
    engine = engine_factory(cfg)
    (cfg.data_dir / "app.log").write_text("started\n")
    wait_for(lambda: engine.watcher.settling == 1, what="parked")
    state = ["--state-dir", str(cfg.state_dir)]

    def status() -> dict:
        assert cli.main(["status", "--json", *state]) == 0
        return json.loads(capsys.readouterr().out)

    shown = wait_for(lambda: status()["untyped_waiting"]["count"] == 1 and status(), timeout=30, what="in status")
    assert shown["untyped_waiting"]["paths"] == ["app.log"] and not any(shown["counts"].values())
    assert cli.main(["status", *state]) == 0
    assert "app.log" in capsys.readouterr().out
    attached = AttachedEngine(cfg)
    try:
        assert attached.snapshot().settling == 1
    finally:
        attached.ledger.close()
    engine.stop()  # a stopped daemon's list is not believed
    assert status()["untyped_waiting"] == {"count": 0, "paths": []}


def test_a_parked_file_gone_at_a_rescan_stops_counting(tmp_path: Path) -> None:
    """A parked untyped file deleted (or renamed: the writer's rename leaves the temporary name
    behind in the map) counted as settling for the whole settle_seconds, however many scans did
    not find it: `--once` and the console's idle waited on a file that was no longer there, and
    `chute status` listed it."""
    from tests.test_untyped_files import _written

    watcher, ledger, data = _watcher(tmp_path, settle=600)  # (long settles: network filesystems)
    try:
        watcher.scan()
        _written(watcher, data / "gone.xml", "<a/>\n")
        _written(watcher, data / "stays.xml", "<b/>\n")
        assert watcher.settling == 2
        (data / "gone.xml").unlink()
        watcher.scan()
        assert watcher.untyped_waiting() == ["stays.xml"] and watcher.settling == 1  # still waits its turn
    finally:
        ledger.close()


def test_a_name_that_is_not_utf8_is_skipped_with_a_warning_and_blocks_nothing(
        engine_factory, tmp_path: Path, chdb_path: Path, caplog) -> None:
    """A file name that is not valid UTF-8 (`bad\\xfe.csv`, from a Latin-1 system) cannot be a ledger
    path: recording it raised UnicodeEncodeError, which stopped `chute --once` at start ("unexpected
    error", exit 1) and made every scan of a daemon fail, so no file found by a scan was recorded."""
    cfg = make_config(tmp_path, chdb_path, settle_seconds=0.2)
    data = os.fsencode(cfg.data_dir)
    for name in (b"bad\xfe.csv", b"bad\xff.xml"):
        with open(os.path.join(data, name), "wb") as f:
            f.write(b"id\n1\n")
    (cfg.data_dir / "good.csv").write_text("id\n1\n2\n")
    engine = engine_factory(cfg, once=True)
    wait_for(engine.idle, timeout=60, what="idle")
    row = engine.ledger.current("good.csv")
    assert row is not None and row.state == State.LOADED
    assert sorted(engine.watcher.scanned_paths) == ["good.csv"]
    warned = [r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage()]
    assert len(warned) == 2, warned
    engine.watcher.scan()  # told once per name, not at every scan
    assert len([r for r in caplog.records if "not valid UTF-8" in r.getMessage()]) == 2


def test_a_file_queued_after_its_done_marker_loses_the_waiting_note(tmp_path: Path) -> None:
    """The marker's event cleared the watcher's note before the file was queued, and the queueing
    clears the ledger's reason only when a note is set: `chute files` showed a loaded file
    "waiting for its done-marker a.csv.ok" for good."""
    from tests.test_untyped_files import _written

    route = Route(table="drop", glob="drop/*", done_marker=".ok")
    watcher, ledger, data = _watcher(tmp_path, settle=0, routes=(route,))
    try:
        (data / "drop").mkdir()
        watcher.scan()
        _written(watcher, data / "drop" / "a.csv", "id\n1\n")
        row = ledger.current("drop/a.csv")
        assert row is not None and row.state == State.SETTLING and "done-marker" in (row.reason or "")
        (data / "drop" / "a.csv.ok").write_text("")
        watcher._handle([(str(data / "drop" / "a.csv.ok"), Hint.CLOSED)])
        watcher._settle()
        row = ledger.current("drop/a.csv")
        assert row is not None and row.state == State.QUEUED and row.reason is None, (row.state, row.reason)
    finally:
        ledger.close()
