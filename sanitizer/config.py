"""Typed, validated configuration: one TOML file per dataset.

Example (every key but ``dataset.name`` and ``dataset.label_column`` optional)::

    [dataset]
    name = "credit"
    label_column = "label"
    id_columns = ["customer_id"]
    ignore_columns = ["ingested_at"]
    suite = "../expectations/credit.json"   # relative to this file
    reference = "reference.parquet"          # trusted data the checks are fitted on

    [columns]                                # overrides dtype inference
    categorical = ["zip_code"]
    numeric = []

    [policy]
    mode = "batch"          # or "rows": pass clean rows, quarantine flagged ones
    alpha = 0.01            # family-wise false-quarantine rate on clean batches
    screen_rows = 100000    # batch mode: larger batches are screened on a random sample (0: off)

    [suite_generation]
    range_margin = 0.25     # widen reference min/max by this share of the range
    range_mostly = 0.99     # GX ``mostly``: share of a batch's values that must be in range

    [checks.schema]
    severity = "quarantine"   # or "warn"
    enabled = true

    [storage]                    # only needed by ``sanitizer run`` and the quarantine store
    root = "../store"            # fsspec URL (s3://bucket/prefix) or path relative to this file
    ledger_url = "postgresql://user@host/db"   # default: SQLite file <root>/ledger.sqlite
    max_file_bytes = 1073741824  # larger files are quarantined as ``too_large``, never loaded
    settle_seconds = 60          # a file modified more recently is still being written
    ready_marker_suffix = ".ready"   # optional: pick up ``b.csv`` only once ``b.csv.ready`` exists
    claim_timeout_seconds = 3600 # a scan claim older than this may be taken over
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sanitizer.errors import ConfigError

Severity = Literal["quarantine", "warn"]
Mode = Literal["batch", "rows"]
SEVERITIES: tuple[str, ...] = ("quarantine", "warn")
MODES: tuple[str, ...] = ("batch", "rows")
MIN_SCREEN_ROWS = 100


@dataclass(frozen=True)
class CheckConfig:
    """How one check runs: on/off, severity, and options passed to its constructor."""

    enabled: bool = True
    severity: Severity | None = None  # None: the check's own default
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyConfig:
    """What a failing check means for a batch.

    ``screen_rows``: in ``batch`` mode a batch with more rows is screened: the
    statistical checks run on a uniform random sample of this many rows (drawn
    afresh for every scan), the schema on every row. A batch that passes the
    screen passes; if any quarantining check fails, the statistical checks run
    again on every row and decide. ``0`` scans every row always; ``rows`` mode
    always does.
    """

    mode: Mode = "batch"
    alpha: float = 0.01
    screen_rows: int = 100_000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"policy.mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if not (0.0 < self.alpha < 0.5):
            raise ConfigError(f"policy.alpha: {self.alpha!r} must be between 0 and 0.5")
        if (
            isinstance(self.screen_rows, bool)
            or not isinstance(self.screen_rows, int)
            or not (self.screen_rows == 0 or self.screen_rows >= MIN_SCREEN_ROWS)
        ):
            raise ConfigError(
                f"policy.screen_rows: {self.screen_rows!r} must be 0 (off) or an integer "
                f">= {MIN_SCREEN_ROWS}"
            )


@dataclass(frozen=True)
class SuiteGenerationConfig:
    range_margin: float = 0.25
    range_mostly: float = 0.99

    def __post_init__(self) -> None:
        if not (0.5 <= self.range_mostly <= 1.0):
            raise ConfigError(
                f"suite_generation.range_mostly: {self.range_mostly!r} must be between 0.5 and 1"
            )
        if not (0.0 <= self.range_margin <= 10.0):
            raise ConfigError(
                f"suite_generation.range_margin: {self.range_margin!r} must be between 0 and 10"
            )


@dataclass(frozen=True)
class StorageConfig:
    """Where the zones and the ledger live (see docs/quarantine.md).

    ``root`` is an fsspec URL (``s3://bucket/prefix``, ``file:///data``) or an
    absolute local path; ``ledger_url`` a SQLAlchemy URL, by default a SQLite
    file under a local root.
    """

    root: str
    ledger_url: str | None = None
    max_file_bytes: int = 1024**3
    settle_seconds: float = 60.0
    ready_marker_suffix: str | None = None
    claim_timeout_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if not isinstance(self.root, str) or not self.root:
            raise ConfigError("storage.root: must be a non-empty path or URL")
        if self.ledger_url is not None and (
            not isinstance(self.ledger_url, str) or "://" not in self.ledger_url
        ):
            raise ConfigError(
                f"storage.ledger_url: {self.ledger_url!r} is not a SQLAlchemy URL "
                "(e.g. postgresql://user@host/db or sqlite:////path/ledger.sqlite)"
            )
        if self.ledger_url is None and not self.is_local:
            raise ConfigError(
                f"storage.ledger_url: required when storage.root ({self.root}) is not local; "
                "a SQLite ledger cannot live in object storage"
            )
        if isinstance(self.max_file_bytes, bool) or self.max_file_bytes <= 0:
            raise ConfigError(
                f"storage.max_file_bytes: {self.max_file_bytes!r} must be a positive integer"
            )
        if self.settle_seconds < 0:
            raise ConfigError(f"storage.settle_seconds: {self.settle_seconds!r} must be >= 0")
        if self.claim_timeout_seconds <= 0:
            raise ConfigError(
                f"storage.claim_timeout_seconds: {self.claim_timeout_seconds!r} must be > 0"
            )
        suffix = self.ready_marker_suffix
        if suffix is not None and (
            not suffix or "/" in suffix or "\\" in suffix or not suffix.isprintable()
        ):
            raise ConfigError(
                f"storage.ready_marker_suffix: {suffix!r} must be a non-empty file-name suffix"
            )

    @property
    def is_local(self) -> bool:
        """True for a plain path or a ``file://`` URL."""
        return "://" not in self.root or self.root.startswith("file://")

    @property
    def effective_ledger_url(self) -> str:
        """``ledger_url``, or the default SQLite file ``<root>/ledger.sqlite``."""
        if self.ledger_url:
            return self.ledger_url
        local = self.root.removeprefix("file://")
        return f"sqlite:///{Path(local) / 'ledger.sqlite'}"


@dataclass(frozen=True)
class AirflowConfig:
    """How the DAGs run this dataset: schedule and the human review of quarantined batches."""

    schedule: str | None = "@hourly"
    review: bool = True
    review_timeout_hours: float = 72.0
    review_assignees: tuple[str, ...] = ()
    retries: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not 0 <= self.retries <= 20:
            raise ConfigError(f"airflow.retries: {self.retries!r} must be a whole number 0..20")
        if self.review_timeout_hours <= 0:
            raise ConfigError(
                f"airflow.review_timeout_hours: {self.review_timeout_hours!r} must be > 0"
            )


@dataclass(frozen=True)
class AlertsConfig:
    """Who hears about quarantined batches and failed runs, through which notifier.

    By default Airflow's SMTP notifier mails ``email_to`` through the connection
    ``smtp_conn_id``. ``notifier`` names any other Airflow notifier class
    (``package.module:Class`` or a dotted path); it is built with
    ``notifier_kwargs`` plus the message under ``message_argument``.
    """

    email_to: tuple[str, ...] = ()
    from_email: str | None = None
    smtp_conn_id: str = "smtp_default"
    notifier: str | None = None
    notifier_kwargs: Mapping[str, Any] = field(default_factory=dict)
    message_argument: str = "text"
    report_base_url: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.email_to or self.notifier)


