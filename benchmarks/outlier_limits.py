"""How well can in-range outliers be found at all? Limits per data set, as for flips.

    .venv/bin/python benchmarks/outlier_limits.py                     # ≈ 1.5 min on 2 cores
    .venv/bin/python benchmarks/outlier_limits.py --datasets fair,randhie --sizes 1000

``detection.py``'s in-range outliers take every value from a different reference
row and draw the label uniformly: each value is common, only the combination is
not. Where a table's columns barely depend on each other (a survey of coded
answers), many such rows are combinations real rows could have. This script
measures how far they can be told apart with a classifier better informed than
any detector gets, so the outlier numbers of ``detection.py`` can be read against
what is possible (the outlier analogue of ``flip_limits.py``).

The attack's distribution Q (each feature from its marginal, the label uniform)
against the table's P: a gradient-boosted classifier is cross-fitted over the whole
table (5 folds; each fold model fitted on 80% of all rows against four times as
many rows drawn from Q, weighted to balance), so its log-odds s(x, y) estimates
log(Q / P). Every real row is scored by the fold model that never saw it; rows of
Q by the fold models in turn. Then:

- **well-informed AUROC**: real rows against rows of Q, by s. 1.6 to 4.8 times the
  reference's rows went into each model, and the label is a feature: an estimate
  of what is reachable, not a bound.
- **Neyman–Pearson power, in a world where these scores are the truth**: a batch
  of n rows with k = rate · n rows of Q. The most powerful test of "no outliers"
  against "this share of them" when s is the log likelihood ratio is
  Σ log(1 − ε + ε e^s); its null is simulated on 20,000 batches of real rows'
  scores, its power on 2,000 attacked batches, at the outlier check's share of
  the policy (0.002) and at the whole 1%. It knows the rate, the score's law on
  clean rows exactly and the likelihood ratio the classifier estimates. A
  detector must estimate its null from the reference and cannot know the rate.
- **the same with a reference-sized model**: fold models fitted on 80% of as many
  rows as ``detection.py``'s reference (as the outlier check's fold models are;
  3 draws), real rows they never saw scoring the null: what the reference's size
  leaves of the power, before a detector also has to estimate its null.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detection import LABEL
from flip_limits import limits_cli

NULL_BATCHES = 20_000
ATTACKED_BATCHES = 2_000
CHUNK = 1_000  # batches simulated at a time
LEVELS = (0.002, 0.01)
RATES = (0.01, 0.02)
CONTRAST = 4  # rows of Q per fitting row
FOLDS = 5
REFERENCE_DRAWS = 3
REFERENCE_ROWS = 5000  # as detection.py: min(this, half the table)


def design(frame: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, int]:
    """Encoded features, the encoded columns of each table column (a one-hot block per
    categorical), label codes and the number of classes."""
    features = frame.drop(columns=[LABEL, "record_id"], errors="ignore")
    blocks, groups, start = [], [], 0
    for col in features.columns:
        if pd.api.types.is_numeric_dtype(features[col]):
            part = features[[col]].astype(float).fillna(0.0).to_numpy()
        else:
            part = pd.get_dummies(features[col], dtype=float).to_numpy()
        blocks.append(part)
        groups.append(np.arange(start, start + part.shape[1]))
        start += part.shape[1]
    classes, y = np.unique(frame[LABEL].to_numpy(), return_inverse=True)
    return np.hstack(blocks), groups, y, len(classes)


def _with_label(x: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.hstack([x, np.eye(n_classes)[y]]) if n_classes > 2 else np.c_[x, y]


def draw_q(
    x: np.ndarray, groups: list[np.ndarray], n_classes: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """``size`` rows of Q: every table column from its own random row of ``x``, the
    label uniform (the attack of ``sanitizer.attacks.in_range_outliers``)."""
    out = np.empty((size, x.shape[1]))
    for g in groups:
        out[:, g] = x[rng.integers(0, len(x), size)][:, g]
    return _with_label(out, rng.integers(0, n_classes, size), n_classes)


def fit_contrast(
    x: np.ndarray, y: np.ndarray, groups: list[np.ndarray], n_classes: int, seed: int
) -> Any:
    """A classifier of P's rows ``(x, y)`` (0) against ``CONTRAST`` times as many of Q (1)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng([seed, 11])
    real = _with_label(x, y, n_classes)
    q = draw_q(x, groups, n_classes, CONTRAST * len(x), rng)
    weights = np.r_[np.full(len(real), float(CONTRAST)), np.ones(len(q))]
    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=31, early_stopping=False,
        random_state=seed,
    )  # fmt: skip
    model.fit(np.r_[real, q], np.r_[np.zeros(len(real)), np.ones(len(q))], sample_weight=weights)
    return model


