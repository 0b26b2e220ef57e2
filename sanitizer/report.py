"""ScanReport: the verdict, per-check results and per-row scores; JSON and HTML rendering."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

    from sanitizer.checks.base import CheckResult

Verdict = Literal["pass", "quarantine"]
MAX_FLAGGED_IN_HTML = 200


@dataclass(frozen=True)
class ScanReport:
    """The outcome of scanning one batch. ``row_scores`` and ``flagged`` use the batch's index."""

    verdict: Verdict
    checks: list[CheckResult]
    row_scores: pd.Series
    flagged: pd.DataFrame
    clean_rows: pd.Series  # bool, batch index: rows that may reach training (see mode)
    dataset: str = "default"
    mode: str = "batch"
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def rows(self) -> int:
        return len(self.row_scores)

    @property
    def failing_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.failed]

    @cached_property
    def _positions(self) -> dict[Any, int]:
        return {label: pos for pos, label in enumerate(self.row_scores.index)}

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: rows are 0-based data-row positions in the batch file."""
        positions = self._positions
        return {
            "dataset": self.dataset,
            "verdict": self.verdict,
            "mode": self.mode,
            "rows": self.rows,
            "rows_clean": int(self.clean_rows.sum()),
            "created_at": self.created_at,
            "checks": [c.to_dict() for c in self.checks],
            "rows_flagged": [
                {
                    "row": positions[label],
                    "score": round(float(self.row_scores[label]), 6),
                    "reasons": list(reasons),
                }
                for label, reasons in self.flagged["reasons"].items()
            ],
            "row_scores": [round(float(v), 6) for v in self.row_scores.to_numpy()],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def summary(self) -> str:
        """A few human-readable lines: verdict, failing checks, counts."""
        lines = [
            f"verdict: {self.verdict.upper()}  ({self.rows} rows, "
            f"{len(self.flagged)} flagged, {len(self.failing_checks)} of "
            f"{len(self.checks)} checks failed)"
        ]
        for c in self.checks:
            lines.append(f"  [{c.status:>5}] {c.name}: {c.message}")
        return "\n".join(lines)

    def to_html(self, title: str | None = None) -> str:
        """A self-contained page (no scripts, no external resources); every value escaped."""
        esc = html.escape
        title = title or f"Scan report: {self.dataset}"
        colour = "#1a7f37" if self.verdict == "pass" else "#cf222e"
        check_rows = "".join(
            f"<tr class='{esc(c.status)}'><td>{esc(c.name)}</td><td>{esc(c.status)}</td>"
            f"<td>{esc(c.severity)}</td><td>{_fmt(c.statistic)}</td><td>{_fmt(c.threshold)}</td>"
            f"<td>{_fmt(c.p_value)}</td><td>{c.flagged_rows}</td><td>{esc(c.message)}</td></tr>"
            for c in self.checks
        )
        positions = self._positions
        flagged_items = list(self.flagged["reasons"].items())
        flagged_rows = "".join(
            f"<tr><td>{positions[label]}</td><td>{_fmt(float(self.row_scores[label]))}</td>"
            f"<td>{esc('; '.join(reasons))}</td></tr>"
            for label, reasons in flagged_items[:MAX_FLAGGED_IN_HTML]
        )
        more = len(flagged_items) - MAX_FLAGGED_IN_HTML
        more_note = (
            f"<p>… and {more} more flagged rows (see the JSON report).</p>" if more > 0 else ""
        )
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{esc(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#1f2328}}
.banner{{padding:1rem;border-radius:6px;color:#fff;background:{colour}}}
table{{border-collapse:collapse;margin:1rem 0}} td,th{{border:1px solid #d0d7de;padding:4px 8px;text-align:left}}
tr.fail td,tr.error td{{background:#ffebe9}} tr.warn td{{background:#fff8c5}}
</style></head><body>
<div class="banner" id="verdict"><h1>{esc(self.verdict.upper())}</h1>
<p>dataset {esc(self.dataset)} · {self.rows} rows · {len(self.flagged)} flagged ·
{esc(self.created_at)}</p></div>
<h2>Checks</h2>
<table id="checks"><tr><th>check</th><th>status</th><th>severity</th><th>statistic</th>
<th>threshold</th><th>p-value</th><th>flagged rows</th><th>message</th></tr>{check_rows}</table>
<h2>Flagged rows</h2>
<table id="flagged"><tr><th>row</th><th>score</th><th>reasons</th></tr>{flagged_rows}</table>
{more_note}
</body></html>
"""


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}"
