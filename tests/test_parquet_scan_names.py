"""Parquet column names against the plan's one scan (core/formats/parquet.py): the scan names its
own outputs (row count, each text column's distinct values in the first rows) beside one output
per file column, so a file column must never be able to take one of those names (review of issue
12's one-read change: a column named ``\\x010`` quarantined a file main loads)."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from chute.core.config import Config
from chute.core.engine import Engine
from tests.conftest import query, state_of


def test_a_column_named_like_the_scans_own_outputs_still_loads(
        engine_factory: Callable[..., Engine], cfg: Config) -> None:
    """An integer column ``\\x010`` beside a text column of 200 rows: the distinct count of the text
    column was aliased ``\\x010`` too, polars refused the duplicate name and the file was quarantined
    as 'unreadable Parquet' (seen failing on int2; main loads it)."""
    (cfg.data_dir / "t").mkdir(parents=True)
    pq.write_table(pa.table({"\x010": list(range(200)), "s": [f"v{i % 3}" for i in range(200)]}),
                   cfg.data_dir / "t" / "ctl.parquet")
    engine = engine_factory(cfg=cfg, once=True)
    assert engine.wait_idle(timeout=120)
    row = engine.ledger.current("t/ctl.parquet")
    assert state_of(engine, "t/ctl.parquet") == "loaded", row.last_error
    assert query(engine, f"SELECT count(), countDistinct(s) FROM `{cfg.database}`.t") == [(200, 3)]
