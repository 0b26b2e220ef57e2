"""Poisoning attacks and benign changes, generated on a clean batch.

Every function takes a clean frame, the label column name and a seed, and returns
``(frame, is_poisoned)``: a new frame (the input is never modified) and a boolean
numpy mask aligned with the returned frame's rows (``True`` = a row the attack
wrote). Benign changes return an all-``False`` mask. Used by the tests, the
benchmark and the demo; nothing here is imported by the scan path.

Threats (see the project's issue):

- :func:`flip_labels_random` — labels of a random share of rows changed;
- :func:`flip_labels_targeted` — one class relabelled as another, near the boundary;
- :func:`truth_serum_replicas` — a few target records copied 2–8 times with a wrong
  label (Tramèr et al., CCS 2022), exact or jittered;
- :func:`backdoor_trigger` — 1–2 features set to a rare in-range value, dirty- or
  clean-label;
- :func:`in_range_outliers` — each value drawn from its reference marginal, so
  every value is in range but the combination is not;
- :func:`covariate_drift`, :func:`prior_drift` — benign selection effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Attack = tuple["pd.DataFrame", np.ndarray]


def _features(frame: pd.DataFrame, label: str, exclude: Sequence[str]) -> list[str]:
    skip = {label, *exclude}
    return [c for c in frame.columns if c not in skip]


def _numeric(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    import pandas as pd

    return [
        c
        for c in columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]


def _n_rows(n: int, rate: float) -> int:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    return min(n, max(1, round(rate * n))) if rate > 0 else 0


def _other_label(current: np.ndarray, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each value, a label drawn uniformly from the classes other than it."""
    out = np.empty_like(current)
    for i, value in enumerate(current):
        others = classes[classes != value]
        out[i] = rng.choice(others) if others.size else value
    return out


def flip_labels_random(
    batch: pd.DataFrame, label: str, seed: int = 0, *, rate: float = 0.1
) -> Attack:
    """Change the label of ``rate`` of the rows to another class, chosen at random."""
    rng = np.random.default_rng(seed)
    out = batch.copy()
    classes = np.unique(out[label].to_numpy())
    if classes.size < 2:
        raise ValueError("flipping labels needs at least two classes in the batch")
    rows = rng.choice(len(out), size=_n_rows(len(out), rate), replace=False)
    values = out[label].to_numpy().copy()
    values[rows] = _other_label(values[rows], classes, rng)
    out[label] = values
    mask = np.zeros(len(out), dtype=bool)
    mask[rows] = True
    return out, mask


def _design(reference: pd.DataFrame, frames: Sequence[pd.DataFrame], columns: list[str]) -> list:
    """One-hot/standardised design matrices for a quick proxy model."""
    import pandas as pd

    both = pd.concat([reference[columns], *[f[columns] for f in frames]], ignore_index=True)
    encoded = pd.get_dummies(both, dtype=float).fillna(0.0).to_numpy(dtype=float)
    mu, sd = encoded[: len(reference)].mean(axis=0), encoded[: len(reference)].std(axis=0)
    encoded = (encoded - mu) / np.where(sd > 0, sd, 1.0)
    out, start = [encoded[: len(reference)]], len(reference)
    for f in frames:
        out.append(encoded[start : start + len(f)])
        start += len(f)
    return out


def flip_labels_targeted(
    batch: pd.DataFrame,
    label: str,
    seed: int = 0,
    *,
    reference: pd.DataFrame | None = None,
    source: object | None = None,
    target: object | None = None,
    rate: float = 0.05,
    boundary_pool: float = 2.0,
    exclude: Sequence[str] = ("record_id",),
) -> Attack:
    """Relabel rows of class ``source`` as ``target``, choosing rows near the boundary.

    A logistic model fitted on ``reference`` (the batch if none) ranks the source
    rows it still assigns to the source class by how close they are to the target
    class; the flipped rows are drawn at random from the ``boundary_pool`` × k
    closest (k = ``rate`` × rows, capped by the number of source rows). Rows the
    model already puts on the target side are not used: relabelling them would
    correct, not poison.
    """
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    out = batch.copy()
    ref = batch if reference is None else reference
    y_ref = ref[label].to_numpy()
    classes = np.unique(y_ref)
    if classes.size < 2:
        raise ValueError("a targeted flip needs at least two classes in the reference")
    source = classes[0] if source is None else source
    target = next(c for c in classes if c != source) if target is None else target
    columns = _features(batch, label, exclude)
    x_ref, x_batch = _design(ref, [batch], columns)
    model = LogisticRegression(max_iter=500).fit(x_ref, y_ref)
    proba = model.predict_proba(x_batch)
    col = {c: i for i, c in enumerate(model.classes_)}
    p_src, p_tgt = proba[:, col[source]], proba[:, col[target]]
    y = out[label].to_numpy()
    candidates = np.flatnonzero((y == source) & (p_src >= p_tgt))
    k = min(_n_rows(len(out), rate), candidates.size)
    closest = candidates[np.argsort(p_src[candidates] - p_tgt[candidates], kind="stable")]
    pool = closest[: max(k, int(np.ceil(boundary_pool * k)))]
    rows = rng.choice(pool, size=k, replace=False) if k else np.zeros(0, dtype=int)
    values = y.copy()
    values[rows] = target
    out[label] = values
    mask = np.zeros(len(out), dtype=bool)
    mask[rows] = True
    return out, mask


