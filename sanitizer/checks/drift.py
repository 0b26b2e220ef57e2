"""Drift checks: has the batch's distribution moved away from the reference?

``drift`` (default severity ``warn``) tests the marginals and the joint:

* each numeric feature with a two-sample Kolmogorov–Smirnov test;
* each categorical feature with a chi-square test of homogeneity (reference
  categories with too small an expected batch count are pooled, unseen values and
  missing values form their own cell);
* the label prior with a chi-square test (Fisher's exact test for two classes and
  small batches);
* the joint distribution with a domain classifier: a small gradient-boosting model
  trained to tell a reference subsample from the batch on half of each; on the
  other half the AUC of its scores is tested with the exact Mann–Whitney null
  (under no drift the held-out scores of the two groups are exchangeable).

All p-values are corrected together (Holm by default), and the message names the
features that drifted. Drift alone is usually benign (a new season, a new
market), so it warns rather than quarantines.

Label-conditional change is different: when P(label | features) moves, the batch
teaches the model something the reference does not (label flips, relabelled
regions, backdoors). The issue asks for that case to quarantine, so it is a
*separate registered check*, ``conditional_drift`` (default severity
``quarantine``), rather than an option of ``drift``: a check has one severity in
the engine's config, and keeping them apart lets an operator switch either one
off, or demote it to ``warn``, without touching the other; the two also cost very
different amounts (a model fit once vs. a classifier per batch).
``conditional_drift`` cross-fits classifiers on the reference (five folds, each
model fitted on the other four) and records, for every reference row scored by
the model that never saw it, its *excess loss*: its log-loss minus the entropy of
the predicted distribution, whose expectation is zero wherever the model is
calibrated, so a pure covariate shift does not move it. A prior shift changes
P(label | features) by per-class factors only, and is ``drift``'s business: before
the excess is computed, the model's log-probabilities get per-class offsets fitted
to the rows' labels by maximum likelihood (the reference rows' own at fit, the
batch's at scan), which absorb such factors exactly and stay near zero where
P(label | features) did not move and the model is calibrated. (Re-weighting the
probabilities to the batch's label prior instead is right under a prior shift and
wrong under a covariate shift, which moves the label prior too while P(label |
features) stays: on weakly predictable labels batches drawn with weights
exp(0.5 z) on the strongest feature gained 0.04 nats that way, and 4 to 5 of 5
such 3,000- and 10,000-row batches failed.) The
batch test is a one-sided Welch t-test of mean excess loss, batch vs out-of-fold
reference, with a ``min_effect`` floor in nats so that huge batches are not failed
by a negligible miscalibration; the floor is above the reference mean's upper bound
(two standard errors), not the mean itself, or a reference sample whose mean came
out low by chance would fail large batches of a mild benign shift.

Where labels are barely predictable (survey tables), flipped labels look like the
natural noise row by row, and a mean loss moves little. What random flips do to
the *whole* batch is flatten its calibration curve: with a share ρ of labels
replaced, P(label | features) is pulled toward uniform, so the batch's labels
follow the model's log-probabilities less steeply. The *slope test* fits
P(y = k | x) ∝ exp(a_k + b · log p̂_k(x)) (one slope ``b``, free class intercepts)
on the out-of-fold reference rows and on the batch, and tests b_batch < b_reference (one-sided
Wald test, both estimates' variances). A prior shift multiplies P(y | x) by
per-class constants, which the free intercepts absorb, and a covariate shift
leaves P(y | x) alone, so neither moves ``b`` where the model is calibrated. The
batch slope must also fall below ``1 - min_compression`` times the reference
slope's lower bound (two standard errors), so that a huge batch is not failed for
the reference estimate's own noise (10% flips of two classes give about 0.6–0.8 of
the reference slope; benign drift on the held-out survey tables 0.9–1.06). The two
tests share ``alpha`` (Bonferroni).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from sanitizer.checks._common import (
    available_cores,
    balanced_folds,
    fill_by_fold,
    map_threads,
    one_thread,
    scoring_threads,
    shared_encoder,
    split_indices,
    subsample,
)
from sanitizer.checks.base import Check, CheckResult, Status

if TYPE_CHECKING:
    from sanitizer.table import Table

log = logging.getLogger(__name__)

MIN_EXPECTED = 5.0
PROB_FLOOR = 1e-4
MIN_CALIBRATION_ROWS = 25  # fewer reference rows: conditional_drift passes every batch
PREDICT_BLOCK = 16_384  # rows per model call when scoring
PARALLEL_ROWS = 100_000  # score larger row sets on every core this process may use
FLOOR_MARGIN = 2.0  # standard errors of a held-out estimate that an effect floor allows
KS_EXACT_ROWS = 10_000  # scipy's ks_2samp is exact up to this many rows a side (MAX_AUTO_N)


def ks_two_sided(
    values: np.ndarray, ref_sorted: np.ndarray, ref_ranks: np.ndarray | None = None
) -> tuple[float, float]:
    """``scipy.stats.ks_2samp(values, ref_sorted)``'s statistic and p-value, the same
    to the bit, with the reference sorted once at fit rather than on every scan.

    Samples above scipy's exact-method size take its asymptotic path, computed
    here as it does (the statistic at every pooled value, Smirnov's distribution
    at the rounded effective size); smaller ones go to scipy itself. On 100,000
    rows a side this takes 12 ms against scipy's 26 ms, 20 columns of a
    1M-row scan's sample. ``ref_ranks``: ``np.searchsorted(ref_sorted, ref_sorted,
    side="right")``, if the caller keeps it.
    """
    from scipy.stats import distributions, ks_2samp

    n1, n2 = len(values), len(ref_sorted)
    if max(n1, n2) <= KS_EXACT_ROWS:
        res = ks_2samp(values, ref_sorted)
        return float(res.statistic), float(res.pvalue)
    batch_sorted = np.sort(values)
    # the ECDF difference at every pooled value, as scipy evaluates it
    diff_at_batch = (
        np.searchsorted(batch_sorted, batch_sorted, side="right") / n1
        - np.searchsorted(ref_sorted, batch_sorted, side="right") / n2
    )
    if ref_ranks is None:
        ref_ranks = np.searchsorted(ref_sorted, ref_sorted, side="right")
    diff_at_ref = np.searchsorted(batch_sorted, ref_sorted, side="right") / n1 - ref_ranks / n2
    max_s = max(float(diff_at_batch.max()), float(diff_at_ref.max()))
    min_s = float(np.clip(-min(float(diff_at_batch.min()), float(diff_at_ref.min())), 0, 1))
    d = min_s if min_s > max_s else max_s
    m, n = sorted([float(n1), float(n2)], reverse=True)
    p = distributions.kstwo.sf(d, np.round(m * n / (m + n)))
    return d, float(np.clip(p, 0, 1))


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (same order as the input)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def categorical_pvalue(ref_counts: np.ndarray, batch_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square homogeneity test of two count vectors, rare cells pooled; (stat, p)."""
    from scipy.stats import chi2_contingency

    n_b = batch_counts.sum()
    n_r = ref_counts.sum()
    if n_b == 0 or n_r == 0:
        return 0.0, 1.0
    expected = n_b * ref_counts / n_r
    rare = expected < MIN_EXPECTED
    ref = np.append(ref_counts[~rare], ref_counts[rare].sum())
    bat = np.append(batch_counts[~rare], batch_counts[rare].sum())
    keep = (ref + bat) > 0
    table = np.vstack([ref[keep], bat[keep]])
    if table.shape[1] < 2:
        return 0.0, 1.0
    if table.shape[1] == 2 and n_b < 1000:
        from scipy.stats import fisher_exact

        res = fisher_exact(table)
        return float(res.statistic), float(res.pvalue)
    stat, p, _, _ = chi2_contingency(table, correction=False)
    return float(stat), float(p)


