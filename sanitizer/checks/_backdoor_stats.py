"""Statistics and finding records of the backdoor check: Fisher and Zelen tests, Tarone's count, cells."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: Cells holding more than this share of the batch are not tested as trigger cells.
MAX_CELL_SHARE = 0.5
#: Pseudo-rows of the reference prior added to the batch's prior when re-weighting.
PRIOR_PSEUDO_ROWS = 200.0
#: Bound on a class's batch/reference prior ratio when re-weighting a cell's reference
#: counts: a class (almost) absent outside a cell in the reference would otherwise get
#: a ratio of 10+ from a few batch rows and crowd every other class out of the cell.
MAX_PRIOR_RATIO = 3.0
#: A point mass shared by more numeric columns than this is a copied row, not a trigger.
MAX_TRIGGER_FEATURES = 3
#: Reference values rarer than this share are left out of the chance that rows agree.
SHARE_FLOOR = 1e-3
#: Grid cells over a column's bin edges for guessing a value's bin (see ``_cell_codes``).
CELL_GRID = 4096


@dataclass(frozen=True)
class _Finding:
    kind: str  # "point_mass" | "label" | "pair"
    feature: str  # one column, or "a & b" for a pair
    cell: str  # "== 0.8731" or "in [0.81, 0.90]" or "== pro" or "== (3, 17)"
    rows: np.ndarray  # batch positions it flags
    in_cell: int
    label: str
    label_rows: int
    ref_share: float
    ref_rows: int
    p_value: float


@dataclass
class _Lazy:
    """A test's cell, turned into a ``_Finding`` only when it is significant."""

    kind: str
    feature: str
    cell: str
    member: np.ndarray  # batch positions in the cell
    label: int  # the over-represented class (label association, pair); -1: any label
    ref_rows: int
    ref_share: np.ndarray  # reference label shares: of the value's bin, or of the pair

    def rows(self, y: np.ndarray) -> np.ndarray:
        if self.label < 0:
            return self.member
        return self.member[y[self.member] == self.label]

    def materialise(
        self, rows: np.ndarray, p: float, classes: tuple[str, ...], y: np.ndarray
    ) -> _Finding:
        if self.label < 0:
            labels = y[rows]
            counts = np.bincount(labels[labels >= 0], minlength=len(classes))
            top = int(np.argmax(counts)) if len(counts) else 0
            return _Finding(
                kind=self.kind,
                feature=self.feature,
                cell=self.cell,
                rows=rows,
                in_cell=len(rows),
                label=classes[top] if classes else "",
                label_rows=int(counts[top]) if len(counts) else 0,
                ref_share=float(self.ref_share[top]) if len(self.ref_share) else float("nan"),
                ref_rows=self.ref_rows,
                p_value=p,
            )
        return _Finding(
            kind=self.kind,
            feature=self.feature,
            cell=self.cell,
            rows=rows,
            in_cell=len(self.member),
            label=classes[self.label],
            label_rows=len(rows),
            ref_share=float(self.ref_share[self.label]),
            ref_rows=self.ref_rows,
            p_value=p,
        )


@dataclass
class _Tests:
    kind: str
    p: np.ndarray
    p_min: np.ndarray
    effect_ok: np.ndarray
    findings: dict[int, _Lazy]


