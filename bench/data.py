"""Bench inputs, generated once into bench/out/ and reused: the issue-12 workloads.

Every workload is a folder ``bench/out/<name>/data`` laid out as chute expects (files in a
sub-folder load into the table named after it), plus the glob ClickHouse reads the same files by.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

OUT = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class Workload:
    name: str
    rows: int  # rows per file
    files: int
    fmt: str  # file extension: csv, ndjson, parquet, csv.gz, csv.zst
    big: bool = False  # only with --big

    @property
    def data(self) -> Path:
        return OUT / self.name / "data"

    @property
    def folder(self) -> Path:
        return self.data / "events"

    @property
    def glob(self) -> str:
        return str(self.folder / f"*.{self.fmt}")

    @property
    def ch_format(self) -> str:
        return {"csv": "CSVWithNames", "csv.gz": "CSVWithNames", "csv.zst": "CSVWithNames", "ndjson": "JSONEachRow",
                "parquet": "Parquet"}[self.fmt]

    @property
    def total_rows(self) -> int:
        return self.rows * self.files

    def paths(self) -> list[Path]:
        return sorted(self.folder.glob(f"*.{self.fmt}"))


def frame(rows: int, offset: int = 0) -> pl.DataFrame:
    """Seven columns of the kinds real exports carry: ids, amounts, a low-cardinality code, a
    timestamp, a flag, and free text with commas and empties (bench/ingest.py writes it too)."""
    import numpy as np

    rng = np.random.default_rng(42 + offset)
    start = pl.datetime(2026, 1, 1)
    return pl.DataFrame({
        "id": np.arange(offset, offset + rows, dtype=np.int64),
        "user_id": rng.integers(0, 100_000, rows),
        "amount": np.round(rng.random(rows) * 1000, 2),
        "country": rng.choice(["US", "DE", "FR", "JP", "BR", "IN", "GB"], rows),
        "ts": pl.datetime_range(start, start + pl.duration(seconds=rows - 1), "1s", eager=True),
        "ok": rng.integers(0, 2, rows).astype(bool),
        "note": rng.choice(["alpha", "beta", "gamma delta", "epsilon, quoted", ""], rows),
    })


def write(df: pl.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        df.write_csv(path)
    elif fmt == "ndjson":
        df.write_ndjson(path)
    elif fmt == "parquet":
        df.write_parquet(path)
    elif fmt == "csv.gz":
        with gzip.open(path, "wb", compresslevel=6) as out:
            df.write_csv(out)
    elif fmt == "csv.zst":
        import zstandard

        path.write_bytes(zstandard.ZstdCompressor(level=3).compress(df.write_csv().encode()))
    else:
        raise ValueError(fmt)


def ensure(w: Workload) -> None:
    """Generate the workload's files unless a complete set is already there."""
    done = OUT / f"{w.name}.ok"
    if done.exists() and len(w.paths()) == w.files:
        return
    shutil.rmtree(OUT / w.name, ignore_errors=True)
    w.folder.mkdir(parents=True)
    if w.files == 1:
        write(frame(w.rows), w.folder / f"events.{w.fmt}", w.fmt)
    else:
        whole = frame(w.rows * w.files)  # one frame sliced: distinct ids, so no file is a duplicate
        width = len(str(w.files))
        for i in range(w.files):
            write(whole.slice(i * w.rows, w.rows), w.folder / f"part-{i:0{width}d}.{w.fmt}", w.fmt)
    done.write_text("")
