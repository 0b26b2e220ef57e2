"""Lossless moves between zones: copy → verify hash → record in the ledger → remove source.

A crash at any step leaves at least one complete copy (the source is removed
only after the destination was verified and the ledger updated), and
:mod:`sanitizer.quarantine.reconcile` can finish or undo the move. Each step
calls :func:`~sanitizer.quarantine.faults.fault_point` so tests can kill the
process exactly there.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sanitizer.quarantine.errors import StoreError
from sanitizer.quarantine.faults import fault_point
from sanitizer.quarantine.store import MANIFEST, REPORT_HTML, REPORT_JSON, Store

if TYPE_CHECKING:
    from sanitizer.config import StorageConfig
    from sanitizer.quarantine.ledger import BatchRecord, Ledger

log = logging.getLogger(__name__)

#: The zone that holds a batch in each state (landed/scanning batches stay in landing).
ZONE_OF_STATE: dict[str, str] = {
    "landed": "landing",
    "scanning": "landing",
    "accepted": "accepted",
    "released": "accepted",
    "quarantined": "quarantine",
    "rejected": "rejected",
}


@dataclass
class Workspace:
    """The store and the ledger for one storage root: what every operation needs."""

    storage: StorageConfig
    store: Store
    ledger: Ledger

    @classmethod
    def open(cls, storage: StorageConfig) -> Workspace:
        from sanitizer.quarantine.ledger import Ledger

        return cls(
            storage=storage,
            store=Store(storage.root),
            ledger=Ledger(storage.effective_ledger_url),
        )

    def close(self) -> None:
        self.ledger.close()

    def batch_dir(self, batch: BatchRecord, state: str | None = None) -> str:
        zone = ZONE_OF_STATE[state or batch.state]
        if zone == "landing":
            raise StoreError(f"batch {batch.id} in state {batch.state} has no batch folder")
        return self.store.batch_dir(zone, batch.dataset, batch.id)


def place_batch(
    ws: Workspace,
    batch: BatchRecord,
    *,
    to_state: str,
    source_file: str,
    source_dir: str | None,
    data_name: str,
    extra_files: Mapping[str, bytes],
    manifest: Mapping[str, Any],
    actor: str,
    reason: str,
    claimed_by: str | None = None,
    verdict: str | None = None,
    batch_reason: str | None = None,
    failing_checks: Sequence[str] | None = None,
    message: str | None = None,
) -> BatchRecord:
    """Move one batch into the folder of ``to_state`` and record the transition.

    ``source_file`` is the data file to copy; ``source_dir`` (a zone batch folder)
    or, when None, ``source_file`` itself (a landing file) is removed at the end.
    """
    store = ws.store
    dest_dir = ws.batch_dir(batch, to_state)
    dest_data = posixpath.join(dest_dir, data_name)

    # 1. copy (a retry reuses an identical copy already in place)
    if not (store.exists(dest_data) and store.sha256(dest_data)[0] == batch.sha256):
        store.copy_file(source_file, dest_data)
    for name, content in extra_files.items():
        store.write_bytes(posixpath.join(dest_dir, name), content)
    fault_point("after_copy")

    # 2. verify: hash what is on the destination, independently of the copy
    written, size = store.sha256(dest_data)
    if written != batch.sha256 or size != batch.size:
        store.remove_dir(dest_dir)
        raise StoreError(
            f"batch {batch.id}: copy to {store.url_of(dest_data)} does not match the source "
            f"(sha256 {written[:12]}… != {batch.sha256[:12]}…); nothing was moved"
        )
    store.write_json(
        posixpath.join(dest_dir, MANIFEST),
        {**manifest, "state": to_state, "data_file": data_name, "verified_at": _now()},
    )
    fault_point("after_verify")

    # 3. record
    record = ws.ledger.transition(
        batch.id,
        to_state,
        actor=actor,
        reason=reason,
        claimed_by=claimed_by,
        path=store.url_of(dest_data),
        verdict=verdict,
        batch_reason=batch_reason,
        failing_checks=failing_checks,
        message=message,
    )
    fault_point("after_record")

    # 4. remove the source
    if source_dir is not None:
        store.remove_dir(source_dir)
    else:
        remove_landing_file(ws, batch, source_file)
    fault_point("after_remove")
    log.info("batch %s: %s -> %s (%s)", batch.id, batch.state, to_state, reason)
    return record


def remove_landing_file(ws: Workspace, batch: BatchRecord, path: str) -> bool:
    """Remove a landing file only if it still holds this batch's bytes (a new upload
    under the same name must never be deleted), and its ready marker if any."""
    store = ws.store
    if not store.exists(path):
        return False
    if store.sha256(path)[0] != batch.sha256:
        log.warning(
            "batch %s: %s changed since it was copied; left in place", batch.id, store.url_of(path)
        )
        return False
    store.remove_file(path)
    suffix = ws.storage.ready_marker_suffix
    if suffix:
        store.remove_file(path + suffix)
    return True


def copy_is_complete(ws: Workspace, batch: BatchRecord, folder: str) -> bool:
    """A batch folder is complete when its manifest exists and its data file has the
    batch's hash (the manifest is written only after that was verified once)."""
    store = ws.store
    manifest_path = posixpath.join(folder, MANIFEST)
    if not store.exists(manifest_path):
        return False
    try:
        manifest = store.read_json(manifest_path)
        data = posixpath.join(folder, str(manifest["data_file"]))
        return store.exists(data) and store.sha256(data)[0] == batch.sha256
    except (OSError, ValueError, KeyError, TypeError):
        return False


def report_files(report_json: str, report_html: str) -> dict[str, bytes]:
    return {REPORT_JSON: report_json.encode("utf-8"), REPORT_HTML: report_html.encode("utf-8")}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
