"""Duplicates: replicated records, conflicting labels on twins, replication bursts.

The Truth Serum attack (Tramèr et al., CCS 2022) inserts a few copies of a target
record with a wrong label. Its signature is structural, not distributional:

- **conflict** — a batch row whose twins (identical or near-identical features) in
  the reference / accepted history all carry other labels than it does;
- **burst** — a feature vector (with its label) repeated in the batch far more
  often than the reference and history make plausible.

Twins are rows whose encoded features (robust-scaled numerics, one-hot
categoricals) differ by at most ``tolerance`` in every coordinate (Chebyshev
distance; categories must match), directly or through one intermediate row
(jittered copies are each close to their source record, not always to each
other). Rows are first grouped by exact vector (a hash
of the rounded encoding), then near twins are found by a grid search on the
distinct vectors only, so low-cardinality data with thousands of identical rows
stays cheap.

Low-cardinality data has natural duplicates and natural conflicts, so nothing is
judged against zero: every rate comes from the comparison set itself (reference +
accepted history), leave-one-out, and is recomputed when history is added:

- conflicts: the batch's count of conflicting rows against the comparison set's
  own leave-one-out count (Fisher's exact test, one-sided);
- bursts of vectors never seen with that label: same-label twin pairs inside the
  batch against the comparison set's own (both Poisson at one rate per pair of rows:
  given their sum, the batch's count is binomial with its share of row pairs);
- bursts: for each (vector, label) twin cell, seen in the comparison set or not,
  the batch count given the cell's pooled count (hypergeometric: a record copied
  ``r`` times into the batch and never seen with that label has p = C(n, r) /
  C(n + m, r)), with Tarone's correction: only cells large enough to reach
  significance count as tests, so a table full of natural twin pairs does not
  dilute a burst of seven copies;
- the burst sum: several targets copied a few times each, on a table of codes whose
  copy cells also hold natural rows, where no cell alone survives that correction:
  the truncated product of the exact copy cells' tails (see ``_BurstSum``).

The batch p-value is the weighted Bonferroni minimum of the four (0.2 of the level
for each single test, 0.4 for the burst sum); when that does not reject, it is
calibrated by random splits of the pooled twin cells (the batch as a random subset
of batch + comparison set), which does not pay several times for replicas that
both conflict and burst (see ``_exchangeable_pvalue``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np

from sanitizer.checks._common import run_tasks, scoring_threads, shared_encoder, tarone_count
from sanitizer.checks._shift import domain_shift
from sanitizer.checks.base import Check, CheckResult, Status

if TYPE_CHECKING:
    from sanitizer.table import Table

log = logging.getLogger(__name__)

MAX_REASONS = 1000
DECIMALS = 9  # exact-duplicate grouping: encoded values equal to 9 decimals
GRID_DIMS = (4, 6)  # coordinates of the candidate grid: a first try, then a finer one
CANDIDATE_FACTOR = 5.0  # grid candidates allowed per near pair before a finer grid
SEARCH_CHUNK = 20_000  # candidate rows verified per step (bounds memory)
NULL_HITS = 100  # calibration draws stop at this many null statistics as extreme
NULL_CHUNK_CELLS = 400_000  # draws x twin cells evaluated per step (bounds memory)
NULL_MAX_WORK = 10_000_000  # draws x twin cells beyond which Bonferroni stands alone
SUM_TAU = 0.01  # a copy cell below this p adds log(SUM_TAU / p) to the burst sum
SUM_SHARE = 0.4  # the burst sum's share of the level; the three single tests split the rest
SINGLE_SHARE = (1.0 - SUM_SHARE) / 3.0
SUM_LAMBDAS = np.linspace(0.05, 0.95, 19)  # Chernoff exponents tried for its nominal p
SUM_STEP = 0.01  # the stop-loss bound's grid: each cell's weight rounded up to it
SUM_REACH = 30.0  # the grid's end: a sum beyond it gets the bound there (or Chernoff's)


class DuplicatesCheck(Check):
    """Exact/near duplicates and label conflicts within the batch and against history.

    Options: ``alpha`` (batch test level), ``row_alpha`` (row-level p-value below
    which a row is flagged), ``tolerance`` (largest per-coordinate difference of two
    twins, in robust standard deviations; 0 = exact duplicates only),
    ``max_reference_rows`` and ``max_history_rows`` (size of the comparison set;
    the oldest history is dropped first), ``max_pairs_per_vector`` (near-twin search
    is abandoned for exact matching when the data is so dense at this tolerance
    that vectors average more twins than this), ``n_threads`` (threads searching the
    grid; None, the default: one below ``parallel_rows`` rows, the cores this process
    may use above), ``shift_alpha`` (level of the covariate-shift test below which a
    batch that fails by the burst sum alone is tested again against the shift, see
    ``_shifted_sum``; None or 0: never), ``max_shift_rows`` (rows of each side the
    domain classifier is fitted on), ``seed``.
    """

    name = "duplicates"
    screenable = True
    default_severity = "quarantine"
    description = "replicated rows, twins with conflicting labels, replication bursts"

    def __init__(
        self,
        alpha: float = 0.01,
        row_alpha: float = 0.001,
        tolerance: float = 0.05,
        max_reference_rows: int = 100_000,
        max_history_rows: int = 200_000,
        max_pairs_per_vector: float = 20.0,
        draws: int = 100_000,
        n_threads: int | None = None,
        parallel_rows: int = 100_000,
        shift_alpha: float | None = 0.01,
        max_shift_rows: int = 4_000,
        seed: int = 0,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if not 0.0 < row_alpha < 1.0:
            raise ValueError(f"row_alpha must be in (0, 1), got {row_alpha}")
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be >= 1 or None, got {n_threads}")
        if draws < 0:
            raise ValueError(f"draws must be >= 0, got {draws}")
        if shift_alpha is not None and not 0.0 <= shift_alpha < 1.0:
            raise ValueError(f"shift_alpha must be None or in [0, 1), got {shift_alpha!r}")
        if max_shift_rows < 10:
            raise ValueError(f"max_shift_rows must be >= 10, got {max_shift_rows!r}")
        self.alpha = alpha
        self.row_alpha = row_alpha
        self.tolerance = tolerance
        self.max_reference_rows = max_reference_rows
        self.max_history_rows = max_history_rows
        self.max_pairs_per_vector = max_pairs_per_vector
        self.draws = draws
        self.n_threads = n_threads
        self.parallel_rows = parallel_rows
        self.shift_alpha = shift_alpha or None
        self.max_shift_rows = max_shift_rows
        self.seed = seed

    # -- fitting and history ----------------------------------------------------------

    def fit(self, reference: Table) -> Self:
        rng = np.random.default_rng(self.seed)
        self.encoder_ = shared_encoder(reference)
        x = reference.encoded(self.encoder_)
        labels = np.asarray(reference.labels, dtype=str)
        if len(labels) > self.max_reference_rows:
            keep = np.sort(rng.choice(len(labels), self.max_reference_rows, replace=False))
            x, labels = x[keep], labels[keep]
        self.classes_ = np.unique(labels)
        self.reference_x_ = x
        self.reference_y_ = np.searchsorted(self.classes_, labels)
        self.history_x_ = np.zeros((0, x.shape[1]))
        self.history_y_ = np.zeros(0, dtype=np.int64)
        self._calibrate()
        return self

    def add_history(self, table: Table) -> None:
        """Add accepted rows (features and labels) to what batches are compared with."""
        self._require_fitted("encoder_", "classes_")
        labels = np.asarray(table.labels, dtype=str)
        y = np.searchsorted(self.classes_, labels)
        known = (y < len(self.classes_)) & (
            self.classes_[np.minimum(y, len(self.classes_) - 1)] == labels
        )
        if not known.all():  # a label the reference never had cannot be compared
            log.warning("duplicates: %d history rows with unknown labels skipped", (~known).sum())
        x = table.encoded(self.encoder_)[known]
        self.history_x_ = np.vstack([self.history_x_, x])[-self.max_history_rows :]
        self.history_y_ = np.concatenate([self.history_y_, y[known]])[-self.max_history_rows :]
        self._calibrate()

    def _calibrate(self) -> None:
        """Leave-one-out conflict and twin rates of the comparison set."""
        y = np.concatenate([self.reference_y_, self.history_y_])
        m = len(y)
        counts = self._twin_counts([self.reference_x_, self.history_x_], y, np.zeros(m, bool))
        others = counts.comp_total - 1
        others_same = counts.comp_same - 1
        self.n_comparison_ = m
        conflicting = (others >= 1) & (others_same == 0)
        self.comparison_conflicts_ = int(np.sum(conflicting))
        self.conflict_clusters_ = _clusters(counts, conflicting)
        self.comparison_twin_pairs_ = float(others_same.sum()) / 2.0
        pairs = m * (m - 1) / 2.0
        # same-label twin probability of a random pair (add-one: never exactly zero)
        self.pair_rate_ = (self.comparison_twin_pairs_ + 1.0) / (pairs + 1.0)
        self.conflict_rate_ = (self.comparison_conflicts_ + 1.0) / (m + 1.0)
        self.near_matching_ = counts.near
        log.debug(
            "duplicates calibrated on %d rows: %d conflicts, %.0f twin pairs, near=%s",
            m,
            self.comparison_conflicts_,
            self.comparison_twin_pairs_,
            counts.near,
        )

    # -- twin counting -------------------------------------------------------------

    def _twin_counts(self, parts: list[np.ndarray], y: np.ndarray, is_batch: np.ndarray) -> _Counts:
        """For each row of the stacked ``parts``: twins (itself included) in the comparison
        part and the batch part, in total and with the row's own label."""
        n_labels = len(self.classes_)
        rounded = _Rounded(parts)
        if rounded.width == 0:  # no features: every row is the same vector
            first, inv = np.zeros(min(1, len(y)), dtype=np.int64), np.zeros(len(y), np.int64)
        else:
            first, inv = _distinct_rows(rounded, self.seed)
        n_unique = len(first)
        cell = inv * n_labels + y
        size = n_unique * n_labels
        comp = np.bincount(cell[~is_batch], minlength=size).reshape(n_unique, n_labels)
        batch = np.bincount(cell[is_batch], minlength=size).reshape(n_unique, n_labels)
        own_comp, own_batch = comp, batch
        adjacency = None
        linked = comp  # comparison twins through comparison rows only, see below
        if self.tolerance > 0 and n_unique > 1 and rounded.width > 0:
            direct = self._near_pairs(rounded, first)
            if direct is not None:
                # two hops: jittered copies of one record are each close to the record
                # but not always to each other; the record links them
                adjacency = (direct @ direct).astype(bool).astype(np.float64)
                comp = np.asarray(adjacency @ own_comp)
                batch = np.asarray(adjacency @ own_batch)
                linked = comp
                if is_batch.any():
                    # A batch row's comparison twins as the comparison set's own rows
                    # find theirs (its leave-one-out rate): through comparison rows.
                    # Through batch rows too, a clean 1,000-row batch beside a 600-row
                    # reference of rounded amounts had 10-15% more conflicts.
                    from scipy import sparse

                    in_comp = sparse.diags((own_comp.sum(axis=1) > 0).astype(np.float64))
                    hops = (direct + direct @ in_comp @ direct).astype(bool).astype(np.float64)
                    linked = np.asarray(hops @ own_comp)
        return _Counts(
            unique=inv,
            conflict_total=linked.sum(axis=1)[inv],
            conflict_same=linked[inv, y],
            comp_total=comp.sum(axis=1)[inv],
            comp_same=comp[inv, y],
            batch_total=batch.sum(axis=1)[inv],
            batch_same=batch[inv, y],
            comp_by_label=comp,
            batch_by_label=batch,
            own_comp=own_comp,
            own_batch=own_batch,
            adjacency=adjacency,
        )

    def _near_pairs(self, rows: _Rounded, distinct: np.ndarray) -> Any:
        """Sparse 0/1 matrix of the distinct vectors ``rows[distinct]`` within ``tolerance``
        (diagonal included),
        or None when the data is too dense for near matching at this tolerance.

        Candidates come from a grid of cell width ``tolerance`` on a few of the most
        varied coordinates: twins differ by at most one cell in each of them, so no twin
        is missed, and each candidate is verified on all coordinates. Linear in the
        number of vectors, unlike a tree search over 20+ dimensions. A grid too coarse
        for the data (too many candidates) is refined with more coordinates.
        """
        from scipy import sparse

        n, d = len(distinct), rows.width
        limit = self.max_pairs_per_vector * n
        sample = rows.take(distinct[:: max(1, n // 2000)])
        varied = np.argsort([-np.unique(sample[:, j]).size for j in range(d)], kind="stable")
        pairs = None
        for n_dims in sorted({min(d, GRID_DIMS[0]), min(d, GRID_DIMS[1])}):
            pairs = self._grid_pairs(rows, varied[:n_dims], CANDIDATE_FACTOR * limit, distinct)
            if pairs is not None:
                break
        if pairs is None or len(pairs[0]) > limit:
            log.info(
                "duplicates: too many near pairs among %d vectors at tolerance %g; "
                "falling back to exact matching",
                n,
                self.tolerance,
            )
            return None
        first, second = pairs
        return sparse.csr_matrix((np.ones(len(second)), (first, second)), shape=(n, n))

    def _grid_pairs(
        self,
        vectors: _Rounded,
        dims: np.ndarray,
        max_candidates: float,
        select: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Ordered index pairs (both directions, diagonal included) of ``vectors[select]``
        (default: all) within ``tolerance`` on all coordinates, with candidates from a
        grid on ``dims``; None once the grid yields more than ``max_candidates``."""
        from itertools import product

        pick = np.arange(vectors.n) if select is None else select
        n = len(pick)
        cells = np.floor(vectors.take(pick, dims) / self.tolerance).astype(np.int64)
        # candidates are verified one coordinate at a time, the grid's own last: they
        # are at most a cell apart there, while most fail on the first other coordinate
        check = [j for j in range(vectors.width) if j not in set(dims.tolist())] + list(dims)
        salt = np.random.default_rng(self.seed).integers(1, 2**62, size=len(dims)) | 1
        # A linear hash of each cell (wrapping): a collision only adds candidates, which
        # are verified, and key(cell + offset) = key(cell) + key(offset), so the keys of
        # a neighbouring cell come out sorted and the searches stay cache friendly.
        own = _cell_key(cells, salt)
        order = np.argsort(own, kind="stable")
        keys = own[order]
        # the same cell: every pair inside each run of equal keys; then half of the
        # neighbouring cells, so that each pair is found once
        run_start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        run_end = np.repeat(np.r_[run_start[1:], n], np.diff(np.r_[run_start, n]))
        offsets = [o for o in product((-1, 0, 1), repeat=len(dims)) if o > (0,) * len(dims)]
        found: list[list[np.ndarray]] = [[] for _ in range(len(offsets) + 1)]
        total = [0]
        lock = threading.Lock()

        def probe(slot: int, offset: tuple[int, ...] | None) -> Callable[[], None]:
            def task() -> None:
                if total[0] > max_candidates:
                    return  # over budget already: the caller falls back
                if offset is None:
                    where, first = np.arange(n), np.arange(n) + 1
                    counts = run_end - np.arange(n) - 1
                else:
                    with np.errstate(over="ignore"):
                        shifted = keys + _cell_key(np.array([offset]), salt)[0]
                    lo = np.minimum(np.searchsorted(keys, shifted), n - 1)
                    counts = np.where(keys[lo] == shifted, run_end[lo] - lo, 0)
                    where = np.flatnonzero(counts)
                    first, counts = lo[where], counts[where]
                with lock:
                    total[0] += int(counts.sum())
                    if total[0] > max_candidates:
                        return
                for start in range(0, len(where), SEARCH_CHUNK):  # bounded memory per step
                    span = slice(start, start + SEARCH_CHUNK)
                    if not counts[span].any():
                        continue
                    rows = np.repeat(where[span], counts[span])
                    ends = np.cumsum(counts[span])
                    cols = np.arange(len(rows)) + np.repeat(
                        first[span] - ends + counts[span], counts[span]
                    )
                    rows, cols = order[rows], order[cols]
                    keep = vectors.within(pick[rows], pick[cols], self.tolerance + 1e-12, check)
                    found[slot] += [rows[keep], cols[keep]]

            return task

        # numpy's searches and gathers release the GIL: the offsets run side by side
        tasks = [probe(i, o) for i, o in enumerate([None, *offsets])]
        run_tasks(tasks, scoring_threads(self.n_threads, n, self.parallel_rows))
        if total[0] > max_candidates:
            return None
        pairs = [p for slot in found for p in slot]
        found_rows = [np.arange(n), *pairs[0::2], *pairs[1::2]]
        found_cols = [np.arange(n), *pairs[1::2], *pairs[0::2]]
        return np.concatenate(found_rows), np.concatenate(found_cols)

    # -- scanning --------------------------------------------------------------------

    def run(self, batch: Table) -> CheckResult:
        from scipy.stats import binom, fisher_exact, poisson

        self._require_fitted("encoder_", "classes_", "pair_rate_")
        n = len(batch)
        y = batch.label_codes(tuple(self.classes_.tolist()))  # -1: a label never seen
        known = y >= 0
        y = np.where(known, y, 0)
        comp_y = np.concatenate([self.reference_y_, self.history_y_])
        m = len(comp_y)
        parts = [self.reference_x_, self.history_x_, batch.encoded(self.encoder_)]
        is_batch = np.concatenate([np.zeros(m, dtype=bool), np.ones(n, dtype=bool)])
        counts = self._twin_counts(parts, np.concatenate([comp_y, y]), is_batch)
        tail = slice(m, m + n)
        comp_total, comp_same = counts.comp_total[tail], counts.comp_same[tail]
        batch_total, batch_same = counts.batch_total[tail], counts.batch_same[tail]
        unique = counts.unique[tail]

        # conflict: twins in the comparison set, none with this row's label
        linked_total, linked_same = counts.conflict_total[tail], counts.conflict_same[tail]
        conflict = known & (linked_total >= 1) & (linked_same == 0)
        n_conflict = int(conflict.sum())
        # The comparison set's conflicts come in clusters (a twin pair with two labels
        # is two conflicting rows), so its count varies more than a binomial count of
        # rows: it enters the test as its clusters among m / (rows per cluster) rows.
        # (Two 600-row references whose pairs came out few by chance: 3 of 4 and 2 of 4
        # clean 1,000-row batches failed counted by rows, 2 and 1 by clusters; the
        # count varies more still, see benchmarks/clean_batches.py.)
        clusters = self.conflict_clusters_
        effective_m = round(m * clusters / self.comparison_conflicts_) if clusters else m
        table = [[n_conflict, n - n_conflict], [clusters, effective_m - clusters]]
        p_conflict = float(fisher_exact(table, alternative="greater")[1]) if m else 1.0

        # bursts of vectors never seen with this label: twin pairs vs the comparison set's
        unseen = known & (comp_same == 0) & (batch_same >= 2)
        lam = n * (n - 1) / 2.0 * self.pair_rate_
        unseen_pairs = round(float(np.sum(batch_same[unseen] - 1)) / 2.0)
        p_unseen = float(_pair_pvalue(unseen_pairs, self.comparison_twin_pairs_, n, m))
        row_p = np.ones(n)
        row_p[unseen] = poisson.sf(batch_same[unseen] - 2, (n - 1) * self.pair_rate_)

        # bursts of seen vectors, row level: batch count given the batch + comparison count
        seen = known & (comp_same >= 1) & (batch_same >= 2)
        row_p[seen] = binom.sf(
            batch_same[seen] - 1, batch_same[seen] + comp_same[seen], n / (n + m)
        )

        # bursts, batch level: every (vector, label) twin cell, seen or not, by its batch
        # count given its pooled count (hypergeometric); Tarone's correction
        burst = _CellBursts(counts, n, m, self.alpha * SINGLE_SHARE)
        p_burst, cell_p = burst.pvalue(), burst.row_pvalues(unique, y)
        # the burst sum: several copy cells far out together
        own_total = counts.own_comp + counts.own_batch
        burst_sum = _BurstSum(own_total, n, m)
        sum_stat = float(burst_sum.statistic(counts.own_batch[None], own_total, burst_sum.cells)[0])
        p_sum = float(burst_sum.pvalue(np.array([sum_stat]))[0])
        burst_rows = known & (cell_p < self.row_alpha)
        row_p = np.where(burst_rows, np.minimum(row_p, cell_p), row_p)

        row_p = np.where(conflict, np.minimum(row_p, self.conflict_rate_), row_p)
        # A same-label twin pair of a never-seen vector is what natural near twins look
        # like too: without a conflicting twin in the batch (the genuine record next to
        # its relabelled copies) it must survive a correction over the batch's rows.
        lone = unseen & (batch_total == batch_same) & ~conflict
        flag_p = np.where(lone, np.minimum(1.0, row_p * n), row_p)
        flags = (
            (flag_p < self.row_alpha)
            | burst_rows
            | (conflict & (self.conflict_rate_ <= self.row_alpha))
        )
        twins = (comp_total + batch_total) > 1
        scores = np.where(twins, 1.0 - np.clip(row_p, 0.0, 1.0), 0.0)
        single = min(p_conflict, p_unseen, p_burst)
        bonferroni = min(1.0, float(_weighted_min(single, p_sum)))
        p_value, draws = bonferroni, 0
        if self.draws and bool(known.all()) and self.alpha <= bonferroni < 1.0:
            p_value, draws = self._exchangeable_pvalue(counts, n, m, bonferroni, burst, burst_sum)
        shift_info: dict[str, float] = {}
        if p_value < self.alpha and single / SINGLE_SHARE >= self.alpha:
            # the burst sum decided: a covariate shift raises many cells a little too
            shifted, shift_info = self._shifted_sum(parts, counts, own_total, n)
            if shifted is not None:
                p_sum = max(p_sum, shifted)
                p_value = max(p_value, min(1.0, float(_weighted_min(single, p_sum))))
        status: Status = "fail" if p_value < self.alpha else "pass"
        if status == "fail" and p_sum < self.alpha * SUM_SHARE:
            # the burst sum is significant: the copy cells that make it so are findings
            peeled = burst_sum.peel(counts.own_batch, own_total)
            own_cell = peeled[counts.unique[tail], y] & known
            flags |= own_cell
            scores = np.where(own_cell, np.maximum(scores, 1.0 - p_value), scores)
        flagged = int(flags.sum())
        reasons = {
            int(pos): (self._reason(int(pos), unique, y, counts, m),)
            for pos in np.flatnonzero(flags)[:MAX_REASONS]
        }
        replicated = int(np.sum(batch_total > 1))
        message = (
            f"{flagged} of {n} rows flagged: {n_conflict} conflict with a reference/history "
            f"twin, {int(np.sum(flags & (unseen | seen | burst_rows)))} in replication bursts; "
            f"{replicated} rows have a twin in the batch; p = {p_value:.3g}"
        )
        if p_sum / SUM_SHARE < single / SINGLE_SHARE:
            message += f" (led by the burst sum of copy cells: {sum_stat:.1f}, p = {p_sum:.3g})"
        return self.result(
            status,
            message,
            statistic=flagged / n if n else 0.0,
            p_value=max(0.0, p_value),
            threshold=self.alpha,
            row_scores=scores,
            row_flags=flags,
            row_reasons=reasons,
            info={
                "conflicts": n_conflict,
                "comparison_conflict_rate": self.comparison_conflicts_ / max(m, 1),
                "comparison_conflict_clusters": self.conflict_clusters_,
                "p_conflict": p_conflict,
                "unseen_twin_pairs": unseen_pairs,
                "expected_twin_pairs": lam,
                "p_unseen_burst": p_unseen,
                "p_burst": p_burst,
                "burst_tests": burst.tests,
                "burst_sum": sum_stat,
                "burst_sum_cells": int(burst_sum.cells.sum()),
                "p_burst_sum": p_sum,
                "p_bonferroni": bonferroni,
                **shift_info,
                "null_draws": draws,
                "rows_with_batch_twin": replicated,
                "comparison_rows": m,
                "near_matching": counts.near,
            },
        )

    def _exchangeable_pvalue(
        self,
        counts: _Counts,
        n: int,
        m: int,
        bonferroni: float,
        burst: _CellBursts,
        burst_sum: _BurstSum,
    ) -> tuple[float, int]:
        """The batch p-value of the four tests together, calibrated by drawing the batch
        as random n-subsets of the pooled rows (batch + comparison set) and capped by
        their Bonferroni bound, and the number of draws made. Called only when
        Bonferroni alone does not reject.

        The tests look at the same rows (Truth Serum replicas conflict with their
        genuine record *and* form a burst), so Bonferroni over them pays for one
        finding several times, and the burst sum's nominal p-value is a loose bound.
        Under the null the batch is exchangeable with the comparison set: given the
        pooled rows, which of them are the batch is a uniformly random n-subset. Only
        rows with a twin in the pooled data can conflict or form a burst, so a draw is
        the multivariate hypergeometric split of those twin cells (vector × label);
        every test, the comparison set's own rates included, is recomputed on it, and
        the statistic is the smallest of the four nominal p-values. Draws stop at the
        ``NULL_HITS``-th statistic at least as extreme as the observed one (Besag &
        Clifford, 1991: p = hits / draws) or after ``NULL_HITS / alpha`` draws (at
        most ``draws``; p = (hits + 1) / (draws + 1)). When the twin cells are too
        many for that many draws (low-cardinality data full of natural twins), the
        Bonferroni p-value stands.
        """
        tests = _BurstTests(counts, n, m, burst, burst_sum)
        cells = tests.total.size
        # enough draws to resolve p-values well below the level
        max_draws = min(self.draws, int(np.ceil(NULL_HITS / self.alpha)))
        if cells == 0 or cells * max_draws > NULL_MAX_WORK:
            log.debug("duplicates: %d twin cells, too many to calibrate; Bonferroni", cells)
            return bonferroni, 0
        observed = float(tests.min_p(tests.batch[None])[0])
        if observed >= 1.0:
            return bonferroni, 0
        chunk = max(1, min(max_draws, NULL_CHUNK_CELLS // cells))
        rng = np.random.default_rng(
            [self.seed, n, m, cells, int(tests.total.sum()), int(tests.batch.sum())]
        )
        colours = np.append(tests.total.ravel(), n + m - tests.total.sum())
        # cost per draw: "count" is linear in the pooled rows, "marginals" in the cells
        method: Literal["count", "marginals"] = "count" if 8 * cells > n + m else "marginals"
        done = hits = 0
        while done < max_draws:
            size = min(chunk, max_draws - done)
            sample = rng.multivariate_hypergeometric(colours, n, size=size, method=method)
            null = tests.min_p(sample[:, :-1].reshape(size, *tests.total.shape))
            extreme = null <= observed * (1.0 + 1e-9)
            found = int(extreme.sum())
            if hits + found >= NULL_HITS:
                at = done + int(np.flatnonzero(extreme)[NULL_HITS - hits - 1]) + 1
                return min(bonferroni, NULL_HITS / at), at
            hits += found
            done += size
        return min(bonferroni, (hits + 1.0) / (done + 1.0)), done

    def _shifted_sum(
        self, parts: list[np.ndarray], counts: _Counts, total: np.ndarray, n: int
    ) -> tuple[float | None, dict[str, float]]:
        """The burst sum's p-value against a covariate shift, if the batch's features
        demonstrably differ from the comparison set's (None if not), and the info;
        ``total``: the pooled rows of each exact cell (vector, label).

        The random-subset null assumes the batch is drawn like the comparison set. A
        batch drawn where one feature is high holds every common vector of that
        region more often than the reference, a little each: the sum adds those
        cells up (`randhie` drawn with exp(z(coinsurance)): p below 1e-6). A domain
        classifier (``_shift.domain_shift``, additive in every feature) tells the
        comparison rows from the batch's; where its likelihood-ratio test is below
        ``shift_alpha``, each pooled row is in the batch with its own probability,
        the logistic of the classifier's log-odds shifted so that they sum to the
        batch size, and a cell's batch count is binomial (Poisson sampling): the
        sum and its Chernoff bound are recomputed with those tails. The classifier
        is smooth in every feature, so the copies of one record stay a burst.
        """
        from scipy.special import expit

        if self.shift_alpha is None:
            return None, {}
        comp_x = np.vstack(parts[:2])
        shift = domain_shift(comp_x, parts[2], self.max_shift_rows, self.seed)
        if shift is None:
            return None, {}
        info = {"shift_p": shift.p}
        if shift.p >= self.shift_alpha:
            return None, info
        ids, first = np.unique(counts.unique, return_index=True)
        stacked = np.vstack(parts)
        log_odds = np.zeros(counts.own_comp.shape[0])
        log_odds[ids] = shift.log_odds(stacked[first])
        rows = total.sum(axis=1)
        lo, hi = -50.0 - log_odds.max(), 50.0 - log_odds.min()
        for _ in range(100):  # the shift that makes the inclusion probabilities sum to n
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if float(rows @ expit(log_odds + mid)) < n else (lo, mid)
        inclusion = expit(log_odds + 0.5 * (lo + hi))
        p = _binomial_sum_pvalue(
            counts.own_batch, total, np.broadcast_to(inclusion[:, None], total.shape)
        )
        info["p_burst_sum_shifted"] = p
        return p, info

    def _reason(self, pos: int, unique: np.ndarray, y: np.ndarray, counts: _Counts, m: int) -> str:
        u = unique[pos]
        in_batch = counts.batch_by_label[u]
        in_comp = counts.comp_by_label[u]
        batch_labels = ",".join(str(c) for c in self.classes_[in_batch > 0])
        text = f"duplicates: {int(in_batch.sum())} copies in batch with labels {{{batch_labels}}}"
        if in_comp.sum():
            comp_labels = ", ".join(str(c) for c in self.classes_[in_comp > 0])
            text += f"; reference/history twin has label {comp_labels}"
        else:
            text += "; no reference/history twin"
        return text + f" (this row: {self.classes_[y[pos]]})"


def _binomial_sum_pvalue(batch: np.ndarray, total: np.ndarray, inclusion: np.ndarray) -> float:
    """The burst sum's p-value (``_BurstSum``) when each of a cell's ``total`` pooled
    rows is in the batch independently with the cell's ``inclusion`` probability:
    binomial tails in place of hypergeometric ones, the cells independent."""
    from scipy.stats import binom

    log_tau = np.log(SUM_TAU)
    usable = (total >= 2) & (total * np.log(np.maximum(inclusion, 1e-300)) <= log_tau)
    t, q, b = total[usable], inclusion[usable], batch[usable]
    bound = _SumBound()
    observed = 0.0
    for size in np.unique(t):
        of_size = t == size
        qs = q[of_size][:, None]
        k = np.arange(int(size) + 1)[None, :]
        w = np.where(k >= 2, np.maximum(0.0, log_tau - binom.logsf(k - 1, size, qs)), 0.0)
        bound.add(w, binom.logpmf(k, size, qs))
        observed += float(w[np.arange(qs.shape[0]), b[of_size]].sum())  # the cells' own weights
    return float(bound.pvalue(np.array([observed]))[0])


class _SumBound:
    """Upper bounds on P(S >= s), S the sum of independent cells' weights (or of
    negatively associated ones, whose sum is smaller in the convex order).

    Two bounds, the smaller taken. Chernoff's, exp(-λs) · E[exp(λS)] at the best λ
    of ``SUM_LAMBDAS``. And the stop-loss bound, E[(S - a)⁺] / (s - a) at the best
    a < s: (x - a)⁺ / (s - a) is a convex function at least the indicator of x >= s,
    and every convex function that is lies above one of these (its tangent at s),
    so no convex function gives a tighter bound; Chernoff's exponential is one of
    them. E[(S - a)⁺] = E[S] - a + E[(a - S)⁺] needs only the law of S below a: the
    cells' laws, each weight rounded up to a ``SUM_STEP`` grid (which only raises
    S), convolved on the grid up to ``SUM_REACH``. On the held-out `fair` table's
    copy cells it was 2-5 times the Monte Carlo tail where Chernoff's was 7-50
    times.
    """

    def __init__(self) -> None:
        self.cumulant = np.zeros(SUM_LAMBDAS.size)
        self.mean = 0.0  # of S on the grid
        self.laws: list[tuple[np.ndarray, np.ndarray, int]] = []  # (grid steps, pmf, cells)
        self._table: np.ndarray | None = None

    def add(self, w: np.ndarray, log_pmf: np.ndarray, count: int = 1) -> None:
        """Cells whose weight takes the values ``w`` with log-probabilities ``log_pmf``
        (both of shape (cells, values)), each law ``count`` times."""
        from scipy.special import logsumexp

        terms = log_pmf[None] + SUM_LAMBDAS[:, None, None] * w[None]
        self.cumulant += count * logsumexp(terms, axis=2).sum(axis=1)
        steps = np.ceil(w / SUM_STEP).astype(np.int64)  # rounded up: S only grows
        pmf = np.exp(log_pmf)
        self.mean += count * float(np.sum(pmf * steps)) * SUM_STEP
        self.laws.extend((row, p, count) for row, p in zip(steps, pmf, strict=True))
        self._table = None

    def pvalue(self, s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=float)
        exponent = self.cumulant[None, :] - SUM_LAMBDAS[None, :] * s[:, None]
        chernoff = np.minimum(1.0, np.exp(exponent.min(axis=1)))
        if not (s >= SUM_STEP).any():  # below the grid's first step: no better bound
            return np.asarray(chernoff)
        table = self._stop_loss()
        # the bound falls with s: its value at the grid point at or below s holds
        at = np.clip(np.floor(s / SUM_STEP).astype(np.int64), 0, table.size - 1)
        return np.asarray(np.minimum(chernoff, table[at]))

    def _stop_loss(self) -> np.ndarray:
        """The stop-loss bound at every grid point j · ``SUM_STEP`` up to the reach."""
        if self._table is not None:
            return self._table
        from scipy.signal import fftconvolve

        size = round(SUM_REACH / SUM_STEP) + 1

        def convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.clip(fftconvolve(a, b)[:size], 0.0, None)

        law = np.zeros(size)
        law[0] = 1.0
        for steps, pmf, count in self.laws:
            one = np.zeros(size)
            inside = steps < size  # mass beyond the reach never counts below a
            np.add.at(one, steps[inside], pmf[inside])
            k = count  # law times one's count-fold convolution, by squaring
            while k:
                if k & 1:
                    law = convolve(law, one)
                k >>= 1
                if k:
                    one = convolve(one, one)
        grid = np.arange(size) * SUM_STEP
        below = grid * np.cumsum(law) - np.cumsum(grid * law)  # E[(a - S)+] at a = grid
        # E[(S - a)+], with a margin for the FFT's rounding
        excess = np.maximum(self.mean - grid + below, 0.0) + 1e-12
        self._table = _best_ratios(excess, grid)
        return self._table


def _best_ratios(excess: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """min over grid points a < s of ``excess``(a) / (s - a), capped at 1, at every
    grid point s (1 at the first), ``excess`` convex and non-increasing.

    The ratio is quasi-convex in a (a convex function over a positive affine one)
    and its minimiser moves right as s grows (the tangent to ``excess`` through
    (s, 0)), so one sweep finds them all. Any a gives a valid bound: a sweep that
    stopped early would only be looser."""
    table = np.ones(grid.size)
    best = 0
    for j in range(1, grid.size):
        s = grid[j]
        while best + 1 < j and excess[best + 1] * (s - grid[best]) <= excess[best] * (
            s - grid[best + 1]
        ):
            best += 1
        table[j] = min(1.0, excess[best] / (s - grid[best]))
    return table


def _weighted_min(single: Any, burst_sum: Any) -> np.ndarray:
    """The four tests' weighted Bonferroni statistic: the smallest of the single tests'
    p-values over their shares of the level and the burst sum's over its own."""
    return np.asarray(np.minimum(np.asarray(single) / SINGLE_SHARE, burst_sum / SUM_SHARE))


def _pair_pvalue(batch_pairs: Any, comparison_pairs: Any, n: int, m: int) -> np.ndarray:
    """How unusual ``batch_pairs`` same-label twin pairs among ``n`` batch rows are next
    to ``comparison_pairs`` among the ``m`` comparison rows (arrays broadcast).

    Both counts are Poisson with a common rate per pair of rows under the null; given
    their sum, the batch's share is binomial with the batch's share of row pairs (the
    exact conditional test of two Poisson rates, equal to the predictive p-value of
    the comparison rate's add-one estimate). Taking that estimate as the rate itself
    ignored its noise: a 600-row reference of continuous data held no near-twin pair,
    and clean 1,000-row batches with 11 and 12 (a rate of 2.3e-5 predicts 4 there)
    failed at p = 3e-5 and 2e-4 against an expected 2.8.
    """
    from scipy.stats import binom

    batch_pairs = np.asarray(batch_pairs, dtype=float)
    comparison_pairs = np.round(np.asarray(comparison_pairs, dtype=float))
    row_pairs = n * (n - 1) / 2.0
    share = row_pairs / (row_pairs + m * (m - 1) / 2.0) if row_pairs else 0.0
    tail = binom.sf(batch_pairs - 1, batch_pairs + comparison_pairs, share)
    return np.asarray(np.where(batch_pairs > 0, tail, 1.0))


def _clusters(counts: _Counts, conflicting: np.ndarray) -> int:
    """How many groups of twins the ``conflicting`` rows form: their distinct vectors,
    joined where the (near-match) adjacency links them."""
    from scipy.sparse.csgraph import connected_components

    vectors = np.unique(counts.unique[conflicting])
    if counts.adjacency is None or len(vectors) < 2:
        return len(vectors)
    linked = counts.adjacency[vectors][:, vectors]
    return int(connected_components(linked, directed=False)[0])


class _Rounded:
    """The rows of several matrices, stacked and rounded to ``DECIMALS`` as they are read:
    a 1M-row batch and its comparison set are never copied into one matrix."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.n = int(self.starts[-1])
        self.width = parts[0].shape[1]

    def take(self, rows: np.ndarray, dims: np.ndarray | None = None) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.width if dims is None else len(dims)))
        part = np.searchsorted(self.starts, rows, side="right") - 1
        for p, matrix in enumerate(self.parts):
            sel = np.flatnonzero(part == p)
            if len(sel):
                local = rows[sel] - self.starts[p]
                out[sel] = matrix[local] if dims is None else matrix[np.ix_(local, dims)]
        np.round(out, DECIMALS, out=out)
        out += 0.0  # no -0.0
        return out

    def within(self, a: np.ndarray, b: np.ndarray, limit: float, dims: list[int]) -> np.ndarray:
        """Which pairs of rows (``a[i]``, ``b[i]``) differ by at most ``limit`` in every
        coordinate: ``max |take(a) - take(b)| <= limit``, read one coordinate at a time
        for the pairs still in the running (most candidate pairs fail on the first)."""
        keep = np.arange(len(a))
        where_a, where_b = self._locate(a), self._locate(b)
        for j in dims:
            if not len(keep):
                break
            gap = np.abs(self._column(*where_a, j) - self._column(*where_b, j))
            ok = gap <= limit
            keep = keep[ok]
            where_a = (where_a[0][ok], where_a[1][ok])
            where_b = (where_b[0][ok], where_b[1][ok])
        out = np.zeros(len(a), dtype=bool)
        out[keep] = True
        return out

    def _locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(part, row within the part) of stacked row numbers."""
        rows = np.asarray(rows, dtype=np.int64)
        part = np.searchsorted(self.starts, rows, side="right") - 1
        return part, rows - self.starts[part]

    def _column(self, part: np.ndarray, local: np.ndarray, j: int) -> np.ndarray:
        """Coordinate ``j`` of the located rows, rounded as ``take`` rounds it."""
        out = np.empty(len(local))
        for p, matrix in enumerate(self.parts):
            sel = np.flatnonzero(part == p)
            if len(sel):
                out[sel] = matrix[local[sel], j]
        np.round(out, DECIMALS, out=out)
        out += 0.0
        return out

    def blocks(self, size: int = 1 << 16) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.n, size):
            yield start, self.take(np.arange(start, min(self.n, start + size)))


def _distinct_rows(rounded: _Rounded, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct row, distinct-row id of every row).

    Groups by a 64-bit hash of the rows' bytes (a sort of one integer per row instead
    of whole rows), then verifies every row against its group's first row; on a hash
    collision, groups by the rows themselves.
    """
    salt = np.random.default_rng(seed + 1).integers(1, 2**63, size=rounded.width, dtype=np.uint64)
    salt |= np.uint64(1)
    # wraps: a hash of the bytes
    digest = np.concatenate([block.view(np.uint64) @ salt for _, block in rounded.blocks()])
    _, first, inv = np.unique(digest, return_index=True, return_inverse=True)
    inv = inv.ravel()
    if all(
        np.array_equal(block, rounded.take(first[inv[start : start + len(block)]]))
        for start, block in rounded.blocks()
    ):
        return first, inv
    matrix = rounded.take(np.arange(rounded.n))
    keys = matrix.view(np.dtype((np.void, matrix.dtype.itemsize * matrix.shape[1])))
    _, first, inv = np.unique(keys.ravel(), return_index=True, return_inverse=True)
    return first, inv.ravel()


def _cell_key(cells: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """One int64 per row of grid cells (a salted multiplicative hash, wrapping)."""
    with np.errstate(over="ignore"):
        return (cells * salt).sum(axis=1)


@dataclass(frozen=True)
class _Counts:
    """Twin counts per row (see ``DuplicatesCheck._twin_counts``)."""

    unique: np.ndarray  # distinct-vector id of each row
    conflict_total: np.ndarray  # comparison twins linked through comparison rows only
    conflict_same: np.ndarray
    comp_total: np.ndarray
    comp_same: np.ndarray
    batch_total: np.ndarray
    batch_same: np.ndarray
    comp_by_label: np.ndarray  # (distinct vectors, labels): twins in the comparison set
    batch_by_label: np.ndarray
    own_comp: np.ndarray  # (distinct vectors, labels): rows of exactly that vector
    own_batch: np.ndarray
    adjacency: Any  # sparse twin relation between distinct vectors (None: exact only)

    @property
    def near(self) -> bool:
        return self.adjacency is not None


class _CellBursts:
    """The burst test: is any (vector, label) twin cell over-represented in the batch?

    Under the null the batch is a random n-subset of the pooled rows, so the batch
    count of a cell with ``t`` pooled twins is hypergeometric (N = n + m, t, n),
    whether or not the comparison set holds any of them: a record copied ``r`` times
    into a batch, never seen with that label, has p = C(n, r) / C(N, r). Tarone's
    correction: only cells whose smallest attainable p-value (all ``t`` rows in the
    batch) could reach ``alpha / K`` count among the ``K`` tests, so the many natural
    twin pairs of a low-cardinality table cost nothing.
    """

    def __init__(self, counts: _Counts, n: int, m: int, alpha: float) -> None:
        from scipy.stats import hypergeom

        batch = counts.batch_by_label
        total = batch + counts.comp_by_label
        sizes, of_size = np.unique(total, return_inverse=True)
        floor = hypergeom.pmf(sizes, n + m, sizes, n)[of_size.reshape(total.shape)]
        floor[total < 2] = 1.0  # all of a cell's rows in the batch; a lone row is no burst
        self.tests = tarone_count(floor[total >= 2], alpha)
        # the K tests: the other cells cannot reach alpha / K, and counting them in the
        # minimum would still let them move the joint calibration's null distribution
        self.testable = floor <= alpha / self.tests
        self.cell_p = np.ones(total.shape)
        hit = self.testable & (batch >= 2)
        if hit.any():
            self.cell_p[hit] = hypergeom.sf(batch[hit] - 1, n + m, total[hit], n)

    def pvalue(self) -> float:
        return float(min(1.0, self.tests * self.cell_p.min())) if self.cell_p.size else 1.0

    def row_pvalues(self, unique: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The corrected p-value of each batch row's cell (distinct vector, label)."""
        return np.minimum(1.0, self.tests * self.cell_p[unique, y])


