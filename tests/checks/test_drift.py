"""DriftCheck (warn) and ConditionalDriftCheck (quarantine) on data with a known answer."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sanitizer import attacks
from sanitizer.checks._common import balanced_folds
from sanitizer.checks.drift import (
    PROB_FLOOR,
    ConditionalDriftCheck,
    DriftCheck,
    calibration_slope,
    categorical_pvalue,
    class_offsets,
    excess_loss,
    holm,
    ks_two_sided,
)
from sanitizer.config import CheckConfig, SanitizerConfig
from sanitizer.contract import DataContract
from sanitizer.engine import Sanitizer
from sanitizer.samples import make_dataset, split
from sanitizer.table import Table

CONFIG = SanitizerConfig(label_column="label", id_columns=("record_id",))


def select_by(pool: pd.DataFrame, weights: np.ndarray, size: int, seed: int) -> pd.DataFrame:
    """A batch drawn from clean rows with unequal probabilities: P(label | x) unchanged."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(pool), size=size, replace=False, p=weights / weights.sum())
    return pool.iloc[np.sort(rows)].reset_index(drop=True)


def covariate_shift(pool: pd.DataFrame, size: int, seed: int, strength: float) -> pd.DataFrame:
    z = (pool["x0"] - pool["x0"].mean()) / pool["x0"].std()
    return select_by(pool, np.exp(strength * z.to_numpy()), size, seed)


def prior_shift(pool: pd.DataFrame, size: int, seed: int, factor: float) -> pd.DataFrame:
    return select_by(pool, np.where(pool["label"].to_numpy() == 1, factor, 1.0), size, seed)


def flip_labels(batch: pd.DataFrame, rate: float, seed: int) -> pd.DataFrame:
    return attacks.flip_labels_random(batch, "label", seed, rate=rate)[0]


@cache
def fitted() -> tuple[DriftCheck, ConditionalDriftCheck, pd.DataFrame, pd.DataFrame, DataContract]:
    data = make_dataset(16_000, n_numeric=8, seed=31)
    reference, pool = split(data, [4_000, 12_000], seed=1)
    contract = DataContract.from_reference(reference, CONFIG)
    drift = DriftCheck().fit(Table(reference, contract))
    conditional = ConditionalDriftCheck().fit(Table(reference, contract))
    return drift, conditional, reference, pool, contract


def test_clean_batches_rarely_fail() -> None:
    drift, conditional, _, pool, contract = fitted()
    parts = split(pool, [50, 200, 1000] * 6 + [50, 200], seed=2)
    drift_failed = conditional_failed = 0
    for batch in parts:
        t = Table(batch, contract)
        drift_failed += drift.run(t).status == "fail"
        conditional_failed += conditional.run(t).status == "fail"
    assert drift_failed <= 1
    assert conditional_failed <= 1


def test_domain_classifier_pvalues_on_a_clean_batch_look_uniform_over_random_states() -> None:
    """Each random state draws its own subsamples, splits and model seed (independent
    streams): over 20 states, a clean batch's domain-test p-values are about uniform."""
    _, _, reference, pool, contract = fitted()
    batch = Table(pool.iloc[:8000].reset_index(drop=True), contract)
    ref = Table(reference, contract)
    pvalues = []
    for state in range(20):
        check = DriftCheck(random_state=state, max_rows=1000).fit(ref)
        pvalues.append(check._domain_test(batch.encoded(check.encoder_))[1])
    assert sum(p < 0.01 for p in pvalues) <= 1  # P(>= 2 of 20) = 1.7% if uniform
    assert 0.2 < float(np.median(pvalues)) < 0.8


def test_covariate_shift_is_drift_but_not_conditional_drift() -> None:
    drift, conditional, _, pool, contract = fitted()
    batch = covariate_shift(pool, 3000, seed=3, strength=0.4)
    t = Table(batch, contract)
    result = drift.run(t)
    assert result.status == "fail"
    assert "x0" in result.info["drifted"]
    assert "x0" in result.message
    assert result.severity == "warn"
    assert conditional.run(t).status == "pass"


