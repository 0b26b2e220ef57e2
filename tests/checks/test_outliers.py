"""OutlierCheck: clean batches pass at the stated rate, in-range outliers are caught."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from sanitizer import attacks
from sanitizer.checks.outliers import OutlierCheck, conformal_excess_pvalue
from sanitizer.config import CheckConfig, SanitizerConfig
from sanitizer.contract import DataContract
from sanitizer.engine import Sanitizer
from sanitizer.samples import make_dataset, split
from sanitizer.table import Table

CONFIG = SanitizerConfig(label_column="label", id_columns=("record_id",))


def table(frame: pd.DataFrame, reference: pd.DataFrame) -> Table:
    return Table(frame, DataContract.from_reference(reference, CONFIG))


def inject_outliers(
    batch: pd.DataFrame, reference: pd.DataFrame, rate: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """In-range outliers (the shared attack generator): every value from a different
    reference row, so in range, the combination not; labels at random."""
    return attacks.in_range_outliers(batch, "label", seed, reference=reference, rate=rate)


@cache
def fitted() -> tuple[OutlierCheck, pd.DataFrame, pd.DataFrame, DataContract]:
    data = make_dataset(14_000, n_numeric=8, seed=11)
    reference, pool = split(data, [4_000, 10_000], seed=1)
    contract = DataContract.from_reference(reference, CONFIG)
    check = OutlierCheck().fit(Table(reference, contract))
    return check, reference, pool, contract


def test_every_reference_row_calibrates_scored_by_the_fold_model_that_never_saw_it() -> None:
    """Cross-fitting: one out-of-fold score per reference row in each family, each
    from the model of its own fold, which was fitted on the other folds' rows only
    (refitted here without them, it gives the same scores)."""
    from sanitizer.checks._common import balanced_folds, content_folds
    from sanitizer.checks.outliers import FoldModel, _column_groups

    check, reference, _, contract = fitted()
    x = Table(reference, contract).encoded(check.encoder_)
    assert len(check.folds_) == 5 and len(check.calibration_) == len(reference)
    assert check.dependence_calibration_ is not None
    fold = balanced_folds(len(x), 5, check.random_state)
    assert np.bincount(fold).max() - np.bincount(fold).min() <= 1
    for score, cal in (
        (FoldModel.density, check.calibration_),
        (FoldModel.combination, check.dependence_calibration_["calibration"]),
    ):
        np.testing.assert_allclose(np.sort(check._raw(x, fold, score)), cal)
    size = check.folds_[0].mixture.n_components
    refit = check._fit_fold(x[fold != 1], _column_groups(check.encoder_), True, size)
    held_out = x[fold == 1]
    np.testing.assert_allclose(refit.density(held_out), check.folds_[1].density(held_out))
    np.testing.assert_allclose(refit.combination(held_out), check.folds_[1].combination(held_out))
    # a batch row by one fold model, picked by its content (and its occurrence among
    # identical rows): the same row, the same model and score; its copy, the next model
    rows = reference.iloc[:50]
    once = Table(rows, contract)
    twice = Table(pd.concat([rows, rows]), contract)
    fold_once = content_folds(once.encoded(check.encoder_), check.hash_weights_, 5)
    fold_twice = content_folds(twice.encoded(check.encoder_), check.hash_weights_, 5)
    assert np.array_equal(fold_twice[:50], fold_once)
    assert np.array_equal(fold_twice[50:], (fold_once + 1) % 5)
    single, double = check.run(once).row_scores, check.run(twice).row_scores
    assert single is not None and double is not None
    np.testing.assert_array_equal(double[:50], single)


def test_clean_batches_rarely_fail() -> None:
    check, _, pool, contract = fitted()
    sizes = [50, 200, 1000] * 6 + [50, 200]
    parts = split(pool, sizes, seed=2)
    failed = [check.run(Table(b, contract)).failed for b in parts]
    # 20 batches at alpha=0.01: P(>= 2 failures) < 2% if the level holds.
    assert sum(failed) <= 1


def test_large_clean_batch_and_mild_selection_drift_pass() -> None:
    """A fixed reference's thresholds are a little off nominal; big batches must not
    turn that, or a mild covariate shift, into a quarantine."""
    check, _, pool, contract = fitted()
    assert not check.run(Table(pool.iloc[:9000].reset_index(drop=True), contract)).failed
    z = ((pool["x0"] - pool["x0"].mean()) / pool["x0"].std()).to_numpy()
    weights = np.exp(0.3 * z)
    rows = np.random.default_rng(3).choice(
        len(pool), 6000, replace=False, p=weights / weights.sum()
    )
    assert not check.run(Table(pool.iloc[np.sort(rows)].reset_index(drop=True), contract)).failed


@pytest.mark.parametrize(("n", "rate"), [(200, 0.03), (1000, 0.02), (3000, 0.01)])
def test_in_range_outliers_are_caught_with_high_auroc(n: int, rate: float) -> None:
    check, reference, pool, contract = fitted()
    for seed in range(3):
        batch = pool.sample(n, random_state=seed).reset_index(drop=True)
        poisoned, mask = inject_outliers(batch, reference, rate, seed)
        result = check.run(Table(poisoned, contract))
        assert result.failed, result.message
        assert roc_auc_score(mask, result.row_scores) >= 0.95
        flagged = np.flatnonzero(result.row_flags & mask)
        assert flagged.size
        reason = result.row_reasons[int(flagged[0])][0]
        assert reason.startswith(("outliers: joint novelty", "outliers: combination of values"))


def test_outliers_stay_inside_every_column_range() -> None:
    """The attack is invisible to a range check: each value lies in the reference range."""
    _, reference, pool, _ = fitted()
    batch = pool.sample(500, random_state=5).reset_index(drop=True)
    poisoned, mask = inject_outliers(batch, reference, 0.05, 5)
    for col in [c for c in reference.columns if c.startswith("x")]:
        assert poisoned.loc[mask, col].between(reference[col].min(), reference[col].max()).all()


def test_result_shape_and_info() -> None:
    check, _, pool, contract = fitted()
    batch = pool.iloc[:300].reset_index(drop=True)
    result = check.run(Table(batch, contract))
    assert result.name == "outliers"
    assert result.row_scores is not None and result.row_scores.shape == (300,)
    assert result.p_value is not None and 0.0 <= result.p_value <= 1.0
    assert set(result.info) >= {"levels", "flagged_per_level", "expected_rate"}


def test_conformal_pvalue_is_exact_for_uniform_scores() -> None:
    """Monte Carlo: P(p <= 0.05) for clean counts stays at or below 0.05."""
    rng = np.random.default_rng(0)
    m, n, j = 500, 300, 5
    rejections = 0
    for _ in range(400):
        cal = np.sort(rng.random(m))
        threshold = cal[m - j]
        k = int(np.count_nonzero(rng.random(n) > threshold))
        rejections += conformal_excess_pvalue(k, n, j, m) <= 0.05
    assert rejections / 400 <= 0.08


def test_option_validation() -> None:
    with pytest.raises(ValueError, match="alpha"):
        OutlierCheck(alpha=0.0)
    with pytest.raises(ValueError, match="levels"):
        OutlierCheck(levels=(1.5,))
    with pytest.raises(ValueError, match="min_ratio"):
        OutlierCheck(min_ratio=0.5)
    with pytest.raises(ValueError, match="n_threads"):
        OutlierCheck(n_threads=0)
    with pytest.raises(ValueError, match="tail_rows"):
        OutlierCheck(tail_rows=1)
    with pytest.raises(ValueError, match="tail_fraction"):
        OutlierCheck(tail_fraction=0.0)
    with pytest.raises(ValueError, match="tail_gain"):
        OutlierCheck(tail_gain=0.5)


def test_threaded_chunked_scoring_gives_the_single_threaded_result(monkeypatch) -> None:
    """Large batches are scored in chunks on several threads: same mixture, same rows,
    so the same scores, flags and p-value as one thread."""
    import sanitizer.checks.outliers as outliers_module

    _, reference, pool, contract = fitted()
    batch, _ = inject_outliers(pool.iloc[:3000].reset_index(drop=True), reference, 0.02, 5)
    one = OutlierCheck(n_threads=1).fit(Table(reference, contract))
    many = OutlierCheck(n_threads=3, parallel_rows=1).fit(Table(reference, contract))
    monkeypatch.setattr(outliers_module, "SCORE_CHUNK", 256)  # 12 chunks over 3 threads
    a, b = one.run(Table(batch, contract)), many.run(Table(batch, contract))
    assert b.row_scores is not None and a.row_scores is not None
    np.testing.assert_allclose(b.row_scores, a.row_scores, rtol=1e-12)
    assert np.array_equal(b.row_flags, a.row_flags)
    assert a.p_value == b.p_value and a.failed and b.failed


def test_run_before_fit_raises() -> None:
    from sanitizer.errors import NotFittedError

    _, _, pool, contract = fitted()
    with pytest.raises(NotFittedError, match="fit"):
        OutlierCheck().run(Table(pool.iloc[:10], contract))


# -- edge cases -------------------------------------------------------------------


def _run_on(reference: pd.DataFrame, batch: pd.DataFrame) -> np.ndarray:
    contract = DataContract.from_reference(reference, CONFIG)
    check = OutlierCheck().fit(Table(reference, contract))
    result = check.run(Table(batch, contract))
    assert result.row_scores is not None
    assert result.row_scores.shape == (len(batch),)
    assert np.all((result.row_scores >= 0) & (result.row_scores <= 1))
    return result.row_scores


def test_one_class_constant_column_and_nans() -> None:
    data = make_dataset(1_500, n_numeric=4, seed=3)
    data["label"] = 0
    data["const"] = 7.0
    data.loc[data.index % 13 == 0, "x1"] = np.nan
    reference, batch = split(data, [1_000, 300], seed=0)
    _run_on(reference, batch)


def test_categorical_only_and_numeric_only() -> None:
    data = make_dataset(1_500, n_numeric=4, seed=4)
    reference, batch = split(data, [1_000, 300], seed=0)
    cats = ["record_id", "region", "plan", "label"]
    _run_on(reference[cats], batch[cats])
    nums = [c for c in data.columns if c not in ("region", "plan")]
    _run_on(reference[nums], batch[nums])


def test_no_features_passes() -> None:
    data = make_dataset(500, seed=5)[["record_id", "label"]]
    reference, batch = split(data, [300, 100], seed=0)
    contract = DataContract.from_reference(reference, CONFIG)
    result = OutlierCheck().fit(Table(reference, contract)).run(Table(batch, contract))
    assert result.status == "pass"


def test_tiny_batches() -> None:
    check, _, pool, contract = fitted()
    for n in (1, 2, 5):
        result = check.run(Table(pool.iloc[:n], contract))
        assert result.row_scores is not None and len(result.row_scores) == n


# -- properties -------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=60),
    seed=st.integers(min_value=0, max_value=10_000),
    scale=st.floats(min_value=0.0, max_value=50.0),
)
def test_scores_in_unit_interval_and_permutation_equivariant(
    n: int, seed: int, scale: float
) -> None:
    check, _, pool, contract = fitted()
    rng = np.random.default_rng(seed)
    batch = pool.sample(n, random_state=seed).reset_index(drop=True)
    batch["x0"] = batch["x0"] + scale * rng.normal(size=n)
    result = check.run(Table(batch, contract))
    scores = result.row_scores
    assert scores is not None and scores.shape == (n,)
    assert np.all(np.isfinite(scores)) and scores.min() >= 0 and scores.max() <= 1
    perm = rng.permutation(n)
    permuted = check.run(Table(batch.iloc[perm].reset_index(drop=True), contract))
    assert permuted.row_scores is not None
    np.testing.assert_allclose(permuted.row_scores, scores[perm])


def test_through_the_engine() -> None:
    _, reference, pool, _ = fitted()
    batch = pool.sample(400, random_state=9).reset_index(drop=True)
    poisoned, mask = inject_outliers(batch, reference, 0.05, 9)
    sanitizer = Sanitizer(
        label_column="label", id_columns=("record_id",), checks={"outliers": CheckConfig()}
    ).fit(reference)
    report = sanitizer.scan(poisoned)
    assert report.verdict == "quarantine"
    result = next(r for r in report.checks if r.name == "outliers")
    assert result.failed
    assert set(report.flagged.index) & set(np.flatnonzero(mask))


# -- the tail test ----------------------------------------------------------------


def _correlated(rng: np.random.Generator, n: int, df: float | None = None) -> pd.DataFrame:
    """x1 follows x0 closely; multivariate Student-t rows when ``df`` is given."""
    x0 = rng.normal(size=n)
    x1 = x0 + 0.1 * rng.normal(size=n)
    frame = pd.DataFrame({"x0": x0, "x1": x1, "x2": rng.normal(size=n)})
    if df is not None:
        frame = frame.div(np.sqrt(rng.chisquare(df, size=n) / df), axis=0)
    frame["label"] = (frame["x0"] + rng.normal(size=n) > 0).astype(int)
    frame.insert(0, "record_id", np.arange(n))
    return frame


def test_tail_test_sees_how_far_beyond_the_reference_two_rows_are() -> None:
    """Two in-range rows that break x1 ≈ x0 in a 200-row batch: ranks alone give
    p ≈ (n / (n + m))² for two rows beyond every held-out row, too weak at the
    check's level; the tail model knows they are hundreds of nats out, and the test is
    then bounded by ``tail_gain`` times the rank-only p-value."""
    from scipy.stats import betabinom

    rng = np.random.default_rng(3)
    reference = _correlated(rng, 2400)  # every row calibrates (out of fold): m = 2,400
    contract = DataContract.from_reference(reference, CONFIG)
    batch = _correlated(rng, 200)
    batch.loc[[7, 91], ["x0", "x1"]] = [[1.5, -1.5], [-1.2, 1.4]]  # each inside its range
    for col in ("x0", "x1"):
        assert reference[col].min() < batch[col].min() and batch[col].max() < reference[col].max()
    # the density family alone (the dependence score would see the broken x1 ≈ x0 too)
    ranks_only = OutlierCheck(alpha=0.005, tail_rows=0, dependence=False)
    result = ranks_only.fit(Table(reference, contract)).run(Table(batch, contract))
    assert not result.failed and result.info["p_tail"] == 1.0
    check = OutlierCheck(alpha=0.005, dependence=False).fit(Table(reference, contract))
    result = check.run(Table(batch, contract))
    m = result.info["calibration_rows"]
    rank_p = float(betabinom.sf(1, 200, 1, m))  # two of 200 beyond the maximum of m
    assert result.info["p_tail"] == pytest.approx(rank_p / check.tail_gain)
    # weighted Bonferroni: the tail test has a quarter of alpha
    assert result.p_value == pytest.approx(4 * rank_p / check.tail_gain)
    assert result.failed and "beyond the most novel reference row" in result.message
    assert {7, 91} <= set(np.flatnonzero(result.row_flags))


def test_one_far_row_never_fails_the_batch_through_the_tail() -> None:
    rng = np.random.default_rng(4)
    reference = _correlated(rng, 4000)
    contract = DataContract.from_reference(reference, CONFIG)
    batch = _correlated(rng, 100)
    batch.loc[0, ["x0", "x1"]] = [2.0, -2.0]
    result = OutlierCheck().fit(Table(reference, contract)).run(Table(batch, contract))
    assert result.info["p_tail"] == 1.0 and not result.failed


@pytest.mark.parametrize("df", [None, 3.0])
def test_tail_test_level_on_clean_batches(df: float | None) -> None:
    """Clean batches, Gaussian and heavy-tailed (Student-t, 3 degrees of freedom, whose
    tail a mixture underestimates): the tail test rejects at 0.05 no more often than
    5% plus three standard errors, and the whole check at its level rarely."""
    rng = np.random.default_rng(5)
    reference = _correlated(rng, 3000, df)
    contract = DataContract.from_reference(reference, CONFIG)
    check = OutlierCheck(alpha=0.01).fit(Table(reference, contract))
    assert check.tail_ is not None
    runs = [check.run(Table(_correlated(rng, n, df), contract)) for n in [200, 1000] * 60]
    tail_rejections = np.mean([r.info["p_tail"] < 0.05 for r in runs])
    assert tail_rejections <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / len(runs))
    assert sum(r.failed for r in runs) <= 3


def test_fit_tail_recovers_an_exponential_and_refuses_ties() -> None:
    from sanitizer.checks.outliers import MIN_TAIL_EXCESSES, fit_tail

    rng = np.random.default_rng(6)
    tail = fit_tail(np.sort(rng.exponential(size=20_000)), 0.02)
    assert tail is not None
    assert tail["excesses"] == 400 and tail["maximum"] > tail["threshold"]
    # the shape's upper bound: ML estimate (about 0) plus two standard errors
    assert 0.0 <= tail["shape"] < 0.3
    assert tail["scale"] == pytest.approx(1.0, rel=0.25)
    assert fit_tail(np.sort(rng.integers(0, 3, size=5000).astype(float)), 0.02) is None
    assert fit_tail(np.sort(rng.exponential(size=2 * MIN_TAIL_EXCESSES - 1)), 0.02) is None


@settings(max_examples=40, deadline=None)
@given(
    raw=st.lists(st.floats(min_value=-5.0, max_value=1e6), min_size=1, max_size=300),
    shape=st.floats(min_value=0.0, max_value=3.0),
    gain=st.floats(min_value=1.0, max_value=100.0),
)
def test_tail_pvalue_never_beats_the_rank_bound(
    raw: list[float], shape: float, gain: float
) -> None:
    """Whatever the tail model says, the tail p-value is at least the rank-only
    p-value of the rows beyond the held-out maximum divided by ``gain``."""
    from sanitizer.checks.outliers import tail_pvalue

    tail = {"threshold": 1.0, "excesses": 60.0, "shape": shape, "scale": 0.5,
            "maximum": 4.0, "calibration_rows": 3000.0}  # fmt: skip
    scores = np.asarray(raw)
    p = tail_pvalue(tail, scores, 10, 3.0, gain)
    k = min(int(np.count_nonzero(scores > 4.0)), 10)
    assert 0.0 <= p <= 1.0
    if k >= 2:
        assert p >= conformal_excess_pvalue(k, len(scores), 1, 3000) / gain * (1 - 1e-12)
    else:
        assert p == 1.0


@settings(max_examples=40, deadline=None)
@given(
    raw=st.lists(st.floats(min_value=-5.0, max_value=1e6), min_size=1, max_size=300),
    shape=st.floats(min_value=0.0, max_value=3.0),
)
def test_tail_scores_order_the_rows_beyond_the_maximum(raw: list[float], shape: float) -> None:
    """Beyond the held-out maximum a score keeps rising with the distance (ties only
    where the tail's survival underflows), stays in [(m - 1) / m, 1], and never falls
    below a nearer row's; rows inside keep their percentile."""
    from sanitizer.checks._common import calibrated_percentile
    from sanitizer.checks.outliers import tail_scores

    m = 3000
    calibration = np.sort(np.random.default_rng(0).exponential(size=m))
    tail = {"threshold": float(calibration[m - 61]), "excesses": 60.0, "shape": shape,
            "scale": 1.0, "maximum": float(calibration[-1]), "calibration_rows": float(m)}  # fmt: skip
    values = np.asarray(raw)
    percentile = calibrated_percentile(calibration, values)
    scores = tail_scores(tail, values, percentile)
    inside = values <= calibration[-1]
    assert np.array_equal(scores[inside], percentile[inside])
    assert np.all((scores[~inside] >= (m - 1) / m) & (scores[~inside] <= 1.0))
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(scores[order]) >= -1e-15)
    assert tail_scores(None, values, percentile) is percentile