@dataclass(frozen=True)
class TrainingConfig:
    """Gated retraining on the accepted data (see sanitizer/training.py)."""

    enabled: bool = True
    holdout_path: Path | None = None
    holdout_fraction: float = 0.2
    models_root: str | None = None
    tolerance: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_fraction < 0.9:
            raise ConfigError(
                f"training.holdout_fraction: {self.holdout_fraction!r} must be in (0, 0.9)"
            )
        if not 0.0 <= self.tolerance < 1.0:
            raise ConfigError(f"training.tolerance: {self.tolerance!r} must be in [0, 1)")


@dataclass(frozen=True)
class SanitizerConfig:
    """Everything needed to fit and run a sanitizer for one dataset."""

    label_column: str
    dataset: str = "default"
    id_columns: tuple[str, ...] = ()
    ignore_columns: tuple[str, ...] = ()
    numeric_columns: tuple[str, ...] = ()
    categorical_columns: tuple[str, ...] = ()
    suite_path: Path | None = None
    reference_path: Path | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    suite_generation: SuiteGenerationConfig = field(default_factory=SuiteGenerationConfig)
    checks: Mapping[str, CheckConfig] = field(default_factory=dict)
    storage: StorageConfig | None = None
    airflow: AirflowConfig = field(default_factory=AirflowConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.label_column, str) or not self.label_column:
            raise ConfigError("dataset.label_column: must be a non-empty string")
        both = set(self.numeric_columns) & set(self.categorical_columns)
        if both:
            raise ConfigError(
                f"columns: {', '.join(sorted(both))} listed as both numeric and categorical"
            )
        special = {self.label_column} | set(self.id_columns) | set(self.ignore_columns)
        typed = (set(self.numeric_columns) | set(self.categorical_columns)) & special
        if typed:
            raise ConfigError(
                f"columns: {', '.join(sorted(typed))} is the label, an id or ignored, "
                "so it cannot be typed as a feature"
            )
        from sanitizer.checks import validate_check_configs

        validate_check_configs(self.checks)

    def check_config(self, name: str) -> CheckConfig:
        return self.checks.get(name, CheckConfig())


