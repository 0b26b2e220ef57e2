"""Duplicates: Truth Serum replicas and replication bursts are caught; natural
duplicates of low-cardinality data are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, fisher_exact, poisson
from sklearn.metrics import roc_auc_score

from sanitizer import attacks
from sanitizer.checks.duplicates import DuplicatesCheck, _pair_pvalue, _Rounded
from sanitizer.config import SanitizerConfig
from sanitizer.contract import DataContract
from sanitizer.errors import NotFittedError
from sanitizer.samples import make_dataset, split
from sanitizer.table import Table

CONFIG = SanitizerConfig(label_column="label", id_columns=("record_id",))


def _table(frame: pd.DataFrame, ref: pd.DataFrame) -> Table:
    return Table(frame, DataContract.from_reference(ref, CONFIG))


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ref, history, pool = split(make_dataset(14_000, seed=5), [4000, 2000, 8000], seed=0)
    return ref, history, pool


@pytest.fixture(scope="module")
def check(data) -> DuplicatesCheck:
    ref, _, _ = data
    return DuplicatesCheck(alpha=0.01).fit(_table(ref, ref))


def _batches(pool: pd.DataFrame, n: int, count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(count):
        yield i, pool.iloc[rng.choice(len(pool), n, replace=False)].reset_index(drop=True)


def test_clean_batches_pass(data, check):
    ref, _, pool = data
    results = [check.run(_table(b, ref)) for _, b in _batches(pool, 200, 20)]
    results += [check.run(_table(b, ref)) for _, b in _batches(pool, 2000, 5, seed=1)]
    assert sum(r.status == "fail" for r in results) <= 1
    assert sum(r.flagged_rows for r in results) <= 2


@pytest.mark.parametrize(
    ("source", "jitter"),
    [("reference", 0.0), ("reference", 0.01), ("batch", 0.0), ("batch", 0.01)],
)
def test_truth_serum_replicas_are_found_with_high_precision_and_recall(data, check, source, jitter):
    ref, _, pool = data
    kwargs = {"reference": ref} if source == "reference" else {}
    detected = 0
    masks, flags, scores = [], [], []
    for seed, batch in _batches(pool, 400, 6, seed=3):
        poisoned, mask = attacks.truth_serum_replicas(
            batch, "label", seed, rate=0.02, jitter=jitter, **kwargs
        )
        result = check.run(_table(poisoned, ref))
        detected += result.status == "fail"
        masks.append(mask)
        flags.append(result.row_flags)
        scores.append(result.row_scores)
    mask, flag = np.concatenate(masks), np.concatenate(flags)
    assert detected == 6
    assert flag[mask].mean() >= 0.99  # recall
    assert mask[flag].mean() >= 0.99  # precision
    assert roc_auc_score(mask, np.concatenate(scores)) >= 0.99


def test_genuine_record_in_the_batch_is_not_flagged(data, check):
    ref, _, pool = data
    batch = pool.iloc[:300].reset_index(drop=True)
    poisoned, mask = attacks.truth_serum_replicas(batch, "label", 2, rate=0.02)
    result = check.run(_table(poisoned, ref))
    assert result.status == "fail"
    assert (result.row_flags == mask).all()
    reason = result.row_reasons[int(np.flatnonzero(mask)[0])][0]
    assert reason.startswith("duplicates: ") and "copies in batch with labels {0,1}" in reason


def _replica_pair(m: int, n: int, seed: int = 0):
    """Continuous reference of m rows; a batch of n clean rows whose last two are copies
    of reference row 0 with the other label: the smallest Truth Serum attack."""
    frame = make_dataset(m + n, n_numeric=4, seed=seed)
    ref = frame.iloc[:m].reset_index(drop=True)
    batch = frame.iloc[m:].reset_index(drop=True)
    copies = ref.iloc[[0, 0]].assign(label=1 - ref["label"].iloc[0], record_id=[-1, -2])
    return ref, pd.concat([batch.iloc[: n - 2], copies], ignore_index=True)


def test_two_replicas_are_judged_by_their_exact_null_probability():
    # The two replicas conflict with their genuine record and burst; the pooled data's
    # only twins are these three rows, so under the null the batch holds exactly the
    # two copies with probability n(n-1)(N-n) / (N(N-1)(N-2)); that is the p-value,
    # where the weighted Bonferroni gives about 2.6 times as much: the burst sum's
    # bound on its one cell is that cell's tail (rounded up to its grid), over 0.4,
    # the single tests' over 0.2.
    from sanitizer.checks.duplicates import SINGLE_SHARE, SUM_SHARE

    m, n = 2000, 100
    ref, batch = _replica_pair(m, n)
    check = DuplicatesCheck(alpha=0.005).fit(_table(ref, ref))
    result = check.run(_table(batch, ref))
    big = m + n
    exact = n * (n - 1) * (big - n) / (big * (big - 1) * (big - 2))
    both = n * (n - 1) / (big * (big - 1))
    assert both <= result.info["p_burst_sum"] <= 1.05 * both
    assert result.info["p_bonferroni"] == pytest.approx(
        min(both / SINGLE_SHARE, result.info["p_burst_sum"] / SUM_SHARE)
    )
    assert result.info["p_bonferroni"] > check.alpha  # Bonferroni alone misses them
    assert result.info["null_draws"] > 1000
    assert result.p_value == pytest.approx(exact, abs=0.0012)
    assert result.status == "fail" and result.row_flags[-2:].all()
    bonferroni_only = DuplicatesCheck(alpha=0.005, draws=0).fit(_table(ref, ref))
    assert bonferroni_only.run(_table(batch, ref)).status == "pass"


def _sparse_twins(n: int, seed: int) -> pd.DataFrame:
    """Rows over 400 possible vectors with skewed frequencies and labels that ignore
    them: natural twins, natural conflicts and the odd natural burst."""
    rng = np.random.default_rng(seed)
    vector = np.minimum(rng.zipf(1.6, n), 400)
    return pd.DataFrame(
        {"record_id": np.arange(n), "v": vector.astype(float), "w": (vector % 7).astype(float),
         "label": rng.integers(0, 2, n)}
    )  # fmt: skip


def test_calibrated_pvalue_holds_its_level_on_exchangeable_rows():
    # Each split draws batch and reference from the same pooled rows: rejections at
    # alpha = 0.05 must stay near 5% (Bonferroni alone, the p-value capping the
    # calibrated one, rejects less). 150 splits: 3 standard errors above 5% is 10.3%.
    pooled = _sparse_twins(700, seed=3)
    rejected = bonferroni_rejected = calibrated_runs = 0
    splits = 150
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(pooled))
        ref = pooled.iloc[order[:600]].reset_index(drop=True)
        batch = pooled.iloc[order[600:]].reset_index(drop=True)
        check = DuplicatesCheck(alpha=0.05, tolerance=0.0).fit(_table(ref, ref))
        result = check.run(_table(batch, ref))
        assert result.p_value <= result.info["p_bonferroni"]
        rejected += result.p_value < 0.05
        bonferroni_rejected += result.info["p_bonferroni"] < 0.05
        calibrated_runs += result.info["null_draws"] > 0
    assert calibrated_runs >= 10  # the data does give the calibration work to do
    assert bonferroni_rejected <= rejected <= 0.103 * splits


def _coded(n: int, seed: int) -> pd.DataFrame:
    """Rows over 1,000 equally likely code vectors with coin-flip labels: most vectors
    recur, and a vector's rows carry both labels."""
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 1000, n)
    return pd.DataFrame(
        {"record_id": np.arange(n) + 100_000 * seed, "v": v.astype(float),
         "w": (v % 7).astype(float), "label": rng.integers(0, 2, n)}
    )  # fmt: skip


