"""A file with empty values in a column its table made not Nullable: schema drift, not bad input.

A table's columns are Nullable only where the file that created it had empty values
(docs/CONTRACTS.md); so a table first made from a file with no empty `name` turned every later
file with one empty `name` into "bad input" and quarantined it (chaos seed 11: 164 rows of good
small files). Nothing is wrong with such a file: the table is narrower than the data. So it goes
through the table's drift policy like a new column does: ``evolve`` (or an approved file) widens
the column (``ALTER TABLE ... MODIFY COLUMN c Nullable(T)``, a mutation that rewrites that
column), ``hold`` waits for an operator, ``freeze`` quarantines. Key and sorting columns cannot
be Nullable: there an empty value stays bad input (the Fitter says which line); so does it under
``on_bad_rows = "skip"`` (those rows are skipped), unless the table evolves.
"""

from __future__ import annotations

import re

from chute.core.errors import HoldError, InputError
from chute.core.routing import Route
from chute.core.schema import Column
from chute.core.target import Target


def _nullable(kind: str) -> str:
    if kind.startswith("LowCardinality("):
        return f"LowCardinality(Nullable({kind[len('LowCardinality('):-1]}))"
    return f"Nullable({kind})"


def narrower(existing: list[Column], wanted: list[Column], opts: Route) -> list[Column]:
    """Columns of the table that are not Nullable where this file has empty values (and could be).
    None under ``on_bad_rows = "skip"`` (unless ``drift = "evolve"``): there such rows are skipped."""
    if opts.on_bad_rows == "skip" and opts.drift != "evolve":
        return []
    has_nulls = {c.name for c in wanted if c.nullable}
    sorting = set(opts.key) | set(re.findall(r"\w+", opts.order_by or ""))
    return [c for c in existing if c.name in has_nulls and not c.nullable and not c.default
            and c.name not in sorting and not c.type.startswith(("Array(", "Map("))]


def widen(target: Target, table: str, existing: list[Column], columns: list[Column], opts: Route,
          approved: bool) -> list[Column]:
    """Apply the drift policy to ``columns`` (from ``narrower``); returns the table's columns after."""
    listing = ", ".join(f"{c.name} ({c.type})" for c in columns)
    if opts.drift == "freeze":
        raise InputError(f"schema drift: table {table} is frozen and its column(s) {listing} are not Nullable, "
                         "but this file has empty values there")
    if opts.drift == "hold" and not approved:
        raise HoldError(f"schema drift: this file has empty values in column(s) {listing} of table {table}, "
                        "which are not Nullable; approve to make them Nullable (ALTER TABLE MODIFY COLUMN) and load")
    wider = {c.name: Column(c.name, _nullable(c.type), c.default) for c in columns}
    target.modify_columns(table, list(wider.values()))
    return [wider.get(c.name, c) for c in existing]
