"""Attack generators: each writes exactly the rows its mask names, as its threat says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sanitizer import attacks
from sanitizer.samples import make_dataset, split

LABEL = "label"
FEATURES = ["x0", "x1", "x2", "x3", "x4", "x5", "region", "plan"]


@pytest.fixture(scope="module")
def parts() -> tuple[pd.DataFrame, pd.DataFrame]:
    ref, batch = split(make_dataset(3000, seed=11), [2000, 1000], seed=1)
    return ref, batch


def _unchanged_outside(before: pd.DataFrame, after: pd.DataFrame, mask: np.ndarray) -> None:
    pd.testing.assert_frame_equal(
        before[~mask].reset_index(drop=True),
        after[~mask].reset_index(drop=True),
        check_dtype=False,
    )


def test_random_flips_change_exactly_the_masked_labels(parts):
    _, batch = parts
    original = batch.copy()
    out, mask = attacks.flip_labels_random(batch, LABEL, 3, rate=0.1)
    pd.testing.assert_frame_equal(batch, original)  # input untouched
    assert mask.dtype == bool and mask.shape == (len(batch),)
    assert mask.sum() == 100
    assert (out[LABEL].to_numpy()[mask] != batch[LABEL].to_numpy()[mask]).all()
    _unchanged_outside(batch, out, mask)


def test_random_flips_are_reproducible(parts):
    _, batch = parts
    a, ma = attacks.flip_labels_random(batch, LABEL, 5, rate=0.05)
    b, mb = attacks.flip_labels_random(batch, LABEL, 5, rate=0.05)
    pd.testing.assert_frame_equal(a, b)
    assert (ma == mb).all()


def test_targeted_flips_relabel_source_rows_near_the_boundary(parts):
    from sklearn.linear_model import LogisticRegression

    ref, batch = parts
    out, mask = attacks.flip_labels_targeted(
        batch, LABEL, 0, reference=ref, source=0, target=1, rate=0.05
    )
    assert mask.sum() == 50
    assert (batch[LABEL].to_numpy()[mask] == 0).all()
    assert (out[LABEL].to_numpy()[mask] == 1).all()
    _unchanged_outside(batch, out, mask)
    numeric = [f"x{i}" for i in range(6)]
    model = LogisticRegression().fit(ref[numeric], ref[LABEL])
    p1 = model.predict_proba(batch[numeric])[:, 1]
    source_rows = batch[LABEL].to_numpy() == 0
    # flipped rows sit closer to the boundary than the typical source-class row
    assert np.median(p1[mask]) > np.quantile(p1[source_rows], 0.75)


def test_truth_serum_copies_reference_targets_with_a_wrong_label(parts):
    ref, batch = parts
    out, mask = attacks.truth_serum_replicas(batch, LABEL, 2, reference=ref, rate=0.03)
    assert len(out) == len(batch) and mask.sum() == 30
    copies = out[mask]
    merged = copies.merge(ref, on=FEATURES, suffixes=("", "_ref"))
    assert len(merged) == len(copies)  # every copy is an exact reference record
    assert (merged[LABEL] != merged[f"{LABEL}_ref"]).all()
    sizes = copies.groupby(FEATURES).size()
    assert sizes.min() >= 2 and sizes.max() <= 8
    assert (copies.groupby(FEATURES)[LABEL].nunique() == 1).all()  # one wrong label each
    assert (copies["record_id"].to_numpy() == batch["record_id"].to_numpy()[mask]).all()


def test_truth_serum_from_the_batch_keeps_the_genuine_row(parts):
    _, batch = parts
    out, mask = attacks.truth_serum_replicas(batch, LABEL, 4, rate=0.02)
    copies = out[mask]
    genuine = out[~mask].merge(copies[FEATURES].drop_duplicates(), on=FEATURES)
    assert len(genuine) == copies[FEATURES].drop_duplicates().shape[0]


def test_truth_serum_jitter_and_insert(parts):
    ref, batch = parts
    out, mask = attacks.truth_serum_replicas(
        batch, LABEL, 1, reference=ref, rate=0.02, jitter=0.01, insert=True
    )
    assert len(out) == len(batch) + mask.sum() and mask[len(batch) :].all()
    assert out["record_id"].is_unique
    copies = out[mask]
    assert copies.merge(ref, on=FEATURES).empty  # jittered: no exact twin
    dist = np.abs(copies["x0"].to_numpy()[:, None] - ref["x0"].to_numpy()[None, :]).min(axis=1)
    assert dist.max() < 0.1 * ref["x0"].std()


def test_backdoor_dirty_label_sets_a_rare_in_range_trigger(parts):
    ref, batch = parts
    out, mask = attacks.backdoor_trigger(
        batch, LABEL, 0, reference=ref, target=1, features=["x1", "x4"], rate=0.02
    )
    assert mask.sum() == 20
    assert (batch[LABEL].to_numpy()[mask] == 0).all() and (out[LABEL][mask] == 1).all()
    for col in ("x1", "x4"):
        value = out[col].to_numpy()[mask]
        assert np.unique(value).size == 1
        assert ref[col].min() <= value[0] <= ref[col].max()
        assert (ref[col] <= value[0]).mean() == pytest.approx(0.01, abs=0.005)


def test_backdoor_trigger_on_sparse_discrete_columns_is_a_rare_inner_value():
    """Pixel-like columns: the 1% quantile is 0, the commonest value; the trigger is not."""
    rng = np.random.default_rng(4)
    pixels = np.where(rng.random((2000, 3)) < 0.9, 0, rng.integers(1, 17, size=(2000, 3)))
    frame = pd.DataFrame(pixels, columns=["p0", "p1", "p2"]).assign(
        flat=0, label=rng.integers(0, 3, 2000)
    )
    ref, batch = frame.iloc[:1500], frame.iloc[1500:].reset_index(drop=True)
    out, mask = attacks.backdoor_trigger(batch, LABEL, 0, reference=ref, n_features=3)
    for col in ("p0", "p1", "p2"):
        value = out.loc[mask, col].iloc[0]
        assert (out.loc[mask, col] == value).all()
        assert 0 < value < ref[col].max() and (ref[col] == value).mean() <= 0.02
    assert (out["flat"] == 0).all()  # a constant column cannot carry a trigger


def test_backdoor_clean_label_keeps_labels(parts):
    ref, batch = parts
    out, mask = attacks.backdoor_trigger(
        batch, LABEL, 0, reference=ref, target=1, rate=0.02, clean_label=True
    )
    assert (out[LABEL] == batch[LABEL]).all()
    assert (out[LABEL].to_numpy()[mask] == 1).all()


def test_in_range_outliers_stay_inside_every_column_range(parts):
    ref, batch = parts
    out, mask = attacks.in_range_outliers(batch, LABEL, 0, reference=ref, rate=0.05)
    assert mask.sum() == 50
    for col in [f"x{i}" for i in range(6)]:
        assert out[col].between(ref[col].min(), ref[col].max()).to_numpy()[mask].all()
    for col in ("region", "plan"):
        assert set(out[col][mask]) <= set(ref[col])
    # the combination breaks the x-correlations of the reference
    corr_ref = np.corrcoef(ref[["x0", "x1", "x2", "x3"]].to_numpy().T)
    corr_out = np.corrcoef(out.loc[mask, ["x0", "x1", "x2", "x3"]].to_numpy().T)
    off = ~np.eye(4, dtype=bool)
    assert np.abs(corr_out[off]).max() < np.abs(corr_ref[off]).max()
    _unchanged_outside(batch, out, mask)


def test_benign_drifts_select_clean_rows_without_duplicates(parts):
    _, pool = parts
    shifted, mask = attacks.covariate_drift(pool, LABEL, 0, column="x0", strength=0.5, size=400)
    assert len(shifted) == 400 and not mask.any()
    assert shifted["record_id"].is_unique and set(shifted["record_id"]) <= set(pool["record_id"])
    assert shifted["x0"].mean() > pool["x0"].mean()
    prior, mask = attacks.prior_drift(pool, LABEL, 0, target=1, factor=2.0, size=400)
    assert not mask.any() and prior["record_id"].is_unique
    assert (prior[LABEL] == 1).mean() > (pool[LABEL] == 1).mean()


def test_covariate_drift_skips_a_constant_first_column(parts):
    """Like `digits`' corner pixel: a constant first feature would weight every row
    alike and draw a clean batch; the drift goes to the first feature that varies."""
    _, pool = parts
    pool = pool.copy()
    pool.insert(1, "corner", 0.0)
    shifted, _ = attacks.covariate_drift(pool, LABEL, 0, strength=1.0, size=400)
    first = next(c for c in pool.columns if c not in ("record_id", "corner", LABEL))
    assert pd.api.types.is_numeric_dtype(pool[first])
    assert shifted[first].mean() > pool[first].mean() + 0.3 * pool[first].std()


def test_invalid_arguments_raise(parts):
    _, batch = parts
    with pytest.raises(ValueError, match="rate"):
        attacks.flip_labels_random(batch, LABEL, 0, rate=1.5)
    with pytest.raises(ValueError, match="copies"):
        attacks.truth_serum_replicas(batch, LABEL, 0, copies=(3, 2))
    one_class = batch[batch[LABEL] == 0]
    with pytest.raises(ValueError, match="two classes"):
        attacks.flip_labels_random(one_class, LABEL, 0)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rate=st.floats(0.001, 0.2),
    which=st.sampled_from(["random", "serum", "backdoor", "outlier"]),
)
def test_masks_align_with_rows(parts, seed, rate, which):
    ref, batch = parts
    small = batch.iloc[:300].reset_index(drop=True)
    if which == "random":
        out, mask = attacks.flip_labels_random(small, LABEL, seed, rate=rate)
    elif which == "serum":
        out, mask = attacks.truth_serum_replicas(small, LABEL, seed, reference=ref, rate=rate)
    elif which == "backdoor":
        out, mask = attacks.backdoor_trigger(small, LABEL, seed, reference=ref, rate=rate)
    else:
        out, mask = attacks.in_range_outliers(small, LABEL, seed, reference=ref, rate=rate)
    assert mask.dtype == bool and len(mask) == len(out) == len(small)
    assert list(out.columns) == list(small.columns)
    assert 1 <= mask.sum() <= max(2, round(rate * len(small)) + 8)
