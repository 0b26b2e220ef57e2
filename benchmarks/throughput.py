"""Scan throughput and peak memory on large batches, against a GX validation baseline.

    .venv/bin/python benchmarks/throughput.py                    # 100k, 300k, 1M rows
    .venv/bin/python benchmarks/throughput.py --sizes 100000     # one size

Data: 20 numeric and 2 categorical features plus an id and a binary label
(``sanitizer.samples.make_dataset``), a 100,000-row reference and batches of the
given sizes drawn from the same population. Every measurement runs in a fresh
subprocess so peak memory (max RSS growth over the RSS with the data loaded and
the sanitizer fitted) belongs to that measurement alone. In the same run it
times a Great Expectations validation of a 25-expectation suite on the same
batch, one pass with GX's default result format (SUMMARY), two ways: as GX's own
Airflow provider runs it ("GX 25 exp.": a ``ValidationDefinition``, which loads
and fingerprints the frame once but stores its result), and as GX's documentation
shows for data frames ("GX Batch.validate": ``get_batch`` and ``Batch.validate``,
which fingerprints the frame twice). The faster of the two is the baseline the
budget is stated against (the default scan at most 3× its time, peak memory at
most 4× the batch's in-memory size). The default scan screens batches above
100,000 rows on a random sample (``policy.screen_rows``); "every row" is the same
scan with ``screen_rows = 0``, the cost of a batch whose screen fails (plus the
screen) and of ``rows`` mode.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(n_ref: int, n_batch: int) -> tuple[Any, Any]:
    from sanitizer.samples import make_dataset, split

    population = make_dataset(n_ref + n_batch, n_numeric=20, seed=3)
    ref, batch = split(population, [n_ref, n_batch], seed=3)
    return ref, batch


def _gx_suite(ref: Any) -> dict[str, Any]:
    """25 expectations: column set, 20 ranges, 2 category sets, label set, label not null."""
    feats = [c for c in ref.columns if c.startswith("x")]
    exps: list[dict[str, Any]] = [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": list(ref.columns)}}
    ]
    for c in feats:
        exps.append({"type": "expect_column_values_to_be_between",
                     "kwargs": {"column": c, "min_value": float(ref[c].min()) - 1, "max_value": float(ref[c].max()) + 1}})  # fmt: skip
    for c in ("region", "plan", "label"):
        exps.append({"type": "expect_column_values_to_be_in_set",
                     "kwargs": {"column": c, "value_set": sorted(ref[c].unique().tolist())}})  # fmt: skip
    exps.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}})
    assert len(exps) == 25
    return {"name": "throughput25", "expectations": exps}


def _gx_provider(ref: Any) -> Any:
    """Plain GX as its Airflow provider's GXValidateDataFrameOperator runs it: a
    ValidationDefinition of the suite on a data-frame batch definition, ``run`` with
    GX's default result format (SUMMARY). GX loads (and fingerprints) the frame once."""
    import great_expectations as gx

    from sanitizer.expectations import _batch_definition, _build_suite, _for_gx

    definition = _batch_definition()  # an ephemeral context, progress bars off
    suite, _ = _build_suite(_gx_suite(ref))
    context = definition.data_asset.datasource.data_context
    validation = context.validation_definitions.add_or_update(
        validation=gx.ValidationDefinition(name="throughput", suite=suite, data=definition)
    )

    def validate(frame: Any) -> int:
        result = validation.run(batch_parameters={"dataframe": _for_gx(frame)})
        return len(result.results)

    return validate


def _gx_batch_validate(ref: Any) -> Any:
    """Plain GX as its documentation's data-frame example runs it: ``get_batch`` and
    ``Batch.validate`` (SUMMARY), which loads (and fingerprints) the frame twice."""
    from sanitizer.expectations import _batch_definition, _build_suite, _for_gx

    definition = _batch_definition()
    suite, _ = _build_suite(_gx_suite(ref))

    def validate(frame: Any) -> int:
        batch = definition.get_batch(batch_parameters={"dataframe": _for_gx(frame)})
        return len(batch.validate(suite).results)

    return validate


