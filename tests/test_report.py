from __future__ import annotations

import pandas as pd

from sanitizer import Sanitizer


def test_html_escapes_hostile_values(fitted: Sanitizer, clean_batch: pd.DataFrame) -> None:
    bad = clean_batch.copy()
    bad.loc[2, "region"] = "<script>alert(1)</script>"
    report = fitted.scan(bad)
    page = report.to_html(title="<b>t</b>")
    assert "<script>" not in page
    assert "&lt;b&gt;t&lt;/b&gt;" in page
    assert "http" not in page.lower().replace("http-equiv", "")  # no external resources
    assert 'id="verdict"' in page and "QUARANTINE" in page


def test_summary_lines(fitted: Sanitizer, clean_batch: pd.DataFrame) -> None:
    text = fitted.scan(clean_batch).summary()
    assert text.splitlines()[0].startswith("verdict: PASS  (400 rows, 0 flagged")
    assert "[ pass] schema" in text