def test_burst_sum_catches_several_targets_no_single_burst_proves():
    # Six targets copied six times each into 1,000 rows, on codes the 3,000-row
    # reference already holds with both labels: each copy cell alone is p ~ 1e-4,
    # which the single burst test's correction over its testable cells does not
    # prove, while the six together are far out for the burst sum, and the cells
    # that make it so are flagged.
    from sanitizer.checks.duplicates import SINGLE_SHARE

    ref = _coded(3000, seed=1)
    check = DuplicatesCheck(alpha=0.01, tolerance=0.0).fit(_table(ref, ref))
    caught = singles = 0
    hits = flagged = 0
    for seed in range(6):
        clean = _coded(1000, seed=10 + seed)
        vectors = np.repeat(np.random.default_rng(seed).choice(1000, 6, replace=False), 6)
        copies = pd.DataFrame(
            {"record_id": np.arange(10_000, 10_036), "v": vectors.astype(float),
             "w": (vectors % 7).astype(float), "label": 1}
        )  # fmt: skip
        batch = pd.concat([clean.iloc[:964], copies], ignore_index=True)
        assert check.run(_table(clean, ref)).status == "pass"
        result = check.run(_table(batch, ref))
        info = result.info
        assert info["burst_sum"] > 0 and info["burst_sum_cells"] > 0
        caught += result.status == "fail"
        single = min(info["p_conflict"], info["p_unseen_burst"], info["p_burst"])
        singles += single / SINGLE_SHARE < check.alpha
        if result.status == "fail" and single / SINGLE_SHARE >= check.alpha:
            assert "led by the burst sum of copy cells" in result.message
        if result.status == "fail":  # the copy cells that make the sum unusual
            hits += int(result.row_flags[964:].sum())
            flagged += int(result.row_flags.sum())
    assert caught >= 4 and singles <= 2
    # no copy cell is significant alone, yet most copies are flagged, few others
    assert hits >= 0.5 * 36 * caught and hits >= 0.85 * flagged