def test_the_furthest_row_ranks_first_and_its_reason_says_beyond() -> None:
    rng = np.random.default_rng(7)
    reference = _correlated(rng, 4000)
    contract = DataContract.from_reference(reference, CONFIG)
    batch = _correlated(rng, 200)
    batch.loc[[7, 91], ["x0", "x1"]] = [[1.0, -1.0], [1.8, -1.8]]  # 91 is further out
    result = OutlierCheck(alpha=0.01).fit(Table(reference, contract)).run(Table(batch, contract))
    scores = np.asarray(result.row_scores)
    assert np.argsort(-scores)[:2].tolist() == [91, 7]
    assert 1 - 1 / result.info["calibration_rows"] <= scores[7] < scores[91] < 1.0
    assert "beyond every reference row" in result.row_reasons[91][0]


# -- the levels' joint calibration ---------------------------------------------------


def _exact_min_level_pvalue(flagged: list[int], js: list[int], n: int, m: int) -> float:
    """P(min level p <= observed) by enumerating the Dirichlet-multinomial law of the
    batch rows in the gaps of the sorted held-out scores (two levels)."""
    from scipy.special import gammaln

    from sanitizer.checks.outliers import _level_pvalues

    a = np.array([js[0], js[1] - js[0], m + 1 - js[1]], dtype=float)

    def observed_min(k1: int, k2: int) -> float:
        return min(
            float(_level_pvalues(np.array([k]), n, j, m, 1.0)[0])
            for k, j in zip((k1, k2), js, strict=True)
        )

    target = observed_min(*flagged)
    total = 0.0
    for g1 in range(n + 1):
        for g2 in range(n + 1 - g1):
            g = np.array([g1, g2, n - g1 - g2], dtype=float)
            logp = (
                gammaln(n + 1) + gammaln(a.sum()) - gammaln(n + a.sum())
                + np.sum(gammaln(g + a) - gammaln(g + 1) - gammaln(a))
            )  # fmt: skip
            if observed_min(g1, g1 + g2) <= target * (1 + 1e-9):
                total += float(np.exp(logp))
    return total


