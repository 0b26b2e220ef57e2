"""A scheduled run: discover new files in the landing zone, claim, scan, route.

The Airflow DAG calls the same functions one step per task::

    ws = open_workspace(config)
    ids = discover(ws, config)["pending"]                 # discover task
    result = process_batch(ws, config, batch_id, sanitizer=fitted)   # mapped task
    ws.close()

Every function returns a small JSON-safe dict (XCom-friendly). A bad file never
crashes a run: it is quarantined with reason ``unreadable`` (or ``too_large``,
``unsafe_name``, ``scan_error``) and the other batches go on.
"""

from __future__ import annotations

import html
import json
import logging
import os
import posixpath
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sanitizer.errors import ConfigError, InputError
from sanitizer.quarantine.faults import fault_point
from sanitizer.quarantine.moves import (
    Workspace,
    copy_is_complete,
    place_batch,
    remove_landing_file,
    report_files,
)
from sanitizer.quarantine.store import (
    check_dataset_name,
    display_name,
    read_batch_frame,
    stored_name,
    unsafe_name_problem,
)

if TYPE_CHECKING:
    import pandas as pd

    from sanitizer.config import SanitizerConfig, StorageConfig
    from sanitizer.engine import Sanitizer
    from sanitizer.quarantine.ledger import BatchRecord
    from sanitizer.report import ScanReport

log = logging.getLogger(__name__)

#: Reasons a batch is quarantined without (or despite) a scan report.
REASON_UNREADABLE = "unreadable"
REASON_TOO_LARGE = "too_large"
REASON_UNSAFE_NAME = "unsafe_name"
REASON_SCAN_ERROR = "scan_error"
REASON_CHECKS_FAILED = "checks_failed"
REASON_PASSED = "passed"


