"""Issue 13: [[sources]], include/exclude, backfill, several folders in one engine."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import pytest

from chute.core.routing import Route
from chute.core.sources import Admission, Keep, Source, parse_backfill
from tests.conftest import make_config, query, run_chute, state_of, wait_for
from tests.test_engine import csv_bytes, make_rows


def _final(engine, rel: str) -> bool:
    return state_of(engine, rel) in ("loaded", "duplicate", "quarantined", "failed", "held")


def test_include_exclude_ignore_without_quarantine(engine_factory, caplog: pytest.LogCaptureFixture) -> None:
    engine = engine_factory(include=("*.csv", "*.jsonl"), exclude=("scratch/*",), rescan_seconds=0.2)
    data = engine.cfg.data_dir
    with caplog.at_level(logging.INFO, logger="chute.sources"):
        (data / "a.csv").write_bytes(csv_bytes(make_rows(3)))
        (data / "b.jsonl").write_text('{"x": 1}\n{"x": 2}\n')
        (data / "readme.xyz").write_text("not data")
        (data / "scratch").mkdir()
        (data / "scratch" / "c.csv").write_bytes(csv_bytes(make_rows(2)))
        wait_for(lambda: _final(engine, "a.csv") and _final(engine, "b.jsonl"), what="loads")
        last = engine.watcher.last_scan
        wait_for(lambda: engine.watcher.last_scan > last + 0.3, what="two more rescans")
    assert state_of(engine, "a.csv") == "loaded" and state_of(engine, "b.jsonl") == "loaded"
    assert state_of(engine, "readme.xyz") is None and state_of(engine, "scratch/c.csv") is None
    assert (data / "readme.xyz").exists() and not (data / "_quarantine").exists()  # ignored, not moved aside
    told = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ignoring")]
    assert told.count("ignoring readme.xyz: matches no include glob") == 1  # once, not once per rescan
    assert told.count("ignoring scratch/c.csv: excluded by 'scratch/*'") == 1


def test_backfill_none_skips_what_was_there_but_takes_what_arrives(tmp_path: Path, chdb_path: Path,
                                                                    engine_factory) -> None:
    cfg = make_config(tmp_path, chdb_path, backfill="none")
    old = cfg.data_dir / "old.csv"
    old.write_bytes(csv_bytes(make_rows(2)))
    aside = tmp_path / "outside.csv"  # an old file that is moved in later: it is new to the folder
    aside.write_bytes(csv_bytes(make_rows(4, seed=5)))
    os.utime(aside, (time.time() - 86400 * 400,) * 2)
    engine = engine_factory(cfg)
    (cfg.data_dir / "new.csv").write_bytes(csv_bytes(make_rows(3, seed=1)))
    os.replace(aside, cfg.data_dir / "moved_in.csv")
    wait_for(lambda: state_of(engine, "new.csv") == "loaded" and state_of(engine, "moved_in.csv") == "loaded",
             what="arrivals load")
    assert state_of(engine, "old.csv") is None and old.exists()


def test_backfill_since_a_date(tmp_path: Path, chdb_path: Path, engine_factory) -> None:
    cfg = make_config(tmp_path, chdb_path, backfill="since:2026-01-01")
    for name, when in (("ancient.csv", "2020-06-01"), ("recent.csv", "2026-06-01")):
        path = cfg.data_dir / name
        path.write_bytes(csv_bytes(make_rows(2, seed=len(name))))
        t = time.mktime(time.strptime(when, "%Y-%m-%d"))
        os.utime(path, (t, t))
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "recent.csv") == "loaded", what="recent loads")
    assert state_of(engine, "ancient.csv") is None


def test_several_folders_in_one_engine(tmp_path: Path, chdb_path: Path, engine_factory) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    base = make_config(tmp_path, chdb_path, after_load="archive")
    source = Source(path=logs, name="logs", include=("*.csv",),
                    routes=(Route(table="applogs", glob="*.csv"),))
    engine = engine_factory(dataclasses.replace(base, sources=(source,)))
    (base.data_dir / "orders.csv").write_bytes(csv_bytes(make_rows(3)))
    (logs / "app-1.csv").write_bytes(csv_bytes(make_rows(5, seed=3)))
    (logs / "noise.txt").write_text("ignored: no include matches")
    (logs / "bad.csv").write_bytes(b"")
    wait_for(lambda: state_of(engine, "orders.csv") == "loaded" and state_of(engine, "@logs/app-1.csv") == "loaded"
             and _final(engine, "@logs/bad.csv"), what="both folders")
    # The archive move follows the `loaded` transition (after_load): wait for it, do not race it.
    wait_for(lambda: (engine.ledger.current("@logs/app-1.csv").moved_to or "").startswith("@logs/_archive")
             and (base.data_dir / "_archive" / "orders.csv").exists(), what="both archived")
    assert engine.snapshot().data_dir == f"{base.data_dir} +@logs"  # the console's header names both
    row = engine.ledger.current("@logs/app-1.csv")
    assert row.table_name == "applogs" and row.moved_to == "@logs/_archive/app-1.csv"
    assert (logs / "_archive" / "app-1.csv").exists() and (base.data_dir / "_archive" / "orders.csv").exists()
    assert query(engine, f"SELECT DISTINCT _source_path FROM {base.database}.applogs") == [("@logs/app-1.csv",)]
    bad = engine.ledger.current("@logs/bad.csv")
    assert bad.state == "quarantined" and (logs / "_quarantine" / "bad.csv").exists()
    assert engine.ledger.current("@logs/noise.txt") is None and (logs / "noise.txt").exists()
    # The operator's actions find the file by its path in that folder, too.
    (logs / "_quarantine" / "bad.csv").write_bytes(csv_bytes(make_rows(2, seed=8)))
    assert "retrying @logs/bad.csv" in engine.command("retry", "@logs/bad.csv")
    wait_for(lambda: state_of(engine, "@logs/bad.csv") == "loaded", what="retried from its own quarantine")


def test_once_with_sources_from_a_config_file(tmp_path: Path) -> None:
    first, second = tmp_path / "in1", tmp_path / "in2"
    for folder in (first, second):
        folder.mkdir()
    (first / "a.csv").write_bytes(csv_bytes(make_rows(2)))
    (first / "skip.log").write_text("x")
    (second / "b.csv").write_bytes(csv_bytes(make_rows(3, seed=2)))
    conf = tmp_path / "chute.toml"
    conf.write_text(f'[[sources]]\npath = "{first}"\ninclude = ["*.csv"]\n\n'
                    f'[[sources]]\nname = "second"\npath = "{second}"\n')
    state = tmp_path / "state"
    proc = run_chute("--no-ui", "--once", "--config", str(conf), "--state-dir", str(state),
                     "--clickhouse", f"chdb://{tmp_path / 'ch'}", "--settle-seconds", "0.1")
    assert proc.returncode == 0, proc.stderr
    files = run_chute("files", "--json", "--state-dir", str(state))
    got = {json.loads(ln)["path"]: json.loads(ln)["state"] for ln in files.stdout.splitlines()}
    assert got == {"a.csv": "loaded", "@second/b.csv": "loaded"}


def test_specs_and_config_check(tmp_path: Path) -> None:
    assert Keep.parse("30d 10GiB") == Keep(30 * 86400, 10 * 2**30) and Keep.parse("").unlimited
    assert parse_backfill("all") is None and parse_backfill("none") == float("inf")
    with pytest.raises(ValueError, match="backfill"):
        parse_backfill("yesterday")
    adm = Admission(("*.csv",), ("tmp/*",), "all")
    assert adm.reason("x.csv") is None and adm.reason("x.xyz") and adm.reason("tmp/y.csv")
    from chute.core import config

    path = tmp_path / "c.toml"
    path.write_text(f'[[sources]]\npath = "{tmp_path}"\n\n[[sources]]\npath = "{tmp_path / "sub"}"\n'
                    'name = "Bad Name"\n')
    problems = [str(p) for p in config.check_file(path)]
    assert any("needs a name" in p for p in problems), problems
