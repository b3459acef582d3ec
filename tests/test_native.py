"""core/native.py: on the embedded engine ClickHouse reads a Parquet file itself. The values must
be the Arrow path's (issue 9: nothing changes on the way in) and the exactly-once protocol holds:
a resent native batch is dropped by its token, a crash after the insert landed resends it
natively, and a batch whose native insert may have landed is taken back before the Arrow path
sends the file."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chute.core import failpoints, native
from chute.core.config import Config
from chute.core.engine import Engine
from chute.core.errors import InputError
from chute.core.schema import Column
from chute.core.target import Target
from tests.conftest import drop_databases, make_config, query, run_chute, state_of
from tests.test_crash import kill_at

# -- fidelity: both paths, the same table --------------------------------------------------------

_NAMES = ["id", "a b", "x`y", 'q"t', "ünï", "select", "n0", "Mixed"]
_INT_KINDS = {pl.Int8: 8, pl.Int16: 16, pl.Int32: 32, pl.Int64: 64, pl.UInt8: -8, pl.UInt16: -16, pl.UInt32: -32,
              pl.UInt64: -64}


def _ints(dtype: type[pl.DataType]) -> st.SearchStrategy:
    bits = _INT_KINDS[dtype]
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if bits > 0 else (0, 2 ** -bits - 1)
    return st.integers(lo, hi)


_EPOCH = dt.datetime(1970, 1, 1)
_KINDS: dict[str, tuple[pl.DataType, st.SearchStrategy]] = {
    **{f"int{k.__name__}": (k(), _ints(k)) for k in _INT_KINDS},
    "f64": (pl.Float64(), st.floats(allow_nan=True, allow_infinity=True)),
    "f32": (pl.Float32(), st.floats(width=32, allow_nan=True, allow_infinity=True)),
    "bool": (pl.Boolean(), st.booleans()),
    "text": (pl.String(), st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)),
    "bytes": (pl.Binary(), st.binary(max_size=12)),
    "date": (pl.Date(), st.dates(dt.date(1900, 1, 1), dt.date(2299, 12, 31))),
    "ts_us": (pl.Datetime("us"), st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2262, 1, 1))),
    "ts_ms": (pl.Datetime("ms"), st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2262, 1, 1))),
    "ts_ns": (pl.Datetime("ns"), st.datetimes(dt.datetime(1678, 1, 1), dt.datetime(2262, 1, 1))),
    "ts_utc": (pl.Datetime("us", "UTC"), st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2262, 1, 1))),
    "ts_paris": (pl.Datetime("us", "Europe/Paris"), st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2200, 1, 1))),
    "dec9": (pl.Decimal(9, 2), st.decimals(-(10 ** 7) + 1, 10 ** 7 - 1, places=2)),
    "dec18": (pl.Decimal(18, 4), st.decimals(-(10 ** 14) + 1, 10 ** 14 - 1, places=4)),
    "dec38": (pl.Decimal(38, 10), st.decimals(-(10 ** 28) + 1, 10 ** 28 - 1, places=10)),
}


@st.composite
def frames(draw: st.DrawFn) -> tuple[pl.DataFrame, str]:
    """A frame of 1-6 columns of proven kinds (some with NULLs) and 1-40 rows, and a writer."""
    rows = draw(st.integers(1, 40))
    kinds = draw(st.lists(st.sampled_from(sorted(_KINDS)), min_size=1, max_size=6))
    names = draw(st.lists(st.sampled_from(_NAMES), min_size=len(kinds), max_size=len(kinds), unique=True))
    cols = {}
    for name, kind in zip(names, kinds, strict=True):
        dtype, values = _KINDS[kind]
        if draw(st.booleans()):
            values = st.none() | values
        data = draw(st.lists(values, min_size=rows, max_size=rows))
        if isinstance(dtype, pl.Datetime) and dtype.time_zone:
            series = pl.Series(name, data, dtype=pl.Datetime(dtype.time_unit)).dt.replace_time_zone(
                "UTC").dt.convert_time_zone(dtype.time_zone)
        else:
            series = pl.Series(name, data, dtype=dtype)
        cols[name] = series
    return pl.DataFrame(cols), draw(st.sampled_from(["polars", "pyarrow", "pyarrow-dict"]))


def _write(df: pl.DataFrame, path: Path, how: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "polars":
        df.write_parquet(path)
    else:
        pq.write_table(df.to_arrow(), path, use_dictionary=how == "pyarrow-dict", row_group_size=7)


def _load(cfg: Config) -> Engine:
    engine = Engine(cfg, once=True)
    engine.start()
    assert engine.wait_idle(timeout=120)
    return engine


def _contents(engine: Engine, table: str) -> tuple[list, bytes]:
    """(column names and types, every row as ClickHouse prints it, in file order; no _ingested_at)."""
    db = engine.cfg.database
    types = query(engine, "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}"
                          " ORDER BY position", db=db, t=table)
    text = engine.target.client().raw_query(
        f"SELECT * EXCEPT _ingested_at FROM `{db}`.`{table}` ORDER BY _source_row FORMAT TSVRaw")
    return types, bytes(text)


def _tokens(engine: Engine) -> list[str]:
    assert engine.ledger is not None
    return [r["token"] for r in engine.ledger._q("SELECT token FROM batches")]


def load_both(df: pl.DataFrame, how: str, chdb_path: Path) -> tuple[tuple, tuple, list[str]]:
    """The same file loaded natively and through Arrow (each its own database): both contents and
    the native side's tokens."""
    out = []
    cfgs = []
    try:
        for on in (True, False):
            tmp = Path(tempfile.mkdtemp(prefix="native-"))  # (a hypothesis example: no tmp_path; removed below)
            cfg = make_config(tmp, chdb_path, native_read=on)
            cfgs.append(cfg)
            _write(df, cfg.data_dir / "t" / "f.parquet", how)
            engine = _load(cfg)
            try:
                assert state_of(engine, "t/f.parquet") == "loaded", engine.ledger.current("t/f.parquet")
                out.append((_contents(engine, "t"), _tokens(engine)))
            finally:
                engine.stop()
    finally:
        drop_databases(cfgs)
        for cfg in cfgs:
            shutil.rmtree(cfg.data_dir.parent, ignore_errors=True)  # (each example left a directory in /tmp)
    return out[0][0], out[1][0], out[0][1]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(frames())
