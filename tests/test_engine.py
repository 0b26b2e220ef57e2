from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
import pytest

from sanitizer import Sanitizer
from sanitizer.checks.base import Check, CheckResult
from sanitizer.config import CheckConfig, PolicyConfig, SanitizerConfig
from sanitizer.engine import DEFAULT_CHECKS
from sanitizer.errors import ConfigError, InputError, NotFittedError
from sanitizer.table import Table

#: Switches every built-in check off, so a test sees only the checks it adds.
ONLY_TEST_CHECKS = {name: CheckConfig(enabled=False) for name in DEFAULT_CHECKS}


class ExplodingCheck(Check):
    name = "explodes_in_test"

    def fit(self, reference: Table) -> Self:
        self.fitted_ = True
        return self

    def run(self, batch: Table) -> CheckResult:
        raise RuntimeError("boom")


class FlagFirstRowCheck(Check):
    """Flags row 0 and fails: lets tests see how severities combine."""

    name = "flag_first_row_in_test"

    def __init__(self, fail: bool = True) -> None:
        self.fail = fail

    def fit(self, reference: Table) -> Self:
        self.fitted_ = True
        return self

    def run(self, batch: Table) -> CheckResult:
        flags = np.zeros(len(batch), dtype=bool)
        flags[0] = True
        return self.result(
            "fail" if self.fail else "pass",
            "first row",
            statistic=1.0,
            p_value=0.001,
            threshold=0.01,
            row_scores=flags * 0.9,
            row_flags=flags,
            row_reasons={0: ("flag_first_row_in_test: first",)},
        )


def test_documented_api(reference: pd.DataFrame, clean_batch: pd.DataFrame) -> None:
    s = Sanitizer(label_column="label", id_columns=("record_id",)).fit(reference)
    report = s.scan(clean_batch)
    assert report.verdict == "pass"
    assert [c.name for c in report.checks] == list(DEFAULT_CHECKS)
    assert report.row_scores.index.equals(clean_batch.index)
    assert list(report.flagged.columns) == [*clean_batch.columns, "reasons"]
    d = report.to_dict()
    assert set(d) >= {"verdict", "rows", "checks", "rows_flagged", "row_scores"}
    assert set(d["checks"][0]) >= {
        "name",
        "status",
        "statistic",
        "p_value",
        "threshold",
        "flagged_rows",
        "message",
    }
    assert len(d["row_scores"]) == d["rows"] == len(clean_batch)
    json.dumps(d, allow_nan=False)


def test_flagged_rows_keep_the_batch_index(fitted: Sanitizer, clean_batch: pd.DataFrame) -> None:
    batch = clean_batch.copy()
    batch.index = pd.RangeIndex(1000, 1000 + len(batch))
    batch.loc[1003, "x0"] = 1e9
    report = fitted.scan(batch)
    assert report.verdict == "quarantine"
    assert list(report.flagged.index) == [1003]
    assert report.flagged.loc[1003, "reasons"] == (
        "schema: expect_column_values_to_be_between(x0)",
    )
    assert report.row_scores[1003] == 1.0
    assert report.to_dict()["rows_flagged"] == [
        {"row": 3, "score": 1.0, "reasons": ["schema: expect_column_values_to_be_between(x0)"]}
    ]


def test_raising_check_is_recorded_as_error_and_quarantines(
    reference: pd.DataFrame, clean_batch: pd.DataFrame
) -> None:
    s = Sanitizer(
        label_column="label", id_columns=("record_id",), checks={"explodes_in_test": CheckConfig()}
    ).fit(reference)
    report = s.scan(clean_batch)
    assert report.verdict == "quarantine"
    err = report.checks[-1]
    assert err.status == "error" and "RuntimeError: boom" in err.message
    assert report.checks[0].status == "pass"


def test_warn_severity_reports_but_does_not_quarantine(
    reference: pd.DataFrame, clean_batch: pd.DataFrame
) -> None:
    cfg = {**ONLY_TEST_CHECKS, "flag_first_row_in_test": CheckConfig(severity="warn")}
    report = (
        Sanitizer(label_column="label", id_columns=("record_id",), checks=cfg)
        .fit(reference)
        .scan(clean_batch)
    )
    assert report.verdict == "pass"
    assert report.checks[-1].status == "warn"
    assert report.flagged.empty
    assert report.row_scores.iloc[0] == pytest.approx(0.9)  # one check: its own score


def test_combined_scores_discount_many_uniform_views() -> None:
    from sanitizer.engine import _combined_scores

    out = _combined_scores([np.array([0.5, 0.99, 1.0]), np.array([0.9, 0.2, 0.0])], 3)
    assert out == pytest.approx([0.8, 0.98, 1.0])
    assert _combined_scores([], 2).tolist() == [0.0, 0.0]


def test_quarantine_severity_quarantines(
    reference: pd.DataFrame, clean_batch: pd.DataFrame
) -> None:
    cfg = {"flag_first_row_in_test": CheckConfig()}
    report = (
        Sanitizer(label_column="label", id_columns=("record_id",), checks=cfg)
        .fit(reference)
        .scan(clean_batch)
    )
    assert report.verdict == "quarantine"
    assert report.flagged["reasons"].iloc[0] == ("flag_first_row_in_test: first",)


