"""Operator decisions on quarantined batches (release / reject) and read-only views.

``release_batch`` moves ``quarantine/<ds>/<id>/`` to ``accepted/``;
``reject_batch`` to ``rejected/`` (kept, never deleted). Both need an actor and
a reason, both are lossless moves, and both are idempotent: repeating a
decision that is already recorded changes nothing.
"""

from __future__ import annotations

import logging
import posixpath
from datetime import UTC, datetime
from typing import Any

from sanitizer.quarantine.errors import StoreError, TransitionError
from sanitizer.quarantine.moves import Workspace, copy_is_complete, place_batch
from sanitizer.quarantine.store import MANIFEST, REPORT_HTML, REPORT_JSON

log = logging.getLogger(__name__)

DECISIONS: dict[str, str] = {"release": "released", "reject": "rejected"}


def release_batch(ws: Workspace, batch_id: str, *, actor: str, reason: str) -> dict[str, Any]:
    """Release a quarantined batch to ``accepted/`` (it becomes trainable)."""
    return decide(ws, batch_id, "release", actor=actor, reason=reason)


def reject_batch(ws: Workspace, batch_id: str, *, actor: str, reason: str) -> dict[str, Any]:
    """Reject a quarantined batch: moved to ``rejected/``, kept for the record."""
    return decide(ws, batch_id, "reject", actor=actor, reason=reason)


def decide(
    ws: Workspace, batch_id: str, decision: str, *, actor: str, reason: str
) -> dict[str, Any]:
    """Apply ``release`` or ``reject``; returns ``{"batch_id", "state", "changed", "path"}``."""
    if decision not in DECISIONS:
        raise TransitionError(f"unknown decision {decision!r}; use release or reject")
    if not actor or not actor.strip():
        raise TransitionError(f"{decision}: an actor (who decides) is required")
    if not reason or not reason.strip():
        raise TransitionError(f"{decision}: a reason is required")
    to_state = DECISIONS[decision]
    batch = ws.ledger.get(batch_id)
    if batch.state == to_state:  # a retry: finish any leftover of the first attempt
        from sanitizer.quarantine.reconcile import reconcile_batch

        reconcile_batch(ws, batch, actor=actor, stale_after=None)
        return {"batch_id": batch.id, "state": batch.state, "changed": False, "path": batch.path}
    if batch.state != "quarantined":
        raise TransitionError(
            f"batch {batch.id} is {batch.state}; only quarantined batches can be "
            f"{to_state} (cannot go from {batch.state} to {to_state})"
        )
    source_dir = ws.batch_dir(batch)
    if not copy_is_complete(ws, batch, source_dir):
        raise StoreError(
            f"batch {batch.id}: the quarantined copy in {ws.store.url_of(source_dir)} is "
            "missing or damaged; run `sanitizer reconcile` first"
        )
    store = ws.store
    manifest = store.read_json(posixpath.join(source_dir, MANIFEST))
    data_name = str(manifest["data_file"])
    extra = {}
    for name in (REPORT_JSON, REPORT_HTML):
        path = posixpath.join(source_dir, name)
        if store.exists(path):
            with store.fs.open(path, "rb") as fh:
                extra[name] = fh.read()
    manifest["decision"] = {
        "decision": decision,
        "actor": actor,
        "reason": reason,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    record = place_batch(
        ws,
        batch,
        to_state=to_state,
        source_file=posixpath.join(source_dir, data_name),
        source_dir=source_dir,
        data_name=data_name,
        extra_files=extra,
        manifest=manifest,
        actor=actor,
        reason=reason,
    )
    return {"batch_id": record.id, "state": record.state, "changed": True, "path": record.path}


def list_batches(
    ws: Workspace, *, dataset: str | None = None, state: str | None = None
) -> list[dict[str, Any]]:
    """Ledger rows (JSON-safe), oldest first."""
    return [b.to_dict() for b in ws.ledger.batches(dataset=dataset, state=state)]


def show_batch(ws: Workspace, batch_id: str) -> dict[str, Any]:
    """Everything about one batch: ledger row, manifest, failing checks, report path,
    and the history of events."""
    batch = ws.ledger.get(batch_id)
    out: dict[str, Any] = {"batch": batch.to_dict(), "manifest": None, "report": None}
    if batch.state not in {"landed", "scanning"}:
        folder = ws.batch_dir(batch)
        manifest_path = posixpath.join(folder, MANIFEST)
        if ws.store.exists(manifest_path):
            out["manifest"] = ws.store.read_json(manifest_path)
        report = posixpath.join(folder, REPORT_HTML)
        if ws.store.exists(report):
            out["report"] = ws.store.url_of(report)
    out["failing_checks"] = list(batch.failing_checks)
    out["events"] = [e.to_dict() for e in ws.ledger.events(batch.id)]
    return out
