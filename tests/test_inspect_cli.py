"""`chute inspect FILE... [--json]`: a dry run that says why each column got its type (issue 9.6)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from chute.core import cli


def run(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["inspect", *argv])
    return code, capsys.readouterr().out


def test_inspect_explains_types_and_writes_nothing(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "people.csv").write_bytes(b"zip,n,region,phone,when\n01234,1,EU,+441,2026-01-01\n98765,NA,NA,+442,"
                                      b"2026-01-02\n12345,3,APAC,+443,02/01/2026\n")
    (data / "bad.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n3,4,5\n"))
    state = tmp_path / "state"
    code, out = run(capsys, str(data / "people.csv"), "--data-dir", str(data), "--state-dir", str(state), "--json")
    assert code == 0
    report = json.loads(out)[0]
    cols = {c["name"]: c for c in report["columns"]}
    assert report["table"] == "people" and report["rows"] == 3
    assert cols["zip"]["type"] == "String" and cols["zip"]["why"] == "leading zero at line 2 ('01234')"
    assert cols["phone"]["why"].startswith("leading '+' at line 2")
    assert cols["n"]["type"] == "Nullable(Int64)" and cols["n"]["null_tokens"] == ["NA"]
    assert cols["region"]["type"] == "String"  # a literal NA (North America) stays text
    assert "date layouts at line 4" in cols["when"]["why"]
    assert report["first_rows"][1] == ["98765", None, "NA", "+442", "2026-01-02"]
    code, out = run(capsys, str(data / "bad.csv.gz"), "--data-dir", str(data), "--state-dir", str(state))
    assert code == 3 and "problem (would quarantine): ragged row at line 3" in out
    assert not state.exists()  # nothing opened for writing
    assert sorted(p.name for p in data.iterdir()) == ["bad.csv.gz", "people.csv"]


def test_inspect_shows_nested_values_as_json_not_python_reprs(tmp_path: Path, capsys) -> None:
    """A map, list or struct cell of a Parquet file printed as `datetime.datetime(2026, 7, 1, ...)`
    (Python's repr, found by the review): nested values read as JSON, timestamps as their text."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    data.mkdir()
    when = dt.datetime(2026, 7, 1, 10, 20, 30, 123456)
    pq.write_table(pa.table({
        "m": pa.array([[("a", when)]], pa.map_(pa.string(), pa.timestamp("us"))),
        "l": pa.array([[when, None]], pa.list_(pa.timestamp("us"))),
        "s": pa.array([{"d": dt.date(2026, 7, 1), "x": 1.5}]),
        "t": pa.array([when], pa.timestamp("us"))}), data / "nested.parquet")
    for argv in (["--json"], []):
        code, out = run(capsys, str(data / "nested.parquet"), "--data-dir", str(data),
                        "--state-dir", str(tmp_path / "state"), *argv)
        assert code == 0 and "datetime.d" not in out, out
    code, out = run(capsys, str(data / "nested.parquet"), "--data-dir", str(data),
                    "--state-dir", str(tmp_path / "state"), "--json")
    row = json.loads(out)[0]["first_rows"][0]
    assert [json.loads(v) for v in row[:3]] == [{"a": "2026-07-01 10:20:30.123456"},
                                                ["2026-07-01 10:20:30.123456", None],
                                                {"d": "2026-07-01", "x": 1.5}], row
    assert row[3] == "2026-07-01 10:20:30.123456"


def test_inspect_names_a_short_row_as_the_loader_would(tmp_path: Path, capsys) -> None:
    """A row with fewer fields is found by the check the loader runs beside its inserts; inspect
    ran only the plan and showed the row with NULLs (seen failing: no problem reported), plain
    and compressed."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "short.csv").write_bytes(b"a,b,c\n1,2,3\n4,5\n6,7,\n")
    (data / "short.csv.gz").write_bytes(gzip.compress(b"a,b,c\n1,2,3\n6,7,\n4,5\n"))
    (data / "fine.csv").write_bytes(b"a,b,c\n1,2,3\n6,7,\n")  # an empty last field is no short row
    state = str(tmp_path / "state")
    code, out = run(capsys, str(data / "short.csv"), "--data-dir", str(data), "--state-dir", state)
    assert code == 3 and "problem (would quarantine): ragged row at line 3: 2 fields, fewer than the 3" in out
    code, out = run(capsys, str(data / "short.csv.gz"), "--data-dir", str(data), "--state-dir", state)
    assert code == 3 and "problem (would quarantine): ragged row at line 4: 2 fields" in out
    code, out = run(capsys, str(data / "fine.csv"), "--data-dir", str(data), "--state-dir", state)
    assert code == 0 and "problem" not in out


def test_inspect_says_a_full_temporary_directory_is_no_problem_of_the_file(tmp_path: Path, capsys,
                                                                          monkeypatch) -> None:
    """An NDJSON file with a byte-order mark and no room for its copy: inspect says it was not read
    and why (the loader pauses), neither a traceback nor a quarantine reason."""
    from chute.core.formats import unmarked

    class Full:
        total, used, free = 100 << 30, 100 << 30, 1 << 20

    monkeypatch.setattr(unmarked.shutil, "disk_usage", lambda _where: Full)
    data = tmp_path / "data"
    data.mkdir()
    (data / "m.ndjson").write_bytes(b'\xef\xbb\xbf{"a":1}\n')
    code, out = run(capsys, str(data / "m.ndjson"), "--data-dir", str(data), "--state-dir", str(tmp_path / "s"))
    assert code == 0 and "not read: no room in the temporary directory" in out and "would quarantine" not in out
