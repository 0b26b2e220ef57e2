"""The domain classifier and its weights (``sanitizer.checks._shift``)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sanitizer.checks._shift import (
    ShiftDesign,
    domain_shift,
    effective_share,
    shift_weights,
    truncated,
)


def _rows(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two numeric columns and a one-hot pair, as the shared encoder writes them."""
    cat = rng.random(n) < 0.3
    return np.column_stack([rng.normal(size=n), rng.normal(size=n), cat, ~cat]).astype(float)


def test_same_distribution_is_no_shift_and_a_tilt_is() -> None:
    rng = np.random.default_rng(0)
    reference = _rows(3000, rng)
    same = [domain_shift(reference, _rows(1000, rng), 4000, s).p for s in range(5)]
    assert min(same) > 0.01, same
    pool = _rows(20_000, rng)
    tilt = np.exp(1.0 * pool[:, 0])
    batch = pool[rng.choice(len(pool), 1000, replace=False, p=tilt / tilt.sum())]
    shift = domain_shift(reference, batch, 4000, 0)
    assert shift is not None and shift.p < 1e-20
    # the odds follow the tilt: log p(batch | x) / p(reference | x) ~ x0 + const
    odds = shift.log_odds(reference)
    assert np.corrcoef(odds, reference[:, 0])[0, 1] > 0.95
    assert 0.7 < np.polyfit(reference[:, 0], odds, 1)[0] < 1.3


def test_design_skips_constant_columns_and_bins_only_many_valued_ones() -> None:
    rng = np.random.default_rng(1)
    reference = np.column_stack([rng.normal(size=500), np.full(500, 3.0), rng.random(500) < 0.5])
    design = ShiftDesign(reference.astype(float))
    assert design.columns.tolist() == [0, 2]
    # column 0: its value and 7 bin indicators; the two-valued column 2: its value only
    assert [len(e) for e in design.edges] == [7, 0]
    assert design(reference).shape == (500, design.width) == (500, 9)


def test_nothing_to_classify() -> None:
    rng = np.random.default_rng(2)
    assert domain_shift(np.ones((100, 2)), rng.normal(size=(50, 2)), 4000, 0) is None
    assert domain_shift(_rows(100, rng), _rows(50, rng), 4000, 0, rows=np.zeros(0, int)) is None


def test_truncated_weights_keep_their_order_and_the_effective_size_floor() -> None:
    rng = np.random.default_rng(0)
    heavy = np.exp(rng.normal(scale=6.0, size=2000))  # effective share ~ 1 row
    assert effective_share(heavy) < 0.01
    capped = truncated(heavy, 0.1)
    assert 0.1 <= effective_share(capped) < 0.11
    order = np.argsort(heavy)
    assert np.all(np.diff(capped[order]) >= 0)  # capped from above only
    mild = rng.uniform(0.5, 1.5, size=2000)
    assert np.allclose(truncated(mild, 0.1), mild / mild.max())
    assert effective_share(truncated(np.r_[1.0, np.zeros(99)], 0.1)) >= 0.1


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 300), elements=st.floats(-700.0, 700.0)),
    st.floats(0.01, 0.9),
)
def test_weights_from_any_log_odds_meet_the_floor_in_order(
    log_odds: np.ndarray, floor: float
) -> None:
    w = shift_weights(log_odds, floor)
    assert np.all(np.isfinite(w)) and np.all(w > 0) and w.max() == 1.0
    assert effective_share(w) >= floor - 1e-9
    order = np.argsort(log_odds, kind="stable")
    assert np.all(np.diff(w[order]) >= -1e-12)  # a larger odds never weighs less
