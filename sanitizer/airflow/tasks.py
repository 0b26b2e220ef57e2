"""The work of each DAG task, as plain functions (imported inside the tasks).

Each function takes the dataset's config path (and small JSON values from XCom)
and returns small JSON values; the heavy lifting is in ``sanitizer.quarantine``
and ``sanitizer.training``, the same code ``sanitizer run`` and the CLI use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import socket
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sanitizer import __version__
from sanitizer.airflow.settings import LEDGER_CONN_ID, STORAGE_ROOT_VARIABLE
from sanitizer.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from sanitizer.config import SanitizerConfig
    from sanitizer.engine import Sanitizer
    from sanitizer.quarantine.moves import Workspace

log = logging.getLogger(__name__)

RELEASE, REJECT, KEEP = "Release", "Reject", "Keep quarantined"
REVIEW_OPTIONS = [RELEASE, REJECT, KEEP]
TRAINABLE_STATES = ("accepted", "released")


# -- configuration ------------------------------------------------------------------


def load_runtime_config(config_path: str) -> SanitizerConfig:
    """The dataset config with the deployment's overrides (Airflow connection
    ``sanitizer_ledger`` for the ledger, variable ``sanitizer_storage_root``)."""
    from sanitizer.config import StorageConfig, load_config

    config = load_config(config_path)
    root = _variable(STORAGE_ROOT_VARIABLE)
    ledger = _ledger_url()
    storage = config.storage
    if storage is None:
        if root is None:
            raise ConfigError(
                f"{config_path}: [storage] root is not set and the Airflow variable "
                f"{STORAGE_ROOT_VARIABLE} does not exist"
            )
        storage = StorageConfig(root=root, ledger_url=ledger)
    elif root or ledger:
        storage = replace(
            storage, root=root or storage.root, ledger_url=ledger or storage.ledger_url
        )
    return replace(config, storage=storage)


def _variable(key: str) -> str | None:
    try:
        from airflow.sdk import Variable

        value = Variable.get(key, default=None)
    except Exception:  # no Airflow context (plain Python): no override
        return None
    return str(value) if value else None


def _ledger_url() -> str | None:
    try:
        from airflow.sdk import Connection

        conn = Connection.get(LEDGER_CONN_ID)
    except Exception:  # not defined, or no Airflow context
        return None
    extra = conn.extra_dejson or {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    uri = conn.get_uri()
    for old, new in (("postgres://", "postgresql://"), ("postgresql+psycopg2://", "postgresql://")):
        if uri.startswith(old):
            uri = new + uri[len(old) :]
    return uri


def _workspace(config: SanitizerConfig) -> Workspace:
    from sanitizer.quarantine.runner import open_workspace

    return open_workspace(config)


# -- sanitize DAG -------------------------------------------------------------------


def prepare_profile(config_path: str) -> dict[str, Any]:
    """Fit the checks once per change of reference, config or accepted history, and store
    the profile under ``<root>/profiles/<dataset>/``; the mapped scans load it."""
    from sanitizer.profile import save_profile
    from sanitizer.quarantine.runner import fit_sanitizer

    config = load_runtime_config(config_path)
    ws = _workspace(config)
    try:
        history = ws.ledger.batches(dataset=config.dataset, state=list(TRAINABLE_STATES))
        key = _profile_key(config, [b.id for b in history])
        path = posixpath.join(ws.store.root, "profiles", config.dataset, f"{key}.zip")
        if ws.store.exists(path):
            return {"profile": path, "fitted": False, "history_batches": len(history)}
        sanitizer = fit_sanitizer(config)
        frames = [frame for _, frame in _load_batches(ws, history)]
        if frames:
            import pandas as pd

            sanitizer.add_history(pd.concat(frames, ignore_index=True))
        with tempfile.TemporaryDirectory(prefix="sanitizer-profile-") as tmp:
            local = save_profile(sanitizer, Path(tmp) / "profile.zip")
            ws.store.write_bytes(path, local.read_bytes())
        return {"profile": path, "fitted": True, "history_batches": len(history)}
    finally:
        ws.close()


def _profile_key(config: SanitizerConfig, history_ids: Iterable[str]) -> str:
    """Content key of a stored profile: a new key (a refit) when the reference, suite,
    config, package version, profile format or accepted history change."""
    from sanitizer import profile

    digest = hashlib.sha256()
    digest.update(f"profile format {profile.FORMAT_VERSION}\n".encode())
    for part in (config.reference_path, config.suite_path):
        if part is not None:
            digest.update(Path(part).read_bytes())
    digest.update(
        repr((config.checks, config.policy, config.suite_generation, __version__)).encode()
    )
    digest.update(",".join(sorted(history_ids)).encode())
    return digest.hexdigest()[:20]


def discover_batches(config_path: str) -> list[str]:
    """Register settled landing files; return the ids waiting for a scan."""
    from sanitizer.quarantine.runner import discover

    config = load_runtime_config(config_path)
    ws = _workspace(config)
    try:
        found = discover(ws, config)
    finally:
        ws.close()
    for skipped in found["skipped"]:
        log.warning("not picked up: %s (%s)", skipped.get("name"), skipped.get("reason"))
    log.info(
        "dataset %s: %d new, %d pending", config.dataset, len(found["new"]), len(found["pending"])
    )
    return list(found["pending"])


def scan_batch(config_path: str, batch_id: str, profile: Mapping[str, Any]) -> dict[str, Any]:
    """Claim, scan and route one batch (idempotent: a retry of a routed batch is a no-op)."""
    from sanitizer.quarantine.runner import process_batch

    config = load_runtime_config(config_path)
    worker, earlier_tries = task_claimant()
    ws = _workspace(config)
    try:
        sanitizer = _load_profile(ws, str(profile["profile"]))
        result = process_batch(
            ws, config, batch_id, sanitizer=sanitizer, worker=worker, take_over_prefix=earlier_tries
        )
        if result["outcome"] == "skipped":  # already routed by an earlier try or worker
            record = ws.ledger.get(batch_id)
            result = {
                **result,
                "outcome": record.state,
                "failing_checks": list(record.failing_checks),
            }
            result.setdefault("reason", record.reason)
            if record.state not in {"landed", "scanning"}:
                result["report"] = ws.store.url_of(
                    posixpath.join(ws.batch_dir(record), "report.html")
                )
        result["rows"] = _report_rows(ws, batch_id)
        return result
    finally:
        ws.close()


def task_claimant() -> tuple[str | None, str | None]:
    """``(worker, prefix)`` for ledger claims made by the running Airflow task.

    The worker name is the task instance (hashed: dag, run, task, map index), its try
    and host: ``airflow-task:<key>:try<n>:<host>:<pid>``; the prefix matches every try
    of that task instance. A retry of a scan whose worker died mid-scan then takes the
    batch over at once instead of finding it claimed (for ``claim_timeout_seconds``)
    and leaving it unrouted. Outside a task: ``(None, None)``, the default worker name.
    """
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
    except Exception:  # no Airflow context (plain Python)
        return None, None
    key = hashlib.sha256(
        f"{ti.dag_id}\n{ti.run_id}\n{ti.task_id}\n{ti.map_index}".encode()
    ).hexdigest()[:16]
    prefix = f"airflow-task:{key}:"
    host = getattr(ti, "hostname", None) or socket.gethostname()
    return f"{prefix}try{ti.try_number}:{host}:{os.getpid()}"[:200], prefix


def _load_profile(ws: Workspace, path: str) -> Sanitizer:
    from sanitizer.profile import load_profile

    with ws.store.local_path(path) as local:
        return load_profile(local)


def _report_rows(ws: Workspace, batch_id: str) -> int | None:
    rows = (_read_report(ws, batch_id) or {}).get("rows")
    return int(rows) if isinstance(rows, int) else None


def split_results(results: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"accepted": [], "quarantined": [], "other": []}
    for r in results:
        key = r.get("outcome")
        out[key if key in ("accepted", "quarantined") else "other"].append(dict(r))
    return out


def asset_extra(result: Mapping[str, Any]) -> dict[str, Any]:
    """The ``extra`` of the accepted-Asset event for one batch."""
    return {
        "dataset": result.get("dataset"),
        "batch_id": result.get("batch_id"),
        "name": result.get("name"),
        "rows": result.get("rows"),
        "via": result.get("via", "scan"),
    }


def alert_quarantined(
    config_path: str, quarantined: Iterable[Mapping[str, Any]], context: Any
) -> list[str]:
    """One alert per quarantined batch; returns the batch ids alerted."""
    from sanitizer.airflow.notify import send_alert
    from sanitizer.alerts import quarantine_alert

    config = load_runtime_config(config_path)
    ws = _workspace(config)
    alerted = []
    try:
        for result in quarantined:
            alert = quarantine_alert(
                result,
                _read_report(ws, str(result["batch_id"])),
                report_url=_report_url(config, result),
                config_path=config_path,
            )
            if send_alert(alert, config.alerts, context):
                alerted.append(str(result["batch_id"]))
    finally:
        ws.close()
    return alerted


def _read_report(ws: Workspace, batch_id: str) -> dict[str, Any] | None:
    record = ws.ledger.get(batch_id)
    if record.state in {"landed", "scanning"}:
        return None
    path = posixpath.join(ws.batch_dir(record), "report.json")
    return ws.store.read_json(path) if ws.store.exists(path) else None


def _report_url(config: SanitizerConfig, result: Mapping[str, Any]) -> str:
    base = config.alerts.report_base_url
    report = str(result.get("report") or "")
    if base and config.storage is not None:
        root = config.storage.root.removeprefix("file://").rstrip("/")
        if report.startswith(root):
            return base.rstrip("/") + report[len(root) :]
    return report


def review_request(config_path: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """Subject and Markdown body of the human-review task for one quarantined batch."""
    from sanitizer.alerts import quarantine_alert

    config = load_runtime_config(config_path)
    ws = _workspace(config)
    try:
        alert = quarantine_alert(
            result,
            _read_report(ws, str(result["batch_id"])),
            report_url=_report_url(config, result),
        )
    finally:
        ws.close()
    body = "```\n" + alert.text.replace("```", "'''") + "\n```"
    return {"subject": alert.subject.removeprefix("[sanitizer] "), "body": body}


def apply_review(
    config_path: str, batch: Mapping[str, Any], response: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Apply one reviewer's decision through the same ledger functions as the CLI."""
    from sanitizer.quarantine.review import reject_batch, release_batch

    batch_id = str(batch["batch_id"])
    response = response or {}
    chosen = list(response.get("chosen_options") or [KEEP])
    user = response.get("responded_by_user") or {}
    actor = str(user.get("name") or user.get("id") or "") if isinstance(user, Mapping) else ""
    note = ""
    params = response.get("params_input") or {}
    if isinstance(params, Mapping):
        note = str(params.get("reason") or "").strip()
    decision = chosen[0]
    if decision == KEEP or not actor:
        why = "review timed out" if not actor else f"{actor} chose to keep it"
        return {**dict(batch), "decision": "keep", "actor": actor or None, "note": why}
    reason = note or f"{decision.lower()}d in the Airflow review task"
    config = load_runtime_config(config_path)
    ws = _workspace(config)
    try:
        if decision == RELEASE:
            out = release_batch(ws, batch_id, actor=actor, reason=reason)
        elif decision == REJECT:
            out = reject_batch(ws, batch_id, actor=actor, reason=reason)
        else:
            raise ConfigError(f"unknown review option {decision!r}")
    finally:
        ws.close()
    return {
        **dict(batch),
        "decision": decision.lower(),
        "actor": actor,
        "state": out["state"],
        "via": "review",
    }