def test_levels_calibration_matches_the_exact_law() -> None:
    from sanitizer.checks.outliers import min_level_pvalue

    n, m, js = 40, 60, [1, 6]
    for flagged in ([2, 4], [1, 8], [3, 9]):
        exact = _exact_min_level_pvalue(flagged, js, n, m)
        p, draws = min_level_pvalue(flagged, js, n, m, 1.0, None, 200_000)
        se = np.sqrt(exact * (1 - exact) / draws)
        assert abs(p - exact) <= 4 * se + 1 / draws, (flagged, p, exact)
        bonferroni, _ = min_level_pvalue(flagged, js, n, m, 1.0, None, 0)
        assert p <= bonferroni + 1e-12


def test_levels_calibration_holds_its_level_and_beats_bonferroni() -> None:
    """Uniform held-out and batch scores (the null, exactly): the calibrated smallest
    level p-value rejects at 0.05 within three standard errors of 5%, and at least
    as often as Bonferroni over the three levels."""
    from sanitizer.checks.outliers import min_level_pvalue

    rng = np.random.default_rng(11)
    m, n, js = 1000, 150, [10, 3, 1]
    calibrated, bonferroni = [], []
    for _ in range(300):
        cal = np.sort(rng.random(m))
        batch = rng.random(n)
        flagged = [int(np.count_nonzero(batch > cal[m - j])) for j in js]
        calibrated.append(min_level_pvalue(flagged, js, n, m, 1.0, None, 20_000)[0])
        bonferroni.append(min_level_pvalue(flagged, js, n, m, 1.0, None, 0)[0])
    rate = np.mean(np.asarray(calibrated) <= 0.05)
    assert abs(rate - 0.05) <= 3 * np.sqrt(0.05 * 0.95 / 300)
    assert rate >= np.mean(np.asarray(bonferroni) <= 0.05)
    assert np.all(np.asarray(calibrated) <= np.asarray(bonferroni) + 1e-12)


