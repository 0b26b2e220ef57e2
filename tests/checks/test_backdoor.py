"""BackdoorCheck: clean batches pass, dirty- and clean-label triggers are caught."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from sanitizer import attacks
from sanitizer.checks._backdoor_stats import _duplicate_rows
from sanitizer.checks.backdoor import BackdoorCheck
from sanitizer.config import CheckConfig, SanitizerConfig
from sanitizer.contract import DataContract
from sanitizer.engine import DEFAULT_CHECKS, Sanitizer
from sanitizer.samples import make_dataset, split
from sanitizer.table import Table

CONFIG = SanitizerConfig(label_column="label", id_columns=("record_id",))


def inject_trigger(
    batch: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    rate: float,
    seed: int,
    features: tuple[str, ...] = ("x2",),
    clean_label: bool = False,
    target: int = 1,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Tabdoor-style trigger (the shared attack generator): ``features`` set to a rare
    in-range value (a reference quantile drawn from 0.5–2%) on ``rate`` of the rows."""
    quantile = float(np.random.default_rng(seed).uniform(0.005, 0.02))
    return attacks.backdoor_trigger(
        batch, "label", seed, reference=reference, target=target, rate=rate,
        features=features, quantile=quantile, clean_label=clean_label,
    )  # fmt: skip


@cache
def fitted() -> tuple[BackdoorCheck, pd.DataFrame, pd.DataFrame, DataContract]:
    data = make_dataset(14_000, n_numeric=8, seed=21)
    reference, pool = split(data, [4_000, 10_000], seed=1)
    contract = DataContract.from_reference(reference, CONFIG)
    check = BackdoorCheck().fit(Table(reference, contract))
    return check, reference, pool, contract


def test_clean_batches_rarely_fail() -> None:
    check, _, pool, contract = fitted()
    parts = split(pool, [50, 200, 1000] * 6 + [50, 200], seed=2)
    failed = [check.run(Table(b, contract)).failed for b in parts]
    assert sum(failed) <= 1


@pytest.mark.parametrize("clean_label", [False, True])
@pytest.mark.parametrize(
    ("n", "rate", "features"),
    [(200, 0.02, ("x2",)), (200, 0.03, ("x1", "x5")), (2000, 0.01, ("x3", "x6"))],
)
def test_triggers_are_caught(
    clean_label: bool, n: int, rate: float, features: tuple[str, ...]
) -> None:
    check, reference, pool, contract = fitted()
    for seed in range(3):
        batch = pool.sample(n, random_state=seed).reset_index(drop=True)
        poisoned, mask = inject_trigger(
            batch, reference, rate=rate, seed=seed, features=features, clean_label=clean_label
        )
        result = check.run(Table(poisoned, contract))
        assert result.failed, result.message
        assert roc_auc_score(mask, result.row_scores) >= 0.95
        assert result.row_flags is not None
        assert result.row_flags[mask].all()
        assert not result.row_flags[~mask].any()


def test_reason_names_value_rows_and_labels() -> None:
    check, reference, pool, contract = fitted()
    batch = pool.sample(500, random_state=4).reset_index(drop=True)
    poisoned, mask = inject_trigger(batch, reference, rate=0.03, seed=4, features=("x4",))
    result = check.run(Table(poisoned, contract))
    reason = result.row_reasons[int(np.flatnonzero(mask)[0])][0]
    value = poisoned.loc[mask, "x4"].iloc[0]
    assert reason.startswith(f"backdoor: x4 == {value:.6g} on {mask.sum()} rows")
    assert f"{mask.sum()}/{mask.sum()} labelled 1" in reason
    assert "in this bin" in reason
    assert result.info["findings"][0]["feature"] == "x4"


def test_categorical_trigger_label_association() -> None:
    """5% of the rows moved to a 10% category and relabelled: caught by the label test
    (3% is not reliably caught at this batch size: the category's own rows dilute it)."""
    check, _, pool, contract = fitted()
    batch = pool.sample(3000, random_state=6).reset_index(drop=True)
    rng = np.random.default_rng(6)
    rows = rng.choice(np.flatnonzero(batch["label"].to_numpy() == 0), size=150, replace=False)
    batch.loc[rows, "region"] = "west"
    batch.loc[rows, "label"] = 1
    result = check.run(Table(batch, contract))
    assert result.failed, result.message
    assert any(
        f["kind"] == "label" and f["feature"] == "region" and f["label"] == "1"
        for f in result.info["findings"]
    )


