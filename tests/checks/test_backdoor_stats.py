"""The backdoor check's statistics: Tarone's count and the smallest attainable Fisher p-value."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import hypergeom

from sanitizer.checks import _backdoor_stats
from sanitizer.checks._backdoor_stats import _bin_edges, _cell_codes, _hyper_max_pmf
from sanitizer.checks._common import tarone_count as _tarone_count


def test_tarone_count() -> None:
    # Tests that can never reach alpha / K do not count.
    assert _tarone_count(np.array([1e-9, 0.5, 0.9, 0.9]), 0.01) == 1
    assert _tarone_count(np.array([1e-9] * 5), 0.01) == 5
    assert _tarone_count(np.zeros(0), 0.01) == 1


def test_hyper_max_pmf_is_the_pmf_at_the_largest_possible_count() -> None:
    total, successes, draws = np.array([50, 50, 20]), np.array([5, 30, 20]), np.array([10, 10, 7])
    expected = hypergeom.pmf(np.minimum(successes, draws), total, successes, draws)
    assert np.allclose(_hyper_max_pmf(total, successes, draws), expected)


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(5, 60),
    m=st.integers(5, 200),
    total=st.integers(0, 80),
    min_rows=st.integers(2, 6),
    min_fold=st.sampled_from([1.0, 3.0, 5.0]),
    cap=st.sampled_from([None, 0.5]),
)
def test_excess_p_min_is_the_smallest_p_a_finding_can_have(
    n: int, m: int, total: int, min_rows: int, min_fold: float, cap: float | None
) -> None:
    # Brute force over every batch count the margins allow: which could be findings,
    # and the smallest Fisher p-value among them (1 if none could: Tarone's count
    # must not pay for a test that can never fail the batch).
    total = min(total, n + m)
    max_rows = None if cap is None else cap * n
    xs = np.arange(max(0, total - m), min(total, n) + 1)
    ref = total - xs
    fold = (xs / n) / ((ref + 1) / (m + 1))
    finding = (xs >= min_rows) & (fold >= min_fold) & (max_rows is None or xs <= max_rows)
    p = hypergeom.sf(xs - 1, n + m, total, n)
    expected = p[finding].min() if finding.any() else 1.0
    p_min, ok, p_each = _backdoor_stats._excess_tests(xs, ref, n, m, min_rows, min_fold, max_rows)
    assert np.allclose(p_min, expected, rtol=1e-9, atol=1e-300)
    assert np.array_equal(ok, finding)
    assert np.allclose(p_each[finding], p[finding]) and np.all(p_each[~finding] == 1.0)


def test_excess_common_value_costs_nothing() -> None:
    # A value 40% of the reference holds can never be five times as frequent in the
    # batch: it does not count, where a value the reference never holds does.
    p_min, _, _ = _backdoor_stats._excess_tests(
        np.array([90, 4]), np.array([2000, 0]), 200, 5000, 2, 5.0
    )
    assert p_min[0] == 1.0 and p_min[1] < 1e-5
    assert _tarone_count(p_min, 0.001) == 1


def _searched(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    cells = np.searchsorted(edges, values)
    cells[np.isnan(values)] = -1
    return cells


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_bins=st.integers(2, 60),
    tail=st.sampled_from([0.0, 1.0, 3.0]),
    grid=st.sampled_from([1, 3, 4096]),
)
def test_cell_codes_equal_a_binary_search(seed: int, n_bins: int, tail: float, grid: int) -> None:
    """Whatever the grid's guesses (a 1-cell grid guesses badly), the fix-up is exact:
    heavy tails, discrete columns, values on the edges, NaN and infinities."""
    rng = np.random.default_rng(seed)
    ref = rng.standard_t(df=1.0 + 10.0 / (1.0 + tail), size=2000) * 10.0**tail
    if seed % 3 == 0:
        ref = np.round(ref)
    edges = _bin_edges(np.sort(ref), n_bins)
    values = np.concatenate(
        [rng.choice(ref, 500), edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
         [np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, -0.0]]
    )  # fmt: skip
    rng.shuffle(values)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_backdoor_stats, "CELL_GRID", grid)
        assert np.array_equal(_cell_codes(edges, values), _searched(edges, values))


def test_cell_codes_with_fewer_than_two_edges_or_no_values() -> None:
    for edges in [np.zeros(0), np.array([0.5]), np.array([1e-320, 2e-320])]:
        values = np.array([np.nan, 0.0, 0.5, 1.0, -1.0])
        assert np.array_equal(_cell_codes(edges, values), _searched(edges, values))
    assert _cell_codes(np.array([0.0, 1.0]), np.zeros(0)).tolist() == []


def test_label_tests_a_class_confined_to_one_cell_does_not_crowd_out_the_others() -> None:
    """`digits`, pixel 54 (the benchmark's benign prior-drift batch, seed 0): every
    reference "4" lies in the cell of zeros, the clean batch has 4 of its 14 "4"s
    outside. A reference re-weighted by an unbounded prior ratio (12.9 for "4") gave
    the cell's 19 "5"s in 98 rows p = 3e-7; the odds-ratio test needs no weights."""
    from sanitizer.checks._backdoor_stats import _label_tests

    ref = np.array([[33, 67, 4, 16, 85, 55, 4, 92, 57, 28], [53, 30, 86, 85, 0, 25, 90, 0, 32, 56]])

    def p_values(batch_counts: list[list[int]]) -> np.ndarray:
        counts = np.asarray(batch_counts)
        cells = np.repeat(np.arange(20) // 10, counts.ravel())
        y = np.repeat(np.tile(np.arange(10), 2), counts.ravel())
        return _label_tests("f54", cells, y, ref.astype(float), ["== 0", "> 0"], 3, 0.05).p

    clean = [[14, 14, 3, 2, 10, 19, 0, 19, 9, 8], [17, 6, 22, 15, 4, 4, 14, 0, 6, 14]]
    assert p_values(clean).min() > 0.05
    # 16 of the cell's "7"s relabelled "5": the smallest p-value, though a two-cell
    # column ties the class's rows outside the cell (4 "5"s) to the test
    poisoned = [[14, 14, 3, 2, 10, 35, 0, 3, 9, 8], [17, 6, 22, 15, 4, 4, 14, 0, 6, 14]]
    p = p_values(poisoned)
    assert p[5] < 0.005 and p[5] == p.min()


def _zelen_brute(row: tuple[int, ...]) -> tuple[float, float]:
    """Zelen's test by enumeration: batch count x in the cell and of the class, given
    both tables' cell and class margins and the total count a + ref_a."""
    from math import comb

    a, cell, cls, n, ref_a, ref_cell, ref_cls, m = row
    t = a + ref_a
    weights = {
        x: comb(cell, x) * comb(n - cell, cls - x) * comb(ref_cell, t - x)
        * comb(m - ref_cell, ref_cls - t + x)
        for x in range(t + 1)
        if x <= cell and 0 <= cls - x <= n - cell and t - x <= ref_cell
        and 0 <= ref_cls - t + x <= m - ref_cell
    }  # fmt: skip
    total = sum(weights.values())
    return sum(w for x, w in weights.items() if x >= a) / total, weights[max(weights)] / total


@st.composite
def _two_tables(draw: st.DrawFn) -> tuple[int, ...]:
    def table(max_rows: int) -> tuple[int, int, int, int]:
        n = draw(st.integers(1, max_rows))
        cell, cls = draw(st.integers(0, n)), draw(st.integers(0, n))
        a = draw(st.integers(max(0, cls - (n - cell)), min(cell, cls)))
        return a, cell, cls, n

    return table(60) + table(90)


@settings(max_examples=60, deadline=None)
@given(st.lists(_two_tables(), min_size=1, max_size=20))
def test_zelen_test_equals_enumeration(rows: list[tuple[int, ...]]) -> None:
    from sanitizer.checks._backdoor_stats import _TwoTables, _zelen_min_p, _zelen_sf

    tables = _TwoTables(*(np.array(v) for v in zip(*rows, strict=True)))
    expected = np.array([_zelen_brute(r) for r in rows])
    assert np.allclose(_zelen_sf(tables), expected[:, 0], rtol=1e-9, atol=1e-12)
    assert np.allclose(_zelen_min_p(tables), expected[:, 1], rtol=1e-9, atol=1e-12)


def test_zelen_test_blocks_and_wide_supports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of any size give the same p-values; Tarone's count takes a test whose
    count can take more than ``ZELEN_MAX_SUPPORT`` values as attainable (p_min 0)."""
    from sanitizer.checks._backdoor_stats import _TwoTables, _zelen_min_p, _zelen_sf

    rows = [(30, 400, 500, 1000, 900, 4000, 5000, 10000), (3, 5, 40, 100, 10, 50, 300, 1000),
            (0, 0, 10, 20, 5, 10, 10, 40)]  # fmt: skip
    tables = _TwoTables(*(np.array(v) for v in zip(*rows, strict=True)))
    p, p_min = _zelen_sf(tables), _zelen_min_p(tables)
    assert (
        p_min[0] == 0.0 and p_min[1] == pytest.approx(_zelen_brute(rows[1])[1]) and p_min[2] == 1.0
    )
    monkeypatch.setattr(_backdoor_stats, "ZELEN_BLOCK", 7)
    assert np.allclose(_zelen_sf(tables), p, rtol=1e-12)
    assert np.allclose(p[1:], [_zelen_brute(r)[0] for r in rows[1:]], rtol=1e-9)
    # margins no table could have (more rows in the cell and class than in the cell):
    # no evidence, never a NaN for Tarone's count to sort
    odd = _TwoTables(*(np.array([v]) for v in (5, 2, 5, 10, 1, 3, 3, 10)))
    assert _zelen_sf(odd).tolist() == [1.0] and _zelen_min_p(odd).tolist() == [1.0]