def test_levels_calibration_skips_where_it_cannot_change_the_decision() -> None:
    from sanitizer.checks.outliers import min_level_pvalue

    # Bonferroni already rejects at the level: no draws
    p, draws = min_level_pvalue([40, 10, 3], [30, 3, 1], 200, 3000, 3.0, 0.002, 200_000)
    assert p < 0.002 and draws == 0
    # the smallest p-value is not below the level: no draws, and no rejection
    p, draws = min_level_pvalue([3, 1, 0], [30, 3, 1], 200, 3000, 3.0, 0.002, 200_000)
    assert p >= 0.002 and draws == 0
    # borderline: drawn, reproducible, between the smallest p and Bonferroni
    first = min_level_pvalue([8, 3, 2], [30, 3, 1], 200, 3000, 3.0, 0.002, 200_000)
    assert first == min_level_pvalue([8, 3, 2], [30, 3, 1], 200, 3000, 3.0, 0.002, 200_000)
    assert first[1] > 0
    smallest = min(conformal_excess_pvalue(k, 200, j, 3000) for k, j in [(8, 30), (3, 3), (2, 1)])
    assert smallest <= first[0] <= 3 * smallest


# -- the dependence score --------------------------------------------------------------


def _coded(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """A survey-like table of 1-5 codes whose dependence is not linear: q1 and q2 are
    fixed scramblings of q0 and q3 one of q2 (each with 2% noise), q4 independent.
    Every pair is uncorrelated-looking to a Gaussian; trees see the mapping."""
    q0 = rng.integers(1, 6, n)

    def follow(base: np.ndarray, mapping: list[int]) -> np.ndarray:
        noisy = rng.random(n) < 0.02
        return np.where(noisy, rng.integers(1, 6, n), np.asarray(mapping)[base - 1])

    q1, q2 = follow(q0, [3, 5, 1, 4, 2]), follow(q0, [2, 4, 5, 1, 3])
    frame = pd.DataFrame(
        {
            "q0": q0,
            "q1": q1,
            "q2": q2,
            "q3": follow(q2, [5, 3, 1, 2, 4]),
            "q4": rng.integers(1, 6, n),
        }
    ).astype(float)
    frame["label"] = (q0 + rng.integers(0, 3, n) > 4).astype(int)
    frame.insert(0, "record_id", np.arange(n))
    return frame


@cache
def coded() -> tuple[pd.DataFrame, pd.DataFrame, DataContract, OutlierCheck, OutlierCheck]:
    rng = np.random.default_rng(21)
    reference, pool = _coded(rng, 3000), _coded(rng, 20_000)
    contract = DataContract.from_reference(reference, CONFIG)
    # the level each quarantining check gets under the default policy (1% over five)
    with_dependence = OutlierCheck(alpha=0.002).fit(Table(reference, contract))
    density_only = OutlierCheck(alpha=0.002, dependence=False).fit(Table(reference, contract))
    return reference, pool, contract, with_dependence, density_only


def test_dependence_score_catches_mixed_values_the_density_misses() -> None:
    """15 of 300 rows whose codes come from different reference rows: every value is
    common, the combination is not. The density alone gives p = 0.0007 to 0.17 on
    these batches (before cross-fitting, with mixtures fitted on 40% of the
    reference, it passed them all at the level a check gets by default, 0.002); with
    the dependence score they fail with evidence at least ten times stronger, its
    rows rank higher, and their reasons say why."""
    reference, pool, contract, check, density = coded()
    for seed in (1, 2, 3):
        batch = pool.iloc[seed * 300 : (seed + 1) * 300].reset_index(drop=True)
        poisoned, mask = inject_outliers(batch, reference, 0.05, seed)
        plain = density.run(Table(poisoned, contract))
        result = check.run(Table(poisoned, contract))
        assert "p_dependence_levels" not in plain.info and plain.p_value is not None
        assert result.info["dependence"] and result.failed, result.message
        assert result.p_value is not None and result.p_value < plain.p_value / 10
        assert roc_auc_score(mask, result.row_scores) >= 0.95
        assert roc_auc_score(mask, result.row_scores) > roc_auc_score(mask, plain.row_scores)
        assert "combination-of-values" in result.message
        caught = [r for r in np.flatnonzero(result.row_flags & mask) if r in result.row_reasons]
        assert any("combination of values" in result.row_reasons[r][0] for r in caught)


def test_dependence_score_keeps_the_level_on_clean_coded_batches() -> None:
    """30 clean batches of the coded table at alpha 0.05: the two families together
    reject no more often than 5% plus three standard errors."""
    _, pool, contract, check, _ = coded()
    failed = 0
    for k in range(30):
        batch = pool.iloc[5000 + k * 400 : 5000 + (k + 1) * 400].reset_index(drop=True)
        p = check.run(Table(batch, contract)).p_value
        assert p is not None
        failed += p < 0.05
    assert failed <= 0.05 * 30 + 3 * np.sqrt(0.05 * 0.95 * 30)


def test_dependence_classifier_tells_a_broken_pair_from_a_kept_one() -> None:
    """Two identical integer columns: (a, a) is what the reference holds, (a, b != a) is
    what independent draws add; the log-odds of the second are far above the first."""
    from sanitizer.checks.outliers import fit_dependence

    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 2000).astype(float)
    model = fit_dependence(np.c_[a, a], [np.array([0]), np.array([1])], seed=0)
    kept = model.decision_function(np.array([[v, v] for v in range(5)], dtype=float))
    broken = model.decision_function(np.array([[v, (v + 2) % 5] for v in range(5)], dtype=float))
    assert broken.min() > kept.max() + 2.0


@pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")
def test_dependence_needs_two_columns_and_can_be_turned_off() -> None:
    """(One coded column of five values: the mixture tries no more components than
    distinct rows, so k-means does not warn that it found fewer clusters.)"""
    reference, _, _, _, density = coded()
    assert density.dependence_calibration_ is None
    assert all(model.dependence is None for model in density.folds_)
    one = reference[["record_id", "q0", "label"]]
    check = OutlierCheck().fit(table(one, one))
    assert check.dependence_calibration_ is None
    result = check.run(table(one.iloc[:100], one))
    assert result.info["dependence"] is False


def test_dependence_state_survives_a_profile_round_trip(tmp_path) -> None:
    """The fitted classifier and its calibration are saved (skops, no pickle) and give
    the same p-value and row scores after loading."""
    from sanitizer.profile import load_profile, save_profile

    reference, pool, _, _, _ = coded()
    sanitizer = Sanitizer(label_column="label", id_columns=("record_id",)).fit(reference)
    batch, _ = inject_outliers(pool.iloc[:300].reset_index(drop=True), reference, 0.03, 1)
    before = next(c for c in sanitizer.scan(batch).checks if c.name == "outliers")
    loaded = load_profile(save_profile(sanitizer, tmp_path / "p.zip"))
    after = next(c for c in loaded.scan(batch).checks if c.name == "outliers")
    assert before.info["dependence"] and after.info["dependence"]
    assert after.p_value == pytest.approx(before.p_value)
    np.testing.assert_allclose(after.row_scores, before.row_scores)


def test_two_families_flag_about_the_first_levels_share_of_clean_rows() -> None:
    """Each family flags beyond its held-out 99.5% quantile, so together they flag
    about 1% of clean rows (the first level), not 2%."""
    _, pool, contract, check, density = coded()
    batch = pool.iloc[8000:18000].reset_index(drop=True)
    both = check.run(Table(batch, contract)).row_flags
    alone = density.run(Table(batch, contract)).row_flags
    assert both is not None and alone is not None
    assert 0.004 < both.mean() < 0.02 and alone.mean() < 0.02


def test_two_families_keep_clean_row_scores_about_uniform() -> None:
    """A row's score is the larger family score with Bonferroni on its tail, so about
    q of clean rows score above 1 - q, as with one family (the engine's combination
    across checks assumes it)."""
    _, pool, contract, check, _ = coded()
    scores = check.run(Table(pool.iloc[8000:18000].reset_index(drop=True), contract)).row_scores
    assert scores is not None
    for q in (0.01, 0.05, 0.2):
        assert np.mean(scores > 1.0 - q) == pytest.approx(q, rel=0.5)


@cache
def flagged_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic population with eight 0/1 flags each set in 1% of rows: the
    low-entropy columns real tables carry beside their measurements."""
    data = make_dataset(16_000, seed=13)
    rng = np.random.default_rng(14)
    for j in range(8):
        data[f"flag{j}"] = (rng.random(len(data)) < 0.01).astype(float)
    reference, pool = split(data, [5_000, 11_000], seed=3)
    return reference, pool


def test_rare_flags_do_not_hide_in_range_outliers() -> None:
    """As Gaussian dimensions, a flag set in 1% of rows is 10 standard deviations out:
    every clean row with a flag outscored the outliers, whose values mostly keep the
    flags at 0. Scored by frequency, ten outlier rows (1%) of a 1,000-row batch fail
    every batch (p 5e-7 to 8e-6; before: 2 of 4, p 0.13, 0.028, 8e-6 and 0.001)."""
    reference, pool = flagged_table()
    contract = DataContract.from_reference(reference, CONFIG)
    check = OutlierCheck(alpha=0.002).fit(Table(reference, contract))
    assert all(model.flags["columns"].size == 8 for model in check.folds_)
    info = check.run(Table(pool.iloc[:100].reset_index(drop=True), contract)).info
    assert info["rare_flags"] == [f"flag{j}" for j in range(8)]
    for seed in range(4):
        batch = pool.iloc[seed * 1000 : (seed + 1) * 1000].reset_index(drop=True)
        poisoned, mask = inject_outliers(batch, reference, 0.01, seed * 100)
        result = check.run(Table(poisoned, contract))
        assert result.failed, result.message
        assert roc_auc_score(mask, result.row_scores) > 0.9
        assert not check.run(Table(batch, contract)).failed


def test_rare_flag_columns_and_their_surprise() -> None:
    """Only numeric columns with two values, the rarer below a tenth of the rows; an
    unseen value is the most surprising; a flag that is set shows in the reasons."""
    from sanitizer.checks.outliers import _flag_surprise, _rare_flags

    rng = np.random.default_rng(0)
    n = 1000
    x = np.column_stack(
        [
            rng.normal(size=n),  # continuous
            (rng.random(n) < 0.02).astype(float),  # a rare flag
            (rng.random(n) < 0.3).astype(float),  # a common binary: stays in the mixture
            np.repeat([0.0, 1.0], n // 2),  # balanced
            (rng.random(n) < 0.02).astype(float),  # one-hot of a categorical: not numeric
        ]
    )
    flags = _rare_flags(x, n_numeric=4)
    assert flags["columns"].tolist() == [1.0]
    ones = int(x[:, 1].sum())
    np.testing.assert_allclose(
        flags["surprise"][0], -np.log(np.array([n - ones + 1, ones + 1, 1]) / (n + 3))
    )
    rows = np.array([[0.0, 0.0, 0, 0, 0], [0.0, 1.0, 0, 0, 0], [0.0, 0.5, 0, 0, 0]])
    s = _flag_surprise(rows, flags)
    assert s[0] < s[1] < s[2]
    assert _rare_flags(x, n_numeric=4, share=0.0)["columns"].size == 0  # option off
    with pytest.raises(ValueError, match="rare_flag_share"):
        OutlierCheck(rare_flag_share=0.6)
    # every numeric column a flag: the mixture keeps them all
    only_flags = (rng.random((n, 3)) < 0.02).astype(float)
    assert _rare_flags(only_flags, n_numeric=3)["columns"].size == 0

    reference, pool = flagged_table()
    contract = DataContract.from_reference(reference, CONFIG)
    check = OutlierCheck().fit(Table(reference, contract))
    batch = pool.iloc[:200].reset_index(drop=True).copy()
    batch.loc[0, [f"flag{j}" for j in range(8)]] = 0.0
    scores = []
    for value in (0.0, 1.0, 0.5):  # unset, set (1% of rows), a value the flag never took
        batch.loc[0, "flag3"] = value
        scores.append(check.run(Table(batch, contract)).row_scores[0])
    assert scores[0] < scores[1] < scores[2]
    batch.loc[0, ["flag4", "flag5"]] = 1.0  # three rare events in one row
    result = check.run(Table(batch, contract))
    assert result.row_flags[0] and result.row_scores[0] == result.row_scores.max()
    assert "flag3" in result.row_reasons[0][0]


def _outliers_round_trip(
    reference: pd.DataFrame, batch: pd.DataFrame, tmp_path
) -> tuple[OutlierCheck, Any, Any]:
    """Fit a sanitizer on ``reference``, save and load its profile: the loaded outlier
    check and the outlier results on ``batch`` before and after."""
    from sanitizer.profile import load_profile, save_profile

    sanitizer = Sanitizer(label_column="label", id_columns=("record_id",)).fit(reference)
    before = next(c for c in sanitizer.scan(batch).checks if c.name == "outliers")
    loaded = load_profile(save_profile(sanitizer, tmp_path / "p.zip"))
    outliers = next(c for c, _ in loaded.checks_ if c.name == "outliers")
    after = next(c for c in loaded.scan(batch).checks if c.name == "outliers")
    return outliers, before, after


def test_rare_flag_state_survives_a_profile_round_trip(tmp_path) -> None:
    reference, pool = flagged_table()
    batch, _ = inject_outliers(pool.iloc[:500].reset_index(drop=True), reference, 0.02, 1)
    outliers, before, after = _outliers_round_trip(reference, batch, tmp_path)
    assert all(model.flags["columns"].size == 8 for model in outliers.folds_)
    assert after.p_value == pytest.approx(before.p_value)
    np.testing.assert_allclose(after.row_scores, before.row_scores)


@cache
def stores_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic population with a ``store`` column of 3 common and 20 rare
    categories (1% of rows each)."""
    data = make_dataset(16_000, seed=15)
    rng = np.random.default_rng(16)
    share = np.r_[0.4, 0.25, 0.15, np.full(20, 0.01)]
    names = np.array([f"s{j:02d}" for j in range(len(share))])
    data.insert(len(data.columns) - 1, "store", names[rng.choice(len(share), len(data), p=share)])
    reference, pool = split(data, [5_000, 11_000], seed=3)
    return reference, pool


