"""Gated retraining, scheduled on each dataset's ``sanitizer_accepted_<dataset>`` Asset.

- ``wait_for_scans``: no batch of the dataset may still be ``scanning`` (a sensor that
  waits up to an hour, then skips the run);
- ``train``: train on the trusted reference plus every accepted or released batch —
  quarantined and rejected batches are never read — evaluate on the trusted holdout,
  promote the candidate only if it is not worse than the current model by more than
  ``training.tolerance``;
- ``alert_if_kept``: notify operators when a candidate was not promoted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import PokeReturnValue, dag, task

from sanitizer.airflow.notify import RunFailureNotifier
from sanitizer.airflow.settings import DatasetEntry, accepted_asset, config_dir, dataset_entries


def build_retrain_dag(entry: DatasetEntry) -> Any:
    path = entry.config_path

    @dag(
        dag_id=f"retrain_{entry.name}",
        schedule=[accepted_asset(entry.name)],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args={
            "retries": min(entry.retries, 1),
            "retry_delay": timedelta(seconds=30),
            # a failed task (after its retries) alerts the operators
            "on_failure_callback": RunFailureNotifier(path),
        },
        tags=["sanitizer", entry.name],
        doc_md=__doc__,
    )
    def retrain() -> None:
        @task.sensor(poke_interval=30, timeout=3600, mode="reschedule", soft_fail=True)
        def wait_for_scans() -> PokeReturnValue:
            from sanitizer.airflow import tasks

            gate = tasks.retrain_gate(path)
            return PokeReturnValue(is_done=gate["ready"], xcom_value=gate)

        @task
        def train() -> dict[str, Any]:
            from sanitizer.airflow import tasks

            return tasks.retrain(path)

        @task
        def alert_if_kept(outcome: dict[str, Any]) -> bool:
            from airflow.sdk import get_current_context

            from sanitizer.airflow import tasks

            return tasks.alert_not_promoted(path, outcome, get_current_context())

        outcome = train()
        wait_for_scans() >> outcome
        alert_if_kept(outcome)

    return retrain()


for _entry in dataset_entries(config_dir()):
    if _entry.training:
        globals()[f"retrain_{_entry.name}"] = build_retrain_dag(_entry)
