"""Evidence panels of a check: expectations, labels, triggers, replicas, flagged rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from sanitizer.report_html.charts import _bar_chart
from sanitizer.report_html.data import _Data
from sanitizer.report_html.text import (
    MAX_CATEGORIES,
    MAX_COLUMNS,
    MAX_FLAGGED_ROWS,
    MAX_GROUPS,
    MAX_NEIGHBOUR_ROWS,
    _cell,
    _num,
    _plain,
    _text,
)

if TYPE_CHECKING:
    from sanitizer.checks.base import CheckResult
    from sanitizer.report import ScanReport

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
