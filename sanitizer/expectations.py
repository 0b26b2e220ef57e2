"""Great Expectations suites: generate from trusted data, load from JSON, validate quietly.

Suites are plain GX 1.x JSON (``{"name", "expectations": [{"type", "kwargs", "meta"}],
"meta"}``), so a human can edit them and GX tools can read them. Generating a suite
needs no GX import; validating one imports GX lazily with its logs and progress
bars silenced.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sanitizer.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from sanitizer.contract import DataContract

NUMERIC_TYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "Int8", "Int16", "Int32", "Int64", "Float32", "Float64",
]  # fmt: skip
MAX_VALUE_SET = 1000
HARD_RANGE_FACTOR = 2.0  # no value may lie this many reference ranges beyond it
TAIL_ROWS = 10  # reference values that show how far a sparse tail reaches
HARD_TAIL_ROWS = 50  # reference extremes a tail's heaviness is estimated from
MIN_HILL_ROWS = 30  # extremes needed for Hill's estimate (a reference of 600 rows or more)
HARD_TAIL_P = 1e-9  # chance that a clean row lies beyond the hard range, by that estimate
HEAVY_TAIL_GAMMA = 0.3  # Hill's estimate from which a tail counts as heavy
SMALL_BATCH = 50  # the smallest batch an open category set's allowance is sized for


def generate_suite(
    reference: pd.DataFrame,
    contract: DataContract,
    *,
    name: str,
    range_margin: float = 0.25,
    range_mostly: float = 0.99,
) -> dict[str, Any]:
    """A suite that a clean batch from the reference's distribution passes.

    Numeric ranges are the reference's min/max widened by ``range_margin`` times the
    range on each side: a batch as large as the reference exceeds the exact
    reference max half the time, so a margin is needed to keep false alarms rare.
    A long, sparse tail (a pixel column that is 0 in 95% of rows and reaches 16
    once) is widened further, by its own spread: the distance from the
    ``TAIL_ROWS``-th most extreme reference value to the extreme itself. Even so, a
    heavy tail seen through a few hundred reference rows is exceeded by clean batches
    (breast-cancer areas reach twice the reference max), so a range holds for
    ``range_mostly`` of a batch's values (GX ``mostly``), lowered to
    1 − ``TAIL_ROWS``/m for a reference of m rows, whose tails are known no better
    than that: a stray extreme row is the outlier check's to judge, a shifted or
    rescaled column still fails here. A second range, the reference's widened by
    ``HARD_RANGE_FACTOR`` times its width on each side, admits no exception: a
    value there is a broken record or a unit error, not a tail. A column constant
    in the reference gets no range: one value says nothing of the spread (an edge
    pixel that is 0 in 900 reference images is non-zero in 0.3% of others); the
    backdoor and outlier checks still see a value that turns up there.
    """
    import pandas as pd

    exps: list[dict[str, Any]] = [
        _exp(
            "expect_table_columns_to_match_set", column_set=list(contract.columns), exact_match=True
        )
    ]
    for col in contract.columns:
        series = reference[col]
        if col not in contract.nullable:
            exps.append(_exp("expect_column_values_to_not_be_null", column=col))
        if col in contract.numeric:
            exps.append(
                _exp("expect_column_values_to_be_in_type_list", column=col, type_list=NUMERIC_TYPES)
            )
            values = pd.to_numeric(series, errors="coerce").dropna()
            if len(values) and values.nunique() > 1:
                lo, hi = float(values.min()), float(values.max())
                pad = range_margin * (hi - lo)
                tail = min(TAIL_ROWS, len(values))
                tail_lo = float(values.nsmallest(tail).iloc[-1]) - lo
                tail_hi = hi - float(values.nlargest(tail).iloc[-1])
                # GX's mostly lies in [0, 1]; the config keeps range_mostly >= 0.5
                mostly = min(range_mostly, max(0.5, 1.0 - TAIL_ROWS / len(values)))
                exps.append(
                    _exp(
                        "expect_column_values_to_be_between",
                        column=col,
                        min_value=lo - max(pad, tail_lo),
                        max_value=hi + max(pad, tail_hi),
                        mostly=mostly,
                        meta={"reference_min": lo, "reference_max": hi},
                    )
                )
                if mostly < 1.0:  # and no value at all far beyond: gross errors
                    span = HARD_RANGE_FACTOR * (hi - lo)
                    reach_lo, reach_hi = tail_reach(values.to_numpy(dtype=float))
                    exps.append(
                        _exp(
                            "expect_column_values_to_be_between",
                            column=col,
                            min_value=min(lo - span, reach_lo),
                            max_value=max(hi + span, reach_hi),
                            meta={"reference_min": lo, "reference_max": hi, "hard": True},
                        )
                    )
        elif col in contract.categorical or col == contract.label:
            present = series.dropna()
            values = sorted({_plain(v) for v in present.unique()}, key=str)
            if len(values) <= MAX_VALUE_SET:
                # a label outside the reference's classes is always an error
                unseen = 0.0 if col == contract.label else unseen_share(present)
                open_set = {"mostly": _category_mostly(unseen)} if unseen > 0 else {}
                exps.append(
                    _exp(
                        "expect_column_values_to_be_in_set",
                        column=col,
                        value_set=values,
                        meta={"unseen_share": unseen} if unseen > 0 else None,
                        **open_set,
                    )
                )
    return {
        "name": name,
        "expectations": exps,
        "meta": {
            "generated_by": "sanitizer suite init",
            "range_margin": range_margin,
            "range_mostly": range_mostly,
        },
    }


def tail_reach(values: np.ndarray) -> tuple[float, float]:
    """How far each heavy tail of ``values`` may reach in clean data; ``(low, high)``.

    Heavy tails (incomes, amounts, counts of followers) reach far beyond a
    reference's extremes: for a Pareto column of index 1.5 seen through 3,000 rows,
    one clean row in 9,000 lies beyond three times the reference's range. Where
    Hill's estimate γ of a tail's index, from the ``HARD_TAIL_ROWS`` most extreme
    distances from the median, is at least ``HEAVY_TAIL_GAMMA`` (heavier than normal
    and exponential tails: for 3,000 rows their estimates lay in 0.13–0.18 and
    0.21–0.28 in 18 of 20 draws, a log-normal's of σ = 0.8 in 0.31–0.40, a Pareto's of
    index 1.5 in 0.53–0.85), the tail may reach the distance a row exceeds with probability
    ``HARD_TAIL_P`` by that estimate (Weissman's quantile estimator). Other tails, and
    references of fewer than 600 rows (too few extremes for a stable estimate), reach
    the median only: the caller's range stands.

    A *sparse* tail (a count that is 0 in 97% of rows: fewer values beyond the
    median than the estimate needs, in a reference large enough for it) is judged on
    all its values if it has at least ``TAIL_ROWS``. Their Hill estimate measures the
    tail's body, not its extremes (1.3–2.5 for 18 log-normal values of σ = 1, where
    the 50 largest of a 3,000-row reference's 90 show 0.7–1.0), so it is capped at
    ``HEAVY_TAIL_GAMMA`` and anchored at the largest value, the least extrapolated:
    a spread-out sparse tail counts as just heavy, and a point-like one (a rare flag,
    every value beyond the median equal) keeps γ = 0 and the caller's range.
    """
    import numpy as np

    centre = float(np.median(values))
    n = len(values)
    reach = []
    for distance in (centre - values, values - centre):
        tail = np.sort(distance[distance > 0])[::-1]
        k = min(HARD_TAIL_ROWS, n // 20, len(tail) - 1)
        if k >= MIN_HILL_ROWS:
            gamma = float(np.mean(np.log(tail[:k] / tail[k])))
            anchor, exceed = float(tail[k]), k / n
        elif n // 20 >= MIN_HILL_ROWS and len(tail) >= TAIL_ROWS:  # a sparse tail
            gamma = min(HEAVY_TAIL_GAMMA, float(np.mean(np.log(tail[:-1] / tail[-1]))))
            anchor, exceed = float(tail[0]), 1 / n
        else:
            gamma = anchor = exceed = 0.0
        heavy = gamma >= HEAVY_TAIL_GAMMA
        reach.append(anchor * (exceed / HARD_TAIL_P) ** gamma if heavy else 0.0)
    return centre - reach[0], centre + reach[1]


def unseen_share(values: pd.Series) -> float:
    """Good–Turing's estimate of the chance that a new value is one ``values`` never
    showed: the share of its values seen exactly once (0 when every value repeats)."""
    if len(values) == 0:
        return 0.0
    return float((values.value_counts() == 1).sum()) / len(values)


def _category_mostly(unseen: float) -> float:
    """The share of a batch's values that an open category set (one with unseen share
    ``unseen`` > 0: zip codes, product ids) must hold.

    Twice the estimate (which rests on a handful of singletons where the tail is
    thin) plus three binomial standard deviations of that share in a
    ``SMALL_BATCH``-row batch; at least half of a batch. A Zipf column of 500 codes
    seen through 3,000 rows: 4.4–4.6% singletons, 0.82 of a batch must be in the
    set, clean batches held 3–6% new codes (50-row batches up to 14%). One
    singleton in 3,000 rows: 0.992, a 200-row batch with two new codes fails (0.2%
    of clean ones).
    """
    slack = 2.0 * unseen + 3.0 * math.sqrt(unseen / SMALL_BATCH)
    return max(0.5, 1.0 - slack)


def load_suite(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a suite JSON file; ``ConfigError`` for anything that is not a usable suite."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: suite file does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p}: not a readable JSON suite ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
        raise ConfigError(f"{p}: a suite must be an object with an 'expectations' list")
    for i, exp in enumerate(raw["expectations"]):
        if not isinstance(exp, dict) or not isinstance(exp.get("type"), str):
            raise ConfigError(f"{p}: expectations[{i}] has no 'type'")
    raw.setdefault("name", p.stem)
    return raw


def suite_to_json(suite: dict[str, Any]) -> str:
    return json.dumps(suite, indent=2, allow_nan=False) + "\n"


def save_suite(suite: dict[str, Any], path: str | os.PathLike[str]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(suite_to_json(suite), encoding="utf-8")


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, reduced to what a report needs."""

    type: str
    column: str | None
    success: bool
    unexpected_rows: tuple[int, ...] = ()
    unexpected_count: int | None = None
    observed: Any = None
    details: dict[str, Any] = field(default_factory=dict)
    exception: str | None = None

    @property
    def label(self) -> str:
        return f"{self.type}({self.column})" if self.column else self.type