_CLASS_PATH = re.compile(r"[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?")
_TOP_KEYS = {
    "dataset",
    "columns",
    "policy",
    "suite_generation",
    "checks",
    "storage",
    "airflow",
    "alerts",
    "training",
}
_STORAGE_KEYS = {
    "root",
    "ledger_url",
    "max_file_bytes",
    "settle_seconds",
    "ready_marker_suffix",
    "claim_timeout_seconds",
}
_DATASET_KEYS = {"name", "label_column", "id_columns", "ignore_columns", "suite", "reference"}


def load_config(path: str | os.PathLike[str]) -> SanitizerConfig:
    """Read and validate a TOML config; relative paths are resolved against its folder."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: config file does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{p}: config path is a directory") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: config file is not valid UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
    try:
        return config_from_dict(raw, base_dir=p.parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc


def config_from_dict(raw: Mapping[str, Any], base_dir: Path | None = None) -> SanitizerConfig:
    _no_unknown_keys(raw, _TOP_KEYS, "")
    dataset = _table(raw, "dataset")
    _no_unknown_keys(dataset, _DATASET_KEYS, "dataset.")
    if "label_column" not in dataset:
        raise ConfigError("dataset.label_column: required key is missing")
    columns = _table(raw, "columns")
    _no_unknown_keys(columns, {"numeric", "categorical"}, "columns.")
    policy = _table(raw, "policy")
    _no_unknown_keys(policy, {"mode", "alpha", "screen_rows"}, "policy.")
    generation = _table(raw, "suite_generation")
    _no_unknown_keys(generation, {"range_margin", "range_mostly"}, "suite_generation.")

    def resolve(key: str) -> Path | None:
        value = dataset.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"dataset.{key}: must be a path string")
        path = Path(value)
        return path if path.is_absolute() or base_dir is None else base_dir / path

    return SanitizerConfig(
        dataset=_str(dataset, "name", "dataset.", "default"),
        label_column=_str(dataset, "label_column", "dataset.", ""),
        id_columns=_str_list(dataset, "id_columns", "dataset."),
        ignore_columns=_str_list(dataset, "ignore_columns", "dataset."),
        numeric_columns=_str_list(columns, "numeric", "columns."),
        categorical_columns=_str_list(columns, "categorical", "columns."),
        suite_path=resolve("suite"),
        reference_path=resolve("reference"),
        policy=PolicyConfig(
            mode=_str(policy, "mode", "policy.", "batch"),  # type: ignore[arg-type]
            alpha=_number(policy, "alpha", "policy.", 0.01),
            screen_rows=_whole(policy, "screen_rows", "policy.", 100_000),
        ),
        suite_generation=SuiteGenerationConfig(
            range_margin=_number(generation, "range_margin", "suite_generation.", 0.25),
            range_mostly=_number(generation, "range_mostly", "suite_generation.", 0.99),
        ),
        checks=_checks(_table(raw, "checks")),
        storage=_storage(raw, base_dir),
        airflow=_airflow(_table(raw, "airflow")),
        alerts=_alerts(_table(raw, "alerts")),
        training=_training(_table(raw, "training"), base_dir),
    )


def _airflow(raw: Mapping[str, Any]) -> AirflowConfig:
    _no_unknown_keys(
        raw,
        {"schedule", "review", "review_timeout_hours", "review_assignees", "retries"},
        "airflow.",
    )
    schedule = raw.get("schedule", "@hourly")
    if schedule is not None and (not isinstance(schedule, str) or not schedule.strip()):
        raise ConfigError("airflow.schedule: must be a cron expression or preset like '@hourly'")
    review = raw.get("review", True)
    if not isinstance(review, bool):
        raise ConfigError("airflow.review: must be true or false")
    return AirflowConfig(
        schedule=None if schedule in (None, "none", "None") else schedule,
        review=review,
        review_timeout_hours=_number(raw, "review_timeout_hours", "airflow.", 72.0),
        review_assignees=_str_list(raw, "review_assignees", "airflow."),
        retries=int(_number(raw, "retries", "airflow.", 2)),
    )


def _alerts(raw: Mapping[str, Any]) -> AlertsConfig:
    keys = {
        "email_to",
        "from_email",
        "smtp_conn_id",
        "notifier",
        "notifier_kwargs",
        "message_argument",
        "report_base_url",
    }
    _no_unknown_keys(raw, keys, "alerts.")
    kwargs = raw.get("notifier_kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise ConfigError("alerts.notifier_kwargs: must be a table")
    notifier = raw.get("notifier")
    if notifier is not None and not (isinstance(notifier, str) and _CLASS_PATH.fullmatch(notifier)):
        raise ConfigError(
            f"alerts.notifier: {notifier!r} is not a class path like 'package.module:Class'"
        )
    optional = {k: raw.get(k) for k in ("from_email", "report_base_url")}
    for key, value in optional.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"alerts.{key}: must be a string")
    return AlertsConfig(
        email_to=_str_list(raw, "email_to", "alerts."),
        from_email=optional["from_email"],
        smtp_conn_id=_str(raw, "smtp_conn_id", "alerts.", "smtp_default"),
        notifier=notifier,
        notifier_kwargs=dict(kwargs),
        message_argument=_str(raw, "message_argument", "alerts.", "text"),
        report_base_url=optional["report_base_url"],
    )


def _training(raw: Mapping[str, Any], base_dir: Path | None) -> TrainingConfig:
    _no_unknown_keys(
        raw, {"enabled", "holdout", "holdout_fraction", "models_root", "tolerance"}, "training."
    )
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("training.enabled: must be true or false")
    holdout = raw.get("holdout")
    if holdout is not None and (not isinstance(holdout, str) or not holdout):
        raise ConfigError("training.holdout: must be a path string")
    holdout_path = None
    if holdout:
        holdout_path = Path(holdout)
        if not holdout_path.is_absolute() and base_dir is not None:
            holdout_path = base_dir / holdout_path
    models_root = raw.get("models_root")
    if models_root is not None and (not isinstance(models_root, str) or not models_root):
        raise ConfigError("training.models_root: must be a path or URL string")
    if (
        models_root
        and "://" not in models_root
        and not Path(models_root).is_absolute()
        and base_dir is not None
    ):
        models_root = str((base_dir / models_root).resolve())
    return TrainingConfig(
        enabled=enabled,
        holdout_path=holdout_path,
        holdout_fraction=_number(raw, "holdout_fraction", "training.", 0.2),
        models_root=models_root,
        tolerance=_number(raw, "tolerance", "training.", 0.01),
    )


def _storage(raw: Mapping[str, Any], base_dir: Path | None) -> StorageConfig | None:
    if "storage" not in raw:
        return None
    table = _table(raw, "storage")
    _no_unknown_keys(table, _STORAGE_KEYS, "storage.")
    if "root" not in table:
        raise ConfigError("storage.root: required key is missing")
    root = _str(table, "root", "storage.", "")
    if not root:
        raise ConfigError("storage.root: must be a non-empty path or URL")
    if "://" not in root:
        path = Path(root)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        root = os.path.abspath(path)  # normalised: no "..", so zone checks are exact
    ledger_url = table.get("ledger_url")
    if ledger_url is not None and not isinstance(ledger_url, str):
        raise ConfigError(f"storage.ledger_url: must be a string, got {type(ledger_url).__name__}")
    marker = table.get("ready_marker_suffix")
    if marker is not None and not isinstance(marker, str):
        raise ConfigError(
            f"storage.ready_marker_suffix: must be a string, got {type(marker).__name__}"
        )
    max_bytes = table.get("max_file_bytes", StorageConfig.max_file_bytes)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise ConfigError(
            f"storage.max_file_bytes: must be an integer, got {type(max_bytes).__name__}"
        )
    return StorageConfig(
        root=root,
        ledger_url=ledger_url,
        max_file_bytes=max_bytes,
        settle_seconds=_number(table, "settle_seconds", "storage.", StorageConfig.settle_seconds),
        ready_marker_suffix=marker,
        claim_timeout_seconds=_number(
            table, "claim_timeout_seconds", "storage.", StorageConfig.claim_timeout_seconds
        ),
    )


def _checks(raw: Mapping[str, Any]) -> dict[str, CheckConfig]:
    out: dict[str, CheckConfig] = {}
    for name, table in raw.items():
        prefix = f"checks.{name}."
        if not isinstance(table, Mapping):
            raise ConfigError(f"checks.{name}: must be a table")
        options = {k: v for k, v in table.items() if k not in {"enabled", "severity"}}
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{prefix}enabled: must be true or false")
        severity = table.get("severity")
        if severity is not None and severity not in SEVERITIES:
            raise ConfigError(
                f"{prefix}severity: {severity!r} is not one of {', '.join(SEVERITIES)}"
            )
        out[name] = CheckConfig(enabled=enabled, severity=severity, options=options)
    return out


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: must be a table")
    return value


def _no_unknown_keys(raw: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})"
        )


def _str(raw: Mapping[str, Any], key: str, prefix: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{prefix}{key}: must be a string, got {type(value).__name__}")
    return value


def _str_list(raw: Mapping[str, Any], key: str, prefix: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{prefix}{key}: must be a list of strings")
    return tuple(value)


def _whole(raw: Mapping[str, Any], key: str, prefix: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{prefix}{key}: must be an integer, got {type(value).__name__}")
    return value


def _number(raw: Mapping[str, Any], key: str, prefix: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{prefix}{key}: must be a number, got {type(value).__name__}")
    return float(value)
