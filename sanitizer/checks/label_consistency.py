"""Label consistency: how plausible is each row's label given its features?

Two views of the trusted reference are combined:

- a classifier's **out-of-fold** class probabilities (k-fold on the reference),
  with confident-learning per-class thresholds t_j = mean out-of-fold probability
  of class j on rows labelled j (Northcutt et al., 2021): the model part of a
  row's plausibility is min(1, p_y / t_y), its self-confidence relative to what is
  normal for its class;
- the share of its k nearest reference neighbours (scaled features) that carry the
  same label (Paudice et al., 2018); reference rows leave themselves out.

Raw implausibility = 1 − (w · kNN agreement + (1 − w) · model part). It is
calibrated per class to the reference's own out-of-fold distribution: a row's
per-class percentile is the mid-rank percentile of its raw value among reference
rows of the same label, so a label-prior shift does not change the flag rate. A
row is flagged when its per-class percentile reaches 1 − ``row_rate``; the batch
test counts those flags.

The row score (which ranks rows, here and combined with the other checks) is the
mid-rank percentile among the reference rows of every label, pooled: comparable
across batches as well, and it keeps what the per-class percentiles drop. Where
labels are barely predictable and one class is rare, a random flip most often
moves a row into the rare class; per class it ranks only among that class's
rows, most of which look implausible too. On the held-out survey tables the
pooled percentile ranks random flips at AUROC 0.72–0.82 against 0.62–0.76 per
class (cleanlab's self-confidence: 0.76–0.83). A flagged row therefore need not
have a row score above every unflagged row's.

Batch rows are scored by the fold models themselves (each row by one of them,
chosen by a hash of its content), not by a model refitted on the whole reference:
a batch row is then exactly as "unseen" as a reference row was out of fold, so
under the null its score has the calibration distribution. A refitted model
shifts every probability a little, which in low-cardinality data moves whole
atoms of identical rows across the threshold and breaks the false-alarm rate.
Every reference row (up to ``max_reference_rows``) is such a calibration row:
the fold models learn from four fifths of the reference and all of it measures
the clean flag rates (cross-fitting). Until profile format 13 two fifths were
held out of fitting for the rates, which left the survey tables' flips to
weaker models and noisier rates (held-out flips at 1,000 rows, the whole
sanitizer with ``conditional_drift`` cross-fitted too: 10% random caught in 4
→ 6 of 8 batches, targeted 5% 2 → 4 of 8).

The batch test is one-sided and exact: the batch's flagged count against the
reference's out-of-fold flagged count (Fisher's exact test — the binomial test
with the reference rate's own sampling error accounted for, so a 100k-row batch is
not failed by the estimate's noise), at a few row thresholds (``test_rates``): a
strict threshold has power when the reference is clean, a looser one when natural
label noise fills the top percentile. A still stricter level counts the rows at the
strictest threshold whose raw implausibility is also beyond the top ``extreme_rate``
of the fitting rows' raw values, all classes pooled: the per-class percentiles
cannot resolve beyond about one over a class's fitting rows (90 per class in a
900-row, 10-class reference), and blatant flips (no neighbour and almost no model
probability for the given label) stand out above almost every clean row of any
class. Each threshold is tested on all rows and,
with up to ten classes, on the rows of each given label (a targeted flip puts all
its rows into one class, where the excess stands out); weighted Bonferroni over
all tests, two thirds of alpha to the all-rows tests.

The exact test assumes batch and calibration rows exchangeable, which a
covariate shift breaks: a batch drawn from where labels are noisier by nature (a
survey's high-coinsurance households) has more implausible labels with nothing
relabelled. So when a batch fails and its features demonstrably differ from the
reference's (a likelihood-ratio test of a logistic domain classifier, calibration
rows vs batch, below ``shift_alpha``), the calibration rows' counts are
re-weighted by that classifier's odds p(batch | x) / p(reference | x), and the
test is repeated with the weighted rates at the weights' effective sample size
(Kish): the clean rate the reference would show with the batch's features. The classifier sees features only, so flipped labels
cannot explain themselves away; re-weighting can clear a failing batch, never fail
a passing one (a passing batch does not pay for the classifier); and a batch
whose features do not differ (every flip scenario in the benchmarks) is tested
exactly as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np

from sanitizer.checks._common import (
    content_folds,
    fill_by_fold,
    map_threads,
    scoring_threads,
    shared_encoder,
)
from sanitizer.checks._shift import domain_shift, effective_share, shift_weights
from sanitizer.checks.base import Check, CheckResult, Status

if TYPE_CHECKING:
    from sanitizer.table import Table

log = logging.getLogger(__name__)

MAX_REASONS = 1000
PREDICT_BLOCK = 16_384  # rows per model call when scoring
MAX_CLASS_TESTS = 10  # with more classes, only the all-rows test (Bonferroni cost)
CLASS_TEST_SHARE = 1.0 / 3.0  # share of alpha spent on the per-class tests
Model = Literal["hgb", "logistic"]
ScoreMode = Literal["knn", "model"]  # kNN agreement + model, or the model alone


class LabelConsistencyCheck(Check):
    """Out-of-fold model probabilities + kNN label agreement, calibrated on the reference.

    Options: ``alpha`` (batch test level), ``row_rate`` (share of clean reference
    rows flagged; the row threshold is its per-class quantile), ``test_rates`` (the
    row thresholds the batch test counts at), ``model``
    (``"hgb"`` histogram gradient boosting or ``"logistic"``), ``n_folds``,
    ``n_neighbors``, ``knn_weight`` (weight of kNN agreement in the raw score),
    ``extreme_rate`` (the extreme level's threshold: the raw implausibility that
    this share of the fitting rows, all classes pooled, reaches; None or 0: no
    extreme level), ``shift_alpha`` (level of the covariate-shift test below which
    the calibration rows' counts are re-weighted to the batch's features; None or 0:
    never), ``max_shift_rows`` (rows of each side the domain classifier is fitted
    on),
    ``max_reference_rows`` (rows used to fit the model; a random subsample above),
    ``max_index_rows`` (reference rows in the kNN index), ``knn_max_rows``
    (larger batches are scored by the model alone, against the model-only
    calibration: a kNN search for every row of a million-row batch costs more
    than all other checks together, and such a batch's test has power to spare
    without it), ``holdout`` (0, the default: every reference row measures the
    clean flag rate, scored out of fold; else the share of the reference kept out
    of fitting to measure it), ``n_threads``
    (threads scoring rows with the models, and fitting them; None, the default: one
    for batches below ``parallel_rows`` rows, the cores this process may use above
    and for fitting the fold models side by side — each thread scores row blocks or
    fits a model with one OpenMP thread, so threads do not contend the way OpenMP
    teams do on a busy machine), ``seed``.
    """

    name = "label_consistency"
    screenable = True
    default_severity = "quarantine"
    description = "labels implausible for their features (out-of-fold model + kNN agreement)"

    def __init__(
        self,
        alpha: float = 0.01,
        row_rate: float = 0.01,
        test_rates: tuple[float, ...] = (0.01, 0.03, 0.1),
        extreme_rate: float | None = 0.003,
        shift_alpha: float | None = 0.01,
        max_shift_rows: int = 4_000,
        model: Model = "hgb",
        n_folds: int = 5,
        n_neighbors: int = 10,
        knn_weight: float = 0.5,
        max_reference_rows: int = 20_000,
        max_index_rows: int = 5_000,
        knn_max_rows: int = 50_000,
        holdout: float = 0.0,
        n_threads: int | None = None,
        parallel_rows: int = 100_000,
        seed: int = 0,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if not 0.0 < row_rate < 0.5:
            raise ValueError(f"row_rate must be in (0, 0.5), got {row_rate}")
        if not test_rates or not all(0.0 < r < 0.5 for r in test_rates):
            raise ValueError(f"test_rates must be rates in (0, 0.5), got {test_rates}")
        if extreme_rate is not None and not 0.0 <= extreme_rate < min(test_rates):
            raise ValueError(
                f"extreme_rate must be None or in [0, {min(test_rates)}), got {extreme_rate}"
            )
        if shift_alpha is not None and not 0.0 <= shift_alpha < 1.0:
            raise ValueError(f"shift_alpha must be None or in [0, 1), got {shift_alpha}")
        if max_shift_rows < 10:
            raise ValueError(f"max_shift_rows must be >= 10, got {max_shift_rows}")
        if model not in ("hgb", "logistic"):
            raise ValueError(f"model must be 'hgb' or 'logistic', got {model!r}")
        if n_folds < 2 or n_neighbors < 1:
            raise ValueError("n_folds must be >= 2 and n_neighbors >= 1")
        if not 0.0 <= knn_weight <= 1.0:
            raise ValueError(f"knn_weight must be in [0, 1], got {knn_weight}")
        if holdout and not 0.1 <= holdout <= 0.9:
            raise ValueError(f"holdout must be 0 or in [0.1, 0.9], got {holdout}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be >= 1 or None, got {n_threads}")
        self.alpha = alpha
        self.row_rate = row_rate
        self.test_rates = tuple(test_rates)
        self.extreme_rate = extreme_rate or None  # 0 (a config file has no None): off
        self.shift_alpha = shift_alpha or None
        self.max_shift_rows = max_shift_rows
        self.model = model
        self.n_folds = n_folds
        self.n_neighbors = n_neighbors
        self.knn_weight = knn_weight
        self.max_reference_rows = max_reference_rows
        self.max_index_rows = max_index_rows
        self.knn_max_rows = knn_max_rows
        self.holdout = holdout
        self.n_threads = n_threads
        self.parallel_rows = parallel_rows
        self.seed = seed

    # -- fitting -------------------------------------------------------------------

    def _new_model(self) -> Any:
        if self.model == "logistic":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(max_iter=1000)
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=100, max_leaf_nodes=15, early_stopping=False, random_state=self.seed
        )

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> Any:
        if np.unique(y).size < 2:  # a fold of a tiny reference may hold one class only
            return _ConstantModel(int(y[0]))
        return self._new_model().fit(x, y)

    def fit(self, reference: Table) -> Self:
        from sklearn.model_selection import KFold, StratifiedKFold

        rng = np.random.default_rng(self.seed)
        self.encoder_ = shared_encoder(reference)
        x_all = reference.encoded(self.encoder_)
        y_all = np.asarray(reference.labels, dtype=str)
        if len(y_all) > self.max_reference_rows:
            keep = np.sort(rng.choice(len(y_all), self.max_reference_rows, replace=False))
            x_all, y_all = x_all[keep], y_all[keep]
        self.classes_ = np.unique(y_all)
        self.n_reference_ = len(y_all)
        self.unjudgeable_: str | None = None
        if self.classes_.size < 2:
            self.unjudgeable_ = f"the reference has one class only ({self.classes_[0]!r})"
        elif x_all.shape[1] == 0:
            self.unjudgeable_ = "the reference has no features"
        if self.unjudgeable_:
            log.info("label_consistency cannot judge labels: %s", self.unjudgeable_)
            return self
        y_idx = np.searchsorted(self.classes_, y_all)
        # The clean flag rates come from rows scored exactly as a batch row is, by a
        # model that never saw them: then calibration and batch rows are exchangeable
        # and the exact test is valid. (Rates measured on rows that also trained the
        # models are biased low when identical rows form large groups, as in
        # low-cardinality data.) By default every reference row calibrates, scored by
        # the fold model fitted without it (cross-fitting); a batch row is scored by
        # one fold model too, so given the models it is exchangeable with that fold's
        # rows. A ``holdout`` keeps a share out of fitting instead.
        n_all = len(y_idx)
        holdout = (
            (rng.permutation(n_all) < round(self.holdout * n_all))
            if n_all >= 50 and self.holdout
            else None
        )
        fit_rows = np.ones(n_all, dtype=bool) if holdout is None else ~holdout
        x_fit, y_fit = x_all[fit_rows], y_idx[fit_rows]
        smallest = int(np.bincount(y_fit, minlength=len(self.classes_)).min())
        folds = min(self.n_folds, len(y_fit))
        if smallest >= folds:
            cv: Any = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        else:
            cv = KFold(folds, shuffle=True, random_state=self.seed)
        n_classes = len(self.classes_)
        proba = np.zeros((len(y_fit), n_classes))

        def fit_fold(split: tuple[np.ndarray, np.ndarray]) -> Any:
            train, test = split
            model = self._fit_model(x_fit[train], y_fit[train])
            proba[test] = _proba(model, x_fit[test], n_classes)
            return model

        # the fold models side by side, each on one thread (small fits)
        self.models_: list[Any] = map_threads(
            fit_fold, list(cv.split(x_fit, y_fit)), scoring_threads(self.n_threads, len(y_fit), 0)
        )
        self.hash_weights_ = np.asarray(rng.normal(size=x_all.shape[1]))  # batch row → fold model
        p_given = proba[np.arange(len(y_fit)), y_fit]
        # confident-learning thresholds: average out-of-fold self-confidence per class
        self.class_thresholds_ = np.array(
            [
                max(float(p_given[y_fit == j].mean()), 1e-6) if np.any(y_fit == j) else 1.0
                for j in range(n_classes)
            ]
        )
        # kNN index on (a subsample of) the fitting rows; they leave themselves out
        n_index = min(self.max_index_rows, len(y_fit))
        index_rows = np.sort(rng.choice(len(y_fit), n_index, replace=False))
        self.index_x_ = x_fit[index_rows]
        self.index_y_ = y_fit[index_rows]
        self.k_ = min(self.n_neighbors, max(1, n_index - 1))
        self._build_index()
        agree = self._knn_agreement(x_fit, y_fit, self_rows=index_rows)
        # calibration: per-class sorted out-of-fold raw scores of the fitting rows, with
        # kNN agreement and (for large batches) of the model alone
        raw_by_mode: dict[ScoreMode, np.ndarray] = {
            "knn": self._raw(p_given, y_fit, agree),
            "model": self._raw(p_given, y_fit, None),
        }
        self.reference_raw_ = {
            mode: [np.sort(raw[y_fit == j]) for j in range(n_classes)]
            for mode, raw in raw_by_mode.items()
        }
        # What a batch row is ranked against. Cross-fitted, a reference row is ranked
        # among the other rows of its label (leave-one-out), so a batch row is ranked
        # among as many: all but one random row of each label. Then both see a value
        # and m - 1 exchangeable others, and a row reaches a threshold with the same
        # chance either way. (Ranked among all m and themselves, the top reference row
        # of a 9-row class has percentile 0.94 and never reaches 0.99, while a batch row
        # above all 9 has 1.0: one in ten of the batch's rows of that class flagged
        # against none of the reference's.)
        cross_fitted = holdout is None
        drop = np.random.default_rng([self.seed, 3])
        self.calibration_raw_ = {
            mode: [_drop_one(r, drop) if cross_fitted else r for r in per_class]
            for mode, per_class in self.reference_raw_.items()
        }
        self.row_threshold_ = 1.0 - self.row_rate
        self.test_thresholds_ = np.array([1.0 - r for r in self.test_rates])
        # the extreme level: raw values beyond the top extreme_rate of all fitting rows
        # (all but one random row when cross-fitted; inf: no such level, see _levels)
        self.extreme_raw_ = {
            mode: float(
                np.quantile(
                    _drop_one(np.sort(raw), drop) if cross_fitted else raw,
                    1.0 - self.extreme_rate,
                )
            )
            if self.extreme_rate is not None and raw.size > cross_fitted
            else float("inf")
            for mode, raw in raw_by_mode.items()
        }
        # clean counts per test: rows (all, then each class if few) × levels
        self.test_groups_ = [None] + (
            list(range(n_classes)) if n_classes <= MAX_CLASS_TESTS else []
        )
        # the calibration rows and their levels, for re-weighting them to a shifted batch
        self.calibration_x_: np.ndarray | None = None
        self.calibration_y_: np.ndarray | None = None
        self.calibration_levels_: dict[ScoreMode, np.ndarray] = {}
        # each calibration row's per-class percentile and whether it is beyond the
        # extreme level's raw threshold
        scored_by_mode: dict[ScoreMode, tuple[np.ndarray, np.ndarray | None]] = {}
        if cross_fitted:  # the fitting rows, scored out of fold, ranked leave-one-out
            x_rate, y_rate = x_fit, y_fit
            for m, r in raw_by_mode.items():
                beyond = None
                if np.isfinite(self.extreme_raw_[m]):
                    beyond = r >= _loo_quantile(np.sort(r), r, 1.0 - float(self.extreme_rate or 0))
                scored_by_mode[m] = (self._calibrate(r, y_fit, m, fitting=True), beyond)
        else:
            x_rate, y_rate = x_all[holdout], y_idx[holdout]
            proba_h = self._predict(x_rate, y_rate)
            for m in raw_by_mode:
                held = self._finish(x_rate, y_rate, proba_h, m)
                scored_by_mode[m] = (held.scores, self._beyond(held.raw, m))
        if self.shift_alpha is not None and n_all >= 50:
            self.calibration_x_, self.calibration_y_ = x_rate, y_rate
            self.calibration_levels_ = {
                m: np.array(self._levels(scores, beyond), dtype=bool)
                for m, (scores, beyond) in scored_by_mode.items()
            }
        self.n_reference_ = len(y_rate)
        self.reference_rate_ = {
            m: float(np.mean(scores >= self.row_threshold_))
            for m, (scores, _) in scored_by_mode.items()
        }
        self.reference_test_counts_ = {
            m: np.array(
                [
                    [int(np.sum(_in_group(y_rate, g) & level)), int(np.sum(_in_group(y_rate, g)))]
                    for g in self.test_groups_
                    for level in self._levels(scores, beyond)
                ]
            )
            for m, (scores, beyond) in scored_by_mode.items()
        }
        log.debug(
            "label_consistency fitted: %d rows, %d classes, reference flag rate %.4f",
            n_all,
            n_classes,
            self.reference_rate_["knn"],
        )
        return self

    def _levels(self, scores: np.ndarray, beyond: np.ndarray | None) -> list[np.ndarray]:
        """Which rows reach each level of the batch test: the extreme level (the
        strictest threshold and a raw value ``beyond`` the extreme threshold; None:
        no extreme level), then each threshold: nested, the extreme level inside the
        strictest threshold."""
        thresholds = [scores >= t for t in self.test_thresholds_]
        if beyond is None:
            return thresholds
        strictest = thresholds[int(np.argmax(self.test_thresholds_))]
        return [strictest & beyond, *thresholds]

    def _beyond(self, raw: np.ndarray, mode: ScoreMode) -> np.ndarray | None:
        """Batch rows whose raw implausibility is beyond ``extreme_raw_`` (None: no
        extreme level)."""
        if not np.isfinite(self.extreme_raw_[mode]):
            return None
        return np.asarray(raw >= self.extreme_raw_[mode])

    def _score(self, x: np.ndarray, y_idx: np.ndarray, mode: ScoreMode) -> _Scores:
        """Score rows the models never saw: fold model by content hash, kNN agreement
        (mode ``"knn"``; ``"model"``: the model alone), calibration."""
        return self._finish(x, y_idx, self._predict(x, y_idx), mode)

    def _predict(self, x: np.ndarray, y_idx: np.ndarray) -> np.ndarray:
        """Class probabilities of each row from the fold model its content hash picks.

        Rows are scored in blocks (a block's rows stay in cache while every tree visits
        them), by ``n_threads`` threads on large batches; a row's probabilities do not
        depend on its block or thread.
        """
        n_classes = len(self.classes_)
        proba = np.zeros((len(y_idx), n_classes))
        fill_by_fold(
            proba,
            self.models_,
            content_folds(x, self.hash_weights_, len(self.models_), 0.618033988749895 * y_idx),
            lambda model, rows: _proba(model, x[rows], n_classes),
            PREDICT_BLOCK,
            scoring_threads(self.n_threads, len(y_idx), self.parallel_rows),
        )
        return proba

    def _finish(
        self, x: np.ndarray, y_idx: np.ndarray, proba: np.ndarray, mode: ScoreMode
    ) -> _Scores:
        p_given = proba[np.arange(len(y_idx)), y_idx]
        agree = self._knn_agreement(x, y_idx) if mode == "knn" else None
        raw = self._raw(p_given, y_idx, agree)
        scores = self._calibrate(raw, y_idx, mode)
        return _Scores(scores=scores, raw=raw, proba=proba, p_given=p_given, agree=agree)

    def _pooled_rank(self, raw: np.ndarray, mode: ScoreMode) -> np.ndarray:
        """Mid-rank percentile of each raw value among the fitting rows of every label:
        the row score. It keeps what the per-class percentiles drop, how rare a label
        is where the row sits, which is what ranks random flips on imbalanced data."""
        return _mid_rank(np.sort(np.concatenate(self.reference_raw_[mode])), raw)

    def _build_index(self) -> None:
        from sklearn.neighbors import NearestNeighbors

        # brute force: BLAS distance blocks beat trees at tabular widths (10–100 columns)
        self.index_ = NearestNeighbors(n_neighbors=self.k_ + 1, algorithm="brute").fit(
            self.index_x_
        )

    def _knn_agreement(
        self, x: np.ndarray, y_idx: np.ndarray, self_rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Share of the k nearest index rows carrying label ``y_idx`` (self excluded)."""
        if len(x) == 0:
            return np.zeros(0)
        _, nb = self.index_.kneighbors(x, n_neighbors=self.k_ + 1)
        keep = np.ones(nb.shape, dtype=bool)
        if self_rows is not None:  # reference rows in the index: leave themselves out
            pos = np.full(len(x), -1)
            pos[self_rows] = np.arange(len(self_rows))
            is_self = nb == pos[:, None]
            # drop self where present, else the farthest neighbour: k votes either way
            keep[:, -1] = is_self.any(axis=1)
            keep &= ~is_self
        else:
            keep[:, -1] = False
        same = (self.index_y_[nb] == y_idx[:, None]) & keep
        return same.sum(axis=1) / self.k_

    def _raw(self, p_given: np.ndarray, y_idx: np.ndarray, agree: np.ndarray | None) -> np.ndarray:
        model_part = np.minimum(1.0, p_given / self.class_thresholds_[y_idx])
        if agree is None:
            return 1.0 - model_part
        return 1.0 - (self.knn_weight * agree + (1.0 - self.knn_weight) * model_part)

    def _calibrate(
        self, raw: np.ndarray, y_idx: np.ndarray, mode: ScoreMode, *, fitting: bool = False
    ) -> np.ndarray:
        """Mid-rank percentile of each raw value among the calibration rows of its label
        (``calibration_raw_``); with ``fitting``, the values are the fitting rows' own,
        each ranked among the other fitting rows of its label (0 where it is the only
        one), as a batch row is among ``calibration_raw_``."""
        per_class = self.reference_raw_[mode] if fitting else self.calibration_raw_[mode]
        scores = np.zeros(len(raw))
        for j, ref in enumerate(per_class):
            rows = y_idx == j
            if rows.any():
                scores[rows] = _mid_rank(ref, raw[rows], leave_out=fitting)
        return scores

    # -- scanning ------------------------------------------------------------------

    def run(self, batch: Table) -> CheckResult:
        self._require_fitted("encoder_", "classes_")
        n = len(batch)
        if self.unjudgeable_:
            return self.result(
                "pass",
                f"cannot judge labels: {self.unjudgeable_}",
                row_scores=np.zeros(n),
                row_flags=np.zeros(n, dtype=bool),
                info={"judged": False},
            )
        x = batch.encoded(self.encoder_)
        y_idx = batch.label_codes(tuple(self.classes_.tolist()))
        known = y_idx >= 0
        y_idx = np.where(known, y_idx, 0)
        mode: ScoreMode = "knn" if n <= self.knn_max_rows else "model"
        scored = self._score(x, y_idx, mode)
        proba, agree = scored.proba, scored.agree
        p_given = np.where(known, scored.p_given, 0.0)
        scores = np.where(known, scored.scores, 1.0)
        row_scores = np.where(known, self._pooled_rank(scored.raw, mode), 1.0)
        flags = scores >= self.row_threshold_
        flagged = int(flags.sum())
        # one p-value per group (all rows, then each class): the smallest Fisher p over
        # the levels, calibrated for taking the minimum; then weighted Bonferroni
        # over groups: the all-rows test most of alpha, the per-class tests (there for
        # targeted flips) the rest
        levels = self._levels(scores, self._beyond(scored.raw, mode))
        n_levels = len(levels)
        n_class_groups = len(self.test_groups_) - 1
        class_share = CLASS_TEST_SHARE if n_class_groups else 0.0
        ref_counts = self.reference_test_counts_[mode]

        def batch_p(weights: np.ndarray | None) -> float:
            adjusted = []
            for i, g in enumerate(self.test_groups_):
                rows = _in_group(y_idx, g) & known
                ref = ref_counts[i * n_levels : (i + 1) * n_levels]
                ref_flagged, n_ref = ref[:, 0].tolist(), int(ref[0, 1])
                if weights is not None and self.calibration_y_ is not None:
                    ref_flagged, n_ref = _weighted_counts(
                        self.calibration_levels_[mode], _in_group(self.calibration_y_, g), weights
                    )
                p = min_fisher_pvalue(
                    [int(np.sum(level & rows)) for level in levels],
                    int(rows.sum()),
                    ref_flagged,
                    n_ref,
                )
                if g is None:
                    adjusted.append(p / (1.0 - class_share))
                else:
                    adjusted.append(p * n_class_groups / class_share)
            return min(1.0, min(adjusted))

        # A batch that fails is tested again against the calibration rows re-weighted to its
        # features, if they demonstrably differ: re-weighting can clear a batch, never
        # fail one, and a passing batch does not pay for the domain classifier.
        p_value = batch_p(None)
        shift_p, weights = None, None
        if p_value < self.alpha:
            shift_p, weights = self._shift_weights(x, np.flatnonzero(known))
            if weights is not None:
                p_value = batch_p(weights)
        status: Status = "fail" if p_value < self.alpha else "pass"
        rate = flagged / n if n else 0.0
        reasons = {}
        labels = batch.labels
        for pos in np.flatnonzero(flags)[:MAX_REASONS]:
            best = int(np.argmax(proba[pos]))
            neighbours = (
                "" if agree is None else f"kNN agreement {round(agree[pos] * self.k_)}/{self.k_}; "
            )
            reasons[int(pos)] = (
                f"label_consistency: label {str(labels[pos])!r} has probability {p_given[pos]:.2f} "
                f"({neighbours}model prefers {str(self.classes_[best])!r} at {proba[pos, best]:.2f})",
            )
        message = (
            f"{flagged} of {n} rows ({rate:.2%}) have implausible labels; "
            f"clean reference rate {self.reference_rate_[mode]:.2%}, p = {p_value:.3g}"
            + ("" if mode == "knn" else " (model only: batch above knn_max_rows)")
        )
        return self.result(
            status,
            message,
            statistic=rate,
            p_value=p_value,
            threshold=self.alpha,
            row_scores=row_scores,
            row_flags=flags,
            row_reasons=reasons,
            info={
                "judged": True,
                "flagged": flagged,
                "reference_rate": self.reference_rate_[mode],
                "knn": mode == "knn",
                "class_percentile_threshold": self.row_threshold_,
                "extreme_raw": (
                    self.extreme_raw_[mode] if np.isfinite(self.extreme_raw_[mode]) else None
                ),
                "class_thresholds": dict(
                    zip(self.classes_.tolist(), self.class_thresholds_.tolist(), strict=True)
                ),
                "model": self.model,
                "covariate_shift_p": shift_p,
                "calibration_effective_share": (
                    None if weights is None else effective_share(weights)
                ),
            },
        )

    def _shift_weights(
        self, x: np.ndarray, rows: np.ndarray
    ) -> tuple[float | None, np.ndarray | None]:
        """The covariate-shift test's p-value and, when it is below ``shift_alpha``,
        each calibration row's weight p(batch | x) / p(reference | x) (up to a constant).

        The domain classifier (``_shift.domain_shift``) tells at most
        ``max_shift_rows`` calibration rows from as many of the batch's ``rows``; its
        weights are truncated to an effective sample size of at least
        ``MIN_EFFECTIVE_SHARE`` of them (``_shift.shift_weights``). (None, None)
        without calibration rows (a reference below 50 rows) or with no varying feature.
        """
        if self.shift_alpha is None or self.calibration_x_ is None or len(rows) == 0:
            return None, None
        shift = domain_shift(self.calibration_x_, x, self.max_shift_rows, self.seed, rows=rows)
        if shift is None:
            return None, None
        if shift.p >= self.shift_alpha:
            return shift.p, None
        return shift.p, shift_weights(shift.log_odds(self.calibration_x_))