def test_rare_categories_leave_the_mixture_and_score_by_frequency() -> None:
    """A one-hot column of a 1% category is a rare flag; its rows join the block's
    zero state, scored by their share of it. Where the zero state would be rare too,
    the block's most frequent category leaves the mixture with them."""
    from sanitizer.checks._features import FeatureEncoder
    from sanitizer.checks.outliers import _category_surprise, _rare_categories

    def encoder(*blocks: int) -> FeatureEncoder:
        return FeatureEncoder(
            numeric=("x",),
            categorical=tuple(f"c{i}" for i in range(len(blocks))),
            center=np.zeros(1),
            scale=np.ones(1),
            categories=tuple(tuple(f"v{j}" for j in range(b)) for b in blocks),
        )

    def one_hot(codes: np.ndarray, size: int) -> np.ndarray:
        out = np.zeros((len(codes), size))
        seen = codes < size  # code ``size``: none of the categories (missing, unseen)
        out[np.flatnonzero(seen), codes[seen]] = 1.0
        return out

    n = 1000
    rng = np.random.default_rng(0)
    a = rng.choice(4, n, p=[0.6, 0.35, 0.03, 0.02])  # two rare categories
    b = rng.choice(4, n, p=[0.4, 0.3, 0.15, 0.15])  # none rare; code 3: none
    c = rng.choice(3, n, p=[0.5, 0.45, 0.05])  # rare, but its zero state is common
    c[rng.random(n) < 0.1] = 3  # 10% none
    x = np.column_stack([rng.normal(size=n), one_hot(a, 4), one_hot(b, 3), one_hot(c, 3)])
    cats = _rare_categories(x, encoder(4, 3, 3))
    # block a: v2, v3 rare; zero state 5% < 10%, so v0 (the most frequent) leaves too
    assert cats["columns"].tolist() == [1, 3, 4, 10]
    assert cats["rare"].tolist() == [3, 4, 10]
    assert cats["starts"].tolist() == [1, 8] and cats["sizes"].tolist() == [4, 3]
    counts = np.bincount(a, minlength=4)
    zero = counts[0] + counts[2] + counts[3]
    np.testing.assert_allclose(
        cats["surprise"][0],
        [
            *-np.log((counts[[0]] + 1.0) / (zero + 4)),
            0.0,
            *-np.log((counts[2:] + 1.0) / (zero + 4)),
            -np.log(1.0 / (zero + 4)),
        ],
    )
    per_block = _category_surprise(x, cats, total=False)
    assert per_block.shape == (n, 2)
    np.testing.assert_allclose(_category_surprise(x, cats), per_block.sum(axis=1))
    assert np.all(per_block[a == 1, 0] == 0.0)  # a common category the mixture models
    assert per_block[a == 3, 0].min() > per_block[a == 0, 0].max() > 0.0
    assert per_block[c == 2, 1].min() > per_block[c == 3, 1].max()  # 5% rare, 10% none
    assert _rare_categories(x, encoder(4, 3, 3), share=0.0)["columns"].size == 0  # option off
    # every column would leave: the mixture keeps them all
    only = one_hot(rng.choice(3, n, p=[0.96, 0.02, 0.02]), 3)
    only_enc = FeatureEncoder((), ("c",), np.zeros(0), np.ones(0), (("v0", "v1", "v2"),))
    assert _rare_categories(only, only_enc)["columns"].size == 0


