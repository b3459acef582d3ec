"""A `--once` ends with os._exit (cli._exit_now), which skips the garbage collector: an insert body
held in a reference cycle (the traceback of an insert ClickHouse refused) stayed in the temporary
directory, one batch file per quarantined file (seen failing first: 2 of 4 left behind)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import engine_query, run_chute


def test_a_once_run_leaves_no_insert_body_behind(tmp_path: Path, clean_env: None) -> None:
    engine_dir, data, tmp = tmp_path / "ch", tmp_path / "data", tmp_path / "tmp"
    tmp.mkdir()
    for i in range(4):
        engine_query(engine_dir, f"CREATE TABLE default.t{i} (id Int64, v Enum8('a' = 1)) "
                                 "ENGINE = MergeTree ORDER BY id")
        (data / f"t{i}").mkdir(parents=True)
        (data / f"t{i}" / "bad.csv").write_text(f"id,v\n{i},zz\n")
    proc = run_chute("--no-ui", "--once", str(data), "--state-dir", str(tmp_path / "state"),
                     "--clickhouse", f"chdb://{engine_dir}", "--log-format", "text", env={"TMPDIR": str(tmp)})
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert proc.stderr.count("quarantined") >= 4, proc.stderr[-2000:]
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith("chute-batch-")) == []
