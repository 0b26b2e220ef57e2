"""Schema check: the batch against its Great Expectations suite (the data contract)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import numpy as np

from sanitizer.checks.base import Check, CheckResult, Status
from sanitizer.expectations import ExpectationOutcome, generate_suite, validate

if TYPE_CHECKING:
    from sanitizer.table import Table

MAX_REASONS_PER_ROW = 5


class SchemaCheck(Check):
    """Validate with GX: columns, types, nulls, ranges, category and label sets.

    With ``suite`` given (a parsed GX suite JSON) it is used as is; otherwise a
    suite is generated from the reference with ``range_margin``. Rows named in an
    expectation's unexpected-index list get a reason and score 1.0; expectations
    without row detail (column set, types) fail the batch with a batch-level reason.
    """

    name = "schema"
    description = "Great Expectations suite: columns, types, nulls, ranges, value sets"

    def __init__(
        self,
        suite: dict[str, Any] | None = None,
        range_margin: float = 0.25,
        range_mostly: float = 0.99,
    ) -> None:
        self.suite = suite
        self.range_margin = range_margin
        self.range_mostly = range_mostly

    def fit(self, reference: Table) -> Self:
        self.suite_ = self.suite or generate_suite(
            reference.raw,
            reference.contract,
            name="generated_from_reference",
            range_margin=self.range_margin,
            range_mostly=self.range_mostly,
        )
        return self

    def run(self, batch: Table) -> CheckResult:
        self._require_fitted("suite_")
        outcomes = validate(batch.raw, self.suite_)
        n = len(batch)
        flags = np.zeros(n, dtype=bool)
        reasons: dict[int, list[str]] = {}
        failed = [o for o in outcomes if not o.success]
        for outcome in failed:
            rows = [r for r in outcome.unexpected_rows if 0 <= r < n]
            flags[rows] = True
            for r in rows:
                row_reasons = reasons.setdefault(r, [])
                if len(row_reasons) < MAX_REASONS_PER_ROW:
                    row_reasons.append(f"schema: {outcome.label}")
        status: Status = "fail" if failed else "pass"
        message = (
            f"{len(failed)} of {len(outcomes)} expectations failed: "
            + "; ".join(_describe(o) for o in failed[:5])
            if failed
            else f"all {len(outcomes)} expectations met"
        )
        return self.result(
            status,
            message,
            statistic=float(len(failed)),
            threshold=0.0,
            row_scores=flags.astype(float),
            row_flags=flags,
            row_reasons={r: tuple(v) for r, v in reasons.items()},
            info={
                "suite": self.suite_.get("name"),
                "expectations": len(outcomes),
                "failed_expectations": [_outcome_info(o) for o in failed],
            },
        )


def _describe(o: ExpectationOutcome) -> str:
    if o.exception:
        return f"{o.label} raised: {o.exception}"
    if o.unexpected_count:
        return f"{o.label}: {o.unexpected_count} unexpected values"
    if o.details.get("mismatched"):
        mismatch = o.details["mismatched"]
        parts = [f"{k} {sorted(map(str, v))}" for k, v in mismatch.items() if v]
        return f"{o.label}: " + ", ".join(parts)
    if o.observed is not None:
        return f"{o.label}: observed {o.observed!r}"
    return o.label


def _outcome_info(o: ExpectationOutcome) -> dict[str, Any]:
    return {
        "expectation": o.type,
        "column": o.column,
        "unexpected_count": o.unexpected_count,
        "unexpected_rows": list(o.unexpected_rows[:20]),
        "observed": o.observed
        if isinstance(o.observed, str | int | float | None)
        else str(o.observed),
        "exception": o.exception,
    }