def test_a_common_value_needs_its_rows_to_lean_to_one_label() -> None:
    """Three classes. A value set on 10% of the rows whatever their label (drift made
    it common, as pixel 58 of the ``digits`` strong drift) is no trigger: its rows keep
    the batch's labels, no class a majority. The same value on the same rows,
    labelled one class, is one."""
    data = make_dataset(6_000, n_numeric=8, n_classes=3, seed=22)
    reference, pool = split(data, [4_000, 2_000], seed=1)
    contract = DataContract.from_reference(reference, CONFIG)
    check = BackdoorCheck().fit(Table(reference, contract))
    value = float(np.quantile(reference["x3"], 0.5))
    for seed in range(3):
        batch = pool.sample(400, random_state=30 + seed).reset_index(drop=True)
        rows = np.random.default_rng(seed).choice(len(batch), 40, replace=False)
        assert np.bincount(batch.loc[rows, "label"], minlength=3).max() <= 20
        batch.loc[rows, "x3"] = value
        spread = check.run(Table(batch, contract))
        assert not any(f["kind"] == "point_mass" for f in spread.info["findings"])
        assert spread.p_value > 0.01, spread.message
        batch.loc[rows, "label"] = 1
        leaning = check.run(Table(batch, contract))
        assert leaning.failed
        masses = [f for f in leaning.info["findings"] if f["kind"] == "point_mass"]
        assert [f["feature"] for f in masses] == ["x3"]


def test_duplicate_rows_are_not_called_triggers() -> None:
    """Whole-row copies are the duplicates check's business."""
    check, _, pool, contract = fitted()
    batch = pool.sample(300, random_state=7).reset_index(drop=True)
    batch = pd.concat([batch, batch.iloc[:3], batch.iloc[:3]], ignore_index=True)
    result = check.run(Table(batch, contract))
    assert not any(f["kind"] == "point_mass" for f in result.info["findings"])


def _flags_table(n: int, seed: int) -> pd.DataFrame:
    """Four normal features and eight flags that are 1 in 1% of rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    frame: dict[str, np.ndarray] = {f"x{j}": x[:, j] for j in range(4)}
    frame |= {f"flag{j}": (rng.random(n) < 0.01).astype(float) for j in range(8)}
    frame["label"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-2.0 * x[:, 0]))).astype(int)
    frame["record_id"] = np.arange(n)
    return pd.DataFrame(frame)


@cache
def fitted_flags() -> tuple[BackdoorCheck, pd.DataFrame, DataContract]:
    reference = _flags_table(4000, 1)
    contract = DataContract.from_reference(reference, CONFIG)
    return BackdoorCheck(alpha=0.002).fit(Table(reference, contract)), reference, contract


@pytest.mark.parametrize("clean_label", [False, True])
def test_trigger_rows_agreeing_on_rare_flags_are_not_copies(clean_label: bool) -> None:
    """Twenty trigger rows also agree on most of eight flags that are 0 in 99% of rows:
    that is what any 20 rows do, not a sign of copies. Counted over every column they
    agreed on more than half, and the trigger was reported in none of 12 batches."""
    check, reference, contract = fitted_flags()
    for seed in range(3):
        batch = _flags_table(1000, 100 + seed)
        poisoned, mask = attacks.backdoor_trigger(
            batch, "label", seed, reference=reference, target=1, rate=0.02,
            features=["x1", "x2"], clean_label=clean_label,
        )  # fmt: skip
        result = check.run(Table(poisoned, contract))
        assert result.failed, result.message
        masses = [f for f in result.info["findings"] if f["kind"] == "point_mass"]
        assert {f["feature"] for f in masses} == {"x1", "x2"}
        assert result.row_flags is not None and np.asarray(result.row_flags)[mask].all()
    clean = [check.run(Table(_flags_table(1000, 500 + s), contract)) for s in range(3)]
    assert not any(r.failed for r in clean)


def test_copies_among_rare_flags_are_still_copies() -> None:
    """Exact copies of a record agree on its continuous values too: the duplicates
    check's finding, not a trigger, whatever the flags do."""
    check, _, contract = fitted_flags()
    batch = _flags_table(500, 200)
    batch = pd.concat([batch] + [batch.iloc[[3]]] * 6, ignore_index=True)
    result = check.run(Table(batch, contract))
    assert not any(f["kind"] == "point_mass" for f in result.info["findings"])


