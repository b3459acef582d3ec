"""Bounded memory (issue 11.4): an oversized record, a decompression bomb, deep nesting and
reader errors are quarantined with a reason (and line), never retried as "unexpected"."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from pathlib import Path

from chute.core.states import State
from tests.conftest import make_config, query, wait_for


def gzip_stream(parts: list[tuple[bytes, int]]) -> bytes:
    """gzip of each (piece, repeat) in turn, without holding the whole output in memory."""
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = []
    for piece, times in parts:
        block = piece * max(1, min(times, (1 << 20) // len(piece)))
        done = 0
        while done < times * len(piece):
            out.append(c.compress(block))
            done += len(block)
    out.append(c.flush())
    return b"".join(out)


def test_hostile_sizes_are_quarantined_with_a_reason(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    # Small limits keep the test fast; the 1 GiB case is measured by tests/fuzz.py --rss.
    cfg = make_config(tmp_path, chdb_path, max_record_bytes=4 << 20)
    data = cfg.data_dir
    files = {
        # A 32 MiB field in a small gzip: over the record limit (line 3).
        "field.csv.gz": gzip_stream([(b"id,blob\n1,a\n2,", 1), (b"x", 32 << 20), (b"\n3,c\n", 1)]),
        # 300 MiB of NUL bytes in ~300 KB: the decompression-ratio guard.
        "nul.csv.gz": gzip_stream([(b"\x00", 300 << 20)]),
        # 10,000 levels of nesting.
        "deep.ndjson": b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}\n",
        # A reader error deep in a valid-looking gzip of JSON: quarantined, not retried.
        "mixed.ndjson.gz": gzip.compress(b'{"a": 1}\n{"a": [1, {"b": 2}]}\n{"a": {"c": [[[]]]}}\n'),
        # A short row whose field is over the csv module's 128 KiB default (found by tests/fuzz.py).
        "short_long.csv": b"a,b,c\n1,2,3\n99," + b"x" * (1 << 18) + b"\n",
    }
    for name, body in files.items():
        (data / name).write_bytes(body)
    (data / "ok.csv").write_bytes(b"id\n1\n2\n")
    engine = engine_factory(cfg)
    final = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE}
    wait_for(lambda: all((r := engine.ledger.current(n)) and r.state in final for n in [*files, "ok.csv"]),
             timeout=120, what="final states")
    field = engine.ledger.current("field.csv.gz")
    assert field.state == State.QUARANTINED and "record at line 3" in field.last_error, field.last_error
    nul = engine.ledger.current("nul.csv.gz")
    assert nul.state == State.QUARANTINED and ("decompression-ratio" in nul.last_error
                                             or "record at line 1" in nul.last_error), nul.last_error
    short = engine.ledger.current("short_long.csv")
    assert short.state == State.QUARANTINED and "ragged row at line 3" in short.last_error, short.last_error
    for name in ("deep.ndjson", "mixed.ndjson.gz"):
        row = engine.ledger.current(name)
        assert row.state in (State.QUARANTINED, State.LOADED), (name, row.state, row.last_error)
        assert "unexpected" not in (row.last_error or ""), (name, row.last_error)
        assert row.attempts <= 1, (name, row.attempts, row.last_error)
    assert query(engine, f"SELECT count() FROM `{cfg.database}`.ok")[0][0] == 2
    quarantined = [n for n in files if engine.ledger.current(n).state == State.QUARANTINED]
    for name in quarantined:
        moved = engine.ledger.current(name).moved_to
        assert moved and json.loads(Path(str(data / moved) + ".reason.json").read_text())["reason"]


def test_parser_panic_is_a_quarantine_not_a_stuck_load(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    """Found by tests/fuzz.py: a corrupt Parquet makes polars panic (a BaseException), which left the
    file in `loading` and its worker dead."""
    cfg = make_config(tmp_path, chdb_path)
    (cfg.data_dir / "p.parquet.zst").write_bytes((Path(__file__).parent / "data" / "panic.parquet.zst").read_bytes())
    (cfg.data_dir / "after.csv").write_bytes(b"x\n1\n")
    engine = engine_factory(cfg)
    final = {State.LOADED, State.QUARANTINED, State.FAILED}
    wait_for(lambda: all((r := engine.ledger.current(n)) and r.state in final for n in ("p.parquet.zst", "after.csv")),
             timeout=60, what="final")
    row = engine.ledger.current("p.parquet.zst")
    assert row.state == State.QUARANTINED and "corrupt" in row.last_error, (row.state, row.last_error)


def test_record_limit_message_names_small_sizes() -> None:
    """A limit below 1 MiB used to read "over 0 MiB, beyond the limit of 0 MiB"."""
    from chute.core.formats.limits import _too_long

    message = str(_too_long(7, 5000, 4096))
    assert "line 7" in message and "4.9 KiB" in message and "4.0 KiB" in message, message


def _record_verdict(run: Callable[..., object], *args: object, **kwargs: object) -> str:
    """The InputError message ``run(*args, **kwargs)`` raises, or "" when it passes."""
    from chute.core.errors import InputError

    try:
        run(*args, **kwargs)
    except InputError as exc:
        return str(exc)
    return ""


def test_the_record_check_by_chunk_ends_agrees_with_the_full_scan(tmp_path: Path, monkeypatch) -> None:
    """The record limit looks at each chunk's ends only (limits._run_after) and locates a record
    over it with the full scan: same verdict and message (line, size) as the full scan alone, for
    records shorter, at and over the limit, across chunk boundaries, at the end without a newline,
    and for limits below the chunk size. Small chunks make every case cheap to build."""
    import random

    from chute.core.formats import limits
    from chute.core.reader import open_source

    monkeypatch.setattr(limits, "_CHUNK", 64)
    rng = random.Random(12)
    seen = {"pass": 0, "fail": 0}
    for case in range(400):
        limit = rng.choice([20, 63, 64, 65, 100, 150])
        lengths = [rng.choice([0, 1, limit - 1, limit, limit + 1, rng.randrange(0, 2 * limit)])
                   for _ in range(rng.randrange(1, 12))]
        body = b"\n".join(b"x" * n for n in lengths) + (b"\n" if rng.random() < 0.7 else b"")
        if not body:
            continue
        path = tmp_path / f"c{case}.csv.gz"
        path.write_bytes(gzip.compress(body))
        chunks = [body[i:i + 64] for i in range(0, len(body), 64)]
        want = _record_verdict(limits._exact, iter(chunks), limit)
        with open_source(path, "gzip") as src:
            got = _record_verdict(limits.check_limits, src, max_record=limit)
        plain = tmp_path / f"c{case}.csv"
        plain.write_bytes(body)
        with open_source(plain, None) as src:
            got_plain = _record_verdict(limits.check_limits, src, max_record=limit)
        assert got == want, (limit, lengths)
        if src.st.st_size > limit:  # (a plain file smaller than the limit is not scanned at all)
            assert got_plain == want, (limit, lengths)
        seen["fail" if want else "pass"] += 1
    assert min(seen.values()) > 50, seen


def test_record_check_negative_control(monkeypatch) -> None:
    """A check that forgot the bytes carried over from the previous chunk passes a record split
    across two chunks: the comparison above would see it."""
    from chute.core.formats import limits

    chunks = [b"a\n" + b"x" * 60, b"x" * 60 + b"\nb\n"]  # a 120-byte record across the boundary
    assert limits._run_after(chunks[1], 0, 100) is not None  # alone, the second chunk looks fine
    assert limits._run_after(chunks[1], limits._run_after(chunks[0], 0, 100) or 0, 100) is None
    assert "line 2" in _record_verdict(limits._exact, iter(chunks), 100)
