"""Formats and edge-case CSVs, checked against an independent parse (Python's csv/json modules)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import polars as pl
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from chute.core.engine import Engine
from chute.core.formats.delimited import sure_delimiter
from chute.core.schema import quote_ident
from chute.core.states import State
from tests.conftest import make_config, query, state_of, wait_for


def independent(raw: bytes, delimiter: str = ",", header: bool = True) -> tuple[list[str], list[list[str]]]:
    text = raw.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if header:
        return rows[0], rows[1:]
    return [f"column_{i + 1}" for i in range(len(rows[0]))], rows


def as_text(engine: Engine, table: str, columns: list[str], path: str) -> list[list[str]]:
    """Every value as ClickHouse renders it in CSV-ish text: NULL -> ''."""
    cols = ", ".join(f"ifNull(toString({quote_ident(c)}), '')" for c in columns)
    rows = query(engine, f"SELECT {cols} FROM `{engine.cfg.database}`.`{table}` WHERE _source_path = {{p:String}}"
                         " ORDER BY _source_row", p=path)
    return [list(r) for r in rows]


def load_all(engine_factory, tmp_path: Path, chdb_path: Path, files: dict[str, bytes], **overrides) -> Engine:
    cfg = make_config(tmp_path, chdb_path, **overrides)
    for name, body in files.items():
        (cfg.data_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (cfg.data_dir / name).write_bytes(body)
    engine = engine_factory(cfg)
    wait_for(engine.idle, what="idle")
    return engine


EDGE = {
    "quoted.csv": b'id,text\n1,"a, b"\n2,"multi\nline"\n3,"he said ""hi"""\n4,\n5,"  spaced  "\n',
    "crlf_bom.csv": b'\xef\xbb\xbfid,name\r\n1,"x,y"\r\n2,caf\xc3\xa9 \xe2\x9c\x93\r\n3,""\r\n',
    "semi.csv": b"id;price;label\n1;2,5;a\n2;3,75;b\n",
    "tabs.tsv": b"id\tname\tnote\n1\tx\ty, z\n2\ty\t\n",
    "pipes.csv": b"a|b\n1|x\n2|y\n",
    "noheader.csv": b"1,2.5,3\n4,5.5,6\n",
    "header_only.csv": b"a,b,c\n",
    "names.csv": b'id,,id,"we""ird `name`"\n1,2,3,4\n',
}


