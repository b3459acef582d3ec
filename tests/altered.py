"""Files loaded into a table an operator made first (tests/test_altered_tables.py, test_fit_hostile.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chute.core.config import Config
from chute.core.schema import Column
from chute.core.states import State
from tests.conftest import make_config, state_of, wait_for

FINAL = {State.LOADED, State.QUARANTINED, State.HELD, State.DUPLICATE, State.FAILED}


def into_operator_table(engine_factory: Any, tmp_path: Path, chdb_path: Path, table: str, kind: str,
                        files: dict[str, bytes]) -> tuple[Any, Config]:
    """The operator's table ``table`` (``id Int64, v KIND``) and ``files`` dropped into its folder,
    each loaded to a final state: (the engine, its config)."""
    cfg = make_config(tmp_path, chdb_path)
    engine = engine_factory(cfg)
    engine.target.create_table(table, [Column("id", "Int64"), Column("v", kind)])
    (cfg.data_dir / table).mkdir()
    for name, body in files.items():
        (cfg.data_dir / table / name).write_bytes(body)
    wait_for(lambda: all(state_of(engine, f"{table}/{n}") in FINAL for n in files), what="every file final")
    return engine, cfg


def refused_beside_control(engine_factory: Any, tmp_path: Path, chdb_path: Path, table: str, kind: str,
                           bad: bytes, good: bytes) -> tuple[Any, Config, Any]:
    """``bad.csv`` must be quarantined and ``good.csv`` (the control) load: (engine, config, the bad
    file's ledger row)."""
    from tests.conftest import query

    engine, cfg = into_operator_table(engine_factory, tmp_path, chdb_path, table, kind,
                                      {"bad.csv": bad, "good.csv": good})
    fine = engine.ledger.current(f"{table}/good.csv")
    assert fine.state == State.LOADED, (fine.state, fine.last_error)
    row = engine.ledger.current(f"{table}/bad.csv")
    assert row.state == State.QUARANTINED, (row.state, row.last_error, query(
        engine, f"SELECT toString(v) FROM `{cfg.database}`.`{table}`"))
    return engine, cfg, row
