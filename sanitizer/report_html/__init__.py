"""The HTML report an operator opens from a quarantine alert, and its Markdown summary.

One self-contained page: inline CSS and inline SVG charts drawn here (no scripts,
no fonts, images or styles fetched from anywhere, a Content-Security-Policy that
forbids both), so it opens from object storage, a mail attachment or an
air-gapped machine. Every value that comes from the data (cells, column names,
category values, check messages that quote them) is escaped and shortened.

The page is generic: it reads the evidence checks leave in ``CheckResult``
(``row_scores``/``row_flags``/``row_reasons``, and ``info`` keys such as
``failed_expectations``, ``drifted``, ``findings``, ``reference_rate``,
``batch_prior``) and skips any panel whose evidence is missing. Panels that compare
with the reference need the batch and the reference frames; without them the page
still shows the verdict, the checks, the score histograms and the flagged rows.
"""

from __future__ import annotations

from sanitizer.report_html.page import EXPLANATIONS, render_html
from sanitizer.report_html.text import (
    MAX_CATEGORIES,
    MAX_CELL_CHARS,
    MAX_COLUMNS,
    MAX_FEATURE_PLOTS,
    MAX_FLAGGED_ROWS,
    MAX_GROUPS,
    MAX_NEIGHBOUR_ROWS,
    MAX_TEXT_CHARS,
    summary_markdown,
)

__all__ = [
    "EXPLANATIONS",
    "MAX_CATEGORIES",
    "MAX_CELL_CHARS",
    "MAX_COLUMNS",
    "MAX_FEATURE_PLOTS",
    "MAX_FLAGGED_ROWS",
    "MAX_GROUPS",
    "MAX_NEIGHBOUR_ROWS",
    "MAX_TEXT_CHARS",
    "render_html",
    "summary_markdown",
]
