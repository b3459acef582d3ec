"""From a file's inferred polars schema to ClickHouse columns and DDL.

Identifiers come from file headers: they are always quoted, never pasted raw into SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # polars is imported where a type is mapped: target and fleet use this module too, and an
    import polars as pl  # empty `--once` never maps a type (tests/test_startup.py)

LINEAGE = (
    ("_source_path", "LowCardinality(String)"),
    ("_source_sha256", "LowCardinality(String)"),
    ("_source_row", "UInt64"),
    ("_ingested_at", "DateTime64(3) DEFAULT now64(3)"),
)
LINEAGE_NAMES = frozenset(name for name, _ in LINEAGE)


def _quoted(text: str, quote: str) -> str:
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def quote_ident(name: str) -> str:
    """Backtick-quote an identifier, escaping backslashes and backticks."""
    return _quoted(name, "`")


def quote_string(value: str) -> str:
    """A string literal in single quotes, escaping backslashes and quotes."""
    return _quoted(value, "'")


def qualified(database: str, table: str) -> str:
    return f"{quote_ident(database)}.{quote_ident(table)}"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # ClickHouse type, e.g. Nullable(Int64)
    default: str = ""  # DEFAULT/MATERIALIZED/ALIAS kind when the column has one

    @property
    def nullable(self) -> bool:
        return self.type.startswith(("Nullable(", "LowCardinality(Nullable("))

    @property
    def fillable(self) -> bool:
        """Can a file without this column still load? (ClickHouse fills a NULL or a default)"""
        return self.nullable or bool(self.default)


_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+/-]{0,63}$")


def ch_type(dtype: pl.DataType) -> str:
    """ClickHouse type for a polars dtype (without Nullable)."""
    import polars as pl

    if dtype == pl.Boolean:
        return "Bool"
    if dtype in (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64,
                 pl.Float32, pl.Float64):
        return str(dtype)
    if dtype == pl.Date:
        return "Date32"
    if isinstance(dtype, pl.Datetime):
        precision = {"ms": 3, "us": 6, "ns": 9}[dtype.time_unit or "us"]
        if not dtype.time_zone:
            return f"DateTime64({precision})"
        zone = dtype.time_zone if _ZONE.match(dtype.time_zone) else "UTC"  # the instant is kept either way
        return f"DateTime64({precision}, '{zone}')"
    if isinstance(dtype, pl.Decimal):
        return f"Decimal({dtype.precision or 38}, {dtype.scale or 0})"
    if isinstance(dtype, pl.Map):
        # Keys cannot be Nullable; a missing map loads as {} (ClickHouse maps cannot be NULL).
        return f"Map({ch_type(dtype.key)}, {_nullable(ch_type(dtype.value))})"  # type: ignore[arg-type]
    if isinstance(dtype, pl.List | pl.Array):
        # Arrays cannot be Nullable in ClickHouse; a missing list loads as [].
        return f"Array({_nullable(ch_type(dtype.inner))})"  # type: ignore[arg-type]
    return "String"


def _nullable(ch: str) -> str:
    """Nullable(...) where ClickHouse allows it: arrays and maps cannot be inside Nullable."""
    return ch if ch.startswith(("Array(", "Map(")) else f"Nullable({ch})"


# Strings whose sample repeats a lot are stored as LowCardinality (dictionary-encoded).
LOW_CARDINALITY_RATIO = 0.05


def columns_for(schema: pl.Schema, null_counts: dict[str, int], distinct_ratio: dict[str, float] | None = None,
                explicit: dict[str, str] | None = None) -> list[Column]:
    """Data columns: Nullable only where the file has nulls; LowCardinality where it pays;
    explicit types from the table's route win."""
    import polars as pl

    out = []
    for name, dtype in schema.items():
        if explicit and name in explicit:
            out.append(Column(name, explicit[name]))
            continue
        base = ch_type(dtype)
        nullable = (null_counts.get(name, 0) > 0 or dtype == pl.Null) and not base.startswith(("Array(", "Map("))
        kind = f"Nullable({base})" if nullable else base
        if base == "String" and (distinct_ratio or {}).get(name, 1.0) <= LOW_CARDINALITY_RATIO:
            kind = f"LowCardinality({kind})"
        out.append(Column(name, kind))
    return out


