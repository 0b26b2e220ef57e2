"""Covariate shift between trusted reference rows and a batch, and the reference's
re-weighting to the batch's features (shared by the label and backdoor checks).

A logistic domain classifier (L2, C = 1) tells reference rows from batch rows on each
varying feature's standardised value (clipped at ±5) and its reference-quantile bin
(one-hot, ``SHIFT_BINS``): an additive model that follows a tilt, a cut (a batch of
the rows above a median) and a heavy tail alike. Its odds p(batch | x) / p(reference
| x) re-weight the reference rows, so that counts over them estimate what the
reference would show with the batch's features: under a pure covariate shift
P(label | features) is unchanged and the re-weighted reference is a fair baseline.
The classifier sees features only, so relabelled rows cannot explain themselves away.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from sanitizer.checks._common import subsample

SHIFT_BINS = 8  # reference-quantile bins per feature in the domain classifier
MIN_EFFECTIVE_SHARE = 0.1  # re-weighted reference keeps at least this effective share


class ShiftDesign:
    """The domain classifier's design: per varying reference column, its standardised
    value clipped at ±5 and one-hot reference-quantile bins (the first bin dropped;
    none for a column of two values)."""

    def __init__(self, reference: np.ndarray) -> None:
        scale = reference.std(axis=0)
        self.columns = np.flatnonzero(scale > 0)
        self.center = reference.mean(axis=0)[self.columns]
        self.scale = scale[self.columns]
        inner = np.linspace(0.0, 1.0, SHIFT_BINS + 1)[1:-1]
        # a two-valued column (a one-hot category) is its own bin indicator
        self.edges = [
            np.unique(np.quantile(reference[:, j], inner))
            if np.unique(reference[:, j]).size > 2
            else np.zeros(0)
            for j in self.columns
        ]
        self.width = len(self.columns) + sum(len(e) for e in self.edges)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.width))
        values = x[:, self.columns]
        out[:, : len(self.columns)] = np.clip((values - self.center) / self.scale, -5.0, 5.0)
        at = len(self.columns)
        for j, edges in enumerate(self.edges):
            if len(edges):
                bins = np.searchsorted(edges, values[:, j], side="right")  # 0 .. len(edges)
                hit = bins > 0
                out[np.flatnonzero(hit), at + bins[hit] - 1] = 1.0
            at += len(edges)
        return out


@dataclass(frozen=True)
class DomainShift:
    """A fitted domain classifier: ``p`` its likelihood-ratio test's p-value against
    the intercept alone (chi-square, one degree of freedom per design column:
    conservative, as the penalty shrinks the statistic and the bins are collinear)."""

    p: float
    design: ShiftDesign
    coef: np.ndarray

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        """log p(batch | x) / p(reference | x) of rows ``x``, up to a constant."""
        return self.design(x) @ self.coef


def domain_shift(
    reference: np.ndarray,
    batch: np.ndarray,
    max_rows: int,
    seed: int,
    rows: np.ndarray | None = None,
) -> DomainShift | None:
    """Fit the domain classifier on at most ``max_rows`` rows of each side (of the
    batch, of its ``rows``; a subsample: no copy of a large batch); None with no
    varying reference column or no rows."""
    from scipy.stats import chi2
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    rows = np.arange(len(batch)) if rows is None else rows
    if not len(reference) or not len(rows):
        return None
    design = ShiftDesign(reference)
    if not design.width:
        return None
    pick_r = subsample(np.arange(len(reference)), max_rows, seed)
    pick_b = subsample(rows, max_rows, seed + 1)
    z = np.vstack([design(reference[pick_r]), design(batch[pick_b])])
    side = np.r_[np.zeros(len(pick_r)), np.ones(len(pick_b))]
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # a classifier stopped short only misses part of the shift: still valid
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=1.0, max_iter=200).fit(z, side)
    logit = clf.decision_function(z)
    fitted = -float(
        np.sum(np.logaddexp(0.0, -logit) * side + np.logaddexp(0.0, logit) * (1 - side))
    )
    share = float(side.mean())
    null = float(len(side) * (share * np.log(share) + (1 - share) * np.log(1 - share)))
    p = float(chi2.sf(max(0.0, 2.0 * (fitted - null)), z.shape[1]))
    return DomainShift(p=p, design=design, coef=np.asarray(clf.coef_[0], dtype=float))


def shift_weights(log_odds: np.ndarray, floor: float = MIN_EFFECTIVE_SHARE) -> np.ndarray:
    """Weights from log-odds, scaled to a maximum of 1 and truncated from above until
    their effective sample size is at least ``floor`` of the rows: a batch from a
    region the reference barely covers keeps a test with that many rows, less
    corrected, instead of none."""
    return truncated(np.exp(log_odds - log_odds.max()), floor)


def effective_share(w: np.ndarray) -> float:
    """Kish's effective sample size of weights ``w``, as a share of their number."""
    if not len(w) or w.max() <= 0:
        return 0.0
    w = w / w.max()  # no underflow of the squares
    return float(w.sum() ** 2 / (w**2).sum() / len(w))


def truncated(weights: np.ndarray, floor: float) -> np.ndarray:
    """``weights`` (scaled to a maximum of 1) capped from above at the largest cap
    whose effective sample size is at least ``floor`` of the rows (all weights equal,
    the smallest cap, always is)."""
    w = np.maximum(weights / weights.max(), 1e-300)  # none underflowed to zero
    if effective_share(w) >= floor:
        return w
    lo, hi = float(np.log(w.min())), 0.0  # log caps: lo (all equal) meets the floor
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if effective_share(np.minimum(w, np.exp(mid))) >= floor:
            lo = mid
        else:
            hi = mid
    capped = np.minimum(w, np.exp(lo))
    return capped / capped.max()
