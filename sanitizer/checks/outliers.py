"""Outlier check: rows unlike anything in the reference, even inside every column's range.

A per-column range check cannot see an *in-range* outlier: a row whose every value
is ordinary but whose combination is not (e.g. each column drawn independently
from its reference marginal, which breaks the correlations and the class
clusters). This check models the joint density of the shared ``FeatureEncoder``
features with a Gaussian mixture (full covariances, number of components chosen by
BIC), i.e. a robust-to-multimodality Mahalanobis distance, and scores each row by
its negative log-density. Rare flags (numeric columns with two reference values,
the rarer in fewer than ``RARE_FLAG_SHARE`` of rows) stay out of the mixture and
add their value's surprise by frequency instead (see ``FoldModel.density``); so do
the one-hot columns of categories held by fewer than that share (see
``_rare_categories``). A discrete numeric column (codes, counts: values that recur)
stays in the mixture, but a value it does not hold adds the surprise of an unseen
value (``_lattice``): a jittered copy of a coded row lies a hair from a real one,
invisible to the mixture, yet off every column's values.

Calibration is cross-conformal: the reference is split into ``n_folds`` folds, and
each fold's rows are scored by a model (mixture, frequencies, dependence
classifier) fitted on the other folds only. These out-of-fold ("held-out") scores
of every reference row define the row score (the share of held-out reference rows
that are *less* novel, in [0, 1]) and the flagging thresholds (their ``levels``
quantiles). A batch row is scored by one fold model, chosen by a hash of its
content, so given the models it is exactly as unseen as that fold's rows were.
It is compared with every fold's rows, whose models differ a little: pooled
cross-fitted scores are exchangeable with it only approximately (over 3,200 clean
200-row batches against eight 15,000-row references the check failed 4 at its
level of 0.002, see the README's 15,000-row table). (Until profile format 14 the
models learnt from 40% of the reference and the other 60% calibrated; now each
learns from 80% and all of it calibrates, which matters most for a small
reference: ``digits``' 898 rows, 539 calibrating before.) Because the threshold is
an order statistic of ``m`` exchangeable held-out scores, the exceedance probability
of a clean row is ``Beta(j, m - j + 1)`` distributed (``j`` held-out rows at or
above it), so the number of flagged clean rows in a batch of ``n`` is
beta-binomial: the batch p-value is that exact one-sided tail (the binomial test
widened by the calibration's own uncertainty). Several levels are tested (how they
are combined is below). That guarantee is marginal over the reference; for one
fixed reference the realised false-flag rate of a threshold can sit a few tens of
percent above nominal, which a very large batch would detect, so a level also
needs an effect of ``min_ratio`` times its expected count.

The levels' thresholds are nested order statistics of the same held-out scores,
so their counts are calibrated jointly rather than by Bonferroni: the smallest
level p-value is compared with its exact null distribution (the batch rows fall
into the gaps between the sorted held-out scores uniformly over all compositions,
a Dirichlet-multinomial law), by Monte Carlo where it matters.

Ranks alone cannot say more than "beyond every held-out row": ``k`` such rows in a
batch of ``n`` have probability about ``(n / (n + m))**k``, so with ``m`` = 3,000
two rows of a 200-row batch give p ≈ 0.004 however far out they are. The *tail
test* uses the distance too (peaks over threshold): a generalized Pareto
distribution fitted to the excesses of the top ``tail_fraction`` of held-out scores
extrapolates the exceedance probability ``q`` of the ``k``-th most novel row, ``k``
the number of rows beyond the held-out maximum (at most ``tail_rows``), and
P(Binomial(n, q) >= k) is that order statistic's p-value. The fitted shape is
replaced by an upper confidence bound (two standard errors, never below 0, the
exponential tail). Extrapolation can still be wrong (a
heavy-tailed table whose tail only shows beyond the held-out rows), so the model
may strengthen the rank-only p-value of ``k`` rows beyond the maximum at most
``tail_gain``-fold: however wrong the tail, the test's level is at most
``tail_gain`` times nominal. One row never fails the batch on its own, and the
``min_ratio`` rule applies as for the levels.

A density on the encoded features misses what matters most on tables of coded
integers (survey answers, pixel intensities): a row whose every value is common
but whose *combination* is not, e.g. each value taken from a different reference
row. A Gaussian mixture smooths coded integers into a few broad components, so
such rows are often barely less likely under it than real ones. The
*dependence score* measures exactly this: a gradient-boosted classifier is fitted
to tell the fitting rows from rows whose columns are drawn independently
(``fit_dependence``); its log-odds estimates log(prod_j p_j(x_j) / p(x)), how much
more likely the row's values are apart than together. It is a second score family
with its own held-out calibration, levels and tail test, exactly as above. The
two scores measure different things (a rare value in one column; a common values'
rare combination), so neither replaces the other: the dependence score is the
stronger one on coded-integer tables, the density on continuous ones (the README's
detection tables).

The batch p-value is a weighted Bonferroni over every family's two tests. With
the density alone, its levels' calibrated minimum gets three quarters of alpha and
its tail test a quarter (the share the tail had when it was one of four equal
tests; its level is only bounded where the extrapolation is wrong). With both
families, each family's levels get 0.3 and its tail test 0.2. A row's score is
the larger of its two calibrated scores with Bonferroni on its tail, ``1 - 2 (1 -
max)``, so a clean row's score stays about uniform. A row is flagged when either family puts
it beyond half the first level's share of held-out rows (the 99.5% quantile for
the default 99%), so about 1% of clean rows are flagged, as with one family.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from sanitizer.checks._common import (
    balanced_folds,
    calibrated_percentile,
    content_folds,
    fill_by_fold,
    fold_groups,
    map_threads,
    one_thread,
    scoring_threads,
    shared_encoder,
    subsample,
)
from sanitizer.checks._features import FeatureEncoder
from sanitizer.checks.base import Check, CheckResult, Status

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.mixture import GaussianMixture

    from sanitizer.table import Table

log = logging.getLogger(__name__)

MAX_REASON_ROWS = 1000
MIN_TAIL_EXCESSES = 30  # held-out scores above the tail threshold needed to fit its shape
SHAPE_MARGIN = 2.0  # standard errors added to the fitted tail shape (heavier = conservative)
SCORE_CHUNK = 16_384  # rows per mixture scoring step: small temporaries per thread
NULL_CHUNK = 20_000  # null draws per step of the levels' joint calibration
NULL_HITS = 100  # Besag–Clifford: stop drawing once this many null draws are as extreme
# Shares of alpha (weighted Bonferroni) for each score family's levels and tail test,
# by the number of families (the density alone, or with the dependence score).
FAMILY_WEIGHTS = {1: (0.75, 0.25), 2: (0.3, 0.2)}
DEPENDENCE_MIN_ROWS = 50  # fitting rows needed to learn the dependence score
MIN_FIT_ROWS = 3  # reference rows needed: each fold model then learns from two or more
#: A numeric column with two reference values, the rarer below this share, is a flag:
#: scored by its values' frequencies, not as a dimension of the mixture (the default
#: of the ``rare_flag_share`` option).
RARE_FLAG_SHARE = 0.1
#: A numeric column whose reference values leave at most this Good–Turing estimate of
#: probability to values it never showed is discrete: a value it does not hold adds
#: -log of that estimate to the density score (the default of ``lattice_mass``).
LATTICE_MASS = 0.01
#: How far from a whole number of grid steps a discrete column's value may lie and
#: still be on the grid (the encoding's rounding; a jitter is thousands of times more).
GRID_TOLERANCE = 1e-6


def conformal_excess_pvalue(flagged: int, n: int, exceed: int, m: int) -> float:
    """P(K >= flagged) for K ~ BetaBinomial(n, exceed, m - exceed + 1).

    The count of clean rows above the ``exceed``-th largest of ``m`` exchangeable
    calibration scores; exact for continuous scores.
    """
    from scipy.stats import betabinom, binom

    if flagged <= 0:
        return 1.0
    if m <= 0:
        return float(binom.sf(flagged - 1, n, 0.01))
    a = max(exceed, 1)
    b = max(m - exceed + 1, 1)
    return float(min(1.0, max(0.0, betabinom.sf(flagged - 1, n, a, b))))


def _level_pvalues(
    flagged: np.ndarray, n: int, exceed: int, m: int, min_ratio: float
) -> np.ndarray:
    """``conformal_excess_pvalue`` of many counts at one level, 1 below ``min_ratio``
    times the level's expected count."""
    from scipy.stats import betabinom

    values, back = np.unique(np.asarray(flagged, dtype=np.int64), return_inverse=True)
    a, b = max(exceed, 1), max(m - exceed + 1, 1)
    p = np.asarray(betabinom.sf(values - 1, n, a, b), dtype=float).reshape(-1)
    p[(values <= 0) | (values < min_ratio * n * exceed / (m + 1))] = 1.0
    return np.clip(p, 0.0, 1.0)[back.reshape(-1)]


