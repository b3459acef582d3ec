"""A compressed file is inflated once, into an unlinked temporary file the readers parse by path
(issue 12: its bytes had been held in memory beside polars' own buffer of the same data, and
joined from their chunks, which doubled them for a moment). The guarantees stay: bounded by the
in-memory size, let go on a bomb or a full disk, a NUL byte still found, nothing left open."""

from __future__ import annotations

import errno
import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from chute.core.errors import InputError
from chute.core.formats import limits
from chute.core.formats.limits import check_limits
from chute.core.reader import Reader, hash_and_plan, open_source, reader_for

CSV = "id,amount,note\n" + "".join(f"{i},{i * 1.5},{'x' if i % 3 else ''}\n" for i in range(20_000))


def _open_fds() -> set[str]:
    return {os.readlink(f"/proc/self/fd/{n}") for n in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{n}")}


@pytest.mark.parametrize("pack", [gzip.compress, zstandard.ZstdCompressor().compress], ids=["gz", "zst"])
def test_the_content_is_an_unlinked_file_and_the_plan_reads_it_whole(tmp_path: Path, pack) -> None:
    path = tmp_path / "a.csv.x"
    path.write_bytes(pack(CSV.encode()))
    with open_source(path, "gzip" if pack is gzip.compress else "zstd") as src:
        check_limits(src)
        assert src.inflated is not None and src.inflated.size == len(CSV)
        assert os.fstat(src.inflated.file.fileno()).st_nlink == 0  # nothing on disk by a name
        assert not src.inflated.nul
        plan = hash_and_plan(src, reader_for(src, "csv", {}))
        assert plan.rows == 20_000
        fd = src.inflated.file.fileno()
    with pytest.raises(OSError):
        os.fstat(fd)  # closed with the source


def _child_growth(tmp_path: Path, body_mb: int) -> int:
    """RssAnon growth (MB) of a fresh process across check_limits on a gzip of ``body_mb`` MB."""
    line = b"12345,678.90,some text here,2026-01-01T00:00:00\n"
    (tmp_path / "big.csv.gz").write_bytes(gzip.compress(line * (body_mb * (1 << 20) // len(line)), 1))
    code = f"""
from chute.core.formats.limits import check_limits
from chute.core.reader import open_source
def anon():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon")) // 1024
src = open_source(__import__("pathlib").Path({str(tmp_path / "big.csv.gz")!r}), "gzip")
before = anon()
check_limits(src)
print(anon() - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return int(out.stdout.strip())


def test_the_inflated_bytes_are_not_held_in_memory(tmp_path: Path) -> None:
    """On the code before, the 96 MB of content stayed in the process (seen failing: +96 MB)."""
    growth = _child_growth(tmp_path, 96)
    assert growth < 24, f"inflating 96 MB left {growth} MB of anonymous memory in the process"


def test_past_the_in_memory_size_nothing_is_kept_and_nothing_left_open(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Reader, "IN_MEMORY_BYTES", 64 << 10)  # the content is ~300 KB
    monkeypatch.setattr(limits, "_CHUNK", 16 << 10)
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(CSV.encode()))
    before = _open_fds()
    with open_source(path, "gzip") as src:
        check_limits(src)
        assert src.inflated is None
        assert _open_fds() - before == {str(path)}
        assert hash_and_plan(src, reader_for(src, "csv", {})).rows == 20_000  # the readers inflate it


def test_a_bomb_is_refused_and_its_partial_content_let_go(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(limits, "RATIO_FLOOR", 1 << 20)
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n" + b"1,2\n" * (4 << 20), 9))  # 16 MiB from ~16 KB
    before = _open_fds()
    with open_source(path, "gzip") as src:
        with pytest.raises(InputError, match="zip bombs"):
            check_limits(src, max_ratio=10)
        assert src.inflated is None
        assert _open_fds() - before == {str(path)}  # the temporary file went with the refusal


def test_a_full_disk_lets_the_readers_inflate_the_file_themselves(tmp_path: Path, monkeypatch) -> None:
    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            pass

    monkeypatch.setattr(limits.tempfile, "TemporaryFile", lambda **kw: Full())
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(CSV.encode()))
    with open_source(path, "gzip") as src:
        check_limits(src)
        assert src.inflated is None
        reader = reader_for(src, "csv", {})
        assert hash_and_plan(src, reader).rows == 20_000
        assert sum(len(df) for _, df in reader.batches(7_000)) == 20_000


def test_a_nul_byte_is_still_found_in_an_inflated_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress((CSV + "5,1.0,bad\x00byte\n").encode()))
    with open_source(path, "gzip") as src:
        check_limits(src)
        assert src.inflated is not None and src.inflated.nul
        with pytest.raises(InputError, match="NUL"):
            hash_and_plan(src, reader_for(src, "csv", {}))