def test_edge_case_csvs_match_an_independent_parse(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    engine = load_all(engine_factory, tmp_path, chdb_path, EDGE)
    for name, raw in EDGE.items():
        row = engine.ledger.current(name)
        assert row.state == State.LOADED, (name, row.state, row.last_error)
        delimiter = {"semi.csv": ";", "tabs.tsv": "\t", "pipes.csv": "|"}.get(name, ",")
        header, rows = independent(raw, delimiter, header=name != "noheader.csv")
        if name == "names.csv":
            header = ["id", "column_2", "id_2", 'we"ird `name`']  # empty and repeated names, made unique
        got = as_text(engine, row.table_name, header, name)
        want = [[v.strip() if v.strip() != v and not v.startswith("  ") else v for v in r] for r in rows]
        # Numbers print the ClickHouse way: compare numerically where the text differs.
        assert len(got) == len(want), name
        for g, w in zip(got, want, strict=True):
            for gv, wv in zip(g, w, strict=True):
                if gv != wv:
                    assert float(gv) == float(wv.replace(",", ".")), (name, g, w)
        assert row.rows == len(rows)


def test_header_only_creates_the_table_with_no_rows(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    engine = load_all(engine_factory, tmp_path, chdb_path, {"header_only.csv": b"a,b,c\n"})
    assert state_of(engine, "header_only.csv") == State.LOADED
    cols = [r[0] for r in query(engine, f"DESCRIBE `{engine.cfg.database}`.header_only")]
    assert cols[:3] == ["a", "b", "c"]


def test_types_inferred(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    lines = ["i,f,b,d,ts,tz,s,lc,maybe"]
    for k in range(300):
        maybe = "" if k % 7 == 0 else str(k)
        lines.append(f"{k},{k / 4},{'true' if k % 2 else 'false'},2026-11-{1 + k % 28:02d},"
                     f"2026-11-28 10:{k % 60:02d}:00,2026-11-28T10:00:00+02:00,text {k},{'ab'[k % 2]},{maybe}")
    engine = load_all(engine_factory, tmp_path, chdb_path, {"typed.csv": ("\n".join(lines) + "\n").encode()})
    assert state_of(engine, "typed.csv") == State.LOADED
    types = dict(query(engine, "SELECT name, type FROM system.columns WHERE database = {d:String} "
                               "AND table = 'typed'", d=engine.cfg.database))
    assert types["i"] == "Int64" and types["f"] == "Float64" and types["b"] == "Bool"
    assert types["d"] == "Date32" and types["ts"].startswith("DateTime64")
    assert types["tz"] == "DateTime64(6, 'UTC')"
    assert types["s"] == "String" and types["lc"] == "LowCardinality(String)"
    assert types["maybe"] == "Nullable(Int64)"  # Nullable only where nulls occur
    utc = query(engine, f"SELECT toString(tz) FROM `{engine.cfg.database}`.typed LIMIT 1")[0][0]
    assert utc.startswith("2026-11-28 08:00:00")  # the +02:00 offset was honoured


def test_compressed_variants_load_the_same(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    body = b"id,v\n" + b"".join(f"{i},{i * i}\n".encode() for i in range(1000))
    files = {"plain/x.csv": body, "gz/x.csv.gz": gzip.compress(body),
             "zst/x.csv.zst": zstandard.ZstdCompressor().compress(body)}
    engine = load_all(engine_factory, tmp_path, chdb_path, files)
    for rel in files:
        assert state_of(engine, rel) == State.LOADED, rel
        table = rel.split("/")[0]
        assert query(engine, f"SELECT count(), sum(v) FROM `{engine.cfg.database}`.{table}") == \
            [(1000, sum(i * i for i in range(1000)))]


def test_ndjson_and_parquet(engine_factory, tmp_path: Path, chdb_path: Path) -> None:
    records = [{"id": i, "name": f"n{i}", "tags": ["a", "b"][: i % 3], "meta": {"k": i}, "when": "2026-11-28"}
               for i in range(50)]
    ndjson = "\n".join(json.dumps(r) for r in records).encode() + b"\n"
    frame = pl.DataFrame({"id": list(range(40)), "score": [i / 3 for i in range(40)],
                          "label": [None if i % 4 == 0 else f"l{i}" for i in range(40)]})
    buf = io.BytesIO()
    frame.write_parquet(buf)
    files = {"events.ndjson": ndjson, "events2.jsonl.gz": gzip.compress(ndjson), "scores.parquet": buf.getvalue(),
             "scores2.parquet.zst": zstandard.ZstdCompressor().compress(buf.getvalue())}
    engine = load_all(engine_factory, tmp_path, chdb_path, files)
    for rel in files:
        row = engine.ledger.current(rel)
        assert row.state in (State.LOADED, State.DUPLICATE), (rel, row.state, row.last_error)
    db = engine.cfg.database
    got = query(engine, f"SELECT id, name, tags, meta, toString(when) FROM `{db}`.events "
                        "WHERE _source_path = 'events.ndjson' ORDER BY id")
    assert [(r[0], r[1], list(r[2]), json.loads(r[3]), r[4]) for r in got] == \
        [(r["id"], r["name"], r["tags"], r["meta"], "2026-11-28") for r in records]
    scores = query(engine, f"SELECT id, score, label FROM `{db}`.scores WHERE _source_path = 'scores.parquet' "
                           "ORDER BY id")
    assert scores == list(frame.iter_rows())


def test_streaming_path_for_large_files(engine_factory, tmp_path: Path, chdb_path: Path, monkeypatch) -> None:
    """Files too big to parse in one go stream in batches (two passes); same values either way."""
    from chute.core.reader import Reader

    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 0)
    body = b"id,name,when\n" + b"".join(f'{i},"n, {i}",2026-11-{1 + i % 28:02d}\n'.encode() for i in range(5000))
    files = {"stream.csv": body, "stream2.csv.gz": gzip.compress(body + b"5000,last,2026-11-01\n"),
             "stream3.ndjson": b"".join(json.dumps({"id": i, "v": f"x{i}"}).encode() + b"\n" for i in range(3000))}
    engine = load_all(engine_factory, tmp_path, chdb_path, files, batch_rows=700)
    for rel in files:
        assert state_of(engine, rel) == State.LOADED, (rel, engine.ledger.current(rel).last_error)
    db = engine.cfg.database
    assert query(engine, f"SELECT count(), sum(id), uniqExact(_source_row) FROM `{db}`.stream") == \
        [(5000, sum(range(5000)), 5000)]
    assert query(engine, f"SELECT name FROM `{db}`.stream WHERE id = 42") == [("n, 42",)]
    assert query(engine, f"SELECT count() FROM `{db}`.stream2")[0][0] == 5001
    assert query(engine, f"SELECT count(), max(v) FROM `{db}`.stream3") == [(3000, "x999")]


_FIELDS = ["a", "b c", "1", "2.5", "", '"x, y"', '"q;r"', '"t\tu"', '"p|q"', "it's", '"say ""hi"""']


@settings(max_examples=400, deadline=None, database=None)
@given(st.sampled_from(",;\t|"), st.integers(1, 5), st.lists(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=6),
                                                           min_size=0, max_size=14), st.booleans())
def test_sure_delimiter_agrees_with_sniffer(delim: str, width: int, rows: list[list[str]], crlf: bool) -> None:
    """The cheap rule (no csv.Sniffer for most files) answers only what Sniffer would; elsewhere it
    defers (None) and Sniffer decides."""
    header = delim.join(f"h{i}" for i in range(width))
    text = ("\r\n" if crlf else "\n").join([header, *(delim.join(r) for r in rows)]) + "\n"
    got = sure_delimiter(text)
    if got is not None:
        try:
            want = csv.Sniffer().sniff(text, delimiters=",\t;|").delimiter
        except csv.Error:
            want = ","
        assert got == want, text


def test_sure_delimiter_defers_when_in_doubt() -> None:
    assert sure_delimiter("a;b\n1;2\n") == ";"
    assert sure_delimiter('a,b\n1,"x, y"\n') == ","  # only commas: Sniffer answers "," or fails (",")
    assert sure_delimiter("notes; misc\nfree text\n") is None  # inconsistent: Sniffer decides
    assert sure_delimiter("a,b;c\n1,2;3\n") is None  # two candidates


_EDGE_FILES = {
    "header only": b"a,b\n", "no newline": b"a,b", "blank after header": b"a,b\n\n", "BOM": b"\xef\xbb\xbfa,b\n1,2\n",
    "BOM, no header": b"\xef\xbb\xbf1,2\n3,4\n", "one column": b"x\n1\n\n2\n", "blank lines": b"a,b\n1,2\n\n3,4\n",
    "short row": b"a,b\n1,2\n3\n", "long row": b"a,b\n1,2,3\n", "open quote": b'a,b\n1,"x\n',
    "CRLF": b"a,b\r\n1,2\r\n,\r\n", "tokens": b"a,b\n1,NA\nNA,2\n", "nanoseconds": b"t\n2020-01-01 00:00:00.1234567\n",
    "empty fields": b"a,b\n,\n,\n", "NUL": b"a,b\n1,\x002\n", "latin-1": b"a,b\n1,\xe9\n",
    "semicolons": b"a;b\n1;2,5\n", "blank": b"   \n",
    "many rows": b"n,s\n" + b"".join(b"%d,v%d\n" % (i, i % 7) for i in range(150)),
}


def _planned_facts(path: Path, small: bool, monkeypatch) -> tuple:
    from chute.core.errors import InputError
    from chute.core.formats.delimited import CsvReader
    from chute.core.reader import hash_and_plan, open_source, reader_for

    with monkeypatch.context() as m:
        if not small:
            m.setattr(CsvReader, "_plan_small", lambda self, head: None)
        try:
            with open_source(path, None) as src:
                r = reader_for(src, "csv", {})
                plan = hash_and_plan(src, r)
                check = r.pending_check() if r.pending_check else None
                if check is not None:  # (found beside the inserts, or by the plan itself: the same refusal)
                    return ("error", str(check))
                return (plan.schema, plan.rows, plan.null_counts, plan.distinct_ratio, r.verdicts, str(check),
                        [b.to_dicts() for _, b in r.batches(1000)])
        except InputError as exc:
            return ("error", str(exc))


def test_small_file_path_plans_like_the_general_path(tmp_path: Path, monkeypatch) -> None:
    """A file within the 1 MiB head is parsed once (CsvReader._plan_small): the same plan, verdicts,
    errors and batches as the general path (sample, then a full read) on awkward files."""
    for name, data in _EDGE_FILES.items():
        path = tmp_path / "f.csv"
        path.write_bytes(data)
        assert _planned_facts(path, True, monkeypatch) == _planned_facts(path, False, monkeypatch), name
