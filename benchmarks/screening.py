"""Does screening large batches on a random sample lose detection? Screened vs every row.

    .venv/bin/python benchmarks/screening.py                       # 300k-row batches, 2 seeds
    .venv/bin/python benchmarks/screening.py --batch-rows 1000000 --seeds 1

In ``batch`` mode a batch larger than ``policy.screen_rows`` (default 100,000) is
screened: the statistical checks run on a fresh uniform sample, the GX schema on
every row; a failed screen re-runs the statistical checks on every row. This
scans the same clean and poisoned batches twice, with the default policy and
with ``screen_rows = 0`` (every row), and prints per scenario how many batches
each quarantined and the median scan time. Attacks are at the lowest rate of
the issue's threat model (flips 5%, Truth Serum 0.5%, backdoor 1%) and in-range
outliers at 1%, then at a tenth of those rates or less, where a sample holds
only a few poisoned rows and screening can cost power. Data:
``sanitizer.samples.make_dataset`` (20 numeric, 2 categorical features),
generated at run time.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

LABEL = "label"


def _scenarios() -> dict[str, Callable[..., Any]]:
    """name -> f(batch, reference, seed) -> (poisoned batch, mask)."""
    from sanitizer import attacks

    def attack(fn: Callable[..., Any], rate: float, **kwargs: Any) -> Callable[..., Any]:
        """The attack at ``rate``; targets drawn from the reference unless ``in_batch``."""
        in_batch = kwargs.pop("in_batch", False)
        return lambda b, r, s: fn(
            b, LABEL, s, rate=rate, **kwargs, **({} if in_batch else {"reference": r})
        )

    flip, targeted = attacks.flip_labels_random, attacks.flip_labels_targeted
    serum, backdoor = attacks.truth_serum_replicas, attacks.backdoor_trigger
    outliers = attacks.in_range_outliers
    return {
        "flip random 5%": attack(flip, 0.05, in_batch=True),
        "flip targeted 5%": attack(targeted, 0.05),
        "truth serum 0.5%": attack(serum, 0.005),
        "truth serum 0.5% jitter": attack(serum, 0.005, jitter=0.01),
        "truth serum 0.5% in-batch": attack(serum, 0.005, in_batch=True),
        "backdoor 1%": attack(backdoor, 0.01),
        "backdoor 1% clean-label": attack(backdoor, 0.01, clean_label=True),
        "in-range outliers 1%": attack(outliers, 0.01),
        # below the threat model's rates: few poisoned rows in a large batch, of which
        # the sample sees a third (300k rows) or a tenth (1M); where the full scan is
        # itself near its limit, the screen can lose batches it would have caught
        "flip random 0.5%": attack(flip, 0.005, in_batch=True),
        "truth serum 0.02%": attack(serum, 0.0002),
        "backdoor 0.1%": attack(backdoor, 0.001),
        "in-range outliers 0.1%": attack(outliers, 0.001),
        "flip random 0.25%": attack(flip, 0.0025, in_batch=True),
        "backdoor 0.05%": attack(backdoor, 0.0005),
        "in-range outliers 0.05%": attack(outliers, 0.0005),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-rows", type=int, default=20_000)
    parser.add_argument("--batch-rows", type=int, default=300_000)
    parser.add_argument("--screen-rows", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--scenarios", default="", help="comma list; default: all and clean")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")

    from sanitizer.config import PolicyConfig
    from sanitizer.engine import Sanitizer
    from sanitizer.samples import make_dataset, split

    scenarios = _scenarios()
    names = ["clean", *scenarios]
    if args.scenarios:
        names = [n.strip() for n in args.scenarios.split(",")]
    # rows: scenario -> list of (screened verdict, screen outcome, s, full verdict, s)
    rows: dict[str, list[tuple[str, str, float, str, float]]] = {n: [] for n in names}
    print(
        f"reference {args.reference_rows:,} rows, batches {args.batch_rows:,} rows, "
        f"screen {args.screen_rows:,} rows, {args.seeds} seed(s)",
        flush=True,
    )
    for seed in range(args.seeds):
        population = make_dataset(args.reference_rows + args.batch_rows, n_numeric=20, seed=seed)
        ref, batch = split(population, [args.reference_rows, args.batch_rows], seed=seed)
        screened = Sanitizer(
            label_column=LABEL,
            id_columns=("record_id",),
            policy=PolicyConfig(screen_rows=args.screen_rows),
        ).fit(ref)
        every_row = Sanitizer(config=replace(screened.config, policy=PolicyConfig(screen_rows=0)))
        every_row.contract_, every_row.checks_ = screened.contract_, screened.checks_
        screened.scan(batch.head(500))  # imports and warm-up outside the timing
        for name in names:
            data = batch if name == "clean" else scenarios[name](batch, ref, seed)[0]
            t = time.perf_counter()
            a = screened.scan(data)
            ta = time.perf_counter() - t
            t = time.perf_counter()
            b = every_row.scan(data)
            tb = time.perf_counter() - t
            outcome = a.screen["outcome"].split(":")[0] if a.screen else "not screened"
            rows[name].append((a.verdict, outcome, ta, b.verdict, tb))
            print(
                f"  seed {seed} {name}: screened {a.verdict} ({outcome}) {ta:.1f} s, "
                f"every row {b.verdict} {tb:.1f} s",
                flush=True,
            )
    print()
    print("| scenario | quarantined, screened | quarantined, every row | screen failed "
          "| median s, screened | median s, every row |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, results in rows.items():
        k = len(results)
        q_a = sum(r[0] == "quarantine" for r in results)
        q_b = sum(r[3] == "quarantine" for r in results)
        failed = sum(r[1] == "failed" for r in results)
        print(
            f"| {name} | {q_a}/{k} | {q_b}/{k} | {failed}/{k} "
            f"| {statistics.median(r[2] for r in results):.1f} "
            f"| {statistics.median(r[4] for r in results):.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
