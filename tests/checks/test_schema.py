from __future__ import annotations

import pandas as pd
import pytest

from sanitizer.checks.schema import SchemaCheck
from sanitizer.config import SanitizerConfig
from sanitizer.contract import DataContract
from sanitizer.errors import NotFittedError
from sanitizer.table import Table


@pytest.fixture(scope="module")
def tables(reference: pd.DataFrame, clean_batch: pd.DataFrame, config: SanitizerConfig):
    contract = DataContract.from_reference(reference, config)
    return Table(reference, contract), contract


def test_clean_batch_passes(tables, clean_batch: pd.DataFrame) -> None:
    ref, contract = tables
    result = SchemaCheck().fit(ref).run(Table(clean_batch, contract))
    assert result.status == "pass"
    assert result.flagged_rows == 0
    assert result.row_scores is not None and result.row_scores.sum() == 0


def test_violations_flag_rows_with_reasons(tables, clean_batch: pd.DataFrame) -> None:
    ref, contract = tables
    bad = clean_batch.copy()
    bad.loc[4, "x2"] = -1e7
    bad.loc[4, "region"] = "mars"
    bad.loc[11, "region"] = "mars"
    result = SchemaCheck().fit(ref).run(Table(bad, contract))
    assert result.status == "fail"
    assert result.flagged_rows == 2
    assert result.row_reasons[4] == (
        "schema: expect_column_values_to_be_between(x2)",
        "schema: expect_column_values_to_be_in_set(region)",
    )
    assert result.statistic == 2.0
    assert "expect_column_values_to_be_in_set(region): 2 unexpected values" in result.message


def test_user_suite_is_used_as_is(tables, clean_batch: pd.DataFrame) -> None:
    ref, contract = tables
    suite = {
        "name": "strict",
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "x0", "min_value": 0, "max_value": 1},
            }
        ],
    }
    result = SchemaCheck(suite=suite).fit(ref).run(Table(clean_batch, contract))
    assert result.status == "fail"
    assert result.info["suite"] == "strict" and result.info["expectations"] == 1


def test_run_before_fit_says_what_to_do(tables, clean_batch: pd.DataFrame) -> None:
    _, contract = tables
    with pytest.raises(NotFittedError, match=r"call fit\(reference\)"):
        SchemaCheck().run(Table(clean_batch, contract))
