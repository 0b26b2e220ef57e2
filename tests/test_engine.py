from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert out == pytest.approx([0.81, 0.9801, 1.0])
    assert _combined_scores([], 2).tolist() == [0.0, 0.0]
    # five independent uniform views of clean rows combine to a uniform score again
    rng = np.random.default_rng(0)
    combined = _combined_scores(list(rng.random((5, 20_000))), 20_000)
    assert np.quantile(combined, [0.1, 0.5, 0.9]) == pytest.approx([0.1, 0.5, 0.9], abs=0.01)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 7).flatmap(
        lambda k: st.lists(
            st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k), min_size=1, max_size=30
        )
    )
)
def test_combined_scores_rank_rows_as_their_largest_score(rows: list[list[float]]) -> None:
    """No two rows with different largest scores tie (Bonferroni's clipping at 0 tied
    every row below 1 - 1/k), and the order is the largest score's."""
    from sanitizer.engine import _combined_scores

    scores = np.array(rows)
    combined = _combined_scores(list(scores.T), len(scores))
    top = scores.max(axis=1)
    for i in range(len(top)):
        for j in range(len(top)):
            if top[i] < top[j]:
                assert combined[i] <= combined[j]
                if top[j] - top[i] > 1e-6:
                    assert combined[i] < combined[j]


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


# -- screening large batches (policy.screen_rows) -------------------------------------


@pytest.fixture(scope="module")
def screening(
    population: pd.DataFrame, reference: pd.DataFrame
) -> tuple[Sanitizer, Sanitizer, pd.DataFrame]:
    """The same checks fitted once, screening at 300 rows and scanning every row, and a
    1,200-row clean batch: population rows that are not in the reference."""
    from dataclasses import replace as dc_replace

    screened = Sanitizer(
        label_column="label", id_columns=("record_id",), policy=PolicyConfig(screen_rows=300)
    ).fit(reference)
    every_row = Sanitizer(config=dc_replace(screened.config, policy=PolicyConfig(screen_rows=0)))
    every_row.contract_, every_row.checks_ = screened.contract_, screened.checks_
    unused = population[~population["record_id"].isin(reference["record_id"])]
    batch = unused.head(1200).reset_index(drop=True)
    batch.index = batch.index + 5000  # labels unlike positions
    return screened, every_row, batch


def test_a_clean_large_batch_passes_on_its_screen(
    screening: tuple, reference: pd.DataFrame
) -> None:
    screened, _, batch = screening
    report = screened.scan(batch)
    assert report.verdict == "pass"
    assert report.screen is not None and report.screen["rows"] == 300
    assert report.screen["of"] == 1200 and report.screen["outcome"] == "passed"
    scored = report.row_scores.notna()
    assert scored.sum() == 300 and report.rows == 1200
    assert report.row_scores.index.equals(batch.index) and report.clean_rows.all()
    for c in report.checks:
        if c.name == "schema":  # the contract is checked on every row
            assert c.row_scores is not None and len(c.row_scores) == 1200
        else:
            assert c.row_scores is None and c.info["screened_rows"] == 300
            assert "300-row random sample of 1,200" in c.message
    doc = json.loads(report.to_json())
    assert doc["screen"]["rows"] == 300 and doc["screen"]["seed"] == report.screen["seed"]
    assert sum(v is not None for v in doc["row_scores"]) == 300
    assert "screened on a random sample of 300 rows" in report.summary()
    page = report.to_html(batch=batch, reference=reference, sanitizer=screened)
    assert "300-row random sample: passed" in page and "PASS" in page
    # a fresh sample every scan: a batch's author cannot aim at unsampled rows
    assert screened.scan(batch).screen["seed"] != report.screen["seed"]  # type: ignore[index]


def test_a_failed_screen_is_decided_on_every_row(screening: tuple) -> None:
    from sanitizer.attacks import flip_labels_random

    screened, every_row, batch = screening
    poisoned, mask = flip_labels_random(batch, "label", seed=3, rate=0.2)
    report = screened.scan(poisoned)
    full = every_row.scan(poisoned)
    assert report.verdict == full.verdict == "quarantine"
    assert report.screen is not None and report.screen["outcome"].startswith("failed")
    assert full.screen is None
    assert report.row_scores.notna().all()
    np.testing.assert_allclose(report.row_scores.to_numpy(), full.row_scores.to_numpy())
    assert report.flagged.index.equals(full.flagged.index)
    assert {c.name: c.status for c in report.checks} == {c.name: c.status for c in full.checks}
    assert mask[batch.index.get_indexer(report.flagged.index)].mean() > 0.5


def test_the_schema_sees_rows_outside_the_screen(screening: tuple) -> None:
    screened, _, batch = screening
    broken = batch.copy()
    broken.loc[broken.index[::100], "x1"] = 1e12  # 12 rows: most of them outside any sample
    report = screened.scan(broken)
    assert report.verdict == "quarantine"
    schema = next(c for c in report.checks if c.name == "schema")
    assert schema.status == "fail"
    assert set(broken.index[::100]) <= set(report.flagged.index)
    assert report.row_scores.notna().all()  # the statistical checks re-ran on every row