def test_feature_tests_on_a_subsample_of_a_large_batch_still_see_the_shift() -> None:
    _, _, reference, pool, contract = fitted()
    drift = DriftCheck(max_batch_rows=1000).fit(Table(reference, contract))
    shifted = drift.run(Table(covariate_shift(pool, 3000, seed=3, strength=0.4), contract))
    assert shifted.info["feature_test_rows"] == 1000
    assert "x0" in shifted.info["drifted"]
    clean = drift.run(Table(pool.sample(3000, random_state=8).reset_index(drop=True), contract))
    assert clean.info["feature_test_rows"] == 1000 and clean.status == "pass"
    small = drift.run(Table(pool.iloc[:500].reset_index(drop=True), contract))
    assert small.info["feature_test_rows"] == 500


def test_prior_shift_is_drift_but_not_conditional_drift() -> None:
    drift, conditional, _, pool, contract = fitted()
    batch = prior_shift(pool, 3000, seed=4, factor=1.6)
    t = Table(batch, contract)
    result = drift.run(t)
    assert "label prior" in result.info["drifted"]
    assert conditional.run(t).status == "pass"


def test_domain_classifier_sees_a_joint_change() -> None:
    """Swap x1 between rows: every marginal is unchanged, the joint is not."""
    drift, _, _, pool, contract = fitted()
    batch = pool.sample(3000, random_state=5).reset_index(drop=True)
    batch["x1"] = np.random.default_rng(5).permutation(batch["x1"].to_numpy())
    result = drift.run(Table(batch, contract))
    assert result.info["drifted"] == ["domain classifier"]
    assert result.info["domain_auc"] > 0.6


@pytest.mark.parametrize("rate", [0.05, 0.15])
def test_label_flips_are_conditional_drift(rate: float) -> None:
    _, conditional, _, pool, contract = fitted()
    batch = flip_labels(pool.sample(1000, random_state=6).reset_index(drop=True), rate, 6)
    result = conditional.run(Table(batch, contract))
    assert result.status == "fail", result.message
    assert result.statistic is not None and result.statistic > 0.02


def test_holm_and_categorical_pvalue() -> None:
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])
    assert holm(np.zeros(0)).size == 0
    _, p_same = categorical_pvalue(np.array([400.0, 300, 200, 100]), np.array([40.0, 30, 20, 10]))
    assert p_same > 0.5
    _, p_moved = categorical_pvalue(np.array([400.0, 300, 200, 100]), np.array([10.0, 30, 20, 40]))
    assert p_moved < 1e-6


def test_option_validation() -> None:
    with pytest.raises(ValueError, match="correction"):
        DriftCheck(correction="fdr")
    with pytest.raises(ValueError, match="alpha"):
        ConditionalDriftCheck(alpha=2.0)
    with pytest.raises(ValueError, match="n_folds"):
        ConditionalDriftCheck(n_folds=1)


def test_every_reference_row_calibrates_scored_by_the_fold_model_that_never_saw_it() -> None:
    """Cross-fitting: one excess per reference row, each from the model of its own fold,
    which was fitted on the other folds' rows only (refitted here, it gives the same
    probabilities; a model that had seen the rows would fit their labels better)."""
    from sklearn.base import clone

    _, conditional, reference, _, contract = fitted()
    table = Table(reference, contract)
    x = table.encoded(conditional.encoder_)
    y = table.label_codes(conditional.classes_)
    assert len(conditional.models_) == 5 and len(conditional.calibration_excess_) == len(y)
    fold = balanced_folds(len(y), 5, conditional.random_state)
    assert np.bincount(fold).max() - np.bincount(fold).min() <= 1
    excess, _ = conditional._excess_of(np.log(conditional._proba(x, fold)), y)
    assert np.array_equal(excess, conditional.calibration_excess_)
    refit = clone(conditional.models_[0]).fit(x[fold != 0], y[fold != 0])
    assert np.allclose(
        refit.predict_proba(x[fold == 0]), conditional.models_[0].predict_proba(x[fold == 0])
    )
    seen = np.log(np.clip(conditional.models_[0].predict_proba(x[fold != 0]), 1e-4, 1.0))
    unseen = np.log(np.clip(conditional.models_[0].predict_proba(x[fold == 0]), 1e-4, 1.0))
    loss_seen = -seen[np.arange(len(seen)), y[fold != 0]].mean()
    loss_unseen = -unseen[np.arange(len(unseen)), y[fold == 0]].mean()
    assert loss_seen < loss_unseen


