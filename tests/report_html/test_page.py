"""The report page: verdict and checks, rendering without data, speed, panels that fail."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from report_pages import assert_inert, synthetic_report

from sanitizer import Sanitizer
from sanitizer.checks.base import CheckResult
from sanitizer.report import ScanReport
from sanitizer.report_html import render_html


def test_clean_batch_page_says_pass_and_lists_every_check(
    checked: Sanitizer, clean_batch: pd.DataFrame, reference: pd.DataFrame
) -> None:
    report = checked.scan(clean_batch)
    assert report.verdict == "pass"
    page = report.to_html(batch=clean_batch, reference=reference, sanitizer=checked)
    parsed = assert_inert(page)
    text = " ".join(parsed.text)
    assert '<div class="banner pass" id="verdict">' in page
    assert "PASS" in text and f"0 of {len(report.checks)}" in text  # checks failed
    for name in ("schema", "outliers", "backdoor"):
        assert f'<td class="k">{name}</td>' in page
    assert 'class="check' not in page  # no evidence sections when nothing failed


def test_page_without_data_still_renders(poisoned_report: ScanReport) -> None:
    page = poisoned_report.to_html(title="only the report")
    parsed = assert_inert(page)
    text = " ".join(parsed.text)
    assert "QUARANTINE" in text and "distribution of row scores" in text
    assert "nearest reference row" not in text  # needs the reference


def test_rendering_a_100k_row_batch_is_fast() -> None:
    """Rendering cost is linear and small next to a scan (see the report for numbers)."""
    report, batch = synthetic_report(100_000)
    reference = synthetic_report(100_000, seed=1)[1]
    started = time.perf_counter()
    page = render_html(report, batch=batch, reference=reference)
    elapsed = time.perf_counter() - started
    assert elapsed < 10.0, elapsed  # about 1 s on the 2-core CI machine
    assert len(page) < 1_000_000


def test_unusual_inputs_degrade_to_notes_not_errors(caplog: pytest.LogCaptureFixture) -> None:
    report, batch = synthetic_report(300)
    odd = CheckResult(
        "schema", "fail", "odd evidence", info={"failed_expectations": [{"unexpected_rows": 5}]}
    )
    shifted = batch.set_axis([i // 2 for i in range(len(batch))])  # duplicate index labels
    report = ScanReport(
        verdict="quarantine",
        checks=[odd, *report.checks],
        row_scores=report.row_scores.set_axis(shifted.index),
        flagged=report.flagged.drop(columns=["reasons"]).set_axis(
            [i // 2 for i in report.flagged.index]
        ),
        clean_rows=report.clean_rows.set_axis(shifted.index),
    )
    page = render_html(report, batch=batch.iloc[:10], label_column="label")  # wrong length
    text = " ".join(assert_inert(page).text)
    assert "This part of the report could not be drawn (TypeError" in text
    assert "impact: FAIL" in text and f"Flagged rows ({len(report.flagged)})" in text
    assert "batch has 10 rows, the report 300" in caplog.text