def validate(frame: pd.DataFrame, suite: dict[str, Any]) -> list[ExpectationOutcome]:
    """Validate ``frame`` (RangeIndex) against ``suite`` with GX; one outcome per expectation.

    Two passes: the whole suite with GX's ``BOOLEAN_ONLY`` result format (about 30%
    cheaper than ``COMPLETE`` on a large frame, and a clean batch needs no more),
    then only the failed expectations again with ``COMPLETE`` for their unexpected
    rows and observed values, both on one GX batch (see ``_gx_batch``). A passing
    expectation's outcome carries no row detail.
    """
    gx_suite, expectations = _build_suite(suite)
    with _gx_batch(_for_gx(frame)) as batch:
        results = _gx_run(batch, gx_suite, "BOOLEAN_ONLY")
        failed = [i for i, res in enumerate(results) if not res.success]
        if failed:
            retry, _ = _build_suite({**suite, "expectations": [expectations[i] for i in failed]})
            for i, res in zip(failed, _gx_run(batch, retry, "COMPLETE"), strict=True):
                results[i] = res
    outcomes = []
    for res, exp in zip(results, expectations, strict=True):
        r = dict(res.result or {})
        info = res.exception_info or {}
        exc = info.get("exception_message") if info.get("raised_exception") else None
        outcomes.append(
            ExpectationOutcome(
                type=exp["type"],
                column=exp.get("kwargs", {}).get("column"),
                success=bool(res.success),
                unexpected_rows=tuple(int(i) for i in r.get("unexpected_index_list") or ()),
                unexpected_count=r.get("unexpected_count"),
                observed=r.get("observed_value"),
                details=dict(r.get("details") or {}),
                exception=exc,
            )
        )
    return outcomes


