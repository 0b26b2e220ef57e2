"""The evidence panels: triggers, value by label, nearest reference rows, odd evidence."""

from __future__ import annotations

import pandas as pd
from report_pages import TRIGGER, assert_inert, synthetic_report

from sanitizer import Sanitizer
from sanitizer.report import ScanReport
from sanitizer.report_html import render_html


def test_poisoned_batch_page_shows_the_evidence(
    checked: Sanitizer,
    poisoned_report: ScanReport,
    poisoned: pd.DataFrame,
    reference: pd.DataFrame,
) -> None:
    report = poisoned_report
    failing = {c.name for c in report.failing_checks}
    assert report.verdict == "quarantine" and {"schema", "backdoor"} <= failing
    page = render_html(
        report,
        batch=poisoned,
        reference=reference,
        sanitizer=checked,
        title="Scan of b.csv",
        batch_id="b-42",
        sha256="f" * 64,
    )
    parsed = assert_inert(page)
    text = " ".join(parsed.text)
    assert "QUARANTINE" in text and "b-42" in text and "f" * 64 in text
    assert page.count('href="#check-') >= 2 * len(failing)  # banner and checks table link
    for name in failing:  # every failing check is named in the banner and has a section
        assert f"{name}: FAIL" in text
    # schema: the GX results
    assert "Failed expectations" in text and "expect_column_values_to_be_in_set" in text
    # score histograms with a threshold, distributions against the reference
    assert "distribution of row scores" in text and "dashed line: row threshold" in text
    assert "x3: reference vs batch" in text
    # backdoor: the trigger and its value-by-label table, batch vs reference
    assert "Suspected triggers" in text and "x3: labels by value, batch vs reference" in text
    assert f"= {TRIGGER}" in text and "1: 100%" in text
    # flagged rows next to their nearest reference rows
    assert f"Flagged rows ({len(report.flagged)})" in text
    assert "nearest reference row" in text
    assert page.count("<svg") >= 4


def test_renderer_is_generic_and_robust_to_missing_or_malformed_evidence() -> None:
    report, batch = synthetic_report(2_000)
    reference = synthetic_report(3_000, seed=1)[1]
    for kwargs in ({}, {"batch": batch}, {"batch": batch, "reference": reference}):
        page = render_html(report, label_column="label", **kwargs)  # type: ignore[arg-type]
        text = " ".join(assert_inert(page).text)
        assert "conditional_drift: ERROR" in text and "impact: FAIL" in text
        assert "Share of rows with an implausible label" in text
        assert "Label prior" in text
    assert "x0: reference vs batch" in text and "colour: share of rows per value" in text
    assert "x1: labels by value, batch vs reference" in text
