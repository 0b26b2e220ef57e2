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

import html
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from sanitizer.checks.base import CheckResult
    from sanitizer.contract import DataContract
    from sanitizer.engine import Sanitizer
    from sanitizer.report import ScanReport

log = logging.getLogger(__name__)

MAX_FLAGGED_ROWS = 200  # rows listed in the flagged-rows table
MAX_NEIGHBOUR_ROWS = 10  # flagged rows shown next to their nearest reference row
MAX_COLUMNS = 12  # data columns shown in row tables (the CSV export has all)
MAX_FEATURE_PLOTS = 4  # distribution plots per check
MAX_CATEGORIES = 10  # bars per categorical plot
MAX_GROUPS = 10  # replica groups listed
MAX_CELL_CHARS = 60
MAX_TEXT_CHARS = 400

#: What each built-in check looks for (one line), and what should make an operator release.
EXPLANATIONS: dict[str, tuple[str, str]] = {
    "schema": (
        "Great Expectations suite: columns, types, nulls, ranges and category sets.",
        "Release only if the suite is out of date (e.g. a new legitimate category); fix the suite.",
    ),
    "label_consistency": (
        "Labels implausible for their features, judged by a model and nearest "
        "neighbours fitted on the reference.",
        "Release if the flagged labels are correct on inspection (a real change in the world).",
    ),
    "duplicates": (
        "Replicated records, twins with conflicting labels, replication bursts (Truth Serum).",
        "Release if the copies are legitimate repeats (e.g. re-sent records with the same label).",
    ),
    "outliers": (
        "Rows whose joint combination of values is improbable under the reference.",
        "Release if the novel rows come from a known new population or source.",
    ),
    "drift": (
        "Feature, label-prior and joint distribution shift against the reference.",
        "Usually benign (season, market): release if the shift is expected.",
    ),
    "conditional_drift": (
        "Change of P(label | features): labels follow features differently than in the reference.",
        "Release only if the labelling rules really changed.",
    ),
    "backdoor": (
        "Trigger values tied to a label in the batch but not in the reference.",
        "Release only if the repeated value is a known default or sentinel with a real meaning.",
    ),
    "impact": (
        "Does adding the batch hurt a model on a trusted holdout?",
        "Release only with a reason the holdout no longer represents production.",
    ),
}

_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]"
)
_INFO_KEYS_SHOWN = {"failed_expectations", "findings", "tests"}
_COLOURS = {"reference": "#8c959f", "batch": "#0969da", "flagged": "#cf222e"}


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


# -- inputs ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    label: str | None
    ids: tuple[str, ...]

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


def _columns(
    report: ScanReport,
    batch: pd.DataFrame | None,
    contract: DataContract | None,
    label: str | None,
) -> _Columns:
    if contract is not None:
        return _Columns(contract.numeric, contract.categorical, contract.label, contract.ids)
    import pandas as pd

    frame = (
        batch if batch is not None else report.flagged.drop(columns=["reasons"], errors="ignore")
    )
    numeric = tuple(str(c) for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c].dtype))
    categorical = tuple(str(c) for c in frame.columns if str(c) not in numeric)
    numeric = tuple(c for c in numeric if c != label)
    categorical = tuple(c for c in categorical if c != label)
    return _Columns(numeric, categorical, label, ())


