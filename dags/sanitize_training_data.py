"""Sanitize incoming training batches: discover → scan (mapped) → route → alert → review.

One DAG per dataset config in ``$SANITIZER_CONFIG_DIR`` (see sanitizer/airflow/settings.py).
Parsing is cheap: only tomllib and Airflow; pandas, scikit-learn and Great
Expectations are imported inside the tasks.

- ``prepare``: fit the checks on the trusted reference (plus the accepted history)
  once, cached as a profile in object storage;
- ``discover``: register settled files of ``landing/<dataset>/`` in the ledger;
- ``scan``: one mapped task per batch — claim, scan, route to accepted/ or quarantine/
  (retries are safe: the ledger makes them idempotent); ``accepted``/``quarantined``
  split the small per-batch results;
- ``publish_accepted``: one ``sanitizer_accepted_<dataset>`` Asset event per accepted
  batch (extra: batch id, rows), which schedules ``retrain_<dataset>``;
- ``alert``: a notification per quarantined batch (SMTP by default);
- ``review``: a human-in-the-loop task per quarantined batch (Release / Reject / Keep
  quarantined; the timeout keeps it quarantined); ``apply_review`` records the decision
  in the ledger with the reviewer as actor, and released batches emit the Asset event.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, task

from sanitizer.airflow.notify import RunFailureNotifier
from sanitizer.airflow.settings import DatasetEntry, accepted_asset, config_dir, dataset_entries

RELEASE, REJECT, KEEP = "Release", "Reject", "Keep quarantined"


def build_sanitize_dag(entry: DatasetEntry) -> Any:
    path = entry.config_path
    asset = accepted_asset(entry.name)

    @dag(
        dag_id=f"sanitize_{entry.name}",
        schedule=entry.schedule,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args={
            "retries": entry.retries,
            "retry_delay": timedelta(seconds=20),
            # a failed task (after its retries) alerts the operators
            "on_failure_callback": RunFailureNotifier(path),
        },
        tags=["sanitizer", entry.name],
        doc_md=__doc__,
    )
    def sanitize() -> None:
        @task
        def prepare() -> dict[str, Any]:
            from sanitizer.airflow import tasks

            return tasks.prepare_profile(path)

        @task
        def discover() -> list[str]:
            from sanitizer.airflow import tasks

            return tasks.discover_batches(path)

        @task(map_index_template="{{ task.op_kwargs['batch_id'] }}")
        def scan(batch_id: str, profile: dict[str, Any]) -> dict[str, Any]:
            from sanitizer.airflow import tasks

            return tasks.scan_batch(path, batch_id, profile)

        @task
        def accepted(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
            from sanitizer.airflow import tasks

            return tasks.split_results(results)["accepted"]

        @task
        def quarantined(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
            from sanitizer.airflow import tasks

            return tasks.split_results(results)["quarantined"]

        @task(outlets=[asset])
        def publish_accepted(result: dict[str, Any], outlet_events: Any = None) -> dict[str, Any]:
            from sanitizer.airflow import tasks

            extra = tasks.asset_extra(result)
            outlet_events[asset].extra = extra
            return extra

        @task
        def alert(quarantined: list[dict[str, Any]]) -> list[str]:
            from airflow.sdk import get_current_context

            from sanitizer.airflow import tasks

            return tasks.alert_quarantined(path, quarantined, get_current_context())

        prepared = prepare()
        found = discover()
        results = scan.partial(profile=prepared).expand(batch_id=found)
        held = quarantined(results)
        publish_accepted.expand(result=accepted(results))
        alert(held)

        if entry.review:

            @task
            def review_request(result: dict[str, Any]) -> dict[str, Any]:
                from sanitizer.airflow import tasks

                return tasks.review_request(path, result)

            @task
            def apply_review(pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
                from sanitizer.airflow import tasks

                batch, response = pair
                return tasks.apply_review(path, batch, response)

            @task
            def released(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return [d for d in decisions if d.get("decision") == "release"]

            @task(outlets=[asset])
            def publish_released(
                result: dict[str, Any], outlet_events: Any = None
            ) -> dict[str, Any]:
                from sanitizer.airflow import tasks

                extra = tasks.asset_extra(result)
                outlet_events[asset].extra = extra
                return extra

            review = HITLOperator.partial(
                task_id="review",
                options=[RELEASE, REJECT, KEEP],
                defaults=[KEEP],
                response_timeout=timedelta(hours=entry.review_timeout_hours),
                params={
                    "reason": Param("", type="string", description="Why (recorded in the ledger)")
                },
                retries=0,
            ).expand_kwargs(review_request.expand(result=held))
            decisions = apply_review.expand(pair=held.zip(review.output))
            publish_released.expand(result=released(decisions))

    return sanitize()


for _entry in dataset_entries(config_dir()):
    globals()[f"sanitize_{_entry.name}"] = build_sanitize_dag(_entry)
