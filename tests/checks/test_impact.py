"""ImpactCheck (RONI): clean batches pass, a batch of flipped labels hurts the holdout."""

from __future__ import annotations

from functools import cache

import pandas as pd
import pytest

from sanitizer import attacks
from sanitizer.checks.impact import ImpactCheck
from sanitizer.config import CheckConfig, SanitizerConfig
from sanitizer.contract import DataContract
from sanitizer.engine import Sanitizer
from sanitizer.samples import make_dataset, split
from sanitizer.table import Table

CONFIG = SanitizerConfig(label_column="label", id_columns=("record_id",))


def flip_labels(batch: pd.DataFrame, rate: float, seed: int) -> pd.DataFrame:
    return attacks.flip_labels_random(batch, "label", seed, rate=rate)[0]


@cache
def fitted() -> tuple[ImpactCheck, pd.DataFrame, pd.DataFrame, DataContract]:
    data = make_dataset(10_000, n_numeric=6, seed=41)
    reference, pool = split(data, [2_000, 8_000], seed=1)
    contract = DataContract.from_reference(reference, CONFIG)
    return ImpactCheck().fit(Table(reference, contract)), reference, pool, contract


def test_clean_batches_pass() -> None:
    check, _, pool, contract = fitted()
    parts = split(pool, [200, 1000, 2000] * 2, seed=2)
    assert sum(check.run(Table(b, contract)).failed for b in parts) == 0


def test_flipped_labels_hurt_the_holdout() -> None:
    check, _, pool, contract = fitted()
    batch = flip_labels(pool.sample(2000, random_state=3).reset_index(drop=True), 0.4, 3)
    result = check.run(Table(batch, contract))
    assert result.status == "fail", result.message
    assert result.info["lower_bound"] > 0


def test_large_batches_are_skipped_and_one_class_passes() -> None:
    _, reference, pool, contract = fitted()
    check = ImpactCheck(max_batch_rows=100).fit(Table(reference, contract))
    result = check.run(Table(pool.iloc[:500], contract))
    assert result.status == "pass" and result.info["skipped"]
    one = reference.assign(label=0)
    one_contract = DataContract.from_reference(one, CONFIG)
    result = ImpactCheck().fit(Table(one, one_contract)).run(Table(one.iloc[:50], one_contract))
    assert result.status == "pass"


def test_option_validation() -> None:
    with pytest.raises(ValueError, match="holdout_fraction"):
        ImpactCheck(holdout_fraction=0.0)


def test_through_the_engine_warns() -> None:
    _, reference, pool, _ = fitted()
    sanitizer = Sanitizer(
        label_column="label", id_columns=("record_id",), checks={"impact": CheckConfig()}
    ).fit(reference)
    batch = flip_labels(pool.sample(2000, random_state=4).reset_index(drop=True), 0.4, 4)
    report = sanitizer.scan(batch)
    result = next(r for r in report.checks if r.name == "impact")
    assert result.status == "warn"
    assert result.severity == "warn"