def test_rare_categories_do_not_hide_in_range_outliers() -> None:
    """Twenty 1% categories as Gaussian dimensions: a fifth of the clean rows lie 10
    standard deviations out in one of them, above rows that break the numeric
    columns' correlation. The density family alone (the unit under test): with the
    categories in the mixture (``rare_flag_share=0``, the behaviour before) 1% of
    such rows in a 1,000-row batch gave p = 1 in every batch, though they ranked at
    AUROC 0.95-0.97; scored by frequency, p <= 0.003. (Cross-fitted, with mixtures
    fitted on 80% of the reference rather than 40%, the categories in the mixture
    give p = 7e-5 to 0.25, and scored by frequency at least ten times smaller,
    p <= 0.0005.)"""

    def rows(n: int, seed: int, outliers: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
        r = np.random.default_rng(seed)
        z = r.normal(size=(n, 3))
        z[:, 1] = 0.95 * z[:, 0] + 0.3 * z[:, 1]
        z[:, 2] = 0.95 * z[:, 1] + 0.3 * z[:, 2]
        share = np.r_[0.4, 0.25, 0.15, np.full(20, 0.01)]
        store = np.array([f"s{j:02d}" for j in range(23)])[r.choice(23, n, p=share)]
        mask = np.zeros(n, dtype=bool)
        mask[r.choice(n, outliers, replace=False)] = True
        x0 = r.uniform(0.5, 1.5, outliers) * r.choice([-1.0, 1.0], outliers)
        z[mask] = np.column_stack([x0, -x0, -0.95 * x0])  # in range, against the correlation
        label = (z[:, 0] + r.normal(size=n) > 0).astype(int)
        frame = pd.DataFrame({"x0": z[:, 0], "x1": z[:, 1], "x2": z[:, 2], "store": store})
        return frame.assign(label=label, record_id=np.arange(n)), mask

    reference, _ = rows(3000, 0)
    contract = DataContract.from_reference(reference, CONFIG)
    new, old = (
        OutlierCheck(dependence=False, rare_flag_share=share).fit(Table(reference, contract))
        for share in (0.1, 0.0)
    )
    rare = new.run(Table(rows(100, 1)[0], contract)).info["rare_categories"]
    assert len(rare) == 20 and all(name.startswith("store=") for name in rare)
    for seed in range(6):
        batch, mask = rows(1000, 100 + seed, outliers=10)
        result = new.run(Table(batch, contract))
        assert result.failed, result.message
        assert roc_auc_score(mask, result.row_scores) > 0.95
        before = old.run(Table(batch, contract)).p_value
        assert result.p_value is not None and before is not None
        assert result.p_value <= before / 5
        assert not new.run(Table(rows(1000, 500 + seed)[0], contract)).failed
    # an outlier's reason names a broken column: a rare store may stand beside it (about
    # 3 nats out as a share of its column's zero state, where as a Gaussian dimension it
    # was 10 standard deviations out)
    caught = [result.row_reasons[int(i)][0] for i in np.flatnonzero(result.row_flags & mask)]
    assert caught and all(
        any(f"x{j}" in reason.split("most unusual: ")[1] for j in range(3)) for reason in caught
    ), caught


def test_rare_category_state_survives_a_profile_round_trip(tmp_path) -> None:
    reference, pool = stores_table()
    batch, _ = inject_outliers(pool.iloc[:300].reset_index(drop=True), reference, 0.02, 1)
    outliers, before, after = _outliers_round_trip(reference, batch, tmp_path)
    assert all(model.categories["rare"].size >= 20 for model in outliers.folds_)
    assert after.info["rare_categories"] == before.info["rare_categories"]
    np.testing.assert_allclose(after.row_scores, before.row_scores)


@settings(max_examples=60, deadline=None)
@given(
    blocks=st.lists(
        st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=6),
        min_size=1,
        max_size=3,
    ),
    none=st.lists(st.integers(min_value=0, max_value=100), min_size=3, max_size=3),
    share=st.sampled_from([0.0, 0.05, 0.1, 0.3]),
)
def test_rare_category_surprises_are_a_distribution_over_each_zero_state(
    blocks: list[list[int]], none: list[int], share: float
) -> None:
    """Whatever the category counts: only categorical columns leave the mixture, never
    all of them with the numeric one; the modelled categories add nothing; and each
    zero state's outcomes (its categories and "none") have probabilities exp(-surprise)
    summing to one."""
    from sanitizer.checks._features import FeatureEncoder
    from sanitizer.checks.outliers import _category_surprise, _rare_categories

    rows: list[np.ndarray] = []
    for b, counts in enumerate(blocks):
        codes = np.repeat(np.arange(len(counts) + 1), [*counts, none[b]])
        rows.append(np.random.default_rng(b).permutation(codes))
    n = min(len(r) for r in rows)
    if n == 0:
        return
    x = [np.random.default_rng(9).normal(size=(n, 1))]
    for counts, codes in zip(blocks, rows, strict=True):
        one_hot = np.zeros((n, len(counts)))
        seen = codes[:n] < len(counts)
        one_hot[np.flatnonzero(seen), codes[:n][seen]] = 1.0
        x.append(one_hot)
    encoder = FeatureEncoder(
        numeric=("x",),
        categorical=tuple(f"c{b}" for b in range(len(blocks))),
        center=np.zeros(1),
        scale=np.ones(1),
        categories=tuple(tuple(f"v{j}" for j in range(len(c))) for c in blocks),
    )
    xx = np.hstack(x)
    cats = _rare_categories(xx, encoder, share)
    assert np.all(cats["columns"] >= 1) and set(cats["rare"]) <= set(cats["columns"])
    assert len(cats["columns"]) < xx.shape[1]
    if share == 0.0:
        assert cats["columns"].size == 0
    for i, (start, size) in enumerate(zip(cats["starts"], cats["sizes"], strict=True)):
        surprise = cats["surprise"][i, : size + 1]
        assert np.all(np.isfinite(surprise)) and np.all(surprise >= 0.0)
        dropped = np.isin(np.arange(start, start + size), cats["columns"])
        assert np.all(surprise[:size][~dropped] == 0.0)
        outcomes = np.r_[surprise[:size][dropped], surprise[size]]
        assert np.exp(-outcomes).sum() == pytest.approx(1.0)
        counts = xx[:, start : start + size].sum(axis=0)
        assert np.all(counts[~dropped] >= share * n)  # the modelled categories are common
    scores = _category_surprise(xx, cats)
    assert np.shape(scores) in ((), (n,)) and np.all(np.isfinite(scores))


def coded_table(rows: int = 9_000, seed: int = 21) -> pd.DataFrame:
    """Survey-like data: six correlated answers coded 1–5 and a count of 0–9, the
    label from the latent answers; each value occurs hundreds of times."""
    rng = np.random.default_rng(seed)
    cov = 0.5 * np.eye(6) + 0.5
    z = rng.multivariate_normal(np.zeros(6), cov, size=rows)
    data = pd.DataFrame(np.clip(np.round(1.2 * z) + 3, 1, 5), columns=[f"q{j}" for j in range(6)])
    data["visits"] = np.minimum(rng.poisson(2.0, rows), 9).astype(float)
    data["label"] = (z[:, 0] + z[:, 1] + rng.normal(0, 1, rows) > 0).astype(int)
    data.insert(0, "record_id", np.arange(rows))
    return data


