"""Several processes race to claim the same batches: exactly one wins each batch.

Run against a fresh PostgreSQL schema (skipped with a reason when the server is not
reachable) and against the default SQLite ledger file."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sanitizer.quarantine.ledger import Ledger

N_PROCESSES = 6
N_BATCHES = 12

RACER = """
import json, os, sys, time
from pathlib import Path
from sanitizer.quarantine.ledger import Ledger
url, sync, ids = sys.argv[1], Path(sys.argv[2]), sys.argv[3].split(",")
ledger = Ledger(url)
(sync / f"ready-{os.getpid()}").touch()
while not (sync / "go").exists():
    time.sleep(0.002)
won = [i for i in ids if ledger.claim(i, worker=f"racer-{os.getpid()}", stale_after=3600)]
print(json.dumps(won))
"""


def _race(url: str, batch_ids: list[str], sync: Path) -> list[list[str]]:
    sync.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url, str(sync), ",".join(batch_ids)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(N_PROCESSES)
    ]
    deadline = time.time() + 120
    while len(list(sync.glob("ready-*"))) < N_PROCESSES:
        assert time.time() < deadline, "racers did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    (sync / "go").touch()  # all processes start claiming at the same moment
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    return results


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_concurrent_claims_have_exactly_one_winner(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (
        request.getfixturevalue("pg_url")
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    )
    ledger = Ledger(url)
    try:
        ids = []
        for i in range(N_BATCHES):
            batch, _ = ledger.register(
                dataset="credit",
                sha256=hashlib.sha256(f"batch {i}".encode()).hexdigest(),
                size=1,
                original_name=f"b{i}.csv",
                source_path=f"/landing/credit/b{i}.csv",
                actor="test",
            )
            ids.append(batch.id)
        results = _race(url, ids, tmp_path / "sync")
        won = [b for r in results for b in r]
        assert sorted(won) == sorted(ids)  # every batch claimed, none twice
        for batch_id in ids:
            claims = [
                e
                for e in ledger.events(batch_id)
                if (e.from_state, e.to_state) == ("landed", "scanning")
            ]
            assert len(claims) == 1
            assert ledger.get(batch_id).claimed_by == claims[0].actor
        print(f"{backend}: {N_PROCESSES} processes, {N_BATCHES} batches, wins per process "
              f"{sorted(len(r) for r in results)}")  # fmt: skip
    finally:
        ledger.close()


@pytest.mark.slow
def test_two_runs_at_once_route_each_batch_once(env: Any, pg_url: str) -> None:
    """Two ``sanitizer run`` processes on one landing zone and one PostgreSQL ledger:
    both discover everything, each batch is routed exactly once."""
    with env.config_path.open("a", encoding="utf-8") as fh:
        fh.write(f'ledger_url = "{pg_url}"\n')
    n = 8
    for i in range(n):  # unreadable files: routing without the slow GX scan
        (env.landing / f"bad{i}.csv").write_bytes(f"\x00 not a table {i}".encode())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sanitizer.cli",
                "run",
                "--config",
                str(env.config_path),
                "--json",
                "--worker",
                f"worker{k}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=env.base,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        for k in range(2)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        outputs.append(json.loads(out)["datasets"][0])
    routed = [b for o in outputs for b in o["batches"] if b["outcome"] == "quarantined"]
    assert len(routed) == n and len({b["batch_id"] for b in routed}) == n
    assert list(env.landing.iterdir()) == []
    assert len(list((env.root / "quarantine" / "credit").iterdir())) == n
    ledger = Ledger(pg_url)
    try:
        assert len(ledger.batches(state="quarantined")) == n
        for batch in ledger.batches():
            moves = [(e.from_state, e.to_state) for e in ledger.events(batch.id)]
            assert moves.count((None, "landed")) == 1
            assert moves.count(("scanning", "quarantined")) == 1
    finally:
        ledger.close()
