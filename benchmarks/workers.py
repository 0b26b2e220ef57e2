"""Throughput of a CeleryExecutor deployment with 1 and with 2 workers, many small batches.

    .venv/bin/python benchmarks/workers.py [--batches 24] [--rows 200] [--concurrency 1]

Brings up the integration tests' deployment (tests/integration/cluster.py: PostgreSQL
metadata and ledger, Redis broker, API server, scheduler, DAG processor) with the same
settings, and two datasets with identical batches (same seed). With one Celery worker
running, ``sanitize_w1`` is triggered through the REST API on ``--batches`` clean batches
of ``--rows`` rows; then a second worker starts and ``sanitize_w2`` runs on the same
batches. Wall time is from the trigger (POST) to the run's success as the REST API
reports it, polled every 0.5 s; retraining is off so only the sanitize run is timed.
Needs PostgreSQL and Redis on 127.0.0.1 (as the integration tests do).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from cluster import Cluster, unavailable_reason
from landing import land_clean, write_fleet


def _timed_run(cluster: Cluster, dag_id: str, expected: int) -> tuple[float, Counter[str]]:
    t0 = time.perf_counter()
    run_id = cluster.api.trigger(dag_id)
    run = cluster.api.wait_for_run(dag_id, run_id, timeout=3600, interval=0.5)
    wall = time.perf_counter() - t0
    if run["state"] != "success":
        raise SystemExit(f"{dag_id}: run {run_id} ended {run['state']}; logs in {cluster.logs}")
    scans = [t for t in cluster.api.task_instances(dag_id, run_id) if t["task_id"] == "scan"]
    if len(scans) != expected:
        raise SystemExit(f"{dag_id}: {len(scans)} scan tasks, expected {expected}")
    return wall, Counter(t["hostname"] for t in scans)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1, help="task slots per worker")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"workers benchmark: {reason}")

    with tempfile.TemporaryDirectory(prefix="sanitizer-workers-") as tmp:
        base = Path(tmp)
        storage = base / "storage"
        fleets = {
            n: write_fleet(
                base / "configs", rows=args.rows, parts=args.batches, name=f"w{n}", training=False
            )
            for n in (1, 2)
        }
        cluster = Cluster(
            base,
            config_dir=base / "configs",
            storage_root=storage,
            workers=("worker-a",),
            concurrency=args.concurrency,
        )
        results = []
        try:
            t0 = time.perf_counter()
            cluster.start()
            cluster.wait_for_dags(["sanitize_w1", "sanitize_w2"])
            print(f"deployment up in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            for n, fleet in fleets.items():
                if n == 2:
                    cluster.start_worker("worker-b")
                    cluster.wait_worker_ready("worker-b", timeout=180)
                land_clean(fleet, storage / "landing" / fleet.name, tag="b", count=args.batches)
                wall, hosts = _timed_run(cluster, f"sanitize_{fleet.name}", args.batches)
                results.append((n, wall, hosts))
                print(f"{n} worker(s): {wall:.1f} s {dict(hosts)}", file=sys.stderr)
        except BaseException:
            print(cluster.log_tails(30), file=sys.stderr)
            raise
        finally:
            problems = cluster.stop()
            if problems:
                print(f"cleanup problems: {problems}", file=sys.stderr)

    base_wall = results[0][1]
    print(
        f"{args.batches} clean batches of {args.rows} rows, worker concurrency "
        f"{args.concurrency}, one sanitize run each"
    )
    print()
    print(
        "| workers | scan tasks per worker | wall s (trigger → success) | batches/min | speed-up |"
    )
    print("|---|---|---|---|---|")
    for n, wall, hosts in results:
        spread = ", ".join(f"{h} {c}" for h, c in sorted(hosts.items()))
        print(
            f"| {n} | {spread} | {wall:.1f} | {args.batches / wall * 60:.1f} "
            f"| {base_wall / wall:.2f}× |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