@contextlib.contextmanager
def _gx_batch(frame: pd.DataFrame) -> Iterator[Any]:
    """A GX validator of ``frame`` for one or more suites, loading the frame once.

    GX fingerprints a data frame (hashes every value) each time it loads one as a
    batch: 0.3–0.6 s for a million rows of 25 columns. ``Batch.validate`` loads it
    twice, in ``get_batch`` and again in the validator it builds; this is the
    validator ``ValidationDefinition.run`` uses, without its result store. The
    frame is released afterwards: GX's execution engine would hold it until the
    next validation.
    """
    from great_expectations.validator.v1_validator import Validator

    with quiet_gx():
        validator = Validator(
            batch_definition=_batch_definition(), batch_parameters={"dataframe": frame}
        )
    try:
        yield validator
    finally:
        loaded = validator._wrapped_validator_cache  # built on first use
        if loaded is not None:
            manager = loaded.execution_engine.batch_manager
            manager.reset_batch_cache()
            manager.batch_data_cache.clear()


def _gx_run(validator: Any, gx_suite: Any, result_format: str) -> list[Any]:
    """Validate ``gx_suite`` on the batch of ``_gx_batch``; GX's result per expectation."""
    with quiet_gx():
        validator.result_format = {"result_format": result_format}
        return list(validator.validate_expectation_suite(gx_suite).results)


