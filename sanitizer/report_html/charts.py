"""Inline SVG charts: score histograms, distributions against the reference, bar charts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sanitizer.report_html.data import _Data, _shares
from sanitizer.report_html.text import MAX_CATEGORIES, _num, _svg_label, _text

if TYPE_CHECKING:
    from sanitizer.checks.base import CheckResult

_COLOURS = {"reference": "#8c959f", "batch": "#0969da", "flagged": "#cf222e"}


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
    """The check's stated row threshold, else the lowest flagged score where the flags
    are a threshold on the score (every unflagged score below it). The label check
    flags by per-class percentiles and scores by the pooled one: no line."""
    value = c.info.get("row_threshold")
    if isinstance(value, int | float) and 0.0 <= value <= 1.0:
        return float(value)
    if flags.any():
        lowest = float(scores[flags].min())
        if flags.all() or float(scores[~flags].max()) < lowest:
            return lowest
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
