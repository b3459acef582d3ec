"""What a version's resting state says is committed with it, not a moment later on the loader's
thread: a reader (the console, `chute status`, an operator's command) that sees the state, or a
crash right after it, must find the rest too. Found by tests/ waiting on a state and then looking
at what came just after it (issue: the suite's races under load)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from chute.core.ledger import Ledger
from chute.core.states import State
from tests.conftest import state_of, wait_for


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
