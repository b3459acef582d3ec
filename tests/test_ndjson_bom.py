"""An NDJSON file starting with a UTF-8 byte-order mark (PowerShell's `Out-File -Encoding utf8`
writes one): ClickHouse's own JSONEachRow skips the mark, chute quarantined the file ("save it
without one"). Now every pass parses a copy without the mark (core/formats/unmarked.py), in
memory and streamed, plain and compressed, with the same values and line numbers as the file
without it; no room for the copy is a full disk (intake pauses), not the file's fault."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import polars as pl
import pytest
import zstandard

from chute.core import alerts, resources
from chute.core.errors import InputError
from chute.core.formats import unmarked
from chute.core.reader import open_source, reader_for
from chute.core.states import State
from tests.conftest import query, state_of, wait_for

BOM = b"\xef\xbb\xbf"
# (a number in a text column loads as the file writes it: read from the raw lines, ndjson_raw)
LINES = [b'{"id":%d,"s":"x%d","v":%d.50,"o":{"k":[1,2]}}' % (i, i, i) for i in range(40)] + [
    b'{"id":40,"s":1.50,"v":1e3,"o":"t"}']
BODY = b"\n".join(LINES) + b"\n"
CODECS = {"plain": (None, lambda b: b), "gzip": ("gzip", gzip.compress),
          "zstd": ("zstd", lambda b: zstandard.ZstdCompressor().compress(b))}


def _read(path: Path, compression: str | None, in_memory: bool) -> tuple[pl.Schema, pl.DataFrame]:
    with open_source(path, compression) as src:
        reader = reader_for(src, "ndjson", {})
        if not in_memory:
            reader.IN_MEMORY_BYTES = 0
        plan = reader.plan()
        frame = pl.concat([df for _, df in reader.batches(7)])
    return plan.schema, frame


@pytest.mark.parametrize("in_memory", [True, False], ids=["in_memory", "streamed"])
@pytest.mark.parametrize("codec", sorted(CODECS))
def test_a_marked_file_reads_as_the_same_file_without_its_mark(tmp_path: Path, codec: str, in_memory: bool) -> None:
    compression, pack = CODECS[codec]
    marked, plain = tmp_path / "marked.ndjson", tmp_path / "plain.ndjson"
    marked.write_bytes(pack(BOM + BODY))
    plain.write_bytes(pack(BODY))
    schema, frame = _read(marked, compression, in_memory)
    want_schema, want = _read(plain, compression, in_memory)
    assert schema == want_schema
    assert frame.equals(want)
    assert frame.height == len(LINES) and frame["s"][-1] == "1.50"  # (as written, from the raw lines)


def test_a_bad_line_is_named_by_its_line_in_a_marked_file(tmp_path: Path) -> None:
    path = tmp_path / "a.ndjson"
    path.write_bytes(BOM + b'{"a":1}\n{"a":2}\n{"a":\n')
    with pytest.raises(InputError) as err, open_source(path, None) as src:
        reader_for(src, "ndjson", {}).plan()
    assert err.value.line == 3, err.value


def test_no_room_for_the_copy_is_a_full_disk_not_the_files_fault(tmp_path: Path, monkeypatch) -> None:
    """No room on the temporary directory's disk says nothing about the file: the plan raises the
    disk-full error the loader pauses on (core/resources.py), not a reason to quarantine (seen
    failing: InputError "... has no room for a copy without it")."""
    class Full:
        total, used, free = 100 << 30, 100 << 30, 1 << 20

    monkeypatch.setattr(unmarked.shutil, "disk_usage", lambda _where: Full)
    path = tmp_path / "a.ndjson"
    path.write_bytes(BOM + b'{"a":1}\n{"a":2}\n')
    with pytest.raises(OSError) as err, open_source(path, None) as src:
        reader_for(src, "ndjson", {}).plan()
    assert not isinstance(err.value, InputError)
    assert resources.full_kind(err.value) == resources.TEMP
    assert "byte-order mark" in str(err.value) and "temporary directory" in str(err.value)


def test_no_room_for_the_copy_pauses_intake_and_the_file_loads_when_space_returns(
        engine_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon: the marked file is not quarantined but waits (queued, no attempt spent) while
    intake pauses with one alert; freeing space lets it load, with no restart."""
    import shutil
    import tempfile

    real = shutil.disk_usage
    full = {"now": True}

    class Full:
        total, used, free = 100 << 30, 100 << 30, 1 << 20

    def usage(where: object) -> object:
        return Full if full["now"] and str(where) == tempfile.gettempdir() else real(where)  # type: ignore[arg-type]

    monkeypatch.setattr(shutil, "disk_usage", usage)
    engine = engine_factory()
    (engine.cfg.data_dir / "events.ndjson").write_bytes(BOM + BODY)
    wait_for(lambda: engine.resources.fault == resources.TEMP, what="intake paused on the temporary directory")
    row = engine.ledger.current("events.ndjson")
    assert row.state in (State.QUEUED, State.LOADING), (row.state, row.last_error)
    assert row.attempts == 0
    assert any(a.name == "temp_dir_full" for a in alerts.with_resource_fault([], engine))
    full["now"] = False
    wait_for(lambda: state_of(engine, "events.ndjson") == "loaded", what="loaded once space returned")
    assert engine.resources.fault is None
    assert query(engine, f"SELECT count() FROM `{engine.cfg.database}`.events") == [(len(LINES),)]


