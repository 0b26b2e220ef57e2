from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sanitizer.config import SanitizerConfig
from sanitizer.contract import DataContract
from sanitizer.errors import InputError
from sanitizer.samples import make_dataset, split
from sanitizer.training import ModelRegistry, retrain


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    ref, b1, b2, holdout = split(make_dataset(5000, seed=3), [1500, 800, 800, 1000], seed=3)
    return {"reference": ref, "b1": b1, "b2": b2, "holdout": holdout}


@pytest.fixture(scope="module")
def contract(data: dict[str, pd.DataFrame]) -> DataContract:
    return DataContract.from_reference(
        data["reference"], SanitizerConfig(label_column="label", id_columns=("record_id",))
    )


def _retrain(root: Path, data, contract, accepted, tolerance=0.01):  # type: ignore[no-untyped-def]
    return retrain(
        dataset="demo",
        contract=contract,
        reference=data["reference"],
        accepted=accepted,
        holdout=data["holdout"],
        models_root=str(root),
        tolerance=tolerance,
    )


def test_first_model_is_promoted_and_records_its_batches(tmp_path: Path, data, contract) -> None:
    out = _retrain(tmp_path, data, contract, [("demo-b1", data["b1"])])
    assert out.promoted and out.reason == "no current model"
    assert out.version == "v0001" and out.batch_ids == ("demo-b1",)
    assert out.training_rows == 1500 + 800
    assert out.metrics["balanced_accuracy"] > 0.85
    files = sorted(p.name for p in (tmp_path / "demo" / "v0001").iterdir())
    assert files == ["encoder.json", "model.json", "model.skops"]
    meta = json.loads((tmp_path / "demo" / "v0001" / "model.json").read_text())
    assert meta["batch_ids"] == ["demo-b1"] and meta["promoted"] is True
    assert (tmp_path / "demo" / "CURRENT").read_text().strip() == "v0001"
    json.dumps(out.to_dict())


def test_worse_candidate_is_not_promoted(tmp_path: Path, data, contract) -> None:
    _retrain(tmp_path, data, contract, [("demo-b1", data["b1"])])
    poisoned = data["b2"].copy()
    rng = np.random.default_rng(0)
    poisoned = pd.concat([poisoned] * 4, ignore_index=True)
    poisoned["label"] = rng.integers(0, 2, len(poisoned))  # labels carry no signal
    out = _retrain(
        tmp_path, data, contract, [("demo-b1", data["b1"]), ("demo-bad", poisoned)], tolerance=0.0
    )
    assert not out.promoted and "current model kept" in out.reason
    assert out.current_version == "v0001"
    registry = ModelRegistry(str(tmp_path), "demo")
    assert registry.current_version() == "v0001"
    assert registry.versions() == ["v0001", "v0002"]
    assert registry.meta("v0002")["promoted"] is False


def test_equal_or_better_candidate_is_promoted(tmp_path: Path, data, contract) -> None:
    _retrain(tmp_path, data, contract, [])
    out = _retrain(tmp_path, data, contract, [("demo-b1", data["b1"]), ("demo-b2", data["b2"])])
    assert out.promoted, out.reason
    assert ModelRegistry(str(tmp_path), "demo").current_version() == "v0002"


def test_swapped_model_file_is_refused(tmp_path: Path, data, contract) -> None:
    _retrain(tmp_path, data, contract, [])
    (tmp_path / "demo" / "v0001" / "model.skops").write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a skops file"):
        ModelRegistry(str(tmp_path), "demo").load("v0001")
    # A later retrain replaces the unusable current model instead of crashing.
    out = _retrain(tmp_path, data, contract, [])
    assert out.promoted and "unusable" in out.reason
