"""How well can label flips be found at all? Upper limits for any detector, per data set.

    .venv/bin/python benchmarks/flip_limits.py                        # ≈ 3 min on 2 cores
    .venv/bin/python benchmarks/flip_limits.py --datasets fair,randhie --sizes 1000

The detection benchmark asks for random label flips to be found at row AUROC
0.95 and in 95% of batches. Where labels are barely predictable from the
features, no method can: a flipped label is a draw that the features made
almost as likely as the true one. This script measures that limit with a model
better informed than any detector gets, so the sanitizer's and cleanlab's flip
numbers (``detection.py``) can be read against what is possible.

For each data set, every row's class probabilities p̂(y | x) come from cross-fitting
(5 folds over the whole table: each row scored by a model that never saw it,
fitted on 80% of all rows, 1.6 to 4 times the detection benchmark's reference).
The model is whichever of a gradient-boosted classifier and a logistic regression
has the lower cross-fitted log-loss. Then:

- **well-informed AUROC**: real batches (4 seeds), flipped as in ``detection.py``
  (random 5% and 10%, targeted 5%), each row scored 1 − p̂(given label | x):
  cleanlab's self-confidence with that model. This estimates what a detector can reach
  with about four times the reference, not a strict bound.
- **Bayes limit, in a world where p̂ is the truth**: batch rows are drawn from
  the table, labels drawn from p̂, and ``rate`` of them flipped to a random other
  class (exactly as the attack does). There the best possible row score is the
  posterior that a row was flipped (monotone in (1 − p̂_y) / p̂_y): its mean AUROC
  per batch is "Bayes AUROC". The most powerful batch test of "no flips" against
  "this share of random flips" is the likelihood ratio (Neyman–Pearson), with
  statistic Σ log(1 − ε + ε (1 − p̂_y) / ((K − 1) p̂_y)); its null distribution is
  simulated (20,000 batches). "NP power" is the share of flipped batches it
  rejects at the level of the sanitizer's label check (0.002, the policy's 1% over
  five quarantining checks) and at the policy's whole 1%. It knows the flip rate
  and the true probabilities; no detector can beat it, so a power below 0.95 says
  the issue's target cannot be met on that data set at that size.
- **NP power with a reference-sized model**: the same test, its null still exact,
  but scoring with probabilities from a model fitted only on as many rows as the
  detection benchmark's reference (labels drawn from p̂, the model picked by
  log-loss as above; 3 draws of the reference, batches from the other rows): what
  the reference's size leaves of the power, before any detector has to estimate
  its own null.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detection import LABEL, datasets, held_out_datasets

from sanitizer import attacks

NULL_BATCHES = 20_000
FLIPPED_BATCHES = 2_000
AUROC_BATCHES = 200
LEVELS = (0.002, 0.01)
RATES = (0.05, 0.10)
REFERENCE_DRAWS = 3
REFERENCE_ROWS = 5000  # as detection.py: min(this, half the table)


def _design(frame: pd.DataFrame) -> np.ndarray:
    features = frame.drop(columns=[LABEL, "record_id"], errors="ignore")
    return pd.get_dummies(features, dtype=float).fillna(0.0).to_numpy(dtype=float)


def _models(seed: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "gradient boosting": HistGradientBoostingClassifier(random_state=seed),
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    }


def cross_fitted(frame: pd.DataFrame, seed: int = 0) -> tuple[np.ndarray, str]:
    """Each row's out-of-fold class probabilities (columns in sorted label order) and
    the model's name."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = _design(frame)
    classes, y = np.unique(frame[LABEL].to_numpy(), return_inverse=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    best: tuple[float, np.ndarray, str] | None = None
    for name, model in _models(seed).items():
        p = cross_val_predict(model, x, y, cv=folds, method="predict_proba")
        loss = log_loss(y, p, labels=np.arange(len(classes)))
        if best is None or loss < best[0]:
            best = (loss, p, name)
    assert best is not None
    return np.clip(best[1], 1e-6, 1.0), best[2]


def reference_fitted(
    x: np.ndarray, p: np.ndarray, fit_rows: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Class probabilities for every row from a model that only had ``fit_rows``,
    with labels drawn from ``p`` (the model world's truth), the model picked by
    log-loss on a quarter of those rows held back, then refitted on all of them."""
    from sklearn.metrics import log_loss

    n_classes = p.shape[1]
    y = _sample_labels(p[fit_rows], rng)
    cut = len(fit_rows) * 3 // 4
    best: tuple[float, Any] | None = None
    for model in _models(0).values():
        model.fit(x[fit_rows[:cut]], y[:cut])
        q = model.predict_proba(x[fit_rows[cut:]])
        loss = log_loss(y[cut:], q, labels=np.arange(n_classes))
        if best is None or loss < best[0]:
            best = (loss, model)
    assert best is not None
    model = best[1].fit(x[fit_rows], y)
    return np.clip(model.predict_proba(x), 1e-6, 1.0)


def _given(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return p[np.arange(len(y)), y]


def _sample_labels(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = rng.random((len(p), 1))
    return np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), p.shape[1] - 1)


def _flip(y: np.ndarray, k: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Flip ``k`` random rows to a uniformly drawn other class; the mask of flipped rows."""
    rows = rng.choice(len(y), size=k, replace=False)
    y[rows] = (y[rows] + rng.integers(1, n_classes, size=k)) % n_classes
    mask = np.zeros(len(y), dtype=bool)
    mask[rows] = True
    return mask


def _lr_terms(p_given: np.ndarray, rate: float, n_classes: int) -> np.ndarray:
    return np.log(1.0 - rate + rate * (1.0 - p_given) / ((n_classes - 1) * p_given))


def model_world(
    p: np.ndarray,
    size: int,
    rate: float,
    rng: np.random.Generator,
    q: np.ndarray | None = None,
    rows_from: np.ndarray | None = None,
) -> dict[str, float]:
    """Bayes AUROC and Neyman–Pearson power where ``p`` is the true P(y | x).

    With ``q``, the test and the row scores use ``q`` (a model's estimate) in place
    of ``p``, its null still simulated under the truth: the power of the
    likelihood-ratio test that knows the flip rate and its own exact null, but
    only the model's probabilities. Batch rows come from ``rows_from`` (all rows
    by default)."""
    n_classes = p.shape[1]
    k = round(rate * size)
    q = p if q is None else q
    pool = np.arange(len(p)) if rows_from is None else rows_from

    def statistic(flips: bool, batches: int) -> tuple[np.ndarray, list[float]]:
        out = np.empty(batches)
        aurocs: list[float] = []
        for b in range(batches):
            rows = pool[rng.integers(0, len(pool), size=size)]
            y = _sample_labels(p[rows], rng)
            mask = _flip(y, k, n_classes, rng) if flips else None
            given = _given(q[rows], y)
            out[b] = _lr_terms(given, rate, n_classes).sum()
            if mask is not None and b < AUROC_BATCHES:
                aurocs.append(roc_auc_score(mask, (1.0 - given) / given))
        return out, aurocs

    null, _ = statistic(False, NULL_BATCHES)
    alt, aurocs = statistic(True, FLIPPED_BATCHES)
    row = {"bayes_auroc": float(np.mean(aurocs))}
    for level in LEVELS:
        row[f"np_power_{level}"] = float(np.mean(alt > np.quantile(null, 1.0 - level)))
    return row


def well_informed(frame: pd.DataFrame, p: np.ndarray, size: int, seeds: int) -> dict[str, float]:
    """Mean AUROC of 1 − p̂(given label) on real batches with the benchmark's flips."""
    out: dict[str, list[float]] = {"random 5%": [], "random 10%": [], "targeted 5%": []}
    classes = np.unique(frame[LABEL].to_numpy())
    for seed in range(seeds):
        order = np.random.default_rng(1000 + seed).permutation(len(frame))
        batch_rows, rest_rows = order[:size], order[size:]
        batch = frame.iloc[batch_rows].reset_index(drop=True)
        rest = frame.iloc[rest_rows].reset_index(drop=True)
        attacked = {
            "random 5%": attacks.flip_labels_random(batch, LABEL, seed, rate=0.05),
            "random 10%": attacks.flip_labels_random(batch, LABEL, seed, rate=0.10),
            "targeted 5%": attacks.flip_labels_targeted(
                batch, LABEL, seed, reference=rest, rate=0.05
            ),
        }
        for name, (flipped, mask) in attacked.items():
            codes = np.searchsorted(classes, flipped[LABEL].to_numpy())
            out[name].append(roc_auc_score(mask, 1.0 - _given(p[batch_rows], codes)))
    return {name: float(np.mean(v)) for name, v in out.items()}


def limits_cli(
    doc: str, parser: argparse.ArgumentParser | None = None
) -> tuple[argparse.Namespace, dict[str, Any], list[int]]:
    """The limit scripts' shared command line: ``--datasets`` and ``--sizes`` (plus
    whatever ``parser`` already holds); the parsed arguments, every data set by name
    and the batch sizes. Quiets logging and warnings."""
    parser = parser or argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--datasets", default="fair,randhie,synthetic,synthetic-3class,digits")
    parser.add_argument("--sizes", default="200,1000")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    catalogue = {**datasets(), **held_out_datasets()}
    return args, catalogue, [int(s) for s in args.sizes.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="real batches per size")
    args, catalogue, sizes = limits_cli(__doc__, parser)
    lines = [
        "| data set | model (log-loss pick) | n | well-informed AUROC: random 5% / 10% / "
        "targeted 5% | Bayes AUROC: random 5% / 10% | NP power 5%: at 0.002 / 0.01 "
        "| NP power 10%: at 0.002 / 0.01 | NP power 10%, reference-sized model "
        "(rows): at 0.002 / 0.01 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in args.datasets.split(","):
        frame = catalogue[name]()
        p, model = cross_fitted(frame)
        x = _design(frame)
        n_ref = min(REFERENCE_ROWS, len(frame) // 2)
        fitted = []
        for draw in range(REFERENCE_DRAWS):
            rng = np.random.default_rng(100 + draw)
            order = rng.permutation(len(frame))
            fitted.append((reference_fitted(x, p, order[:n_ref], rng), order[n_ref:], rng))
        for size in sizes:
            if 2 * size > len(frame):
                continue
            real = well_informed(frame, p, size, args.seeds)
            rng = np.random.default_rng(7)
            world = {rate: model_world(p, size, rate, rng) for rate in RATES}
            power = [
                " / ".join(f"{world[rate][f'np_power_{lv}']:.2f}" for lv in LEVELS)
                for rate in RATES
            ]
            limited = [model_world(p, size, 0.10, g, q=q, rows_from=r) for q, r, g in fitted]
            power.append(
                " / ".join(
                    f"{np.mean([w[f'np_power_{lv}'] for w in limited]):.2f}" for lv in LEVELS
                )
                + f" ({n_ref:,})"
            )
            lines.append(
                f"| {name} | {model} | {size} | "
                + " / ".join(f"{v:.3f}" for v in real.values())
                + f" | {world[0.05]['bayes_auroc']:.3f} / {world[0.10]['bayes_auroc']:.3f}"
                + f" | {power[0]} | {power[1]} | {power[2]} |"
            )
            print(f"  {name} n={size} done", file=sys.stderr, flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