def default_worker() -> str:
    """A worker name for the ledger: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def storage_of(config: SanitizerConfig) -> StorageConfig:
    if config.storage is None:
        raise ConfigError(
            f"dataset {config.dataset}: no [storage] table; set storage.root to use the "
            "quarantine store"
        )
    return config.storage


def open_workspace(config: SanitizerConfig) -> Workspace:
    """Store and ledger for a dataset config (its ``[storage]`` table)."""
    check_dataset_name(config.dataset)
    return Workspace.open(storage_of(config))


# -- discover -----------------------------------------------------------------------


def discover(ws: Workspace, config: SanitizerConfig, *, actor: str = "discover") -> dict[str, Any]:
    """Register settled files of ``landing/<dataset>/`` in the ledger (idempotent: a batch
    is its content hash) and return the ids of batches waiting to be scanned.

    Returns ``{"dataset", "new": [ids], "pending": [ids], "duplicates": [...],
    "skipped": [{"name", "reason"}]}``.
    """
    dataset = check_dataset_name(config.dataset)
    storage = ws.storage
    store = ws.store
    new: list[str] = []
    duplicates: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    entries = store.list_landing(dataset, marker_suffix=storage.ready_marker_suffix)
    for entry in entries:
        if entry.kind in {"hidden", "marker"}:
            continue
        if entry.kind != "file":
            log.warning("landing/%s/%s: %s, not picked up", dataset, entry.display_name, entry.kind)
            skipped.append({"name": entry.display_name, "reason": entry.kind})
            continue
        if storage.ready_marker_suffix and not store.exists(
            entry.path + storage.ready_marker_suffix
        ):
            skipped.append({"name": entry.display_name, "reason": "not_ready"})
            continue
        if entry.mtime is not None and time.time() - entry.mtime < storage.settle_seconds:
            skipped.append({"name": entry.display_name, "reason": "still_writing"})
            continue
        try:
            sha, size = store.sha256(entry.path)
            changed = (size, entry.mtime) != store.stat(entry.path) or size != entry.size
        except OSError as exc:  # e.g. no read permission: nothing can be copied either
            log.warning("landing/%s/%s: cannot read: %s", dataset, entry.display_name, exc)
            skipped.append({"name": entry.display_name, "reason": f"cannot_read: {exc}"})
            continue
        if changed:
            skipped.append({"name": entry.display_name, "reason": "still_writing"})
            continue
        batch, created = ws.ledger.register(
            dataset=dataset,
            sha256=sha,
            size=size,
            original_name=entry.display_name,
            source_path=entry.path,
            actor=actor,
        )
        if created:
            new.append(batch.id)
        elif batch.source_path != entry.path or batch.state not in {"landed", "scanning"}:
            duplicates.append(_handle_duplicate(ws, batch, entry.path, entry.display_name, actor))
    pending = [b.id for b in ws.ledger.batches(dataset=dataset, state=("landed", "scanning"))]
    return {
        "dataset": dataset,
        "new": new,
        "pending": pending,
        "duplicates": duplicates,
        "skipped": skipped,
    }


def _handle_duplicate(
    ws: Workspace, batch: BatchRecord, path: str, name: str, actor: str
) -> dict[str, Any]:
    """A file whose bytes the ledger already knows. Once the batch's own copy is safely
    in its zone, the duplicate is removed from landing and the sighting recorded."""
    out: dict[str, Any] = {"name": name, "path": path, "batch_id": batch.id, "state": batch.state}
    if batch.state in {"landed", "scanning"}:
        out["action"] = "kept: the same content is still being processed"
        return out
    if not copy_is_complete(ws, batch, ws.batch_dir(batch)):
        out["action"] = "kept: the batch's stored copy could not be verified; run reconcile"
        return out
    if remove_landing_file(ws, batch, path):
        what = "leftover of an interrupted move" if path == batch.source_path else "re-upload"
        ws.ledger.note(
            batch.id,
            actor=actor,
            reason=f"{what} {name} removed from landing: identical content already {batch.state}",
        )
        out["action"] = "removed from landing (identical content already stored)"
    return out


# -- claim, scan, route -------------------------------------------------------------


@dataclass
class SanitizerCache:
    """Fits the sanitizer on first use, once per dataset per run (not at all when every
    batch is unreadable)."""

    config: SanitizerConfig
    sanitizer: Sanitizer | None = None
    _factory: Callable[[], Sanitizer] | None = field(default=None, repr=False)

    def get(self) -> Sanitizer:
        if self.sanitizer is None:
            self.sanitizer = (self._factory or (lambda: fit_sanitizer(self.config)))()
        return self.sanitizer


def fit_sanitizer(config: SanitizerConfig) -> Sanitizer:
    """Fit on ``dataset.reference`` (a local path), with the config's GX suite if any."""
    from sanitizer.engine import Sanitizer
    from sanitizer.expectations import load_suite
    from sanitizer.io import read_table

    if config.reference_path is None:
        raise ConfigError(f"dataset {config.dataset}: dataset.reference is required to run")
    suite = load_suite(config.suite_path) if config.suite_path else None
    return Sanitizer(config=config, suite=suite).fit(read_table(config.reference_path))


def process_batch(
    ws: Workspace,
    config: SanitizerConfig,
    batch_id: str,
    *,
    sanitizer: Sanitizer | SanitizerCache | None = None,
    worker: str | None = None,
    take_over_prefix: str | None = None,
) -> dict[str, Any]:
    """Claim one batch and, if this worker won the claim, scan and route it.

    ``take_over_prefix``: a live claim by a worker whose name starts with it is taken
    over (an earlier try of the same scheduler task; see :meth:`Ledger.claim`).
    Returns ``{"batch_id", "outcome": "accepted"|"quarantined"|"skipped", ...}``.
    """
    worker = worker or default_worker()
    cache = (
        sanitizer
        if isinstance(sanitizer, SanitizerCache)
        else SanitizerCache(config=config, sanitizer=sanitizer)
    )
    batch = ws.ledger.get(batch_id)
    if not ws.ledger.claim(
        batch.id,
        worker=worker,
        stale_after=ws.storage.claim_timeout_seconds,
        take_over_prefix=take_over_prefix,
    ):
        return {
            "batch_id": batch.id,
            "dataset": batch.dataset,
            "name": batch.original_name,
            "outcome": "skipped",
            "reason": "claimed by another worker or already routed",
        }
    fault_point("after_claim")
    batch = ws.ledger.get(batch.id)
    if not _source_intact(ws, batch):
        ws.ledger.release_claim(
            batch.id, actor=worker, reason="landing file missing or changed; not scanned"
        )
        log.warning("batch %s: landing file missing or changed; skipped", batch.id)
        return {
            "batch_id": batch.id,
            "dataset": batch.dataset,
            "name": batch.original_name,
            "outcome": "skipped",
            "reason": "landing file missing or changed since discovery; see reconcile",
        }
    try:
        return scan_and_route(ws, batch, cache, worker=worker)
    except BaseException:
        # the run itself failed (e.g. the reference cannot be read): give the claim back
        ws.ledger.release_claim(batch.id, actor=worker, reason="run failed; claim released")
        raise