def test_a_reference_too_small_to_cross_fit_passes_every_batch() -> None:
    """Fewer than 25 rows, or a class missing from some fold's training rows: no model."""
    data = make_dataset(400, n_numeric=4, seed=5)
    contract = DataContract.from_reference(data, CONFIG)
    for reference in (data.iloc[:20], data.sort_values("label").iloc[:60]):
        check = ConditionalDriftCheck().fit(Table(reference.reset_index(drop=True), contract))
        result = check.run(Table(data.iloc[200:], contract))
        assert check.models_ == [] and result.status == "pass", result.message


# -- edge cases -------------------------------------------------------------------


def _both(reference: pd.DataFrame, batch: pd.DataFrame) -> None:
    contract = DataContract.from_reference(reference, CONFIG)
    for check in (DriftCheck(), ConditionalDriftCheck()):
        result = check.fit(Table(reference, contract)).run(Table(batch, contract))
        assert result.p_value is None or 0.0 <= result.p_value <= 1.0


def test_one_class_constant_column_and_nans() -> None:
    data = make_dataset(1_500, n_numeric=4, seed=3)
    data["label"] = 0
    data["const"] = 7.0
    data.loc[data.index % 9 == 0, "x1"] = np.nan
    data.loc[data.index % 7 == 0, "region"] = None
    reference, batch = split(data, [1_000, 300], seed=0)
    _both(reference, batch)


def test_categorical_only_numeric_only_and_tiny_batches() -> None:
    data = make_dataset(1_500, n_numeric=4, seed=4)
    reference, batch = split(data, [1_000, 300], seed=0)
    cats = ["record_id", "region", "plan", "label"]
    _both(reference[cats], batch[cats])
    nums = [c for c in data.columns if c not in ("region", "plan")]
    _both(reference[nums], batch[nums])
    for n in (1, 2, 5):
        _both(reference, batch.iloc[:n])


def test_unseen_category_is_drift() -> None:
    drift, _, _, pool, contract = fitted()
    batch = pool.sample(500, random_state=7).reset_index(drop=True)
    batch.loc[:60, "region"] = "atlantis"
    assert "region" in drift.run(Table(batch, contract)).info["drifted"]


# -- properties -------------------------------------------------------------------


@cache
def univariate() -> DriftCheck:
    _, _, reference, _, contract = fitted()
    return DriftCheck(domain_classifier=False).fit(Table(reference, contract))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(min_value=1, max_value=80), seed=st.integers(min_value=0, max_value=10_000))
def test_univariate_tests_are_permutation_invariant(n: int, seed: int) -> None:
    _, _, _, pool, contract = fitted()
    check = univariate()
    batch = pool.sample(n, random_state=seed).reset_index(drop=True)
    result = check.run(Table(batch, contract))
    assert result.p_value is not None and 0.0 <= result.p_value <= 1.0
    perm = np.random.default_rng(seed).permutation(n)
    permuted = check.run(Table(batch.iloc[perm].reset_index(drop=True), contract))
    assert permuted.p_value == pytest.approx(result.p_value)
    assert permuted.info["drifted"] == result.info["drifted"]


def test_through_the_engine_drift_warns_conditional_drift_quarantines() -> None:
    _, _, reference, pool, _ = fitted()
    sanitizer = Sanitizer(
        label_column="label",
        id_columns=("record_id",),
        checks={"drift": CheckConfig(), "conditional_drift": CheckConfig()},
    ).fit(reference)
    shifted = covariate_shift(pool, 2000, seed=8, strength=0.5)
    report = sanitizer.scan(shifted)
    by_name = {r.name: r for r in report.checks}
    assert by_name["drift"].status == "warn"
    assert by_name["conditional_drift"].status == "pass"
    assert report.verdict == "pass"
    flipped = flip_labels(pool.sample(1000, random_state=9).reset_index(drop=True), 0.1, 9)
    report = sanitizer.scan(flipped)
    assert report.verdict == "quarantine"
    assert {r.name: r for r in report.checks}["conditional_drift"].status == "fail"


