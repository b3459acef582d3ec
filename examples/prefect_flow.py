"""A Prefect flow that loads a folder with chute (`python prefect_flow.py /srv/chute/data`).
Quarantined files fail the flow at once, failed loads are retried, held files end the task as
"Skipped" (a Completed state); every file's reason is in the run log."""

from __future__ import annotations

import sys

from chute_tasks import BadInput, Held, load_folder

try:
    from prefect import flow, get_run_logger, task
    from prefect.states import Completed
except ImportError:  # parsed outside Prefect (tests, linters): the task body stays importable
    flow = None


def load(data_dir: str):
    """The task body: chute_tasks.load_folder, its outcomes mapped to Prefect's."""
    try:
        return load_folder(data_dir, logger=get_run_logger())
    except Held as exc:
        return Completed(message=str(exc), name="Skipped")


if flow is not None:
    load_task = task(name="chute load", retries=3, retry_delay_seconds=120,
                     retry_condition_fn=lambda _task, _run, state: not _is_bad_input(state))(load)

    @flow(name="chute ingest")
    def ingest(data_dir: str = "data") -> dict:
        return load_task(data_dir)

    def _is_bad_input(state) -> bool:
        try:
            state.result()
        except BadInput:
            return True
        except Exception:  # noqa: BLE001 - any other failure is worth a retry
            return False
        return False


if __name__ == "__main__" and flow is not None:
    ingest(sys.argv[1] if len(sys.argv) > 1 else "data")