def base_type(ch: str) -> str:
    """``LowCardinality(Nullable(String))`` -> ``String``."""
    for wrapper in ("LowCardinality(", "Nullable("):
        if ch.startswith(wrapper):
            ch = ch[len(wrapper):-1]
    return ch


def polars_type(ch: str) -> pl.DataType | None:
    """The polars type a value must cast to for a ClickHouse column type (None: let ClickHouse judge)."""
    import polars as pl

    base = base_type(ch)
    simple = {"Int8": pl.Int8, "Int16": pl.Int16, "Int32": pl.Int32, "Int64": pl.Int64, "UInt8": pl.UInt8,
              "UInt16": pl.UInt16, "UInt32": pl.UInt32, "UInt64": pl.UInt64, "Float32": pl.Float32,
              "Float64": pl.Float64, "Bool": pl.Boolean, "String": pl.String}
    if base in simple:
        return simple[base]()
    decimal = re.fullmatch(r"Decimal\((\d+),\s*(\d+)\)", base)
    if decimal and int(decimal[1]) <= 38:  # exact, never through a double (polars holds up to 38 digits)
        return pl.Decimal(int(decimal[1]), int(decimal[2]))
    return None


def create_table_sql(database: str, table: str, columns: list[Column], dedup_window: int,
                     order_by: str | None = None, key: tuple[str, ...] = (), cluster: str | None = None) -> str:
    """MergeTree, or ReplacingMergeTree versioned by ingestion time when the table has a ``key``
    (the last version of a key wins at merge time and with FINAL)."""
    defs = [f"{quote_ident(c.name)} {c.type}" for c in columns]
    defs += [f"{quote_ident(name)} {kind}" for name, kind in LINEAGE]
    # An index on the source hash: parts hold few files, so verification and purge skip almost
    # every granule. A bloom filter, not minmax: on this LowCardinality column ClickHouse 26.9's
    # minmax costs ~0.5 s of CPU per 1M rows inserted (as much as the rest of the insert), the
    # bloom filter next to nothing, and a count by hash skips as well (issue 12).
    defs.append("INDEX _chute_src _source_sha256 TYPE bloom_filter GRANULARITY 1")
    if key:
        engine = "ReplacingMergeTree(_ingested_at)"
        order = "(" + ", ".join(quote_ident(k) for k in key) + ")"
    else:
        engine = "MergeTree"
        order = order_by or "tuple()"
    on_cluster, dedup = "", f"non_replicated_deduplication_window = {int(dedup_window)}"
    if cluster:
        engine, on_cluster, dedup = replicated(engine), f" ON CLUSTER {quote_ident(cluster)}", (
            f"replicated_deduplication_window = {int(dedup_window)},"
            f" replicated_deduplication_window_seconds = {REPLICATED_DEDUP_SECONDS}")
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(database, table)}{on_cluster} (\n  " + ",\n  ".join(defs) + "\n)"
        f" ENGINE = {engine} ORDER BY {order}"
        f" SETTINGS {dedup},"
        " fsync_after_insert = 1, fsync_part_directory = 1"
    )


# Scale-out on ClickHouse itself (--cluster): the replicated dedup window lives in Keeper and carries
# the tokens across replicas. Hashes older than this are dropped even inside the block window, so it
# must outlast the longest stop after which a host resends its unacknowledged batches (the count
# check after loading still catches a resend past it). Keeper keeps one node per remembered block.
REPLICATED_DEDUP_SECONDS = 7 * 24 * 3600
REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"


def replicated(engine: str) -> str:
    """``MergeTree`` -> ``ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')``,
    keeping the engine's own arguments after the replica's (``ReplacingMergeTree(v)``)."""
    name, _, args = engine.partition("(")
    args = args.rstrip(")")
    return f"Replicated{name}({REPLICA_PATH}{', ' + args if args else ''})"


def create_database_sql(database: str, cluster: str | None = None) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {quote_ident(database)}" + (
        f" ON CLUSTER {quote_ident(cluster)}" if cluster else "")


def add_column_sql(database: str, table: str, column: Column) -> str:
    return (f"ALTER TABLE {qualified(database, table)} ADD COLUMN IF NOT EXISTS "
            f"{quote_ident(column.name)} {column.type}")