@example((pl.DataFrame({  # the edges: widest decimals, extreme integers and floats, NULLs in each
    "d": pl.Series([Decimal("9" * 28 + "." + "9" * 10), Decimal("-" + "9" * 28 + "." + "9" * 10), None],
                   dtype=pl.Decimal(38, 10)),
    "i": pl.Series([2 ** 63 - 1, -(2 ** 63), None], dtype=pl.Int64),
    "u": pl.Series([2 ** 64 - 1, 0, None], dtype=pl.UInt64),
    "f": pl.Series([float("nan"), -0.0, float("-inf")], dtype=pl.Float64),
    "t": pl.Series([dt.datetime(1900, 1, 1), dt.datetime(2262, 1, 1), None], dtype=pl.Datetime("ns")),
}), "pyarrow"))
def test_native_read_gives_the_arrow_paths_table(chdb_path: Path, case: tuple[pl.DataFrame, str]) -> None:
    df, how = case
    native_side, arrow_side, tokens = load_both(df, how, chdb_path)
    assert tokens and all(native.is_native(t) for t in tokens), tokens  # the native path did run
    assert native_side[0] == arrow_side[0]
    assert native_side[1] == arrow_side[1]


def test_negative_control_a_type_not_proven_is_caught(chdb_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parquet times (chute loads them as text ``HH:MM:SS.ffffff``) read natively come out
    otherwise: the comparison above sees it when the type is wrongly let through."""
    monkeypatch.setattr(native, "_PROVEN", (*native._PROVEN, pl.Time))
    monkeypatch.setattr(native, "_same_wire", lambda reader: True)
    monkeypatch.setattr(native, "_PROVEN_LOGICAL", native._PROVEN_LOGICAL | {"TIME"})
    df = pl.DataFrame({"id": [1, 2], "tm": [dt.time(1, 2, 3, 4), dt.time(23, 59, 59)]})
    native_side, arrow_side, tokens = load_both(df, "polars", chdb_path)
    assert tokens and all(native.is_native(t) for t in tokens)
    assert native_side[1] != arrow_side[1]


# -- the protocol ----------------------------------------------------------------------------------

ROWS = 5_000


def _parquet(path: Path, rows: int = ROWS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"id": range(rows), "name": [f"n{i}" for i in range(rows)]}).write_parquet(path)
    return path


def _insert(target: Target, path: Path, token: str) -> None:
    cols = [Column("id", "Int64"), Column("name", "String")]
    target.insert_file("t", str(path), "Parquet", cols, "t/a.parquet", "a" * 64, token,
                       native.Settings(ROWS).as_dict())


def _count(target: Target) -> tuple[int, int]:
    rows = target._call("query", f"SELECT count(), uniqExact(_source_row) FROM `{target.database}`.t").result_rows
    return int(rows[0][0]), int(rows[0][1])


def test_a_resent_native_batch_is_dropped_by_its_token(target: Target, tmp_path: Path) -> None:
    path = _parquet(tmp_path / "a.parquet")
    _insert(target, path, "sha:5000:0:file")
    _insert(target, path, "sha:5000:0:file")  # a resend after a lost answer
    assert _count(target) == (ROWS, ROWS)
    _insert(target, path, "sha:5000:1:file")  # another token is another batch
    assert _count(target) == (2 * ROWS, ROWS)


def test_negative_control_without_dedup_the_native_resend_is_a_duplicate(target: Target, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(failpoints._spec, "no_dedup", "1")
    path = _parquet(tmp_path / "a.parquet")
    _insert(target, path, "sha:5000:0:file")
    _insert(target, path, "sha:5000:0:file")
    assert _count(target) == (2 * ROWS, ROWS)


def test_a_native_batch_is_one_block_one_part(target: Target, tmp_path: Path) -> None:
    """One insert of several row groups is one block (so one token covers it whole)."""
    path = tmp_path / "a.parquet"
    pq.write_table(pl.DataFrame({"id": range(ROWS), "name": ["x"] * ROWS}).to_arrow(), path, row_group_size=700)
    _insert(target, path, "sha:5000:0:file")
    parts = target._call("query", "SELECT count() FROM system.parts WHERE database = {db:String} AND table = 't'"
                                  " AND active", parameters={"db": target.database}).result_rows
    assert parts == [(1,)]


def _ledger(state: Path) -> list[tuple]:
    db = sqlite3.connect(state / "ledger.sqlite3")
    try:
        return db.execute("SELECT f.state, f.generation, b.generation, b.token, b.state FROM files f"
                          " LEFT JOIN batches b ON b.file_id = f.id ORDER BY b.generation").fetchall()
    finally:
        db.close()


def _events(state: Path) -> str:
    db = sqlite3.connect(state / "ledger.sqlite3")
    try:
        return json.dumps(db.execute("SELECT * FROM events").fetchall())
    finally:
        db.close()


def _table_counts(engine_dir: Path) -> tuple[int, int]:
    from tests.conftest import engine_query

    rows = engine_query(engine_dir, "SELECT count(), uniqExact(_source_sha256, _source_row) FROM default.t")
    return int(rows[0][0]), int(rows[0][1])


def _crash_after_native_insert(tmp_path: Path, step: str = "insert_acked") -> list[str]:
    """Kill chute at ``step`` of its one native batch (default: ClickHouse has the rows, the ledger no ack)."""
    _parquet(tmp_path / "data" / "t" / "a.parquet")
    args = ["--no-ui", "--once", str(tmp_path / "data"), "--state-dir", str(tmp_path / "state"), "--clickhouse",
            f"chdb://{tmp_path / 'ch'}", "--settle-seconds", "0.1", "--log-format", "json"]
    kill_at(args, step, 1, tmp_path / "failpoint.log")
    (state, gen, bgen, token, bstate), = _ledger(tmp_path / "state")
    assert (gen, bstate) == (0, "done" if step == "batch_done" else "intent") and native.is_native(token)
    assert _table_counts(tmp_path / "ch") == ((0, 0) if step == "batch_intent" else (ROWS, ROWS))
    return args


@pytest.mark.parametrize("step", ["batch_intent", "insert_acked", "batch_done"])
def test_a_crash_at_each_step_of_a_native_batch_loads_it_once(tmp_path: Path, step: str) -> None:
    """Intent written, nothing sent / sent, not acknowledged / acknowledged: the restart finishes
    under the same generation with one copy of every row."""
    args = _crash_after_native_insert(tmp_path, step)
    done = run_chute(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    (state, gen, bgen, token, bstate), = _ledger(tmp_path / "state")
    assert (state, gen, bstate) == ("loaded", 0, "done") and native.is_native(token)
    assert _table_counts(tmp_path / "ch") == (ROWS, ROWS)


def test_a_crash_after_the_native_insert_resends_it_natively_and_it_is_dropped(tmp_path: Path) -> None:
    args = _crash_after_native_insert(tmp_path)
    done = run_chute(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    (state, gen, bgen, token, bstate), = _ledger(tmp_path / "state")
    assert (state, gen, bstate) == ("loaded", 0, "done") and native.is_native(token)  # no take-back needed
    assert _table_counts(tmp_path / "ch") == (ROWS, ROWS)
    assert "verification failed" not in _events(tmp_path / "state")


def test_negative_control_without_dedup_the_resend_after_a_crash_is_caught(tmp_path: Path) -> None:
    """The same crash, the restart without deduplication: the resend lands twice and only count()
    verification saves the table (a new generation); with tokens (above) it never comes to that."""
    args = _crash_after_native_insert(tmp_path)
    done = run_chute(*args, env={"CHUTE_FAILPOINTS": "no_dedup"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"holds {2 * ROWS} rows of this file, expected {ROWS}" in _events(tmp_path / "state")
    assert _ledger(tmp_path / "state")[-1][:2] == ("loaded", 1)


def test_a_native_intent_is_taken_back_before_the_arrow_path_sends_the_file(tmp_path: Path) -> None:
    """Native read switched off after a crash: the Arrow path does not share the native token, so
    the rows the native insert may have landed go first (a new generation), then Arrow loads it."""
    args = _crash_after_native_insert(tmp_path)
    done = run_chute(*args, env={"CHUTE_NATIVE_READ": "false"})
    assert done.returncode == 0, done.stderr[-2000:]
    ledger = _ledger(tmp_path / "state")
    assert ledger[-1][:2] == ("loaded", 1) and not native.is_native(ledger[-1][3]), ledger
    assert _table_counts(tmp_path / "ch") == (ROWS, ROWS)
    assert "verification failed" not in _events(tmp_path / "state")


def test_a_native_read_clickhouse_refuses_goes_through_arrow(engine_factory: Callable[..., Engine], cfg: Config,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise InputError("ClickHouse rejected the data: (a test)")

    monkeypatch.setattr(Target, "insert_file", refuse)
    _parquet(cfg.data_dir / "t" / "a.parquet")
    engine = engine_factory(cfg=cfg, once=True)
    assert engine.wait_idle(timeout=120)
    assert state_of(engine, "t/a.parquet") == "loaded"
    assert query(engine, f"SELECT count(), uniqExact(_source_row) FROM `{cfg.database}`.t") == [(ROWS, ROWS)]
    assert not any(native.is_native(t) for t in _tokens(engine)[-1:])


def test_what_native_does_not_take(engine_factory: Callable[..., Engine], cfg: Config) -> None:
    """A column of a type whose native read is not proven (a time) takes the Arrow path."""
    data = cfg.data_dir / "t"
    data.mkdir(parents=True)
    pl.DataFrame({"id": [1], "tm": [dt.time(1, 2, 3)]}).write_parquet(data / "time.parquet")
    engine = engine_factory(cfg=cfg, once=True)
    assert engine.wait_idle(timeout=120)
    assert state_of(engine, "t/time.parquet") == "loaded"
    assert not any(native.is_native(t) for t in _tokens(engine))


def test_a_corrupt_parquet_planned_from_its_footer_is_still_a_quarantine(engine_factory: Callable[..., Engine],
                                                                         cfg: Config) -> None:
    """The footer plan does not read the pages: ClickHouse's native read refuses them, and before
    the Arrow path sends anything polars reads every value, as a scanned plan did (tests/fuzz.py's
    panicking file, unwrapped; it came out as a verification failure to retry before ``confirm``)."""
    import zstandard

    corrupt = zstandard.ZstdDecompressor().decompress((Path(__file__).parent / "data" / "panic.parquet.zst")
                                                      .read_bytes(), max_output_size=1 << 24)
    (cfg.data_dir / "p.parquet").write_bytes(corrupt)
    engine = engine_factory(cfg=cfg, once=True)
    assert engine.wait_idle(timeout=120)
    row = engine.ledger.current("p.parquet")
    assert row.state == "quarantined" and "corrupt" in row.last_error, (row.state, row.last_error)


def test_a_footer_plan_equals_the_scanned_plan(tmp_path: Path, target: Target) -> None:
    """Rows and NULLs from a true footer's statistics (as ClickHouse's footer reader takes them) are
    the scan's; nested columns are not judged by the footer (tests/test_native_hostile.py: a footer
    that lies)."""
    from chute.core.reader import open_source, reader_for

    flat = pl.DataFrame({"a": [1, None, 3] * 50, "b": ["x", None, None] * 50, "c": [0.5, 1.5, None] * 50})
    nested = flat.with_columns(pl.struct("a", "b").alias("s"), pl.concat_list("a").alias("l"))
    for name, df, footer in (("flat", flat, True), ("nested", nested, False)):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(df.to_arrow(), path, row_group_size=40)
        plans = []
        for ok in (True, False):
            with open_source(path, None) as src:
                reader = reader_for(src, "parquet")
                reader.footer = target.parquet_footer(str(path)) if ok else None
                plans.append(reader.plan())
                assert reader.footer_true == (ok and footer)
        assert plans[0] == plans[1]


def test_the_source_index_is_a_bloom_filter_that_verification_uses(target: Target, tmp_path: Path) -> None:
    """Tables chute creates index ``_source_sha256`` with a bloom filter (the minmax index cost ~0.5 s
    of CPU per 1M rows inserted on this LowCardinality column), and a count by hash uses it."""
    ddl = target.table_settings("t")
    assert "INDEX _chute_src _source_sha256 TYPE bloom_filter GRANULARITY 1" in ddl, ddl
    _insert(target, _parquet(tmp_path / "a.parquet"), "sha:5000:0:file")
    plan = target._call("query", f"EXPLAIN indexes = 1 SELECT count() FROM `{target.database}`.t WHERE"
                                 " _source_sha256 = {sha:String} AND _source_path = 't/a.parquet'",
                        parameters={"sha": "b" * 64}).result_rows
    text = "\n".join(str(r[0]) for r in plan)
    assert "_chute_src" in text and "Granules: 0/" in text, text


def test_native_files_load_side_by_side_in_a_daemon(engine_factory: Callable[..., Engine], cfg: Config) -> None:
    """Two workers each read a file natively into one table at once (each its own connection and token)."""
    import dataclasses

    from tests.conftest import wait_for

    for i in range(6):
        pl.DataFrame({"id": range(i * ROWS, (i + 1) * ROWS), "name": [f"f{i}"] * ROWS}).write_parquet(
            _parquet(cfg.data_dir / "t" / f"p{i}.parquet").with_suffix(".tmp"))
    for i in range(6):
        (cfg.data_dir / "t" / f"p{i}.tmp").rename(cfg.data_dir / "t" / f"p{i}.parquet")
    engine = engine_factory(cfg=dataclasses.replace(cfg, workers=2, group_max_files=1))  # (small files: groups)
    wait_for(lambda: all(state_of(engine, f"t/p{i}.parquet") == "loaded" for i in range(6)), timeout=120,
             what="six files loaded")
    assert query(engine, f"SELECT count(), uniqExact(id), uniqExact(_source_path, _source_row) FROM "
                         f"`{cfg.database}`.t") == [(6 * ROWS, 6 * ROWS, 6 * ROWS)]
    assert len(_tokens(engine)) == 6 and all(native.is_native(t) for t in _tokens(engine))