def min_level_pvalue(
    flagged: list[int],
    exceed: list[int],
    n: int,
    m: int,
    min_ratio: float,
    level: float | None,
    max_draws: int,
) -> tuple[float, int]:
    """P-value of the smallest level p-value, and the null draws it took.

    The levels' thresholds are nested order statistics of the same ``m`` held-out
    scores, so their counts are strongly dependent and Bonferroni over them is
    needlessly strict. Under the null (batch and held-out rows exchangeable, scores
    continuous) the batch rows fall into the ``m + 1`` gaps between the sorted
    held-out scores uniformly over all compositions of ``n``: the counts beyond the
    ``j_1 < j_2 < …``-th largest are cumulative sums of a Dirichlet-multinomial
    draw with parameters ``(j_1, j_2 - j_1, …, m + 1 - j_last)``. The observed
    minimum is calibrated against such draws (Besag–Clifford: drawing stops at
    ``NULL_HITS`` draws as extreme, at most ``max_draws``; seeded by the counts, so
    the same batch gives the same p), capped by Bonferroni. Drawing is skipped
    where it cannot change the decision at ``level`` (None: always draw): Bonferroni
    already rejects, or the smallest p-value is not below ``level`` (the calibrated
    p never is).
    """
    by_exceed = dict(zip(exceed, flagged, strict=True))
    js = np.array(sorted(by_exceed), dtype=np.int64)
    counts = np.array([by_exceed[int(j)] for j in js], dtype=np.int64)
    observed = min(
        float(_level_pvalues(np.array([k]), n, int(j), m, min_ratio)[0])
        for k, j in zip(counts, js, strict=True)
    )
    bonferroni = min(1.0, len(js) * observed)
    settled = level is not None and (bonferroni < level or observed >= level)
    if len(js) < 2 or max_draws <= 0 or settled or observed >= 1.0:
        return bonferroni, 0
    rng = np.random.default_rng([n, m, *js.tolist(), *counts.tolist()])
    gaps = np.diff(np.r_[0, js, m + 1]).astype(float)
    hits = draws = 0
    while draws < max_draws and hits < NULL_HITS:
        size = min(NULL_CHUNK, max_draws - draws)
        probs = rng.dirichlet(gaps, size=size)
        beyond = np.cumsum(rng.multinomial(n, probs)[:, : len(js)], axis=1)
        null_min = np.min(
            [_level_pvalues(beyond[:, i], n, int(j), m, min_ratio) for i, j in enumerate(js)],
            axis=0,
        )
        hits += int(np.count_nonzero(null_min <= observed * (1.0 + 1e-9)))
        draws += size
    return min(bonferroni, (1.0 + hits) / (draws + 1.0)), draws


