"""The report page: ``render_html``, its skeleton, the verdict banner and the check sections."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sanitizer.report_html.charts import _distribution, _score_histogram
from sanitizer.report_html.data import _columns, _Data, _evidence_features
from sanitizer.report_html.panels import (
    _expectations_section,
    _expectations_table,
    _flagged_section,
    _label_plausibility,
    _prior_chart,
    _replica_groups,
    _trigger_summary,
    _value_by_label,
)
from sanitizer.report_html.text import MAX_FEATURE_PLOTS, _compact, _num, _text

if TYPE_CHECKING:
    import pandas as pd

    from sanitizer.checks.base import CheckResult
    from sanitizer.contract import DataContract
    from sanitizer.engine import Sanitizer
    from sanitizer.report import ScanReport

log = logging.getLogger(__name__)

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

_INFO_KEYS_SHOWN = {"failed_expectations", "findings", "tests"}


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
        (
            "screened",
            f"{report.screen['rows']:,}-row random sample: {report.screen['outcome']}"
            if report.screen
            else None,
        ),
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


def _info_details(info: Mapping[str, Any]) -> str:
    items = [(k, v) for k, v in info.items() if k not in _INFO_KEYS_SHOWN]
    if not items:
        return ""
    rows = "".join(f"<tr><th>{_text(k)}</th><td>{_text(_compact(v))}</td></tr>" for k, v in items)
    return f"<details><summary>All details of this check</summary><table>{rows}</table></details>"