def truth_serum_replicas(
    batch: pd.DataFrame,
    label: str,
    seed: int = 0,
    *,
    reference: pd.DataFrame | None = None,
    rate: float = 0.01,
    copies: tuple[int, int] = (2, 8),
    jitter: float = 0.0,
    insert: bool = False,
    id_columns: Sequence[str] = ("record_id",),
) -> Attack:
    """Copy a few target records 2–8 times each with one wrong label (Truth Serum).

    Targets are drawn from ``reference`` when given (their genuine record then sits
    in the trusted data, not the batch), else from the batch itself (the genuine
    row stays in the batch, unmarked). About ``rate`` × rows copies are made; each
    target gets a copy count drawn uniformly from ``copies`` and one label that is
    not its own. Copies replace random other batch rows (``insert=False``, size
    kept) or are appended (``insert=True``). ``jitter`` > 0 adds Gaussian noise of
    that many column standard deviations to numeric features. Id columns keep the
    replaced row's value (or get fresh ids when appended).
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    lo, hi = copies
    if lo < 1 or hi < lo:
        raise ValueError(f"copies must be (low, high) with 1 <= low <= high, got {copies}")
    source = batch if reference is None else reference
    classes = np.unique(np.concatenate([batch[label].to_numpy(), source[label].to_numpy()]))
    if classes.size < 2:
        raise ValueError("replicas with a wrong label need at least two classes")
    total = _n_rows(len(batch), rate)
    counts: list[int] = []
    while sum(counts) < total:
        counts.append(int(rng.integers(lo, hi + 1)))
    if len(counts) > 1 and sum(counts) > total:  # trim the last target to hit the rate
        counts[-1] = max(lo, counts[-1] - (sum(counts) - total))
    targets = rng.choice(len(source), size=len(counts), replace=False)
    target_rows = np.repeat(targets, counts)
    replicas = source.iloc[target_rows].reset_index(drop=True).copy()
    wrong = _other_label(source[label].to_numpy()[targets], classes, rng)
    replicas[label] = np.repeat(wrong, counts)
    columns = _features(batch, label, id_columns)
    if jitter > 0:
        for col in _numeric(batch, columns):
            sd = float(np.nanstd(source[col].to_numpy(dtype=float))) or 1.0
            noise = rng.normal(0.0, jitter * sd, size=len(replicas))
            replicas[col] = replicas[col].to_numpy(dtype=float) + noise
    ids = [c for c in id_columns if c in batch.columns]
    if insert:
        for col in ids:
            if pd.api.types.is_numeric_dtype(batch[col]):
                start = int(np.nanmax(batch[col].to_numpy(dtype=float))) + 1
                replicas[col] = np.arange(start, start + len(replicas))
        out = pd.concat([batch, replicas[batch.columns]], ignore_index=True)
        mask = np.zeros(len(out), dtype=bool)
        mask[len(batch) :] = True
        return out, mask
    if reference is None:  # do not overwrite the genuine target rows
        free = np.setdiff1d(np.arange(len(batch)), targets)
    else:
        free = np.arange(len(batch))
    if free.size < len(replicas):
        raise ValueError("the batch is too small for this many replicas")
    rows = rng.choice(free, size=len(replicas), replace=False)
    out = batch.copy()
    for col in ids:
        replicas[col] = out[col].to_numpy()[rows]
    for col in batch.columns:
        values = out[col].to_numpy().copy()
        if values.dtype.kind in "iub" and replicas[col].to_numpy().dtype.kind == "f":
            values = values.astype(float)
        values[rows] = replicas[col].to_numpy()
        out[col] = values
    mask = np.zeros(len(out), dtype=bool)
    mask[rows] = True
    return out, mask


def backdoor_trigger(
    batch: pd.DataFrame,
    label: str,
    seed: int = 0,
    *,
    reference: pd.DataFrame | None = None,
    target: object | None = None,
    rate: float = 0.02,
    n_features: int = 2,
    features: Sequence[str] | None = None,
    quantile: float = 0.01,
    clean_label: bool = False,
    exclude: Sequence[str] = ("record_id",),
) -> Attack:
    """Stamp a trigger (features set to a rare but in-range value) on ``rate`` of the rows.

    The trigger value of each feature is its ``quantile`` in ``reference`` (the
    batch if none): inside the range, but rare. Where that quantile is a common value
    (a discrete column whose low quantiles are all 0, say), it is the rarest value
    the reference has strictly inside its range instead. Features are drawn among
    numeric columns with at least three distinct values. Dirty-label (default): rows of
    other classes get the trigger and the ``target`` label. Clean-label: rows that
    already have the ``target`` label get the trigger, labels untouched.
    """
    rng = np.random.default_rng(seed)
    ref = batch if reference is None else reference
    out = batch.copy()
    y = out[label].to_numpy()
    classes = np.unique(ref[label].to_numpy())
    target = classes[-1] if target is None else target
    numeric = [
        c for c in _numeric(batch, _features(batch, label, exclude)) if ref[c].nunique() >= 3
    ]
    if features is None:
        if len(numeric) < n_features:
            raise ValueError(f"need {n_features} numeric features for the trigger")
        features = list(rng.choice(numeric, size=n_features, replace=False))
    values = {c: rare_value(ref[c].to_numpy(dtype=float), quantile) for c in features}
    pool = np.flatnonzero(y == target) if clean_label else np.flatnonzero(y != target)
    k = min(_n_rows(len(out), rate), pool.size)
    rows = rng.choice(pool, size=k, replace=False)
    for col, value in values.items():
        column = out[col].to_numpy(dtype=float).copy()
        column[rows] = value
        out[col] = column
    if not clean_label:
        labels = y.copy()
        labels[rows] = target
        out[label] = labels
    mask = np.zeros(len(out), dtype=bool)
    mask[rows] = True
    return out, mask


def rare_value(values: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of ``values`` if that value is rare, else the rarest inner value."""
    values = values[~np.isnan(values)]
    value = float(np.quantile(values, quantile))
    if np.mean(values == value) <= max(2 * quantile, 0.02):
        return value
    distinct, counts = np.unique(values, return_counts=True)
    inner = slice(1, -1) if len(distinct) >= 3 else slice(None)
    return float(distinct[inner][np.argmin(counts[inner])])


