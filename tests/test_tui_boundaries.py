"""The console's boundaries: core never imports Textual or Rich; file details never raise."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

from chute.core.config import Config
from chute.core.inspect import inspect_file
from chute.core.ledger import Ledger
from chute.core.states import State
from chute.tui import format as fmt
from chute.tui.view import FileQuery
from tests.conftest import ROOT


def test_core_imports_no_textual_or_rich() -> None:
    core = ROOT / "core"
    modules = sorted(".".join(p.relative_to(core).with_suffix("").parts) for p in core.rglob("*.py")
                     if p.stem not in ("__init__", "__main__"))
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module('chute.core.' + m)\n"
            "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('textual', 'rich'))\n"
            "print(','.join(bad))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"core pulled in {proc.stdout.strip()}"
    pattern = re.compile(r"^\s*(from|import)\s+(textual|rich)\b", re.M)
    offenders = [p.name for p in core.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def _row(ledger: Ledger, path: str, state: State, compression: str | None = None, **fields: object):
    import os

    st = os.stat_result((0o100644, 1, 1, 1, 0, 0, 10, 0, 0, 0))
    row, _ = ledger.observe(path, st, "t", "csv", compression, complete=True)
    return ledger.transition(row.id, state, **fields)


def test_details_of_unreadable_files_are_notes_not_exceptions(tmp_path: Path) -> None:
    data, sd = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    sd.mkdir()
    ledger = Ledger(sd)
    cfg = Config(data_dir=data, state_dir=sd)
    (data / "junk.csv.gz").write_bytes(b"\x00\x01binary junk\xff" * 50)
    body = "id,name\n" + "".join(f"{i},{i * 7919 % 100_003}\n" for i in range(5000))
    (data / "cut.csv.gz").write_bytes(gzip.compress(body.encode())[:2000])  # truncated gzip
    (data / "good.csv").write_text("id,name\n1,x\n2,\n")
    cases = {
        "gone.csv": _row(ledger, "gone.csv", State.FAILED, last_error="file disappeared"),
        "junk.csv.gz": _row(ledger, "junk.csv.gz", State.QUARANTINED, compression="gzip", last_error="bad magic"),
        "cut.csv.gz": _row(ledger, "cut.csv.gz", State.QUARANTINED, compression="gzip", last_error="truncated"),
        "purged.csv": _row(ledger, "purged.csv", State.PURGED),
        "deleted.csv": _row(ledger, "deleted.csv", State.LOADED, moved_to="(deleted)"),
    }
    for name, row in cases.items():
        assert row is not None
        details = inspect_file(cfg, row, ledger, target=None)
        assert details.read_note, name
        assert details.events, name
    cut = inspect_file(cfg, cases["cut.csv.gz"], ledger)
    assert cut.header == ["line"] and cut.rows[0] == ("id,name",)  # the raw first lines of a refused file
    good = _row(ledger, "good.csv", State.LOADED)
    details = inspect_file(cfg, good, ledger, target=None)
    assert details.read_note is None and details.header == ["id", "name"] and details.rows == [("1", "x"), ("2", "")]
    assert [(c.name, c.type) for c in details.file_columns] == [("id", "Int64"), ("name", "Nullable(String)")]
    assert "unavailable" in (details.table_note or "")
    ledger.close()


def test_formats_fit_their_columns() -> None:
    assert fmt.age(0.2) == "now" and fmt.age(5) == "5s" and fmt.age(130) == "2m" and fmt.age(7300) == "2h"
    assert fmt.ago(0) == "now" and fmt.ago(61) == "1m ago"
    assert fmt.size(512) == "512 B" and fmt.size(12_400_000) == "12.4 MB"
    assert fmt.count(1_234_567) == "1,234,567" and fmt.count(98_765_432) == "98.8M"
    assert fmt.shorten("clicks/clicks-2026-11-28-0042.csv.gz", 23) == "clicks/…-28-0042.csv.gz"
    assert len(fmt.shorten("a/" + "x" * 100, 20)) == 20
    assert fmt.progress_bar(62, 100, width=4).plain == "██▍  62%"
    assert fmt.sparkline([0, 1, 2, 4], 4) == "▁▂▄█"


def test_filter_words_and_state() -> None:
    q = FileQuery("state:held orders 2026")
    assert q.state == "held" and q.search == "orders 2026"
    assert FileQuery("is:bogus x").state is None
    assert FileQuery("").search is None


def test_newest_files_reads_only_what_changed(tmp_path: Path) -> None:
    from chute.tui.view import NewestFiles

    ledger = Ledger(tmp_path)
    rows = [_row(ledger, f"f{i}.csv", State.LOADED) for i in range(12)]
    newest = NewestFiles(limit=5)
    shown, capped = newest.read(ledger, FileQuery())
    assert [r.path for r in shown] == [f"f{i}.csv" for i in range(11, 6, -1)] and capped
    ledger.transition(rows[2].id, State.PURGED)  # an old file changes: it comes to the top
    shown, _ = newest.read(ledger, FileQuery())
    assert [r.path for r in shown] == ["f2.csv", "f11.csv", "f10.csv", "f9.csv", "f8.csv"]
    assert shown[0].state == State.PURGED
    newest.PEEK = 2  # more changes than one peek holds: a full read
    for r in rows[:4]:
        ledger.transition(r.id, State.FAILED)
    shown, _ = newest.read(ledger, FileQuery())
    assert {r.path for r in shown[:4]} == {"f0.csv", "f1.csv", "f2.csv", "f3.csv"}
    shown, _ = newest.read(ledger, FileQuery("state:failed"))  # a filter reads in full
    assert {r.path for r in shown} == {"f0.csv", "f1.csv", "f2.csv", "f3.csv"}
    ledger.close()


def test_details_name_a_short_row_and_a_full_temporary_directory(tmp_path: Path, monkeypatch) -> None:
    """The details view runs the check the loader runs beside its inserts (a short row: the loader
    refuses it), and says a file it could not read for want of temporary space was not read (no
    exception, no quarantine reason)."""
    from chute.core.formats import unmarked

    data, sd = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    sd.mkdir()
    ledger = Ledger(sd)
    cfg = Config(data_dir=data, state_dir=sd)
    (data / "short.csv").write_text("id,name,n\n1,x,2\n2,y\n")
    (data / "m.ndjson").write_bytes(b'\xef\xbb\xbf{"a":1}\n')
    short = inspect_file(cfg, _row(ledger, "short.csv", State.QUARANTINED), ledger, target=None)
    assert "the loader refuses it: ragged row at line 3: 2 fields" in (short.read_note or ""), short.read_note

    class Full:
        total, used, free = 100 << 30, 100 << 30, 1 << 20

    monkeypatch.setattr(unmarked.shutil, "disk_usage", lambda _where: Full)
    row, _ = ledger.observe("m.ndjson", os.stat(data / "m.ndjson"), "m", "ndjson", None, complete=True)
    marked = inspect_file(cfg, ledger.transition(row.id, State.QUEUED), ledger, target=None)
    assert (marked.read_note or "").startswith("not read: no room in the temporary directory"), marked.read_note
    ledger.close()