def test_a_covariate_shift_is_no_burst_sum():
    # Batches drawn where the code is high (weight exp(4 v / 1000)), labels untouched:
    # every common high code is a little over-represented, which the random-subset
    # null of the burst sum calls a burst. Against the domain classifier's shift the
    # batch is what the reference predicts, and passes.
    ref = _coded(3000, seed=1)
    shifted = DuplicatesCheck(alpha=0.01, tolerance=0.0).fit(_table(ref, ref))
    naive = DuplicatesCheck(alpha=0.01, tolerance=0.0, shift_alpha=None).fit(_table(ref, ref))
    naive_failed = 0
    for seed in range(6):
        pool = _coded(20_000, seed=30 + seed)
        weight = np.exp(4.0 * pool["v"].to_numpy() / 1000)
        rows = np.random.default_rng(seed).choice(
            len(pool), 1500, replace=False, p=weight / weight.sum()
        )
        batch = pool.iloc[np.sort(rows)].reset_index(drop=True)
        before = naive.run(_table(batch, ref))
        naive_failed += before.status == "fail"
        after = shifted.run(_table(batch, ref))
        assert after.status == "pass"
        if before.status == "fail":
            assert after.info["shift_p"] < 1e-10
            assert after.info["p_burst_sum_shifted"] > 0.01
    assert naive_failed >= 3


def _assert_conservative(p: np.ndarray, levels: tuple[float, ...]) -> None:
    """P(p <= u) <= u at each level u, within three standard errors of the draws."""
    assert ((p > 0) & (p <= 1)).all()
    for u in levels:
        assert np.mean(p <= u) <= u + 3 * np.sqrt(u * (1 - u) / p.size)


@settings(max_examples=20, deadline=None)
@given(
    totals=st.lists(st.integers(2, 30), min_size=3, max_size=40),
    n=st.integers(50, 400),
    m=st.integers(400, 3000),
    seed=st.integers(0, 2**16),
)
def test_burst_sum_nominal_pvalue_is_conservative(totals, n, m, seed):
    # The burst sum's nominal bound, on random n-subsets of the pooled rows:
    # P(p <= u) <= u at every u (with three standard errors of the 2,000 draws).
    from sanitizer.checks.duplicates import _BurstSum

    total = np.array(totals)
    if total.sum() > n + m:
        return
    burst_sum = _BurstSum(total, n, m)
    colours = np.append(total, n + m - total.sum())
    draws = np.random.default_rng(seed).multivariate_hypergeometric(colours, n, size=2000)
    p = burst_sum.pvalue(burst_sum.statistic(draws[:, :-1], total, burst_sum.cells))
    _assert_conservative(p, (0.01, 0.05, 0.2, 0.5))