def _build_suite(suite: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    with quiet_gx():
        import great_expectations as gx

        expectations = [dict(e) for e in suite["expectations"]]
        built = []
        for i, exp in enumerate(expectations):
            try:
                one = gx.ExpectationSuite(name="probe", expectations=[exp])
            except Exception as exc:  # GX raises pydantic and its own errors here
                raise ConfigError(f"suite expectation {i} ({exp['type']}): {_first(exc)}") from exc
            if len(one.expectations) != 1:
                raise ConfigError(f"suite expectation {i}: unknown type {exp['type']!r}")
            built.append(one.expectations[0])
        gx_suite = gx.ExpectationSuite(name=str(suite.get("name", "suite")), expectations=built)
    return gx_suite, expectations


def _for_gx(frame: pd.DataFrame) -> pd.DataFrame:
    """GX 1.x does not recognise pandas 3's ``str`` dtype in type checks: hand it objects."""
    import pandas as pd

    out = frame.copy(deep=False)
    for col in out.columns:
        if isinstance(out[col].dtype, pd.StringDtype):
            out[col] = out[col].astype(object)
    return out.reset_index(drop=True)


@cache
def _batch_definition() -> Any:
    with quiet_gx():
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas("sanitizer").add_dataframe_asset("batch")
        return asset.add_batch_definition_whole_dataframe("whole")


@contextlib.contextmanager
def quiet_gx() -> Iterator[None]:
    """Silence GX's analytics, warnings, logs and progress output for the enclosed block."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    gx_logger = logging.getLogger("great_expectations")
    old_level, old_propagate = gx_logger.level, gx_logger.propagate
    gx_logger.setLevel(logging.CRITICAL + 1)
    gx_logger.propagate = False
    sink = io.StringIO()
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        gx_logger.setLevel(old_level)
        gx_logger.propagate = old_propagate


def _exp(type_: str, *, meta: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    return {"type": type_, "kwargs": kwargs, "meta": meta or {}}


def _plain(value: Any) -> Any:
    """numpy scalars → Python scalars, so the suite is plain JSON."""
    return value.item() if hasattr(value, "item") else value


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(lines[:3]) if lines else type(exc).__name__