def test_a_marked_file_loads_once_with_its_own_hash(engine_factory) -> None:
    engine = engine_factory()
    (engine.cfg.data_dir / "events.ndjson").write_bytes(BOM + BODY)
    wait_for(lambda: state_of(engine, "events.ndjson") == "loaded", what="the marked file loaded")
    sha = hashlib.sha256(BOM + BODY).hexdigest()  # (the file's bytes, mark and all)
    assert query(engine, f"SELECT count(), countDistinct(id), min(_source_row), max(_source_row), "
                         f"any(_source_sha256) FROM `{engine.cfg.database}`.events") == [
        (len(LINES), len(LINES), 1, len(LINES), sha)]
    assert engine.ledger.current("events.ndjson").state == State.LOADED


def test_a_copy_bigger_than_the_whole_temporary_disk_is_refused_not_a_pause_for_ever(
        engine_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No room that space returning could ever make (the copy needs more than the temporary
    directory's whole disk, its reserve kept) is no pause: paused, intake waited for good, the
    daemon loaded nothing more and `--once` never ended (seen with a 10 MB file and an 8 MiB
    TMPDIR). The file is refused with that reason and line 1; the daemon goes on."""
    import shutil
    import tempfile

    real = shutil.disk_usage

    class Small:
        total, used, free = 1 << 20, 0, 1 << 20

    def usage(where: object) -> object:
        return Small if str(where) == tempfile.gettempdir() else real(where)  # type: ignore[arg-type]

    monkeypatch.setattr(shutil, "disk_usage", usage)
    big = BOM + BODY * (2 * (1 << 20) // len(BODY))
    path = tmp_path / "a.ndjson"
    path.write_bytes(big)
    with pytest.raises(InputError, match="byte-order mark .* temporary directory's disk") as err, \
            open_source(path, None) as src:
        reader_for(src, "ndjson", {}).plan()
    assert err.value.line == 1
    engine = engine_factory()
    (engine.cfg.data_dir / "big.ndjson").write_bytes(big)
    (engine.cfg.data_dir / "fine.ndjson").write_bytes(BODY)
    wait_for(lambda: state_of(engine, "big.ndjson") == "quarantined" and state_of(engine, "fine.ndjson") == "loaded",
             what="the big one refused, the other loaded")
    assert engine.resources.fault is None
