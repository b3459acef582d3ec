"""How the `chute` program's `--once` ends (core/cli.py, issue 12): it leaves ClickHouse's clients
open and ends the process without chDB's shutdown. The state dir must stay this process's for as
long as its embedded engine lives: chDB refuses a second opener of its folder (``Unable to open
the chdb engine ... Error initializing EmbeddedServer``), so an engine, `chute purge` or
`chute recover` that takes the free state dir in that window fails to start; and the exiting
process still runs the engine's background threads on that folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chute.core import cli
from chute.core.config import Config
from chute.core.engine import Engine, StateLock


def test_a_once_that_leaves_clickhouse_open_keeps_the_state_dir_until_the_process_ends(
        cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as the `chute` program runs it (``main()`` with no argv: clients left open for
    ``_exit_now``): when ``_run`` is done, its engine's chDB clients are still open, so the state
    lock must still be held (the kernel frees it with the process). It was released first (seen
    failing on int2: a 20-55 ms window before the process is gone)."""
    engines: list[Engine] = []
    init = Engine.__init__

    def keep(self: Engine, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        engines.append(self)

    monkeypatch.setattr(Engine, "__init__", keep)
    monkeypatch.setattr(cli, "_ends_process", True)
    (cfg.data_dir / "a.csv").write_text("id,name\n1,x\n")
    try:
        code = cli._run(["--no-ui", "--once", str(cfg.data_dir), "--state-dir", str(cfg.state_dir),
                         "--clickhouse", cfg.clickhouse_url, "--database", cfg.database,
                         "--settle-seconds", "0.1", "--log-level", "warning"])
        assert code == 0
        [engine] = engines
        assert engine.target._clients, "the clients were closed: this test no longer runs the program's way"
        assert StateLock.holder(cfg.state_dir) is not None, \
            "the state dir was let go while this process's ClickHouse engine still lives"
    finally:
        cli._once_stopped.clear()
        for engine in engines:  # (what the process's end does: the lock, then the clients)
            engine._state_lock.release()
            engine.target.close()
    assert StateLock.holder(cfg.state_dir) is None
    assert Path(cfg.state_dir / "ledger.sqlite3").exists()
