"""The native read's footer comes from ClickHouse's own footer reader (Target.parquet_footer), not
pyarrow's (which aborts the process on some hostile footers, and cost an import and a second read of
the footer). What the native read judges by must be what pyarrow read before: rows, each row group's
claimed NULLs and size, each column's logical type (core/native.py admits only some)."""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from chute.core.formats.parquet import _footer_stats
from chute.core.target import Target


def _pyarrow_footer(path: Path, names: list[str]) -> tuple[dict[str, int], int, dict[str, str], list]:
    """The footer as pyarrow reads it: (rows and NULLs, uncompressed bytes, logical types, groups)."""
    meta = pq.ParquetFile(path).metadata
    stats = dict.fromkeys(names, 0)
    groups = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        claimed = {name: group.column(i).statistics.null_count for i, name in enumerate(names)}
        for name in names:
            stats[name] += claimed[name]
        groups.append((group.num_rows, claimed))
    logical = {meta.schema.column(i).name: meta.schema.column(i).logical_type.type for i in range(len(names))}
    size = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    return {"\x00rows": meta.num_rows, **stats}, size, logical, groups


def test_clickhouses_footer_reader_tells_what_pyarrows_did(tmp_path: Path, target: Target) -> None:
    import polars as pl

    n = 50
    table = pa.table({
        "i8": pa.array([1, None] * (n // 2), pa.int8()), "u64": pa.array(range(n), pa.uint64()),
        "f": pa.array([0.5, None, 1.5, 2.5, None] * (n // 5)), "b": pa.array([True, None] * (n // 2)),
        "s": pa.array(["x", None, "yy", "z", "w"] * (n // 5)), "bin": pa.array([b"a", None] * (n // 2)),
        "dec": pa.array([decimal.Decimal("1.25"), None] * (n // 2), pa.decimal128(9, 2)),
        "d": pa.array([datetime.date(2020, 1, 1), None] * (n // 2)),
        "ts": pa.array([datetime.datetime(2020, 1, 1, 1), None] * (n // 2), pa.timestamp("us")),
        "tz": pa.array([datetime.datetime(2020, 1, 1, 1)] * n, pa.timestamp("ms", tz="UTC")),
        "t": pa.array([datetime.time(1, 2, 3)] * n, pa.time64("us")),
        "u": pa.array([b"0123456789abcdef"] * n, pa.binary(16)),
        "dict": pa.array(["a", "b", None, "a", "b"] * (n // 5)).dictionary_encode(),
    })
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, row_group_size=15)
    schema = pl.scan_parquet(path).collect_schema()
    names = list(schema)
    footer = target.parquet_footer(str(path))
    assert footer is not None
    sizes: dict[str, int] = {}
    logical: dict[str, str] = {}
    groups: list = []
    got = _footer_stats(footer, schema, sizes, logical, groups)
    want, size, want_logical, want_groups = _pyarrow_footer(path, names)
    assert got == want and groups == want_groups and sizes == {"uncompressed": size}
    assert logical == want_logical, (logical, want_logical)
    assert len(groups) == 4 and want["s"] == 10  # (the file is what this test means it to be)


def test_a_footer_without_null_counts_is_not_judged(tmp_path: Path, target: Target) -> None:
    """No statistics, no claim: the plan does not treat it as a true footer (negative control of the above)."""
    import polars as pl

    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"a": [1, None, 3]}), path, write_statistics=False)
    footer = target.parquet_footer(str(path))
    assert footer is not None and footer.groups[0][2] == [None]
    assert _footer_stats(footer, pl.scan_parquet(path).collect_schema(), {}) is None


def test_a_footer_clickhouse_refuses_is_none(tmp_path: Path, target: Target) -> None:
    path = tmp_path / "f.parquet"
    path.write_bytes(b"PAR1" + b"\0" * 40 + b"PAR1")
    assert target.parquet_footer(str(path)) is None


def test_a_native_load_reads_the_footer_once_and_without_pyarrow(tmp_path: Path) -> None:
    """A `--once` over a Parquet file that goes natively no longer imports pyarrow.parquet (nor, with no
    metrics endpoint, prometheus_client): the footer is ClickHouse's to read (issue 12, start-up)."""
    import sqlite3
    import subprocess
    import sys

    from tests.conftest import ROOT

    (tmp_path / "data" / "t").mkdir(parents=True)
    pq.write_table(pa.table({"a": range(1000), "s": ["x"] * 1000}), tmp_path / "data" / "t" / "f.parquet")
    code = ("import sys\nfrom chute.core.cli import main\nrc = main(sys.argv[1:])\n"
            "print(rc, *[m for m in ('pyarrow.parquet', 'prometheus_client') if m in sys.modules])\n")
    args = ["--no-ui", "--once", str(tmp_path / "data"), "--state-dir", str(tmp_path / "state"),
            "--clickhouse", f"chdb://{tmp_path / 'ch'}", "--log-format", "json"]
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["0"], proc.stdout + proc.stderr[-2000:]
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    try:
        tokens = [t for (t,) in db.execute("SELECT token FROM batches")]
    finally:
        db.close()
    assert tokens and all(t.endswith(":file") for t in tokens), tokens


def test_text_columns_distinct_ratio_is_the_first_rows_sample(tmp_path: Path) -> None:
    """The plan counts text columns' distinct values in the first rows within its one read of every
    value (it read those rows a second time before): the ratios (LowCardinality or not) are the
    sample's, above and below INFER_ROWS rows, with NULLs, and where a column becomes text only in
    chute's reading (a categorical: the sample path, kept)."""
    import polars as pl

    from chute.core.formats.parquet import flatten_nested
    from chute.core.reader import Reader, open_source, reader_for

    n = Reader.INFER_ROWS
    for rows, cat in ((150, False), (n * 2 + 7, False), (n + 3, True)):
        df = pl.DataFrame({"s": [f"v{i % 97}" if i % 5 else None for i in range(rows)],
                           "t": [f"w{i}" for i in range(rows)], "i": range(rows)})
        if cat:
            df = df.with_columns(pl.col("s").cast(pl.Categorical))
        path = tmp_path / f"f{rows}.parquet"
        df.write_parquet(path, row_group_size=4000)
        sample = flatten_nested(pl.scan_parquet(path).head(n).collect())
        with open_source(path, None) as src:
            plan = reader_for(src, "parquet").plan()
        assert plan.distinct_ratio == {c: sample[c].n_unique() / sample.height for c in ("s", "t")}, rows
        assert plan.rows == rows and plan.null_counts["s"] == df["s"].null_count()