@settings(max_examples=15, deadline=None)
@given(
    totals=st.lists(st.integers(2, 30), min_size=3, max_size=40),
    share=st.floats(0.05, 0.5),
    seed=st.integers(0, 2**16),
)
def test_shifted_burst_sum_pvalue_is_conservative(totals, share, seed):
    # Under a covariate shift each pooled row is in the batch on its own (binomial
    # cells, independent): the same bound on the same sum, P(p <= u) <= u.
    from sanitizer.checks.duplicates import _binomial_sum_pvalue

    rng = np.random.default_rng(seed)
    total = np.array(totals)
    inclusion = np.clip(share * rng.lognormal(0.0, 0.5, total.size), 0.01, 0.9)
    p = np.array(
        [
            _binomial_sum_pvalue(rng.binomial(total, inclusion), total, inclusion)
            for _ in range(1000)
        ]
    )
    _assert_conservative(p, (0.01, 0.05, 0.2))


def test_sum_bound_is_the_stop_loss_bound_where_chernoff_is_loose():
    # Twenty independent cells, each weighing 5 with probability 0.001 and 0 else:
    # P(S >= 5) = 1 - 0.999**20 = 0.0198, and E[S] / 5 = 0.02 is the stop-loss bound
    # at a = 0. Chernoff's at the best lambda below 1 is 2.6 times that.
    from sanitizer.checks.duplicates import SUM_LAMBDAS, _SumBound

    bound = _SumBound()
    w = np.array([[0.0, 5.0]])
    bound.add(w, np.log(np.array([[0.999, 0.001]])), count=20)
    exact = 1.0 - 0.999**20
    p = bound.pvalue(np.array([0.0, 2.5, 5.0, 7.0, 10.0, 60.0]))
    assert p[0] == 1.0
    assert exact <= p[2] <= 0.02 + 1e-9
    assert p[1] == pytest.approx(0.04, rel=1e-6)  # E[S] / 2.5: a tail no test can beat
    # two cells at 5: P(S >= 10) ~ C(20, 2) 1e-6; the bound falls with s, past the grid
    assert 190 * 0.999**18 * 1e-6 <= p[4] < p[3] < p[2]
    assert 0 < p[5] <= p[4]
    lam = SUM_LAMBDAS
    chernoff = np.exp(np.min(20 * np.log(0.999 + 0.001 * np.exp(5 * lam)) - 5 * lam))
    assert chernoff > 2.5 * p[2]


@settings(max_examples=30, deadline=None)
@given(
    probs=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=60),
    mean_shift=st.floats(0.0, 3.0),
)
def test_stop_loss_sweep_finds_the_best_a(probs, mean_shift):
    # E[(S - a)+] of a random law on the grid (and of S plus a constant): the sweep's
    # bound at every grid point s is the smallest ratio over all grid points a < s.
    from sanitizer.checks.duplicates import _best_ratios

    law = np.array(probs) + 1e-9
    law /= law.sum()
    grid = np.arange(law.size) * 0.1
    support = grid + mean_shift
    excess = np.array([np.sum(law * np.maximum(support - a, 0.0)) for a in grid])
    table = _best_ratios(excess, grid)
    assert table[0] == 1.0
    for j in range(1, grid.size):
        brute = min(1.0, float(np.min(excess[:j] / (grid[j] - grid[:j]))))
        assert table[j] == pytest.approx(brute, rel=1e-9, abs=1e-15)


