"""The backdoor check's statistics: Tarone's count and the smallest attainable Fisher p-value."""

from __future__ import annotations

import numpy as np
from scipy.stats import hypergeom

from sanitizer.checks._backdoor_stats import _hyper_max_pmf, _tarone_count


def test_tarone_count() -> None:
    # Tests that can never reach alpha / K do not count.
    assert _tarone_count(np.array([1e-9, 0.5, 0.9, 0.9]), 0.01) == 1
    assert _tarone_count(np.array([1e-9] * 5), 0.01) == 5
    assert _tarone_count(np.zeros(0), 0.01) == 1


def test_hyper_max_pmf_is_the_pmf_at_the_largest_possible_count() -> None:
    total, successes, draws = np.array([50, 50, 20]), np.array([5, 30, 20]), np.array([10, 10, 7])
    expected = hypergeom.pmf(np.minimum(successes, draws), total, successes, draws)
    assert np.allclose(_hyper_max_pmf(total, successes, draws), expected)
