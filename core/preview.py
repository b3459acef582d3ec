"""`chute inspect FILE...`: a dry run. For each file: the table it would go to, the columns and
types it would get and why, null tokens seen, drift against the table as the ledger last
recorded it, the first rows, and any problem that would quarantine it.

Opens nothing for writing: the file read-only, the ledger (if any) read-only, no ClickHouse.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from chute.core.config import Config
from chute.core.errors import ChuteError
from chute.core.formats.limits import check_limits
from chute.core.formats.why import column_reasons
from chute.core.reader import hash_and_plan, open_source, reader_for
from chute.core.resources import TempDirFull
from chute.core.routing import Route, format_of, options_for, reader_options, table_for
from chute.core.schema import LINEAGE_NAMES, Column, columns_for

ROWS = 5


def preview(cfg: Config, path: Path, rows: int = ROWS, recorded: dict[str, list[Column]] | None = None) -> dict:
    """Everything `chute inspect` reports about one file, as plain data (the --json shape)."""
    root = os.path.realpath(cfg.data_dir)
    real = os.path.realpath(path)
    rel = os.path.relpath(real, root) if os.path.commonpath([root, real]) == root else path.name
    fmt, compression = format_of(rel)
    table = table_for(rel, cfg.routes)
    out: dict[str, Any] = {"path": str(path), "table": table, "format": fmt, "compression": compression,
                           "rows": None, "columns": [], "first_rows": [], "drift": [], "problems": []}
    opts = options_for(table, cfg.routes)
    try:
        _read(cfg, path, opts, rows, out)
    except ChuteError as exc:
        line = getattr(exc, "line", None)
        out["problems"].append(f"{exc}" + (f" (line {line})" if line and f"line {line}" not in str(exc) else ""))
    except TempDirFull as exc:  # (not the file's: the loader pauses until space returns)
        out["not_read"] = str(exc)
    existing = (recorded or {}).get(table)
    if existing is None:
        out["table_note"] = f"table {table} not recorded in the ledger: the first file would create it"
    elif out["columns"]:
        out["drift"] = _drift(out["columns"], existing, opts.drift)
    return out


def _read(cfg: Config, path: Path, opts: Route, rows: int, out: dict[str, Any]) -> None:
    """What the loader's first pass would find: rows, hash, columns with their types and why, first rows."""
    fmt, compression = out["format"], out["compression"]
    with open_source(path, compression, cfg.max_file_bytes) as src:
        reader = reader_for(src, fmt, reader_options(opts, fmt))
        check_limits(src, cfg.max_record_bytes, cfg.max_decompression_ratio, text=reader.TEXT)
        plan = hash_and_plan(src, reader)
        if reader.pending_check is not None and (problem := reader.pending_check()) is not None:
            raise problem  # (what the loader checks beside its inserts: a short row)
        out["rows"], out["sha256"] = plan.rows, src.sha256
        reasons = column_reasons(reader)
        for col in columns_for(plan.schema, plan.null_counts, plan.distinct_ratio, dict(opts.columns)):
            verdict = reader.verdicts.get(col.name)
            out["columns"].append({"name": col.name, "type": col.type, "why": reasons.get(col.name, ""),
                                   "null_tokens": list(verdict.tokens) if verdict else []})
            out["problems"] += _name_problems(col.name)
        first = next(reader.batches(rows), None)
        if first is not None:
            out["first_rows"] = [[None if v is None else cell_text(v) for v in r] for r in first[1].head(rows).rows()]


def cell_text(value: Any) -> str:
    """A cell as text: a map, list or struct as JSON with its timestamps as their text (not
    Python's ``datetime.datetime(...)``), anything else as ``str`` gives it."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _name_problems(name: str) -> list[str]:
    if name in LINEAGE_NAMES:
        return [f"column name {name!r} is reserved for chute's lineage columns"]
    if not name.strip():
        return ["a column has an empty name (JSON key \"\" or Parquet column \"\")"]
    return []


def _drift(columns: list[dict[str, Any]], existing: list[Column], policy: str) -> list[str]:
    """The file's columns against the table's as the ledger recorded them."""
    have = {c.name: c.type for c in existing if c.name not in LINEAGE_NAMES}
    out = []
    for c in columns:
        if c["name"] not in have:
            out.append(f"new column {c['name']} ({c['type']}): held for approval under drift = {policy}")
        elif have[c["name"]] != c["type"]:
            out.append(f"{c['name']}: file {c['type']}, table {have[c['name']]}")
    names = {c["name"] for c in columns}
    return out + [f"{n}: in the table, not in the file" for n in have if n not in names]


def recorded_tables(cfg: Config) -> dict[str, list[Column]]:
    """Tables' columns as the engine last recorded them (read-only ledger; empty without one)."""
    from chute.core.ledger import Ledger

    if not (cfg.state_dir / Ledger.FILENAME).exists():
        return {}
    ledger = Ledger(cfg.state_dir, readonly=True)
    try:
        out = {}
        # (the loader records them as meta ``columns:<table>``; see loader._record_columns)
        for row in ledger._q("SELECT key, value FROM meta WHERE key LIKE 'columns:%'", ()):
            out[row["key"].removeprefix("columns:")] = [Column(n, t) for n, t in json.loads(row["value"])]
        return out
    finally:
        ledger.close()


def render(report: dict) -> str:
    lines = [f"{report['path']} -> table {report['table']} ({report['format'] or '?'}"
             f"{', ' + report['compression'] if report['compression'] else ''}"
             f"{', ' + str(report['rows']) + ' rows' if report['rows'] is not None else ''})"]
    if report["columns"]:
        width = max(len(c["name"]) for c in report["columns"])
        kind = max(len(c["type"]) for c in report["columns"])
        lines.append("  columns:")
        lines += [f"    {c['name']:<{width}}  {c['type']:<{kind}}  {c['why']}" for c in report["columns"]]
    if report.get("table_note"):
        lines.append(f"  {report['table_note']}")
    if report["drift"]:
        lines.append("  drift against the table:")
        lines += [f"    {d}" for d in report["drift"]]
    if report["first_rows"]:
        lines.append("  first rows:")
        lines += ["    " + " | ".join("NULL" if v is None else _printable(v) for v in r) for r in report["first_rows"]]
    for problem in report["problems"]:
        lines.append(f"  problem (would quarantine): {problem}")
    if report.get("not_read"):
        lines.append(f"  not read: {report['not_read']} (the loader pauses until space returns)")
    return "\n".join(lines)


def _printable(text: str, width: int = 40) -> str:
    clean = "".join(ch if ch.isprintable() else "·" for ch in text)
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def inspect_cmd(cfg: Config, paths: list[str], as_json: bool, rows: int = ROWS) -> int:
    """Exit 0 when every file would load, 3 when one would be quarantined, 2 for a missing file."""
    recorded = recorded_tables(cfg)
    reports = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            print(f"chute: error: {raw}: no such file", file=sys.stderr)
            return 2
        reports.append(preview(cfg, path, rows, recorded))
    if as_json:
        print(json.dumps(reports, indent=2, default=str))
    else:
        print("\n\n".join(render(r) for r in reports))
    return 3 if any(r["problems"] for r in reports) else 0
