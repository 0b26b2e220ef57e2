"""Impact check (RONI-style): does training on the batch hurt a model on trusted data?

Reject On Negative Impact (Nelson et al., 2008), at batch granularity: the reference
is split once into a training part and a trusted holdout. ``fit`` trains a
baseline model on the training part; ``run`` trains the same model on the
training part plus the batch and compares the two on the holdout, row by row
(paired log-loss differences). The batch test is a one-sided paired t-test with a
confidence interval on the mean loss increase; it fails when the increase is
significant at ``alpha`` *and* at least ``min_effect`` nats, so a clean batch,
which can only make the model a little better or a little different, does not.

It retrains a model per batch, so it is the most expensive check: default
severity ``warn``, meant to be enabled explicitly, and it skips (passes with a
message) batches larger than ``max_batch_rows`` unless that is raised.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from sanitizer.checks._common import (
    one_thread,
    shared_encoder,
    split_indices,
    subsample,
)
from sanitizer.checks.base import Check, CheckResult, Status

if TYPE_CHECKING:
    from sanitizer.table import Table

log = logging.getLogger(__name__)

PROB_FLOOR = 1e-4


class ImpactCheck(Check):
    """Holdout log-loss of a model trained with vs. without the batch.

    Options: ``alpha``; ``min_effect`` (smallest mean loss increase, in nats, that
    fails); ``holdout_fraction`` (reference share kept as the trusted holdout);
    ``max_train_rows`` / ``max_holdout_rows`` (subsamples of the reference);
    ``max_batch_rows`` (larger batches are skipped); ``random_state``.
    """

    name = "impact"
    screenable = True
    default_severity = "warn"
    description = "RONI: a model trained with the batch does worse on a trusted holdout"

    def __init__(
        self,
        alpha: float = 0.01,
        min_effect: float = 0.005,
        holdout_fraction: float = 0.3,
        max_train_rows: int = 20_000,
        max_holdout_rows: int = 10_000,
        max_batch_rows: int = 50_000,
        random_state: int = 0,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if not 0.05 <= holdout_fraction <= 0.9:
            raise ValueError("holdout_fraction must be in [0.05, 0.9]")
        if min_effect < 0:
            raise ValueError("min_effect must be >= 0")
        self.alpha = alpha
        self.min_effect = min_effect
        self.holdout_fraction = holdout_fraction
        self.max_train_rows = max_train_rows
        self.max_holdout_rows = max_holdout_rows
        self.max_batch_rows = max_batch_rows
        self.random_state = random_state

    def fit(self, reference: Table) -> Self:
        self.encoder_ = shared_encoder(reference)
        self.classes_: tuple[str, ...] = reference.contract.label_classes
        x = reference.encoded(self.encoder_)
        y = reference.label_codes(self.classes_)
        train, holdout = split_indices(len(x), self.holdout_fraction, self.random_state)
        train = subsample(train, self.max_train_rows, self.random_state)
        holdout = subsample(holdout, self.max_holdout_rows, self.random_state + 1)
        self.train_x_, self.train_y_ = x[train], y[train]
        self.holdout_x_, self.holdout_y_ = x[holdout], y[holdout]
        self.baseline_loss_ = np.zeros(0)
        usable = (
            len(self.classes_) >= 2
            and x.shape[1] > 0
            and len(np.unique(self.train_y_)) == len(self.classes_)
            and len(holdout) >= 10
        )
        if usable:
            self.baseline_loss_ = self._holdout_loss(self.train_x_, self.train_y_)
        else:
            log.info("impact: one class, no features or too few rows; the check will pass")
        return self

    def _holdout_loss(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, max_leaf_nodes=15, random_state=self.random_state
        )
        with one_thread():
            model.fit(x, y)
            proba = model.predict_proba(self.holdout_x_)
        full = np.full((len(proba), len(self.classes_)), PROB_FLOOR)
        full[:, model.classes_.astype(np.int64)] = np.maximum(proba, PROB_FLOOR)
        full /= full.sum(axis=1, keepdims=True)
        return np.asarray(-np.log(full[np.arange(len(full)), self.holdout_y_]))

    def run(self, batch: Table) -> CheckResult:
        from scipy.stats import t as student_t

        self._require_fitted("baseline_loss_", "holdout_x_")
        n = len(batch)
        if not len(self.baseline_loss_):
            return self.result("pass", "no baseline model (one class or no features)")
        if n > self.max_batch_rows:
            return self.result(
                "pass",
                f"skipped: batch has {n} rows, more than max_batch_rows={self.max_batch_rows}",
                info={"skipped": True},
            )
        y = batch.label_codes(self.classes_)
        known = y >= 0
        x = np.vstack([self.train_x_, batch.encoded(self.encoder_)[known]])
        loss = self._holdout_loss(x, np.concatenate([self.train_y_, y[known]]))
        diff = loss - self.baseline_loss_
        m = len(diff)
        mean = float(diff.mean())
        se = float(diff.std(ddof=1) / np.sqrt(m)) if m > 1 else 0.0
        if se > 0:
            p = float(student_t.sf(mean / se, df=m - 1))
            half = float(student_t.ppf(1 - self.alpha, df=m - 1)) * se
        else:
            p = 1.0 if mean <= 0 else 0.0
            half = 0.0
        lower = mean - half
        failed = p < self.alpha and mean >= self.min_effect
        status: Status = "fail" if failed else "pass"
        message = (
            f"holdout log-loss {mean:+.4f} nats with the batch "
            f"(one-sided {1 - self.alpha:.0%} lower bound {lower:+.4f}; p={p:.2g}; "
            f"floor {self.min_effect} nats)"
        )
        info: dict[str, Any] = {
            "baseline_loss": float(self.baseline_loss_.mean()),
            "with_batch_loss": float(loss.mean()),
            "mean_increase": mean,
            "lower_bound": lower,
            "holdout_rows": m,
        }
        return self.result(
            status,
            message,
            statistic=mean,
            p_value=min(1.0, max(0.0, p)),
            threshold=self.min_effect,
            severity=self.default_severity,
            info=info,
        )