def test_excess_loss_scored_in_threaded_blocks_equals_one_call(monkeypatch) -> None:
    from sanitizer.checks import drift as drift_module

    _, conditional, _, pool, contract = fitted()
    table = Table(pool, contract)
    x = table.encoded(conditional.encoder_)
    y = table.label_codes(conditional.classes_)
    fold = balanced_folds(len(y), len(conditional.models_), 3)
    one, offsets = conditional._excess_of(np.log(conditional._proba(x, fold)), y)
    monkeypatch.setattr(drift_module, "PREDICT_BLOCK", 999)
    monkeypatch.setattr(drift_module, "PARALLEL_ROWS", 1)
    blocked, _ = conditional._excess_of(np.log(conditional._proba(x, fold)), y)
    assert np.array_equal(one, blocked)
    # each row by its own fold's model
    proba = np.zeros((len(y), len(conditional.classes_)))
    for j, model in enumerate(conditional.models_):
        proba[fold == j] = model.predict_proba(x[fold == j])
    proba = np.clip(proba, 1e-4, 1.0) * np.exp(offsets)
    proba /= proba.sum(axis=1, keepdims=True)
    expected = -np.log(proba[np.arange(len(y)), y]) + (proba * np.log(proba)).sum(axis=1)
    assert np.allclose(one, expected, rtol=0, atol=1e-12)


# -- the calibration-slope test ---------------------------------------------------------


def weak_labels(n: int, seed: int) -> pd.DataFrame:
    """Labels barely predictable from the features (as in survey data): logit 0.5 x0 +
    0.3 x1 - 0.3 x2 + 1, 73% positive), so no flipped row stands out from the natural noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    logit = 0.5 * x[:, 0] + 0.3 * x[:, 1] - 0.3 * x[:, 2] + 1.0
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])
    frame["label"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    frame.insert(0, "record_id", np.arange(n))
    return frame


@cache
def weak_split() -> tuple[pd.DataFrame, pd.DataFrame, DataContract]:
    """A 20,000-row reference of weakly predictable labels, a 60,000-row pool, the contract."""
    data = weak_labels(80_000, seed=41)
    reference, pool = data.iloc[:20_000], data.iloc[20_000:].reset_index(drop=True)
    return reference, pool, DataContract.from_reference(reference.reset_index(drop=True), CONFIG)


@cache
def fitted_weak(slope: bool = True) -> tuple[ConditionalDriftCheck, pd.DataFrame, DataContract]:
    reference, pool, contract = weak_split()
    check = ConditionalDriftCheck(alpha=0.002, slope=slope).fit(Table(reference, contract))
    return check, pool, contract


def test_calibration_slope_recovers_a_known_slope_and_its_error() -> None:
    """Labels drawn with P(y = k) ∝ p_k ** b: the fitted slope is b within its standard
    error, for two and for ten classes, and the error shrinks like 1 / sqrt(n)."""
    rng = np.random.default_rng(3)
    for k, b in ((2, 1.0), (2, 0.6), (10, 0.8)):
        log_p = np.log(rng.dirichlet(np.ones(k) * 0.7, size=4000))
        tilted = np.exp(b * log_p)
        tilted /= tilted.sum(axis=1, keepdims=True)
        y = (tilted.cumsum(axis=1) < rng.random((4000, 1))).sum(axis=1)
        fitted = calibration_slope(log_p, y)
        assert fitted is not None
        estimate, var = fitted
        assert abs(estimate - b) < 4 * np.sqrt(var), (k, b, estimate, var)
        half = calibration_slope(log_p[:1000], y[:1000])
        assert half is not None and 2.5 < half[1] / var < 6.5  # 4x the variance at n/4
    assert calibration_slope(np.log(np.full((10, 2), 0.5)), np.zeros(10, dtype=int)) is None


Case = tuple[np.ndarray, np.ndarray, np.ndarray, np.random.Generator]


@st.composite
def prior_shift_cases(draw: st.DrawFn, min_rows: int) -> Case:
    """Random log-probabilities of 2–5 classes, labels, one constant per class (what
    a prior shift adds to the log-probabilities) and the generator that drew them."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    k = draw(st.integers(2, 5))
    n = draw(st.integers(min_rows, 400))
    offsets = np.asarray(draw(st.lists(st.floats(-3.0, 3.0), min_size=k, max_size=k)))
    log_p = np.log(rng.dirichlet(np.ones(k), size=n))
    return log_p, rng.integers(0, k, n), offsets, rng