def _source_intact(ws: Workspace, batch: BatchRecord) -> bool:
    store = ws.store
    try:
        return store.exists(batch.source_path) and (
            store.sha256(batch.source_path)[0] == batch.sha256
        )
    except OSError:
        return False


def scan_and_route(
    ws: Workspace, batch: BatchRecord, cache: SanitizerCache, *, worker: str
) -> dict[str, Any]:
    """Scan a claimed batch and move it to ``accepted/`` or ``quarantine/``."""
    store = ws.store
    source = batch.source_path
    raw_name = posixpath.basename(source)
    report: ScanReport | None = None
    reason, message = REASON_PASSED, ""
    if (problem := unsafe_name_problem(raw_name)) is not None:
        reason, message = REASON_UNSAFE_NAME, f"file name {problem}; content not parsed"
    elif batch.size > ws.storage.max_file_bytes:
        reason = REASON_TOO_LARGE
        message = f"{batch.size} bytes exceeds storage.max_file_bytes={ws.storage.max_file_bytes}"
    else:
        try:
            frame = read_batch_frame(store, source)
        except InputError as exc:
            reason, message, frame = REASON_UNREADABLE, str(exc), None
        if frame is not None:
            # fitting is the run's business: a bad reference fails the run, not the batch
            sanitizer = cache.get()
            report, reason, message = _scan(sanitizer, frame, batch)
    to_state = "accepted" if report is not None and report.verdict == "pass" else "quarantined"

    failing = [c.name for c in report.failing_checks] if report is not None else [reason]
    verdict = report.verdict if report is not None else "quarantine"

    # a crashed earlier attempt may have left a copy in the other zone; we hold the claim
    other = "quarantined" if to_state == "accepted" else "accepted"
    store.remove_dir(ws.batch_dir(batch, other))

    title = f"Scan of {batch.original_name} ({batch.dataset}, batch {batch.id})"
    if report is not None:
        page = report.to_html(
            title=title,
            batch=frame,
            sanitizer=cache.get(),
            batch_id=batch.id,
            sha256=batch.sha256,
            source=batch.original_name,
        )
        files = report_files(report.to_json(indent=2) + "\n", page)
    else:
        files = report_files(
            json.dumps(_failure_report(batch, reason, message), indent=2) + "\n",
            _failure_html(title, reason, message),
        )
    manifest = build_manifest(ws, batch, verdict=verdict, reason=reason, failing=failing)
    manifest["message"] = message
    record = place_batch(
        ws,
        batch,
        to_state=to_state,
        source_file=source,
        source_dir=None,
        data_name=stored_name(raw_name),
        extra_files=files,
        manifest=manifest,
        actor=worker,
        reason=f"scan: {reason}" + (f" ({', '.join(failing)})" if to_state != "accepted" else ""),
        claimed_by=worker,
        verdict=verdict,
        batch_reason=reason,
        failing_checks=failing if to_state != "accepted" else [],
        message=message or None,
    )
    return {
        "batch_id": record.id,
        "dataset": record.dataset,
        "name": record.original_name,
        "outcome": record.state,
        "reason": reason,
        "failing_checks": list(record.failing_checks),
        "path": record.path,
        "report": ws.store.url_of(posixpath.join(ws.batch_dir(record), "report.html")),
    }