def fit_tail(calibration: np.ndarray, fraction: float) -> dict[str, float] | None:
    """A generalized Pareto tail for the sorted held-out scores, or None if unfittable.

    ``threshold`` is the score above which the top ``excesses`` held-out rows lie;
    ``shape`` is the maximum-likelihood shape plus ``SHAPE_MARGIN`` standard errors
    (asymptotically ``(1 + shape) / sqrt(excesses)``), at least 0; ``scale`` is
    refitted with that shape fixed.
    """
    from scipy.stats import genpareto

    m = len(calibration)
    t = int(min(max(MIN_TAIL_EXCESSES, round(fraction * m)), m // 2))
    if t < MIN_TAIL_EXCESSES or not np.all(np.isfinite(calibration[m - t - 1 :])):
        return None
    threshold = float(calibration[m - t - 1])
    excess = calibration[m - t :] - threshold
    if float(np.ptp(excess)) <= 0.0 or np.count_nonzero(excess) < MIN_TAIL_EXCESSES // 2:
        return None  # ties (discrete scores): no continuous tail to fit
    try:
        shape, _, _ = genpareto.fit(excess, floc=0.0)
        shape = max(0.0, shape + SHAPE_MARGIN * (1.0 + max(shape, 0.0)) / math.sqrt(t))
        _, _, scale = genpareto.fit(excess, f0=shape, floc=0.0)
    except (ValueError, RuntimeError, FloatingPointError):
        return None
    if not (np.isfinite(shape) and np.isfinite(scale) and scale > 0):
        return None
    return {
        "threshold": threshold,
        "excesses": float(t),
        "shape": float(shape),
        "scale": float(scale),
        "maximum": float(calibration[-1]),
        "calibration_rows": float(m),
    }


def tail_pvalue(
    tail: dict[str, float] | None, raw: np.ndarray, k_max: int, min_ratio: float, gain: float
) -> float:
    """Tail test: are the rows beyond the held-out maximum further out than clean rows go?

    With ``k`` rows beyond the maximum (2 <= k, at most ``k_max`` looked at) and ``q``
    the extrapolated exceedance probability of the ``k``-th most novel, the model's
    p-value is P(Binomial(n, q) >= k) (the ``k``-th order statistic's tail). It may
    strengthen the rank-only p-value of ``k`` rows beyond the maximum at most
    ``gain``-fold, so a tail model that is wrong by any factor cannot push the test's
    level above ``gain`` times its nominal level. ``k`` counts only if
    ``k >= min_ratio * n * q``.
    """
    from scipy.stats import binom, genpareto

    n = len(raw)
    if tail is None or k_max < 2:
        return 1.0
    beyond = raw[raw > tail["maximum"]]
    k = min(len(beyond), k_max)
    if k < 2:
        return 1.0
    x = float(np.partition(beyond, len(beyond) - k)[len(beyond) - k])  # k-th largest
    rate = (tail["excesses"] + 1.0) / (tail["calibration_rows"] + 1.0)
    q = rate * float(genpareto.sf(x - tail["threshold"], tail["shape"], scale=tail["scale"]))
    if k < min_ratio * n * q:
        return 1.0
    rank_p = conformal_excess_pvalue(k, n, 1, int(tail["calibration_rows"]))
    return float(max(binom.sf(k - 1, n, q), rank_p / gain))


def tail_scores(tail: dict[str, float] | None, raw: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row scores that keep ordering rows beyond the held-out maximum.

    A percentile stops at 1 for every row beyond the most novel held-out row, however
    far out. With a fitted tail, such a row scores ``1 - (1/m) S(raw) / S(max)``,
    ``S`` the tail's survival function: ``(m - 1) / m`` (a row equal to the maximum's
    percentile) at the maximum, rising towards 1 with the distance, so the rows
    furthest out rank first and a score still means "this much of the reference is
    less novel" (at most the ``1/m`` share of a single held-out row differs).
    """
    from scipy.stats import genpareto

    if tail is None:
        return scores
    top = tail["maximum"]
    beyond = raw > top
    if not beyond.any():
        return scores
    m = tail["calibration_rows"]
    c, scale, u = tail["shape"], tail["scale"], tail["threshold"]
    ratio = np.exp(
        genpareto.logsf(raw[beyond] - u, c, scale=scale) - genpareto.logsf(top - u, c, scale=scale)
    )
    out = scores.copy()
    out[beyond] = 1.0 - np.nan_to_num(ratio, nan=0.0, posinf=1.0) / m
    return out


class OutlierCheck(Check):
    """Novelty relative to the reference: a Gaussian-mixture density on encoded features.

    Options: ``alpha`` (batch test level), ``levels`` (held-out quantiles used as
    flag thresholds; the first one sets ``row_flags``; 1.0 is the held-out maximum,
    which lets a couple of extreme rows in a small batch count), ``n_folds``
    (cross-fitting: each reference row is scored by the fold model fitted on the
    other folds, and calibrates the tests; a batch row is scored by one fold model),
    ``max_components`` (mixture
    size limit, chosen by BIC), ``max_fit_rows`` (subsample for fitting),
    ``reg_covar`` (ridge on each covariance), ``min_ratio`` (a level counts only
    if it flags at least this many times its expected number of rows),
    ``tail_rows`` (the tail test looks at this many rows beyond the held-out
    maximum; 0 turns it off), ``tail_fraction`` (share of held-out scores whose
    excesses fit the tail, at least 30 rows), ``tail_gain`` (the most the tail
    model may strengthen the rank-only evidence of the rows beyond the maximum),
    ``draws`` (most null draws calibrating the smallest level p-value; 0: Bonferroni
    over the levels), ``dependence`` (also score how much rarer a row's combination
    of values is than the same values drawn independently, see ``fit_dependence``:
    a second score family with its own calibration and tests), ``n_threads``
    (threads scoring rows; None, the default: one below ``parallel_rows`` rows,
    100k — below that, scoring is a fraction of a second and threads only add
    memory — the cores this process may use above; a screened large batch's
    100,000-row sample is scored on them; the fold models after the first are fitted
    on ``n_threads`` threads, by default the cores this process may use),
    ``rare_flag_share`` (a numeric column
    with two reference values, the rarer in fewer than this share of rows, is a flag
    scored by frequency outside the mixture, and so is a category held by fewer
    than this share; 0: none), ``lattice_mass`` (a numeric column whose reference
    values leave at most this Good–Turing share to values it never showed, a coded or
    counted column, is discrete: a value off its reference values, such as a jittered
    copy of a survey row, adds its surprise to the density score, see
    ``_lattice``; 0: none), ``random_state``.
    """

    name = "outliers"
    screenable = True
    default_severity = "quarantine"
    description = "rows whose joint combination of values is improbable under the reference"

    def __init__(
        self,
        alpha: float = 0.01,
        levels: tuple[float, ...] = (0.99, 0.999, 1.0),
        n_folds: int = 5,
        max_components: int = 8,
        max_fit_rows: int = 20_000,
        reg_covar: float = 1e-3,
        min_ratio: float = 3.0,
        tail_rows: int = 10,
        tail_fraction: float = 0.02,
        tail_gain: float = 10.0,
        draws: int = 200_000,
        dependence: bool = True,
        rare_flag_share: float = RARE_FLAG_SHARE,
        lattice_mass: float = LATTICE_MASS,
        n_threads: int | None = None,
        parallel_rows: int = 100_000,
        random_state: int = 0,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if not levels or not all(0.5 <= q <= 1.0 for q in levels):
            raise ValueError(f"levels must be quantiles in [0.5, 1], got {levels!r}")
        if n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {n_folds!r}")
        if min_ratio < 1.0:
            raise ValueError(f"min_ratio must be >= 1, got {min_ratio!r}")
        if max_components < 1:
            raise ValueError("max_components must be >= 1")
        if tail_rows < 0 or tail_rows == 1:
            raise ValueError(f"tail_rows must be 0 (off) or >= 2, got {tail_rows!r}")
        if not 0.0 < tail_fraction <= 0.5:
            raise ValueError(f"tail_fraction must be in (0, 0.5], got {tail_fraction!r}")
        if tail_gain < 1.0:
            raise ValueError(f"tail_gain must be >= 1, got {tail_gain!r}")
        if draws < 0:
            raise ValueError(f"draws must be >= 0 (0: Bonferroni over the levels), got {draws!r}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be >= 1 or None, got {n_threads!r}")
        if not 0.0 <= rare_flag_share <= 0.5:
            raise ValueError(f"rare_flag_share must be in [0, 0.5], got {rare_flag_share!r}")
        if not 0.0 <= lattice_mass < 1.0:
            raise ValueError(f"lattice_mass must be in [0, 1), got {lattice_mass!r}")
        self.alpha = alpha
        self.levels = tuple(levels)
        self.n_folds = n_folds
        self.max_components = max_components
        self.max_fit_rows = max_fit_rows
        self.reg_covar = reg_covar
        self.min_ratio = min_ratio
        self.tail_rows = tail_rows
        self.tail_fraction = tail_fraction
        self.tail_gain = tail_gain
        self.draws = draws
        self.dependence = dependence
        self.rare_flag_share = rare_flag_share
        self.lattice_mass = lattice_mass
        self.n_threads = n_threads
        self.parallel_rows = parallel_rows
        self.random_state = random_state

    # -- fitting -----------------------------------------------------------------

    def fit(self, reference: Table) -> Self:
        self.encoder_ = shared_encoder(reference)
        x = reference.encoded(self.encoder_)
        # Cross-fitting: every (sampled) reference row is scored by the fold model that
        # never saw it, so all of them calibrate the tests and each model learns from
        # (n_folds - 1) / n_folds of them; a batch row is scored by one fold model.
        rows = subsample(np.arange(len(x)), self.max_fit_rows, self.random_state)
        self.folds_: list[FoldModel] = []
        self.calibration_ = np.zeros(0)
        self.thresholds_ = np.zeros(0)
        self.exceed_ = np.zeros(0, dtype=int)
        self.tail_: dict[str, float] | None = None
        self.dependence_calibration_: dict[str, Any] | None = None
        if x.shape[1] == 0 or len(rows) < MIN_FIT_ROWS:
            log.info("outliers: no features or too few reference rows; the check will pass")
            return self
        n_folds = min(self.n_folds, len(rows))
        rng = np.random.default_rng([self.random_state, 5])
        self.hash_weights_ = np.asarray(rng.normal(size=x.shape[1]))  # batch row → fold model
        fold = balanced_folds(len(rows), n_folds, self.random_state)
        groups = _column_groups(self.encoder_)
        dependence = (
            self.dependence
            and len(groups) >= 2
            and len(rows) - np.bincount(fold).max() >= DEPENDENCE_MIN_ROWS
        )
        density = np.empty(len(rows))
        combination = np.empty(len(rows))

        def fit_fold(j: int, components: int | None = None) -> FoldModel:
            held_out = fold == j
            model = self._fit_fold(x[rows[~held_out]], groups, dependence, components)
            density[held_out] = model.density(x[rows[held_out]])
            if dependence:
                combination[held_out] = model.combination(x[rows[held_out]])
            return model

        # the mixture's size is chosen by BIC on the first fold and kept for the others,
        # which are fitted side by side (each on one thread)
        first = fit_fold(0)
        components = first.mixture.n_components
        threads = scoring_threads(self.n_threads, len(rows), 0)
        later = map_threads(lambda j: fit_fold(j, components), range(1, n_folds), threads)
        self.folds_ = [first, *later]
        calibrated = self._calibrate(density)
        self.calibration_ = calibrated["calibration"]
        self.thresholds_ = calibrated["thresholds"]
        self.exceed_ = calibrated["exceed"]
        self.tail_ = calibrated["tail"]
        if dependence:
            self.dependence_calibration_ = self._calibrate(combination)
        log.debug(
            "outliers: %d folds of %d components on %d rows, dependence score %s",
            n_folds,
            components,
            len(rows),
            "on" if dependence else "off",
        )
        return self

    def _fit_fold(
        self, x: np.ndarray, groups: list[np.ndarray], dependence: bool, components: int | None
    ) -> FoldModel:
        """One fold's scorers, fitted on ``x`` (the rows outside the fold)."""
        flags = _rare_flags(x, len(self.encoder_.numeric), self.rare_flag_share)
        categories = _rare_categories(x, self.encoder_, self.rare_flag_share, flags["columns"])
        columns = np.setdiff1d(
            np.arange(x.shape[1]), np.r_[flags["columns"], categories["columns"]]
        )
        mixture = _fit_mixture(
            x[:, columns], self.max_components, self.reg_covar, self.random_state, components
        )
        numeric = columns[columns < len(self.encoder_.numeric)]
        return FoldModel(
            flags=flags,
            categories=categories,
            lattice=_lattice(x, numeric, self.lattice_mass),
            density_columns=columns,
            mixture=mixture,
            dependence=fit_dependence(x, groups, self.random_state) if dependence else None,
        )

    def _calibrate(self, held_out: np.ndarray) -> dict[str, Any]:
        """Sorted out-of-fold scores, the levels' thresholds (the ``exceed``-th largest
        out-of-fold score each) and the fitted tail."""
        cal = np.sort(held_out)
        m = len(cal)
        exceed = [_exceed(m, 1.0 - q) for q in self.levels]
        return {
            "calibration": cal,
            "thresholds": np.asarray([cal[m - j] for j in exceed]),
            "exceed": np.asarray(exceed, dtype=int),
            "tail": fit_tail(cal, self.tail_fraction),
        }

    def _raw(
        self, x: np.ndarray, fold: np.ndarray, score: Callable[[FoldModel, np.ndarray], np.ndarray]
    ) -> np.ndarray:
        """Each row's raw ``score`` (``FoldModel.density`` or ``FoldModel.combination``)
        by fold model ``fold[row]``, in chunks (the mixture's temporaries then stay
        small), on several threads for a large batch: a row's score does not depend on
        its chunk."""
        out = np.empty(len(x))
        threads = scoring_threads(self.n_threads, len(x), self.parallel_rows)
        fill_by_fold(
            out, self.folds_, fold, lambda model, rows: score(model, x[rows]), SCORE_CHUNK, threads
        )
        return out

    # -- scanning ----------------------------------------------------------------

    def run(self, batch: Table) -> CheckResult:
        self._require_fitted("encoder_", "folds_", "calibration_", "tail_")
        n = len(batch)
        if not self.folds_:
            return self.result(
                "pass",
                "no features to model; nothing to check",
                row_scores=np.zeros(n),
                row_flags=np.zeros(n, dtype=bool),
                severity=self.default_severity,
            )
        x = batch.encoded(self.encoder_)
        density = {
            "calibration": self.calibration_,
            "thresholds": self.thresholds_,
            "exceed": self.exceed_,
            "tail": self.tail_,
        }
        # each batch row by one fold model, chosen by a hash of its content: then a clean
        # batch row is exactly as unseen as a reference row was out of fold, and a
        # permutation of the batch permutes the scores
        fold = content_folds(x, self.hash_weights_, len(self.folds_))
        families = [("density", self._raw(x, fold, FoldModel.density), density)]
        if self.dependence_calibration_ is not None:
            families.append(
                (
                    "dependence",
                    self._raw(x, fold, FoldModel.combination),
                    self.dependence_calibration_,
                )
            )
        # Weighted Bonferroni over every family's two tests (its levels, jointly
        # calibrated, and its tail test). One family: the levels get three quarters of
        # alpha, the tail test a quarter. The tail's level is only bounded (by
        # tail_gain) where its extrapolation is wrong: a clean 400-row batch with three
        # rows far beyond the maximum of 1,800 held-out rows (rank p 0.006) reached the
        # gain's bound, 0.0006, and half of alpha would have failed it. Two families:
        # levels 0.3, tail 0.2 each.
        weights = FAMILY_WEIGHTS[len(families)]
        found = [
            self._family(name, raw, cal, n, weights, len(families)) for name, raw, cal in families
        ]
        p = min(1.0, *(f.p for f in found))
        first = found[0]
        # the larger calibrated score, Bonferroni on its tail: a clean row's score stays
        # about uniform (the maximum of two would make clean rows look twice as novel)
        top = np.max([f.scores for f in found], axis=0)
        scores = 1.0 - np.minimum(1.0, len(found) * (1.0 - top))
        flags = np.any([f.flags for f in found], axis=0)
        status: Status = "fail" if p < self.alpha else "pass"
        rate = first.counts[0] / n if n else 0.0
        lead = min(found, key=lambda f: f.p)
        what = "novelty" if lead.name == "density" else "combination-of-values"
        message = (
            f"{lead.counts[0]} of {n} rows ({lead.counts[0] / n if n else 0.0:.2%}) beyond "
            f"the reference's {self.levels[0]:.1%} {what} quantile "
            f"(expected {lead.expected:.2%})"
        )
        if lead.p_tail < lead.p_levels:
            message += f", {lead.beyond} beyond the most novel reference row"
        message += f"; p={p:.2g}"
        reasons = self._reasons(x, fold, found, flags)
        names = _encoded_names(self.encoder_)
        info: dict[str, Any] = {
            "levels": list(self.levels),
            "flagged_per_level": first.counts,
            "p_values_per_level": first.p_values,
            "p_levels": first.p_levels,
            "null_draws": first.draws,
            "p_tail": first.p_tail,
            "tail_shape": None if self.tail_ is None else self.tail_["shape"],
            "expected_rate": first.expected,
            "components": [int(m.mixture.n_components) for m in self.folds_],
            "rare_flags": _names_in(names, [m.flags["columns"] for m in self.folds_]),
            "rare_categories": _names_in(names, [m.categories["rare"] for m in self.folds_]),
            "discrete_columns": _names_in(names, [m.lattice["columns"] for m in self.folds_]),
            "calibration_rows": len(self.calibration_),
            "dependence": len(found) > 1,
        }
        if len(found) > 1:
            dep = found[1]
            info |= {
                "dependence_flagged_per_level": dep.counts,
                "p_dependence_levels": dep.p_levels,
                "p_dependence_tail": dep.p_tail,
            }
        return self.result(
            status,
            message,
            statistic=rate,
            p_value=p,
            threshold=self.alpha,
            row_scores=scores,
            row_flags=flags,
            row_reasons=reasons,
            severity=self.default_severity,
            info=info,
        )

    def _family(
        self,
        name: str,
        raw: np.ndarray,
        cal: dict[str, Any],
        n: int,
        weights: tuple[float, float],
        families: int,
    ) -> _Family:
        """One score's tests: its levels (jointly calibrated) and its tail test.

        Its rows are flagged beyond the held-out quantile ``1 - (1 - levels[0]) /
        families``, so the flags of all families together still mark about
        ``1 - levels[0]`` of clean rows."""
        raw = np.where(np.isfinite(raw), raw, np.inf)
        calibration, tail = cal["calibration"], cal["tail"]
        exceed = [int(j) for j in cal["exceed"]]
        m = len(calibration)
        counts = [int(np.count_nonzero(raw > t)) for t in cal["thresholds"]]
        # The threshold is the j-th largest held-out score: a clean row exceeds it
        # with probability ~ Beta(j, m - j + 1).
        # A level counts only when its excess is also large in relative terms: for a
        # fixed reference the realised false-flag rate of a threshold can be ~1.5x
        # its nominal rate (seen on a 10k-row reference), which 1k-100k-row
        # batches would otherwise "detect" again and again.
        p_values = [
            float(_level_pvalues(np.array([k]), n, j, m, self.min_ratio)[0])
            for k, j in zip(counts, exceed, strict=True)
        ]
        p_tail = tail_pvalue(tail, raw, self.tail_rows, self.min_ratio, self.tail_gain)
        tail_on = tail is not None and self.tail_rows >= 2
        w_levels, w_tail = weights if tail_on else (weights[0] + weights[1], 0.0)
        p_levels, draws = min_level_pvalue(
            counts, exceed, n, m, self.min_ratio, self.alpha * w_levels, self.draws
        )
        return _Family(
            name=name,
            raw=raw,
            counts=counts,
            p_values=p_values,
            p_levels=p_levels,
            draws=draws,
            p_tail=p_tail,
            p=min(1.0, p_levels / w_levels, p_tail / w_tail if w_tail else 1.0),
            scores=tail_scores(tail, raw, calibrated_percentile(calibration, raw)),
            flags=raw > calibration[m - _exceed(m, (1.0 - self.levels[0]) / families)],
            expected=float(exceed[0]) / (m + 1),
            beyond=int(np.count_nonzero(raw > calibration[-1])),
            most=float(calibration[-1]),
        )

    def _reasons(
        self, x: np.ndarray, fold: np.ndarray, found: list[_Family], flags: np.ndarray
    ) -> dict[int, tuple[str, ...]]:
        """Per flagged row, the family that ranks it highest: for the density, the
        features furthest from the row's nearest mixture component (of the fold model
        that scored it); for the dependence score, the classifier's odds that the row
        is a mix of independent values."""
        scores = np.array([f.scores for f in found])
        rows = np.flatnonzero(flags)
        if len(rows) > MAX_REASON_ROWS:
            top = np.max(scores[:, rows], axis=0)
            rows = rows[np.argsort(-top, kind="stable")[:MAX_REASON_ROWS]]
        if not len(rows):
            return {}
        family = np.argmax(scores[:, rows], axis=0)
        z = np.zeros((len(rows), x.shape[1]))
        for model, part in zip(self.folds_, fold_groups(fold[rows], len(self.folds_)), strict=True):
            if len(part):
                z[part] = model.deviation(x[rows[part]])
        names = _encoded_names(self.encoder_)
        top = np.argsort(-z, axis=1)[:, :2]
        out: dict[int, tuple[str, ...]] = {}
        for i, r in enumerate(rows):
            f = found[int(family[i])]
            where = (
                "beyond every reference row"
                if f.raw[r] > f.most
                else f"at the {f.scores[r]:.1%} reference percentile"
            )
            if f.name == "dependence":
                odds = math.exp(min(float(f.raw[r]), 700.0))
                out[int(r)] = (
                    f"outliers: combination of values {where} (odds {odds:.3g}:1 that it "
                    "mixes values of different reference rows)",
                )
            else:
                feats = ", ".join(dict.fromkeys(names[j] for j in top[i]))
                out[int(r)] = (f"outliers: joint novelty {where} (most unusual: {feats})",)
        return out


@dataclass(frozen=True)
class FoldModel:
    """One fold's scorers, fitted on the reference rows outside the fold: its rare flags
    and rare categories (scored by their frequencies there), the values of its discrete
    columns (``_lattice``), the Gaussian mixture on the other columns, and the
    dependence classifier (None: off)."""

    flags: dict[str, np.ndarray]
    categories: dict[str, np.ndarray]
    lattice: dict[str, np.ndarray]
    density_columns: np.ndarray
    mixture: GaussianMixture
    dependence: HistGradientBoostingClassifier | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FoldModel:
        return cls(**data)

    def density(self, x: np.ndarray) -> np.ndarray:
        """Negative log-density. Rare flags add their values' surprise, -log of the
        value's reference share, instead of a Gaussian dimension: a flag set in 1% of
        rows is 10 standard deviations from its mean, 50 nats under a Gaussian against
        4.6 by its frequency, and every clean row with a flag set would outscore any
        in-range outlier of the other columns. Rare categories likewise
        (``_rare_categories``); and a value a discrete column does not hold adds -log of
        the share its fitting rows leave to unseen values (``_lattice``)."""
        surprise = (
            _flag_surprise(x, self.flags)
            + _category_surprise(x, self.categories)
            + _lattice_surprise(x, self.lattice)
        )
        return -self.mixture.score_samples(x[:, self.density_columns]) + surprise

    def combination(self, x: np.ndarray) -> np.ndarray:
        """The dependence classifier's log-odds that a row is a mix of independent values."""
        assert self.dependence is not None
        return np.asarray(self.dependence.decision_function(x))

    def deviation(self, x: np.ndarray) -> np.ndarray:
        """Per row and encoded column, how unusual the value is: standard deviations
        from the row's nearest mixture component, and a flag's or rare category's
        surprise as the distance that carries as many nats under a Gaussian."""
        xd = x[:, self.density_columns]
        comp = self.mixture.predict(xd)
        sd = np.sqrt(np.einsum("kii->ki", self.mixture.covariances_))[comp]
        z = np.zeros(x.shape)
        z[:, self.density_columns] = np.abs(xd - self.mixture.means_[comp]) / sd
        if self.flags["columns"].size:
            z[:, self.flags["columns"]] = np.sqrt(2.0 * _flag_surprise(x, self.flags, total=False))
        if self.categories["columns"].size:  # on the row's own category's column
            z[:, self.categories["columns"]] = np.sqrt(
                2.0
                * x[:, self.categories["columns"]]
                * _category_surprise(x, self.categories, total=False, per_column=True)
            )
        if self.lattice["columns"].size:  # a value not held: at least its surprise's distance
            cols = self.lattice["columns"]
            z[:, cols] = np.maximum(
                z[:, cols], np.sqrt(2.0 * _lattice_surprise(x, self.lattice, total=False))
            )
        return z


@dataclass(frozen=True)
class _Family:
    """One score family's evidence on a batch."""

    name: str  # "density" or "dependence"
    raw: np.ndarray
    counts: list[int]
    p_values: list[float]
    p_levels: float
    draws: int
    p_tail: float
    p: float  # the family's weighted-Bonferroni contribution
    scores: np.ndarray
    flags: np.ndarray
    expected: float
    beyond: int
    most: float


def _exceed(m: int, share: float) -> int:
    """How many of ``m`` sorted held-out scores lie at or above the threshold that
    leaves ``share`` of them: the threshold is the ``_exceed``-th largest (1 .. m)."""
    return min(max(1, math.floor(m * share)), m)


def _column_groups(encoder: FeatureEncoder) -> list[np.ndarray]:
    """Encoded columns per table column: one per numeric, a one-hot block per categorical."""
    k = len(encoder.numeric)
    groups = [np.array([j]) for j in range(k)]
    for cats in encoder.categories:
        if cats:
            groups.append(np.arange(k, k + len(cats)))
            k += len(cats)
    return groups


def fit_dependence(
    x: np.ndarray, groups: list[np.ndarray], seed: int
) -> HistGradientBoostingClassifier:
    """A classifier telling rows ``x`` from rows whose columns are drawn independently.

    The contrast rows take each column (group of encoded columns) from a different
    random row of ``x`` (a bootstrap per column, so the marginals match the
    reference's up to sampling noise: with an exact permutation every single-column
    split has zero gain and greedy trees never start). With as many contrast as real
    rows, the classifier's log-odds estimates log(prod_j p_j(x_j) / p(x)): large for
    a row whose every value is common but whose combination is not, the in-range
    outlier a density on the joint misses where columns are coded integers.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng([seed, 7])
    contrast = np.empty_like(x)
    for g in groups:
        contrast[:, g] = x[rng.integers(0, len(x), len(x))][:, g]
    model = HistGradientBoostingClassifier(
        max_iter=100, max_leaf_nodes=15, early_stopping=False, random_state=seed
    )
    with one_thread():
        model.fit(np.r_[x, contrast], np.r_[np.zeros(len(x)), np.ones(len(x))])
    return model


def _encoded_names(encoder: FeatureEncoder) -> list[str]:
    names = list(encoder.numeric)
    for col, cats in zip(encoder.categorical, encoder.categories, strict=True):
        names.extend(f"{col}={c}" for c in cats)
    return names


def _names_in(names: list[str], columns: list[np.ndarray]) -> list[str]:
    """The names of the encoded columns in any of ``columns``, in encoded order."""
    chosen = np.unique(np.concatenate([np.zeros(0, dtype=int), *columns]))
    return [names[int(j)] for j in chosen]


def _rare_flags(
    x: np.ndarray, n_numeric: int, share: float = RARE_FLAG_SHARE
) -> dict[str, np.ndarray]:
    """The numeric columns of ``x`` that are rare flags: two distinct values, the rarer
    held by fewer than ``share`` of the rows (never every column: the
    mixture needs one). ``columns``; ``values`` (two per flag); ``surprise``: -log of
    each value's share and of a value the reference never showed, with add-one
    smoothing over the two values and that third outcome."""
    columns, values, surprise = [], [], []
    n = len(x)
    for j in range(n_numeric):
        seen, counts = np.unique(x[:, j], return_counts=True)
        if seen.size == 2 and counts.min() < share * n:
            columns.append(j)
            values.append(seen)
            surprise.append(-np.log(np.r_[counts + 1.0, 1.0] / (n + 3.0)))
    if len(columns) == x.shape[1]:
        columns, values, surprise = [], [], []
    return {
        "columns": np.asarray(columns, dtype=int),
        "values": np.asarray(values, dtype=float).reshape(-1, 2),
        "surprise": np.asarray(surprise, dtype=float).reshape(-1, 3),
    }


def _flag_surprise(
    x: np.ndarray, flags: dict[str, np.ndarray], *, total: bool = True
) -> np.ndarray | float:
    """Each row's surprise over the rare flags (summed, or one column per flag)."""
    columns = flags["columns"]
    if not columns.size:
        return 0.0 if total else np.zeros((len(x), 0))
    v = x[:, columns]
    values, surprise = flags["values"], flags["surprise"]
    out = np.where(
        v == values[:, 0],
        surprise[:, 0],
        np.where(v == values[:, 1], surprise[:, 1], surprise[:, 2]),
    )
    return out.sum(axis=1) if total else out


def _lattice(
    x: np.ndarray, columns: np.ndarray, mass: float = LATTICE_MASS
) -> dict[str, np.ndarray]:
    """The discrete columns among ``columns`` of ``x`` and the values each holds.

    A column of survey codes, counts or pixel intensities takes a few values, each
    many times; a value it never took (3.004 among the codes 1–5: a jittered copy)
    is novel however close it lies, which a density smoothing the codes into broad
    Gaussians cannot see. How likely a clean row is to show an unseen value is what
    the Good–Turing estimate says: the share of rows whose value occurs once, here
    (ones + 1) / (rows + 1). A column where that is at most ``mass`` is discrete, and
    a value it does not hold adds -log of that estimate: 8.3 nats for a code column
    of 4,000 rows. A continuous column, most of whose values occur once, is never
    discrete, and its scores are unchanged.

    What a discrete column holds: where every gap between its sorted values is a
    whole multiple of the smallest (integers, even with a value missing: rooms 1–5
    and 7), every step of that grid between its smallest and largest value, so a
    rare interior value the fitting rows happened to miss (6 rooms, among 480 rows)
    is not novel; otherwise exactly its values. Always 0 too: the encoded median,
    which stands in for a missing value.

    ``columns``; ``values``: their values, sorted per column and concatenated;
    ``starts``: each column's first position in ``values`` (and the end); ``step``:
    per column, its grid's step (0: no grid, its values only); ``surprise``: per
    column, of a value it does not hold.
    """
    chosen: list[int] = []
    values: list[np.ndarray] = []
    steps: list[float] = []
    surprise: list[float] = []
    n = len(x)
    for j in columns if mass > 0.0 and n else ():
        seen, counts = np.unique(x[:, int(j)], return_counts=True)
        unseen = (np.count_nonzero(counts == 1) + 1.0) / (n + 1.0)
        if unseen <= mass and np.isfinite(seen).all():
            chosen.append(int(j))
            values.append(seen)
            steps.append(_grid_step(seen))
            surprise.append(-math.log(unseen))
    return {
        "columns": np.asarray(chosen, dtype=int),
        "values": np.concatenate([np.zeros(0), *values]),
        "starts": np.cumsum([0, *(len(v) for v in values)]).astype(int),
        "step": np.asarray(steps, dtype=float),
        "surprise": np.asarray(surprise, dtype=float),
    }


def _grid_step(seen: np.ndarray) -> float:
    """The step of the grid ``seen`` (sorted, distinct) lies on: the smallest gap,
    when every gap is a whole multiple of it; else 0."""
    if seen.size < 2:
        return 0.0
    gaps = np.diff(seen)
    step = float(gaps.min())
    ratio = gaps / step
    return step if bool(np.all(np.abs(ratio - np.round(ratio)) <= GRID_TOLERANCE)) else 0.0


def _lattice_surprise(
    x: np.ndarray, lattice: dict[str, np.ndarray], *, total: bool = True
) -> np.ndarray | float:
    """Each row's surprise over the values its discrete columns do not hold (summed,
    or one column per discrete column)."""
    columns, values, starts = lattice["columns"], lattice["values"], lattice["starts"]
    if not columns.size:
        return 0.0 if total else np.zeros((len(x), 0))
    out = np.zeros((len(x), len(columns)))
    for i, j in enumerate(columns):
        known = values[starts[i] : starts[i + 1]]
        v = x[:, j]
        step = lattice["step"][i]
        if step > 0.0:  # on the grid between the extremes
            k = (v - known[0]) / step
            held = (v >= known[0]) & (v <= known[-1]) & (np.abs(k - np.round(k)) <= GRID_TOLERANCE)
        else:
            at = np.minimum(np.searchsorted(known, v), len(known) - 1)
            held = known[at] == v
        out[:, i] = np.where(held | (v == 0.0), 0.0, lattice["surprise"][i])
    return out.sum(axis=1) if total else out


def _rare_categories(
    x: np.ndarray,
    encoder: FeatureEncoder,
    share: float = RARE_FLAG_SHARE,
    flag_columns: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The one-hot columns of ``x`` that leave the mixture: per categorical column
    (one-hot block), those of its categories held by fewer than ``share`` of the rows.

    A one-hot column of a category held by 1% of rows is a rare flag: 10 standard
    deviations from its mean under a Gaussian. Its rows therefore share the zero
    state of the block's remaining columns with the rows of no category (missing,
    or one the encoder does not keep); where that state would itself be held by
    fewer than ``share`` of the rows, the most frequent category's column leaves
    too (a one-hot block without one column loses nothing to a full-covariance
    mixture). A row in the zero state adds -log of its category's share of that
    state (add-one smoothing over its categories and "none"): the density is the
    mixture's times that conditional frequency. Never every column: the mixture
    needs one.

    ``columns``: the encoded columns that leave the mixture; ``rare``: those of
    rare categories; ``starts`` and ``sizes``: the blocks with a zero state to
    score; ``surprise``: per such block, each category's surprise (0 for those
    the mixture models) and then that of "none" (padded with 0).
    """
    n = len(x)
    columns: list[int] = []
    rare_columns: list[int] = []
    starts: list[int] = []
    sizes: list[int] = []
    tables: list[np.ndarray] = []
    k = len(encoder.numeric)
    for cats in encoder.categories if share > 0.0 and n else ():
        size = len(cats)
        counts = x[:, k : k + size].sum(axis=0)
        none = n - counts.sum()
        rare = counts < share * n
        if rare.any():
            drop = rare.copy()
            if none + counts[drop].sum() < share * n and not drop.all():
                drop[int(np.argmax(np.where(drop, -1.0, counts)))] = True
            zero_state = none + counts[drop].sum()
            outcomes = int(drop.sum()) + 1
            table = np.zeros(size + 1)
            table[:size][drop] = -np.log((counts[drop] + 1.0) / (zero_state + outcomes))
            table[size] = -np.log((none + 1.0) / (zero_state + outcomes))
            columns.extend(k + np.flatnonzero(drop))
            rare_columns.extend(k + np.flatnonzero(rare))
            starts.append(k)
            sizes.append(size)
            tables.append(table)
        k += size
    flags = flag_columns.size if flag_columns is not None else 0
    if len(columns) + flags >= x.shape[1]:
        columns, rare_columns, starts, sizes, tables = [], [], [], [], []
    width = max([len(t) for t in tables], default=1)
    return {
        "columns": np.asarray(columns, dtype=int),
        "rare": np.asarray(rare_columns, dtype=int),
        "starts": np.asarray(starts, dtype=int),
        "sizes": np.asarray(sizes, dtype=int),
        "surprise": np.array([np.pad(t, (0, width - len(t))) for t in tables]).reshape(-1, width),
    }


def _category_surprise(
    x: np.ndarray,
    categories: dict[str, np.ndarray],
    *,
    total: bool = True,
    per_column: bool = False,
) -> np.ndarray | float:
    """Each row's surprise over the blocks with rare categories: summed (``total``),
    one column per block, or (``per_column``) spread over the columns that left the
    mixture, on the row's own category's column."""
    starts, sizes, table = categories["starts"], categories["sizes"], categories["surprise"]
    out = np.zeros((len(x), len(starts)))
    for i, (start, size) in enumerate(zip(starts, sizes, strict=True)):
        # one-hot: the category's position + 1, or 0 for none (one pass over the block)
        code = (x[:, start : start + size] @ np.arange(1.0, size + 1.0)).astype(int)
        out[:, i] = table[i, np.where(code > 0, code - 1, size)]
    if per_column:
        block_of = np.searchsorted(starts, categories["columns"], side="right") - 1
        return out[:, block_of]
    if total:
        return out.sum(axis=1) if len(starts) else 0.0
    return out


def _fit_mixture(
    x: np.ndarray, max_components: int, reg_covar: float, seed: int, components: int | None = None
) -> GaussianMixture:
    """Full-covariance mixture with the BIC-best size among 1, 2, 4, … ``max_components``
    (``components``: that size, if the rows allow it)."""
    from sklearn.mixture import GaussianMixture

    n, d = x.shape
    # Enough rows per component to estimate a full covariance, and no more components
    # than distinct rows (a coded column of five values: k-means cannot seed eight).
    limit = max(1, min(max_components, n // max(10 * d, 20)))
    if limit > 1:
        limit = min(limit, len(np.unique(x, axis=0)))
    sizes = [k for k in (1, 2, 4, 8, 16) if k <= limit] or [1]
    if components is not None:
        sizes = [min(components, sizes[-1])]
    best: GaussianMixture | None = None
    best_bic = np.inf
    for k in sizes:
        gm = GaussianMixture(
            n_components=k,
            covariance_type="full",
            reg_covar=reg_covar,
            random_state=seed,
            max_iter=200,
        )
        with one_thread():
            gm.fit(x)
            bic = gm.bic(x)
        if bic < best_bic:
            best, best_bic = gm, bic
    assert best is not None
    return best