class _ConstantModel:
    """Stands in for a classifier trained on a single class."""

    def __init__(self, label: int) -> None:
        self.classes_ = np.array([label])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.ones((len(x), 1))


@dataclass(frozen=True)
class _Scores:
    scores: np.ndarray  # per-class percentile of raw in [0, 1] (flags, batch test)
    raw: np.ndarray  # raw implausibility, before the per-class calibration
    proba: np.ndarray  # class probabilities from the row's fold model
    p_given: np.ndarray  # probability of the row's own label
    agree: np.ndarray | None  # kNN label agreement in [0, 1] (None: model alone)


def _mid_rank(
    reference_sorted: np.ndarray, values: np.ndarray, *, leave_out: bool = False
) -> np.ndarray:
    """Mid-rank percentile in [0, 1] of each value among the sorted reference values
    (ties count half; 0 for an empty reference). ``leave_out``: each value is one of
    the reference's and is ranked among the others."""
    size = reference_sorted.size - leave_out
    if size <= 0:
        return np.zeros(len(values))
    below = np.searchsorted(reference_sorted, values, side="left")
    upto = np.searchsorted(reference_sorted, values, side="right") - leave_out
    return (below + upto) / (2.0 * size)


def _drop_one(values_sorted: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The sorted values without one drawn at random (values exchangeable: a random row)."""
    if values_sorted.size == 0:
        return values_sorted
    return np.delete(values_sorted, int(rng.integers(values_sorted.size)))


def _loo_quantile(values_sorted: np.ndarray, values: np.ndarray, q: float) -> np.ndarray:
    """For each of ``values`` (each one of ``values_sorted``), ``np.quantile`` (linear)
    at ``q`` of the sorted values without it: the others' order statistics are the
    sorted values with its position skipped (any one of tied values: the same)."""
    m = values_sorted.size
    if m < 2:
        return np.full(len(values), np.inf)
    own = np.searchsorted(values_sorted, values, side="left")  # its position
    h = q * (m - 2)
    lo = int(np.floor(h))
    hi = min(lo + 1, m - 2)

    def others(j: int) -> np.ndarray:  # the j-th order statistic of the others
        return np.where(j < own, values_sorted[j], values_sorted[min(j + 1, m - 1)])

    return others(lo) + (h - lo) * (others(hi) - others(lo))


def _in_group(y_idx: np.ndarray, group: int | None) -> np.ndarray:
    return np.ones(len(y_idx), dtype=bool) if group is None else y_idx == group


def _weighted_counts(
    levels: np.ndarray, rows: np.ndarray, weights: np.ndarray
) -> tuple[list[int], int]:
    """The calibration ``rows``' counts at each level (``levels``: levels × calibration rows)
    re-weighted: the weighted share at each level times the weights' effective
    sample size (Kish), both rounded. Nested levels stay nested."""
    w = weights[rows]
    if not w.size or w.max() <= 0:
        return [0] * len(levels), 0
    w = w / w.max()  # no underflow of the sums in a group far from the batch
    size = effective_share(w) * len(w)
    shares = levels[:, rows].astype(float) @ w / w.sum()
    return [round(size * float(s)) for s in shares], round(size)


def min_fisher_pvalue(
    flagged: list[int], n: int, ref_flagged: list[int], n_ref: int, draws: int = 20_000
) -> float:
    """P-value of the smallest one-sided Fisher p over nested row thresholds.

    ``flagged[t]`` batch rows (of ``n``) and ``ref_flagged[t]`` reference rows (of
    ``n_ref``) reach threshold ``t``; the thresholds are nested, so the counts are
    strongly dependent and Bonferroni over them is needlessly strict. Under the
    null (batch rows exchangeable with reference rows) the batch is a random
    ``n``-subset of the pooled rows: its counts per threshold band are
    multivariate hypergeometric given the pooled counts. The smallest Fisher p is
    calibrated against ``draws`` such subsets (seeded by the counts: the same
    batch gives the same p) and capped by Bonferroni, which it can only improve.
    """
    from scipy.stats import hypergeom

    k = len(flagged)
    if n == 0 or n_ref == 0 or k == 0:
        return 1.0
    batch = np.asarray(flagged, dtype=np.int64)
    pooled = batch + np.asarray(ref_flagged, dtype=np.int64)
    order = np.argsort(pooled, kind="stable")  # nested: the strictest threshold first
    batch, pooled = batch[order], pooled[order]
    total = n + n_ref

    def fisher(t: int, counts: np.ndarray) -> np.ndarray:
        """One-sided Fisher p of batch counts at threshold t (hypergeometric tail)."""
        values, back = np.unique(counts, return_inverse=True)
        return np.asarray(hypergeom.sf(values - 1, total, int(pooled[t]), n))[back]

    observed = min(float(fisher(t, batch[t : t + 1])[0]) for t in range(k))
    bonferroni = min(1.0, k * observed)
    if k == 1 or bonferroni >= 1.0:
        return max(0.0, bonferroni)
    colours = np.diff(np.r_[0, pooled, total])
    if np.any(colours < 0) or np.any(np.diff(batch) < 0):  # not nested: Bonferroni
        return bonferroni
    rng = np.random.default_rng([n, n_ref, *batch.tolist(), *pooled.tolist()])
    null = np.cumsum(rng.multivariate_hypergeometric(colours, n, size=draws)[:, :k], axis=1)
    null_min = np.min([fisher(t, null[:, t]) for t in range(k)], axis=0)
    hits = int(np.count_nonzero(null_min <= observed * (1.0 + 1e-9)))
    return min(bonferroni, (1.0 + hits) / (draws + 1.0))


def _proba(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities with one column per class (a fold may miss a rare class)."""
    proba = np.asarray(model.predict_proba(x))
    if proba.shape[1] == n_classes:
        return proba
    out = np.zeros((proba.shape[0], n_classes))
    out[:, np.asarray(model.classes_, dtype=np.int64)] = proba
    return out
