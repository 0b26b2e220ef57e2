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
  labels do not change but the fixed value cannot hide. Its rows must lean to one
  label, though: some class holds more than half of them and at least its share
  of the value's reference bin. A trigger puts every row in the target class
  (clean-label too); a value that a covariate drift made common keeps its bin's
  labels (``digits``' strong drift: pixel 58 at 15 on 22 of 100 rows, 8 of them
  labelled 5 against the bin's 29%, no class a majority).
* **Label association** per cell (a categorical value, or a reference-quantile bin
  of a numeric feature): for each (cell, class), Zelen's exact test that the odds
  ratio of (in the cell, of the class) is larger in the batch than in the
  reference, conditional on both tables' margins. A shift of the label prior moves
  the class counts and not the odds ratio (it is the drift check's business), and
  neither did the strong covariate drift that fooled the earlier test (the
  reference's cell share re-weighted by a shrunk prior ratio); a relabelled cell
  cannot explain itself away, as the count outside the cell anchors the test. A
  ``min_effect`` floor applies to the cell's share of the class over the
  reference's (re-weighted by the prior ratio outside the cell). A covariate
  shift does move odds ratios: in a batch drawn where one feature is high, a
  correlated feature's bins hold more of the class the first one favours (a
  strong shift failed 4 of 4 clean 1,000-row batches). So when a batch fails,
  and a domain classifier tells its features from the reference's, the label
  associations are tested again against reference rows weighted by that
  classifier's odds (``_shifted_counts``); only a failure that survives counts.
* **Value pairs** (discrete numeric columns): a trigger usually sets two or more
  features, and where every value is common (a 1–5 rating, an integer code) the
  single values hide while their conjunction does not. For every pair of numeric
  columns with at most ``pair_max_values`` distinct reference values, each (value
  pair, label) cell's batch count is tested against its reference count as a point
  mass is (Fisher, one-sided, ``min_fold``): among the rows of that label where
  the batch holds a larger share of the label than the reference (a prior shift
  moves no share within a label), else among all rows. Both variants put every
  trigger row in the target class, so the trigger stands out against that class's
  reference rows with the pair, which are fewer than the pair's (a ``fair``
  trigger pair at 1,000 rows: 4.6 times the pair's reference frequency, about
  nine times its share of the target class).
* **Spectral signatures** (Tran et al., 2018), per class: the batch's class rows,
  whitened by the reference class covariance, projected on their top singular
  direction; a planted sub-population dominates that direction. Reported as a
  row-score component (capped below the score of rows in a significant cell) and,
  per class, the top eigenvalue over its Marchenko–Pastur null edge in ``info``.

Multiple testing: all the exact tests are conditional on their margins, so Tarone's
refinement of Bonferroni applies — only tests whose smallest attainable p-value
could reach the level are counted (for a continuous column, only values that occur
at least twice in batch ∪ reference; for point masses and value pairs, only those
whose margins allow a count that is also ``min_fold`` times the reference
frequency: a value a fifth of the reference holds can never be five times as
frequent in the batch), which keeps the correction small without
giving up the family-wise guarantee. Point masses get their own share of alpha
and count, a half, or a third where the reference has two discrete numeric
columns and value pairs are tested: few candidates, so the many label cells do not
dilute them. The label associations and the value pairs share the rest under one
count, so a table of hundreds of testable pairs and a few dozen label cells (the
held-out `randhie`) does not pay a third of the level for each: its 200-row
triggers, a pair cell at p ≈ 2.5e-6 among about 450 pair tests, were 0.003 with a
share each (over the check's 0.002) and are 0.0017–0.0019 pooled. The batch
p-value is the smallest p-value times its group's count over its group's share.
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
    _excess_tests,
    _Finding,
    _finding_info,
    _label_tests,
    _Lazy,
    _reason,
    _Tests,
    _value_shares,
    _whitening,
)
from sanitizer.checks._common import shared_encoder, subsample, tarone_count
from sanitizer.checks._shift import domain_shift, effective_share, shift_weights
from sanitizer.checks.base import Check, CheckResult, Status

if TYPE_CHECKING:
    from sanitizer.table import Table

log = logging.getLogger(__name__)

MAX_FINDINGS_IN_INFO = 20
MAX_CATEGORIES = 200
SPECTRAL_BLOCK = 65_536  # rows whitened at a time by the spectral signature
SHIFT_REFERENCE_ROWS = 10_000  # reference rows kept for re-weighting to a shifted batch


class BackdoorCheck(Check):
    """Trigger → label associations and point masses absent from the reference.

    Options: ``alpha``; ``n_bins`` (reference-quantile bins per numeric feature);
    ``min_rows`` (smallest number of batch rows a finding needs); ``min_fold``
    (point mass: batch frequency over the reference's, add-one smoothed);
    ``min_effect`` (label association: share difference); ``pairs`` (test value
    pairs of discrete numeric columns); ``pair_max_values`` (a numeric column is
    discrete with at most this many distinct reference values);
    ``max_pairs`` (with more column pairs than this the pair tests are off: their
    cost grows with the square of the columns); ``spectral`` (compute
    spectral-signature row scores); ``max_reference_rows`` (subsample kept);
    ``shift_alpha`` (level of the covariate-shift test below which a failing
    batch's label associations are tested again against the reference re-weighted
    to its features; None or 0: never); ``max_shift_rows`` (rows of each side the
    domain classifier is fitted on); ``random_state``.
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
        pairs: bool = True,
        pair_max_values: int = 32,
        max_pairs: int = 2016,
        spectral: bool = True,
        max_reference_rows: int = 200_000,
        shift_alpha: float | None = 0.01,
        max_shift_rows: int = 4_000,
        random_state: int = 0,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if n_bins < 2:
            raise ValueError("n_bins must be >= 2")
        if min_rows < 2:
            raise ValueError("min_rows must be >= 2")
        if pair_max_values < 2:
            raise ValueError(f"pair_max_values must be >= 2, got {pair_max_values!r}")
        if max_pairs < 0:
            raise ValueError(f"max_pairs must be >= 0, got {max_pairs!r}")
        if shift_alpha is not None and not 0.0 <= shift_alpha < 1.0:
            raise ValueError(f"shift_alpha must be None or in [0, 1), got {shift_alpha!r}")
        if max_shift_rows < 10:
            raise ValueError(f"max_shift_rows must be >= 10, got {max_shift_rows!r}")
        self.alpha = alpha
        self.n_bins = n_bins
        self.min_rows = min_rows
        self.min_fold = min_fold
        self.min_effect = min_effect
        self.pairs = pairs
        self.pair_max_values = pair_max_values
        self.max_pairs = max_pairs
        self.spectral = spectral
        self.max_reference_rows = max_reference_rows
        self.shift_alpha = shift_alpha or None
        self.max_shift_rows = max_shift_rows
        self.random_state = random_state

    # -- fitting -----------------------------------------------------------------

    def fit(self, reference: Table) -> Self:
        self.__dict__.pop("_value_shares", None)  # derived from the previous fit
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
        # the reference rows kept for re-weighting to a shifted batch: their encoded
        # features, their cell in every tested column, their labels
        shift = subsample(np.arange(len(keep)), SHIFT_REFERENCE_ROWS, self.random_state)
        shift_cells: list[np.ndarray] = []
        x = reference.numeric[keep]
        for j in range(x.shape[1]):
            missing = np.isnan(x[:, j])
            srt = np.sort(x[~missing, j])
            self.ref_sorted_.append(srt)
            edges = _bin_edges(srt, self.n_bins)
            self.edges_.append(edges)
            cells = np.where(missing, -1, np.searchsorted(edges, x[:, j]))
            self.bin_counts_.append(_cell_counts(cells, y, edges, k))
            shift_cells.append(cells[shift])
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
            shift_cells.append(codes[shift])
        self._fit_pairs(reference, keep)
        self.encoder_ = shared_encoder(reference)
        self.whiten_: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.shift_x_: np.ndarray | None = None
        self.shift_cells_ = np.zeros((len(shift), 0), dtype=np.int32)
        self.shift_y_ = y[shift].astype(np.int64)
        if self.encoder_.n_features and (self.spectral or self.shift_alpha is not None):
            enc = reference.encoded(self.encoder_)[keep]
            if self.shift_alpha is not None and shift_cells:
                self.shift_x_ = enc[shift]
                self.shift_cells_ = np.column_stack(shift_cells).astype(np.int32)
        if self.spectral and self.encoder_.n_features:
            for c in range(k):
                rows = enc[y == c]
                if len(rows) > enc.shape[1] + 2:
                    self.whiten_[c] = _whitening(rows)
        return self

    # -- scanning ----------------------------------------------------------------

    def run(self, batch: Table) -> CheckResult:
        self._require_fitted(
            "classes_", "ref_sorted_", "category_counts_", "pair_index_", "whiten_", "shift_x_"
        )
        n = len(batch)
        y = batch.label_codes(self.classes_)
        # The families (point masses, label associations, value pairs) and their
        # shares of alpha (``_groups``). Whether the pair family exists depends on the
        # reference only.
        families = ["point_mass", "label"] + (["pair"] if self.pair_index_.size else [])
        tests = self._tests(batch, y, families, self.bin_counts_ + self.category_counts_)
        adjusted, counted, p_batch = self._adjust(tests, families)
        shift_info: dict[str, float] = {}
        if p_batch < self.alpha:
            counts, shift_info = self._shifted_counts(batch)
            if counts is not None:
                tests = self._tests(batch, y, families, counts, reuse=tests)
                adjusted, counted, p_batch = self._adjust(tests, families)
        n_tests = sum(counted.values())
        p_all = np.concatenate([t.p for t in tests]) if tests else np.zeros(0)

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
                **shift_info,
            },
        )

    def _tests(
        self,
        batch: Table,
        y: np.ndarray,
        families: list[str],
        ref_counts: list[np.ndarray],
        reuse: list[_Tests] | None = None,
    ) -> list[_Tests]:
        """Every test of the batch: per numeric column its point masses and its bins'
        label associations, per categorical column its values' label associations
        (against ``ref_counts``, one (cells, classes) count table per column, numeric
        first), and the value pairs. ``reuse``: an earlier call's tests, whose point
        masses and value pairs do not depend on ``ref_counts`` and are kept."""
        kept = iter([t for t in reuse if t.kind != "label"] if reuse else [])
        tests: list[_Tests] = []
        columns = batch.numeric_columns  # contiguous float64 columns, no matrix copy
        for j, name in enumerate(self.numeric_):
            masses = next(kept) if reuse else self._point_masses(name, j, columns, y)
            tests.append(masses)
            cells = _cell_codes(self.edges_[j], columns[j])
            # Rows explained by a point mass do not also count in their bin's label
            # test: it would otherwise flag the bin's clean rows of the same label.
            for finding in masses.findings.values():
                cells[finding.member] = -1
            tests.append(self._label_tests(name, cells, y, ref_counts[j], self._bin_names(j)))
        offset = len(self.numeric_)
        for c, (name, values) in enumerate(
            zip(self.categorical_, self.category_values_, strict=True)
        ):
            codes = batch.category_codes(name, values)
            names = [f"== {v}" for v in values]
            tests.append(self._label_tests(name, codes, y, ref_counts[offset + c], names))
        if "pair" in families:
            share = next(w for g, w in _groups(families) if "pair" in g)
            tests.append(next(kept) if reuse else self._pair_tests(batch, share=share))
        return tests

    def _adjust(
        self, tests: list[_Tests], families: list[str]
    ) -> tuple[np.ndarray, dict[str, int], float]:
        """Each test's p-value adjusted (its group's Tarone count over its group's share
        of alpha, see ``_groups``), the tests counted per family, and the batch p-value
        (the smallest adjusted p with its effect)."""
        p_all = np.concatenate([t.p for t in tests]) if tests else np.zeros(0)
        effect_ok = np.concatenate([t.effect_ok for t in tests]) if tests else np.zeros(0, bool)
        p_min = np.concatenate([t.p_min for t in tests]) if tests else np.zeros(0)
        kind = np.concatenate([np.full(len(t.p), t.kind) for t in tests] or [np.zeros(0, str)])
        adjusted = np.ones(len(p_all))
        counted: dict[str, int] = {}
        for group, share in _groups(families):
            in_group = np.isin(kind, group)
            count = tarone_count(p_min[in_group], self.alpha * share)
            adjusted[in_group] = np.minimum(1.0, count / share * p_all[in_group])
            for family in group:
                can_reach = p_min[kind == family] <= self.alpha * share / count
                counted[family] = int(np.count_nonzero(can_reach))
        p_batch = float(adjusted[effect_ok].min()) if effect_ok.any() else 1.0
        return adjusted, counted, p_batch

    def _shifted_counts(self, batch: Table) -> tuple[list[np.ndarray] | None, dict[str, float]]:
        """Per tested column, the reference's (cell, class) counts re-weighted to the
        batch's features, if they demonstrably differ from the reference's.

        A covariate shift moves a column's label shares without any relabelling: a
        batch drawn where one feature is high holds, in every bin of a feature
        correlated with it, more of the class that feature favours, and outside any
        bin of the feature itself less of the other class. A domain classifier
        (``_shift.domain_shift``, additive in every feature) tells the kept
        reference rows from the batch's; where its likelihood-ratio test is below
        ``shift_alpha``, every column's counts come from the kept rows weighted by
        the classifier's odds, scaled to the weights' effective sample size (Kish).
        The classifier sees features only, and a weight that depends on a trigger's
        value is constant within the trigger's cell: the cell's reference rows keep
        their natural labels, so a relabelled cell cannot explain itself away.
        No counts (None) without a shift found; the info is empty without a test (off,
        or nothing to weight).
        """
        if self.shift_alpha is None or self.shift_x_ is None:
            return None, {}
        shift = domain_shift(
            self.shift_x_, batch.encoded(self.encoder_), self.max_shift_rows, self.random_state
        )
        if shift is None:
            return None, {}
        info = {"shift_p": shift.p}
        if shift.p >= self.shift_alpha:
            return None, info
        w = shift_weights(shift.log_odds(self.shift_x_))
        share = effective_share(w)
        scale = share * len(w) / w.sum()
        k = len(self.classes_)
        y_ref = self.shift_y_
        counts = []
        for col, ref in enumerate(self.bin_counts_ + self.category_counts_):
            cells = self.shift_cells_[:, col]
            ok = (cells >= 0) & (cells < len(ref)) & (y_ref >= 0)
            weighted = np.bincount(cells[ok] * k + y_ref[ok], weights=w[ok], minlength=ref.size)
            counts.append(weighted.reshape(ref.shape) * scale)
        info["reference_effective_share"] = share
        return counts, info

    def _fit_pairs(self, reference: Table, keep: np.ndarray) -> None:
        """The discrete columns, their reference values, and every pair's value counts.

        ``pair_columns_``: (name, numeric index, its distinct reference values).
        ``pair_keys_`` / ``pair_key_counts_``: the reference rows of every (value
        pair, label) cell that has any, sparse: sorted keys ``pair_offsets_[p] +
        cell * classes + label`` for column pair ``p`` of ``pair_index_`` and its
        row-major cell (at most one key per reference row and column pair: a small
        reference of many discrete columns leaves most cells empty).
        """
        self.pair_columns_: list[tuple[str, int, np.ndarray]] = []
        self.pair_index_ = np.zeros((0, 2), dtype=np.int64)
        self.pair_offsets_ = np.zeros(0, dtype=np.int64)
        self.pair_keys_ = np.zeros(0, dtype=np.int64)
        self.pair_key_counts_ = np.zeros(0, dtype=np.int32)
        if not self.pairs:
            return
        for j, name in enumerate(self.numeric_):
            values = np.unique(self.ref_sorted_[j])
            if 2 <= len(values) <= self.pair_max_values:
                self.pair_columns_.append((name, j, values))
        # Categorical columns stay out: their values are tested one by one for label
        # associations, and two of them (common in otherwise continuous tables) would
        # open a third family that takes a third of the level from the single-value
        # tests (2-row triggers at 100 rows: 4 of 4 → 1 of 4 on the synthetic sets).
        d = len(self.pair_columns_)
        if d < 2 or d * (d - 1) // 2 > self.max_pairs:
            if d >= 2:
                log.info("backdoor: %d discrete columns, too many pairs; pair tests off", d)
            self.pair_columns_ = []
            return
        codes = self._pair_codes(reference, keep)
        y = reference.label_codes(self.classes_)[keep]
        index = [(a, b) for a in range(d) for b in range(a + 1, d)]
        self.pair_index_ = np.asarray(index, dtype=np.int64)
        sizes = [self._pair_cells(a, b) * len(self.classes_) for a, b in index]
        self.pair_offsets_ = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        keys, counts = [], []
        for p, (a, b) in enumerate(index):  # one pair at a time: bounded memory
            cell_counts = np.bincount(self._pair_cell_keys(codes, y, a, b), minlength=sizes[p])
            held = np.flatnonzero(cell_counts)
            keys.append(self.pair_offsets_[p] + held)
            counts.append(cell_counts[held])
        self.pair_keys_ = np.concatenate(keys).astype(np.int64)  # sorted: offsets ascend
        self.pair_key_counts_ = np.concatenate(counts).astype(np.int32)  # row counts

    def _pair_codes(self, table: Table, rows: np.ndarray | None = None) -> list[np.ndarray]:
        """Each row's position among its discrete column's reference values (of the
        table's ``rows``, all by default); -1 for a missing value or one the reference
        does not have."""
        out = []
        columns = table.numeric_columns
        for _, j, values in self.pair_columns_:
            col = columns[j] if rows is None else columns[j][rows]
            pos = np.minimum(np.searchsorted(values, col), len(values) - 1)
            out.append(np.where(values[pos] == col, pos, -1))
        return out

    def _pair_cells(self, a: int, b: int) -> int:
        return len(self.pair_columns_[a][2]) * len(self.pair_columns_[b][2])

    def _pair_cell_keys(self, codes: list[np.ndarray], y: np.ndarray, a: int, b: int) -> np.ndarray:
        """The (value pair, label) cell, ``cell * classes + label`` with cells
        row-major, of each row with a known value in discrete columns ``a`` and ``b``
        and a known label."""
        ok = (codes[a] >= 0) & (codes[b] >= 0) & (y >= 0)
        cell = codes[a][ok] * len(self.pair_columns_[b][2]) + codes[b][ok]
        return cell * len(self.classes_) + y[ok]

    def _pair_reference(self, keys: np.ndarray) -> np.ndarray:
        """Reference rows of each global (value pair, label) key."""
        if not self.pair_keys_.size:
            return np.zeros(len(keys), dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.pair_keys_, keys), len(self.pair_keys_) - 1)
        return np.where(self.pair_keys_[pos] == keys, self.pair_key_counts_[pos], 0)

    def _pair_tests(self, batch: Table, share: float) -> _Tests:
        """Point-mass tests of every (value pair, label) cell of two discrete columns
        in the batch (within its label, or among all rows: see the module docstring).

        ``share``: the share of alpha the pair tests' group gets (``_groups``). Only
        cells whose p-value times the pairs' own Tarone count over ``share`` is below
        1 (the group's count, which ``run`` adjusts by, is at least as large), i.e.
        that can fail the batch or raise a row score, become findings: thousands of
        rare value pairs (64 pixel columns) repeat by chance, and each finding costs a
        pass over its rows.
        """

        n = len(batch)
        k = len(self.classes_)
        codes = self._pair_codes(batch)
        y = batch.label_codes(self.classes_)
        columns = batch.numeric_columns
        c_all, key_all = [], []
        for p_i, (a, b) in enumerate(self.pair_index_):
            keys = self._pair_cell_keys(codes, y, int(a), int(b))
            counts = np.bincount(keys, minlength=self._pair_cells(int(a), int(b)) * k)
            cells = np.flatnonzero(counts)
            c_all.append(counts[cells])
            key_all.append(self.pair_offsets_[p_i] + cells)
        c = np.concatenate(c_all) if c_all else np.zeros(0, dtype=np.int64)
        keys = np.concatenate(key_all) if key_all else np.zeros(0, dtype=np.int64)
        r = self._pair_reference(keys)
        testable = c + r >= 2
        c, r, keys = c[testable], r[testable], keys[testable]
        pair_of = np.searchsorted(self.pair_offsets_, keys, side="right") - 1
        label_of = (keys - self.pair_offsets_[pair_of]) % k
        # Within the label where the batch holds a larger share of it than the
        # reference (exact under a prior shift, which moves no share within a label);
        # else among all rows, which is conservative for a label the batch holds less
        # of, and does not let a covariate shift that empties a class concentrate its
        # remaining rows (fair, exp(z) on rate_marriage: 5.9 times within class 1,
        # 4.2 times among all rows).
        batch_rows = np.bincount(y[y >= 0], minlength=k)
        ref_rows = self.prior_counts_.astype(np.int64)
        within = batch_rows * ref_rows.sum() >= ref_rows * batch_rows.sum()
        margin_b = np.where(within, batch_rows, batch_rows.sum())[label_of]
        margin_r = np.where(within, ref_rows, ref_rows.sum())[label_of]
        p_min, effect_ok, p = _excess_tests(
            c, r, margin_b, margin_r, self.min_rows, self.min_fold, MAX_CELL_SHARE * n
        )
        count = tarone_count(p_min, self.alpha * share)
        findings: dict[int, _Lazy] = {}
        for i in np.flatnonzero(effect_ok & (p * count / share < 1.0)):
            p_i = int(pair_of[i])
            cell, label = divmod(int(keys[i] - self.pair_offsets_[p_i]), k)
            a, b = (int(v) for v in self.pair_index_[p_i])
            va, vb = divmod(cell, len(self.pair_columns_[b][2]))
            member = np.flatnonzero((codes[a] == va) & (codes[b] == vb))
            trigger = member[y[member] == label]
            if columns and self._copies(np.column_stack([col[trigger] for col in columns])):
                effect_ok[i] = False  # whole-row copies: the duplicates check's finding
                p[i] = 1.0
                continue
            ref = self._pair_reference(keys[i] - label + np.arange(k))
            findings[int(i)] = _Lazy(
                kind="pair",
                feature=f"{self.pair_columns_[a][0]} & {self.pair_columns_[b][0]}",
                cell=f"== ({self._pair_value(a, va)}, {self._pair_value(b, vb)})",
                member=member,
                label=label,
                ref_rows=int(ref.sum()),
                ref_share=(ref + 0.5) / (ref.sum() + 0.5 * k),
            )
        return _Tests("pair", p=p, p_min=p_min, effect_ok=effect_ok, findings=findings)

    def _pair_value(self, column: int, code: int) -> str:
        return f"{self.pair_columns_[column][2][code]:.6g}"

    def _bin_names(self, j: int) -> list[str]:
        srt = self.ref_sorted_[j]
        edges = self.edges_[j]
        lo = np.concatenate([[srt[0] if len(srt) else -np.inf], edges])
        hi = np.concatenate([edges, [srt[-1] if len(srt) else np.inf]])
        return [f"in [{a:.4g}, {b:.4g}]" for a, b in zip(lo, hi, strict=True)]

    def _point_masses(self, name: str, j: int, columns: list[np.ndarray], y: np.ndarray) -> _Tests:

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
        c, r = counts[cand], ref_counts[cand]
        p_min, effect_ok, p = _excess_tests(c, r, n_b, m, self.min_rows, self.min_fold)
        findings: dict[int, _Lazy] = {}
        for i in np.flatnonzero(effect_ok):
            u = cand[i]
            member = np.flatnonzero(col == uniq[u])
            if self._copies(np.column_stack([c[member] for c in columns])):
                # Whole-row copies are the duplicates check's finding, not a trigger.
                effect_ok[i] = False
                p[i] = 1.0
                continue
            ref_share = self._bin_share(j, float(uniq[u]))
            if not _leans_to_one_label(y[member], ref_share):
                # A value that drift made common carries its bin's labels; a trigger's
                # rows share one (both variants), the clean rows of the value (about
                # one in min_fold of the finding, or fewer) diluting it.
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
                ref_share=ref_share,
            )
        return _Tests("point_mass", p=p, p_min=p_min, effect_ok=effect_ok, findings=findings)

    def _copies(self, rows: np.ndarray) -> bool:
        """Whether ``rows`` (a finding's batch rows, every numeric column) are copies of
        one record rather than rows sharing a trigger, see ``_duplicate_rows``."""
        shares = self.__dict__.get("_value_shares")
        if shares is None:  # derived from the fitted state, not saved with it
            shares = [_value_shares(srt) for srt in self.ref_sorted_]
            self.__dict__["_value_shares"] = shares
        chance = np.array([float(np.sum(s ** len(rows))) for s in shares])
        return _duplicate_rows(rows, chance)

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


def _groups(families: list[str]) -> list[tuple[list[str], float]]:
    """The test families grouped, each group with its share of alpha: point masses
    alone with one family's share (a half, or a third with value pairs); the label
    associations and value pairs together with the rest, under one Tarone count."""
    rest = [f for f in families if f != "point_mass"]
    return [(["point_mass"], 1.0 / len(families)), (rest, 1.0 - 1.0 / len(families))]


def _leans_to_one_label(labels: np.ndarray, ref_share: np.ndarray) -> bool:
    """Whether a point mass's batch rows lean to one label: some class holds more than
    half of them and at least its share ``ref_share`` of the value's reference bin. A
    trigger puts all its rows in the target class (clean-label too), and the clean
    rows that happen to hold the value, about one in ``min_fold`` of the finding or
    fewer, keep the bin's shares: the target's share stays above both. A value that
    covariate drift made common keeps its bin's shares too, which in more than two
    classes leaves none with a majority (``digits``: 8 of 22 rows labelled 5)."""
    labels = labels[labels >= 0]
    if not len(labels):
        return False
    share = np.bincount(labels, minlength=len(ref_share))[: len(ref_share)] / len(labels)
    return bool(np.any((share > 0.5) & (share >= ref_share)))
