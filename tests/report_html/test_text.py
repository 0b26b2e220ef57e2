"""Escaping of hostile data in the page and the CSV export, and the Markdown summary."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_pages import HOSTILE, assert_inert, synthetic_report

from sanitizer import Sanitizer
from sanitizer.checks.base import CheckResult
from sanitizer.report import ScanReport
from sanitizer.report_html import render_html, summary_markdown


def test_hostile_cells_and_column_names_render_as_text(
    reference: pd.DataFrame, clean_batch: pd.DataFrame
) -> None:
    evil_col = '<img src=x onerror=alert("col")>'
    ref = reference.rename(columns={"plan": evil_col})
    batch = clean_batch.rename(columns={"plan": evil_col}).astype({"region": object})
    for i, value in enumerate(HOSTILE):
        batch.loc[i, "region"] = value
        batch.loc[i + 20, evil_col] = value
    fitted = Sanitizer(label_column="label", id_columns=("record_id",)).fit(ref)
    report = fitted.scan(batch)
    assert report.verdict == "quarantine"
    page = report.to_html(title=HOSTILE[0], batch=batch, reference=ref, sanitizer=fitted)
    parsed = assert_inert(page, data_has_urls=True)
    text = "".join(parsed.text)
    assert evil_col in text and HOSTILE[0] in text  # shown, as text
    assert "A" * 1000 not in page and "(+49" in text  # long values are shortened
    assert "\u202e" not in page and "\x00" not in page and "\\u202e" in text
    assert len(page) < 400_000

    rows = list(csv.reader(io.StringIO(report.flagged_csv())))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["row", "score", "reasons"] and evil_col in header
    assert len(body) == len(report.flagged)
    cells = [c for r in body for c in r[3:]] + header
    assert cells and all(not c.startswith(("=", "+", "@", "-")) or _number(c) for c in cells)
    assert "'" + HOSTILE[3] in cells and "'" + HOSTILE[4] in cells


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_csv_keeps_negative_numbers_and_neutralises_text(poisoned_report: ScanReport) -> None:
    rows = list(csv.DictReader(io.StringIO(poisoned_report.flagged_csv())))
    assert len(rows) == len(poisoned_report.flagged)
    assert any(float(r["x1"]) < 0 for r in rows)  # numbers are not prefixed
    assert all(r["reasons"] for r in rows)
    frame = pd.DataFrame({"delta": np.array([-3, 4], dtype=np.int64), "note": ["-3", "=1+1"]})
    report = ScanReport(
        verdict="quarantine",
        checks=[],
        row_scores=pd.Series([1.0, 1.0]),
        flagged=frame.assign(reasons=[("a",), ("b",)]),
        clean_rows=pd.Series([False, False]),
    )
    lines = report.flagged_csv().splitlines()
    assert lines == ["row,score,reasons,delta,note", "0,1.0,a,-3,'-3", "1,1.0,b,4,'=1+1"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=300))
def test_any_text_in_the_data_stays_text(value: str) -> None:
    report, batch = synthetic_report(60, hostile=value)
    page = render_html(report, batch=batch, title=value, batch_id=value, source=value)
    assert_inert(page, data_has_urls=True)
    summary = summary_markdown(report, "https://reports.example/r.html", batch_id=value)
    assert len(re.findall(r"(?<!\\)\]\(", summary)) == 1  # only the report link is a link
    assert not re.search(r"(?<!\\)[<>]", summary)  # no raw HTML / Slack <url|text> syntax


def test_summary_markdown_for_alerts(poisoned_report: ScanReport) -> None:
    text = summary_markdown(poisoned_report, "s3://bucket/quarantine/b-42/report.html")
    lines = text.splitlines()
    assert lines[0].startswith("**QUARANTINE**: dataset `default`: 400 rows")
    assert any(line.startswith("- FAIL backdoor") for line in lines)
    assert lines[-1] == "[Open the full report](s3://bucket/quarantine/b-42/report.html)"
    hostile = CheckResult("schema", "fail", "[click](http://evil) <b>x</b> `code`")
    forged = summary_markdown(
        ScanReport(
            verdict="quarantine",
            checks=[hostile],
            row_scores=pd.Series([0.0]),
            flagged=pd.DataFrame({"reasons": []}),
            clean_rows=pd.Series([False]),
        )
    )
    assert not re.search(r"(?<!\\)\]\(", forged) and "\\[click\\]" in forged
    assert not re.search(r"(?<!\\)[<>]", forged)