def _scan(
    sanitizer: Sanitizer, frame: pd.DataFrame, batch: BatchRecord
) -> tuple[ScanReport | None, str, str]:
    """``(report, reason, message)``; a batch that breaks the structural contract is
    ``unreadable``, a check that crashes outside the engine's guard is ``scan_error``."""
    try:
        report = sanitizer.scan(frame, path=batch.original_name)
    except InputError as exc:
        return None, REASON_UNREADABLE, str(exc)
    except Exception as exc:  # a bug must not stop the run: quarantine and record it
        log.exception("batch %s: scan raised", batch.id)
        return None, REASON_SCAN_ERROR, f"{type(exc).__name__}: {exc}"
    if report.verdict == "pass":
        return report, REASON_PASSED, ""
    message = "; ".join(f"{c.name}: {c.message}" for c in report.failing_checks)
    return report, REASON_CHECKS_FAILED, message


def build_manifest(
    ws: Workspace, batch: BatchRecord, *, verdict: str, reason: str, failing: list[str]
) -> dict[str, Any]:
    return {
        "dataset": batch.dataset,
        "batch_id": batch.id,
        "original_name": posixpath.basename(batch.source_path),
        "original_path": ws.store.url_of(batch.source_path),
        "size": batch.size,
        "sha256": batch.sha256,
        "verdict": verdict,
        "reason": reason,
        "failing_checks": failing,
        "landed_at": batch.created_at.isoformat(timespec="seconds"),
        "scanned_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
    }


def _failure_report(batch: BatchRecord, reason: str, message: str) -> dict[str, Any]:
    return {
        "dataset": batch.dataset,
        "verdict": "quarantine",
        "reason": reason,
        "message": message,
        "rows": 0,
        "checks": [],
        "rows_flagged": [],
        "row_scores": [],
    }


def _failure_html(title: str, reason: str, message: str) -> str:
    esc = html.escape
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'">\n'
        f"<title>{esc(title)}</title></head><body>\n"
        f'<h1 id="verdict">QUARANTINE: {esc(reason)}</h1>\n<p>{esc(title)}</p>\n'
        f"<pre>{esc(message)}</pre>\n</body></html>\n"
    )


# -- a whole run ------------------------------------------------------------------


def run_dataset(
    config: SanitizerConfig,
    *,
    worker: str | None = None,
    sanitizer: Sanitizer | None = None,
    workspace: Workspace | None = None,
) -> dict[str, Any]:
    """Discover, claim, scan and route every waiting batch of one dataset.

    Returns ``{"dataset", "batches": [per-batch dicts], "duplicates", "skipped",
    "counts": {outcome: n}}``. Raises only when the run itself cannot proceed
    (no storage, ledger unreachable, reference unreadable).
    """
    worker = worker or default_worker()
    ws = workspace or open_workspace(config)
    try:
        found = discover(ws, config, actor=worker)
        cache = SanitizerCache(config=config, sanitizer=sanitizer)
        results = [
            process_batch(ws, config, batch_id, sanitizer=cache, worker=worker)
            for batch_id in found["pending"]
        ]
        # re-uploads of a batch that was still in flight at discovery can go now
        duplicates = [
            _handle_duplicate(ws, ws.ledger.get(d["batch_id"]), d["path"], d["name"], worker)
            if d["state"] in {"landed", "scanning"}
            else d
            for d in found["duplicates"]
        ]
    finally:
        if workspace is None:
            ws.close()
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    return {
        "dataset": config.dataset,
        "batches": results,
        "duplicates": duplicates,
        "skipped": found["skipped"],
        "counts": counts,
    }


__all__ = [
    "SanitizerCache",
    "default_worker",
    "discover",
    "display_name",
    "fit_sanitizer",
    "open_workspace",
    "process_batch",
    "run_dataset",
    "scan_and_route",
]
