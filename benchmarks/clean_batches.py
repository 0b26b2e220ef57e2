"""False quarantines of clean batches across many shapes of data.

    .venv/bin/python benchmarks/clean_batches.py                      # 21 populations
    .venv/bin/python benchmarks/clean_batches.py --reference-rows 600 # a small reference
    .venv/bin/python benchmarks/clean_batches.py --populations zip_codes,heavy_tails

The detection benchmark's clean batches come from a handful of data sets. Real
tables have other shapes: zip codes with a long tail of rare values, Pareto
amounts, missing values, booleans, rare classes, copies of one column, tight
clusters. Each population here is generated (seeded, nothing downloaded); for
each seed a reference and then disjoint clean batches are drawn from it, the
sanitizer is fitted with its defaults and every batch scanned. Nothing in a
batch is wrong, so every quarantine is a false one; the table prints them per
population and batch size, with the checks that failed. The default policy
allows 1% of clean batches overall.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from sanitizer.engine import Sanitizer

Population = Callable[[int, np.random.Generator], pd.DataFrame]


def _binary(frame: dict[str, object], logit: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    p = 1.0 / (1.0 + np.exp(-logit))
    return pd.DataFrame({**frame, "label": np.where(rng.random(len(p)) < p, "pos", "neg")})


def amounts_and_counts(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 4))
    flag = (z[:, 2] > 1).astype(int)
    frame = {"amount": np.exp(1.5 * z[:, 0] + 3), "visits": rng.poisson(np.exp(0.5 * z[:, 1])),
             "flag": flag, "score": z[:, 3]}  # fmt: skip
    return _binary(frame, 0.8 * z[:, 0] - 0.5 * z[:, 1] + 0.7 * flag, rng)


def zip_codes(n: int, rng: np.random.Generator) -> pd.DataFrame:
    weights = 1.0 / np.arange(1, 501) ** 1.1
    codes = np.array([f"z{i:03d}" for i in range(500)])[
        rng.choice(500, n, p=weights / weights.sum())
    ]
    z = rng.normal(size=(n, 2))
    return _binary({"zip": codes, "x0": z[:, 0], "x1": z[:, 1]}, z[:, 0] + 0.5 * z[:, 1], rng)


def missing_values(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 4))
    frame = {f"x{j}": np.where(rng.random(n) < 0.2, np.nan, z[:, j]) for j in range(4)}
    return _binary(frame, np.nan_to_num(frame["x0"]) + 0.5 * z[:, 1], rng)


def sparse_counts(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 4))
    frame = {f"s{j}": np.where(rng.random(n) < 0.03, np.round(np.exp(z[:, j]), 1), 0.0)
             for j in range(4)}  # fmt: skip
    return _binary({**frame, "x": z[:, 0]}, z[:, 0] + 2.0 * (frame["s1"] > 0), rng)


def rounded(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 3))
    age = np.clip(np.round(40 + 12 * z[:, 0]), 18, 90)
    frame = {"age": age, "price": np.round(np.exp(z[:, 1] + 2), 2),
             "rooms": np.clip(np.round(3 + z[:, 2]), 1, 8)}  # fmt: skip
    return _binary(frame, 0.05 * (age - 40) + 0.3 * z[:, 1], rng)


def credit_scores(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 2))
    score = np.clip(np.round(680 + 60 * z[:, 0]), 300, 850).astype(int)
    cards = rng.poisson(3, n)
    frame = {"score": score, "n_cards": cards, "income": np.round(np.exp(10.5 + 0.5 * z[:, 1]), -2)}
    return _binary(frame, -(score - 680) / 40 + 0.2 * (cards - 3), rng)


def heavy_tails(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 3))
    pareto = rng.pareto(1.5, n)
    frame = {"lognormal": np.exp(3 * z[:, 0]), "pareto": pareto, "x": z[:, 2]}
    return _binary(frame, np.log1p(pareto) - 1 + 0.5 * z[:, 2], rng)


def imbalanced_5_classes(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 4))
    scores = np.c_[np.zeros(n), z - 2.5]
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    y = (np.cumsum(p, axis=1) < rng.random(n)[:, None]).sum(axis=1).clip(0, 4)
    frame = {f"x{j}": z[:, j] for j in range(4)}
    frame["cat"] = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    return pd.DataFrame({**frame, "label": np.array(["n", "k1", "k2", "k3", "k4"])[y]})


def twelve_classes(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 4))
    scores = z @ np.random.default_rng(7).normal(size=(4, 12)) - 1.2 * np.log(np.arange(1, 13))
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    y = (np.cumsum(p, axis=1) < rng.random(n)[:, None]).sum(axis=1).clip(0, 11)
    frame = {f"x{j}": z[:, j] for j in range(4)}
    return pd.DataFrame({**frame, "label": np.array([f"k{i}" for i in range(12)])[y]})


def rare_class(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 4))
    return _binary({f"x{j}": z[:, j] for j in range(4)}, 1.5 * z[:, 0] + z[:, 1] - 5.0, rng)


def near_deterministic(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 3))
    return _binary({f"x{j}": z[:, j] for j in range(3)}, 8.0 * (z[:, 0] + z[:, 1]), rng)


def repeated_records(n: int, rng: np.random.Generator) -> pd.DataFrame:
    records = np.round(rng.normal(size=(max(1, n // 3), 4)), 1)
    z = records[rng.integers(0, len(records), n)]
    return _binary({f"x{j}": z[:, j] for j in range(4)}, z[:, 0] + z[:, 1], rng)


def categorical_only(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 5))
    frame = {}
    for j, k in enumerate((2, 3, 5, 8, 12)):
        level = np.minimum(k - 1, (np.abs(z[:, j]) * k / 3).astype(int))
        frame[f"c{j}"] = np.array([f"v{i}" for i in range(k)])[level]
    return _binary(frame, (frame["c0"] == "v1") + (frame["c2"] == "v0") - 1.0, rng)


def wide_correlated(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = 0.3 * rng.normal(size=(n, 40)) @ np.random.default_rng(3).normal(size=(40, 40))
    return _binary({f"w{j}": z[:, j] for j in range(40)}, z[:, 0] - z[:, 3], rng)


def bimodal_integers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    hour = np.where(rng.random(n) < 0.5, rng.integers(8, 11, n), rng.integers(17, 21, n))
    amount = np.round(np.exp(rng.normal(3, 1, n)))
    frame = {"hour": hour, "weekday": rng.integers(0, 7, n), "amount": amount}
    return _binary(frame, 0.3 * (hour > 12) + 0.01 * amount - 1, rng)


def copied_columns(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 2))
    frame = {"x0": z[:, 0], "x0_copy": z[:, 0], "x0_cents": 100 * z[:, 0], "x1": z[:, 1]}
    return _binary(frame, z[:, 0] + z[:, 1], rng)


def booleans(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 4))
    frame = {f"b{j}": z[:, j] > 0.5 for j in range(3)}
    return _binary({**frame, "x": z[:, 3]}, frame["b0"] + z[:, 3], rng)


def rare_flags(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 4))
    frame = {f"x{j}": z[:, j] for j in range(4)}
    frame |= {f"flag{j}": (rng.random(n) < 0.01).astype(float) for j in range(8)}
    return _binary(frame, z[:, 0] + 2.0 * frame["flag0"], rng)


def categories_with_nulls(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 2))
    cat = np.array(["a", "b", "c", "d"], dtype=object)[rng.integers(0, 4, n)]
    cat[rng.random(n) < 0.15] = None
    return _binary({"cat": cat, "x0": z[:, 0], "x1": z[:, 1]}, z[:, 0] + (cat == "a"), rng)


def tight_clusters(n: int, rng: np.random.Generator) -> pd.DataFrame:
    centres = np.random.default_rng(11).normal(scale=5, size=(10, 4))
    cluster = rng.integers(0, 10, n)
    z = centres[cluster] + 0.3 * rng.normal(size=(n, 4))
    return _binary({f"x{j}": z[:, j] for j in range(4)}, 2.0 * (cluster % 2) - 1, rng)


def xor(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 3))
    return _binary({f"x{j}": z[:, j] for j in range(3)}, 3 * np.sign(z[:, 0] * z[:, 1]), rng)


POPULATIONS: dict[str, tuple[Population, str]] = {
    "amounts_and_counts": (amounts_and_counts, "log-normal amounts, Poisson counts, a flag"),
    "zip_codes": (zip_codes, "500 Zipf-distributed codes, most rare"),
    "missing_values": (missing_values, "20% missing in every feature"),
    "sparse_counts": (sparse_counts, "features 0 in 97% of rows"),
    "rounded": (rounded, "integer ages and rooms, prices in cents"),
    "credit_scores": (credit_scores, "integer scores, counts, rounded incomes"),
    "heavy_tails": (heavy_tails, "log-normal σ = 3 and Pareto index 1.5"),
    "imbalanced_5_classes": (imbalanced_5_classes, "5 classes, one of them 80%"),
    "twelve_classes": (twelve_classes, "12 classes, Zipf-like priors"),
    "rare_class": (rare_class, "2% positives"),
    "near_deterministic": (near_deterministic, "labels a near-exact function of features"),
    "repeated_records": (repeated_records, "every record about 3 times"),
    "categorical_only": (categorical_only, "5 categorical features, no numeric"),
    "wide_correlated": (wide_correlated, "40 correlated features"),
    "bimodal_integers": (bimodal_integers, "two peaks of hours, weekdays"),
    "copied_columns": (copied_columns, "a column, its copy and a rescaled copy"),
    "booleans": (booleans, "bool-typed features"),
    "rare_flags": (rare_flags, "eight 0/1 flags set in 1% of rows"),
    "categories_with_nulls": (categories_with_nulls, "15% missing categories"),
    "tight_clusters": (tight_clusters, "10 tight clusters, label by cluster"),
    "xor": (xor, "label = sign of a product (no marginal signal)"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", default=",".join(POPULATIONS))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--reference-rows", type=int, default=3000)
    parser.add_argument("--batches", default="200:10,1000:4", help="size:count,...")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    plan = [tuple(int(v) for v in part.split(":")) for part in args.batches.split(",")]
    names = args.populations.split(",")
    unknown = [n for n in names if n not in POPULATIONS]
    if unknown:
        raise SystemExit(f"unknown populations {unknown}; choose from {list(POPULATIONS)}")
    sizes = [size for size, _ in plan]
    print(
        f"| population | shape | {' | '.join(f'{s} rows' for s in sizes)} | failing checks |\n"
        f"|---|---|{'---|' * len(sizes)}---|",
        flush=True,
    )
    total: collections.Counter[int] = collections.Counter()
    failed: collections.Counter[int] = collections.Counter()
    started = time.perf_counter()
    for name in names:
        make, shape = POPULATIONS[name]
        scans: collections.Counter[int] = collections.Counter()
        fails: collections.Counter[int] = collections.Counter()
        checks: collections.Counter[str] = collections.Counter()
        for seed in range(args.seeds):
            rng = np.random.default_rng([seed, 2026])
            rows = args.reference_rows + sum(size * count for size, count in plan)
            data = make(rows, rng).reset_index(drop=True)
            data.insert(0, "record_id", np.arange(len(data)))
            reference = data.iloc[: args.reference_rows].reset_index(drop=True)
            sanitizer = Sanitizer(label_column="label", id_columns=("record_id",)).fit(reference)
            start = args.reference_rows
            for size, count in plan:
                for _ in range(count):
                    batch = data.iloc[start : start + size].reset_index(drop=True)
                    start += size
                    report = sanitizer.scan(batch)
                    scans[size] += 1
                    if report.verdict == "quarantine":
                        fails[size] += 1
                        checks.update(c.name for c in report.failing_checks)
        total.update(scans)
        failed.update(fails)
        cells = " | ".join(f"{fails[s]}/{scans[s]}" for s in sizes)
        culprits = ", ".join(f"{c} {k}" for c, k in checks.most_common()) or "–"
        print(f"| {name} | {shape} | {cells} | {culprits} |", flush=True)
    cells = " | ".join(f"**{failed[s]}/{total[s]}**" for s in sizes)
    all_failed, all_scans = sum(failed.values()), sum(total.values())
    print(f"| all | | {cells} | {all_failed} of {all_scans} ({all_failed / all_scans:.1%}) |")
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
