"""Gated retraining: train on trusted + accepted data, evaluate on a trusted holdout,
promote only if the new model is not worse than the current one.

Models live in a versioned registry under one fsspec root::

    <models_root>/<dataset>/v0001/model.skops     the estimator (skops: no pickle)
                              /encoder.json    feature encoding fitted on the training data
                              /model.json      metrics, training rows, batch ids, time
    <models_root>/<dataset>/CURRENT            name of the promoted version

A candidate that loses is kept (``promoted: false`` in its model.json) so the
decision can be audited, but ``CURRENT`` keeps pointing at the old model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from sanitizer.errors import InputError, SanitizerError

if TYPE_CHECKING:
    import pandas as pd

    from sanitizer.checks._features import FeatureEncoder
    from sanitizer.contract import DataContract

log = logging.getLogger(__name__)

PRIMARY_METRIC = "balanced_accuracy"


@dataclass(frozen=True)
class TrainingOutcome:
    """What one retraining decided; JSON-safe via ``to_dict`` (small enough for XCom)."""

    dataset: str
    version: str
    promoted: bool
    reason: str
    metrics: dict[str, float]
    current_version: str | None
    current_metrics: dict[str, float] | None
    batch_ids: tuple[str, ...]
    training_rows: int
    model_uri: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["batch_ids"] = list(self.batch_ids)
        return out


class TrainedModel:
    """An estimator with the encoder that turns a table into its features."""

    def __init__(self, contract: DataContract, encoder: FeatureEncoder, estimator: Any) -> None:
        self.contract = contract
        self.encoder = encoder
        self.estimator = estimator

    @classmethod
    def train(cls, frame: pd.DataFrame, contract: DataContract, *, seed: int = 0) -> TrainedModel:
        from sklearn.ensemble import HistGradientBoostingClassifier

        from sanitizer.checks._features import FeatureEncoder
        from sanitizer.table import Table

        table = Table(frame, contract)
        encoder = FeatureEncoder.fit(table)
        estimator = HistGradientBoostingClassifier(random_state=seed)
        estimator.fit(encoder.transform(table), table.labels.astype(str))
        return cls(contract, encoder, estimator)

    def evaluate(self, holdout: pd.DataFrame) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, balanced_accuracy_score

        from sanitizer.table import Table

        table = Table(holdout, self.contract)
        y = table.labels.astype(str)
        predicted = self.estimator.predict(self.encoder.transform(table))
        return {
            "accuracy": float(accuracy_score(y, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
            "holdout_rows": float(len(y)),
        }

    def save(self, fs: Any, path: str, meta: dict[str, Any]) -> None:
        import skops.io as sio

        fs.makedirs(path, exist_ok=True)
        with fs.open(f"{path}/model.skops", "wb") as fh:
            fh.write(sio.dumps(self.estimator))
        _write_json(
            fs,
            f"{path}/encoder.json",
            {"encoder": self.encoder.to_dict(), "contract": self.contract.to_dict()},
        )
        _write_json(fs, f"{path}/model.json", meta)

    @classmethod
    def load(cls, fs: Any, path: str) -> TrainedModel:
        from sanitizer.checks._features import FeatureEncoder
        from sanitizer.contract import DataContract
        from sanitizer.profile import safe_model_loads

        with fs.open(f"{path}/model.skops", "rb") as fh:
            estimator = safe_model_loads(fh.read(), what=f"model {path}")
        raw = _read_json(fs, f"{path}/encoder.json")
        return cls(
            DataContract.from_dict(raw["contract"]),
            FeatureEncoder.from_dict(raw["encoder"]),
            estimator,
        )


class ModelRegistry:
    """Versioned models of one dataset under an fsspec root."""

    def __init__(self, root: str, dataset: str) -> None:
        from fsspec.core import url_to_fs

        self.fs, base = url_to_fs(root)
        self.dir = f"{base.rstrip('/')}/{dataset}"
        self.uri_prefix = root.rstrip("/") + f"/{dataset}"

    def current_version(self) -> str | None:
        path = f"{self.dir}/CURRENT"
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r") as fh:
            return str(fh.read()).strip() or None

    def versions(self) -> list[str]:
        if not self.fs.exists(self.dir):
            return []
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.dir, detail=False)]
        return sorted(n for n in names if n.startswith("v") and n[1:].isdigit())

    def next_version(self) -> str:
        versions = self.versions()
        return f"v{(int(versions[-1][1:]) + 1 if versions else 1):04d}"

    def meta(self, version: str) -> dict[str, Any]:
        return _read_json(self.fs, f"{self.dir}/{version}/model.json")

    def load(self, version: str) -> TrainedModel:
        return TrainedModel.load(self.fs, f"{self.dir}/{version}")

    def promote(self, version: str) -> None:
        tmp = f"{self.dir}/.CURRENT.tmp"
        with self.fs.open(tmp, "w") as fh:
            fh.write(version + "\n")
        self.fs.mv(tmp, f"{self.dir}/CURRENT")


def retrain(
    *,
    dataset: str,
    contract: DataContract,
    reference: pd.DataFrame,
    accepted: Sequence[tuple[str, pd.DataFrame]],
    holdout: pd.DataFrame,
    models_root: str,
    tolerance: float = 0.01,
    seed: int = 0,
) -> TrainingOutcome:
    """Train on ``reference`` + the ``accepted`` batches (id, rows); promote if not worse.

    The candidate is promoted when its holdout balanced accuracy is at least the
    current model's minus ``tolerance`` (both measured now, on the same holdout),
    or when there is no current model.
    """
    import pandas as pd

    if len(holdout) == 0:
        raise InputError("the trusted holdout has no rows")
    columns = list(contract.columns)
    parts = [reference[columns]] + [frame[columns] for _, frame in accepted]
    training = pd.concat(parts, ignore_index=True)
    batch_ids = tuple(batch_id for batch_id, _ in accepted)
    registry = ModelRegistry(models_root, dataset)
    candidate = TrainedModel.train(training, contract, seed=seed)
    metrics = candidate.evaluate(holdout)
    current = registry.current_version()
    current_metrics = None
    if current is None:
        promoted, reason = True, "no current model"
    else:
        try:
            current_metrics = registry.load(current).evaluate(holdout)
        except (SanitizerError, OSError, KeyError, ValueError) as exc:
            log.warning("current model %s cannot be evaluated (%s); replacing it", current, exc)
            promoted, reason = True, f"current model {current} unusable: {exc}"
        else:
            new, old = metrics[PRIMARY_METRIC], current_metrics[PRIMARY_METRIC]
            promoted = new >= old - tolerance
            reason = f"{PRIMARY_METRIC} {new:.4f} vs current {old:.4f} (tolerance {tolerance})" + (
                "" if promoted else ": candidate is worse, current model kept"
            )
    version = registry.next_version()
    meta = {
        "dataset": dataset,
        "version": version,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": metrics,
        "promoted": promoted,
        "reason": reason,
        "training_rows": len(training),
        "reference_rows": len(reference),
        "batch_ids": list(batch_ids),
    }
    candidate.save(registry.fs, f"{registry.dir}/{version}", meta)
    if promoted:
        registry.promote(version)
    log.info("retrained %s %s: %s", dataset, version, reason)
    return TrainingOutcome(
        dataset=dataset,
        version=version,
        promoted=promoted,
        reason=reason,
        metrics=metrics,
        current_version=current,
        current_metrics=current_metrics,
        batch_ids=batch_ids,
        training_rows=len(training),
        model_uri=f"{registry.uri_prefix}/{version}",
    )


def _write_json(fs: Any, path: str, value: Any) -> None:
    with fs.open(path, "w") as fh:
        fh.write(json.dumps(value, indent=2, allow_nan=False, default=_plain))


def _read_json(fs: Any, path: str) -> Any:
    with fs.open(path, "r") as fh:
        return json.loads(fh.read())


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