def test_refitting_drops_the_previous_references_value_shares() -> None:
    """The copy rule's value shares are cached from the fitted reference; a second
    fit must not reuse them."""
    reference, other = _flags_table(3000, 1), _flags_table(3000, 2)
    contract = DataContract.from_reference(reference, CONFIG)
    check = BackdoorCheck().fit(Table(reference, contract))
    check._copies(np.zeros((3, 12)))  # fills the cache
    shares = check.__dict__["_value_shares"]
    check.fit(Table(other, contract))
    check._copies(np.zeros((3, 12)))
    fresh = BackdoorCheck().fit(Table(other, contract))
    fresh._copies(np.zeros((3, 12)))
    refit = check.__dict__["_value_shares"]
    assert refit is not shares
    assert all(
        np.array_equal(a, b) for a, b in zip(refit, fresh.__dict__["_value_shares"], strict=True)
    )


def test_duplicate_rows_discounts_columns_that_agree_by_chance() -> None:
    rows = np.array([[1.0, 2.0, 0.0, 0.0, 0.0, 5.0], [1.0, 2.0, 0.0, 0.0, 0.0, 6.0]])
    assert _duplicate_rows(rows)  # five of six columns agree
    chance = np.array([0.0, 0.0, 0.9, 0.9, 0.9, 0.0])
    assert not _duplicate_rows(rows, chance)  # two of three telling columns: a trigger's
    rows[:, 5] = 5.0
    assert not _duplicate_rows(rows, chance)  # three of three: no more than a trigger sets
    wide = np.column_stack([rows, [[7.0, 7.0], [7.0, 7.0]]]).astype(float)
    assert _duplicate_rows(wide, np.append(chance, [0.0, 0.0]))


def test_rounded_and_integer_columns_are_not_point_masses() -> None:
    """Ties that the reference also has (rounding, integers) are not triggers."""
    data = make_dataset(12_000, n_numeric=6, seed=22)
    for col in ("x0", "x1", "x2"):
        data[col] = data[col].round(1)
    data["x3"] = np.floor(data["x3"] * 3)
    reference, pool = split(data, [3_000, 9_000], seed=1)
    contract = DataContract.from_reference(reference, CONFIG)
    check = BackdoorCheck().fit(Table(reference, contract))
    parts = split(pool, [200, 1000, 5000], seed=3)
    assert not any(check.run(Table(b, contract)).failed for b in parts)


def test_prior_shift_is_not_a_backdoor() -> None:
    check, _, pool, contract = fitted()
    y = pool["label"].to_numpy()
    rng = np.random.default_rng(8)
    keep = (y == 1) | (rng.random(len(pool)) < 0.5)
    result = check.run(Table(pool[keep].reset_index(drop=True), contract))
    assert not result.failed, result.message