class _BurstSum:
    """The burst-sum test: are the batch's copy cells, together, over-represented?

    A Truth Serum attack copies several targets a few times each. On a table of
    few-level codes each copy cell (exact vector, label) also holds natural rows,
    so no single cell may reach ``_CellBursts``' corrected level while several sit
    far out together. The statistic is the truncated product of the cells' tails
    (Zaykin et al., 2002): S = sum of log(``SUM_TAU`` / p) over the exact cells with
    p < ``SUM_TAU``, p the cell's hypergeometric tail (its batch count of at least
    two given its pooled count), counting only cells that could get below
    ``SUM_TAU`` (all their pooled rows in the batch). The counts of disjoint cells
    of a random n-subset are negatively associated (Joag-Dev & Proschan, 1983), and
    so are the cells' weights (non-decreasing in the counts): any convex function
    of their sum has at most the expectation it has for independent cells with the
    same laws (Shao, 2000). Its nominal p-value is the bound that follows
    (``_SumBound``); the joint calibration (``DuplicatesCheck._exchangeable_pvalue``)
    gives the exact p-value where it is affordable.
    """

    def __init__(self, total: np.ndarray, n: int, m: int) -> None:
        from scipy.stats import hypergeom

        big = n + m
        twin = total >= 2  # a lone row is no burst
        sizes, of_size = np.unique(total[twin], return_inverse=True)
        usable = hypergeom.logpmf(sizes, big, sizes, n) <= np.log(SUM_TAU)
        self.cells = np.zeros(total.shape, dtype=bool)
        self.cells[twin] = usable[of_size]
        self.n, self.big = n, big
        cells_of_size = np.bincount(of_size, minlength=sizes.size)
        self.bound = _SumBound()
        self.moments: dict[int, tuple[float, float]] = {}  # per pooled count: E[W], Var W
        mean = var = 0.0
        for size, count in zip(sizes[usable], cells_of_size[usable], strict=True):
            b = np.arange(min(int(size), n) + 1)
            w = self._weights(b, np.full(b.size, size))
            log_pmf = hypergeom.logpmf(b, big, size, n)
            self.bound.add(w[None], log_pmf[None], int(count))
            pmf = np.exp(log_pmf)
            first, second = float(pmf @ w), float(pmf @ w**2)
            self.moments[int(size)] = (first, second - first**2)
            mean += count * first
            var += count * (second - first**2)
        self.mean, self.var = mean, var

    def _weights(self, b: np.ndarray, total: np.ndarray) -> np.ndarray:
        """log(SUM_TAU / p)⁺ of cells with ``b`` batch rows of ``total`` pooled ones."""
        from scipy.stats import hypergeom

        w = np.zeros(b.shape)
        hit = b >= 2
        if hit.any():
            keys, inverse = np.unique(np.stack([b[hit], total[hit]]), axis=1, return_inverse=True)
            log_tail = hypergeom.logsf(keys[0] - 1, self.big, keys[1], self.n)
            w[hit] = np.maximum(0.0, np.log(SUM_TAU) - log_tail)[inverse.ravel()]
        return w

    def statistic(self, batch: np.ndarray, total: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """S of each draw: ``batch`` (draws, *cell shape) against ``total`` (cell shape),
        over the ``cells`` (a mask of the cell shape) that can contribute."""
        b = batch[:, cells]
        w = self._weights(b, np.broadcast_to(total[cells], b.shape))
        return np.asarray(w.sum(axis=1))

    def pvalue(self, s: np.ndarray) -> np.ndarray:
        """The nominal p-value of sums ``s`` (``_SumBound``)."""
        return self.bound.pvalue(s)

    def peel(self, batch: np.ndarray, total: np.ndarray) -> np.ndarray:
        """The copy cells that make the sum unusual, as a mask of the cell shape: the
        cell adding most is taken out, with its share of the null, while what
        remains exceeds its null mean by more than two standard deviations. No cell
        alone is significant here, so these are the likeliest copies, not proven
        ones: natural cells far out by chance go too where they outrank one."""
        w = np.zeros(total.shape)
        w[self.cells] = self._weights(batch[self.cells], total[self.cells])
        peeled = np.zeros(total.shape, dtype=bool)
        rest, mean, var = float(w.sum()), self.mean, self.var
        adding = np.flatnonzero(w > 0)
        for flat in adding[np.argsort(-w.ravel()[adding], kind="stable")]:
            if rest <= mean + 2.0 * np.sqrt(max(var, 0.0)):
                break
            cell = np.unravel_index(flat, total.shape)
            peeled[cell] = True
            first, spread = self.moments[int(total[cell])]
            rest, mean, var = rest - float(w[cell]), mean - first, var - spread
        return peeled


class _BurstTests:
    """The check's four batch tests on any split of the pooled twin cells.

    ``total`` and ``batch`` are rows per (distinct vector, label) among the vectors that
    have a twin in the pooled data (the only rows a test can count), taken from the
    check's twin ``counts``; ``adjacency`` the twin relation between those vectors
    (None: exact twins only). ``min_p``
    takes batch counts of shape (draws, vectors, labels), the comparison set being
    the rest of each cell, and returns the smallest of the four p-values per draw,
    with the comparison set's conflict count and twin pairs recomputed from the same
    split. The pair, burst and burst-sum tests are ``DuplicatesCheck.run``'s; the
    conflict test counts rows (not clusters) linked through every hop: the observed
    split is scored by this same statistic, so the calibration stays exact for it.
    """

    def __init__(
        self, counts: _Counts, n: int, m: int, burst: _CellBursts, burst_sum: _BurstSum
    ) -> None:
        self.burst_tests = burst.tests
        total = counts.own_comp + counts.own_batch
        hood = counts.comp_by_label + counts.batch_by_label  # twins of each cell, pooled
        twinned = hood.sum(axis=1) >= 2  # closed under the (symmetric) twin relation
        self.total = total[twinned].astype(np.int64)
        self.batch = counts.own_batch[twinned].astype(np.int64)
        self.burst_sum = burst_sum
        self.sum_cells = burst_sum.cells[twinned]  # an exact copy has an exact twin
        adjacency = counts.adjacency
        self.adjacency = None if adjacency is None else adjacency[twinned][:, twinned]
        self.hood_total = hood[twinned]
        self.burst_cells = burst.testable[twinned]
        self.n, self.m = n, m

    def _hood(self, b: np.ndarray) -> np.ndarray:
        if self.adjacency is None:
            return b
        d, u, k = b.shape
        flat = b.transpose(1, 0, 2).reshape(u, d * k)
        return np.asarray(self.adjacency @ flat).reshape(u, d, k).transpose(1, 0, 2)

    def min_p(self, b: np.ndarray) -> np.ndarray:
        from scipy.stats import hypergeom

        n, m = self.n, self.m
        c = self.total[None] - b
        bn = self._hood(b)
        cn = self.hood_total[None] - bn
        cn_total = cn.sum(axis=2, keepdims=True)
        # conflicts: batch rows against the comparison set's leave-one-out count
        k = np.sum(b * ((cn_total >= 1) & (cn == 0)), axis=(1, 2))
        comp_conflicts = np.sum(c * ((cn_total >= 2) & (cn == 1)), axis=(1, 2))
        p_conflict = np.where(k > 0, hypergeom.sf(k - 1, n + m, k + comp_conflicts, n), 1.0)
        # bursts of vectors unseen with their label, against the comparison pair rate
        twin_pairs = np.sum(c * np.maximum(cn - 1, 0), axis=(1, 2)) / 2.0
        unseen = (cn == 0) & (bn >= 2)
        pairs = np.round(np.sum(b * (bn - 1) * unseen, axis=(1, 2)) / 2.0)
        p_unseen = _pair_pvalue(pairs, twin_pairs, n, m)
        # bursts: each twin cell's batch count given its pooled count; Tarone's factor
        draw, vec, lab = np.nonzero((bn >= 2) & self.burst_cells[None])
        p_burst = np.ones(len(b))
        if draw.size:
            keys, inverse = np.unique(
                np.stack([bn[draw, vec, lab], self.hood_total[vec, lab]], axis=1),
                axis=0,
                return_inverse=True,
            )
            tail = hypergeom.sf(keys[:, 0] - 1, n + m, keys[:, 1], n)
            np.minimum.at(p_burst, draw, tail[inverse.ravel()])
        p_burst = np.minimum(1.0, self.burst_tests * p_burst)
        p_sum = self.burst_sum.pvalue(self.burst_sum.statistic(b, self.total, self.sum_cells))
        return _weighted_min(np.minimum(np.minimum(p_conflict, p_unseen), p_burst), p_sum)
