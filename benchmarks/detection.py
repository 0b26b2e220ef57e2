"""Detection quality of the sanitizer against poisoning attacks, with baselines.

Reproducible: every number comes from data generated or shipped offline
(scikit-learn's built-in data sets, synthetic tables and, with ``--held-out``,
statsmodels' bundled survey data) and fixed seeds.

    .venv/bin/python benchmarks/detection.py            # full run (~15 min on 2 cores)
    .venv/bin/python benchmarks/detection.py --quick    # smoke run (~2 min)

For each data set and seed, the reference and the clean batches are disjoint
random parts of the data (sampled without replacement); the sanitizer and the
baselines are fitted once on the reference, then every scenario (an attack
applied to a clean batch, a benign change, or the clean batch itself) is scanned
by all of them in the same run. Printed per scenario and batch size:

- ``detect``: share of batches quarantined (for clean/benign rows: false quarantines);
- ``floor (provable)``: the smallest p-value a test that only assumes batch and
  reference rows exchangeable can give the k attacked rows, C(n, k) / C(n + m, k)
  for the m reference rows the attack's own check compares against (median over
  batches; the label check's holdout, the outlier check's held-out calibration
  rows, the whole reference for the others), and how many batches have it at or
  below the level that check gets (alpha over the number of quarantining checks;
  for the outlier check times ``tail_gain`` / 4: its tail test has a quarter of
  that level and may strengthen ranks ``tail_gain``-fold): where it is above, no
  test of that check's kind can prove the attack at that level, however unusual
  the rows; ``detect if provable``: the detection rate over those batches;
- ``AUROC``: row-level, the sanitizer's ``row_scores`` against the attack's mask;
- ``prec``/``recall``: rows the sanitizer flagged against the rows the attack wrote;
- ``ms``: median scan time;
- the same ``detect`` (and AUROC where they score rows) for three baselines: the GX
  suite alone, IsolationForest alone and cleanlab's ``find_label_issues``.

Then, per data set, for the attacks whose rows share a cell (exact Truth Serum
copies, backdoor triggers): the p-value a count test would give that cell if it
were told the cell in advance (``known_cell_pvalue``), a limit that, unlike the
floor, holds where natural rows share the cell too.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from sanitizer import attacks
from sanitizer.engine import Sanitizer
from sanitizer.samples import make_dataset

LABEL = "label"
ALPHA = 0.01


# -- data sets ------------------------------------------------------------------------


def _sklearn_frame(loader: Callable[..., Any]) -> pd.DataFrame:
    bunch = loader()
    frame = pd.DataFrame(bunch.data, columns=[f"f{i}" for i in range(bunch.data.shape[1])])
    frame[LABEL] = bunch.target.astype(int)
    frame.insert(0, "record_id", np.arange(len(frame)))
    return frame


def _statsmodels_frame(name: str, target: str) -> pd.DataFrame:
    """A survey data set bundled with statsmodels; label: ``target`` > 0."""
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data
    frame = data.drop(columns=[target]).astype(float)
    frame[LABEL] = (data[target] > 0).astype(int)
    frame.insert(0, "record_id", np.arange(len(frame)))
    return frame


def datasets() -> dict[str, Callable[[], pd.DataFrame]]:
    from sklearn.datasets import load_breast_cancer, load_digits

    return {
        "synthetic": lambda: make_dataset(30_000, seed=11),
        "synthetic-3class": lambda: make_dataset(30_000, n_numeric=10, n_classes=3, seed=12),
        "breast_cancer": lambda: _sklearn_frame(load_breast_cancer),
        "digits": lambda: _sklearn_frame(load_digits),
    }


def held_out_datasets() -> dict[str, Callable[[], pd.DataFrame]]:
    """Real survey data never used while building the checks (``--held-out``).

    Both are mostly discrete with many natural duplicates (fair: 1,039 of 6,366
    rows repeat an earlier row; randhie: 11,065 of 20,190), the case where a
    duplicate check that counted against zero would quarantine clean batches.
    """
    return {
        "fair": lambda: _statsmodels_frame("fair", "affairs"),
        "randhie": lambda: _statsmodels_frame("randhie", "mdvis"),
    }


def extra_datasets() -> dict[str, Callable[[], pd.DataFrame]]:
    """Other shapes, by name only (``--datasets``): ``synthetic-flags`` is the
    synthetic set with eight 0/1 flags set in 1% of rows (the first more often in
    class 1), the low-entropy columns real tables carry beside their measurements;
    ``synthetic-categories`` the synthetic set with a ``store`` column of 3 common
    and 20 rare categories (1% of rows each), as a shop, branch or product column is."""
    return {
        "synthetic-flags": lambda: _with_flags(make_dataset(30_000, seed=13), seed=14),
        "synthetic-categories": lambda: _with_stores(make_dataset(30_000, seed=15), seed=16),
    }


def _with_flags(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    positive = frame[LABEL].to_numpy() == 1
    for j in range(8):
        share = np.where(positive, 0.02, 0.005) if j == 0 else np.full(len(frame), 0.01)
        frame[f"flag{j}"] = (rng.random(len(frame)) < share).astype(float)
    return frame


def _with_stores(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    share = np.r_[0.4, 0.25, 0.15, np.full(20, 0.01)]
    names = np.array([f"s{j:02d}" for j in range(len(share))])
    frame.insert(
        len(frame.columns) - 1, "store", names[rng.choice(len(share), len(frame), p=share)]
    )
    return frame


# -- scenarios ------------------------------------------------------------------------

Scenario = Callable[
    [pd.DataFrame, pd.DataFrame, pd.DataFrame, int], tuple[pd.DataFrame, np.ndarray]
]


def scenarios(drift_strengths: tuple[float, ...] = ()) -> dict[str, Scenario]:
    """name -> f(clean batch, reference, spare clean pool, seed) -> (batch, mask).

    ``drift_strengths``: benign covariate drifts beyond the two of the tables (exp(s · z)
    at s = 0.3 and 1.0), named "benign: covariate drift s=<s>"."""

    def clean(
        b: pd.DataFrame, r: pd.DataFrame, pool: pd.DataFrame, s: int
    ) -> tuple[pd.DataFrame, np.ndarray]:
        return b, np.zeros(len(b), dtype=bool)

    def drift(kind: str, strength: float = 0.3) -> Scenario:
        def f(
            b: pd.DataFrame, r: pd.DataFrame, pool: pd.DataFrame, s: int
        ) -> tuple[pd.DataFrame, np.ndarray]:
            if kind == "covariate":
                return attacks.covariate_drift(pool, LABEL, s, size=len(b), strength=strength)
            # the last class (default) or the first one more frequent: on imbalanced
            # data one direction raises the share of the minority class
            target = np.unique(pool[LABEL])[0] if kind == "prior first" else None
            return attacks.prior_drift(pool, LABEL, s, size=len(b), factor=1.5, target=target)

        return f

    extra = {f"benign: covariate drift s={s:g}": drift("covariate", s) for s in drift_strengths}
    return {
        "clean": clean,
        "benign: covariate drift": drift("covariate"),
        "benign: strong covariate drift": drift("covariate", strength=1.0),
        "benign: prior drift": drift("prior"),
        "benign: prior drift to class 0": drift("prior first"),
        "flip random 5%": lambda b, r, p, s: attacks.flip_labels_random(b, LABEL, s, rate=0.05),
        "flip random 10%": lambda b, r, p, s: attacks.flip_labels_random(b, LABEL, s, rate=0.10),
        "flip targeted 5%": lambda b, r, p, s: attacks.flip_labels_targeted(
            b, LABEL, s, reference=r, rate=0.05
        ),
        "truth serum 1%": lambda b, r, p, s: attacks.truth_serum_replicas(
            b, LABEL, s, reference=r, rate=0.01
        ),
        "truth serum 1% jitter": lambda b, r, p, s: attacks.truth_serum_replicas(
            b, LABEL, s, reference=r, rate=0.01, jitter=0.01
        ),
        "truth serum 3% in-batch": lambda b, r, p, s: attacks.truth_serum_replicas(
            b, LABEL, s, rate=0.03
        ),
        "backdoor 2%": lambda b, r, p, s: attacks.backdoor_trigger(
            b, LABEL, s, reference=r, rate=0.02
        ),
        "backdoor 2% clean-label": lambda b, r, p, s: attacks.backdoor_trigger(
            b, LABEL, s, reference=r, rate=0.02, clean_label=True
        ),
        "in-range outliers 1%": lambda b, r, p, s: attacks.in_range_outliers(
            b, LABEL, s, reference=r, rate=0.01
        ),
        "in-range outliers 2%": lambda b, r, p, s: attacks.in_range_outliers(
            b, LABEL, s, reference=r, rate=0.02
        ),
        **extra,
    }


BENIGN = (
    "clean",
    "benign: covariate drift",
    "benign: strong covariate drift",
    "benign: prior drift",
    "benign: prior drift to class 0",
)


def _benign(scenario: str) -> bool:
    return scenario in BENIGN or scenario.startswith("benign")


# the check built for each attack: its own flags give the "check prec / recall" columns
OWN_CHECK = {"flip": "label_consistency", "truth serum": "duplicates", "backdoor": "backdoor",
             "in-range outliers": "outliers"}  # fmt: skip


def _own_check(scenario: str) -> str | None:
    return next((c for prefix, c in OWN_CHECK.items() if scenario.startswith(prefix)), None)


# -- baselines ------------------------------------------------------------------------


@dataclass
class Baselines:
    """IsolationForest alone and cleanlab find_label_issues, fitted on the reference."""

    reference: pd.DataFrame
    features: list[str]

    def __post_init__(self) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
        from sklearn.model_selection import cross_val_predict

        x = self._x(self.reference)
        y = self.reference[LABEL].to_numpy()
        half = len(x) // 2
        self.forest = IsolationForest(random_state=0).fit(x[:half])
        held_out = -self.forest.score_samples(x[half:])
        self.forest_threshold = float(np.quantile(held_out, 0.99))
        self.classes = np.unique(y)
        self.model = HistGradientBoostingClassifier(random_state=0).fit(x, y)
        oof = cross_val_predict(
            HistGradientBoostingClassifier(random_state=0), x, y, cv=5, method="predict_proba"
        )
        self.cleanlab_rate = max(self._issues(y, oof).mean(), 1.0 / len(y))

    def _x(self, frame: pd.DataFrame) -> np.ndarray:
        return (
            pd.get_dummies(frame[self.features], dtype=float)
            .reindex(
                columns=pd.get_dummies(self.reference[self.features], dtype=float).columns,
                fill_value=0.0,
            )
            .to_numpy()
        )

    @staticmethod
    def _issues(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
        from cleanlab.filter import find_label_issues

        return np.asarray(find_label_issues(y, probs))

    def isolation_forest(self, batch: pd.DataFrame) -> tuple[bool, np.ndarray]:
        scores = -self.forest.score_samples(self._x(batch))
        k = int((scores > self.forest_threshold).sum())
        return binomtest(k, len(batch), 0.01, alternative="greater").pvalue < ALPHA, scores

    def cleanlab(self, batch: pd.DataFrame) -> tuple[bool, np.ndarray]:
        from cleanlab.rank import get_label_quality_scores

        y = batch[LABEL].to_numpy()
        probs = self.model.predict_proba(self._x(batch))
        issues = self._issues(y, probs)
        p = binomtest(int(issues.sum()), len(y), self.cleanlab_rate, alternative="greater").pvalue
        return p < ALPHA, 1.0 - get_label_quality_scores(y, probs)


# -- the run --------------------------------------------------------------------------


def exchangeable_floor(n: int, k: int, m: int) -> float:
    """P(the k rows that stand out most among n + m exchangeable rows all fall in the batch).

    A batch of n rows judged against m reference rows, by a test that only assumes
    the two are exchangeable (ranks, counts, Fisher and conformal tests): k attacked
    rows, however unusual, cannot give a p-value below C(n, k) / C(n + m, k).
    """
    if k <= 0:
        return 1.0
    i = np.arange(k)
    return float(np.prod((n - i) / (n + m - i)))


def known_cell_pvalue(
    batch: pd.DataFrame, mask: np.ndarray, reference: pd.DataFrame, scenario: str
) -> float | None:
    """The p-value of the attack's own cell for a count test told where to look.

    The cell is what the attack writes into every row it touches: exact Truth
    Serum copies share their (feature vector, wrong label), backdoor rows their
    (trigger values, target label); the trigger columns are those where every
    attacked row holds the value ``attacks.backdoor_trigger`` picks (the
    reference's rare value). Natural rows of the batch and of the reference may sit
    in the cell too, so with ``k`` batch rows of the ``K`` pooled rows in it, the
    p-value is P(X >= k), X ~ Hypergeometric(n + m, K, n): batch and reference
    exchangeable, the cell known in advance. No test that has to find the cell
    among others, at the same level, does better with counts alone; a test that
    also sees how the rows differ from the cell's natural rows may. None where
    the attack has no such cell (flips, jittered copies, outliers: their rows
    differ from each other).
    """
    from scipy.stats import hypergeom

    if not mask.any():
        return None
    features = [c for c in batch.columns if c not in (LABEL, "record_id")]
    if scenario.startswith("truth serum") and "jitter" not in scenario:
        keys = [*features, LABEL]
    elif scenario.startswith("backdoor"):
        hit = batch.loc[mask]
        trigger = [
            c
            for c in features
            if pd.api.types.is_numeric_dtype(batch[c])
            and hit[c].nunique(dropna=False) == 1
            and reference[c].nunique() >= 3
            and float(hit[c].iloc[0])
            == attacks.rare_value(reference[c].to_numpy(dtype=float), 0.01)
        ]
        if not trigger:
            return None
        keys = [*trigger, LABEL]
    else:
        return None
    cells = batch.loc[mask, keys].drop_duplicates()
    in_batch = len(batch[keys].merge(cells, on=keys, how="inner"))
    in_reference = len(reference[keys].merge(cells, on=keys, how="inner"))
    n, m = len(batch), len(reference)
    return float(hypergeom.sf(in_batch - 1, n + m, in_batch + in_reference, n))


def comparison_rows(sanitizer: Sanitizer, check: str | None, n_ref: int) -> tuple[int, float]:
    """Reference rows the attack's own check judges a batch against, and how far a
    model may take it below the exchangeable floor.

    The label check tests against its calibration rows (every reference row, scored
    by the fold model that never saw it), the
    outlier check against its calibration scores (every reference row, out of fold), whose tail tests (a quarter
    of the check's level with the density alone, a fifth each with the dependence
    score) may strengthen the rank evidence ``tail_gain``-fold; the other checks use
    the whole reference.
    """
    fitted = {c.name: c for c, _ in sanitizer.checks_}
    own = fitted.get(check or "")
    if check == "label_consistency" and own is not None:
        return int(getattr(own, "n_reference_", n_ref)), 1.0
    if check == "outliers" and own is not None:
        from sanitizer.checks.outliers import FAMILY_WEIGHTS

        # a tail test: its share of the check's level, up to tail_gain below ranks
        families = 1 if getattr(own, "dependence_calibration_", None) is None else 2
        share = FAMILY_WEIGHTS[families][1]
        gain = float(own.tail_gain) * share if getattr(own, "tail_", None) else 1.0
        return len(own.calibration_), max(gain, 1.0)
    return n_ref, 1.0


def _auroc(mask: np.ndarray, scores: np.ndarray) -> float | None:
    if mask.all() or not mask.any():
        return None
    return float(roc_auc_score(mask, scores))


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    catalogue = {**datasets(), **held_out_datasets(), **extra_datasets()}
    chosen = args.datasets.split(",") if args.datasets else list(datasets())
    if args.held_out and not args.datasets:
        chosen = list(held_out_datasets())
    sizes = [int(s) for s in args.sizes.split(",")]
    scen = scenarios(tuple(float(v) for v in args.drift_strengths.split(",") if v))
    if args.scenarios:
        wanted = [w.strip() for w in args.scenarios.split(",")]
        unknown = [w for w in wanted if w not in scen]
        if unknown:
            raise SystemExit(f"unknown scenarios {unknown}; choose from {list(scen)}")
        scen = {k: v for k, v in scen.items() if k in wanted}
    for name in chosen:
        full = catalogue[name]()
        features = [c for c in full.columns if c not in (LABEL, "record_id")]
        for seed in range(args.seeds):
            order = np.random.default_rng(1000 + seed).permutation(len(full))
            n_ref = min(args.reference_rows, len(full) // 2)
            reference = full.iloc[order[:n_ref]].reset_index(drop=True)
            rest = full.iloc[order[n_ref:]].reset_index(drop=True)
            started = time.perf_counter()
            sanitizer = Sanitizer(label_column=LABEL, id_columns=("record_id",), dataset=name).fit(
                reference
            )
            fit_s = time.perf_counter() - started
            # the level one quarantining check gets (the policy's alpha, Bonferroni)
            share = min(
                getattr(c, "alpha", 1.0) for c, sev in sanitizer.checks_ if sev == "quarantine"
            )
            base = Baselines(reference, features)
            for size in sizes:
                if 2 * size > len(rest):
                    continue
                for k in range(
                    args.clean_batches if size * (args.clean_batches + 1) <= len(rest) else 1
                ):
                    batch = rest.iloc[k * size : (k + 1) * size].reset_index(drop=True)
                    pool = rest.iloc[len(rest) // 2 :].reset_index(drop=True)
                    for sc_name, make in scen.items():
                        if k > 0 and sc_name != "clean":
                            continue  # extra clean batches only sharpen the false-quarantine rate
                        poisoned, mask = make(batch, reference, pool, seed * 100 + k)
                        row = _scan(
                            sanitizer, base, poisoned, mask, name, size, seed, sc_name, fit_s
                        )
                        m, gain = comparison_rows(sanitizer, _own_check(sc_name), n_ref)
                        row["floor"] = exchangeable_floor(len(poisoned), int(mask.sum()), m)
                        row["share"] = share * gain
                        row["known_cell"] = known_cell_pvalue(poisoned, mask, reference, sc_name)
                        rows.append(row)
            print(
                f"  {name} seed {seed}: fit {fit_s:.1f}s, {len(rows)} scans so far",
                file=sys.stderr,
                flush=True,
            )
    return rows


def _scan(
    sanitizer: Sanitizer, base: Baselines, batch: pd.DataFrame, mask: np.ndarray,
    dataset: str, size: int, seed: int, scenario: str, fit_s: float,
) -> dict[str, Any]:  # fmt: skip
    started = time.perf_counter()
    report = sanitizer.scan(batch)
    elapsed = time.perf_counter() - started
    flagged = np.zeros(len(batch), dtype=bool)
    flagged[[batch.index.get_loc(i) for i in report.flagged.index]] = True
    schema = next(c for c in report.checks if c.name == "schema")
    own = next((c for c in report.checks if c.name == _own_check(scenario)), None)
    own_flags = (
        np.asarray(own.row_flags, dtype=bool)
        if own is not None and own.failed and own.row_flags is not None
        else np.zeros(len(batch), dtype=bool)
    )
    if_q, if_scores = base.isolation_forest(batch)
    cl_q, cl_scores = base.cleanlab(batch)
    return {
        "dataset": dataset, "size": size, "seed": seed, "scenario": scenario,
        "quarantined": bool(report.verdict == "quarantine"),
        "failing": [c.name for c in report.failing_checks],
        "auroc": _auroc(mask, report.row_scores.to_numpy()),
        "tp": int((flagged & mask).sum()), "fp": int((flagged & ~mask).sum()), "fn": int((~flagged & mask).sum()),
        "own_tp": int((own_flags & mask).sum()), "own_fp": int((own_flags & ~mask).sum()),
        "own_fn": int((~own_flags & mask).sum()),
        "ms": elapsed * 1000, "fit_s": fit_s,
        "gx": bool(schema.failed),
        "iforest": bool(if_q), "iforest_auroc": _auroc(mask, if_scores),
        "cleanlab": bool(cl_q), "cleanlab_auroc": _auroc(mask, cl_scores),
    }  # fmt: skip


def summarise(rows: list[dict[str, Any]], pooled: bool = False) -> str:
    """One line per data set, scenario and size; ``pooled``: data sets pooled ("all")."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["size"]) if pooled else rows:
        groups[("all" if pooled else r["dataset"], r["scenario"], r["size"])].append(r)
    head = (
        "| data set | scenario | n | batches | detect | floor (provable) | detect if provable "
        "| AUROC | prec | recall | check prec / recall "
        "| ms | GX | IForest (AUROC) | cleanlab (AUROC) | failing checks |"
        "\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for (ds, sc, n), rs in groups.items():
        tp, fp, fn = (sum(r[k] for r in rs) for k in ("tp", "fp", "fn"))
        prec = f"{tp / (tp + fp):.2f}" if tp + fp else "–"
        rec = f"{tp / (tp + fn):.2f}" if tp + fn else "–"
        own = "–"
        if _own_check(sc):
            otp, ofp, ofn = (sum(r.get(k, 0) for r in rs) for k in ("own_tp", "own_fp", "own_fn"))
            own = f"{_check(sc)}: " + (f"{otp / (otp + ofp):.2f}" if otp + ofp else "–")
            own += f" / {otp / (otp + ofn):.2f}" if otp + ofn else " / –"
        provable = [r for r in rs if r.get("floor", 0.0) <= r.get("share", 1.0)]
        failing: dict[str, int] = defaultdict(int)
        for r in rs:
            for c in r["failing"]:
                failing[c] += 1
        lines.append(
            f"| {ds} | {sc} | {n} | {len(rs)} | {_rate(rs, 'quarantined')} | {_floor(rs)} "
            f"| {_rate(provable, 'quarantined') if provable and not _benign(sc) else '–'} "
            f"| {_mean(rs, 'auroc')} | {prec} | {rec} | {own} "
            f"| {statistics.median(r['ms'] for r in rs):.0f} | {_rate(rs, 'gx')} "
            f"| {_rate(rs, 'iforest')} ({_mean(rs, 'iforest_auroc')}) | {_rate(rs, 'cleanlab')} ({_mean(rs, 'cleanlab_auroc')}) "
            f"| {', '.join(f'{k}:{v}' for k, v in sorted(failing.items()))} |"
        )
    clean = [r for r in rows if r["scenario"] == "clean"]
    if clean:
        fq = sum(r["quarantined"] for r in clean)
        lines.append(
            f"\nClean batches quarantined: {fq} of {len(clean)} ({fq / len(clean):.2%}); target ≤ 1%."
        )
    return "\n".join(lines)


def known_cells(rows: list[dict[str, Any]]) -> str:
    """Per data set: where the attack has a cell (exact Truth Serum copies, backdoor
    triggers), its count test's p-value if the cell were known in advance (see
    ``known_cell_pvalue``), how many batches have it within one check's level, and
    the detection rate overall and over those batches."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("known_cell") is not None:
            groups[(r["dataset"], r["scenario"], r["size"])].append(r)
    lines = [
        "| data set | scenario | n | batches | known-cell p (median) | within the level "
        "| detect | detect where within |\n|---|---|---|---|---|---|---|---|"
    ]
    for (ds, sc, n), rs in sorted(groups.items()):
        # the cell's check (duplicates, backdoor) gets no tail gain: "share" is its level
        within = [r for r in rs if r["known_cell"] <= r["share"]]
        lines.append(
            f"| {ds} | {sc} | {n} | {len(rs)} "
            f"| {statistics.median(r['known_cell'] for r in rs):.1g} | {len(within)}/{len(rs)} "
            f"| {_rate(rs, 'quarantined')} | {_rate(within, 'quarantined') if within else '–'} |"
        )
    return "\n".join(lines)


def _floor(rs: list[dict[str, Any]]) -> str:
    """The median exchangeable floor and how many batches have it within one check's level."""
    if _benign(rs[0]["scenario"]) or "floor" not in rs[0]:
        return "–"
    ok = sum(r["floor"] <= r["share"] for r in rs)
    return f"{statistics.median(r['floor'] for r in rs):.1g} ({ok}/{len(rs)})"


def _check(scenario: str) -> str:
    return (_own_check(scenario) or "").replace("label_consistency", "labels")


def _rate(rs: list[dict[str, Any]], key: str) -> str:
    return f"{sum(bool(r[key]) for r in rs) / len(rs):.2f}"


def _mean(rs: list[dict[str, Any]], key: str) -> str:
    vals = [r[key] for r in rs if r[key] is not None]
    return f"{statistics.fmean(vals):.3f}" if vals else "–"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, one size, two data sets")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sizes", default="100,200,500,1000")
    parser.add_argument(
        "--datasets",
        default="",
        help="comma list (default: the tuning sets; also fair, randhie, synthetic-flags, synthetic-categories)",
    )
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="run the held-out real data sets (statsmodels' fair and randhie) instead",
    )
    parser.add_argument("--reference-rows", type=int, default=5000)
    parser.add_argument(
        "--scenarios", default="", help="comma list of scenario names (default: all)"
    )
    parser.add_argument(
        "--clean-batches", type=int, default=5, help="clean batches per seed and size"
    )
    parser.add_argument(
        "--drift-strengths",
        default="",
        help="comma list of stronger benign covariate drifts to add, e.g. 1.5,2.0",
    )
    parser.add_argument("--out", type=Path, help="write the raw rows as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.sizes, args.clean_batches = 2, "500", 2
        args.datasets = args.datasets or "synthetic,breast_cancer"
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    rows = run(args)
    print(summarise(rows), flush=True)
    print("\nPooled over the data sets:\n\n" + summarise(rows, pooled=True), flush=True)
    if any(r.get("known_cell") is not None for r in rows):
        print("\nThe attack's own cell, known in advance:\n\n" + known_cells(rows), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1, default=lambda v: v.item()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