@pytest.mark.parametrize("seed", [1, 3])
def test_strong_covariate_drift_on_a_label_carrying_column_is_not_a_backdoor(seed: int) -> None:
    """A batch drawn towards large ``x0`` (weights exp(z)), which carries most of the
    label in this population: its class-1 share rises from 50% to 85-90% and a region
    that the label ties to holds 67 of 71 class-1 rows. A reference share re-weighted
    by a shrunk prior ratio (odds about 1.8 against a true change of 6-10) gave
    p = 1e-5 and 2e-7 (the `synthetic-flags` benchmark's strong drift, 4 of 4 at 200
    rows); the cell-by-label odds ratio does not move."""
    full = make_dataset(30_000, seed=13)
    order = np.random.default_rng(1000 + seed).permutation(len(full))
    reference = full.iloc[order[:3000]].reset_index(drop=True)
    rest = full.iloc[order[3000:]].reset_index(drop=True)
    pool = rest.iloc[len(rest) // 2 :].reset_index(drop=True)
    contract = DataContract.from_reference(reference, CONFIG)
    check = BackdoorCheck().fit(Table(reference, contract))
    batch, _ = attacks.covariate_drift(pool, "label", seed * 100, size=200, strength=1.0)
    assert batch["label"].mean() > 0.8  # the drift moved the prior
    result = check.run(Table(batch, contract))
    assert not result.failed, result.message
    assert result.p_value is not None and result.p_value > 0.1


def _tilted(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``x1`` is ``x0`` plus noise (correlation 0.9), the label follows ``x0`` alone
    (logit 3·x0), ``x2`` is noise, ``store`` a category independent of all (``rare``
    in 3% of rows)."""
    x0 = rng.normal(size=n)
    stores = np.array(["north", "south", "east", "west", "rare"])
    return pd.DataFrame(
        {
            "x0": x0,
            "x1": 0.9 * x0 + 0.44 * rng.normal(size=n),
            "x2": rng.normal(size=n),
            "store": stores[rng.choice(5, n, p=[0.4, 0.3, 0.17, 0.1, 0.03])],
            "label": (rng.random(n) < 1.0 / (1.0 + np.exp(-3.0 * x0))).astype(int),
        }
    )


@cache
def tilted() -> tuple[pd.DataFrame, pd.DataFrame, DataContract]:
    rng = np.random.default_rng(0)
    reference, pool = _tilted(4000, rng), _tilted(20_000, rng)
    return reference, pool, DataContract.from_reference(reference, SanitizerConfig("label"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_covariate_shift_is_weighted_out_of_the_label_associations(seed: int) -> None:
    """A batch drawn towards large ``x0`` (weights exp(1.5 z)): within a bin of ``x0``
    its label share barely moves, but outside the bin class 0 all but vanishes, so
    the bin's odds ratio for class 0 grows; in ``x1``'s bins ``x0`` is higher than in
    the reference. Against the reference's own counts every such batch fails (p
    1e-5 to 4e-3); against the reference rows weighted by the domain classifier's
    odds none does."""
    reference, pool, contract = tilted()
    batch, _ = attacks.covariate_drift(pool, "label", seed, size=1000, strength=1.5, column="x0")
    unweighted = BackdoorCheck(shift_alpha=None).fit(Table(reference, contract))
    check = BackdoorCheck().fit(Table(reference, contract))
    assert unweighted.run(Table(batch, contract)).failed
    result = check.run(Table(batch, contract))
    assert not result.failed, result.message
    assert result.info["shift_p"] < 1e-10
    assert 0.1 <= result.info["reference_effective_share"] < 0.5


def test_a_relabelled_category_is_caught_in_a_shifted_batch() -> None:
    """The same shift with a trigger in ``store``: 40 rows (4%) set to ``rare`` and
    labelled 0, the class the shift makes rare. A category has no point mass to
    find; the re-weighted reference rows of ``rare`` keep their natural labels (the
    classifier's weight is constant within the category), so the cell still fails
    (p 5e-7). The weighting costs power: the reference counts now rest on a fifth of
    its rows, and 25 such rows (2.5%) fail 4 of 6 batches (all 6 at strength 1.0,
    where the effective share is 0.4: 40 rows; 25 rows 3 of 6)."""
    reference, pool, contract = tilted()
    batch, _ = attacks.covariate_drift(pool, "label", 1, size=1000, strength=1.5, column="x0")
    rows = np.random.default_rng(2).choice(len(batch), 40, replace=False)
    batch.loc[rows, "store"] = "rare"
    batch.loc[rows, "label"] = 0
    result = BackdoorCheck().fit(Table(reference, contract)).run(Table(batch, contract))
    assert result.failed and result.info["shift_p"] < 0.01
    assert 0.1 <= result.info["reference_effective_share"] < 0.5
    top = result.info["findings"][0]
    assert (top["feature"], top["cell"], top["label"]) == ("store", "== rare", "0")
    assert result.row_flags is not None and result.row_flags[rows].mean() >= 0.9


def test_shift_options() -> None:
    with pytest.raises(ValueError, match="shift_alpha"):
        BackdoorCheck(shift_alpha=1.5)
    with pytest.raises(ValueError, match="max_shift_rows"):
        BackdoorCheck(max_shift_rows=5)
    reference, pool, contract = tilted()
    check = BackdoorCheck(shift_alpha=None).fit(Table(reference, contract))
    assert check.shift_x_ is None
    batch, _ = attacks.covariate_drift(pool, "label", 0, size=1000, strength=1.5, column="x0")
    assert "shift_p" not in check.run(Table(batch, contract)).info


# -- edge cases -------------------------------------------------------------------


def _run(reference: pd.DataFrame, batch: pd.DataFrame) -> BackdoorCheck:
    contract = DataContract.from_reference(reference, CONFIG)
    check = BackdoorCheck().fit(Table(reference, contract))
    result = check.run(Table(batch, contract))
    assert result.row_scores is not None and result.row_scores.shape == (len(batch),)
    assert np.all((result.row_scores >= 0) & (result.row_scores <= 1))
    return check


def test_one_class_constant_column_and_nans() -> None:
    data = make_dataset(1_500, n_numeric=4, seed=3)
    data["label"] = 0
    data["const"] = 7.0
    data.loc[data.index % 11 == 0, "x1"] = np.nan
    reference, batch = split(data, [1_000, 300], seed=0)
    _run(reference, batch)


def test_categorical_only_and_numeric_only_and_integer_columns() -> None:
    data = make_dataset(1_500, n_numeric=4, seed=4)
    data["age"] = np.random.default_rng(0).integers(18, 90, len(data))
    reference, batch = split(data, [1_000, 300], seed=0)
    cats = ["record_id", "region", "plan", "label"]
    _run(reference[cats], batch[cats])
    nums = [c for c in data.columns if c not in ("region", "plan")]
    _run(reference[nums], batch[nums])


def test_tiny_batches() -> None:
    check, _, pool, contract = fitted()
    for n in (1, 2, 5):
        result = check.run(Table(pool.iloc[:n], contract))
        assert result.row_scores is not None and len(result.row_scores) == n
        assert not result.failed


# -- properties -------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=80),
    seed=st.integers(min_value=0, max_value=10_000),
    repeat=st.integers(min_value=0, max_value=10),
)
def test_scores_in_unit_interval_and_permutation_equivariant(
    n: int, seed: int, repeat: int
) -> None:
    check, reference, pool, contract = fitted()
    rng = np.random.default_rng(seed)
    batch = pool.sample(n, random_state=seed).reset_index(drop=True)
    rows = rng.choice(n, size=min(repeat, n), replace=False)
    batch.loc[rows, "x0"] = float(reference["x0"].quantile(0.01))
    result = check.run(Table(batch, contract))
    scores = result.row_scores
    assert scores is not None and scores.shape == (n,)
    assert np.all(np.isfinite(scores)) and scores.min() >= 0 and scores.max() <= 1
    perm = rng.permutation(n)
    permuted = check.run(Table(batch.iloc[perm].reset_index(drop=True), contract))
    assert permuted.row_scores is not None and permuted.row_flags is not None
    assert result.row_flags is not None
    np.testing.assert_allclose(permuted.row_scores, scores[perm], atol=1e-9)
    np.testing.assert_array_equal(permuted.row_flags, result.row_flags[perm])


def test_through_the_engine() -> None:
    _, reference, pool, _ = fitted()
    batch = pool.sample(400, random_state=9).reset_index(drop=True)
    poisoned, mask = inject_trigger(batch, reference, rate=0.03, seed=9, features=("x1", "x3"))
    sanitizer = Sanitizer(
        label_column="label",
        id_columns=("record_id",),
        # only this check, so report.flagged holds exactly its rows
        checks={
            **{n: CheckConfig(enabled=False) for n in DEFAULT_CHECKS},
            "backdoor": CheckConfig(),
        },
    ).fit(reference)
    report = sanitizer.scan(poisoned)
    assert report.verdict == "quarantine"
    assert set(report.flagged.index) == set(np.flatnonzero(mask))
    assert all(any(r.startswith("backdoor: ") for r in rs) for rs in report.flagged["reasons"])


def _spectral_as_first_written(
    check: BackdoorCheck, z_all: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, dict[str, float]]:
    """The spectral signature with each class's rows whitened explicitly, twice."""
    from scipy.special import erf

    out, info = np.zeros(len(z_all)), {}
    for c, (mean, w) in check.whiten_.items():
        rows = np.flatnonzero(y == c)
        if len(rows) < 3:
            continue
        z = (z_all[rows] - mean) @ w
        center = z.mean(axis=0)
        cov = z.T @ z / len(rows) - np.outer(center, center)
        evals, evecs = np.linalg.eigh(cov)
        proj = ((z - center) @ evecs[:, -1]) ** 2
        info[check.classes_[c]] = float(evals[-1] / (1.0 + np.sqrt(w.shape[1] / len(rows))) ** 2)
        out[rows] = erf(np.sqrt(proj / max(evals[-1], 1e-12) / 2.0))
    return out, info


@pytest.mark.parametrize("rows", [2, 3, 700, 4000])
def test_spectral_moments_in_one_blocked_pass_equal_explicit_whitening(rows, monkeypatch) -> None:
    from sanitizer.checks import backdoor

    check, reference, pool, contract = fitted()
    batch, _ = inject_trigger(pool.iloc[:rows].reset_index(drop=True), reference, rate=0.1, seed=4)
    table = Table(batch, contract)
    y = table.label_codes(check.classes_)
    monkeypatch.setattr(backdoor, "SPECTRAL_BLOCK", 97)
    scores, info = check._spectral(table, y)
    expected, expected_info = _spectral_as_first_written(check, table.encoded(check.encoder_), y)
    assert np.allclose(scores, expected, rtol=0, atol=1e-9)
    assert info.keys() == expected_info.keys()
    assert np.allclose(list(info.values()), list(expected_info.values()), rtol=1e-9)


# -- value pairs of discrete columns ------------------------------------------------


def _survey(n: int, seed: int, columns: int = 2) -> pd.DataFrame:
    """Discrete survey-like codes 1–5 (skewed: 5 is the rarest at 5%), labels random."""
    rng = np.random.default_rng(seed)
    levels, probs = np.arange(1, 6), [0.4, 0.3, 0.15, 0.1, 0.05]
    frame = pd.DataFrame(
        {f"q{i}": rng.choice(levels, size=n, p=probs).astype(float) for i in range(columns)}
    )
    frame["label"] = rng.integers(0, 2, size=n)
    frame.insert(0, "record_id", np.arange(n))
    return frame


def test_a_trigger_of_two_common_values_is_caught_by_its_pair() -> None:
    """A clean-label trigger (q0, q1) = (5, 5) on 2.5% of 1,000 rows, all of class 1:
    each value alone is a common code (5% of rows; the batch has about 1.5 times its
    share, far from the point-mass test's fivefold), their conjunction with label 1 is
    0.125% of the reference and twenty times that in the batch. Only the pair test
    sees it, and names it."""
    reference = _survey(4000, 31)
    contract = DataContract.from_reference(reference, CONFIG)
    batch = _survey(1000, 32)
    rows = np.random.default_rng(33).choice(batch.index[batch["label"] == 1], 25, replace=False)
    batch.loc[rows, ["q0", "q1"]] = 5.0
    without = BackdoorCheck(pairs=False).fit(Table(reference, contract))
    assert not without.run(Table(batch, contract)).failed
    check = BackdoorCheck().fit(Table(reference, contract))
    assert [c[0] for c in check.pair_columns_] == ["q0", "q1"]
    result = check.run(Table(batch, contract))
    assert result.failed and result.info["tests_counted"]["pair"] >= 1
    finding = result.info["findings"][0]
    assert (finding["kind"], finding["feature"], finding["cell"]) == (
        "pair",
        "q0 & q1",
        "== (5, 5)",
    )
    assert set(rows) <= set(np.flatnonzero(result.row_flags))
    assert "value pair" in result.row_reasons[int(rows[0])][0]


@pytest.mark.parametrize("clean_label", [False, True])
def test_a_pair_trigger_hides_in_its_pair_but_not_in_its_label_cell(clean_label: bool) -> None:
    """The held-out ``fair`` miss: a trigger pair (4, 4) that 1% of the reference holds
    already, stamped on 2% of 1,000 rows of class 1 (a fifth of the rows; dirty-label:
    relabelled from class 0). The pair's own frequency rises about threefold, under
    the fivefold a finding needs; its cell with label 1 rises about tenfold."""

    def skewed(n: int, seed: int) -> pd.DataFrame:
        frame = _survey(n, seed)
        frame["label"] = (np.random.default_rng(seed + 1).random(n) < 0.2).astype(int)
        return frame

    reference = skewed(4000, 51)
    contract = DataContract.from_reference(reference, CONFIG)
    check = BackdoorCheck().fit(Table(reference, contract))
    batch = skewed(1000, 52)
    pool = batch.index[(batch["label"] == 1) == clean_label]
    rows = np.random.default_rng(53).choice(pool, size=20, replace=False)
    batch.loc[rows, ["q0", "q1"]] = 4.0
    batch.loc[rows, "label"] = 1

    def share(frame: pd.DataFrame, label: int | None = None) -> float:
        cell = (frame["q0"] == 4) & (frame["q1"] == 4)
        return float(np.mean(cell if label is None else cell & (frame["label"] == label)))

    assert share(batch) / share(reference) < check.min_fold < share(batch, 1) / share(reference, 1)
    result = check.run(Table(batch, contract))
    assert result.failed
    finding = result.info["findings"][0]
    assert (finding["kind"], finding["feature"], finding["cell"], finding["label"]) == (
        "pair",
        "q0 & q1",
        "== (4, 4)",
        "1",
    )
    # the trigger's label cell is flagged, the pair's rows of the other class are not
    flagged = set(np.flatnonzero(result.row_flags))
    in_pair = batch.index[(batch["q0"] == 4) & (batch["q1"] == 4)]
    assert set(rows) <= flagged
    assert not flagged & set(in_pair[batch.loc[in_pair, "label"] == 0])
    assert any(
        "q0 & q1 == (4, 4)" in reason and "rows with this value pair" in reason
        for reason in result.row_reasons[int(rows[0])]
    )


def test_a_shifted_label_mix_is_not_a_pair_trigger() -> None:
    """Class 1 on 5% of the reference's rows and 15% of the batch's, features
    independent of the label: every (pair, label 1) cell triples its share of the
    batch. Within class 1 its share does not move, and that is what is tested (on the
    batch's share, 4 of 8 such batches failed with pair findings down to p = 2e-6)."""

    def mix(n: int, seed: int, share: float) -> pd.DataFrame:
        frame = _survey(n, seed, columns=3)
        frame["label"] = (np.random.default_rng(seed + 1).random(n) < share).astype(int)
        return frame

    reference = mix(4000, 61, 0.05)
    contract = DataContract.from_reference(reference, CONFIG)
    check = BackdoorCheck().fit(Table(reference, contract))
    results = [check.run(Table(mix(1000, 70 + i, 0.15), contract)) for i in range(8)]
    assert not any(f["kind"] == "pair" for r in results for f in r.info["findings"])
    assert max(r.info["tests_counted"]["pair"] for r in results) >= 1


def test_clean_discrete_batches_rarely_fail_the_pair_test() -> None:
    reference = _survey(4000, 34, columns=5)
    contract = DataContract.from_reference(reference, CONFIG)
    check = BackdoorCheck().fit(Table(reference, contract))
    assert check.pair_index_.shape == (10, 2)
    runs = [check.run(Table(_survey(n, 100 + i, columns=5), contract)) for i, n in
            enumerate([200, 1000] * 20)]  # fmt: skip
    assert sum(r.failed for r in runs) <= 1


@cache
def _randhie() -> pd.DataFrame:
    """statsmodels' `randhie` survey table (shipped in the package, the detection
    benchmark's held-out set): label "any doctor visit", 20,190 rows, 9 features."""
    module = pytest.importorskip(
        "statsmodels.datasets.randhie", reason="statsmodels (dev extra) ships the randhie table"
    )
    data = module.load_pandas().data
    frame = data.drop(columns=["mdvis"]).astype(float)
    frame["label"] = (data["mdvis"] > 0).astype(int)
    frame.insert(0, "record_id", np.arange(len(frame)))
    return frame


@pytest.mark.parametrize("clean_label", [False, True])
def test_a_pair_trigger_among_hundreds_of_pair_tests_is_not_charged_a_third_of_the_level(
    clean_label: bool,
) -> None:
    """The held-out `randhie` miss at 200 rows (the benchmark's seed 0): a trigger on
    4 rows, (physlm, disea) set to values the 5,000-row reference holds once each,
    never together. Its (pair, label) cell is p ≈ 2.5e-6 among about 450 testable
    pair cells and 40 label cells. With a third of the level for each family it
    passed (0.0033 > 0.002, the check's level in the sanitizer); the label
    associations and value pairs now share two thirds under one count
    (0.0017–0.0019)."""
    full = _randhie()
    order = np.random.default_rng(1000).permutation(len(full))
    reference = full.iloc[order[:5000]].reset_index(drop=True)
    batch = full.iloc[order[5000:5200]].reset_index(drop=True)
    poisoned, mask = attacks.backdoor_trigger(
        batch, "label", 0, reference=reference, rate=0.02, clean_label=clean_label
    )
    contract = DataContract.from_reference(reference, CONFIG)
    check = BackdoorCheck(alpha=0.002).fit(Table(reference, contract))
    result = check.run(Table(poisoned, contract))
    assert result.failed
    finding = result.info["findings"][0]
    assert (finding["kind"], finding["feature"], finding["rows"]) == ("pair", "physlm & disea", 4)
    assert set(np.flatnonzero(mask)) == set(np.flatnonzero(result.row_flags))
    # a third of the level and the pairs' own count would not have proved it
    assert 3 * result.info["tests_counted"]["pair"] * finding["p_value"] > check.alpha
    assert result.info["tests_counted"]["pair"] > 10 * result.info["tests_counted"]["label"]


def _one_five(frame: pd.DataFrame) -> pd.DataFrame:
    """At most one code 5 per row: no clean row holds a pair of 5s."""
    codes = frame.filter(like="q").to_numpy().copy()
    extra = (codes == 5) & (np.cumsum(codes == 5, axis=1) > 1)
    codes[extra] = 4.0
    frame[[c for c in frame.columns if c.startswith("q")]] = codes
    return frame


def test_copied_rows_are_not_a_value_pair_trigger() -> None:
    """Eleven copies of one row share every value pair: where a pair's cell holds only
    the copies, it is the duplicates check's finding, not a trigger. (Copies mixed with
    clean rows of the same values still count, as for single-value point masses.)"""
    reference = _one_five(_survey(4000, 35, columns=6))
    contract = DataContract.from_reference(reference, CONFIG)
    check = BackdoorCheck().fit(Table(reference, contract))
    batch = _one_five(_survey(500, 36, columns=6))
    batch = pd.concat([batch] + [batch.iloc[[7]]] * 10, ignore_index=True)
    batch.loc[batch.index[-10:], [f"q{i}" for i in range(6)]] = 5.0
    batch.loc[7, [f"q{i}" for i in range(6)]] = 5.0
    copies = check.run(Table(batch, contract))
    assert not any(f["kind"] == "pair" for f in copies.info["findings"])
    # the same eleven rows made distinct (another code in q2..q5): a trigger on (q0, q1)
    distinct = batch.copy()
    rng = np.random.default_rng(38)
    rows = [*distinct.index[-10:], 7]
    distinct.loc[rows, ["q2", "q3", "q4", "q5"]] = rng.integers(1, 5, size=(11, 4)).astype(float)
    result = check.run(Table(distinct, contract))
    assert any(f["kind"] == "pair" and f["feature"] == "q0 & q1" for f in result.info["findings"])


def test_pair_options() -> None:
    reference = _survey(500, 37, columns=4)
    contract = DataContract.from_reference(reference, CONFIG)
    assert BackdoorCheck().fit(Table(reference, contract)).pair_index_.shape == (6, 2)
    assert BackdoorCheck(max_pairs=5).fit(Table(reference, contract)).pair_index_.size == 0
    assert BackdoorCheck(pair_max_values=4).fit(Table(reference, contract)).pair_index_.size == 0
    with pytest.raises(ValueError, match="pair_max_values"):
        BackdoorCheck(pair_max_values=1)
    with pytest.raises(ValueError, match="max_pairs"):
        BackdoorCheck(max_pairs=-1)


def test_value_pairs_survive_a_profile_round_trip(tmp_path) -> None:
    from sanitizer.profile import load_profile, save_profile

    reference = _survey(3000, 39, columns=3)
    batch = _survey(1000, 40, columns=3)
    rows = np.random.default_rng(41).choice(batch.index[batch["label"] == 1], 25, replace=False)
    batch.loc[rows, ["q0", "q2"]] = 5.0
    fitted = Sanitizer(label_column="label", id_columns=("record_id",)).fit(reference)
    loaded = load_profile(save_profile(fitted, tmp_path / "p.zip"))
    first, second = (
        next(c for c in s.scan(batch).checks if c.name == "backdoor") for s in (fitted, loaded)
    )
    assert first.failed and first.info["findings"][0]["feature"] == "q0 & q2"
    assert second.p_value == first.p_value
    assert second.info["findings"] == first.info["findings"]


def test_shift_reweighting_survives_a_profile_round_trip(tmp_path) -> None:
    from sanitizer.profile import load_profile, save_profile

    reference, pool, _ = tilted()
    batch, _ = attacks.covariate_drift(pool, "label", 1, size=1000, strength=1.5, column="x0")
    batch.loc[:39, ["store", "label"]] = ["rare", 0]
    fitted = Sanitizer(label_column="label").fit(reference)
    loaded = load_profile(save_profile(fitted, tmp_path / "p.zip"))
    first, second = (
        next(c for c in s.scan(batch).checks if c.name == "backdoor") for s in (fitted, loaded)
    )
    assert first.failed and first.info["shift_p"] < 0.01
    assert second.p_value == first.p_value
    first.info.pop("seconds"), second.info.pop("seconds")
    assert second.info == first.info