@settings(max_examples=30, deadline=None)
@given(case=prior_shift_cases(min_rows=40))
def test_calibration_slope_ignores_per_class_offsets_and_row_order(case: Case) -> None:
    """A per-class constant added to the log-probabilities (what a prior shift does
    to them) is absorbed by the class intercepts, and the rows' order does not
    matter: the slope is the same."""
    log_p, y, offsets, rng = case
    base = calibration_slope(log_p, y)
    if base is None:
        assert np.unique(y).size < 2
        return
    shifted = calibration_slope(log_p + offsets, y)
    order = rng.permutation(len(y))
    permuted = calibration_slope(log_p[order], y[order])
    assert shifted is not None and permuted is not None
    assert shifted[0] == pytest.approx(base[0], rel=1e-3, abs=1e-3)
    assert permuted[0] == pytest.approx(base[0], rel=1e-3, abs=1e-3)
    assert shifted[1] == pytest.approx(base[1], rel=1e-2)


def test_class_offsets_recover_a_prior_shift() -> None:
    """Labels drawn from p_k(x) · exp(c_k), normalised: the fitted offsets are c
    (relative to class 0) within a few standard errors, zero where the labels follow p;
    a class absent from the labels gets a bounded offset, not minus infinity."""
    rng = np.random.default_rng(5)
    log_p = np.log(rng.dirichlet(np.ones(3), size=20_000))
    for shift in (np.zeros(3), np.array([0.0, 0.7, -0.5])):
        tilted = np.exp(log_p + shift)
        tilted /= tilted.sum(axis=1, keepdims=True)
        y = (tilted.cumsum(axis=1) < rng.random((len(log_p), 1))).sum(axis=1)
        np.testing.assert_allclose(class_offsets(log_p, y), shift, atol=0.05)
    absent = class_offsets(log_p[:200], rng.integers(0, 2, 200))
    bound = np.log(1.0 / PROB_FLOOR)  # unbounded, it runs to -13.8 here
    assert absent[0] == 0.0 and absent[2] == pytest.approx(-bound)
    assert class_offsets(log_p[:0], np.zeros(0, dtype=int)).tolist() == [0.0, 0.0, 0.0]


@settings(max_examples=30, deadline=None)
@given(case=prior_shift_cases(min_rows=20))
def test_excess_loss_after_fitted_offsets_ignores_per_class_offsets(case: Case) -> None:
    """What a prior shift does to the log-probabilities (a constant per class) the
    fitted offsets take back: each row's excess loss is unchanged."""
    log_p, y, offsets, _ = case
    k = log_p.shape[1]
    if np.bincount(y, minlength=k).min() == 0:
        y[:k] = np.arange(k)  # an absent class's offset sits at its bound instead
    shifted = log_p + offsets

    def excess(lp: np.ndarray) -> np.ndarray:
        return excess_loss(lp + class_offsets(lp, y), y)

    # the optimiser stops at ~1e-4 in the offsets: the invariance holds to that
    np.testing.assert_allclose(excess(shifted), excess(log_p), atol=2e-3)


def test_a_strong_covariate_shift_of_weakly_predictable_labels_is_not_conditional_drift() -> None:
    """Batches drawn with weights exp(0.8 z(x0)) from weakly predictable labels: x0
    drives the labels, so the batch's label prior moves (73% → 80% positive) while
    P(label | x) does not. Re-weighting the model to that prior (profile format 5) gained
    0.04–0.07 nats and failed 5 of 5 such batches at 3,000 and 10,000 rows; the
    fitted offsets stay near zero and none fails."""
    check, pool, contract = fitted_weak()
    for n in (3000, 10_000):
        for seed in range(3):
            batch = select_by(pool, np.exp(0.8 * pool["x0"].to_numpy()), n, 100 + seed)
            assert batch["label"].mean() > 0.77
            result = check.run(Table(batch, contract))
            assert result.status == "pass", result.message
            assert result.info["p_excess"] > 0.01
            assert abs(result.info["class_offsets"][1]) < 0.2


