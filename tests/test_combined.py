"""Small CSVs of a group parsed together (core/combined.py): only a cheaper way to the very rows,
states and reasons the per-file path gives. Every case loads the same folder twice, once with the
combined path and once without it, and compares the table (every column but `_ingested_at`), its
column types and the ledger (state, rows, reason per file). The hostile member of each case is one
the combined parse would get wrong if it did not fall back; the negative control breaks one of its
checks and must be caught by the same comparison."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chute.core import combined
from tests.conftest import make_config, query

HEADER = "id,name,amount,day,flag,note"
FILES = 12
COMBINE = combined.combine  # (the tests replace it)


def lines(i: int, n: int = 20) -> list[str]:
    """Rows every file's own inference types the same way (note: empty in the first row, so Nullable)."""
    return [f'{i * 100 + j},n{i}-{j},{j}.25,2026-01-{j % 28 + 1:02d},{"true" if j % 2 else "false"},'
            + ("" if j == 0 else f'"a, b {j}"') for j in range(n)]


def text(header: str, rows: list[str], end: str = "\n") -> bytes:
    return (end.join([header, *rows]) + end).encode()


def _swap(row: str) -> str:
    a, b, *rest = row.split(",", 2)
    return ",".join([b, a, *rest])


HOSTILE: dict[str, Callable[[Path], bytes]] = {
    "plain": lambda d: b"",
    "extra_column": lambda d: text(HEADER + ",extra", [r + ",x" for r in lines(90)]),
    "other_header": lambda d: text("name,id,amount,day,flag,note", [_swap(r) for r in lines(90)]),
    "text_in_int": lambda d: text(HEADER, [("x" + r) if k == 5 else r for k, r in enumerate(lines(90))]),
    "bom": lambda d: b"\xef\xbb\xbf" + text(HEADER, lines(90)),
    "crlf": lambda d: text(HEADER, lines(90), end="\r\n"),
    "numbers_in_text": lambda d: text(HEADER, [f"{90 * 100 + j},{j}.50,{j}.25,2026-01-02,true,x" for j in range(20)]),
    "numbers_and_tokens_in_text": lambda d: text(HEADER, [f"{90 * 100 + j},{'NA' if j % 3 else j},{j}.25,2026-01-02,"
                                                          "true,x" for j in range(20)]),
    "dates_and_tokens_in_text": lambda d: text(HEADER, [f"{90 * 100 + j},{'NA' if j % 3 else '2026-01-03'},{j}.25,"
                                                        "2026-01-02,true,x" for j in range(20)]),
    "quoted_newline": lambda d: text(HEADER, lines(90)[:3] + ['9003,n,1.25,2026-01-02,true,"a\nb"'] + lines(91)[:3]),
    "short_row": lambda d: text(HEADER, lines(90)[:4] + ["9004,n,1.25"] + lines(91)[:3]),
    "blank_line": lambda d: text(HEADER, lines(90)[:4] + [""] + lines(91)[:3]),
    "int_amounts": lambda d: text(HEADER, [f"{90 * 100 + j},n,{j},2026-01-02,true,x" for j in range(20)]),
    "null_token": lambda d: text(HEADER, [r.replace(",1.25,", ",NA,") for r in lines(90)]),
    "twin": lambda d: (d / "part_0003.csv").read_bytes(),
    "symlink_out": lambda d: b"",  # part_0050.csv links to a file outside the data folder (_folder)
}


def _folder(data: Path, case: str) -> None:
    for i in range(1, FILES):
        (data / f"part_{i:04d}.csv").write_bytes(text(HEADER, lines(i)))
    hostile = HOSTILE[case](data)
    if case == "symlink_out":
        (data.parent / "outside.csv").write_bytes(text(HEADER, lines(90)))
        (data / "part_0050.csv").symlink_to(data.parent / "outside.csv")
    if hostile:
        (data / "part_0050.csv").write_bytes(hostile)


def _load(engine_factory, tmp: Path, chdb: Path, case: str, monkeypatch: pytest.MonkeyPatch,
          combine: bool) -> tuple[dict, list, list, int]:
    """The folder of ``case`` loaded by one `--once` engine into a table a first file made before."""
    cfg = make_config(tmp, chdb, workers=1, settle_seconds=0)
    (cfg.data_dir / "part_0000.csv").write_bytes(text(HEADER, lines(0)))
    first = engine_factory(cfg, once=True)
    assert first.wait_idle(timeout=120)
    first.stop()
    _folder(cfg.data_dir, case)
    taken: list[int] = []

    def spy(loader, rows):
        members, rest = COMBINE(loader, rows)
        taken.append(len(members))
        return members, rest

    monkeypatch.setattr(combined, "combine", spy if combine else lambda loader, rows: ([], list(rows)))
    engine = engine_factory(cfg, once=True)
    assert engine.wait_idle(timeout=120)
    assert engine.ledger is not None
    ledger = {r.path: (str(r.state), r.rows, r.rows_loaded, r.reason or r.last_error)
              for r in engine.ledger.list_files(current_only=True)}
    table = f"`{cfg.database}`.part"
    rows = query(engine, f"SELECT * EXCEPT (_ingested_at) FROM {table} ORDER BY _source_path, _source_row")
    types = query(engine, f"SELECT name, type FROM system.columns WHERE database = '{cfg.database}'"
                          " AND table = 'part' ORDER BY position")
    engine.stop()
    return ledger, rows, types, sum(taken)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_combined_parse_loads_exactly_what_the_per_file_path_loads(engine_factory, tmp_path: Path, chdb_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   case: str) -> None:
    fast = _load(engine_factory, tmp_path / "fast", chdb_path, case, monkeypatch, combine=True)
    slow = _load(engine_factory, tmp_path / "slow", chdb_path, case, monkeypatch, combine=False)
    assert fast[2] == slow[2]
    if case == "twin":  # which of the two loads and which is the duplicate is a race on either path
        assert sorted(s for s, *_ in fast[0].values()) == sorted(s for s, *_ in slow[0].values())
        assert len(fast[1]) == len(slow[1]) == FILES * 20
    else:
        assert fast[0] == slow[0]
        assert fast[1] == slow[1]
    # The combined path was taken by the plain files: a hostile one sends only the few files of its
    # part of the run down the per-file path (core/combined.py halves a run that fails).
    assert fast[3] >= FILES - combined.HALVING_MIN - 1, fast[3]
    if case == "plain":
        assert all(state == "loaded" for state, *_ in fast[0].values()) and len(fast[1]) == FILES * 20


def test_negative_control_a_combined_parse_without_its_per_file_check_is_caught(
        engine_factory, tmp_path: Path, chdb_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the check that no file's own inference would have typed a text column, a file whose
    `name` values are all numbers loads them as written ("1.50") where its own load normalises them
    ("1.5"): the comparison above must see it."""
    slow = _load(engine_factory, tmp_path / "slow", chdb_path, "numbers_in_text", monkeypatch, combine=False)
    monkeypatch.setattr(combined, "_typable_somewhere", lambda *a: False)
    broken = _load(engine_factory, tmp_path / "broken", chdb_path, "numbers_in_text", monkeypatch, combine=True)
    assert broken[0] == slow[0]  # same states: only the values tell
    assert broken[1] != slow[1]
    assert "1.50" in {r[1] for r in broken[1]} and "1.50" not in {r[1] for r in slow[1]}