def test_the_schema_runs_beside_the_screen(
    screening: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole-batch schema runs on one worker while the statistical checks screen
    the sample on the other, and once it is done two statistical checks run side by
    side: the schema waits for a statistical check to start, and the label check for
    the next one, which a sequential scan would never let them see. A schema that
    raises is an error that quarantines, and the warning filters that the threads'
    quiet blocks save and restore are the caller's again afterwards."""
    import threading
    import warnings

    screened, _, batch = screening
    checks = {c.name: c for c, _ in screened.checks_}
    started, next_started = threading.Event(), threading.Event()
    threads: dict[str, str] = {}
    schema_run, label_run = checks["schema"].run, checks["label_consistency"].run
    duplicates_run = checks["duplicates"].run

    def schema(table: Table) -> CheckResult:
        threads["schema"] = threading.current_thread().name
        assert started.wait(timeout=60), "the statistical checks did not run beside the schema"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return schema_run(table)

    def label(table: Table) -> CheckResult:
        threads["label_consistency"] = threading.current_thread().name
        started.set()
        assert next_started.wait(timeout=60), "the next check did not run beside this one"
        return label_run(table)

    def duplicates(table: Table) -> CheckResult:
        threads["duplicates"] = threading.current_thread().name
        next_started.set()
        return duplicates_run(table)

    monkeypatch.setattr(checks["schema"], "run", schema)
    monkeypatch.setattr(checks["label_consistency"], "run", label)
    monkeypatch.setattr(checks["duplicates"], "run", duplicates)
    filters = list(warnings.filters)
    report = screened.scan(batch)
    assert report.verdict == "pass" and report.screen["outcome"] == "passed"  # type: ignore[index]
    assert [c.name for c in report.checks] == [c.name for c, _ in screened.checks_]
    assert all(name.startswith("sanitizer-screen") for name in threads.values())
    assert threads["schema"] != threads["label_consistency"] != threads["duplicates"]
    assert warnings.filters == filters

    def broken(table: Table) -> CheckResult:
        raise RuntimeError("schema broke")

    monkeypatch.setattr(checks["schema"], "run", broken)
    report = screened.scan(batch)
    schema_result = next(c for c in report.checks if c.name == "schema")
    assert schema_result.status == "error" and "schema broke" in schema_result.message
    assert report.verdict == "quarantine" and report.row_scores.notna().all()


def test_rows_mode_and_small_batches_are_never_screened(
    reference: pd.DataFrame, screening: tuple, clean_batch: pd.DataFrame
) -> None:
    screened, _, batch = screening
    assert screened.scan(clean_batch.head(300)).screen is None  # not larger than screen_rows
    rows = Sanitizer(config=screened.config.__class__(
        label_column="label", id_columns=("record_id",),
        policy=PolicyConfig(mode="rows", screen_rows=300),
    ))  # fmt: skip
    rows.contract_, rows.checks_ = screened.contract_, screened.checks_
    report = rows.scan(batch)
    assert report.screen is None and report.row_scores.notna().all()


class RowCountCheck(Check):
    """Records how many rows it was shown (a custom check: not screenable by default)."""

    name = "row_count_in_test"

    def fit(self, reference: Table) -> Self:
        self.seen_: list[int] = []
        return self

    def run(self, batch: Table) -> CheckResult:
        self.seen_.append(len(batch))
        return self.result("pass", "counted", row_scores=np.zeros(len(batch)))


def test_only_screenable_checks_see_the_sample(reference: pd.DataFrame, screening: tuple) -> None:
    from sanitizer.checks import get_check_class

    assert not get_check_class("schema").screenable
    assert all(get_check_class(n).screenable for n in DEFAULT_CHECKS if n != "schema")
    s = Sanitizer(
        label_column="label",
        id_columns=("record_id",),
        checks={**ONLY_TEST_CHECKS, "outliers": CheckConfig(), "row_count_in_test": CheckConfig()},
        policy=PolicyConfig(screen_rows=300),
    ).fit(reference)
    report = s.scan(screening[2])
    assert report.screen is not None and report.screen["outcome"] == "passed"
    counter = next(c for c, _ in s.checks_ if c.name == "row_count_in_test")
    assert counter.seen_ == [1200]  # a custom rule check sees every row


class FailsOnSamplesCheck(Check):
    """Fails whenever it is shown fewer rows than it was told the batch has: a screen
    that fails by chance while the batch as a whole is clean."""

    name = "fails_on_samples_in_test"
    screenable = True

    def __init__(self, batch_rows: int = 0) -> None:
        self.batch_rows = batch_rows

    def fit(self, reference: Table) -> Self:
        self.fitted_ = True
        return self

    def run(self, batch: Table) -> CheckResult:
        sampled = len(batch) < self.batch_rows
        flags = np.zeros(len(batch), dtype=bool)
        flags[:1] = sampled
        return self.result(
            "fail" if sampled else "pass",
            "sample" if sampled else "every row",
            row_scores=flags.astype(float),
            row_flags=flags,
        )


def test_a_screen_never_quarantines_on_its_own(reference: pd.DataFrame, screening: tuple) -> None:
    batch = screening[2]
    s = Sanitizer(
        label_column="label",
        id_columns=("record_id",),
        checks={
            **ONLY_TEST_CHECKS,
            "fails_on_samples_in_test": CheckConfig(options={"batch_rows": len(batch)}),
        },
        policy=PolicyConfig(screen_rows=300),
    ).fit(reference)
    report = s.scan(batch)
    assert report.verdict == "pass" and report.flagged.empty
    assert report.screen is not None and report.screen["outcome"].startswith("failed")
    assert [c.message for c in report.checks] == ["every row"]
    assert report.row_scores.notna().all()


@pytest.mark.parametrize("value", [-1, 1, 99, 2.5, True, "1000"])
def test_screen_rows_must_be_zero_or_a_usable_sample(value: object) -> None:
    with pytest.raises(ConfigError, match=r"policy\.screen_rows"):
        PolicyConfig(screen_rows=value)  # type: ignore[arg-type]