class DriftCheck(Check):
    """Per-feature KS / chi-square, label prior, and a domain-classifier two-sample test.

    Options: ``alpha``; ``correction`` ("holm" or "bonferroni");
    ``domain_classifier`` (run the multivariate test); ``max_rows`` (subsample of
    each side for the classifier); ``max_reference_rows`` (reference values kept
    for the KS tests); ``max_batch_rows`` (a random subsample of larger batches
    goes into the per-feature tests: at 200k rows they already resolve shifts far
    below anything worth a warning, and sorting every column of a million-row
    batch would cost more than the rest of the check); ``random_state``.
    """

    name = "drift"
    screenable = True
    default_severity = "warn"
    description = "feature, label-prior and joint distribution shift against the reference"

    def __init__(
        self,
        alpha: float = 0.01,
        correction: str = "holm",
        domain_classifier: bool = True,
        max_rows: int = 3_000,
        max_reference_rows: int = 100_000,
        max_batch_rows: int = 200_000,
        random_state: int = 0,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if correction not in ("holm", "bonferroni"):
            raise ValueError(f"correction must be 'holm' or 'bonferroni', got {correction!r}")
        if max_rows < 20:
            raise ValueError("max_rows must be >= 20")
        self.alpha = alpha
        self.correction = correction
        self.domain_classifier = domain_classifier
        self.max_rows = max_rows
        self.max_reference_rows = max_reference_rows
        self.max_batch_rows = max_batch_rows
        self.random_state = random_state

    def fit(self, reference: Table) -> Self:
        self.__dict__.pop("_ks_ranks", None)  # derived from the previous fit
        contract = reference.contract
        n = len(reference)
        keep = subsample(np.arange(n), self.max_reference_rows, self.random_state)
        self.numeric_: tuple[str, ...] = contract.numeric
        x = reference.numeric[keep]
        self.ref_values_ = [np.sort(x[~np.isnan(x[:, j]), j]) for j in range(x.shape[1])]
        self.categorical_: tuple[str, ...] = contract.categorical
        self.category_values_: list[tuple[str, ...]] = []
        self.category_counts_: list[np.ndarray] = []
        for col in contract.categorical:
            series = reference.prepared[col].iloc[keep]
            counts = series.value_counts(dropna=True)
            self.category_values_.append(tuple(str(v) for v in counts.index))
            missing = float(series.isna().sum())
            self.category_counts_.append(np.append(counts.to_numpy(dtype=float), missing))
        self.classes_: tuple[str, ...] = contract.label_classes
        y = reference.label_codes(self.classes_)
        self.label_counts_ = np.bincount(y, minlength=len(self.classes_)).astype(float)
        self.encoder_ = shared_encoder(reference)
        rows = subsample(np.arange(n), self.max_rows, self.random_state + 1)
        self.reference_encoded_ = reference.encoded(self.encoder_)[rows]
        return self

    def run(self, batch: Table) -> CheckResult:
        self._require_fitted("ref_values_", "category_counts_", "label_counts_", "encoder_")
        n = len(batch)
        names: list[str] = []
        stats: list[float] = []
        pvals: list[float] = []
        tested = subsample(np.arange(n), self.max_batch_rows, self.random_state + 2)
        for j, col in enumerate(self.numeric_):
            column = batch.numeric_columns[j]
            if len(tested) < n:
                column = column[tested]
            column = column[~np.isnan(column)]
            ref = self.ref_values_[j]
            if len(column) == 0 or len(ref) == 0:
                continue
            statistic, pvalue = ks_two_sided(column, ref, self._ref_ranks(j))
            names.append(col)
            stats.append(statistic)
            pvals.append(pvalue)
        for col, values, ref_counts in zip(
            self.categorical_, self.category_values_, self.category_counts_, strict=True
        ):
            codes = batch.category_codes(col, values)
            missing = batch.missing(col)
            if len(tested) < n:
                codes, missing = codes[tested], missing[tested]
            counts = np.bincount(codes[codes >= 0], minlength=len(values)).astype(float)
            unseen = float(np.count_nonzero((codes < 0) & ~missing))
            batch_counts = np.append(counts, [float(missing.sum()), unseen])
            stat, p = categorical_pvalue(np.append(ref_counts, 0.0), batch_counts)
            names.append(col)
            stats.append(stat)
            pvals.append(p)
        y = batch.label_codes(self.classes_)
        batch_labels = np.bincount(y[y >= 0], minlength=len(self.classes_)).astype(float)
        stat, p = categorical_pvalue(self.label_counts_, batch_labels)
        names.append("label prior")
        stats.append(stat)
        pvals.append(p)
        auc: float | None = None
        if self.domain_classifier and self.encoder_.n_features and n >= 20:
            auc, p = self._domain_test(batch.encoded(self.encoder_))
            names.append("domain classifier")
            stats.append(auc)
            pvals.append(p)
        p_arr = np.asarray(pvals)
        if self.correction == "holm":
            adjusted = holm(p_arr)
        else:
            adjusted = np.minimum(1.0, p_arr * max(len(p_arr), 1))
        drifted = [i for i in np.argsort(adjusted) if adjusted[i] < self.alpha]
        p_batch = float(adjusted.min()) if len(adjusted) else 1.0
        status: Status = "fail" if drifted else "pass"
        if drifted:
            parts = [f"{names[i]} (p={adjusted[i]:.2g})" for i in drifted[:8]]
            message = f"drift in {len(drifted)} of {len(names)} tests: " + ", ".join(parts)
        else:
            message = f"no drift detected in {len(names)} tests (smallest adjusted p={p_batch:.2g})"
        if auc is not None:
            message += f"; domain classifier AUC {auc:.3f}"
        return self.result(
            status,
            message,
            statistic=float(len(drifted)),
            p_value=min(1.0, max(0.0, p_batch)),
            threshold=self.alpha,
            severity=self.default_severity,
            info={
                "drifted": [names[i] for i in drifted],
                "tests": {
                    names[i]: {"statistic": stats[i], "p_value": pvals[i], "adjusted": adjusted[i]}
                    for i in range(len(names))
                },
                "domain_auc": auc,
                "feature_test_rows": len(tested),
                "correction": self.correction,
            },
        )

    def _ref_ranks(self, j: int) -> np.ndarray:
        """Each sorted reference value's ECDF count (cached, not saved with the state)."""
        ranks = self.__dict__.setdefault("_ks_ranks", {})
        if j not in ranks:
            ref = self.ref_values_[j]
            ranks[j] = np.searchsorted(ref, ref, side="right")
        return np.asarray(ranks[j])

    def _domain_test(self, batch_x: np.ndarray) -> tuple[float, float]:
        """Train reference-vs-batch on half of each side, Mann–Whitney AUC on the rest."""
        from scipy.stats import mannwhitneyu
        from sklearn.ensemble import HistGradientBoostingClassifier

        # one independent stream per random choice (seeds rs, rs + 1 reused across
        # choices gave correlated draws)
        seeds = [
            int(s.generate_state(1)[0])
            for s in np.random.SeedSequence([self.random_state, 7]).spawn(5)
        ]
        rng = np.random.default_rng(seeds[0])
        ref = self.reference_encoded_
        bat = batch_x[subsample(np.arange(len(batch_x)), self.max_rows, seeds[1])]
        # The AUC's variance is set by the smaller side: more than 4 reference rows per
        # batch row buys little power and costs time on small batches.
        ref = ref[subsample(np.arange(len(ref)), max(4 * len(bat), 400), seeds[2])]
        ref_fit, ref_test = split_indices(len(ref), 0.5, seeds[3])
        bat_fit, bat_test = split_indices(len(bat), 0.5, seeds[4])
        if min(len(ref_test), len(bat_test), len(ref_fit), len(bat_fit)) < 5:
            return 0.5, 1.0
        xs = np.vstack([ref[ref_fit], bat[bat_fit]])
        ys = np.r_[np.zeros(len(ref_fit)), np.ones(len(bat_fit))]
        model = HistGradientBoostingClassifier(
            max_iter=30,
            max_depth=3,
            max_bins=64,
            learning_rate=0.2,
            early_stopping=False,
            random_state=int(rng.integers(2**31 - 1)),
        )
        with one_thread():
            model.fit(xs, ys)
            s_ref = model.predict_proba(ref[ref_test])[:, 1]
            s_bat = model.predict_proba(bat[bat_test])[:, 1]
        res = mannwhitneyu(s_bat, s_ref, alternative="greater")
        auc = float(res.statistic) / (len(s_bat) * len(s_ref))
        return auc, float(res.pvalue)


class ConditionalDriftCheck(Check):
    """Has P(label | features) changed? Excess log-loss under a reference model.

    Options: ``alpha``; ``min_effect`` (mean excess loss, in nats, the batch must
    exceed the reference by to fail); ``slope`` (also test whether the batch's
    calibration slope flattened, see the module docstring; False: the excess-loss
    test alone, with all of alpha); ``min_compression`` (the slope test needs the
    batch slope below ``1 - min_compression`` times the reference's, less two of
    its standard errors); ``n_folds`` (cross-fitting: each reference row is
    scored by the model fitted on the other folds, and calibrates the tests; a
    batch row is scored by one fold model); ``max_fit_rows`` (a random subsample
    of a larger reference is cross-fitted); ``max_batch_rows`` (a random
    subsample of larger batches is scored: the excess-loss test is on a mean, and
    200k rows resolve far below ``min_effect``); ``max_slope_rows`` (the slope and
    the class offsets are fitted on a random subsample of that many of them, and
    the reference rows' offsets on as many of those: 20k rows resolve far below
    ``min_compression``);
    ``random_state``.
    """

    name = "conditional_drift"
    screenable = True
    default_severity = "quarantine"
    description = "change of P(label | features): excess log-loss under a reference model"

    def __init__(
        self,
        alpha: float = 0.01,
        min_effect: float = 0.02,
        slope: bool = True,
        min_compression: float = 0.1,
        n_folds: int = 5,
        max_fit_rows: int = 50_000,
        max_batch_rows: int = 200_000,
        max_slope_rows: int = 20_000,
        random_state: int = 0,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if min_effect < 0:
            raise ValueError("min_effect must be >= 0")
        if not 0.0 <= min_compression < 1.0:
            raise ValueError(f"min_compression must be in [0, 1), got {min_compression!r}")
        if n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {n_folds!r}")
        self.alpha = alpha
        self.min_effect = min_effect
        self.slope = slope
        self.min_compression = min_compression
        self.n_folds = n_folds
        self.max_fit_rows = max_fit_rows
        self.max_batch_rows = max_batch_rows
        self.max_slope_rows = max_slope_rows
        self.random_state = random_state

    def fit(self, reference: Table) -> Self:
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.encoder_ = shared_encoder(reference)
        self.classes_: tuple[str, ...] = reference.contract.label_classes
        x = reference.encoded(self.encoder_)
        y = reference.label_codes(self.classes_)
        k = len(self.classes_)
        self.prior_ = (np.bincount(y, minlength=k) + 0.5) / (len(y) + 0.5 * k)
        # cross-fitting: every (sampled) reference row is scored by the fold model that
        # never saw it, so all of them calibrate the tests and each model learns from
        # (n_folds - 1) / n_folds of them
        rows = subsample(np.arange(len(x)), self.max_fit_rows, self.random_state)
        fold = balanced_folds(len(rows), self.n_folds, self.random_state)
        self.models_: list[Any] = []
        self.calibration_excess_ = np.zeros(0)
        self.slope_: tuple[float, float] | None = None
        trainable = all(len(np.unique(y[rows[fold != j]])) == k for j in range(self.n_folds))
        if k < 2 or x.shape[1] == 0 or len(rows) < MIN_CALIBRATION_ROWS or not trainable:
            log.info("conditional_drift: one class, no features or too few rows; will pass")
            return self

        def fit_fold(j: int) -> Any:
            model = HistGradientBoostingClassifier(
                max_iter=100,
                learning_rate=0.1,
                max_leaf_nodes=15,
                random_state=self.random_state,
            )
            return model.fit(x[rows[fold != j]], y[rows[fold != j]])

        # the fold models side by side, each on one thread
        self.models_ = map_threads(fit_fold, range(self.n_folds), available_cores())
        log_proba = np.log(self._proba(x[rows], fold))
        y_cal = y[rows]
        self.calibration_excess_, _ = self._excess_of(log_proba, y_cal)
        if self.slope:
            fitted = calibration_slope(log_proba, y_cal)
            # a model whose log-probabilities do not predict the labels has no slope to
            # flatten (and a negative one would turn the test around)
            if fitted is not None and fitted[0] > 2.0 * math.sqrt(fitted[1]):
                self.slope_ = fitted
        return self

    def _proba(self, x: np.ndarray, fold: np.ndarray) -> np.ndarray:
        """Each row's class probabilities from fold model ``fold[row]``, floored at
        ``PROB_FLOOR``."""
        proba = np.empty((len(x), len(self.classes_)))
        fill_by_fold(
            proba,
            self.models_,
            fold,
            lambda model, rows: np.asarray(model.predict_proba(x[rows])),
            PREDICT_BLOCK,
            scoring_threads(None, len(x), PARALLEL_ROWS),
        )
        return np.clip(proba, PROB_FLOOR, 1.0)

    def _calibration_rows(self, n: int) -> np.ndarray:
        """The seeded subsample of at most ``max_slope_rows`` of ``n`` rows that class
        offsets and the slope are fitted on."""
        return subsample(np.arange(n), self.max_slope_rows, self.random_state + 1)

    def _excess_of(
        self, log_proba: np.ndarray, y: np.ndarray, part: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each row's log-loss minus the entropy of its predicted distribution, after
        per-class offsets (also returned) fitted to the labels of the rows ``part``
        (default: ``_calibration_rows``), see ``class_offsets``."""
        part = self._calibration_rows(len(y)) if part is None else part
        offsets = class_offsets(log_proba[part], y[part])
        return excess_loss(log_proba + offsets, y), offsets

    def run(self, batch: Table) -> CheckResult:
        from scipy.stats import ttest_ind

        self._require_fitted("models_", "calibration_excess_", "slope_")
        if not self.models_:
            return self.result("pass", "no model (one class or no features); nothing to test")
        y = batch.label_codes(self.classes_)
        known = y >= 0
        k = len(self.classes_)
        prior = (np.bincount(y[known], minlength=k) + 0.5) / (known.sum() + 0.5 * k)
        rows = subsample(np.flatnonzero(known), self.max_batch_rows, self.random_state)
        x = batch.encoded(self.encoder_)[rows]
        # each batch row by one fold model, in the reference's proportions: then a
        # clean batch row is exactly as unseen as a reference row was out of fold
        log_proba = np.log(
            self._proba(x, balanced_folds(len(rows), len(self.models_), self.random_state + 2))
        )
        part = self._calibration_rows(len(rows))
        excess, offsets = self._excess_of(log_proba, y[rows], part)
        ref = self.calibration_excess_
        diff = float(excess.mean() - ref.mean()) if len(excess) else 0.0
        if len(excess) >= 2:
            res = ttest_ind(excess, ref, equal_var=False, alternative="greater")
            p_excess = float(res.pvalue) if np.isfinite(res.pvalue) else 1.0
        else:
            p_excess = 1.0
        p_excess = min(1.0, max(0.0, p_excess))
        tests = 1 if self.slope_ is None else 2  # Bonferroni over the two tests
        # the floor allows two standard errors of the reference mean: a reference sample
        # whose mean came out low by chance must not let large clean batches, or a mild
        # benign shift, clear the floor (measured: a 1.4-SE low reference mean put clean
        # batches 0.008 nats above it, 40% of the floor)
        margin = (
            FLOOR_MARGIN * float(np.std(ref, ddof=1)) / math.sqrt(len(ref)) if len(ref) > 1 else 0.0
        )
        failed = p_excess * tests < self.alpha and diff - margin >= self.min_effect
        message = (
            f"mean excess log-loss {diff:+.3f} nats vs the reference's out-of-fold rows "
            f"(p={p_excess:.2g}, floor {self.min_effect} nats)"
        )
        info: dict[str, Any] = {
            "batch_prior": prior.tolist(),
            "reference_prior": self.prior_.tolist(),
            "class_offsets": offsets.tolist(),
            "p_excess": p_excess,
            "excess_margin": margin,
        }
        p = p_excess
        if self.slope_ is not None:
            # its precision at 20k rows is far below the compression floor; more rows
            # only cost time (0.4 s for 200k rows of two classes)
            p_slope, ratio = slope_pvalue(self.slope_, log_proba[part], y[rows][part])
            # the floor is against the reference slope's lower bound (two standard
            # errors): a huge batch is judged against that estimate's noise too, and a
            # reference that happened to fit a steep slope must not fail clean batches
            b_ref, v_ref = self.slope_
            lower = max(0.0, 1.0 - FLOOR_MARGIN * math.sqrt(v_ref) / b_ref)
            flattened = (
                p_slope * tests < self.alpha and ratio <= (1.0 - self.min_compression) * lower
            )
            lead = f"calibration slope {ratio:.2f} of the reference's (p={p_slope:.2g})"
            # the evidence that fails the batch first (the stronger one if both do)
            first = flattened and (not failed or p_slope < p_excess)
            message = f"{lead}; {message}" if first else f"{message}; {lead}"
            failed = failed or flattened
            p = min(p_excess, p_slope)
            info |= {"p_slope": p_slope, "slope_ratio": ratio, "slope_rows": len(part)}
        status: Status = "fail" if failed else "pass"
        return self.result(
            status,
            message,
            statistic=diff,
            p_value=min(1.0, p * tests),
            threshold=self.alpha,
            severity=self.default_severity,
            info=info,
        )


def _tilt(log_proba: np.ndarray, y: np.ndarray, slope: bool) -> tuple[np.ndarray, np.ndarray]:
    """Maximum likelihood of P(y = k) ∝ exp(a_k + b · log_proba[:, k]), a_0 = 0: the
    parameters (a_1 .. a_{k-1}, then b if ``slope``, else b = 1) and the fitted
    probabilities. The offsets are bounded by ±log(1 / PROB_FLOOR): a class absent
    from ``y`` would otherwise run to minus infinity."""
    from scipy.optimize import minimize

    n, k = log_proba.shape
    rows = np.arange(n)

    def fitted(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eta = np.r_[0.0, theta[: k - 1]] + (theta[-1] if slope else 1.0) * log_proba
        eta -= eta.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(eta).sum(axis=1))
        return eta - log_norm[:, None], np.exp(eta - log_norm[:, None])

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        log_pi, pi = fitted(theta)
        resid = -pi
        resid[rows, y] += 1.0
        grad = resid.sum(axis=0)[1:]
        if slope:
            grad = np.r_[grad, float((resid * log_proba).sum())]
        return -float(log_pi[rows, y].sum()), -grad

    bound = math.log(1.0 / PROB_FLOOR)
    start = np.r_[np.zeros(k - 1), 1.0] if slope else np.zeros(k - 1)
    bounds = [(-bound, bound)] * (k - 1) + ([(None, None)] if slope else [])
    theta = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds).x
    return theta, fitted(theta)[1]


def class_offsets(log_proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-class offsets a (a_0 = 0) maximising the likelihood of ``y`` under
    P(y = k) ∝ exp(a_k + log_proba[:, k]).

    A prior shift multiplies P(y | x) by per-class constants, which these absorb
    exactly (offsets added to ``log_proba`` beforehand come back subtracted); where
    the model is calibrated for the rows, they are zero up to noise, whatever the
    rows' features. Zeros if ``y`` is empty or there is one column.
    """
    k = log_proba.shape[1]
    if len(y) == 0 or k < 2:
        return np.zeros(k)
    return np.r_[0.0, _tilt(log_proba, y, slope=False)[0]]


def excess_loss(log_proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's log-loss minus the entropy of its predicted distribution (the
    log-probabilities need not be normalised): zero in expectation where the labels
    follow the prediction."""
    log_p = log_proba - np.logaddexp.reduce(log_proba, axis=1, keepdims=True)
    entropy = -(np.exp(log_p) * log_p).sum(axis=1)
    return np.asarray(-log_p[np.arange(len(y)), y] - entropy)


def calibration_slope(log_proba: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """Fit P(y = k) ∝ exp(a_k + b · log_proba[:, k]): the slope ``b`` and its variance.

    One slope, free intercepts per class (a_0 = 0), maximum likelihood; the variance
    is the inverse Fisher information's entry for ``b``. None if it cannot be fitted
    (fewer than two classes among ``y``, or a singular information matrix).
    """
    n, k = log_proba.shape
    if n < 2 or k < 2 or np.unique(y).size < 2:
        return None
    theta, pi = _tilt(log_proba, y, slope=True)
    # Fisher information: sum over rows of the covariance, under the fitted pi, of
    # each class's gradient row (its intercept indicators, whose expectations are
    # pi[:, 1:], and its log-probability)
    g_slope = (pi * log_proba).sum(axis=1)
    info = np.empty((k, k))
    info[: k - 1, : k - 1] = np.diag(pi[:, 1:].sum(axis=0)) - pi[:, 1:].T @ pi[:, 1:]
    cross = (pi[:, 1:] * log_proba[:, 1:]).sum(axis=0) - pi[:, 1:].T @ g_slope
    info[: k - 1, -1] = info[-1, : k - 1] = cross
    info[-1, -1] = float((pi * log_proba**2).sum() - g_slope @ g_slope)
    try:
        var = float(np.linalg.inv(info)[-1, -1])
    except np.linalg.LinAlgError:
        return None
    if not (np.isfinite(theta[-1]) and np.isfinite(var) and var > 0):
        return None
    return float(theta[-1]), var


def slope_pvalue(
    reference: tuple[float, float], log_proba: np.ndarray, y: np.ndarray
) -> tuple[float, float]:
    """One-sided Wald p-value of batch slope < reference slope, and their ratio."""
    from scipy.stats import norm

    fitted = calibration_slope(log_proba, y)
    if fitted is None:
        return 1.0, 1.0
    (b_ref, v_ref), (b, v) = reference, fitted
    return float(norm.cdf((b - b_ref) / math.sqrt(v_ref + v))), b / b_ref
