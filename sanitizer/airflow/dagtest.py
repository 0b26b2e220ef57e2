"""Run one DAG with ``dag.test()`` in this process and print a JSON summary.

Used by ``make demo`` and the DAG tests: an embedded Airflow (the metadata DB of
``$AIRFLOW_HOME``) runs every task in this process, no scheduler needed.

    python -m sanitizer.airflow.dagtest DAG_ID [--respond OPTION:USER:REASON]

``--respond`` starts a thread that answers every pending human-in-the-loop request
the way the Airflow UI does, through the handler of the REST API's HITL endpoint
(``PATCH .../hitlDetails``), minus HTTP and authentication.
"""

from __future__ import annotations

import argparse
import json
import threading
import time


def responder(option: str, user: str, reason: str, stop: threading.Event) -> None:
    """Answer parked HITL tasks through the REST API's own handler (as the UI would)."""
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    class User:
        def get_id(self) -> str:
            return user

        def get_name(self) -> str:
            return user

    while not stop.is_set():
        with create_session() as session:
            parked = (
                session.query(TaskInstance)
                .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
                .filter(TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
                .filter(HITLDetail.responded_at.is_(None))
                .all()
            )
            for ti in parked:
                update_hitl_detail(
                    dag_id=ti.dag_id,
                    dag_run_id=ti.run_id,
                    task_id=ti.task_id,
                    update_hitl_detail_payload=UpdateHITLDetailPayload(
                        chosen_options=[option], params_input={"reason": reason}
                    ),
                    user=User(),  # type: ignore[arg-type]  # the handler only asks id and name
                    session=session,
                    map_index=ti.map_index,
                )
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dag_id")
    parser.add_argument("--respond")
    args = parser.parse_args()
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetEvent, AssetModel

    bag = DagBag(dag_folder=settings.DAGS_FOLDER)
    stop = threading.Event()
    if args.respond:
        option, user, reason = args.respond.split(":", 2)
        threading.Thread(target=responder, args=(option, user, reason, stop), daemon=True).start()
    started = time.time()
    run = bag.get_dag(args.dag_id).test()
    stop.set()
    assert settings.Session is not None
    session = settings.Session()
    tis = {
        f"{ti.task_id}[{ti.map_index}]": str(ti.state)
        for ti in run.get_task_instances(session=session)
    }
    names = {a.id: a.name for a in session.query(AssetModel)}
    events = [
        {"asset": names.get(e.asset_id), "extra": e.extra, "task": e.source_task_id}
        for e in session.query(AssetEvent).filter(AssetEvent.source_run_id == run.run_id)
    ]
    print(json.dumps({
        "import_errors": {k: v.splitlines()[-1] for k, v in bag.import_errors.items()},
        "state": str(run.state), "tasks": tis, "events": events, "seconds": time.time() - started,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