def scores(
    x: np.ndarray,
    y: np.ndarray,
    groups: list[np.ndarray],
    n_classes: int,
    fit_rows: list[np.ndarray],
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Log-odds of real rows none of whose fold models saw them (each by the model of
    its fold) and of as many rows of Q (shared out over the models). ``fit_rows``: one
    array of fitting rows per model; a real row is scored by every model that did not
    fit on it, the first such model's score kept."""
    rng = np.random.default_rng([seed, 13])
    real = np.full(len(x), np.nan)
    q_scores = []
    for i, rows in enumerate(fit_rows):
        model = fit_contrast(x[rows], y[rows], groups, n_classes, seed + i)
        unseen = np.ones(len(x), dtype=bool)
        unseen[rows] = False
        todo = unseen & np.isnan(real)
        real[todo] = model.decision_function(_with_label(x[todo], y[todo], n_classes))
        q = draw_q(x, groups, n_classes, max(1, int(todo.sum())), rng)
        q_scores.append(model.decision_function(q))
    return real[~np.isnan(real)], np.concatenate(q_scores)


def np_power(
    real: np.ndarray, outlier: np.ndarray, size: int, rate: float, rng: np.random.Generator
) -> dict[float, float]:
    """Power of Σ log(1 − ε + ε e^s) at each level, its null simulated from ``real``."""
    k = max(1, round(rate * size))
    eps = k / size

    def term(s: np.ndarray) -> np.ndarray:
        return np.logaddexp(np.log1p(-eps), np.log(eps) + s)

    t_real, t_out = term(real), term(outlier)

    def simulate(batches: int, attacked: bool) -> np.ndarray:
        out = []
        for start in range(0, batches, CHUNK):
            b = min(CHUNK, batches - start)
            clean = size - k if attacked else size
            total = t_real[rng.integers(0, len(t_real), (b, clean))].sum(axis=1)
            if attacked:
                total += t_out[rng.integers(0, len(t_out), (b, k))].sum(axis=1)
            out.append(total)
        return np.concatenate(out)

    null = simulate(NULL_BATCHES, attacked=False)
    alt = simulate(ATTACKED_BATCHES, attacked=True)
    return {level: float(np.mean(alt > np.quantile(null, 1.0 - level))) for level in LEVELS}


def main() -> int:
    args, catalogue, sizes = limits_cli(__doc__)
    lines = [
        "| data set | well-informed AUROC | n | NP power 1%: at 0.002 / 0.01 "
        "| NP power 2%: at 0.002 / 0.01 | reference-sized (rows): AUROC "
        "| NP power 1% / 2% at 0.002, reference-sized |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in args.datasets.split(","):
        frame = catalogue[name]()
        x, groups, y, n_classes = design(frame)
        order = np.random.default_rng(0).permutation(len(x))
        folds = np.array_split(order, FOLDS)
        informed = scores(
            x, y, groups, n_classes,
            [np.concatenate(folds[:i] + folds[i + 1 :]) for i in range(FOLDS)], seed=0,
        )  # fmt: skip
        auroc = _auroc(*informed)
        # one fold model of the outlier check: 80% of a detection.py-sized reference
        fit_n = min(REFERENCE_ROWS, len(x) // 2) * 4 // 5
        limited = []
        for draw in range(REFERENCE_DRAWS):
            rows = np.random.default_rng(100 + draw).permutation(len(x))[:fit_n]
            limited.append(scores(x, y, groups, n_classes, [rows], seed=100 + draw))
        ref_auroc = float(np.mean([_auroc(*s) for s in limited]))
        for size in sizes:
            if 2 * size > len(x):
                continue
            rng = np.random.default_rng(7)
            power = {rate: np_power(*informed, size, rate, rng) for rate in RATES}
            small = {
                rate: float(np.mean([np_power(*s, size, rate, rng)[LEVELS[0]] for s in limited]))
                for rate in RATES
            }
            lines.append(
                f"| {name} | {auroc:.3f} | {size} | "
                + " | ".join(" / ".join(f"{power[r][lv]:.2f}" for lv in LEVELS) for r in RATES)
                + f" | {ref_auroc:.3f} ({fit_n:,}) | "
                + " / ".join(f"{small[r]:.2f}" for r in RATES)
                + " |"
            )
            print(f"  {name} n={size} done", file=sys.stderr, flush=True)
    print("\n".join(lines))
    return 0


def _auroc(real: np.ndarray, outlier: np.ndarray) -> float:
    return float(
        roc_auc_score(np.r_[np.zeros(len(real)), np.ones(len(outlier))], np.r_[real, outlier])
    )


if __name__ == "__main__":
    raise SystemExit(main())