def child(kind: str, n_ref: int, n_batch: int, repeats: int) -> dict[str, Any]:
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    ref, batch = _data(n_ref, n_batch)
    batch_mb = batch.memory_usage(deep=True).sum() / 2**20
    out: dict[str, Any] = {"kind": kind, "rows": n_batch, "batch_mb": batch_mb}
    if kind in ("gx", "gx_batch"):
        validate = _gx_provider(ref) if kind == "gx" else _gx_batch_validate(ref)
        validate(batch.head(100))  # warm up outside the timing
        base = _rss_mb()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            n_results = validate(batch)
            times.append(time.perf_counter() - t)
        out.update(seconds=statistics.median(times), expectations=n_results)
    else:
        from sanitizer.config import CheckConfig, PolicyConfig
        from sanitizer.engine import DEFAULT_CHECKS, Sanitizer

        # one check alone: every other default check disabled
        checks = (
            {}
            if kind in ("default", "every_row")
            else {c: CheckConfig(enabled=c == kind) for c in {*DEFAULT_CHECKS, kind}}
        )
        policy = PolicyConfig(screen_rows=0) if kind == "every_row" else PolicyConfig()
        t = time.perf_counter()
        s = Sanitizer(
            label_column="label", id_columns=("record_id",), checks=checks, policy=policy
        ).fit(ref)
        out["fit_seconds"] = time.perf_counter() - t
        s.scan(batch.head(200))  # warm up imports outside the timing
        base = _rss_mb()
        times, per_check = [], {}
        for _ in range(repeats):
            t = time.perf_counter()
            report = s.scan(batch)
            times.append(time.perf_counter() - t)
            per_check = {c.name: c.info.get("seconds") for c in report.checks}
        out.update(seconds=statistics.median(times), per_check=per_check, verdict=report.verdict)
    out["peak_mb"] = max(0.0, _peak_mb() - base)
    return out


def _spawn(kind: str, n_ref: int, n_batch: int, repeats: int) -> dict[str, Any]:
    res = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--reference-rows", str(n_ref),
         "--sizes", str(n_batch), "--repeats", str(repeats)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        raise SystemExit(f"{kind} at {n_batch} rows failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-check", default="", help="comma list of checks to measure alone")
    parser.add_argument(
        "--skip-every-row", action="store_true", help="do not also time scans of every row"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        print(json.dumps(child(args.child, args.reference_rows, sizes[0], args.repeats)))
        return 0
    print(
        "| rows | batch MB | GX 25 exp. s | GX Batch.validate s | scan s | scan / GX "
        "| scan peak MB | peak / batch | per check s | every row s | every row / GX "
        "| every row peak / batch |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        gx = _spawn("gx", args.reference_rows, n, args.repeats)
        gx_batch = _spawn("gx_batch", args.reference_rows, n, args.repeats)
        fastest = min(gx["seconds"], gx_batch["seconds"])  # the budget's baseline
        scan = _spawn("default", args.reference_rows, n, args.repeats)
        full = (
            scan
            if args.skip_every_row
            else _spawn("every_row", args.reference_rows, n, args.repeats)
        )
        per = ", ".join(f"{k} {v:.2f}" for k, v in scan["per_check"].items())
        print(
            f"| {n:,} | {scan['batch_mb']:.0f} | {gx['seconds']:.2f} | {gx_batch['seconds']:.2f} "
            f"| {scan['seconds']:.2f} "
            f"| {scan['seconds'] / fastest:.1f}× | {scan['peak_mb']:.0f} "
            f"| {scan['peak_mb'] / scan['batch_mb']:.1f}× | {per} | {full['seconds']:.2f} "
            f"| {full['seconds'] / fastest:.1f}× | {full['peak_mb'] / full['batch_mb']:.1f}× |",
            flush=True,
        )
    for name in filter(None, args.per_check.split(",")):
        for n in sizes:
            one = _spawn(name, args.reference_rows, n, args.repeats)
            print(f"{name} alone, {n:,} rows: {one['seconds']:.2f} s, peak {one['peak_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
