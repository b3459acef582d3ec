"""A zstd file that starts with a skippable frame is zstd (RFC 8878 §3.1.2; `zstd -d` reads it): pzstd
writes one before every frame, seekable-zstd and others carry their index in one. It was refused
as 'name says zstd but the content is not zstd-compressed (bad magic bytes)' (review round 9, on
5b20adb too)."""

from __future__ import annotations

import struct
from pathlib import Path

import polars as pl
import pytest
import zstandard

from chute.core.errors import InputError
from chute.core.formats import delimited, limits, pieces
from chute.core.formats.limits import check_limits
from chute.core.reader import open_source, reader_for


def _skip(n: int) -> bytes:
    return struct.pack("<II", 0x184D2A50 + n, 4) + b"meta"


def _body(first: int, rows: int, header: bool) -> bytes:
    return (("id,note\n" if header else "") + "".join(f"{i},n{i % 7}\n" for i in range(first, first + rows))).encode()


@pytest.mark.parametrize("path_taken", ["in memory", "spilled", "streamed"])
def test_skippable_frames_are_read_past(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path_taken: str) -> None:
    if path_taken == "spilled":
        monkeypatch.setattr(limits, "_CHUNK", 64 << 10)
        monkeypatch.setattr(pieces, "PIECE_BYTES", 64 << 10)
        monkeypatch.setattr(delimited, "SPILL_PIECE_BYTES", 96 << 10)
        monkeypatch.setattr(delimited, "SPILL_COMPRESSED_BYTES", 64 << 10)
    pack = zstandard.ZstdCompressor().compress
    path = tmp_path / "a.csv.zst"
    path.write_bytes(_skip(0) + pack(_body(0, 20_000, True)) + _skip(15) + pack(_body(20_000, 100, False)) + _skip(3))
    with open_source(path, "zstd") as src:
        check_limits(src)
        reader = reader_for(src, "csv", {})
        if path_taken == "streamed":
            reader.IN_MEMORY_BYTES = 0
        assert reader.plan().rows == 20_100
        src.drop_inflated()
        frame = pl.concat([df for _, df in reader.batches(7_000)])
        assert path_taken != "spilled" or reader._spill is not None  # type: ignore[attr-defined]
        assert reader.holds_frame == (path_taken == "in memory")
    assert frame["id"].cast(pl.Int64).to_list() == list(range(20_100))


def test_other_bytes_are_still_refused_by_their_magic(tmp_path: Path) -> None:
    """(Negative control: four bytes that are no zstd magic at all.)"""
    path = tmp_path / "a.csv.zst"
    path.write_bytes(b"\x51\x2a\x4d\x19" + b"id\n1\n")
    with pytest.raises(InputError, match="bad magic bytes"):
        open_source(path, "zstd")
