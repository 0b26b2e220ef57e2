"""Backdoor check: trigger values that the batch ties to a label and the reference does not.

A tabular backdoor (e.g. Tabdoor, 2023) sets one or two features to a fixed,
rare-but-in-range value on a few percent of the rows and relabels them to a target
class; the clean-label variant puts the trigger on rows that already carry the
target label. Both leave the schema and the per-column ranges intact. Three
signals, all vectorised:

* **Point masses** (numeric features): a value repeated on many batch rows where
  the reference has a continuous density. For every distinct value, Fisher's exact
  test compares its batch count with its reference count (one-sided), and a finding
  also needs ``min_fold`` times the reference frequency (so ordinary discrete
  values under mild drift do not count). This catches the clean-label variant: the
  labels do not change but the fixed value cannot hide.
* **Label association** per cell (a categorical value, or a reference-quantile bin
  of a numeric feature): for each (cell, class), Fisher's exact test of the batch's
  share of that class in the cell against the reference's share in the same cell,
  after re-weighting the reference counts by the batch/reference label prior ratio
  outside the cell (a prior shift moves every cell alike and is the drift check's
  business), with a ``min_effect`` floor on the share difference.
* **Spectral signatures** (Tran et al., 2018), per class: the batch's class rows,
  whitened by the reference class covariance, projected on their top singular
  direction; a planted sub-population dominates that direction. Reported as a
  row-score component (capped below the score of rows in a significant cell) and,
  per class, the top eigenvalue over its Marchenko–Pastur null edge in ``info``.

Multiple testing: all Fisher tests are conditional on their margins, so Tarone's
refinement of Bonferroni applies — only tests whose smallest attainable p-value
could reach the level are counted (for a continuous column, only values that occur
at least twice in batch ∪ reference), which keeps the correction small without
giving up the family-wise guarantee. The batch p-value is the smallest p-value
times that count.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Self

import numpy as np

from sanitizer.checks._backdoor_stats import MAX_CELL_SHARE as MAX_CELL_SHARE
from sanitizer.checks._backdoor_stats import MAX_TRIGGER_FEATURES as MAX_TRIGGER_FEATURES
from sanitizer.checks._backdoor_stats import PRIOR_PSEUDO_ROWS as PRIOR_PSEUDO_ROWS
from sanitizer.checks._backdoor_stats import (
    _bin_edges,
    _cell_codes,
    _cell_counts,
    _duplicate_rows,
    _Finding,
    _finding_info,
    _hyper_max_pmf,
    _label_tests,
    _Lazy,
    _reason,
    _Tests,
    _whitening,
)
from sanitizer.checks._common import shared_encoder, tarone_count
from sanitizer.checks.base import Check, CheckResult, Status

if TYPE_CHECKING:
    from sanitizer.table import Table

log = logging.getLogger(__name__)

MAX_FINDINGS_IN_INFO = 20
MAX_CATEGORIES = 200
SPECTRAL_BLOCK = 65_536  # rows whitened at a time by the spectral signature


class BackdoorCheck(Check):
    """Trigger → label associations and point masses absent from the reference.

    Options: ``alpha``; ``n_bins`` (reference-quantile bins per numeric feature);
    ``min_rows`` (smallest number of batch rows a finding needs); ``min_fold``
    (point mass: batch frequency over the reference's, add-one smoothed);
    ``min_effect`` (label association: share difference); ``spectral`` (compute
    spectral-signature row scores); ``max_reference_rows`` (subsample kept);
    ``random_state``.
    """

    name = "backdoor"
    screenable = True
    default_severity = "quarantine"
    description = "trigger values tied to a label in the batch but not in the reference"

    def __init__(
        self,
        alpha: float = 0.01,
        n_bins: int = 50,
        min_rows: int = 2,
        min_fold: float = 5.0,
        min_effect: float = 0.1,
        spectral: bool = True,
        max_reference_rows: int = 200_000,
        random_state: int = 0,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if n_bins < 2:
            raise ValueError("n_bins must be >= 2")
        if min_rows < 2:
            raise ValueError("min_rows must be >= 2")
        self.alpha = alpha
        self.n_bins = n_bins
        self.min_rows = min_rows
        self.min_fold = min_fold
        self.min_effect = min_effect
        self.spectral = spectral
        self.max_reference_rows = max_reference_rows
        self.random_state = random_state

    # -- fitting -----------------------------------------------------------------

    def fit(self, reference: Table) -> Self:
        contract = reference.contract
        self.classes_: tuple[str, ...] = contract.label_classes
        n = len(reference)
        keep = np.arange(n)
        if n > self.max_reference_rows:
            rng = np.random.default_rng(self.random_state)
            keep = np.sort(rng.choice(n, self.max_reference_rows, replace=False))
        y = reference.label_codes(self.classes_)[keep]
        k = len(self.classes_)
        self.prior_counts_ = np.bincount(y, minlength=k).astype(float)
        self.numeric_: tuple[str, ...] = contract.numeric
        self.ref_sorted_: list[np.ndarray] = []
        self.edges_: list[np.ndarray] = []
        self.bin_counts_: list[np.ndarray] = []
        x = reference.numeric[keep]
        for j in range(x.shape[1]):
            missing = np.isnan(x[:, j])
            srt = np.sort(x[~missing, j])
            self.ref_sorted_.append(srt)
            edges = _bin_edges(srt, self.n_bins)
            self.edges_.append(edges)
            cells = np.where(missing, -1, np.searchsorted(edges, x[:, j]))
            self.bin_counts_.append(_cell_counts(cells, y, edges, k))
        self.categorical_: tuple[str, ...] = contract.categorical
        self.category_values_: list[tuple[str, ...]] = []
        self.category_counts_: list[np.ndarray] = []
        for cname in contract.categorical:
            series = reference.prepared[cname].iloc[keep]
            values = tuple(str(v) for v in series.value_counts().index[:MAX_CATEGORIES])
            self.category_values_.append(values)
            codes = reference.category_codes(cname, values)[keep]
            ok = codes >= 0
            counts = np.bincount(codes[ok] * k + y[ok], minlength=len(values) * k)
            self.category_counts_.append(counts.reshape(len(values), k).astype(float))
        self.encoder_ = shared_encoder(reference)
        self.whiten_: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if self.spectral and self.encoder_.n_features:
            enc = reference.encoded(self.encoder_)[keep]
            for c in range(k):
                rows = enc[y == c]
                if len(rows) > enc.shape[1] + 2:
                    self.whiten_[c] = _whitening(rows)
        return self

    # -- scanning ----------------------------------------------------------------

    def run(self, batch: Table) -> CheckResult:
        self._require_fitted("classes_", "ref_sorted_", "category_counts_", "whiten_")
        n = len(batch)
        y = batch.label_codes(self.classes_)
        tests: list[_Tests] = []
        columns = batch.numeric_columns  # contiguous float64 columns, no matrix copy
        for j, name in enumerate(self.numeric_):
            masses = self._point_masses(name, j, columns)
            tests.append(masses)
            col = columns[j]
            cells = _cell_codes(self.edges_[j], col)
            # Rows explained by a point mass do not also count in their bin's label
            # test: it would otherwise flag the bin's clean rows of the same label.
            for finding in masses.findings.values():
                cells[finding.member] = -1
            tests.append(self._label_tests(name, cells, y, self.bin_counts_[j], self._bin_names(j)))
        for name, values, counts in zip(
            self.categorical_, self.category_values_, self.category_counts_, strict=True
        ):
            codes = batch.category_codes(name, values)
            tests.append(self._label_tests(name, codes, y, counts, [f"== {v}" for v in values]))
        # Two families (point masses, label associations), each with half of alpha
        # and its own Tarone count, so the many label cells do not dilute the few
        # point-mass candidates.
        p_all = np.concatenate([t.p for t in tests]) if tests else np.zeros(0)
        effect_ok = np.concatenate([t.effect_ok for t in tests]) if tests else np.zeros(0, bool)
        adjusted = np.ones(len(p_all))
        counted: dict[str, int] = {}
        for kind in ("point_mass", "label"):
            in_family = (
                np.concatenate([np.full(len(t.p), t.kind == kind) for t in tests])
                if tests
                else np.zeros(0, bool)
            )
            pmin = np.concatenate([t.p_min for t in tests if t.kind == kind] or [np.zeros(0)])
            counted[kind] = tarone_count(pmin, self.alpha / 2)
            adjusted[in_family] = np.minimum(1.0, 2 * counted[kind] * p_all[in_family])
        n_tests = sum(counted.values())
        p_batch = float(adjusted[effect_ok].min()) if effect_ok.any() else 1.0

        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        reasons: dict[int, list[str]] = {}
        findings: list[_Finding] = []
        offset = 0
        for t in tests:
            for i, finding in t.findings.items():
                adj = adjusted[offset + i]
                rows = finding.rows(y)
                scores[rows] = np.maximum(scores[rows], 1.0 - adj)
                if adj < self.alpha:
                    f = finding.materialise(rows, float(p_all[offset + i]), self.classes_, y)
                    findings.append(f)
                    flags[rows] = True
                    text = _reason(f)
                    for r in rows:
                        reasons.setdefault(int(r), []).append(text)
            offset += len(t.p)
        spectral_info: dict[str, float] = {}
        if self.whiten_:
            spec, spectral_info = self._spectral(batch, y)
            # Spectral evidence alone ranks below any row of a significant finding.
            scores = np.maximum(scores, 0.5 * spec)
        scores = np.clip(scores, 0.0, 1.0)
        findings.sort(key=lambda f: f.p_value)
        status: Status = "fail" if p_batch < self.alpha else "pass"
        if findings:
            message = f"{len(findings)} suspected trigger(s); " + "; ".join(
                _reason(f).removeprefix("backdoor: ") for f in findings[:3]
            )
        else:
            message = f"no trigger-like value or value→label association ({n_tests} tests counted)"
        return self.result(
            status,
            message,
            statistic=float(len(findings)),
            p_value=min(1.0, max(0.0, p_batch)),
            threshold=self.alpha,
            row_scores=scores,
            row_flags=flags,
            row_reasons={r: tuple(v[:5]) for r, v in reasons.items()},
            severity=self.default_severity,
            info={
                "tests_counted": counted,
                "findings": [_finding_info(f) for f in findings[:MAX_FINDINGS_IN_INFO]],
                "spectral_top_eigenvalue_ratio": spectral_info,
            },
        )

    def _bin_names(self, j: int) -> list[str]:
        srt = self.ref_sorted_[j]
        edges = self.edges_[j]
        lo = np.concatenate([[srt[0] if len(srt) else -np.inf], edges])
        hi = np.concatenate([edges, [srt[-1] if len(srt) else np.inf]])
        return [f"in [{a:.4g}, {b:.4g}]" for a, b in zip(lo, hi, strict=True)]

    def _point_masses(self, name: str, j: int, columns: list[np.ndarray]) -> _Tests:
        from scipy.stats import hypergeom

        col = columns[j]
        vals = col[~np.isnan(col)]  # a copy: sorted in place
        vals.sort()
        n_b = len(vals)
        srt = self.ref_sorted_[j]
        m = len(srt)
        # Candidates: values repeated in the batch or also present in the reference
        # (a sort and two searches; no argsort of the whole batch).
        repeated = vals[1:][vals[1:] == vals[:-1]]
        pos = np.searchsorted(vals, srt)
        in_ref = (
            srt[(pos < n_b) & (vals[np.minimum(pos, max(n_b - 1, 0))] == srt)] if n_b else srt[:0]
        )
        cand_values = np.unique(np.concatenate([repeated, in_ref]))
        counts = np.searchsorted(vals, cand_values, side="right") - np.searchsorted(
            vals, cand_values, side="left"
        )
        ref_counts = np.searchsorted(srt, cand_values, side="right") - np.searchsorted(
            srt, cand_values, side="left"
        )
        total = counts + ref_counts
        cand = np.flatnonzero((total >= 2) & (counts >= 1))
        uniq = cand_values
        c, r, t = counts[cand], ref_counts[cand], total[cand]
        p_min = _hyper_max_pmf(np.full_like(t, n_b + m), t, np.full_like(t, n_b))
        fold = (c / max(n_b, 1)) / ((r + 1) / (m + 1))
        effect_ok = (c >= self.min_rows) & (fold >= self.min_fold)
        # Only tests that can become findings need their exact p-value.
        p = np.ones(len(cand))
        p[effect_ok] = hypergeom.sf(c[effect_ok] - 1, n_b + m, t[effect_ok], n_b)
        findings: dict[int, _Lazy] = {}
        for i in np.flatnonzero(effect_ok):
            u = cand[i]
            member = np.flatnonzero(col == uniq[u])
            if _duplicate_rows(np.column_stack([c[member] for c in columns])):
                # Whole-row copies are the duplicates check's finding, not a trigger.
                effect_ok[i] = False
                p[i] = 1.0
                continue
            findings[int(i)] = _Lazy(
                kind="point_mass",
                feature=name,
                cell=f"== {uniq[u]:.6g}",
                member=member,
                label=-1,
                ref_rows=int(r[i]),
                ref_share=self._bin_share(j, float(uniq[u])),
            )
        return _Tests("point_mass", p=p, p_min=p_min, effect_ok=effect_ok, findings=findings)

    def _label_tests(
        self,
        name: str,
        cells: np.ndarray,
        y: np.ndarray,
        ref_counts: np.ndarray,
        cell_names: list[str],
    ) -> _Tests:
        return _label_tests(name, cells, y, ref_counts, cell_names, self.min_rows, self.min_effect)

    def _bin_share(self, j: int, value: float) -> np.ndarray:
        counts = self.bin_counts_[j][int(np.searchsorted(self.edges_[j], value))]
        return (counts + 0.5) / (counts.sum() + 0.5 * len(counts))

    def _spectral(self, batch: Table, y: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """Per class: the top principal direction of the whitened class rows, and each
        row's squared projection on it (relative to the top eigenvalue).

        Whitening is linear, so the whitened moments are ``w.T @ M @ w`` of the
        moments ``M`` of the rows centred on the reference class mean: one pass over
        the encoded batch in contiguous row blocks collects those for every class,
        and the projections are one product of the batch with a vector per class.
        """
        from scipy.special import erf

        z_all = batch.encoded(self.encoder_)
        out = np.zeros(len(batch))
        info: dict[str, float] = {}
        classes = [c for c in self.whiten_ if np.count_nonzero(y == c) >= 3]
        if not classes:
            return out, info
        width = z_all.shape[1]
        count = dict.fromkeys(classes, 0)
        total = {c: np.zeros(width) for c in classes}
        outer = {c: np.zeros((width, width)) for c in classes}
        for start in range(0, len(z_all), SPECTRAL_BLOCK):
            z_block = z_all[start : start + SPECTRAL_BLOCK]
            y_block = y[start : start + SPECTRAL_BLOCK]
            for c in classes:
                d = z_block[y_block == c] - self.whiten_[c][0]
                count[c] += len(d)
                total[c] += d.sum(axis=0)
                outer[c] += d.T @ d
        directions, offsets, scales = [], [], []
        for c in classes:
            mean, w = self.whiten_[c]
            center = total[c] / count[c] @ w
            cov = w.T @ (outer[c] / count[c]) @ w - np.outer(center, center)
            evals, evecs = np.linalg.eigh(cov)
            top = evecs[:, -1]
            # ((z - mean) @ w - center) @ top == z @ (w @ top) - (mean @ w + center) @ top
            directions.append(w @ top)
            offsets.append(float((mean @ w + center) @ top))
            scales.append(max(float(evals[-1]), 1e-12))
            edge = (1.0 + np.sqrt(w.shape[1] / count[c])) ** 2
            info[self.classes_[c]] = float(evals[-1] / edge)
        projected = z_all @ np.column_stack(directions)
        for i, c in enumerate(classes):
            rows = y == c
            proj = (projected[rows, i] - offsets[i]) ** 2
            # chi-square(1) CDF of the projection scaled by the top eigenvalue
            out[rows] = erf(np.sqrt(proj / scales[i] / 2.0))
        return out, info