def test_discrete_columns_and_the_surprise_of_an_unseen_value() -> None:
    """A column whose values mostly recur is discrete; one whose values mostly occur
    once is not. A value it does not hold adds -log of the Good–Turing share of
    values seen once (add-one); a held value (on an integer grid: any step of it
    between the extremes) and the encoded median (a missing value) add nothing."""
    from sanitizer.checks.outliers import _lattice, _lattice_surprise

    rng = np.random.default_rng(0)
    n = 2000
    codes = rng.integers(1, 6, n).astype(float)
    counts = rng.poisson(3.0, n).astype(float)
    counts[0] = 40.0  # one value seen once
    x = np.column_stack([codes, counts, rng.normal(size=n), codes])
    lattice = _lattice(x, np.array([0, 1, 2]))
    assert lattice["columns"].tolist() == [0, 1]  # column 3 was not offered
    ones = np.count_nonzero(np.unique(counts, return_counts=True)[1] == 1)
    np.testing.assert_allclose(lattice["surprise"], -np.log(np.array([1.0, ones + 1.0]) / (n + 1)))
    rows = np.array(
        [
            [3.0, 2.0, 0.1, 0.0],  # seen values
            [0.0, 0.0, 5.0, 9.9],  # 0 (a missing value's encoding) counts as seen
            [3.004, 2.0, 0.0, 0.0],  # a jittered code
            [3.004, 2.5, 0.0, 0.0],  # and a count between counts
        ]
    )
    per_column = _lattice_surprise(rows, lattice, total=False)
    assert per_column.tolist()[:2] == [[0.0, 0.0], [0.0, 0.0]]
    np.testing.assert_allclose(per_column[2:], [lattice["surprise"] * [1, 0], lattice["surprise"]])
    np.testing.assert_allclose(_lattice_surprise(rows, lattice), per_column.sum(axis=1))
    # a grid with a value missing inside (rooms 1-5 and 7) holds 6, not 6.5 or 8;
    # values with gaps of no common step (logs of coinsurance rates) hold only themselves
    rooms = np.repeat([1.0, 2, 3, 4, 5, 7], [300, 600, 600, 300, 150, 50])
    logs = np.log(np.repeat([1.0, 10, 25, 50, 95], 400))
    grid = _lattice(np.column_stack([rooms, logs]), np.array([0, 1]))
    assert grid["step"].tolist() == [1.0, 0.0]
    probe = np.column_stack([[6.0, 6.5, 8.0, 1.0], [np.log(25.0), np.log(30.0), 0.5, 0.0]])
    held = _lattice_surprise(probe, grid, total=False) == 0
    assert held.tolist() == [[True, True], [False, False], [False, False], [True, True]]
    assert _lattice(x, np.array([0, 1, 2]), mass=0.0)["columns"].size == 0  # option off
    assert _lattice(x[:50], np.array([0]))["columns"].size == 0  # 50 rows cannot say 1%
    with pytest.raises(ValueError, match="lattice_mass"):
        OutlierCheck(lattice_mass=1.0)
    check = fitted()[0]  # continuous columns: no discrete ones, the scores as before
    assert all(model.lattice["columns"].size == 0 for model in check.folds_)


@given(
    levels=st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=5),
    rows=st.integers(min_value=200, max_value=2_000),
    seed=st.integers(min_value=0, max_value=10_000),
    offset=st.floats(min_value=1e-4, max_value=0.49),
)
@settings(max_examples=40, deadline=None)
def test_a_reference_row_is_never_off_the_discrete_values(
    levels: list[int], rows: int, seed: int, offset: float
) -> None:
    """Any row made of values the fitting rows hold scores 0; moving one discrete
    column's value off its grid (by more than the rounding tolerance) adds exactly
    that column's surprise."""
    from sanitizer.checks.outliers import _lattice, _lattice_surprise

    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.integers(0, k, rows) for k in levels]).astype(float)
    lattice = _lattice(x, np.arange(x.shape[1]))
    assert lattice["columns"].size == x.shape[1]  # every value recurs
    mixed = np.column_stack([rng.choice(x[:, j], 50) for j in range(x.shape[1])])
    assert not np.any(_lattice_surprise(mixed, lattice))
    j = int(rng.integers(0, x.shape[1]))
    mixed[:, j] += offset
    np.testing.assert_allclose(
        _lattice_surprise(mixed, lattice), lattice["surprise"][j] * np.ones(50)
    )


def test_jittered_copies_of_coded_rows_are_novel() -> None:
    """Jittered replicas (Truth Serum with noise of 0.01 standard deviations) of
    reference rows in a table of codes: every value in range, each within a hair of a
    real row, so a density on the codes does not see them (the check passes with the
    discrete columns off). Off the columns' values they are beyond every reference
    row: 10 such rows of 1,000 fail every batch, and they are the rows flagged; clean
    batches pass and a copy without jitter is not novel."""
    data = coded_table()
    reference, pool = split(data, [4_000, 5_000], seed=2)
    contract = DataContract.from_reference(reference, CONFIG)
    check = OutlierCheck(alpha=0.002).fit(Table(reference, contract))
    off = OutlierCheck(alpha=0.002, lattice_mass=0.0).fit(Table(reference, contract))
    names = [f"q{j}" for j in range(6)] + ["visits"]
    for seed in range(3):
        batch = pool.iloc[seed * 1000 : (seed + 1) * 1000].reset_index(drop=True)
        clean = check.run(Table(batch, contract))
        assert not clean.failed, clean.message
        assert clean.info["discrete_columns"] == names
        poisoned, mask = attacks.truth_serum_replicas(
            batch, "label", seed, reference=reference, rate=0.01, jitter=0.01
        )
        result = check.run(Table(poisoned, contract))
        assert result.failed and result.p_value < 1e-6, result.message
        assert set(np.flatnonzero(mask)) <= set(np.flatnonzero(result.row_flags))
        assert roc_auc_score(mask, result.row_scores) > 0.99
        reason = result.row_reasons[int(np.flatnonzero(mask)[0])][0]
        assert "beyond every reference row" in reason and "most unusual: q" in reason
        assert not off.run(Table(poisoned, contract)).failed
        exact, _ = attacks.truth_serum_replicas(batch, "label", seed, reference=reference)
        assert not check.run(Table(exact, contract)).failed


def test_discrete_columns_survive_a_saved_profile(tmp_path: Any) -> None:
    """The fold models' discrete columns and values are saved as plain arrays: the
    loaded profile scores jittered coded rows exactly as the fitted one."""
    from sanitizer.profile import load_profile, save_profile

    data = coded_table(6_000, seed=22)
    reference, pool = split(data, [3_000, 3_000], seed=3)
    sanitizer = Sanitizer(
        label_column="label", id_columns=("record_id",), checks={"outliers": CheckConfig()}
    ).fit(reference)
    loaded = load_profile(save_profile(sanitizer, tmp_path / "p.zip"))
    batch = pool.iloc[:500].reset_index(drop=True)
    poisoned, _ = attacks.truth_serum_replicas(
        batch, "label", 0, reference=reference, rate=0.02, jitter=0.01
    )
    a, b = sanitizer.scan(poisoned), loaded.scan(poisoned)
    assert a.verdict == b.verdict == "quarantine"
    np.testing.assert_array_equal(a.row_scores.to_numpy(), b.row_scores.to_numpy())
    model = next(c for c, _ in loaded.checks_ if c.name == "outliers").folds_[0]
    assert model.lattice["columns"].size == 7 and model.lattice["values"].dtype == float
