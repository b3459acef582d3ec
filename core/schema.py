"""From a file's inferred polars schema to ClickHouse columns and DDL.

Identifiers come from file headers: they are always quoted, never pasted raw into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

LINEAGE = (
    ("_source_path", "LowCardinality(String)"),
    ("_source_sha256", "LowCardinality(String)"),
    ("_source_row", "UInt64"),
    ("_ingested_at", "DateTime64(3) DEFAULT now64(3)"),
)
LINEAGE_NAMES = frozenset(name for name, _ in LINEAGE)


def quote_ident(name: str) -> str:
    """Backtick-quote an identifier, escaping backslashes and backticks."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def qualified(database: str, table: str) -> str:
    return f"{quote_ident(database)}.{quote_ident(table)}"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # ClickHouse type, e.g. Nullable(Int64)

    @property
    def nullable(self) -> bool:
        return self.type.startswith("Nullable(")


def ch_type(dtype: pl.DataType) -> str:
    """ClickHouse type for a polars dtype (without Nullable)."""
    if dtype == pl.Boolean:
        return "Bool"
    if dtype in (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64):
        return str(dtype)
    if dtype in (pl.Float32, pl.Float64):
        return str(dtype)
    if dtype == pl.Date:
        return "Date32"
    if isinstance(dtype, pl.Datetime):
        precision = {"ms": 3, "us": 6, "ns": 9}[dtype.time_unit or "us"]
        return f"DateTime64({precision}, 'UTC')" if dtype.time_zone else f"DateTime64({precision})"
    if dtype == pl.Time:
        return "String"
    return "String"


def columns_for(schema: pl.Schema, null_counts: dict[str, int]) -> list[Column]:
    """Data columns: Nullable only where the file has nulls."""
    out = []
    for name, dtype in schema.items():
        base = ch_type(dtype)
        nullable = null_counts.get(name, 0) > 0 or dtype == pl.Null
        out.append(Column(name, f"Nullable({base})" if nullable else base))
    return out


def create_table_sql(database: str, table: str, columns: list[Column], dedup_window: int,
                     order_by: str | None = None) -> str:
    defs = [f"{quote_ident(c.name)} {c.type}" for c in columns]
    defs += [f"{quote_ident(name)} {kind}" for name, kind in LINEAGE]
    # A minmax index on the source hash: parts hold few files, so verification and purge
    # skip almost every part, at a fraction of a bloom filter's insert cost.
    defs.append("INDEX _chute_src _source_sha256 TYPE minmax GRANULARITY 1")
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(database, table)} (\n  " + ",\n  ".join(defs) + "\n)"
        f" ENGINE = MergeTree ORDER BY {order_by or 'tuple()'}"
        f" SETTINGS non_replicated_deduplication_window = {int(dedup_window)},"
        " fsync_after_insert = 1, fsync_part_directory = 1"
    )
