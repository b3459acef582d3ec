"""What a version's resting state says is committed with it, not a moment later on the loader's
thread: a reader (the console, `chute status`, an operator's command) that sees the state, or a
crash right after it, must find the rest too. Found by tests/ waiting on a state and then looking
at what came just after it (issue: the suite's races under load)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from chute.core import failpoints
from chute.core.ledger import Ledger
from chute.core.routing import Route
from chute.core.states import State
from tests.conftest import make_config, state_of, wait_for


def test_rows_skipped_are_noted_in_the_loaded_commit(engine_factory, tmp_path: Path, chdb_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`on_bad_rows = skip`: the note "N row(s) skipped" was written after `loaded`; a crash in between
    left a loaded file whose skipped rows the ledger never mentioned. Held right after the `loaded`
    commit (failpoint pause_at=loaded), the version must already carry its note."""
    cfg = make_config(tmp_path, chdb_path, routes=(Route(table="skippy", on_bad_rows="skip"),))
    (cfg.data_dir / "skippy").mkdir()
    (cfg.data_dir / "skippy" / "1.csv").write_bytes(b"id,v\n1,a\n")  # the table's types: id Int64
    engine = engine_factory(cfg)
    wait_for(lambda: state_of(engine, "skippy/1.csv") == State.LOADED and engine.idle(), what="the table made")
    gate = tmp_path / "gate"
    monkeypatch.setitem(failpoints._spec, "pause_at", "loaded:1")
    monkeypatch.setitem(failpoints._spec, "gate", str(gate))
    monkeypatch.setattr(failpoints, "_hits", {})  # counted per process: start from zero for this test
    (cfg.data_dir / "skippy" / "2.csv").write_bytes(b"id,v\n2,b\nnope,c\n4,d\n,e\n6,f\n")
    try:
        wait_for(lambda: Path(f"{gate}.reached").exists(), timeout=120, what="the load held just after `loaded`")
        row = engine.ledger.current("skippy/2.csv")
        assert row is not None and row.state == State.LOADED
        assert row.reason == "2 row(s) skipped (on_bad_rows = skip)", row.reason
    finally:
        gate.touch()
    wait_for(engine.idle, what="the load's worker done")
    assert [e.action for e in engine.ledger.events(file_id=row.id)].count("rejects") == 1


def test_quarantine_and_retry_close_their_action_in_the_same_commit(engine_factory, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader's quarantine and an operator's retry closed their intent a commit after the new
    state: a console that showed the file quarantined had its retry refused ("has an unfinished
    quarantine"), and a retried file could be claimed while its retry was open (its archive or
    quarantine intent then refused). Every such state change is checked as it commits."""
    seen: list[tuple[str, list[str]]] = []
    transition = Ledger.transition

    def watched(self: Ledger, file_id: int, to: State, **kw: Any) -> Any:
        out = transition(self, file_id, to, **kw)
        if out is not None and to in (State.QUARANTINED, State.QUEUED):
            seen.append((str(to), [r["action"] for r in self.open_intents(file_id)]))
        return out

    monkeypatch.setattr(Ledger, "transition", watched)
    engine = engine_factory()
    data = engine.cfg.data_dir
    (data / "m-0001.csv.gz").write_bytes(b"not gzip at all\n")
    wait_for(lambda: state_of(engine, "m-0001.csv.gz") == State.QUARANTINED, what="quarantined")
    row = engine.ledger.current("m-0001.csv.gz")
    assert row is not None and row.moved_to
    (data / row.moved_to).write_bytes(gzip.compress(b"id,v\n1,10\n"))  # the operator fixes it...
    assert engine.command("retry", "m-0001.csv.gz", actor="ops") == "retrying m-0001.csv.gz"  # ...and retries
    wait_for(lambda: state_of(engine, "m-0001.csv.gz") == State.LOADED, what="loaded after the retry")
    assert ("quarantined", []) in seen and ("queued", []) in seen, seen
    assert all(actions == [] for _, actions in seen), seen