def test_burst_sum_statistic_is_the_truncated_product_of_cell_tails():
    from scipy.stats import hypergeom

    from sanitizer.checks.duplicates import SUM_TAU, _BurstSum

    n, m = 500, 500  # half the pooled rows in the batch: a pair is no burst
    total = np.array([[2, 8], [40, 1]])
    burst_sum = _BurstSum(total, n, m)
    # a cell counts where all its rows in the batch would be below SUM_TAU
    assert burst_sum.cells.tolist() == [[False, True], [True, False]]
    batch = np.array([[[2, 8], [30, 1]], [[2, 4], [20, 0]]])
    tails = hypergeom.sf([7, 29], n + m, [8, 40], n)
    assert (tails < SUM_TAU).all()
    expected = np.log(SUM_TAU / tails).sum()
    s = burst_sum.statistic(batch, total, burst_sum.cells)
    assert s == pytest.approx([expected, 0.0])
    p = burst_sum.pvalue(s)
    assert p[1] == 1.0 and 0 < p[0] < 1  # a bound: loose, but it falls with S
    assert burst_sum.pvalue(np.array([expected + 5.0]))[0] < p[0] * np.exp(-2.0)


def test_calibration_statistic_reproduces_the_checks_own_tests():
    # On exact twins, the calibration's statistic on the observed split is the smallest
    # of the three p-values the check reports: on natural twins, and with a burst of
    # copies of a record the comparison set never saw (there the burst test decides).
    from sanitizer.checks.duplicates import (
        SINGLE_SHARE,
        SUM_SHARE,
        _BurstSum,
        _BurstTests,
        _CellBursts,
    )

    pooled = _sparse_twins(700, seed=4)
    ref, natural = (
        pooled.iloc[:600].reset_index(drop=True),
        pooled.iloc[600:].reset_index(drop=True),
    )
    unseen = natural.iloc[[0] * 6].assign(v=333.5, w=1.0)
    burst = pd.concat([natural.iloc[6:], unseen], ignore_index=True)
    check = DuplicatesCheck(tolerance=0.0).fit(_table(ref, ref))
    comp_y = check.reference_y_
    for batch in (natural, burst):
        table = _table(batch, ref)
        info = check.run(table).info
        y = table.label_codes(tuple(check.classes_.tolist()))
        counts = check._twin_counts(
            [check.reference_x_, check.history_x_, table.encoded(check.encoder_)],
            np.concatenate([comp_y, y]),
            np.r_[np.zeros(len(comp_y), bool), np.ones(len(batch), bool)],
        )
        assert not counts.near
        cells = _CellBursts(counts, len(batch), len(comp_y), check.alpha * SINGLE_SHARE)
        assert cells.tests == info["burst_tests"]
        own_total = counts.own_comp + counts.own_batch
        tests = _BurstTests(
            counts, len(batch), len(comp_y), cells, _BurstSum(own_total, len(batch), len(comp_y))
        )
        single = min(info["p_conflict"], info["p_unseen_burst"], info["p_burst"])
        smallest = min(single / SINGLE_SHARE, info["p_burst_sum"] / SUM_SHARE)
        assert tests.min_p(tests.batch[None])[0] == pytest.approx(smallest, rel=1e-9)
    assert info["p_burst"] < min(info["p_conflict"], info["p_unseen_burst"])


def test_twin_in_accepted_history_reveals_the_conflict(data):
    ref, history, pool = data
    batch = pool.iloc[:300].reset_index(drop=True)
    target = history.iloc[[7]]
    copies = pd.concat([target] * 3, ignore_index=True).assign(label=1 - target["label"].iloc[0])
    copies["record_id"] = [900_001, 900_002, 900_003]
    poisoned = pd.concat([batch, copies], ignore_index=True)
    check = DuplicatesCheck(alpha=0.01).fit(_table(ref, ref))
    before = check.run(_table(poisoned, ref))
    assert before.info["conflicts"] == 0  # the genuine record is not known yet
    check.add_history(_table(history, ref))
    after = check.run(_table(poisoned, ref))
    assert after.status == "fail" and after.info["conflicts"] == 3
    assert after.row_flags[-3:].all() and after.flagged_rows == 3
    reason = after.row_reasons[len(batch)][0]
    label = str(target["label"].iloc[0])
    assert f"reference/history twin has label {label}" in reason
    assert after.info["comparison_rows"] == len(ref) + len(history)


def test_history_is_bounded(data):
    ref, history, _ = data
    check = DuplicatesCheck(max_history_rows=500).fit(_table(ref, ref))
    check.add_history(_table(history, ref))
    check.add_history(_table(history.iloc[:100], ref))
    assert len(check.history_y_) == 500 and check.n_comparison_ == len(ref) + 500