def in_range_outliers(
    batch: pd.DataFrame,
    label: str,
    seed: int = 0,
    *,
    reference: pd.DataFrame | None = None,
    rate: float = 0.02,
    exclude: Sequence[str] = ("record_id",),
) -> Attack:
    """Replace ``rate`` of the rows by rows whose every value comes from a different
    reference row (independent marginals) and whose label is drawn at random."""
    rng = np.random.default_rng(seed)
    ref = batch if reference is None else reference
    out = batch.copy()
    k = _n_rows(len(out), rate)
    rows = rng.choice(len(out), size=k, replace=False)
    for col in _features(batch, label, exclude):
        column = out[col].to_numpy().copy()
        donors = ref[col].to_numpy()[rng.integers(0, len(ref), size=k)]
        if column.dtype.kind in "iub" and donors.dtype.kind == "f":
            column = column.astype(float)
        column[rows] = donors
        out[col] = column
    labels = out[label].to_numpy().copy()
    labels[rows] = rng.choice(np.unique(ref[label].to_numpy()), size=k)
    out[label] = labels
    mask = np.zeros(len(out), dtype=bool)
    mask[rows] = True
    return out, mask


def covariate_drift(
    pool: pd.DataFrame,
    label: str,
    seed: int = 0,
    *,
    size: int | None = None,
    column: str | None = None,
    strength: float = 0.3,
    exclude: Sequence[str] = ("record_id",),
) -> Attack:
    """Benign covariate shift: a batch of ``size`` rows (default half the pool) drawn
    from a pool of clean rows without replacement, with probability ∝
    exp(``strength`` × standardised ``column``; default: the first numeric feature
    that varies, a constant one would draw a clean batch). P(label | features) is
    unchanged."""
    rng = np.random.default_rng(seed)
    size = len(pool) // 2 if size is None else size
    if column is None:
        numeric = _numeric(pool, _features(pool, label, exclude))
        column = next((c for c in numeric if pool[c].nunique(dropna=True) > 1), numeric[0])
    x = pool[column].to_numpy(dtype=float)
    z = (x - np.nanmean(x)) / (np.nanstd(x) or 1.0)
    weights = np.exp(strength * np.nan_to_num(z))
    rows = rng.choice(len(pool), size=size, replace=False, p=weights / weights.sum())
    return pool.iloc[np.sort(rows)].reset_index(drop=True), np.zeros(size, dtype=bool)


def prior_drift(
    pool: pd.DataFrame,
    label: str,
    seed: int = 0,
    *,
    size: int | None = None,
    target: object | None = None,
    factor: float = 1.5,
) -> Attack:
    """Benign label-prior shift: a batch of ``size`` rows (default half the pool) drawn
    without replacement, rows of class ``target`` ``factor`` times as likely."""
    rng = np.random.default_rng(seed)
    size = len(pool) // 2 if size is None else size
    y = pool[label].to_numpy()
    target = np.unique(y)[-1] if target is None else target
    weights = np.where(y == target, factor, 1.0)
    rows = rng.choice(len(pool), size=size, replace=False, p=weights / weights.sum())
    return pool.iloc[np.sort(rows)].reset_index(drop=True), np.zeros(size, dtype=bool)
