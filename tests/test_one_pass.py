"""Big files read fewer times (issue 12): a compressed file is inflated once, an NDJSON file's keys
are proved from its raw lines instead of a second JSON parse, a finished `--once` exits at once.
Each shortcut must give exactly what the long way gives."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import zstandard

from chute.core.errors import InputError
from chute.core.formats.limits import check_limits
from chute.core.formats.ndjson import NdjsonReader
from chute.core.reader import Reader, Source, open_source, reader_for

ROOT = Path(__file__).resolve().parent.parent

CSV = "".join(f"{i},{i * 1.5},{'x' if i % 3 else ''},2026-01-{1 + i % 28:02d}\n" for i in range(30_000))
CSV = "id,amount,note,day\n" + CSV
NDJSON = "".join(json.dumps({"id": i, "s": f"v{i}", "n": None if i % 7 == 0 else i / 4}) + "\n" for i in range(30_000))


def _read_all(src: Source, fmt: str) -> tuple[object, pl.DataFrame]:
    reader = reader_for(src, fmt, {})
    plan = reader.plan()
    frame = pl.concat([df for _, df in reader.batches(7_000)])
    return (dict(plan.schema), plan.rows, plan.null_counts), frame


def _blinded(src: Source) -> None:
    """Point the source's descriptor at /dev/null: a parser that reads the file again sees nothing."""
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, src.fd)
    finally:
        os.close(null)


@pytest.mark.parametrize(("name", "fmt", "body", "pack", "compression"), [
    ("a.csv.gz", "csv", CSV, gzip.compress, "gzip"),
    ("a.csv.zst", "csv", CSV, zstandard.ZstdCompressor().compress, "zstd"),
    ("a.ndjson.gz", "ndjson", NDJSON, gzip.compress, "gzip"),
    ("a.ndjson.zst", "ndjson", NDJSON, zstandard.ZstdCompressor().compress, "zstd"),
], ids=["csv.gz", "csv.zst", "ndjson.gz", "ndjson.zst"])
def test_a_compressed_file_is_parsed_from_the_bytes_the_guard_inflated(
        tmp_path: Path, name: str, fmt: str, body: str, pack: object, compression: str) -> None:
    """The zip-bomb guard inflates the whole file; the parsers read those bytes, not the file again
    (seen failing before the change: the blinded descriptor gave the parsers an empty file)."""
    plain = tmp_path / f"plain.{fmt}"
    plain.write_text(body)
    with open_source(plain, None) as src:
        want_plan, want = _read_all(src, fmt)
    packed = tmp_path / name
    packed.write_bytes(pack(body.encode()))  # type: ignore[operator]
    with open_source(packed, compression) as src:
        check_limits(src)
        _blinded(src)  # from here on, only the inflated bytes hold the data
        got_plan, got = _read_all(src, fmt)
    assert got_plan == want_plan
    assert got.equals(want)


def test_a_compressed_parquet_file_is_parsed_from_the_bytes_the_guard_inflated(tmp_path: Path) -> None:
    df = pl.DataFrame({"id": range(5_000), "s": [f"v{i}" for i in range(5_000)]})
    df.write_parquet(tmp_path / "a.parquet")
    packed = tmp_path / "a.parquet.gz"
    packed.write_bytes(gzip.compress((tmp_path / "a.parquet").read_bytes()))
    with open_source(packed, "gzip") as src:
        check_limits(src, text=False)
        _blinded(src)
        _, got = _read_all(src, "parquet")
    assert got.equals(df.with_columns(pl.col("id").cast(got["id"].dtype)))


@pytest.mark.parametrize(("name", "data", "compression"), [
    ("cut.csv.gz", gzip.compress(CSV.encode())[:-30], "gzip"),
    ("cut-mid.csv.gz", gzip.compress(CSV.encode())[:5_000], "gzip"),
    ("cut.csv.zst", zstandard.ZstdCompressor().compress(CSV.encode())[:-30], "zstd"),
    ("cut-second.csv.zst", zstandard.ZstdCompressor().compress(CSV[:100].encode())
     + zstandard.ZstdCompressor().compress(CSV[100:].encode())[:-10], "zstd"),
], ids=["gz end", "gz middle", "zst end", "zst second frame"])
def test_a_stream_cut_short_is_refused_not_parsed_short(tmp_path: Path, name: str, data: bytes,
                                                         compression: str) -> None:
    """The parsers now read what the guard inflated, so the guard must refuse a cut stream itself
    (zstd's stream reader ends quietly at a cut: on the code before, the guard passed it and only
    polars' own inflation caught it)."""
    path = tmp_path / name
    path.write_bytes(data)
    with open_source(path, compression) as src, pytest.raises(InputError, match="truncated or corrupt"):
        check_limits(src)