def _lowcard(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    b = rng.choice(["x", "y"], n)
    c = rng.integers(0, 4, n)
    logit = (a == "a") * 1.0 - (b == "y") * 0.8 + 0.3 * c - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"record_id": np.arange(n), "a": a, "b": b, "c": c, "label": y})


def test_low_cardinality_natural_duplicates_and_conflicts_pass():
    fails = 0
    for r in range(6):
        ref = _lowcard(2000, 10 + r)
        check = DuplicatesCheck(alpha=0.01).fit(_table(ref, ref))
        assert check.comparison_conflicts_ > 0 or check.comparison_twin_pairs_ > 0
        for s, n in enumerate((50, 500, 3000)):
            result = check.run(_table(_lowcard(n, 100 + 10 * r + s), ref))
            fails += result.status == "fail"
            assert result.info["rows_with_batch_twin"] > 0
    assert fails <= 1


def test_conflicting_pairs_count_once_in_the_reference_rate():
    """A twin pair with two labels is two conflicting rows but one event: the
    reference's conflict count enters the batch test as its clusters (exact and near
    twins alike), so a batch with as many conflicting rows per row as the reference
    is judged against the pairs' count, not a binomial count of their rows."""
    r = np.random.default_rng(4)
    x = r.normal(size=(300, 3)) * 10  # far apart: no natural twins
    y = r.integers(0, 2, 300)
    copies = x[:40] + np.r_[np.zeros((20, 3)), np.full((20, 3), 0.01)]  # exact, near
    ref = pd.DataFrame(np.vstack([x, copies]), columns=["a", "b", "c"])
    ref["label"] = np.r_[y, 1 - y[:40]]
    ref["record_id"] = np.arange(len(ref))
    check = DuplicatesCheck(alpha=0.01).fit(_table(ref, ref))
    assert check.comparison_conflicts_ == 80
    assert check.conflict_clusters_ == 40
    # 35 of 100 batch rows conflict with a reference row: against 40 pairs among an
    # effective 170 rows, not 80 of 340 rows (p 0.017)
    fresh = r.normal(size=(65, 3)) * 10
    batch = pd.DataFrame(np.vstack([x[100:135] + 0.01, fresh]), columns=["a", "b", "c"])
    batch["label"] = np.r_[1 - y[100:135], r.integers(0, 2, 65)]
    batch["record_id"] = np.arange(1000, 1100)
    result = check.run(_table(batch, ref))
    assert result.info["conflicts"] == 35
    assert result.info["comparison_conflict_clusters"] == 40
    expected = fisher_exact([[35, 65], [40, 130]], alternative="greater")[1]
    assert result.info["p_conflict"] == pytest.approx(expected)
    assert expected > 0.025


def test_conflicts_link_through_comparison_rows_only():
    """A batch row's comparison twins are found as the reference's rows find theirs
    (the leave-one-out rate it is judged against): directly or through a comparison
    row, not through another batch row, which a large batch has many of."""
    r = np.random.default_rng(6)
    x = r.normal(size=(300, 3)) * 10  # far apart: no natural twins
    y = r.integers(0, 2, 300)

    def frame(rows: np.ndarray, labels: np.ndarray, start: int) -> pd.DataFrame:
        out = pd.DataFrame(rows, columns=["a", "b", "c"])
        out["label"] = labels
        out["record_id"] = np.arange(start, start + len(rows))
        return out

    ref = frame(x, y, 0)
    check = DuplicatesCheck(alpha=0.01).fit(_table(ref, ref))
    step = 0.6 * check.tolerance * check.encoder_.scale  # 0.6 of the twin tolerance
    far = r.normal(size=(20, 3)) * 10 + 1000
    # x[0] + 2 steps is no twin of x[0]; x[0] + 1 step is a twin of both
    rows = np.vstack([x[0] + 2 * step, x[0] + step, far])
    batch = frame(rows, np.r_[1 - y[0], y[0], r.integers(0, 2, 20)], 1000)
    assert check.run(_table(batch, ref)).info["conflicts"] == 0
    # the same link through a reference row: a conflict
    ref2 = frame(np.vstack([x, x[0] + step]), np.r_[y, y[0]], 0)
    check2 = DuplicatesCheck(alpha=0.01).fit(_table(ref2, ref2))
    batch2 = batch.drop(index=1).reset_index(drop=True)
    assert check2.run(_table(batch2, ref2)).info["conflicts"] == 1


