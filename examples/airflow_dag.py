"""An Airflow DAG that loads a folder with chute every five minutes (drop it with chute_tasks.py
into the dags folder). Quarantined files fail the task without retries, failed loads fail it with
retries, held files skip it; every file's reason is in the task log."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from chute_tasks import BadInput, Held, load_folder

try:  # Airflow 3
    from airflow.sdk import dag, task
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
except ImportError:
    try:  # Airflow 2
        from airflow.decorators import dag, task
        from airflow.exceptions import AirflowFailException, AirflowSkipException
    except ImportError:  # parsed outside Airflow (tests, linters): the task body stays importable
        dag = None

DATA_DIR = os.environ.get("CHUTE_DATA_DIR", "/srv/chute/data")


def load() -> dict:
    """The task body: chute_tasks.load_folder, its outcomes mapped to Airflow's."""
    try:
        return load_folder(DATA_DIR, logger=logging.getLogger("airflow.task"))
    except Held as exc:
        raise AirflowSkipException(str(exc)) from exc
    except BadInput as exc:
        raise AirflowFailException(str(exc)) from exc  # no retries: the input will not get better
    # RetryLater and anything else: a normal failure, retried as the DAG says.


if dag is not None:

    @dag(schedule=timedelta(minutes=5), start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=1,
         default_args={"retries": 3, "retry_delay": timedelta(minutes=2)}, tags=["chute"])
    def chute_ingest() -> None:
        task(task_id="load")(load)()

    chute_ingest()