def test_flips_where_labels_are_barely_predictable_flatten_the_slope() -> None:
    """10% flips in 3,000 rows of weakly predictable, imbalanced labels: the slope test
    fails every batch and its evidence is far stronger than the excess loss's, which
    alone misses some of them (the fitted class offsets, pulled toward 50/50 by the
    flips, absorb part of their effect)."""
    check, pool, contract = fitted_weak()
    alone, _, _ = fitted_weak(slope=False)
    missed_alone = 0
    for seed in range(4):
        batch = pool.sample(3000, random_state=seed).reset_index(drop=True)
        flipped = Table(flip_labels(batch, 0.1, seed), contract)
        missed_alone += alone.run(flipped).status == "pass"
        result = check.run(flipped)
        assert result.status == "fail", result.message
        assert result.info["slope_ratio"] < 0.9
        assert result.info["p_slope"] < result.info["p_excess"] / 10
        assert result.message.startswith("calibration slope")
    assert missed_alone >= 1


def test_slope_test_rejects_clean_batches_at_its_nominal_rate() -> None:
    """Over references and batches: 30 references of 4,000 rows, 5 clean 500-row
    batches each. The guarantee is marginal over the reference (the test includes the
    held-out slope's own error): a reference whose held-out slope came out steep
    rejects more of its clean batches than nominal, and fewer of them fail for the
    compression floor (measured: 0, 8 and 30 of 500 p-values below 0.001, 0.01 and
    0.05 over 100 references)."""
    p_slope = []
    for ref_seed in range(30):
        data = weak_labels(6_500, seed=500 + ref_seed)
        reference, pool = data.iloc[:4_000], data.iloc[4_000:].reset_index(drop=True)
        contract = DataContract.from_reference(reference.reset_index(drop=True), CONFIG)
        check = ConditionalDriftCheck(alpha=0.002).fit(Table(reference, contract))
        assert check.slope_ is not None
        for k in range(5):
            batch = pool.iloc[k * 500 : (k + 1) * 500].reset_index(drop=True)
            p_slope.append(check.run(Table(batch, contract)).info["p_slope"])
    p = np.array(p_slope)
    se = np.sqrt(0.05 * 0.95 / len(p))
    assert np.mean(p < 0.05) <= 0.05 + 3 * se, np.mean(p < 0.05)
    assert np.mean(p < 0.5) > 0.3  # not a test that never rejects


def test_slope_test_leaves_prior_and_covariate_shift_alone() -> None:
    """A prior shift (absorbed by the class intercepts) and a covariate shift (P(label |
    x) unchanged) keep the slope, in 3,000-row batches."""
    check, pool, contract = fitted_weak()
    for seed in range(3):
        shifted = [
            prior_shift(pool, 3000, seed=seed, factor=2.0),
            select_by(pool, np.exp(0.5 * pool["x0"].to_numpy()), 3000, seed),
        ]
        for batch in shifted:
            result = check.run(Table(batch, contract))
            assert result.info["p_slope"] > 0.01, result.message
            assert result.info["slope_ratio"] > 0.85


def test_a_large_batch_needs_the_compression_floor() -> None:
    """A slope a little flatter is significant in a huge batch but above the
    compression floor: 4% flips in 40,000 rows fail at alpha 0.01 without the floor and
    pass with it. (The excess-loss test has its own floor, 0.02 nats.)"""
    reference, pool, contract = weak_split()
    batch = flip_labels(pool.sample(40_000, random_state=7).reset_index(drop=True), 0.04, 7)
    outcomes = {}
    for floor in (0.0, 0.1):
        check = ConditionalDriftCheck(alpha=0.01, min_compression=floor, min_effect=1.0)
        result = check.fit(Table(reference, contract)).run(Table(batch, contract))
        assert 0.8 < result.info["slope_ratio"] < 0.95
        outcomes[floor] = result.status
    assert outcomes == {0.0: "fail", 0.1: "pass"}


