"""Inline SVG charts: escaped labels, the row threshold, values beyond the axis."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanitizer.checks.base import CheckResult
from sanitizer.report_html.charts import _bar_chart, _distribution, _score_histogram
from sanitizer.report_html.data import _Columns, _Data


def test_bar_chart_escapes_labels_and_draws_nothing_without_bars() -> None:
    assert _bar_chart([], ["batch"], "empty") == ""
    svg = _bar_chart([("<b>", [0.25])], ["batch"], "caption <i>", percent=True)
    assert svg.startswith("<figure><svg") and svg.endswith("</figure>")
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "caption &lt;i&gt;" in svg
    assert "25.0%" in svg


def test_score_histogram_marks_the_row_threshold() -> None:
    scores = np.array([0.1] * 8 + [0.95, 0.99])
    check = CheckResult(
        "outliers", "fail", "m", row_scores=scores, row_flags=scores > 0.9,
        info={"row_threshold": 0.9},
    )  # fmt: skip
    svg = _score_histogram(check)
    assert "10 rows, 2 flagged" in svg and "dashed line: row threshold 0.9" in svg


def test_score_histogram_draws_no_threshold_where_flags_are_not_one() -> None:
    """The label check flags by per-class percentiles and scores rows by the pooled one:
    a flagged row may score below an unflagged one, and no line separates them."""
    scores = np.array([0.1] * 7 + [0.97, 0.95, 0.99])
    flags = np.array([False] * 7 + [False, True, True])
    check = CheckResult("label_consistency", "fail", "m", row_scores=scores, row_flags=flags)
    svg = _score_histogram(check)
    assert "10 rows, 2 flagged" in svg and "threshold" not in svg
    separated = CheckResult("outliers", "fail", "m", row_scores=scores, row_flags=scores >= 0.97)
    assert "dashed line: row threshold 0.97" in _score_histogram(separated)


def test_distributions_against_the_reference() -> None:
    batch = pd.DataFrame({"x": [*np.linspace(0, 1, 199), 1e6], "c": ["a"] * 150 + ["z"] * 50})
    reference = pd.DataFrame({"x": np.linspace(0, 1, 200), "c": ["a", "b"] * 100})
    data = _Data(batch, reference, _Columns(("x",), ("c",), None, ()))
    numeric = _distribution("x", data, None)
    assert "x: reference vs batch" in numeric and "1 batch values beyond the axis" in numeric
    flags = np.arange(200) >= 150
    categorical = _distribution("c", data, flags)
    assert "c: share of rows per value" in categorical and "flagged rows" in categorical
