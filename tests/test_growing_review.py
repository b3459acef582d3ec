"""A grown CSV whose header holds a quoted newline (review, round 9; as on 5b20adb): the appended
records were read behind the header's first line only ('id,"no'), so the part's columns were
garbage and the version was held for a schema drift naming a column 'no\\n2,b,6' (approving it
would have added that column to the table)."""

from __future__ import annotations

from pathlib import Path

from chute.core.states import State
from tests.conftest import query, wait_for


def test_a_header_spanning_lines_stays_whole_in_front_of_the_appended_records(engine_factory, tmp_path: Path,
                                                                            chdb_path: Path) -> None:
    from tests.conftest import make_config
    from tests.test_fit_lines import first_version_loaded

    cfg = make_config(tmp_path, chdb_path)
    engine, path = first_version_loaded(engine_factory, cfg, b'id,"no\nte",v\n1,a,5\n')
    first = engine.ledger.current("q/f.csv").id
    with path.open("ab") as f:
        f.write(b"2,b,6\n")
    wait_for(lambda: engine.ledger.current("q/f.csv").id != first
             and engine.ledger.current("q/f.csv").state in (State.LOADED, State.HELD, State.QUARANTINED),
             what="the grown version final")
    row = engine.ledger.current("q/f.csv")
    assert row.state == State.LOADED, (row.state, row.last_error)
    assert row.base_id == first, row  # (the appended record only, behind the whole header)
    assert query(engine, f"SELECT _source_row, id, `no\nte`, v FROM `{cfg.database}`.q ORDER BY _source_row") == [
        (1, 1, "a", 5), (2, 2, "b", 6)]