def test_twin_pairs_of_a_batch_larger_than_the_reference_are_judged_with_its_noise():
    """A 600-row reference of continuous data holds few near-twin pairs by chance (none
    here, where about four are usual), and clean batches of 1,000 rows hold 7 to 13.
    Against the reference's add-one rate taken as exact, 2.8 were expected and 13
    failed (p 1e-5); the batch's share of the two counts is binomial."""
    r = np.random.default_rng(5)

    def rows(n: int) -> pd.DataFrame:
        z = r.normal(size=(n, 3))
        frame = pd.DataFrame(z, columns=["a", "b", "c"])
        frame["label"] = (z[:, 0] + z[:, 1] > 0).astype(int)
        frame["record_id"] = np.arange(n)
        return frame

    ref = rows(600)
    check = DuplicatesCheck(alpha=0.002).fit(_table(ref, ref))
    results = [check.run(_table(rows(1000), ref)) for _ in range(6)]
    pairs = [res.info["unseen_twin_pairs"] for res in results]
    assert check.comparison_twin_pairs_ == 0 and max(pairs) >= 12  # the case above
    assert poisson.sf(max(pairs) - 1, 1000 * 999 / 2 * check.pair_rate_) < 1e-4
    assert not any(res.failed for res in results), [res.message for res in results]
    worst = max(pairs)
    share = 1000 * 999 / (1000 * 999 + 600 * 599)
    assert min(res.info["p_unseen_burst"] for res in results) == pytest.approx(
        binom.sf(worst - 1, worst + round(check.comparison_twin_pairs_), share)
    )


@settings(max_examples=25, deadline=None)
@given(
    rate=st.floats(1e-6, 1e-4),
    n=st.integers(50, 2000),
    m=st.integers(50, 2000),
)
def test_pair_test_holds_its_level_when_the_rate_is_estimated(rate, n, m):
    """Batch and comparison twin-pair counts Poisson at one rate per row pair: the test
    rejects at most its level, whatever the sizes (the plug-in Poisson test did not)."""
    r = np.random.default_rng(int(rate * 1e9) + n * 7 + m)
    batch = r.poisson(rate * n * (n - 1) / 2, 4000)
    comparison = r.poisson(rate * m * (m - 1) / 2, 4000)
    p = _pair_pvalue(batch, comparison, n, m)
    assert np.mean(p <= 0.01) <= 0.01 + 3 * np.sqrt(0.01 * 0.99 / 4000)


def test_replication_burst_of_a_common_vector_is_caught():
    ref = _lowcard(2000, 1)
    check = DuplicatesCheck(alpha=0.01).fit(_table(ref, ref))
    batch = _lowcard(500, 2)
    rare = (batch["a"] == "c") & (batch["b"] == "y") & (batch["c"] == 0)
    row = batch[rare].iloc[[0]]
    burst = pd.concat([row] * 40, ignore_index=True)
    poisoned = pd.concat([batch, burst], ignore_index=True)
    result = check.run(_table(poisoned, ref))
    assert result.status == "fail" and result.info["p_burst"] < 1e-6
    assert result.row_flags[-40:].all()


def test_dense_data_falls_back_to_exact_matching(caplog):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=6000), "label": rng.integers(0, 2, 6000)})
    ref, batch = frame.iloc[:4000], frame.iloc[4000:].reset_index(drop=True)
    config = SanitizerConfig(label_column="label")
    check = DuplicatesCheck(alpha=0.01).fit(Table(ref, DataContract.from_reference(ref, config)))
    assert not check.near_matching_
    result = check.run(Table(batch, DataContract.from_reference(ref, config)))
    assert result.status == "pass" and not result.info["near_matching"]
    copies = pd.concat([batch.iloc[[0]]] * 4, ignore_index=True).assign(label=1)
    result = check.run(
        Table(
            pd.concat([batch, copies], ignore_index=True), DataContract.from_reference(ref, config)
        )
    )
    assert result.status == "fail" and result.row_flags[-4:].all()