def test_disabled_checks_do_not_run(reference: pd.DataFrame, clean_batch: pd.DataFrame) -> None:
    cfg = {**ONLY_TEST_CHECKS, "flag_first_row_in_test": CheckConfig()}
    s = Sanitizer(label_column="label", id_columns=("record_id",), checks=cfg).fit(reference)
    assert [c.name for c in s.scan(clean_batch).checks] == ["flag_first_row_in_test"]
    with pytest.raises(ConfigError, match="every check is disabled"):
        Sanitizer(label_column="label", checks=ONLY_TEST_CHECKS).fit(reference)


def test_errors_before_fit_and_on_bad_batches(fitted: Sanitizer, clean_batch: pd.DataFrame) -> None:
    with pytest.raises(NotFittedError, match=r"call fit\(reference\)"):
        Sanitizer(label_column="label").scan(clean_batch)
    with pytest.raises(InputError, match="batch has no rows"):
        fitted.scan(clean_batch.iloc[:0])
    with pytest.raises(InputError, match="missing label column"):
        fitted.scan(clean_batch.drop(columns=["label"]))
    with pytest.raises(ConfigError, match="label_column is required"):
        Sanitizer()


def test_from_config_uses_the_suite_file(
    tmp_path: Path, reference: pd.DataFrame, clean_batch: pd.DataFrame
) -> None:
    suite = {
        "name": "tight",
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "x0", "min_value": -0.1, "max_value": 0.1},
            }
        ],
    }
    (tmp_path / "tight.json").write_text(json.dumps(suite))
    (tmp_path / "ds.toml").write_text(
        '[dataset]\nname = "ds"\nlabel_column = "label"\nid_columns = ["record_id"]\nsuite = "tight.json"\n'
    )
    s = Sanitizer.from_config(tmp_path / "ds.toml").fit(reference)
    report = s.scan(clean_batch)
    assert report.dataset == "ds"
    assert report.verdict == "quarantine"
    assert report.checks[0].info["suite"] == "tight"


def test_scan_does_not_modify_the_batch(fitted: Sanitizer, clean_batch: pd.DataFrame) -> None:
    before = clean_batch.copy(deep=True)
    fitted.scan(clean_batch)
    pd.testing.assert_frame_equal(clean_batch, before)


def test_config_and_kwargs_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="not both"):
        Sanitizer("label", config=SanitizerConfig(label_column="label"))


def test_rows_mode_passes_clean_rows_only(
    reference: pd.DataFrame, clean_batch: pd.DataFrame
) -> None:
    cfg = {"flag_first_row_in_test": CheckConfig()}
    rows = Sanitizer(
        label_column="label",
        id_columns=("record_id",),
        checks=cfg,
        policy=PolicyConfig(mode="rows"),
    )
    report = rows.fit(reference).scan(clean_batch)
    assert report.verdict == "quarantine"
    assert not report.clean_rows.iloc[0] and report.clean_rows.iloc[1:].all()
    assert report.to_dict()["rows_clean"] == len(clean_batch) - 1
    batch = (
        Sanitizer(label_column="label", id_columns=("record_id",), checks=cfg)
        .fit(reference)
        .scan(clean_batch)
    )
    assert not batch.clean_rows.any()


def test_rows_mode_holds_back_everything_on_batch_level_failure(
    reference: pd.DataFrame, clean_batch: pd.DataFrame
) -> None:
    cfg = {"explodes_in_test": CheckConfig()}
    s = Sanitizer(
        label_column="label",
        id_columns=("record_id",),
        checks=cfg,
        policy=PolicyConfig(mode="rows"),
    )
    assert not s.fit(reference).scan(clean_batch).clean_rows.any()


def test_alpha_is_shared_between_quarantining_tests(reference: pd.DataFrame) -> None:
    cfg = {
        **ONLY_TEST_CHECKS,
        "alpha_probe_in_test": CheckConfig(),
        "alpha_probe_warn_in_test": CheckConfig(severity="warn"),
    }
    s = Sanitizer(
        label_column="label", id_columns=("record_id",), checks=cfg, policy=PolicyConfig(alpha=0.02)
    ).fit(reference)
    alphas = {c.name: c.alpha for c, _ in s.checks_ if hasattr(c, "alpha")}
    assert alphas == {"alpha_probe_in_test": 0.02, "alpha_probe_warn_in_test": 0.02}
    cfg2 = {**cfg, "alpha_probe_warn_in_test": CheckConfig()}
    s2 = Sanitizer(
        label_column="label",
        id_columns=("record_id",),
        checks=cfg2,
        policy=PolicyConfig(alpha=0.02),
    ).fit(reference)
    assert {c.name: c.alpha for c, _ in s2.checks_ if hasattr(c, "alpha")} == {
        "alpha_probe_in_test": 0.01,
        "alpha_probe_warn_in_test": 0.01,
    }


class AlphaProbe(Check):
    name = "alpha_probe_in_test"

    def __init__(self, alpha: float = 0.5) -> None:
        self.alpha = alpha

    def fit(self, reference: Table) -> Self:
        return self

    def run(self, batch: Table) -> CheckResult:
        return self.result("pass", "ok")


class AlphaProbeWarn(AlphaProbe):
    name = "alpha_probe_warn_in_test"
