"""ScanReport: the verdict, per-check results and per-row scores; JSON and HTML rendering."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

    from sanitizer.checks.base import CheckResult
    from sanitizer.engine import Sanitizer

Verdict = Literal["pass", "quarantine"]


@dataclass(frozen=True)
class ScanReport:
    """The outcome of scanning one batch. ``row_scores`` and ``flagged`` use the batch's index.

    ``screen`` is set when a large batch was screened on a random sample (``rows``,
    ``of``, ``seed``, ``outcome``); after a passed screen, rows outside the sample
    have no score (NaN here, ``null`` in JSON).
    """

    verdict: Verdict
    checks: list[CheckResult]
    row_scores: pd.Series
    flagged: pd.DataFrame
    clean_rows: pd.Series  # bool, batch index: rows that may reach training (see mode)
    dataset: str = "default"
    mode: str = "batch"
    screen: Mapping[str, Any] | None = None
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
            "screen": dict(self.screen) if self.screen else None,
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
            "row_scores": [
                None if math.isnan(v) else round(v, 6) for v in self.row_scores.to_numpy().tolist()
            ],
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
        if self.screen:
            lines.append(
                f"  screened on a random sample of {self.screen['rows']:,} rows "
                f"(seed {self.screen['seed']}): {self.screen['outcome']}"
            )
        for c in self.checks:
            lines.append(f"  [{c.status:>5}] {c.name}: {c.message}")
        return "\n".join(lines)

    def to_html(
        self,
        title: str | None = None,
        *,
        batch: pd.DataFrame | None = None,
        reference: pd.DataFrame | None = None,
        sanitizer: Sanitizer | None = None,
        batch_id: str | None = None,
        sha256: str | None = None,
        source: str | None = None,
    ) -> str:
        """A self-contained page (no scripts, no external resources); every value escaped.

        With ``batch`` and ``reference`` (and the fitted ``sanitizer`` for column roles)
        the page also compares distributions and shows nearest reference rows; see
        :func:`sanitizer.report_html.render_html`.
        """
        from sanitizer.report_html import render_html

        return render_html(
            self,
            batch=batch,
            reference=reference,
            sanitizer=sanitizer,
            title=title,
            batch_id=batch_id,
            sha256=sha256,
            source=source,
        )

    def flagged_csv(self) -> str:
        """The flagged rows as CSV (``row``, ``score``, ``reasons``, then the batch's
        columns), safe to open in a spreadsheet: text cells and headers that a
        spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR) are
        prefixed with ``'``."""
        import csv
        import io

        positions = self._positions
        columns = [c for c in self.flagged.columns if c != "reasons"]
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(["row", "score", "reasons", *(_csv_cell(str(c)) for c in columns)])
        for label, row in zip(
            self.flagged.index, self.flagged.itertuples(index=False), strict=True
        ):
            values = dict(zip(self.flagged.columns, row, strict=True))
            writer.writerow(
                [
                    positions[label],
                    round(float(self.row_scores[label]), 6),
                    _csv_cell("; ".join(values.get("reasons") or ())),
                    *(_csv_cell(values[c]) for c in columns),
                ]
            )
        return out.getvalue()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _csv_cell(value: Any) -> Any:
    """Numbers as they are; text that could start a spreadsheet formula gets a ``'``."""
    if value is None or isinstance(value, numbers.Number):  # numpy scalars included
        return value
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text
