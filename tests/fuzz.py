"""Fuzz run for `make chaos` (not `make test`): mutated and hostile files through the real engine.

    python -m tests.fuzz [--cases 1000] [--seed 1] [--keep DIR]

Builds --cases files from good seeds (CSV, TSV, NDJSON, Parquet; plain, gz, zst) by deterministic
mutations (bit flips, truncation, spliced junk, NUL bytes, stray quotes, ragged rows, deep
nesting, huge fields, bombs), feeds them to one in-process engine, and checks that every file
ends in a final state (loaded, duplicate, quarantined, held) with a reason where it was refused,
that none was retried as "unexpected", and that nothing raised a traceback out of the engine.
Prints the count per final state; exit 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import io
import json
import random
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

import polars as pl
import zstandard

FINAL = {"loaded", "duplicate", "quarantined", "held"}


def seeds() -> dict[str, bytes]:
    rows = [{"id": i, "zip": f"{i:05d}", "amount": i / 4, "name": f"n, \"{i}\"", "when": f"2026-11-{1 + i % 28:02d}",
             "ok": i % 2 == 0, "note": None if i % 5 == 0 else "NA"} for i in range(60)]
    frame = pl.DataFrame(rows)
    csv, tsv, pq = io.BytesIO(), io.BytesIO(), io.BytesIO()
    frame.write_csv(csv)
    frame.write_csv(tsv, separator="\t")
    frame.write_parquet(pq)
    ndjson = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    return {".csv": csv.getvalue(), ".tsv": tsv.getvalue(), ".ndjson": ndjson, ".parquet": pq.getvalue()}


def _bomb(rng: random.Random) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    piece = rng.choice([b"\x00", b"a", b"1,"]) * (1 << 20)
    return b"".join([c.compress(piece) for _ in range(rng.randint(300, 400))] + [c.flush()])


def mutate(body: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One hostile variant of a seed, and the name of the mutation."""
    kind = rng.choice(["flip", "truncate", "splice", "nul", "quote", "ragged", "deep", "huge", "empty", "junk",
                       "dup", "crlf", "bom", "bomb"])
    data = bytearray(body)
    if kind == "flip" and data:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        data = data[: rng.randrange(max(1, len(data)))]
    elif kind == "splice":
        at = rng.randrange(max(1, len(data)))
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == "nul":
        data[rng.randrange(max(1, len(data))):][:1] = b"\x00"
    elif kind == "quote":
        at = rng.randrange(max(1, len(data)))
        data[at:at] = b'"'
    elif kind == "ragged":
        data += b"1,2,3,4,5,6,7,8,9,10,11\n"
    elif kind == "deep":
        depth = rng.choice([100, 1000, 10_000])
        data = bytearray(b'{"a": ' + b"[" * depth + b"]" * depth + b"}\n")
    elif kind == "huge":
        data += b"99," + b"x" * rng.choice([1 << 16, 1 << 22]) + b"\n"
    elif kind == "empty":
        data = bytearray(rng.choice([b"", b"\n", b"\n\n  \n", b"{}\n"]))
    elif kind == "junk":
        data = bytearray(rng.randbytes(rng.randint(1, 4096)))
    elif kind == "dup":
        half = len(data) // 2
        data = data[:half] + data[:half]
    elif kind == "crlf":
        data = bytearray(bytes(data).replace(b"\n", b"\r\n"))
    elif kind == "bom":
        data = bytearray(b"\xef\xbb\xbf" + bytes(data))
    elif kind == "bomb":
        return _bomb(rng), kind
    return bytes(data), kind


def build(root: Path, cases: int, seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    base = seeds()
    made: dict[str, str] = {}
    for i in range(cases):
        ext = rng.choice(list(base))
        body, kind = mutate(base[ext], rng)
        comp = rng.choice(["", "", ".gz", ".zst"])
        if kind == "bomb":
            comp = ".gz"  # already gzip-compressed
        elif comp == ".gz":
            body = gzip.compress(body)
        elif comp == ".zst":
            body = zstandard.ZstdCompressor().compress(body)
        if comp and rng.random() < 0.2:  # corrupt the compressed stream itself
            body = body[: max(0, len(body) - rng.randint(1, 40))]
        rel = f"f{i % 40:02d}/c{i:05d}{ext}{comp}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
        made[rel] = kind
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz")
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--keep", metavar="DIR", help="work here and keep it (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    from chute.core.config import Config
    from chute.core.engine import Engine

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="chute-fuzz-"))
    try:
        data = root / "data"
        data.mkdir(parents=True, exist_ok=True)
        made = build(data, args.cases, args.seed)
        cfg = dataclasses.replace(Config(), data_dir=data, state_dir=root / "state",
                                  clickhouse_url=f"chdb://{root / 'ch'}", settle_seconds=0.2, rescan_seconds=2.0,
                                  backoff_base=0.05, backoff_max=0.5, log_format="text", log_level="critical")
        engine = Engine(cfg)
        engine.start()
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < args.timeout:
                current = {p: engine.ledger.current(p) for p in made}
                # "failed" ends a file too once its attempts are spent (reported as a problem below).
                done = [p for p, r in current.items() if r is not None and (str(r.state) in FINAL or (
                    str(r.state) == "failed" and r.attempts >= cfg.max_attempts))]
                if len(done) == len(made) and engine.idle():
                    break
                time.sleep(0.5)
            current = {p: engine.ledger.current(p) for p in made}
        finally:
            engine.stop()
        return report(made, current, time.monotonic() - t0)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def report(made: dict[str, str], current: dict, secs: float) -> int:
    states: Counter[str] = Counter()
    by_kind: Counter[tuple[str, str]] = Counter()
    problems = []
    for path, kind in made.items():
        row = current[path]
        state = str(row.state) if row is not None else "unseen"
        states[state] += 1
        by_kind[(kind, state)] += 1
        reason = (row.last_error or row.reason or "") if row is not None else ""
        if state not in FINAL:
            problems.append(f"{path} ({kind}): not final: {state} {reason}")
        elif state == "quarantined" and not reason:
            problems.append(f"{path} ({kind}): quarantined without a reason")
        elif "unexpected" in reason:
            problems.append(f"{path} ({kind}): {reason}")
        elif state == "quarantined" and row.attempts > 1:
            problems.append(f"{path} ({kind}): quarantined after {row.attempts} attempts (retried)")
    print(f"fuzz: {len(made)} files in {secs:.0f}s: " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
    for (kind, state), n in sorted(by_kind.items()):
        print(f"  {kind:9s} {state:12s} {n}")
    for p in problems[:50]:
        print("PROBLEM", p)
    print("fuzz: OK" if not problems else f"fuzz: {len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