def test_multi_member_and_multi_frame_streams_are_whole(tmp_path: Path) -> None:
    body = CSV.encode()
    for name, data, compression in (
            ("m.csv.gz", gzip.compress(body[:1000]) + gzip.compress(body[1000:]), "gzip"),
            ("m.csv.zst", zstandard.ZstdCompressor().compress(body[:1000])
             + zstandard.ZstdCompressor().compress(body[1000:]), "zstd")):
        (tmp_path / name).write_bytes(data)
        with open_source(tmp_path / name, compression) as src:
            check_limits(src)
            assert src.inflated is not None
            with open(src.readable, "rb") as f:
                assert f.read() == body


def _padding() -> list[str]:
    """More lines than the reader's first sample (1 MiB), every one with keys a and b only."""
    return [json.dumps({"a": i, "b": f"text {i:08d}"}) for i in range(Reader.SAMPLE_BYTES // 30 + 100)]


# Lines after the first MiB that the raw-line check must not wave through.
LATE = {
    "late key": json.dumps({"a": 1, "late": "x"}),
    "late key, spaced colon": '{"a": 1, "late" : 2}',
    "late key spelled with escapes": '{"a": 1, "l\\u0061te": 2}',
    "late key after an escaped quote": '{"a": 1, "x\\"a": 2}',
    "late list": json.dumps({"a": 1, "b": [1, 2]}),
    "late nested object": json.dumps({"a": 1, "b": {"c": 1}}),
    "known key text inside a value": json.dumps({"a": 1, "b": 'say "late": 3'}),
    "nothing new": json.dumps({"a": 1, "b": "plain"}),
    # The literal count (no escaped quote in the file) must not be fooled either:
    "late key, tab before the colon": '{"a": 1, "late"\t: 2}',
    "value starting with a colon": json.dumps({"a": 1, "b": ":late"}),
    "value starting with a colon beside a late key": '{"a": 1, "b": ":", "late": 2}',
    "escaped backslash closing a value": '{"a": 1, "b": "x\\\\", "late": 2}',
    "late key written twice": '{"a": 1, "late": 2, "late": 3}',
}


def _ndjson_plan(path: Path, check: object = None) -> tuple[object, pl.DataFrame]:
    with open_source(path, None) as src:
        reader = reader_for(src, "ndjson", {})
        assert isinstance(reader, NdjsonReader)
        if check is not None:
            reader._only_keys = check  # type: ignore[method-assign]
        plan = reader.plan()
        frame = pl.concat([df for _, df in reader.batches(50_000)])
    return (list(plan.schema.items()), plan.rows, plan.null_counts), frame


@pytest.mark.parametrize("case", list(LATE))
def test_ndjson_raw_line_key_check_gives_what_the_key_scan_gives(tmp_path: Path, case: str) -> None:
    path = tmp_path / "a.ndjson"
    path.write_text("\n".join([*_padding(), LATE[case], *_padding()[:10]]) + "\n")
    got = _ndjson_plan(path)
    want = _ndjson_plan(path, check=lambda keys, early=None: False)  # always the whole-file key scan
    assert got[0] == want[0]
    assert got[1].equals(want[1])


@pytest.mark.parametrize("case", list(LATE))
def test_ndjson_key_check_with_escapes_in_the_first_mib(tmp_path: Path, case: str) -> None:
    """Escaped quotes in the first lines send the check straight to the anchored pattern."""
    head = [json.dumps({"a": i, "b": f'say "{i}"'}) for i in range(200)]
    path = tmp_path / "a.ndjson"
    path.write_text("\n".join([*head, *_padding(), LATE[case]]) + "\n")
    got = _ndjson_plan(path)
    want = _ndjson_plan(path, check=lambda keys, early=None: False)
    assert got[0] == want[0]
    assert got[1].equals(want[1])


@pytest.mark.parametrize(("head", "late", "passes"), [
    ("plain", "nothing new", 0),  # the byte count against the frame settles it (core/formats/ndjson_keys.py)
    ("plain", "value starting with a colon", 1),  # a '":' in a value: the literal count settles it
    ("plain", "known key text inside a value", 2),  # an escape after the first MiB: the anchored pattern too
    ("escaped", "nothing new", 0),  # escapes that never precede a colon: the byte count still settles it
    ("escaped", "value starting with a colon", 1),  # an escape in the first MiB: the anchored pattern only
])
def test_ndjson_key_check_reads_the_lines_once_unless_an_escape_shows_late(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, head: str, late: str, passes: int) -> None:
    lines = _padding() if head == "plain" else [json.dumps({"a": 1, "b": 'say "hi"'}), *_padding()]
    path = tmp_path / "a.ndjson"
    path.write_text("\n".join([*lines, LATE[late]]) + "\n")
    calls: list[int] = []
    real = NdjsonReader._line_facts
    monkeypatch.setattr(NdjsonReader, "_line_facts", lambda self, *e: calls.append(1) or real(self, *e))
    with open_source(path, None) as src:
        reader = reader_for(src, "ndjson", {})
        reader.plan()
    assert len(calls) == passes


def test_ndjson_key_check_negative_control(tmp_path: Path) -> None:
    """A check that trusts the first MiB loses a late key: the comparison above would see it."""
    path = tmp_path / "a.ndjson"
    path.write_text("\n".join([*_padding(), LATE["late key"]]) + "\n")
    trusting = _ndjson_plan(path, check=lambda keys, early=None: True)
    scanned = _ndjson_plan(path, check=lambda keys, early=None: False)
    assert [c for c, _ in scanned[0][0]] == ["a", "b", "late"]  # type: ignore[index]
    assert trusting[0] != scanned[0]


def test_ndjson_key_check_skips_the_key_scan_on_plain_files(tmp_path: Path) -> None:
    path = tmp_path / "a.ndjson"
    path.write_text("\n".join(_padding()) + "\n")
    with open_source(path, None) as src:
        reader = reader_for(src, "ndjson", {})
        assert isinstance(reader, NdjsonReader)
        assert reader._only_keys(["a", "b"])
        assert not reader._only_keys(["a"])


def test_once_as_a_program_exits_with_its_result_and_every_line_written(tmp_path: Path) -> None:
    """`chute --once` ends without interpreter teardown (cli._exit_now): its exit code and its last
    log line must still come out (logging and stdio are flushed first)."""
    data = tmp_path / "data" / "t"
    data.mkdir(parents=True)
    (data / "good.csv").write_text("a,b\n1,x\n2,y\n")
    (data / "bad.csv.gz").write_bytes(gzip.compress(b"a,b\n1,x\n")[:-8])  # cut: quarantined
    proc = subprocess.run(
        [sys.executable, "-m", "chute.core", "--no-ui", "--once", str(tmp_path / "data"), "--state-dir",
         str(tmp_path / "state"), "--clickhouse", f"chdb://{tmp_path / 'ch'}", "--log-format", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]  # some files not loaded (api.RunResult.exit_code)
    assert json.loads(proc.stderr.strip().splitlines()[-1])["msg"] == "stopped"
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    try:
        states = dict(db.execute("SELECT path, state FROM files").fetchall())
    finally:
        db.close()
    assert states == {"t/good.csv": "loaded", "t/bad.csv.gz": "quarantined"}


def test_the_streamed_inference_never_falls_back_to_the_in_memory_engine(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A file over the in-memory size is inferred in polars' streaming engine; an expression it
    cannot stream makes it hold whole columns (the 16M-row CSV's plan peaked at 1.9 GB through the
    null-token query; seen failing before the change). Every streamed query's physical plan must
    be free of in-memory fallbacks."""
    from chute.core.formats import infer

    rows = [f"{i},{'NA' if i % 5 == 0 else i},2026-01-{1 + i % 28:02d} 10:00:00,{'x' if i % 2 else 'null'}"
            for i in range(12_000)]
    rows.append("12000,1.5,2026-01-01 10:00:00.1234567,y")  # widens b after the sample; nanoseconds in c
    path = tmp_path / "big.csv"
    path.write_text("a,b,c,d\n" + "\n".join(rows) + "\n")
    graphs: list[str] = []
    collect = infer._Pass.collect

    def watched(self: infer._Pass, exprs: list[pl.Expr], lf: pl.LazyFrame | None = None) -> dict:
        if self.streaming:
            query = (self.lf if lf is None else lf).select(exprs)
            graphs.append(query.show_graph(engine="streaming", plan_stage="physical", raw_output=True) or "")
        return collect(self, exprs, lf)

    monkeypatch.setattr(infer._Pass, "collect", watched)
    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 0)  # every file streams
    with open_source(path, None) as src:
        plan = reader_for(src, "csv", {}).plan()
    assert plan.rows == 12_001 and str(plan.schema["b"]) == "Float64"
    assert len(graphs) >= 2  # the first pass and the widening pass
    fallbacks = [g for g in graphs if 'fillcolor="0.0 0.3 1.0"' in g]  # polars' colour for an in-memory fallback
    assert not fallbacks, fallbacks[0]
