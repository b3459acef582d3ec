"""Why each column got its type: the facts `chute inspect` prints and the console's details show."""

from __future__ import annotations

import polars as pl

from chute.core.formats.infer import explain_text
from chute.core.reader import Reader


def column_reasons(reader: Reader) -> dict[str, str]:
    """Per column: why it is typed, or why it stayed text ("leading zero at line 7 ('01234')"),
    plus the null tokens seen. Call after ``reader.plan()``; reads only what the reader holds
    (or, for a streamed file, the one text column again)."""
    out: dict[str, str] = {}
    if not reader.verdicts:  # typed formats (Parquet): the file's own types
        return {c: f"the file's type {t}" for c, t in reader.wire_schema.items()}
    for name, verdict in reader.verdicts.items():
        if verdict.kind != "text":
            why = verdict.why
            if verdict.tokens:
                why += "; NULL from " + ", ".join(repr(t) for t in verdict.tokens)
        else:
            why = explain_text(_text_column(reader, name), reader.null_values, reader.header_lines)
        out[name] = why
    return out


def _text_column(reader: Reader, name: str) -> pl.Series:
    frame = getattr(reader, "_frame", None)
    if frame is not None and frame.schema.get(name) == pl.String:
        return frame[name]
    scan = getattr(reader, "_scan", None)
    if scan is None:
        return pl.Series(name, [], dtype=pl.String)
    return scan().select(pl.col(name)).collect(engine="streaming")[name]
