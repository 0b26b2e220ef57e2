"""Escaping and number formatting for the report, its display limits, and the Markdown summary."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sanitizer.report import ScanReport

MAX_FLAGGED_ROWS = 200  # rows listed in the flagged-rows table
MAX_NEIGHBOUR_ROWS = 10  # flagged rows shown next to their nearest reference row
MAX_COLUMNS = 12  # data columns shown in row tables (the CSV export has all)
MAX_FEATURE_PLOTS = 4  # distribution plots per check
MAX_CATEGORIES = 10  # bars per categorical plot
MAX_GROUPS = 10  # replica groups listed
MAX_CELL_CHARS = 60
MAX_TEXT_CHARS = 400

_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]"
)


# -- escaping ----------------------------------------------------------------------


def _text(value: Any, limit: int = MAX_TEXT_CHARS) -> str:
    """Any value as safe HTML text: controls and bidi overrides made visible, shortened."""
    text = value if isinstance(value, str) else _plain(value)
    text = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    if len(text) > limit:
        text = f"{text[: limit - 1]}… (+{len(text) - limit + 1} chars)"
    return html.escape(text, quote=True)


def _cell(value: Any) -> str:
    return _text(value, MAX_CELL_CHARS)


def _plain(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float | np.floating):
        return _num(float(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _svg_label(value: Any, limit: int) -> str:
    """Short text for a chart label: shortened with a plain ellipsis, escaped."""
    text = _CONTROL.sub("?", _plain(value))
    return html.escape(text if len(text) <= limit else text[: limit - 1] + "…", quote=True)


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"


def _compact(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return _num(float(value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in list(value.items())[:20]) + "}"
    if isinstance(value, list | tuple | np.ndarray):
        return "[" + ", ".join(_compact(v) for v in list(value)[:20]) + "]"
    return _plain(value)


def summary_markdown(
    report: ScanReport,
    report_url: str | None = None,
    *,
    batch_id: str | None = None,
    max_checks: int = 6,
) -> str:
    """A few Markdown lines for an alert or a review task: verdict, failing checks, link.

    Data-derived text is stripped of Markdown/HTML syntax, so a hostile value cannot
    forge a link or markup in the alert.
    """
    failing = report.failing_checks
    head = (
        f"**{report.verdict.upper()}**: dataset `{_md(report.dataset, 80, code=True)}`"
        + (f", batch `{_md(batch_id, 80, code=True)}`" if batch_id else "")
        + f": {report.rows} rows, {len(report.flagged)} flagged, "
        f"{len(failing)} of {len(report.checks)} checks failed"
    )
    lines = [head]
    for c in [c for c in report.checks if c.status != "pass"][:max_checks]:
        p = f", p={_num(c.p_value)}" if c.p_value is not None else ""
        lines.append(
            f"- {c.status.upper()} {_md(c.name, 60)} ({c.flagged_rows} rows{p}): "
            f"{_md(c.message, 200)}"
        )
    hidden = sum(c.status != "pass" for c in report.checks) - max_checks
    if hidden > 0:
        lines.append(f"- … and {hidden} more")
    if report_url:
        safe = "".join(
            f"%{ord(ch):02X}" if ch in ' ()<>[]`"' or ord(ch) < 32 else ch for ch in report_url
        )
        lines.append(f"[Open the full report]({safe})")
    return "\n".join(lines)


def _md(value: Any, limit: int, *, code: bool = False) -> str:
    text = _CONTROL.sub(" ", " ".join(str(value).split()))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if code:  # inside a code span only the backtick and Slack's <url|text> syntax matter
        return text.replace("`", "'").replace("<", "‹").replace(">", "›")
    return re.sub(r"([\\`*_{}\[\]<>#!|~&])", r"\\\1", text)
