"""Per-file fixed costs of many small files (issue 12): a scan records N new files in a constant
number of ledger transactions, and a group of N CSVs with one header is parsed a constant number
of times (core/combined.py), not once per file."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from chute.core.config import Config
from chute.core.formats.delimited import CsvReader
from chute.core.ledger import Ledger
from chute.core.states import State
from chute.core.watcher import Watcher
from tests.conftest import make_config, query
from tests.test_combined import HEADER, lines, text

FILES = 40


def test_a_scan_records_new_files_in_a_few_transactions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    state.mkdir()
    for i in range(FILES):
        (data / f"part_{i:04d}.csv").write_bytes(text(HEADER, lines(i)))
    cfg = dataclasses.replace(Config(), data_dir=data, state_dir=state, settle_seconds=0, rescan_seconds=60)
    ledger = Ledger(state)
    watcher = Watcher(cfg, ledger, on_queued=threading.Event().set)
    real, count = ledger._tx, [0]

    def counted():
        count[0] += 1
        return real()

    monkeypatch.setattr(ledger, "_tx", counted)
    try:
        watcher.scan()  # records them (seen, then settling)
        recorded = count[0]
        watcher._settle()  # queues them
        assert [str(r.state) for r in ledger.list_files()] == [str(State.QUEUED)] * FILES
    finally:
        ledger.close()
    assert recorded <= 2, recorded  # was two per file
    assert count[0] <= 3, count[0]


def test_a_group_of_small_csvs_is_parsed_once(engine_factory, tmp_path: Path, chdb_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config(tmp_path, chdb_path, workers=1, settle_seconds=0)
    for i in range(FILES):
        (cfg.data_dir / f"part_{i:04d}.csv").write_bytes(text(HEADER, lines(i)))
    plans = [0]
    real = CsvReader.plan

    def counted(self):
        plans[0] += 1
        return real(self)

    monkeypatch.setattr(CsvReader, "plan", counted)
    engine = engine_factory(cfg, once=True)
    assert engine.wait_idle(timeout=120)
    assert query(engine, f"SELECT count(), uniqExact(_source_path, _source_row) FROM `{cfg.database}`.part") \
        == [(FILES * 20, FILES * 20)]
    # The first file makes the table alone, the others are one buffer: two plans (was one per file).
    assert plans[0] <= 3, plans[0]


def test_a_failure_of_the_combined_parse_leaves_every_file_to_the_per_file_path(
        engine_factory, tmp_path: Path, chdb_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error in the shortcut (here: planted) must not strand its files in `loading`."""
    from chute.core import combined

    def broken(loader, chunk):
        raise RuntimeError("planted")

    monkeypatch.setattr(combined, "_members", broken)
    cfg = make_config(tmp_path, chdb_path, workers=1, settle_seconds=0)
    for i in range(FILES):
        (cfg.data_dir / f"part_{i:04d}.csv").write_bytes(text(HEADER, lines(i)))
    engine = engine_factory(cfg, once=True)
    assert engine.wait_idle(timeout=120)
    assert engine.ledger is not None
    assert {str(r.state) for r in engine.ledger.list_files()} == {str(State.LOADED)}
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.part") == [(FILES * 20,)]
