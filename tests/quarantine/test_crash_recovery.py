"""Kill the process at each step of a move (copy → verify → record → remove) and check
that a complete copy survives and ``reconcile`` brings ledger and zones into agreement.

The kill is ``os._exit`` at a named fault point (``SANITIZER_FAULT_STEP``) inside a
real ``sanitizer`` subprocess: no cleanup code runs, as with a killed worker.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from sanitizer.quarantine.faults import ENV_VAR, FAULT_EXIT_CODE, STEPS
from sanitizer.quarantine.moves import Workspace
from sanitizer.quarantine.reconcile import reconcile
from sanitizer.quarantine.review import release_batch
from sanitizer.quarantine.runner import run_dataset

GARBAGE = b"\xff\xfe\x00 this is not a table \x00" * 50


@pytest.fixture
def env(env: Any) -> Any:
    """The shared env with a 1000-byte limit: GARBAGE is routed as ``too_large``, so the
    killed subprocesses never import pandas (the move code is the same for every route)."""
    with env.config_path.open("a", encoding="utf-8") as fh:
        fh.write("max_file_bytes = 1000\n")
    return env


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def complete_copies(env: Any, sha: str) -> list[str]:
    """Where a complete copy of the bytes with this hash exists: landing files, and zone
    data files whose folder has a manifest (written only after verification)."""
    found = []
    for p in env.landing.glob("*"):
        if p.is_file() and _sha(p.read_bytes()) == sha:
            found.append("landing")
    for zone in ("accepted", "quarantine", "rejected"):
        for manifest in (env.root / zone / "credit").glob("*/manifest.json"):
            data = manifest.parent / json.loads(manifest.read_text())["data_file"]
            if data.exists() and _sha(data.read_bytes()) == sha:
                found.append(zone)
    return found


def _ws(env: Any) -> Workspace:
    return Workspace.open(env.config.storage)


def _reconcile(env: Any) -> dict[str, Any]:
    ws = _ws(env)
    try:
        return reconcile(ws, stale_after=0)
    finally:
        ws.close()


@pytest.mark.parametrize("step", STEPS)
def test_crash_during_scan_routing_is_recovered(env: Any, step: str) -> None:
    (env.landing / "garbage.csv").write_bytes(GARBAGE)
    sha = _sha(GARBAGE)

    proc = env.cli("run", "--config", str(env.config_path), env={ENV_VAR: step})
    assert proc.returncode == FAULT_EXIT_CODE, proc.stderr
    assert complete_copies(env, sha), f"no complete copy left after a crash {step}"

    result = _reconcile(env)
    assert result["in_agreement"], result["problems"]
    assert complete_copies(env, sha)

    final = run_dataset(env.config, worker="after-crash")
    assert final["counts"] in ({}, {"quarantined": 1})
    assert complete_copies(env, sha) == ["quarantine"]  # exactly one copy, where it belongs
    assert list(env.landing.iterdir()) == []
    assert not (env.root / "accepted" / "credit").exists() or not any(
        (env.root / "accepted" / "credit").iterdir()
    )
    ws = _ws(env)
    try:
        (batch,) = ws.ledger.batches()
        assert batch.state == "quarantined" and batch.reason == "too_large"
        moves = [(e.from_state, e.to_state) for e in ws.ledger.events(batch.id)]
        assert moves.count(("scanning", "quarantined")) == 1
        assert moves[0] == (None, "landed")
    finally:
        ws.close()
    assert _reconcile(env) == {"checked": 1, "actions": [], "problems": [], "in_agreement": True}


@pytest.mark.parametrize("step", [s for s in STEPS if s != "after_claim"])
def test_crash_during_release_is_recovered(env: Any, step: str) -> None:
    (env.landing / "garbage.csv").write_bytes(GARBAGE)
    sha = _sha(GARBAGE)
    (routed,) = run_dataset(env.config, worker="w")["batches"]
    batch_id = routed["batch_id"]

    proc = env.cli(
        "quarantine", "release", batch_id[:8], "--config", str(env.config_path),
        "--actor", "alice", "--reason", "reviewed", env={ENV_VAR: step},
    )  # fmt: skip
    assert proc.returncode == FAULT_EXIT_CODE, proc.stderr
    assert complete_copies(env, sha)

    assert _reconcile(env)["in_agreement"]
    assert complete_copies(env, sha)
    ws = _ws(env)
    try:
        result = release_batch(ws, batch_id, actor="alice", reason="reviewed")  # the retry
        assert result["state"] == "released"
        assert complete_copies(env, sha) == ["accepted"]
        assert not (env.root / "quarantine" / "credit" / batch_id).exists()
        events = [(e.from_state, e.to_state) for e in ws.ledger.events(batch_id)]
        assert events.count(("quarantined", "released")) == 1
    finally:
        ws.close()


@pytest.mark.slow
def test_crash_after_verify_of_an_accepted_batch_rolls_forward(env: Any, q_parts: Any) -> None:
    text = env.config_path.read_text(encoding="utf-8")
    env.config_path.write_text(text.replace("max_file_bytes = 1000\n", ""), encoding="utf-8")
    q_parts[1].to_csv(env.landing / "clean.csv", index=False)
    sha = _sha((env.landing / "clean.csv").read_bytes())
    proc = env.cli("run", "--config", str(env.config_path), env={ENV_VAR: "after_verify"})
    assert proc.returncode == FAULT_EXIT_CODE, proc.stderr
    assert sorted(complete_copies(env, sha)) == ["accepted", "landing"]

    proc = env.cli("reconcile", "--config", str(env.config_path), "--stale-after", "0")
    assert proc.returncode == 0, proc.stderr
    assert "completed interrupted move to accepted" in proc.stdout
    assert complete_copies(env, sha) == ["accepted"]
    ws = _ws(env)
    try:
        (batch,) = ws.ledger.batches()
        assert batch.state == "accepted" and batch.verdict == "pass"
        assert ws.ledger.events(batch.id)[-1].actor == "reconcile"
    finally:
        ws.close()


def test_reconcile_leaves_live_claims_and_unknown_folders_alone(env: Any) -> None:
    (env.landing / "garbage.csv").write_bytes(GARBAGE)
    ws = _ws(env)
    try:
        from sanitizer.quarantine.runner import discover

        (batch_id,) = discover(ws, env.config)["new"]
        assert ws.ledger.claim(batch_id, worker="alive", stale_after=3600)
        stray = env.root / "quarantine" / "credit" / ("f" * 16)
        stray.mkdir(parents=True)
        (stray / "x.csv").write_text("?")
        result = reconcile(ws)  # default: the configured claim timeout (an hour)
        assert result["actions"] == []
        assert [p["batch_id"] for p in result["problems"]] == ["f" * 16]
        assert ws.ledger.get(batch_id).claimed_by == "alive"
        assert (stray / "x.csv").exists() and (env.landing / "garbage.csv").exists()
    finally:
        ws.close()


def test_landing_file_replaced_under_the_same_name_is_never_deleted(
    env: Any, tmp_path: Path
) -> None:
    (env.landing / "b.csv").write_bytes(GARBAGE)
    proc = env.cli("run", "--config", str(env.config_path), env={ENV_VAR: "after_record"})
    assert proc.returncode == FAULT_EXIT_CODE, proc.stderr
    (env.landing / "b.csv").write_bytes(b"a new upload with the same name")
    assert _reconcile(env)["in_agreement"]
    assert (env.landing / "b.csv").read_bytes() == b"a new upload with the same name"
    assert complete_copies(env, _sha(GARBAGE)) == ["quarantine"]
