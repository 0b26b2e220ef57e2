"""Production deployment end to end: PostgreSQL metadata and ledger, CeleryExecutor with
Redis, two workers, many batches in parallel, and a worker killed in the middle of a run.

The DAGs are triggered and inspected through Airflow's REST API (HTTP on loopback, JWT
from ``/auth/token``); outcomes are checked in the ledger (PostgreSQL) and the zones.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cluster import Cluster, ClusterError, wait_until
from landing import Batch, Fleet, land_mixed, write_fleet

from sanitizer.quarantine.ledger import BatchRecord, Ledger

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKERS = ("worker-a", "worker-b")
RUN_TIMEOUT = 480.0
ZONE_OF_STATE = {"accepted": "accepted", "quarantined": "quarantine"}
ZONES = ("landing", "accepted", "quarantine", "rejected")


@dataclass
class Deployment:
    cluster: Cluster
    fleet: Fleet
    storage_root: Path
    ledger: Ledger

    @property
    def landing(self) -> Path:
        return self.storage_root / "landing" / self.fleet.name


@pytest.fixture(scope="module")
def deployment(
    deployment_services: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """One cluster for the module: API server, scheduler, DAG processor, two workers.
    Stopped in a finalizer (processes, both databases, the Redis database) whatever
    happens; start-up failures print the process logs."""
    base = tmp_path_factory.mktemp("deployment")
    fleet = write_fleet(base / "configs", parts=36)
    storage_root = base / "storage"
    cluster = Cluster(base, config_dir=fleet.configs, storage_root=storage_root, workers=WORKERS)
    ledger: Ledger | None = None
    try:
        try:
            cluster.start()
            cluster.wait_for_dags([f"sanitize_{fleet.name}", f"retrain_{fleet.name}"])
        except Exception:
            print(f"process logs in {cluster.logs}:\n{cluster.log_tails()}")
            raise
        ledger = Ledger(cluster.ledger_url)
        yield Deployment(cluster, fleet, storage_root, ledger)
    finally:
        if ledger is not None:
            ledger.close()
        problems = cluster.stop()
        left = [
            db for db in (cluster.metadata_db, cluster.ledger_db) if cluster.database_exists(db)
        ]
        running = [c.name for c in cluster.components.values() if c.group_alive()]
        keys = cluster.redis_keys()
        assert not (problems or left or running or keys), (problems, left, running, keys[:5])


def _dag(d: Deployment, kind: str) -> str:
    return f"{kind}_{d.fleet.name}"


def _run_to_the_end(d: Deployment, run_id: str) -> dict[str, Any]:
    api = d.cluster.api
    run = api.wait_for_run(_dag(d, "sanitize"), run_id, timeout=RUN_TIMEOUT)
    tis = api.task_instances(_dag(d, "sanitize"), run_id)
    assert run["state"] == "success", [
        (t["task_id"], t["map_index"], t["state"], t["hostname"]) for t in tis
    ]
    return run


def _records(d: Deployment, batches: list[Batch]) -> dict[str, BatchRecord]:
    names = {b.name for b in batches}
    found = {r.original_name: r for r in d.ledger.batches(dataset=d.fleet.name)}
    missing = names - set(found)
    assert not missing, f"never registered: {sorted(missing)}"
    return {n: found[n] for n in names}


def _check_batches(d: Deployment, batches: list[Batch]) -> dict[str, BatchRecord]:
    """Every batch in exactly one zone, with the ledger state, reason and bytes it should
    have; routed exactly once (ledger events)."""
    records = _records(d, batches)
    got = {b.name: (records[b.name].state, records[b.name].reason) for b in batches}
    want = {b.name: (b.expected, b.reason) for b in batches}
    assert got == want, {n: (got[n], records[n].failing_checks) for n in got if got[n] != want[n]}
    for batch in batches:
        record = records[batch.name]
        where = [
            zone
            for zone in ZONES
            if (d.storage_root / zone / d.fleet.name / record.id).exists()
            or (zone == "landing" and (d.landing / batch.name).exists())
        ]
        assert where == [ZONE_OF_STATE[record.state]], (batch.name, where)
        folder = d.storage_root / ZONE_OF_STATE[record.state] / d.fleet.name / record.id
        manifest = json.loads((folder / "manifest.json").read_text())
        data = (folder / manifest["data_file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record.sha256, batch.name  # nothing altered
        assert {"report.json", "report.html"} <= {p.name for p in folder.iterdir()}
        events = d.ledger.events(record.id)
        moves = Counter((e.from_state, e.to_state) for e in events)
        assert moves[(None, "landed")] == 1, (batch.name, events)
        assert moves[("landed", "scanning")] == 1, (batch.name, events)
        assert moves[("scanning", record.state)] == 1, (batch.name, events)  # routed once
        assert sum(moves.values()) - moves[("scanning", "scanning")] == 3, (batch.name, events)
    return records


def _accepted_ids(d: Deployment) -> set[str]:
    return {b.id for b in d.ledger.batches(dataset=d.fleet.name, state=["accepted", "released"])}


def _check_retraining(d: Deployment) -> None:
    """Each accepted batch emitted exactly one Asset event; the retrain runs were all
    triggered by those events (each consumed by one run at most), succeeded, and trained
    on accepted batches only, the last one on every accepted batch.

    Not every event triggers a run of its own: Airflow folds events into one run, and
    with ``max_active_runs=1`` events that arrive while a run is being created wait for
    the next event (apache/airflow#56050). Retraining reads the ledger, not the events,
    so no accepted batch is left out of the model either way.
    """
    api = d.cluster.api
    accepted = _accepted_ids(d)
    quarantined = {b.id for b in d.ledger.batches(dataset=d.fleet.name, state="quarantined")}
    retrain = _dag(d, "retrain")
    models = d.storage_root / "models" / d.fleet.name

    previous: list[str] = []

    def settled() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """Runs and models once retraining is quiet: every run over, no event queued for
        another, the same runs as at the last look, the last model on every batch."""
        runs = api.runs(retrain)
        ids = [r["dag_run_id"] for r in runs]
        stable, previous[:] = ids == previous, ids
        if not runs or any(r["state"] not in ("success", "failed") for r in runs):
            return None
        if api.get(f"/dags/{retrain}/assets/queuedEvents")["queued_events"] or not stable:
            return None
        found = [json.loads(p.read_text()) for p in sorted(models.glob("v*/model.json"))]
        return (runs, found) if found and set(found[-1]["batch_ids"]) == accepted else None

    runs, models_trained = wait_until(
        "retraining on every accepted batch", settled, timeout=300, interval=3.0
    )
    events = api.asset_events(f"sanitizer_accepted_{d.fleet.name}")
    emitted = Counter(e["extra"]["batch_id"] for e in events)
    assert emitted == Counter(accepted), emitted  # one event per accepted batch, no more
    assert {r["state"] for r in runs} == {"success"}, runs
    assert {r["run_type"] for r in runs} == {"asset_triggered"}, runs
    consumed: Counter[int] = Counter()
    for run in runs:
        upstream = api.upstream_asset_events(retrain, run["dag_run_id"])
        assert upstream, run  # every run was triggered by accepted-batch events
        assert {e["extra"]["batch_id"] for e in upstream} <= accepted
        consumed.update(e["id"] for e in upstream)
    assert max(consumed.values()) == 1, consumed  # no event triggered two runs
    assert set(consumed) <= {e["id"] for e in events}
    for model in models_trained:
        assert set(model["batch_ids"]) <= accepted and not set(model["batch_ids"]) & quarantined


def test_many_batches_in_parallel_on_two_workers(deployment: Deployment) -> None:
    d = deployment
    batches = land_mixed(d.fleet, d.landing, tag="r1")
    assert len(batches) >= 20
    assert Counter(b.expected for b in batches) == {"accepted": 12, "quarantined": 12}

    run_id = d.cluster.api.trigger(_dag(d, "sanitize"))
    _run_to_the_end(d, run_id)
    records = _check_batches(d, batches)

    scans = [
        t
        for t in d.cluster.api.task_instances(_dag(d, "sanitize"), run_id)
        if t["task_id"] == "scan"
    ]
    assert sorted(t["rendered_map_index"] for t in scans) == sorted(r.id for r in records.values())
    assert {t["state"] for t in scans} == {"success"}
    assert {t["hostname"] for t in scans} == set(WORKERS)  # both workers scanned
    by_host = Counter(t["hostname"] for t in scans)
    assert min(by_host.values()) >= 2, by_host
    # each batch was claimed by the scan task that ran it, on that task's worker
    host_of = {t["rendered_map_index"]: t["hostname"] for t in scans}
    for record in records.values():
        claim = next(e for e in d.ledger.events(record.id) if e.to_state == "scanning")
        assert claim.actor.startswith("airflow-task:"), claim
        assert f":{host_of[record.id]}:" in claim.actor, (claim.actor, host_of[record.id])

    _check_retraining(d)


def _claimed_by(d: Deployment, worker: str) -> BatchRecord | None:
    for record in d.ledger.batches(dataset=d.fleet.name, state="scanning"):
        if record.claimed_by and f":{worker}:" in record.claimed_by:
            return record
    return None


def test_a_worker_killed_mid_scan_loses_and_duplicates_nothing(deployment: Deployment) -> None:
    d = deployment
    api = d.cluster.api
    victim_worker, survivor = WORKERS[1], WORKERS[0]
    if not d.cluster.components[victim_worker].alive():
        pytest.fail(f"{victim_worker} is not running")
    batches = land_mixed(d.fleet, d.landing, tag="r2", clean=6, copies=1)
    run_id = api.trigger(_dag(d, "sanitize"))

    worker = d.cluster.components[victim_worker]

    def caught() -> BatchRecord | None:
        """Freeze the worker (SIGSTOP) while it holds a claim; if the batch was routed in
        the moment before the freeze, let it go on and wait for its next scan."""
        if api.run(_dag(d, "sanitize"), run_id)["state"] in ("success", "failed"):
            raise ClusterError(f"the run ended before {victim_worker} was caught mid-scan")
        held = _claimed_by(d, victim_worker)
        if held is None:
            return None
        worker.signal_tree(signal.SIGSTOP)
        now = d.ledger.get(held.id)
        if now.state == "scanning" and now.claimed_by == held.claimed_by:
            return held
        worker.signal_tree(signal.SIGCONT)
        return None

    # SIGKILL the worker (and its task processes) while it holds a claim on a batch
    victim = wait_until(f"{victim_worker} holding a claim", caught, timeout=300, interval=0.1)
    d.cluster.kill_worker(victim_worker)
    killed_at = time.time()
    assert not d.cluster.components[victim_worker].alive()
    assert d.ledger.get(victim.id).state == "scanning"  # killed mid-scan, not after

    _run_to_the_end(d, run_id)
    records = _check_batches(d, batches)  # nothing lost, nothing routed twice

    # the killed scan failed on the dead worker and was retried on the survivor
    scans = {
        t["rendered_map_index"]: t
        for t in api.task_instances(_dag(d, "sanitize"), run_id)
        if t["task_id"] == "scan"
    }
    assert set(scans) == {r.id for r in records.values()}
    victim_ti = scans[victim.id]
    tries = api.tries(_dag(d, "sanitize"), run_id, "scan", victim_ti["map_index"])
    assert [(t["try_number"], t["hostname"]) for t in tries] == [
        (1, victim_worker),
        (2, survivor),
    ], tries
    assert [t["state"] for t in tries][-1] == "success"
    # its retry took the dead try's claim over; every other batch was claimed once
    claims = [e for e in d.ledger.events(victim.id) if e.to_state == "scanning"]
    assert len(claims) == 2 and "earlier try of the same task" in claims[1].reason, claims
    assert f":{victim_worker}:" in claims[0].actor and f":{survivor}:" in claims[1].actor
    for name, record in records.items():
        if record.id != victim.id:
            events = d.ledger.events(record.id)
            assert sum(e.to_state == "scanning" for e in events) == 1, (name, events)
    # after the kill, only the survivor ran scans
    for ti in scans.values():
        if ti["start_date"] and _ts(ti["start_date"]) > killed_at:
            assert ti["hostname"] == survivor, ti

    _check_retraining(d)
    _check_clean_landing(d)


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _check_clean_landing(d: Deployment) -> None:
    """Nothing was left behind in the landing zone, and the ledger has no batch in flight."""
    leftovers = sorted(p.name for p in d.landing.iterdir() if not p.name.startswith("."))
    assert leftovers == []
    with d.ledger.engine.connect() as conn:
        in_flight = conn.execute(
            sa.text("SELECT count(*) FROM sanitizer_batches WHERE state IN ('landed', 'scanning')")
        ).scalar_one()
    assert in_flight == 0
