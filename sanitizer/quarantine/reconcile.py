"""Bring the ledger and the zones back into agreement after a crash.

For every batch the ledger's state names one home (a landing file or a zone
folder). Reconcile never deletes the last complete copy of a batch:

* ``scanning`` with a stale claim: if a complete, verified copy already sits in
  ``accepted/`` or ``quarantine/`` (the crash came after the verify step), the
  move is finished from its manifest and recorded; otherwise the partial copy
  is removed and the claim released, so the next run scans the batch again.
* ``accepted``/``quarantined``/``released``/``rejected`` with a complete home:
  leftovers of the interrupted move (the landing file, the old zone folder) are
  removed.
* Anything else (a home without a complete copy, folders no ledger row knows)
  is reported as a problem for a human and left untouched.
"""

from __future__ import annotations

import logging
import posixpath
from datetime import UTC, datetime
from typing import Any

from sanitizer.quarantine.ledger import BatchRecord
from sanitizer.quarantine.moves import (
    ZONE_OF_STATE,
    Workspace,
    copy_is_complete,
    remove_landing_file,
)
from sanitizer.quarantine.store import MANIFEST

log = logging.getLogger(__name__)

_FOLDER_ZONES = ("accepted", "quarantine", "rejected")


def reconcile(
    ws: Workspace,
    *,
    datasets: list[str] | None = None,
    actor: str = "reconcile",
    stale_after: float | None = None,
) -> dict[str, Any]:
    """Reconcile every batch of the given datasets (default: all in the ledger).

    ``stale_after`` (seconds, default ``storage.claim_timeout_seconds``): a
    ``scanning`` claim younger than this is assumed to be a live worker and left
    alone; pass 0 only when no run is in progress.

    Returns ``{"checked", "actions": [...], "problems": [...], "in_agreement"}``.
    """
    actions: list[dict[str, str]] = []
    problems: list[dict[str, str]] = []
    records = ws.ledger.batches()
    if datasets is not None:
        records = [b for b in records if b.dataset in datasets]
    for batch in records:
        done, issues = reconcile_batch(ws, batch, actor=actor, stale_after=stale_after)
        actions += [{"batch_id": batch.id, "action": a} for a in done]
        problems += [{"batch_id": batch.id, "problem": p} for p in issues]
    known = {(b.dataset, b.id) for b in ws.ledger.batches()}
    for dataset in datasets if datasets is not None else ws.store.datasets():
        for zone in _FOLDER_ZONES:
            for batch_id in ws.store.batch_dirs(zone, dataset):
                if (dataset, batch_id) not in known:
                    problems.append(
                        {
                            "batch_id": batch_id,
                            "problem": f"{zone}/{dataset}/{batch_id} has no ledger row; "
                            "left in place",
                        }
                    )
    for item in actions:
        log.info("reconcile %s: %s", item["batch_id"], item["action"])
    for item in problems:
        log.warning("reconcile %s: %s", item["batch_id"], item["problem"])
    return {
        "checked": len(records),
        "actions": actions,
        "problems": problems,
        "in_agreement": not problems,
    }


def reconcile_batch(
    ws: Workspace, batch: BatchRecord, *, actor: str, stale_after: float | None
) -> tuple[list[str], list[str]]:
    """Reconcile one batch; returns ``(actions taken, problems left)``."""
    store = ws.store
    folders = {z: store.batch_dir(z, batch.dataset, batch.id) for z in _FOLDER_ZONES}
    present = {z: f for z, f in folders.items() if store.exists(f)}
    actions: list[str] = []
    problems: list[str] = []

    if batch.state == "scanning" and _claim_is_live(ws, batch, stale_after):
        return actions, problems

    if batch.state in {"landed", "scanning"}:
        complete = [
            z
            for z in ("accepted", "quarantine")
            if z in present and copy_is_complete(ws, batch, present[z])
        ]
        if batch.state == "scanning" and complete:
            zone = complete[0]
            record = _finish_scan_move(ws, batch, present[zone], zone, actor)
            actions.append(f"completed interrupted move to {record.state}")
            for z, f in present.items():
                if z != zone:
                    store.remove_dir(f)
                    actions.append(f"removed partial copy in {z}/")
            if remove_landing_file(ws, batch, batch.source_path):
                actions.append("removed landing file (copy verified)")
            return actions, problems
        if not _source_intact(ws, batch):
            problems.append(
                f"{batch.state}, but the landing file {store.url_of(batch.source_path)} is "
                "missing or changed and no complete copy exists; check it by hand"
            )
            return actions, problems
        for z, f in present.items():
            store.remove_dir(f)
            actions.append(f"removed partial copy in {z}/ (landing file intact)")
        if batch.state == "scanning" and ws.ledger.release_claim(
            batch.id, actor=actor, reason="reconcile: stale claim released; batch will be rescanned"
        ):
            actions.append("released stale claim; the next run scans it again")
        return actions, problems

    home_zone = ZONE_OF_STATE[batch.state]
    home = folders[home_zone]
    if not copy_is_complete(ws, batch, home):
        elsewhere = [z for z, f in present.items() if copy_is_complete(ws, batch, f)]
        problems.append(
            f"ledger says {batch.state} but {home_zone}/ holds no complete copy"
            + (f" (complete copy found in {', '.join(elsewhere)}/)" if elsewhere else "")
            + "; nothing removed"
        )
        return actions, problems
    for z, f in present.items():
        if z != home_zone:
            store.remove_dir(f)
            actions.append(f"removed leftover copy in {z}/ (home {home_zone}/ verified)")
    if store.exists(batch.source_path) and remove_landing_file(ws, batch, batch.source_path):
        actions.append("removed leftover landing file (copy verified)")
    return actions, problems


def _finish_scan_move(
    ws: Workspace, batch: BatchRecord, folder: str, zone: str, actor: str
) -> BatchRecord:
    manifest = ws.store.read_json(posixpath.join(folder, MANIFEST))
    to_state = "accepted" if zone == "accepted" else "quarantined"
    failing = [str(c) for c in manifest.get("failing_checks", [])]
    reason = str(manifest.get("reason", "unknown"))
    return ws.ledger.transition(
        batch.id,
        to_state,
        actor=actor,
        reason=f"reconcile: completed interrupted move (scan: {reason})",
        path=ws.store.url_of(posixpath.join(folder, str(manifest["data_file"]))),
        verdict=str(manifest.get("verdict", "quarantine")),
        batch_reason=reason,
        failing_checks=failing if to_state == "quarantined" else [],
        message=str(manifest.get("message") or "") or None,
    )


def _source_intact(ws: Workspace, batch: BatchRecord) -> bool:
    store = ws.store
    return store.exists(batch.source_path) and store.sha256(batch.source_path)[0] == batch.sha256


def _claim_is_live(ws: Workspace, batch: BatchRecord, stale_after: float | None) -> bool:
    limit = ws.storage.claim_timeout_seconds if stale_after is None else stale_after
    if batch.claimed_at is None:
        return False
    return (datetime.now(UTC) - batch.claimed_at).total_seconds() < limit