def _label_tests(
    name: str,
    cells: np.ndarray,
    y: np.ndarray,
    ref_counts: np.ndarray,
    cell_names: list[str],
    min_rows: int,
    min_effect: float,
) -> _Tests:
    """Exact tests of each (cell, class): the batch ties the class to the cell more.

    The p-value is Zelen's exact test that the cell-by-class odds ratio is the same
    in the batch as in the reference (one-sided, the batch's larger): conditional on
    each table's cell and class counts, so a shift of the label prior, which moves the
    class counts and leaves the odds ratio alone, is no evidence, while a poisoned
    cell, whose relabelling shifts the prior too, cannot explain itself away.

    The effect floor (``min_effect``, the cell's batch share of the class above the
    reference's) re-weights the reference's counts by the batch/reference label prior
    ratio outside the cell, shrunk towards 1 by ``PRIOR_PSEUDO_ROWS`` and bounded by
    ``MAX_PRIOR_RATIO``: a floor, so its roughness costs no false alarm.
    """
    k = ref_counts.shape[1]
    n_cells = ref_counts.shape[0]
    ok = (cells >= 0) & (cells < n_cells) & (y >= 0)
    b = np.bincount(cells[ok] * k + y[ok], minlength=n_cells * k).reshape(n_cells, k)
    b_tot = b.sum(axis=1)
    r_tot = ref_counts.sum(axis=1)
    r_out = ref_counts.sum(axis=0) - ref_counts + 0.5
    r_prior = r_out / r_out.sum(axis=1, keepdims=True)
    b_out = b.sum(axis=0) - b + PRIOR_PSEUDO_ROWS * r_prior
    weight = (b_out / b_out.sum(axis=1, keepdims=True)) / r_prior
    weight = np.clip(weight, 1.0 / MAX_PRIOR_RATIO, MAX_PRIOR_RATIO)
    adj = ref_counts * weight
    with np.errstate(invalid="ignore", divide="ignore"):
        adj = np.where(r_tot[:, None] > 0, adj / adj.sum(axis=1, keepdims=True), 0.0)
    r = np.minimum(np.rint(adj * r_tot[:, None]), r_tot[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        share_b = np.where(b_tot[:, None] > 0, b / np.maximum(b_tot[:, None], 1), 0.0)
        share_r = (r + 0.5) / (r_tot[:, None] + 1.0)
    # A trigger is a rare value; a cell holding most of the batch is no trigger, and its
    # outside-the-cell prior would rest on a handful of rows (false alarms on sparse,
    # mostly-zero columns such as image pixels).
    minority = (b_tot <= MAX_CELL_SHARE * max(int(b_tot.sum()), 1))[:, None]
    effect_ok = (
        (b >= min_rows) & (r_tot[:, None] > 0) & minority & (share_b - share_r >= min_effect)
    ).ravel()
    ref_int = np.rint(ref_counts).astype(np.int64)
    margins = _TwoTables(
        a=b.ravel(),
        cell=np.repeat(b_tot, k),
        cls=np.tile(b.sum(axis=0), n_cells),
        n=np.full(n_cells * k, int(b.sum())),
        ref_a=ref_int.ravel(),
        ref_cell=np.repeat(ref_int.sum(axis=1), k),
        ref_cls=np.tile(ref_int.sum(axis=0), n_cells),
        m=np.full(n_cells * k, int(ref_int.sum())),
    )
    p_min = _zelen_min_p(margins)
    p = np.ones(n_cells * k)
    if effect_ok.any():
        p[effect_ok] = _zelen_sf(margins.select(effect_ok))
    p = np.where(np.isfinite(p), p, 1.0)
    findings: dict[int, _Lazy] = {}
    hits = np.flatnonzero(effect_ok)
    valid = np.flatnonzero(ok) if len(hits) else np.zeros(0, dtype=np.intp)  # only if needed
    for idx in hits:
        cell, cls = divmod(int(idx), k)
        findings[int(idx)] = _Lazy(
            kind="label",
            feature=name,
            cell=cell_names[cell] if cell < len(cell_names) else f"cell {cell}",
            member=valid[cells[valid] == cell],
            label=cls,
            ref_rows=int(r_tot[cell]),
            ref_share=(ref_counts[cell] + 0.5) / (r_tot[cell] + 0.5 * k),
        )
    return _Tests("label", p=p, p_min=p_min, effect_ok=effect_ok, findings=findings)


@dataclass(frozen=True)
class _TwoTables:
    """The 2x2 tables (in the cell or not, of the class or not) of a batch and its
    reference, one test per position: ``a`` rows in the cell and of the class, of
    ``cell`` rows in the cell, ``cls`` of the class, ``n`` in all; ``ref_`` the same
    in the reference."""

    a: np.ndarray
    cell: np.ndarray
    cls: np.ndarray
    n: np.ndarray
    ref_a: np.ndarray
    ref_cell: np.ndarray
    ref_cls: np.ndarray
    m: np.ndarray

    def select(self, keep: np.ndarray) -> _TwoTables:
        return _TwoTables(*(np.asarray(getattr(self, f.name))[keep] for f in fields(self)))

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        """The batch count's smallest and largest values given every margin and the
        two tables' total ``a + ref_a``."""
        t = self.a + self.ref_a
        ref_lo = np.maximum(0, self.ref_cls - (self.m - self.ref_cell))
        ref_hi = np.minimum(self.ref_cell, self.ref_cls)
        lo = np.maximum(np.maximum(0, self.cls - (self.n - self.cell)), t - ref_hi)
        hi = np.minimum(np.minimum(self.cell, self.cls), t - ref_lo)
        return lo, hi

    def log_weights(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Unnormalised log-probabilities of batch counts ``x`` (tests ``rows`` by
        values) under a common odds ratio: two hypergeometric terms per table."""
        from scipy.special import gammaln

        def log_comb(top: np.ndarray, k: np.ndarray) -> np.ndarray:
            return np.asarray(gammaln(top + 1.0) - gammaln(k + 1.0) - gammaln(top - k + 1.0))

        def col(a: np.ndarray) -> np.ndarray:
            return a[rows][:, None].astype(float)

        t = col(self.a + self.ref_a)
        cell, cls, n = col(self.cell), col(self.cls), col(self.n)
        ref_cell, ref_cls, m = col(self.ref_cell), col(self.ref_cls), col(self.m)
        return (
            log_comb(cell, x)
            + log_comb(n - cell, cls - x)
            + log_comb(ref_cell, t - x)
            + log_comb(m - ref_cell, ref_cls - t + x)
        )


#: Tarone's count evaluates the smallest p-value of Zelen's test only where the batch
#: count can take at most this many values; a wider test is counted (conservative).
ZELEN_MAX_SUPPORT = 256
#: Values x tests evaluated at a time by Zelen's test.
ZELEN_BLOCK = 1 << 21


def _zelen_pass(
    tables: _TwoTables, lo: np.ndarray, hi: np.ndarray, tail_from: np.ndarray
) -> np.ndarray:
    """P(batch count >= ``tail_from``) under Zelen's conditional distribution, per test."""
    out = np.ones(len(lo))
    width = np.maximum(hi - lo + 1, 1)
    order = np.argsort(width, kind="stable")
    sorted_width = width[order]
    start = 0
    while start < len(order):
        # as many tests as fit in a block at the widest one's width (widths ascend)
        fits = np.arange(1, len(order) - start + 1) * sorted_width[start:] <= ZELEN_BLOCK
        stop = start + max(1, int(fits.sum()))
        rows = order[start:stop]
        w = int(sorted_width[stop - 1])
        x = lo[rows][:, None] + np.arange(w)[None, :]
        valid = x <= hi[rows][:, None]
        xs = np.where(valid, x, lo[rows][:, None]).astype(float)
        logw = np.where(valid, tables.log_weights(xs, rows), -np.inf)
        with np.errstate(invalid="ignore", divide="ignore"):  # an empty support: NaN
            weights = np.exp(logw - logw.max(axis=1, keepdims=True))
            tail = np.where(x >= tail_from[rows][:, None], weights, 0.0)
            share = tail.sum(axis=1) / weights.sum(axis=1)
        out[rows] = np.where(np.isfinite(share), share, 1.0)  # ... which is no evidence
        start = stop
    return np.clip(out, 0.0, 1.0)


def _zelen_sf(tables: _TwoTables) -> np.ndarray:
    """Zelen's exact test (one-sided) that the batch's odds ratio exceeds the reference's:
    P(batch count >= observed) given both tables' margins and their total count."""
    lo, hi = tables.support()
    return _zelen_pass(tables, lo, hi, tables.a)


def _zelen_min_p(tables: _TwoTables) -> np.ndarray:
    """The smallest p-value each Zelen test can attain (its largest count's probability);
    0 (always counted) where the support is wider than ``ZELEN_MAX_SUPPORT``."""
    lo, hi = tables.support()
    out = np.zeros(len(lo))
    narrow = hi - lo + 1 <= ZELEN_MAX_SUPPORT
    if narrow.any():
        out[narrow] = _zelen_pass(tables.select(narrow), lo[narrow], hi[narrow], hi[narrow])
    return out


def _excess_tests(
    batch: np.ndarray,
    ref: np.ndarray,
    n: int | np.ndarray,
    m: int | np.ndarray,
    min_rows: int,
    min_fold: float,
    max_rows: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-sided Fisher tests of cells' batch counts against their reference counts.

    ``batch`` and ``ref``: each cell's count among the ``n`` batch and ``m`` reference
    rows (scalars, or one per cell: a cell within a class counts among that class's
    rows). A test can become a finding when its batch count is within
    [``min_rows``, ``max_rows``] and at least ``min_fold`` times the reference
    frequency (add-one smoothed). Returns each test's smallest p-value among the
    outcomes that could be findings given its margins (for Tarone's count; 1 where
    none could: a value a fifth of the reference holds can never be five times as
    frequent in the batch, so it costs the family nothing), which tests are findings,
    and their p-values (1 for the others: only those need the exact tail).
    """
    from scipy.stats import hypergeom

    total = batch + ref
    n_all = np.broadcast_to(np.asarray(n), total.shape)
    m_all = np.broadcast_to(np.asarray(m), total.shape)

    def fold(x: np.ndarray) -> np.ndarray:
        return (x / np.maximum(n_all, 1)) / ((total - x + 1) / (m_all + 1))

    def eligible(x: np.ndarray) -> np.ndarray:
        ok = x >= min_rows
        return ok if max_rows is None else ok & (x <= max_rows)

    # Fisher's p falls and the fold rises with the batch count, so the smallest p a
    # finding can have is at the largest count the margins and max_rows allow.
    top = np.minimum(total, n_all)
    capped = top if max_rows is None else np.minimum(top, np.floor(max_rows))
    p_min = _hyper_max_pmf(n_all + m_all, total, n_all)
    cut = capped < top
    if cut.any():
        p_min[cut] = hypergeom.sf(capped[cut] - 1, (n_all + m_all)[cut], total[cut], n_all[cut])
    p_min = np.where(eligible(capped) & (fold(capped) >= min_fold), p_min, 1.0)
    effect_ok = eligible(batch) & (fold(batch) >= min_fold)
    p = np.ones(len(batch))
    ok = effect_ok
    p[ok] = hypergeom.sf(batch[ok] - 1, n_all[ok] + m_all[ok], total[ok], n_all[ok])
    return p_min, effect_ok, p


def _hyper_max_pmf(total: np.ndarray, successes: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """P(X = its largest possible value) for X ~ Hypergeom(total, successes, draws).

    The smallest p-value a one-sided (upper) Fisher test can attain given its margins.
    """
    from scipy.special import gammaln

    def log_comb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1))

    total = np.asarray(total, dtype=float)
    successes = np.asarray(successes, dtype=float)
    draws = np.asarray(draws, dtype=float)
    x = np.minimum(successes, draws)
    log_p = log_comb(successes, x) + log_comb(total - successes, draws - x) - log_comb(total, draws)
    return np.clip(np.exp(log_p), 0.0, 1.0)


def _duplicate_rows(rows: np.ndarray, chance: np.ndarray | None = None) -> bool:
    """True when the rows are copies of one record rather than rows sharing a trigger:
    they agree on more than half of the numeric columns where agreement is unlikely,
    and on more of those than a trigger sets.

    ``chance[j]``: the probability that as many rows drawn from the reference agree
    on column ``j`` (None: zero for every column). A column where that is at least
    a half says nothing: rows of one class agree on the usual value of a flag that is
    0 in 99% of rows without being copies. (Counted over every column, four `randhie`
    rows carrying a two-column trigger agreed on five of nine, three of them such
    flags, and a trigger on 20 rows of a table with eight 1% flags was never
    reported.) With continuous columns only this is "more than half the columns".
    """
    if rows.shape[1] <= MAX_TRIGGER_FEATURES:
        return False
    same = np.all((rows == rows[:1]) | (np.isnan(rows) & np.isnan(rows[:1])), axis=0)
    telling = np.ones(rows.shape[1], dtype=bool) if chance is None else chance < 0.5
    agree = int(np.count_nonzero(same & telling))
    return agree > max(MAX_TRIGGER_FEATURES, int(telling.sum()) / 2.0)


def _value_shares(sorted_values: np.ndarray) -> np.ndarray:
    """The shares of a column's distinct reference values (sorted, no NaN) that reach
    ``SHARE_FLOOR``; rarer values add at most ``SHARE_FLOOR`` to a chance of agreement."""
    if len(sorted_values) == 0:
        return np.zeros(0)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    shares = np.diff(np.r_[starts, len(sorted_values)]) / len(sorted_values)
    return shares[shares >= SHARE_FLOOR]


def _bin_edges(sorted_values: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner bin edges: one bin per value for discrete columns, else reference quantiles."""
    if len(sorted_values) == 0:
        return np.zeros(0)
    uniq = np.unique(sorted_values)
    if len(uniq) <= n_bins:
        return (uniq[1:] + uniq[:-1]) / 2.0
    qs = np.quantile(sorted_values, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(qs)


def _cell_codes(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.searchsorted(edges, values)`` (edges strictly increasing), -1 where NaN.

    A binary search per value costs ~35 ns at a million rows. Here a uniform grid
    over the edges' range guesses each value's cell from a table (``CELL_GRID``
    grid cells, so a guess is rarely off by more than one), and passes over the
    values move every guess up or down until ``edges[c - 1] < v <= edges[c]``
    holds, which defines the search's answer: exact, whatever the guess.
    """
    with np.errstate(all="ignore"):
        scale = CELL_GRID / float(edges[-1] - edges[0]) if len(edges) >= 2 else np.inf
    if not np.isfinite(scale):
        cells = np.searchsorted(edges, values)
        cells[np.isnan(values)] = -1
        return cells
    lo = float(edges[0])
    guess_table = np.searchsorted(edges, lo + np.arange(CELL_GRID + 1) / scale)
    with np.errstate(all="ignore"):
        position = (values - lo) * scale  # NaN stays NaN: fmax/fmin turn it into 0
    np.fmin(np.fmax(position, 0.0, out=position), CELL_GRID, out=position)
    cells = guess_table[position.astype(np.intp)]
    # padded[c] = edges[c - 1], padded[c + 1] = edges[c], with -inf / +inf at the ends
    padded = np.concatenate([[-np.inf], edges, [np.inf]])
    up = padded[cells + 1] < values  # edges[c] < v: the cell is further up
    cells += up
    rows = np.flatnonzero(up)  # the few moved rows may need another step
    while len(rows):
        rows = rows[padded[cells[rows] + 1] < values[rows]]
        cells[rows] += 1
    down = padded[cells] >= values  # edges[c - 1] >= v: further down (padded[0] = -inf)
    down &= cells > 0
    cells -= down
    rows = np.flatnonzero(down)
    while len(rows):
        rows = rows[(padded[cells[rows]] >= values[rows]) & (cells[rows] > 0)]
        cells[rows] -= 1
    cells[np.isnan(values)] = -1
    return cells


def _cell_counts(cells: np.ndarray, y: np.ndarray, edges: np.ndarray, k: int) -> np.ndarray:
    n_cells = len(edges) + 1
    ok = cells >= 0
    counts = np.bincount(cells[ok] * k + y[ok], minlength=n_cells * k)[: n_cells * k]
    return counts.reshape(n_cells, k).astype(float)


def _whitening(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = rows.mean(axis=0)
    cov = np.cov(rows, rowvar=False).reshape(rows.shape[1], rows.shape[1])
    evals, evecs = np.linalg.eigh(cov)
    floor = max(float(evals.max()) * 1e-6, 1e-6)
    keep = evals > floor
    w = evecs[:, keep] / np.sqrt(evals[keep])
    return mean, w


def _reason(f: _Finding) -> str:
    if f.kind == "pair":
        return (
            f"backdoor: {f.feature} {f.cell} on {f.in_cell} rows, {f.label_rows}/{f.in_cell} "
            f"labelled {f.label} (reference: {f.ref_rows} rows with this value pair, "
            f"{f.ref_share:.0%} labelled {f.label})"
        )
    if f.kind == "point_mass":
        return (
            f"backdoor: {f.feature} {f.cell} on {f.in_cell} rows, {f.label_rows}/{f.in_cell} "
            f"labelled {f.label} (reference: {f.ref_rows} rows with this exact value, "
            f"{f.ref_share:.0%} labelled {f.label} in this bin)"
        )
    return (
        f"backdoor: {f.feature} {f.cell} on {f.in_cell} rows, {f.label_rows}/{f.in_cell} "
        f"labelled {f.label} (reference: {f.ref_share:.0%} in this bin)"
    )


def _finding_info(f: _Finding) -> dict[str, object]:
    return {
        "kind": f.kind,
        "feature": f.feature,
        "cell": f.cell,
        "rows": f.in_cell,
        "label": f.label or None,
        "label_rows": f.label_rows,
        "reference_share": f.ref_share,
        "reference_rows": f.ref_rows,
        "p_value": f.p_value,
    }
