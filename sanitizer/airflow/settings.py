"""What the DAG files read at parse time: cheap (tomllib only, no pandas/sklearn/GX).

Datasets are TOML config files in one folder: ``$SANITIZER_CONFIG_DIR`` (default:
``sanitizer_configs/`` next to the DAG files). Each file becomes one
``sanitize_<dataset>`` DAG and one ``retrain_<dataset>`` DAG. Production
overrides, read when tasks run: the Airflow connection ``sanitizer_ledger``
(any SQLAlchemy database; its URI replaces ``storage.ledger_url``) and the
Airflow variable ``sanitizer_storage_root`` (replaces ``storage.root``).
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_CONFIG_DIR = "SANITIZER_CONFIG_DIR"
LEDGER_CONN_ID = "sanitizer_ledger"
STORAGE_ROOT_VARIABLE = "sanitizer_storage_root"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    config_path: str
    schedule: str | None
    review: bool
    review_timeout_hours: float
    review_assignees: tuple[str, ...]
    retries: int
    training: bool


def config_dir(dags_folder: str | os.PathLike[str] | None = None) -> Path:
    env = os.environ.get(ENV_CONFIG_DIR)
    if env:
        return Path(env)
    base = Path(dags_folder) if dags_folder else Path(__file__).resolve().parent
    return base / "sanitizer_configs"


def dataset_entries(directory: str | os.PathLike[str]) -> list[DatasetEntry]:
    """One entry per ``*.toml`` file; a broken file is logged and skipped, so one bad
    config does not take every other dataset's DAG down with it."""
    folder = Path(directory)
    if not folder.is_dir():
        log.warning("sanitizer: config folder %s does not exist; no datasets", folder)
        return []
    entries: dict[str, DatasetEntry] = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            entry = _entry(path)
        except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
            log.error("sanitizer: skipping %s: %s", path, exc)
            continue
        if entry.name in entries:
            log.error("sanitizer: skipping %s: dataset %r is already defined", path, entry.name)
            continue
        entries[entry.name] = entry
    return list(entries.values())


def _entry(path: Path) -> DatasetEntry:
    raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    name = str(raw.get("dataset", {}).get("name", path.stem))
    if not _NAME.fullmatch(name):
        raise ValueError(f"dataset name {name!r} must be letters, digits, '_', '.', '-'")
    airflow = raw.get("airflow", {})
    schedule = airflow.get("schedule", "@hourly")
    return DatasetEntry(
        name=name,
        config_path=str(path.resolve()),
        schedule=None if schedule in (None, "none", "None") else str(schedule),
        review=bool(airflow.get("review", True)),
        review_timeout_hours=float(airflow.get("review_timeout_hours", 72.0)),
        review_assignees=tuple(str(u) for u in airflow.get("review_assignees", [])),
        retries=int(airflow.get("retries", 2)),
        training=bool(raw.get("training", {}).get("enabled", True)),
    )


def accepted_asset(dataset: str) -> Any:
    """The Asset that gets one event per accepted or released batch of ``dataset``."""
    from airflow.sdk import Asset

    return Asset(name=f"sanitizer_accepted_{dataset}", uri=f"x-sanitizer://accepted/{dataset}")
