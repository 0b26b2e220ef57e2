"""Fixtures of the HTML report tests: a sanitizer fitted once, a poisoned batch, its report."""

from __future__ import annotations

import pandas as pd
import pytest
from report_pages import poison

import sanitizer.checks.backdoor
import sanitizer.checks.outliers  # noqa: F401  (register the checks the tests enable)
from sanitizer import Sanitizer
from sanitizer.config import CheckConfig, SanitizerConfig
from sanitizer.report import ScanReport


@pytest.fixture(scope="session")
def checked(reference: pd.DataFrame) -> Sanitizer:
    config = SanitizerConfig(
        label_column="label",
        id_columns=("record_id",),
        checks={"outliers": CheckConfig(), "backdoor": CheckConfig()},
    )
    return Sanitizer(config=config).fit(reference)


@pytest.fixture(scope="session")
def poisoned(clean_batch: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    return poison(clean_batch, reference)


@pytest.fixture(scope="session")
def poisoned_report(checked: Sanitizer, poisoned: pd.DataFrame) -> ScanReport:
    return checked.scan(poisoned)