def test_a_mild_covariate_shift_of_a_large_batch_clears_the_excess_loss_floor() -> None:
    """Weakly predictable labels, 10,000-row batches drawn with weights exp(0.3 z(x0)),
    and this reference's held-out mean happens to be 1.4 standard errors low, so even
    clean batches sit ~0.006 nats above it. With the model re-weighted to the batch's
    label prior (profile format 5) the shift added ~0.02 nats: against the held-out
    mean itself 9 of 10 such batches failed, against its upper bound one at most.
    With fitted class offsets these shifted batches sat +0.002 to +0.008 nats above
    it, clean ones +0.005 to +0.007."""
    check, pool, contract = fitted_weak()
    failed = 0
    for seed in range(5):
        batch = select_by(pool, np.exp(0.3 * pool["x0"].to_numpy()), 10_000, 1000 + seed)
        result = check.run(Table(batch, contract))
        assert result.info["excess_margin"] > 0.005
        failed += result.status == "fail"
    assert failed <= 1


def test_slope_options() -> None:
    with pytest.raises(ValueError, match="min_compression"):
        ConditionalDriftCheck(min_compression=1.0)
    check, pool, contract = fitted_weak(slope=False)
    assert check.slope_ is None
    result = check.run(Table(pool.head(300), contract))
    assert "p_slope" not in result.info
    # the slope is fitted on at most max_slope_rows of the batch (a seeded subsample)
    check, pool, contract = fitted_weak()
    batch = Table(pool.head(3000), contract)
    assert check.run(batch).info["slope_rows"] == 3000
    check.max_slope_rows = 1000
    try:
        first, again = check.run(batch).info, check.run(batch).info
    finally:
        check.max_slope_rows = 20_000
    assert first["slope_rows"] == 1000 and first["p_slope"] == again["p_slope"]


@settings(max_examples=30, deadline=None)
@given(
    n1=st.integers(1, 30_000),
    n2=st.integers(1, 30_000),
    levels=st.sampled_from([0, 3, 40]),  # 0: continuous; else that many distinct values
    shift=st.floats(0.0, 0.2),
    seed=st.integers(0, 2**31 - 1),
)
def test_ks_matches_scipy_to_the_bit(n1, n2, levels, shift, seed):
    """The drift check's KS test keeps the reference sorted; scipy's ks_2samp sorts it
    on every scan. Statistic and p-value must be scipy's exactly, ties included."""
    from scipy.stats import ks_2samp

    r = np.random.default_rng(seed)

    def draw(n: int, loc: float) -> np.ndarray:
        x = r.normal(loc, 1.0, n)
        return np.floor((x + 3.0) / 6.0 * levels) if levels else x

    values, ref = draw(n1, shift), np.sort(draw(n2, 0.0))
    expected = ks_2samp(values, ref)
    assert ks_two_sided(values, ref) == (float(expected.statistic), float(expected.pvalue))
    ranks = np.searchsorted(ref, ref, side="right")
    assert ks_two_sided(values, ref, ranks) == (float(expected.statistic), float(expected.pvalue))


def test_refitting_drops_the_previous_references_ranks():
    """The KS ranks are cached from the fitted reference; a second fit on another
    reference must not reuse them."""
    data = make_dataset(40_000, seed=31)
    first, second, batch = split(data, [12_000, 15_000, 12_000], seed=2)
    second = second.assign(x0=second["x0"].round(1) + 1.0)  # ties: other ranks
    contract = DataContract.from_reference(first, SanitizerConfig(label_column="label"))
    check = DriftCheck(domain_classifier=False).fit(Table(first, contract))
    check.run(Table(batch, contract))  # fills the cache
    check.fit(Table(second, contract))
    fresh = DriftCheck(domain_classifier=False).fit(Table(second, contract))
    again, expected = check.run(Table(batch, contract)), fresh.run(Table(batch, contract))
    assert again.info == expected.info and again.p_value == expected.p_value
