"""Big NDJSON, Parquet and gzip files (issue 12): the faster paths give the same tables."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from chute.core.formats.ndjson import NdjsonReader
from chute.core.reader import Reader, open_source, reader_for
from chute.core.states import State
from tests.conftest import make_config, query, wait_for


def _ndjson(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _padding() -> list[dict]:
    """More lines than the reader's first sample (1 MiB), every one with keys a and b only."""
    n = Reader.SAMPLE_BYTES // 40 + 100
    return [{"a": i, "b": f"text {i:08d}"} for i in range(n)]


def test_ndjson_keys_and_lists_after_the_first_mib_are_kept(tmp_path: Path) -> None:
    """The whole file is read with the first lines' keys beside the key scan: a key or a list
    that shows up only later makes the reader read it again with the whole file's keys."""
    lines = _padding() + [{"a": 1, "b": "x", "late": "yes", "tags": [1, 2]}, {"a": 2, "b": "y"}]
    path = _ndjson(tmp_path / "late.ndjson", lines)
    with open_source(path, None) as src:
        reader = reader_for(src, "ndjson", {})
        assert isinstance(reader, NdjsonReader)
        plan = reader.plan()
        assert list(plan.schema) == ["a", "b", "late", "tags"]
        assert plan.rows == len(lines)
        assert plan.null_counts["late"] == len(lines) - 1
        rows = sum(df.height for _, df in reader.batches(100_000))
        last = list(reader.batches(len(lines)))[0][1].tail(2)
    assert rows == len(lines)
    assert last["late"].to_list() == ["yes", None]
    assert last["tags"].to_list() == [[1, 2], None]


def test_ndjson_first_lines_keys_when_the_whole_file_agrees(tmp_path: Path) -> None:
    lines = _padding()
    path = _ndjson(tmp_path / "same.ndjson", lines)
    with open_source(path, None) as src:
        reader = reader_for(src, "ndjson", {})
        plan = reader.plan()
        assert dict(plan.schema) == {"a": reader.verdicts["a"].dtype, "b": reader.verdicts["b"].dtype}
        assert reader.verdicts["a"].kind == "int"
        first = next(iter(reader.batches(10)))[1]
    assert first["a"].to_list() == list(range(10))


def test_late_ndjson_key_loads_into_its_column(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    cfg = make_config(tmp_path, chdb_path)
    lines = _padding() + [{"a": -1, "b": "z", "late": 3.5}]
    _ndjson(cfg.data_dir / "late.ndjson", lines)
    engine = engine_factory(cfg)
    wait_for(engine.idle, what="idle")
    row = engine.ledger.current("late.ndjson")
    assert row.state == State.LOADED, row.last_error
    got = query(engine, f"SELECT count(), countIf(late IS NOT NULL), sum(late) FROM `{cfg.database}`.`late`")
    assert got == [(len(lines), 1, 3.5)]


def test_released_frame_gives_the_same_batches_and_a_second_pass_streams(tmp_path: Path) -> None:
    """The loader's send drops the parsed frame batch by batch (release_frame, for peak RSS); a
    second pass (naming a bad row after ClickHouse refused a batch) reads the file again."""
    lines = [{"id": i, "amount": i / 4, "when": "2026-01-02", "note": f"n{i % 7}"} for i in range(2_500)]
    csv_body = "id,amount,when,note\n" + "".join(f"{r['id']},{r['amount']},{r['when']},{r['note']}\n" for r in lines)
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(csv_body.encode()))
    for name, fmt, compression in (("a.ndjson", "ndjson", None), ("b.csv.gz", "csv", "gzip")):
        path = _ndjson(tmp_path / name, lines) if fmt == "ndjson" else tmp_path / name
        with open_source(path, compression) as src:
            kept = reader_for(src, fmt, {})
            kept.plan()
            want = [df for _, df in kept.batches(1_000)]
        with open_source(path, compression) as src:
            reader = reader_for(src, fmt, {})
            reader.plan()
            reader.release_frame = True
            first = [df for _, df in reader.batches(1_000)]
            assert reader._frame is None  # dropped as the batches went
            again = [df for _, df in reader.batches(1_000)]
        assert [df.height for df in first] == [1_000, 1_000, 500]
        for batches in (first, again):
            assert len(batches) == len(want)
            for got, expected in zip(batches, want, strict=True):
                assert got.equals(expected), name