def test_tiny_batch_and_bad_usage(data, check):
    ref, _, pool = data
    result = check.run(_table(pool.iloc[:3].reset_index(drop=True), ref))
    assert result.status == "pass" and result.row_scores.shape == (3,)
    with pytest.raises(NotFittedError, match="fit"):
        DuplicatesCheck().run(_table(pool.iloc[:3], ref))
    with pytest.raises(NotFittedError):
        DuplicatesCheck().add_history(_table(pool.iloc[:3], ref))
    with pytest.raises(ValueError, match="tolerance"):
        DuplicatesCheck(tolerance=-1)
    with pytest.raises(ValueError, match="n_threads"):
        DuplicatesCheck(n_threads=0)
    with pytest.raises(ValueError, match="draws"):
        DuplicatesCheck(draws=-1)
    with pytest.raises(ValueError, match="shift_alpha"):
        DuplicatesCheck(shift_alpha=1.5)
    with pytest.raises(ValueError, match="max_shift_rows"):
        DuplicatesCheck(max_shift_rows=5)
    assert DuplicatesCheck(shift_alpha=0).shift_alpha is None


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 150), copies=st.booleans())
def test_scores_are_finite_aligned_and_permute_with_rows(data, check, seed, n, copies):
    ref, _, pool = data
    rng = np.random.default_rng(seed)
    batch = pool.iloc[rng.choice(len(pool), n, replace=False)].reset_index(drop=True)
    if copies:
        batch = pd.concat([batch, batch.iloc[: max(1, n // 10)]], ignore_index=True)
    result = check.run(_table(batch, ref))
    scores = result.row_scores
    assert scores.shape == (len(batch),) and np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    order = rng.permutation(len(batch))
    permuted = check.run(_table(batch.iloc[order].reset_index(drop=True), ref))
    np.testing.assert_allclose(permuted.row_scores, scores[order])
    assert (permuted.row_flags == result.row_flags[order]).all()
    assert permuted.p_value == pytest.approx(result.p_value)


def test_reference_without_features_is_one_vector():
    bare = pd.DataFrame({"record_id": range(100), "label": [0, 1] * 50})
    result = DuplicatesCheck().fit(_table(bare, bare)).run(_table(bare.iloc[:10], bare))
    assert result.status == "pass" and not result.row_flags.any()


@pytest.mark.parametrize(("dims", "threads"), [(1, 1), (3, 1), (12, 1), (3, 3), (4, 2)])
def test_grid_search_finds_exactly_the_brute_force_pairs(dims, threads):
    """One thread or several (the grid's offsets searched side by side): the same pairs."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(400, 12))
    near = base[:60] + rng.uniform(-0.049, 0.049, size=(60, 12))
    vectors = np.vstack([base, near, near[:5] + 0.03, base[:10]])
    check = DuplicatesCheck(tolerance=0.05, n_threads=threads)
    fast = check._grid_pairs(_Rounded([vectors[:300], vectors[300:]]), np.arange(dims), np.inf)
    assert fast is not None
    gap = np.abs(vectors[:, None, :] - vectors[None, :, :]).max(axis=2)
    brute = sorted(zip(*np.nonzero(gap <= 0.05 + 1e-12), strict=True))
    assert sorted(zip(*(a.tolist() for a in fast), strict=True)) == brute
    assert len(brute) > len(vectors)  # the planted near twins are there


def test_grid_search_gives_up_over_its_candidate_budget_on_any_thread_count():
    vectors = np.zeros((200, 3))  # one cell: 200 * 199 / 2 candidate pairs
    for threads in (1, 2):
        check = DuplicatesCheck(tolerance=0.05, n_threads=threads)
        assert check._grid_pairs(_Rounded([vectors]), np.arange(2), 1000) is None
        assert check._grid_pairs(_Rounded([vectors]), np.arange(2), 1e6) is not None
