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
    outside. Unbounded, that made the "4" prior ratio 12.9, the cell's reference
    expectation for "5" fell from 12% to 3%, and 19 "5"s in 98 rows gave p = 3e-7."""
    from sanitizer.checks._backdoor_stats import _label_tests

    ref = np.array([[33, 67, 4, 16, 85, 55, 4, 92, 57, 28], [53, 30, 86, 85, 0, 25, 90, 0, 32, 56]])

    def p_values(batch_counts: list[list[int]]) -> np.ndarray:
        counts = np.asarray(batch_counts)
        cells = np.repeat(np.arange(20) // 10, counts.ravel())
        y = np.repeat(np.tile(np.arange(10), 2), counts.ravel())
        return _label_tests("f54", cells, y, ref.astype(float), ["== 0", "> 0"], 3, 0.05).p

    clean = [[14, 14, 3, 2, 10, 19, 0, 19, 9, 8], [17, 6, 22, 15, 4, 4, 14, 0, 6, 14]]
    assert p_values(clean).min() > 1e-3
    # the cell with a third of its rows "5" (reference: 12%) is still found
    poisoned = [[14, 14, 3, 2, 10, 35, 0, 5, 9, 8], [17, 6, 22, 15, 4, 4, 14, 0, 6, 14]]
    assert p_values(poisoned)[5] < 1e-6