# -- retrain DAG --------------------------------------------------------------------


def retrain_gate(config_path: str) -> dict[str, Any]:
    """Is the dataset ready to retrain? Not while any batch is still being scanned."""
    config = load_runtime_config(config_path)
    ws = _workspace(config)
    try:
        scanning = ws.ledger.batches(dataset=config.dataset, state="scanning")
        trainable = ws.ledger.batches(dataset=config.dataset, state=list(TRAINABLE_STATES))
    finally:
        ws.close()
    return {
        "ready": not scanning,
        "scanning": [b.id for b in scanning],
        "trainable_batches": len(trainable),
    }


def retrain(config_path: str) -> dict[str, Any]:
    """Train on the reference plus every accepted/released batch; promote if not worse."""
    from sanitizer.contract import DataContract
    from sanitizer.io import read_table
    from sanitizer.training import retrain as run_retrain

    config = load_runtime_config(config_path)
    if config.reference_path is None:
        raise ConfigError(f"{config_path}: dataset.reference is required to retrain")
    reference = read_table(config.reference_path)
    if config.training.holdout_path is not None:
        holdout = read_table(config.training.holdout_path)
    else:  # a fixed slice of the trusted reference, never trained on
        import numpy as np

        order = np.random.default_rng(0).permutation(len(reference))
        cut = int(len(reference) * config.training.holdout_fraction)
        holdout = reference.iloc[order[:cut]].reset_index(drop=True)
        reference = reference.iloc[order[cut:]].reset_index(drop=True)
    contract = DataContract.from_reference(reference, config)
    ws = _workspace(config)
    try:
        batches = ws.ledger.batches(dataset=config.dataset, state=list(TRAINABLE_STATES))
        accepted = _load_batches(ws, batches)
    finally:
        ws.close()
    assert config.storage is not None
    models_root = config.training.models_root or posixpath.join(config.storage.root, "models")
    outcome = run_retrain(
        dataset=config.dataset,
        contract=contract,
        reference=reference,
        accepted=accepted,
        holdout=holdout,
        models_root=models_root,
        tolerance=config.training.tolerance,
    )
    return outcome.to_dict()


def _load_batches(ws: Workspace, batches: Iterable[Any]) -> list[tuple[str, pd.DataFrame]]:
    from sanitizer.quarantine.store import MANIFEST, read_batch_frame

    out = []
    for batch in batches:
        folder = ws.batch_dir(batch)
        manifest = ws.store.read_json(posixpath.join(folder, MANIFEST))
        out.append(
            (
                batch.id,
                read_batch_frame(ws.store, posixpath.join(folder, str(manifest["data_file"]))),
            )
        )
    return out


def alert_not_promoted(config_path: str, outcome: Mapping[str, Any], context: Any) -> bool:
    from sanitizer.airflow.notify import send_alert
    from sanitizer.alerts import retrain_alert

    if outcome.get("promoted"):
        return False
    return bool(
        send_alert(retrain_alert(outcome), load_runtime_config(config_path).alerts, context)
    )
