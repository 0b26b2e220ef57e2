from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sanitizer.config import SanitizerConfig
from sanitizer.contract import DataContract, label_keys
from sanitizer.errors import ConfigError, InputError


@pytest.fixture
def contract(reference: pd.DataFrame, config: SanitizerConfig) -> DataContract:
    return DataContract.from_reference(reference, config)


def test_columns_are_inferred(contract: DataContract) -> None:
    assert contract.numeric == tuple(f"x{i}" for i in range(6))
    assert contract.categorical == ("region", "plan")
    assert contract.ids == ("record_id",)
    assert contract.label_classes == ("0", "1")
    assert contract.nullable == ()


def test_overrides_type_columns(reference: pd.DataFrame) -> None:
    cfg = SanitizerConfig(
        label_column="label", id_columns=("record_id",), categorical_columns=("x0",)
    )
    contract = DataContract.from_reference(reference, cfg)
    assert "x0" in contract.categorical and "x0" not in contract.numeric
    with pytest.raises(ConfigError, match="not in the reference"):
        DataContract.from_reference(
            reference, SanitizerConfig(label_column="label", id_columns=("nope",))
        )


def test_clean_batch_is_valid(contract: DataContract, clean_batch: pd.DataFrame) -> None:
    contract.validate(clean_batch)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.drop(columns=["label"]), "missing label column 'label'"),
        (lambda b: b.drop(columns=["x1"]), "missing columns 'x1'"),
        (lambda b: b.assign(extra=1), "unexpected columns 'extra'"),
        (
            lambda b: b.assign(x2=b["x2"].astype(object).where(b.index != 3, "abc")),
            "'x2' must be numeric but holds 'abc'",
        ),
        (
            lambda b: b.assign(x3=b["x3"].where(b.index != 4, np.inf)),
            "'x3' has infinite values at rows 4",
        ),
        (
            lambda b: b.assign(x4=b["x4"].where(b.index != 6, np.nan)),
            "'x4' has missing values at rows 6",
        ),
        (
            lambda b: b.assign(label=b["label"].where(b.index != 2, 7)),
            "never seen in the reference: '7'",
        ),
    ],
)
def test_contract_violations_are_listed(
    contract: DataContract, clean_batch: pd.DataFrame, mutate, message: str
) -> None:
    bad = mutate(clean_batch.copy())
    with pytest.raises(InputError, match=message):
        contract.validate(bad, path="b.csv")


def test_all_problems_reported_at_once(contract: DataContract, clean_batch: pd.DataFrame) -> None:
    bad = clean_batch.drop(columns=["x1"]).assign(extra=1)
    with pytest.raises(InputError) as info:
        contract.validate(bad)
    assert "missing columns" in str(info.value) and "unexpected columns" in str(info.value)
    assert info.value.reason == "invalid"


def test_nulls_allowed_where_reference_has_them(
    reference: pd.DataFrame, clean_batch: pd.DataFrame
) -> None:
    ref = reference.copy()
    ref.loc[::50, "x5"] = np.nan
    contract = DataContract.from_reference(
        ref, SanitizerConfig(label_column="label", id_columns=("record_id",))
    )
    batch = clean_batch.copy()
    batch.loc[::10, "x5"] = np.nan
    contract.validate(batch)
    prepared = contract.prepare(batch)
    assert prepared["x5"].isna().sum() == batch["x5"].isna().sum()


def test_label_keys_normalise_numbers() -> None:
    assert label_keys(pd.Series([1.0, 0.0, 2.0])) == ["1", "0", "2"]
    assert label_keys(pd.Series([1, 0])) == ["1", "0"]
    assert label_keys(pd.Series(["cat", "dog"])) == ["cat", "dog"]
    assert label_keys(pd.Series([0.5, 1.5])) == ["0.5", "1.5"]


def test_round_trip(contract: DataContract) -> None:
    assert DataContract.from_dict(contract.to_dict()) == contract