class _Data:
    """The batch and reference as the panels need them (positional, typed lazily)."""

    def __init__(
        self, batch: pd.DataFrame | None, reference: pd.DataFrame | None, cols: _Columns
    ) -> None:
        self.batch = None if batch is None else batch.reset_index(drop=True)
        self.reference = None if reference is None else reference.reset_index(drop=True)
        self.cols = cols
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._matrices: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def has(self, frame: pd.DataFrame | None, column: str) -> bool:
        return frame is not None and column in frame.columns

    def values(self, which: str, column: str) -> np.ndarray:
        """Floats for numeric columns, strings (``(missing)`` for nulls) otherwise."""
        key = (which, column)
        if key not in self._cache:
            import pandas as pd

            frame = self.batch if which == "batch" else self.reference
            assert frame is not None
            series = frame[column]
            if column in self.cols.numeric:
                out = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")
            else:
                # Python strings, not numpy's fixed-width ones: a single hostile
                # 50k-character cell must not make a 100k-row array of that width.
                missing = series.isna().to_numpy()
                raw = series.to_numpy(dtype=object)
                out = np.array(
                    [
                        "(missing)" if m else v if isinstance(v, str) else str(v)
                        for v, m in zip(raw, missing, strict=True)
                    ],
                    dtype=object,
                )
            self._cache[key] = out
        return self._cache[key]

    def matrix(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """All rows of ``which`` as (numerics scaled by the reference's — else the batch's —
        median and standard deviation, categoricals as integer codes shared by both)."""
        if which not in self._matrices:
            import pandas as pd

            base = "reference" if self.reference is not None else "batch"
            base_frame = self.reference if self.reference is not None else self.batch
            frame = self.batch if which == "batch" else self.reference
            assert frame is not None
            usable = [f for f in self.cols.features if self.has(self.batch, f)]
            usable = [f for f in usable if self.has(base_frame, f)]
            numeric = [f for f in usable if f in self.cols.numeric]
            cats = [f for f in usable if f not in self.cols.numeric]
            z = np.zeros((len(frame), len(numeric)))
            for j, f in enumerate(numeric):
                ref = self.values(base, f)
                finite = np.isfinite(ref).any()
                centre = float(np.nanmedian(ref)) if finite else 0.0
                spread = float(np.nanstd(ref)) if finite else 1.0
                z[:, j] = (self.values(which, f) - centre) / (spread or 1.0)
            c = np.zeros((len(frame), len(cats)), dtype=np.int64)
            for j, f in enumerate(cats):
                known = pd.Index(pd.unique(self.values(base, f)))
                c[:, j] = known.get_indexer(self.values(which, f))  # -1: not in the base
            self._matrices[which] = (np.nan_to_num(z, nan=0.0, posinf=1e6, neginf=-1e6), c)
        return self._matrices[which]


# -- entry points ------------------------------------------------------------------


def render_html(
    report: ScanReport,
    *,
    batch: pd.DataFrame | None = None,
    reference: pd.DataFrame | None = None,
    sanitizer: Sanitizer | None = None,
    contract: DataContract | None = None,
    title: str | None = None,
    batch_id: str | None = None,
    sha256: str | None = None,
    source: str | None = None,
    label_column: str | None = None,
) -> str:
    """The report page for one scanned batch.

    ``batch`` (the scanned frame) and ``reference`` (the trusted frame the checks
    were fitted on) enable the distribution, value-by-label and nearest-reference
    panels; ``sanitizer`` (fitted) or ``contract`` tells numeric features,
    categoricals, the label and id columns apart (otherwise dtypes decide, and
    ``label_column`` names the label).
    """
    if contract is None and sanitizer is not None:
        contract = getattr(sanitizer, "contract_", None)
    if batch is not None and len(batch) != report.rows:
        log.warning(
            "report: batch has %d rows, the report %d; ignoring it", len(batch), report.rows
        )
        batch = None
    cols = _columns(report, batch, contract, label_column)
    data = _Data(batch, reference, cols)
    title = title or f"Scan report: {report.dataset}"
    failing = [c for c in report.checks if c.status != "pass"]
    sections = [
        _banner(report, title, batch_id, sha256, source),
        _checks_table(report),
        *(_guarded(_check_section, i, c, data) for i, c in enumerate(failing)),
        _guarded(_flagged_section, report, data),
        _expectations_section(report),
    ]
    return _page(title, report.verdict, "\n".join(s for s in sections if s))


def _guarded(panel: Callable[..., str], *args: Any) -> str:
    """A panel that fails (unexpected evidence shapes) becomes a note, not a lost report."""
    try:
        return panel(*args)
    except Exception as exc:
        log.warning("report: %s failed: %s: %s", panel.__name__, type(exc).__name__, exc)
        log.debug("traceback of %s", panel.__name__, exc_info=True)
        return (
            f'<p class="hint">This part of the report could not be drawn '
            f"({_text(type(exc).__name__)}: {_text(exc, 200)}); see the JSON report.</p>"
        )


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


# -- page skeleton -----------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem;color:#1f2328;
max-width:1200px;font-size:14px}
h1{margin:.2rem 0;font-size:1.6rem} h2{margin-top:2rem;border-bottom:1px solid #d0d7de}
h3{margin:1rem 0 .3rem}
.banner{padding:.8rem 1.2rem;border-radius:6px;color:#fff}
.banner.pass{background:#1a7f37} .banner.quarantine{background:#cf222e}
.banner dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.4rem 1rem;
margin:.6rem 0 0} .banner .wide{grid-column:span 3} .banner dt{font-size:.75rem;opacity:.85}
.banner dd{margin:0;font-family:ui-monospace,monospace;overflow-wrap:anywhere}
.why{margin:.5rem 0 0;padding-left:1.2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #d0d7de;padding:3px 6px;
text-align:left;vertical-align:top;overflow-wrap:break-word;max-width:28rem}
td.st,td.n,td.k{white-space:nowrap} td.v{overflow-wrap:anywhere}
td.msg{overflow-wrap:anywhere;min-width:16rem}
#checks,#flagged{width:100%}
th{background:#f6f8fa} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td.st,tr.error td.st{background:#ffebe9;font-weight:600}
tr.warn td.st{background:#fff8c5;font-weight:600} tr.pass td.st{color:#1a7f37}
tr.nb td{background:#f6f8fa;color:#57606a;font-size:.9em} td.diff{background:#fff1c5!important}
tr.odd td{background:#ffebe9}
.check{border:1px solid #d0d7de;border-radius:6px;padding:.2rem 1rem 1rem;margin:1rem 0}
.check.fail,.check.error{border-left:6px solid #cf222e} .check.warn{border-left:6px solid #bf8700}
.plots{display:flex;flex-wrap:wrap;gap:1rem} figure{margin:0}
figcaption{font-size:.8rem;color:#57606a;max-width:380px}
.hint{color:#57606a} .small{font-size:.85em} code{overflow-wrap:anywhere}
svg text{font-family:system-ui,sans-serif;font-size:10px;fill:#1f2328}
"""


def _page(title: str, verdict: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">\n"
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_text(verdict.upper())}: {_text(title)}</title>\n"
        f"<style>{_CSS}</style></head><body>\n{body}\n"
        '<p class="hint small">Generated by the training-data sanitizer. All values from the '
        "data are shown escaped and shortened; the JSON report and the flagged-rows CSV hold "
        "them in full.</p>\n</body></html>\n"
    )


def _banner(
    report: ScanReport,
    title: str,
    batch_id: str | None,
    sha256: str | None,
    source: str | None,
) -> str:
    seconds = sum(float(c.info.get("seconds", 0.0) or 0.0) for c in report.checks)
    facts = [
        ("dataset", report.dataset),
        ("batch id", batch_id),
        ("source", source),
        ("sha256", sha256),
        ("rows", report.rows),
        ("rows flagged", len(report.flagged)),
        ("rows clean (may train)", int(report.clean_rows.sum())),
        ("checks failed", f"{len(report.failing_checks)} of {len(report.checks)}"),
        ("mode", report.mode),
        ("scanned at", report.created_at.replace("T", " ").replace("+00:00", " UTC")),
        ("scan time", f"{seconds:.2f} s"),
    ]
    dl = "".join(
        f'<div class="{"wide" if k in ("sha256", "source") else "fact"}"><dt>{_text(k)}</dt>'
        f"<dd>{_text(v, 100)}</dd></div>"
        for k, v in facts
        if v is not None
    )
    failing = report.failing_checks
    why = ""
    if failing:
        items = "".join(
            f'<li><a style="color:#fff" href="#check-{i}">{_text(c.name)}</a>: '
            f"{_text(c.message, 240)}</li>"
            for i, c in enumerate(x for x in report.checks if x.status != "pass")
            if c.failed
        )
        why = f'<ul class="why">{items}</ul>'
    return (
        f'<div class="banner {_text(report.verdict)}" id="verdict">'
        f"<div>{_text(title, 200)}</div><h1>{_text(report.verdict.upper())}</h1>"
        f"{why}<dl>{dl}</dl></div>"
    )


def _explanation(name: str) -> tuple[str, str]:
    if name in EXPLANATIONS:
        return EXPLANATIONS[name]
    try:
        from sanitizer.checks.base import get_check_class

        return get_check_class(name).description or "", ""
    except Exception:  # unknown or unregistered check: no explanation, the message stays
        return "", ""


def _checks_table(report: ScanReport) -> str:
    rows = []
    order = [c for c in report.checks if c.status != "pass"]
    for c in report.checks:
        name = _text(c.name)
        if c.status != "pass":
            name = f'<a href="#check-{order.index(c)}">{name}</a>'
        seconds = c.info.get("seconds")
        rows.append(
            f'<tr class="{_text(c.status)}"><td class="k">{name}</td><td class="st">{_text(c.status)}</td>'
            f"<td class='k'>{_text(c.severity)}</td><td class='n'>{_num(c.statistic)}</td>"
            f"<td class='n'>{_num(c.threshold)}</td><td class='n'>{_num(c.p_value)}</td>"
            f"<td class='n'>{c.flagged_rows}</td>"
            f"<td class='n'>{_num(seconds) if isinstance(seconds, int | float) else '–'}</td>"
            f"<td>{_text(_explanation(c.name)[0])}</td><td class='msg'>{_text(c.message)}</td></tr>"
        )
    return (
        "<h2>Checks</h2>"
        '<table id="checks"><tr><th>check</th><th>status</th><th>severity</th>'
        "<th>statistic</th><th>threshold</th><th>p-value</th><th>flagged rows</th>"
        "<th>seconds</th><th>what it looks for</th><th>result</th></tr>"
        + "".join(rows)
        + "</table>"
    )


# -- one section per failing / warning check ----------------------------------------


def _check_section(i: int, c: CheckResult, data: _Data) -> str:
    what, release = _explanation(c.name)
    parts = [
        f'<section class="check {_text(c.status)}" id="check-{i}">'
        f"<h2>{_text(c.name)}: {_text(c.status.upper())}</h2>",
        f"<p>{_text(c.message, 600)}</p>",
    ]
    if what:
        parts.append(f'<p class="hint">Looks for: {_text(what)}')
        parts.append(f"<br>When to release: {_text(release)}</p>" if release else "</p>")
    info = c.info
    flags = c.row_flags if c.row_flags is not None and c.row_flags.any() else None
    findings = info.get("findings")
    findings = [f for f in findings if isinstance(f, Mapping)] if isinstance(findings, list) else []
    # The check's own evidence first (what an operator decides on), then the pictures.
    if info.get("failed_expectations"):
        parts.append(_expectations_table(info))
    if findings:
        parts.append(_trigger_summary(findings))
    if flags is not None and (c.name == "duplicates" or "rows_with_batch_twin" in info):
        parts.append(_replica_groups(flags, data))
    plots: list[str] = []
    if c.row_scores is not None and len(c.row_scores) and float(np.max(c.row_scores)) > 0:
        plots.append(_score_histogram(c))
    if isinstance(info.get("batch_prior"), Sequence) and isinstance(
        info.get("reference_prior"), Sequence
    ):
        plots.append(_prior_chart(info))
    if c.name == "label_consistency" or "reference_rate" in info:
        plots.append(_label_plausibility(c, data))
    for feature in _evidence_features(c, data, flags)[:MAX_FEATURE_PLOTS]:
        plots.append(_distribution(feature, data, flags))
    if plots:
        parts.append('<div class="plots">' + "".join(p for p in plots if p) + "</div>")
    label = data.cols.label
    triggers = dict.fromkeys(str(f.get("feature")) for f in findings)
    for feature in list(triggers)[:MAX_FEATURE_PLOTS]:
        if label and data.has(data.batch, feature) and data.has(data.batch, label):
            parts.append(_value_by_label(feature, label, data))
    parts.append(_info_details(info))
    parts.append("</section>")
    return "".join(parts)


def _evidence_features(c: CheckResult, data: _Data, flags: np.ndarray | None) -> list[str]:
    """Features this check names in ``info``, else (with data) those its flagged rows
    differ on most from the reference."""
    info = c.info
    named: list[str] = []
    for key in ("drifted_features", "drifted", "features", "feature"):
        value = info.get(key)
        if isinstance(value, str):
            named.append(value)
        elif isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
            named.extend(str(v) for v in value)
    for finding in info.get("findings") or ():
        if isinstance(finding, Mapping) and finding.get("feature") is not None:
            named.append(str(finding["feature"]))
    for exp in info.get("failed_expectations") or ():
        if isinstance(exp, Mapping) and exp.get("column") is not None:
            named.append(str(exp["column"]))
    tests = info.get("tests")
    if isinstance(tests, Mapping) and not named:
        ranked = sorted(
            (k for k, v in tests.items() if isinstance(v, Mapping)),
            key=lambda k: float(tests[k].get("adjusted", tests[k].get("p_value", 1.0)) or 1.0),
        )
        named.extend(ranked[:MAX_FEATURE_PLOTS])
    usable = [
        f for f in dict.fromkeys(named) if f in data.cols.features and data.has(data.batch, f)
    ]
    if usable or flags is None or data.batch is None or c.status == "pass":
        return usable
    return _most_different(data, flags)


def _most_different(data: _Data, flags: np.ndarray) -> list[str]:
    """Features ranked by how far the flagged rows sit from the reference (or the batch)."""
    base = "reference" if data.reference is not None else "batch"
    frame = data.reference if data.reference is not None else data.batch
    scored = []
    for f in data.cols.features:
        if not (data.has(data.batch, f) and data.has(frame, f)):
            continue
        flagged = data.values("batch", f)[flags]
        scored.append((_distance(flagged, data.values(base, f), f in data.cols.numeric), f))
    scored.sort(key=lambda t: -t[0])
    return [f for d, f in scored[:MAX_FEATURE_PLOTS] if d > 0]


def _distance(a: np.ndarray, b: np.ndarray, numeric: bool) -> float:
    """Kolmogorov–Smirnov distance (numeric) or total variation (categorical)."""
    if numeric:
        a, b = np.sort(a[np.isfinite(a)]), np.sort(b[np.isfinite(b)])
        if not len(a) or not len(b):
            return 0.0
        grid = np.concatenate([a, b])
        cdf_a = np.searchsorted(a, grid, side="right") / len(a)
        cdf_b = np.searchsorted(b, grid, side="right") / len(b)
        return float(np.max(np.abs(cdf_a - cdf_b)))
    if not len(a) or not len(b):
        return 0.0
    pa, pb = _shares(a), _shares(b)
    return 0.5 * sum(abs(pa.get(k, 0.0) - pb.get(k, 0.0)) for k in set(pa) | set(pb))


def _shares(values: np.ndarray) -> dict[str, float]:
    """Share of each distinct value (hash-based: object arrays of 100k strings sort slowly)."""
    import pandas as pd

    if not len(values):
        return {}
    counts = pd.Series(values, dtype=object).value_counts(normalize=True, sort=False)
    return {str(k): float(v) for k, v in counts.items()}


def _info_details(info: Mapping[str, Any]) -> str:
    items = [(k, v) for k, v in info.items() if k not in _INFO_KEYS_SHOWN]
    if not items:
        return ""
    rows = "".join(f"<tr><th>{_text(k)}</th><td>{_text(_compact(v))}</td></tr>" for k, v in items)
    return f"<details><summary>All details of this check</summary><table>{rows}</table></details>"


def _compact(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return _num(float(value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in list(value.items())[:20]) + "}"
    if isinstance(value, list | tuple | np.ndarray):
        return "[" + ", ".join(_compact(v) for v in list(value)[:20]) + "]"
    return _plain(value)


# -- specific evidence panels -------------------------------------------------------


def _expectations_table(info: Mapping[str, Any]) -> str:
    rows = []
    for exp in info.get("failed_expectations") or ():
        if not isinstance(exp, Mapping):
            continue
        examples = exp.get("unexpected_rows") or []
        rows.append(
            f"<tr><td>{_text(exp.get('expectation'))}</td><td>{_text(exp.get('column'))}</td>"
            f"<td class='n'>{_text(exp.get('unexpected_count'))}</td>"
            f"<td>{_text(', '.join(map(str, list(examples)[:10])))}</td>"
            f"<td>{_text(exp.get('observed'))}</td><td>{_text(exp.get('exception'))}</td></tr>"
        )
    return (
        f"<h3>Failed expectations ({len(rows)} of {_text(info.get('expectations', '?'))}, "
        f"suite {_text(info.get('suite'))})</h3>"
        "<table class='gx'><tr><th>expectation</th><th>column</th><th>unexpected</th>"
        "<th>example rows</th><th>observed</th><th>error</th></tr>" + "".join(rows) + "</table>"
    )


def _expectations_section(report: ScanReport) -> str:
    schema = [c for c in report.checks if "failed_expectations" in c.info]
    if not schema:
        return ""
    c = schema[0]
    total = c.info.get("expectations", "?")
    failed = len(c.info.get("failed_expectations") or ())
    return (
        '<h2 id="expectations">Great Expectations results</h2>'
        f"<p>Suite {_text(c.info.get('suite'))}: {_text(total)} expectations, "
        f"{failed} failed{' (listed under the schema check above)' if failed else ''}.</p>"
    )


def _label_plausibility(c: CheckResult, data: _Data) -> str:
    """Implausible-label rate per class in the batch against the reference's own rate."""
    ref_rate = c.info.get("reference_rate")
    label = data.cols.label
    if c.row_flags is None or not isinstance(ref_rate, int | float):
        return ""
    bars: list[tuple[str, list[float]]] = [
        ("all rows", [float(ref_rate), float(c.row_flags.mean()) if len(c.row_flags) else 0.0])
    ]
    if (
        label
        and data.batch is not None
        and data.has(data.batch, label)
        and len(c.row_flags) == len(data.batch)
    ):
        y = data.values("batch", label)
        for cls in sorted(set(y.tolist()))[:MAX_CATEGORIES]:
            rows = y == cls
            bars.append((f"label {cls}", [float(ref_rate), float(c.row_flags[rows].mean())]))
    return _bar_chart(
        bars,
        ["reference (clean rate)", "batch"],
        "Share of rows with an implausible label: batch vs the reference's own rate",
        percent=True,
    )


def _prior_chart(info: Mapping[str, Any]) -> str:
    ref, bat = list(info["reference_prior"]), list(info["batch_prior"])
    if len(ref) != len(bat):
        return ""
    bars = [
        (f"class {i}", [float(r), float(b)]) for i, (r, b) in enumerate(zip(ref, bat, strict=True))
    ]
    return _bar_chart(bars[:MAX_CATEGORIES], ["reference", "batch"], "Label prior", percent=True)


def _trigger_summary(findings: Sequence[Mapping[str, Any]]) -> str:
    """Each suspected trigger: the cell, how many batch rows carry it and with which label."""
    out = ["<h3>Suspected triggers</h3><table><tr><th>feature</th><th>value / cell</th>"
           "<th>batch rows</th><th>labelled</th><th>reference rows (this value)</th>"
           "<th>reference share of that label</th><th>p-value</th></tr>"]  # fmt: skip
    for f in findings[:MAX_GROUPS]:
        share = f.get("reference_share")
        out.append(
            f"<tr><td>{_text(f.get('feature'))}</td><td>{_text(f.get('cell'))}</td>"
            f"<td class='n'>{_text(f.get('rows'))}</td>"
            f"<td>{_text(f.get('label_rows'))} × {_text(f.get('label'))}</td>"
            f"<td class='n'>{_text(f.get('reference_rows'))}</td>"
            f"<td class='n'>{_text(f'{share:.0%}' if isinstance(share, float) else share)}</td>"
            f"<td class='n'>{_text(f.get('p_value'))}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _value_by_label(feature: str, label: str, data: _Data) -> str:
    """Label mix per value of a trigger feature, batch vs reference.

    Rows: the values repeated in the batch (a numeric trigger is a point mass), then
    for a numeric feature ten reference-quantile bins. A row whose label mix differs
    from the reference's by more than 30 points is highlighted.
    """
    values = data.values("batch", feature)
    y = data.values("batch", label)
    numeric = feature in data.cols.numeric
    has_ref = data.has(data.reference, feature) and data.has(data.reference, label)
    rv = data.values("reference", feature) if has_ref else None
    ry = data.values("reference", label) if has_ref else None
    classes = sorted(set(y.tolist()) | (set(ry.tolist()) if ry is not None else set()))
    classes = classes[:MAX_CATEGORIES]
    keys = np.round(values, 9) if numeric else values
    import pandas as pd

    frequent = pd.Series(keys, copy=False).value_counts().index[:8]
    cells: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    for v in frequent:
        if numeric and np.sum(keys == v) < 2:
            break
        ref_mask = None if rv is None else (np.round(rv, 9) == v if numeric else rv == v)
        cells.append((f"= {_plain(v)}", keys == v, ref_mask))
    if numeric:
        base = rv if rv is not None else values
        finite = base[np.isfinite(base)]
        if len(finite):
            edges = np.unique(np.percentile(finite, np.linspace(0, 100, 11)))
            for lo, hi in pairwise(edges):
                last = hi == edges[-1]
                in_b = (values >= lo) & ((values <= hi) if last else (values < hi))
                in_r = None if rv is None else (rv >= lo) & ((rv <= hi) if last else (rv < hi))
                cells.append(
                    (f"in [{_num(float(lo))}, {_num(float(hi))}{']' if last else ')'}", in_b, in_r)
                )
    rows = []
    for name, in_b, in_r in cells:
        mix_b = _mix(y[in_b], classes)
        line = f"<td>{_cell(name)}</td><td class='n'>{int(in_b.sum())}</td><td>{_text(_mix_text(mix_b, classes))}</td>"
        odd = False
        if in_r is not None and ry is not None:
            mix_r = _mix(ry[in_r], classes)
            odd = bool(in_b.sum() >= 2 and np.max(np.abs(mix_b - mix_r)) > 0.3)
            line += (
                f"<td class='n'>{int(in_r.sum())}</td><td>{_text(_mix_text(mix_r, classes))}</td>"
            )
        rows.append(f"<tr{' class=odd' if odd else ''}>{line}</tr>")
    ref_head = "<th>reference rows</th><th>reference labels</th>" if has_ref else ""
    return (
        f"<h3>{_text(feature)}: labels by value, batch vs reference</h3>"
        f"<table class='vbl'><tr><th>value</th><th>batch rows</th><th>batch labels</th>{ref_head}</tr>"
        + "".join(rows)
        + "</table>"
    )


def _mix(y: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    if not len(y):
        return np.zeros(len(classes))
    return np.array([np.mean(y == k) for k in classes])


def _mix_text(mix: np.ndarray, classes: Sequence[str]) -> str:
    return (
        " · ".join(f"{k}: {m:.0%}" for k, m in zip(classes, mix, strict=True)) if mix.any() else "–"
    )


def _replica_groups(flags: np.ndarray, data: _Data) -> str:
    """Flagged rows grouped by (near-)identical features: one vector, many labels."""
    import pandas as pd

    if data.batch is None or len(flags) != len(data.batch):
        return ""
    rows = np.flatnonzero(flags)[:1000]
    z = data.matrix("batch")[0][rows]
    cat_cols = [f for f in data.cols.categorical if data.has(data.batch, f)]
    cats = np.empty((len(rows), len(cat_cols)), dtype=object)
    for j, f in enumerate(cat_cols):
        cats[:, j] = data.values("batch", f)[rows]
    label = data.cols.label
    y = data.values("batch", label)[rows] if label and data.has(data.batch, label) else None
    unassigned = np.ones(len(rows), dtype=bool)
    groups: list[np.ndarray] = []
    for i in range(len(rows)):
        if not unassigned[i]:
            continue
        near = unassigned & (np.nanmax(np.abs(z - z[i]), axis=1, initial=0.0) <= 0.1)
        near &= (cats == cats[i]).all(axis=1) if cats.shape[1] else True
        unassigned &= ~near
        groups.append(np.flatnonzero(near))
    groups.sort(key=len, reverse=True)
    shown = [g for g in groups if len(g) > 1][:MAX_GROUPS]
    if not shown:
        return ""
    feats = [f for f in data.cols.features if data.has(data.batch, f)][:MAX_COLUMNS]
    out = [
        "<h3>Replica groups: one feature vector, many copies</h3><table><tr><th>copies</th>"
        "<th>labels in batch</th><th>nearest reference label</th>"
        + "".join(f"<th>{_text(f)}</th>" for f in feats)
        + "</tr>"
    ]
    near = _nearest_reference(data, np.array([rows[g[0]] for g in shown]))
    for k, g in enumerate(shown):
        first = int(rows[g[0]])
        if y is not None:
            mix = pd.Series(y[g], dtype=object).value_counts().sort_index()
            labels = ", ".join(f"{k} × {n}" for k, n in mix.items())
        else:
            labels = "–"
        ref_label = "–"
        if near is not None and label and data.has(data.reference, label):
            assert data.reference is not None
            ref_label = f"{data.reference[label].iloc[int(near[0][k])]} (distance {near[1][k]:.2g})"
        values = "".join(f"<td>{_cell(data.batch[f].iloc[first])}</td>" for f in feats)
        out.append(
            f"<tr><td class='n'>{len(g)}</td><td>{_text(labels)}</td>"
            f"<td>{_text(ref_label)}</td>{values}</tr>"
        )
    out.append("</table>")
    return "".join(out)


# -- flagged rows, next to their nearest reference rows ------------------------------


def _nearest_reference(data: _Data, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For batch ``rows``: index and distance of the nearest reference row (Euclidean on
    standardised numerics, +1 per differing categorical)."""
    if data.reference is None or data.batch is None or not len(data.reference) or not len(rows):
        return None
    zb, cb = (m[rows] for m in data.matrix("batch"))
    zr, cr = data.matrix("reference")
    best = np.empty(len(rows), dtype=np.int64)
    dist = np.empty(len(rows))
    for i in range(len(rows)):
        d = np.sum((zr - zb[i]) ** 2, axis=1)
        if cb.shape[1]:
            d = d + np.sum(cr != cb[i], axis=1)
        best[i] = int(np.argmin(d))
        dist[i] = math.sqrt(float(d[best[i]]))
    return best, dist


def _flagged_section(report: ScanReport, data: _Data) -> str:
    flagged = report.flagged
    n = len(flagged)
    if n == 0:
        return '<h2>Flagged rows</h2><p id="flagged">No row was flagged.</p>'
    index = report.row_scores.index
    if index.is_unique:
        positions = index.get_indexer(flagged.index)
    else:  # as in the JSON report
        positions = np.array([report._positions[label] for label in flagged.index], dtype=int)
    scores = report.row_scores.to_numpy()[positions]
    all_reasons: list[Any] = (
        flagged["reasons"].tolist() if "reasons" in flagged.columns else [()] * n
    )
    n_reasons = np.array([len(r) if isinstance(r, Sequence) else 0 for r in all_reasons])
    order = np.lexsort((-n_reasons, -scores))[:MAX_FLAGGED_ROWS]
    cols = data.cols
    columns = [c for c in flagged.columns if c != "reasons"]
    preferred = [*cols.ids, *([cols.label] if cols.label else []), *cols.features]
    shown = [c for c in preferred if c in columns] + [c for c in columns if c not in preferred]
    hidden = max(0, len(shown) - MAX_COLUMNS)
    shown = shown[:MAX_COLUMNS]
    near = _nearest_reference(data, positions[order[:MAX_NEIGHBOUR_ROWS]])
    compared = {*cols.features, *([cols.label] if cols.label else [])}
    spread = _spreads(data) if near is not None else {}
    head = "".join(f"<th>{_text(c)}</th>" for c in shown)
    kind = {c: "n" if c in cols.numeric else "v" for c in shown}
    body = []
    for k, i in enumerate(order):
        row = flagged.iloc[i]
        reasons = all_reasons[i]
        reasons = reasons if isinstance(reasons, list | tuple) else (reasons,)
        reason_html = "<br>".join(_text(r) for r in list(reasons)[:5])
        if len(reasons) > 5:
            reason_html += f"<br>… {len(reasons) - 5} more"
        body.append(
            f"<tr><td class='n'>{int(positions[i])}</td><td class='n'>{_num(float(scores[i]))}</td>"
            + "".join(f"<td class={kind[c]}>{_cell(row[c])}</td>" for c in shown)
            + f"<td class='small msg'>{reason_html}</td></tr>"
        )
        if near is not None and k < len(near[0]):
            assert data.reference is not None
            ref_row = data.reference.iloc[int(near[0][k])]
            cells = []
            for c in shown:
                value = ref_row[c] if c in data.reference.columns else None
                differs = _differs(row[c], value, spread.get(c)) if c in compared else False
                cells.append(
                    f"<td class='{kind[c]}{' diff' if differs else ''}'>{_cell(value)}</td>"
                )
            body.append(
                f"<tr class='nb'><td colspan='2'>↳ nearest reference row {int(near[0][k])}</td>"
                + "".join(cells)
                + f"<td class='small'>distance {near[1][k]:.3g} (standardised)</td></tr>"
            )
    notes = []
    if n > MAX_FLAGGED_ROWS:
        notes.append(f"showing the {MAX_FLAGGED_ROWS} highest-scoring of {n} flagged rows")
    if hidden:
        notes.append(f"{hidden} more columns in the CSV export")
    if near is not None:
        notes.append(
            f"the top {len(near[0])} rows are followed by their nearest reference row; "
            "highlighted cells differ (numbers by more than half a reference standard deviation)"
        )
    if report.verdict == "pass":
        notes.insert(
            0,
            "the batch passed: checks flag a small share of clean rows by design "
            "(their row thresholds are reference quantiles)",
        )
    note = f"<p class='hint'>{_text('; '.join(notes))}.</p>" if notes else ""
    return (
        f"<h2>Flagged rows ({n})</h2>{note}"
        f'<table id="flagged"><tr><th>row</th><th>score</th>{head}<th>reasons</th></tr>'
        + "".join(body)
        + "</table>"
    )


def _spreads(data: _Data) -> dict[str, float]:
    """Reference standard deviation of each numeric feature (what "differs" is measured in)."""
    out = {}
    for f in data.cols.numeric:
        if data.has(data.reference, f):
            ref = data.values("reference", f)
            out[f] = float(np.nanstd(ref)) if np.isfinite(ref).any() else 0.0
    return out


def _differs(a: Any, b: Any, spread: float | None) -> bool:
    """Numbers differ by more than half a reference standard deviation; other values at all."""
    if spread is not None:
        try:
            fa, fb = float(a), float(b)
        except (TypeError, ValueError):
            return str(a) != str(b)
        return not abs(fa - fb) <= 0.5 * (spread or 1e-12)
    return str(a) != str(b)


# -- inline SVG charts ---------------------------------------------------------------

_W, _H, _L, _B, _T, _R = 380, 170, 44, 30, 22, 10


def _svg(caption: str, body: str, height: int = _H) -> str:
    return (
        f'<figure><svg role="img" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}"><title>{_text(caption)}</title>{body}</svg>'
        f"<figcaption>{_text(caption)}</figcaption></figure>"
    )


def _legend(names: Sequence[str], colours: Sequence[str]) -> str:
    out, x = [], _L
    for name, colour in zip(names, colours, strict=True):
        out.append(
            f'<rect x="{x}" y="6" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 13}" y="15">{_svg_label(name, 30)}</text>'
        )
        x += 20 + 6 * min(len(name), 30)
    return "".join(out)


def _axes(x_lo: str, x_hi: str, y_label: str) -> str:
    bottom = _H - _B
    return (
        f'<line x1="{_L}" y1="{bottom}" x2="{_W - _R}" y2="{bottom}" stroke="#57606a"/>'
        f'<line x1="{_L}" y1="{_T}" x2="{_L}" y2="{bottom}" stroke="#57606a"/>'
        f'<text x="{_L}" y="{bottom + 13}">{x_lo}</text>'
        f'<text x="{_W - _R}" y="{bottom + 13}" text-anchor="end">{x_hi}</text>'
        f'<text x="10" y="{(_T + bottom) // 2}" transform="rotate(-90 10 {(_T + bottom) // 2})" '
        f'text-anchor="middle">{_text(y_label)}</text>'
    )


def _score_histogram(c: CheckResult) -> str:
    """Row scores in 40 bins (log-scaled counts), flagged rows in red, the threshold dashed."""
    assert c.row_scores is not None
    scores = c.row_scores
    flags = c.row_flags if c.row_flags is not None else np.zeros(len(scores), dtype=bool)
    edges = np.linspace(0.0, 1.0, 41)
    clean, _ = np.histogram(scores[~flags], bins=edges)
    bad, _ = np.histogram(scores[flags], bins=edges)
    total = clean + bad
    top = math.log10(1 + max(int(total.max()), 1))
    plot_w, plot_h = _W - _L - _R, _H - _T - _B
    bw = plot_w / 40
    parts = [_legend(["not flagged", "flagged"], [_COLOURS["reference"], _COLOURS["flagged"]])]
    for k in range(40):
        x = _L + k * bw
        h_all = plot_h * math.log10(1 + int(total[k])) / top
        h_bad = h_all * (bad[k] / total[k]) if total[k] else 0.0
        y0 = _T + plot_h
        if total[k]:
            parts.append(
                f'<rect x="{x:.1f}" y="{y0 - h_all:.1f}" width="{bw - 1:.1f}" '
                f'height="{h_all - h_bad:.1f}" fill="{_COLOURS["reference"]}"/>'
            )
        if bad[k]:
            parts.append(
                f'<rect x="{x:.1f}" y="{y0 - h_bad:.1f}" width="{bw - 1:.1f}" '
                f'height="{h_bad:.1f}" fill="{_COLOURS["flagged"]}"/>'
            )
    threshold = _row_threshold(c, scores, flags)
    caption = (
        f"{c.name}: distribution of row scores ({len(scores)} rows, {int(flags.sum())} flagged)"
    )
    if threshold is not None:
        x = _L + plot_w * threshold
        parts.append(
            f'<line x1="{x:.1f}" y1="{_T}" x2="{x:.1f}" y2="{_T + plot_h}" stroke="#1f2328" '
            f'stroke-dasharray="4 3"/><text x="{x - 3:.1f}" y="{_T + 10}" text-anchor="end">'
            f"threshold {threshold:.3g}</text>"
        )
        caption += f"; dashed line: row threshold {threshold:.3g}"
    parts.append(_axes("score 0", "1", "rows (log scale)"))
    return _svg(caption, "".join(parts))


def _row_threshold(c: CheckResult, scores: np.ndarray, flags: np.ndarray) -> float | None:
    value = c.info.get("row_threshold")
    if isinstance(value, int | float) and 0.0 <= value <= 1.0:
        return float(value)
    if flags.any():
        return float(scores[flags].min())  # the lowest score that was flagged
    return None


def _distribution(feature: str, data: _Data, flags: np.ndarray | None) -> str:
    if data.batch is None or not data.has(data.batch, feature):
        return ""
    has_ref = data.has(data.reference, feature)
    if flags is not None and len(flags) != len(data.batch):
        flags = None
    if feature in data.cols.numeric:
        return _numeric_distribution(feature, data, flags, has_ref)
    return _categorical_distribution(feature, data, flags, has_ref)


def _numeric_distribution(
    feature: str, data: _Data, flags: np.ndarray | None, has_ref: bool
) -> str:
    bat = data.values("batch", feature)
    ref = data.values("reference", feature) if has_ref else np.zeros(0)
    both = np.concatenate([bat[np.isfinite(bat)], ref[np.isfinite(ref)]])
    if not len(both):
        return ""
    # The reference's whole range plus the bulk of the batch: a few wild batch values
    # (drawn at the edges) must not squash the picture.
    finite_b, finite_r = bat[np.isfinite(bat)], ref[np.isfinite(ref)]
    bulk = np.percentile(finite_b if len(finite_b) else both, [0.5, 99.5])
    lo = float(min(bulk[0], finite_r.min())) if len(finite_r) else float(bulk[0])
    hi = float(max(bulk[1], finite_r.max())) if len(finite_r) else float(bulk[1])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, 31)
    plot_w, plot_h = _W - _L - _R, _H - _T - _B

    def density(v: np.ndarray) -> np.ndarray:
        v = v[np.isfinite(v)]
        counts, _ = np.histogram(np.clip(v, lo, hi), bins=edges)
        return counts / max(len(v), 1)

    series = [("batch", density(bat))]
    if has_ref:
        series.insert(0, ("reference", density(ref)))
    top = max(float(s.max()) for _, s in series) or 1.0
    bw = plot_w / 30
    parts = []
    for name, dens in series:
        colour = _COLOURS[name]
        if name == "reference":
            for k, d in enumerate(dens):
                h = plot_h * d / top
                parts.append(
                    f'<rect x="{_L + k * bw:.1f}" y="{_T + plot_h - h:.1f}" width="{bw:.1f}" '
                    f'height="{h:.1f}" fill="{colour}" fill-opacity="0.55"/>'
                )
        else:
            pts = []
            for k, d in enumerate(dens):
                y = _T + plot_h - plot_h * d / top
                pts.append(f"{_L + k * bw:.1f},{y:.1f} {_L + (k + 1) * bw:.1f},{y:.1f}")
            parts.append(
                f'<polyline points="{" ".join(pts)}" fill="none" stroke="{colour}" '
                'stroke-width="2"/>'
            )
    names = [n for n, _ in series]
    colours = [_COLOURS[n] for n in names]
    beyond = bat[(bat < lo) | (bat > hi)]
    outside = len(beyond)
    if flags is not None and flags.any():
        marks = np.clip(bat[flags][:300], lo, hi)
        marks = marks[np.isfinite(marks)]
        y = _T + plot_h
        parts.extend(
            f'<line x1="{_L + plot_w * (m - lo) / (hi - lo):.1f}" y1="{y - 9}" '
            f'x2="{_L + plot_w * (m - lo) / (hi - lo):.1f}" y2="{y}" '
            f'stroke="{_COLOURS["flagged"]}" stroke-width="1.5"/>'
            for m in marks
        )
        names.append("flagged rows")
        colours.append(_COLOURS["flagged"])
    parts.insert(0, _legend(names, colours))
    parts.append(_axes(_text(_num(lo)), _text(_num(hi)), "share of rows"))
    caption = f"{feature}: " + (" vs ".join(names[:2])) + " (share of rows per bin)"
    if outside:
        caption += (
            f"; {outside} batch values beyond the axis ({_num(float(beyond.min()))} to "
            f"{_num(float(beyond.max()))}) drawn at its edges"
        )
    return _svg(caption, "".join(parts))


def _categorical_distribution(
    feature: str, data: _Data, flags: np.ndarray | None, has_ref: bool
) -> str:
    bat = data.values("batch", feature)
    ref = data.values("reference", feature) if has_ref else None
    share_b = _shares(bat)
    share_r = _shares(ref) if ref is not None else {}
    share_f = _shares(bat[flags]) if flags is not None and flags.any() else {}
    cats = sorted(
        set(share_b) | set(share_r),
        key=lambda k: -max(share_b.get(k, 0.0), share_r.get(k, 0.0), share_f.get(k, 0.0)),
    )[:MAX_CATEGORIES]
    names = (["reference"] if share_r else []) + ["batch"] + (["flagged rows"] if share_f else [])
    bars = []
    for k in cats:
        values = [share_r.get(k, 0.0)] if share_r else []
        values.append(share_b.get(k, 0.0))
        if share_f:
            values.append(share_f.get(k, 0.0))
        bars.append((str(k), values))
    return _bar_chart(bars, names, f"{feature}: share of rows per value", percent=True)


def _bar_chart(
    bars: Sequence[tuple[str, Sequence[float]]],
    names: Sequence[str],
    caption: str,
    *,
    percent: bool = False,
) -> str:
    """Horizontal grouped bars: one group per category, one bar per series."""
    if not bars:
        return ""
    colour_of = {"reference": _COLOURS["reference"], "batch": _COLOURS["batch"]}
    colours = [colour_of.get(n.split(" ")[0], _COLOURS["flagged"]) for n in names]
    group_h = 6 * len(names) + 6
    height = _T + 8 + group_h * len(bars)
    label_w, plot_w = 110, _W - 110 - 50
    top = max((max(v) for _, v in bars if len(v)), default=1.0) or 1.0
    parts = [_legend(list(names), colours)]
    for g, (label, values) in enumerate(bars):
        y = _T + 6 + g * group_h
        parts.append(
            f'<text x="{label_w - 4}" y="{y + group_h / 2 + 1:.1f}" text-anchor="end">'
            f"{_svg_label(label, 18)}</text>"
        )
        for s, v in enumerate(values):
            w = plot_w * v / top
            parts.append(
                f'<rect x="{label_w}" y="{y + s * 6}" width="{w:.1f}" height="5" '
                f'fill="{colours[s]}"/>'
            )
        shown = values[list(names).index("batch")] if "batch" in names else values[-1]
        text = f"{shown:.1%}" if percent else _num(shown)
        parts.append(
            f'<text x="{label_w + plot_w + 4}" y="{y + group_h / 2 + 1:.1f}">{text}</text>'
        )
    return _svg(caption, "".join(parts), height=height)
