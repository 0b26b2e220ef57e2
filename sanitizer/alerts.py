"""Alert content for operators: what was quarantined, why, where the report is, what to do.

Plain functions returning an ``Alert`` (subject, plain text, HTML); the Airflow
glue in ``sanitizer.airflow.notify`` hands them to a notifier. Every value that
comes from data (file names, check messages, reasons) is escaped in the HTML.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_REASONS = 5


@dataclass(frozen=True)
class Alert:
    subject: str
    text: str
    html: str


def quarantine_alert(
    result: Mapping[str, Any],
    report: Mapping[str, Any] | None,
    *,
    report_url: str | None = None,
    config_path: str | None = None,
) -> Alert:
    """The message for one quarantined batch.

    ``result`` is what ``process_batch`` returned (batch_id, dataset, name, reason,
    failing_checks, report); ``report`` the batch's parsed report.json if there is one.
    """
    dataset, batch_id = str(result.get("dataset")), str(result.get("batch_id"))
    name = str(result.get("name") or "")
    reason = str(result.get("reason") or "checks_failed")
    url = report_url or str(result.get("report") or "")
    failing = _failing_lines(report) if report else []
    if not failing:
        failing = [
            f"{reason}: {result.get('message') or ', '.join(result.get('failing_checks') or [])}"
        ]
    reasons = _top_reasons(report) if report else []
    rows = report.get("rows") if report else None
    flagged = len(report.get("rows_flagged") or []) if report else None
    cfg = f" --config {config_path}" if config_path else ""
    release = f"sanitizer quarantine release {batch_id} --actor YOU --reason '...'{cfg}"
    reject = f"sanitizer quarantine reject {batch_id} --actor YOU --reason '...'{cfg}"
    subject = f"[sanitizer] {dataset}: batch {name or batch_id} quarantined ({reason})"
    counts = f"{rows} rows, {flagged} flagged" if rows is not None else "not scanned"
    text_lines = [
        f"Dataset:  {dataset}",
        f"Batch:    {batch_id}  ({name})",
        f"Reason:   {reason}  ({counts})",
        "",
        "Failing checks:",
        *(f"  - {line}" for line in failing),
    ]
    if reasons:
        text_lines += ["", "Most suspicious rows:", *(f"  - {r}" for r in reasons)]
    text_lines += [
        "",
        f"Report:   {url}",
        "",
        "The batch is held in quarantine and will not be trained on. To decide:",
        "  - in the Airflow UI: the 'review' task of this run (Release / Reject), or",
        f"  - {release}",
        f"  - {reject}",
    ]
    esc = html.escape
    body = (
        f"<h2>Batch quarantined: {esc(dataset)} / {esc(name or batch_id)}</h2>"
        f"<p>Batch <code>{esc(batch_id)}</code>, reason <b>{esc(reason)}</b> ({esc(counts)}).</p>"
        "<h3>Failing checks</h3><ul>"
        + "".join(f"<li>{esc(line)}</li>" for line in failing)
        + "</ul>"
        + (
            "<h3>Most suspicious rows</h3><ul>"
            + "".join(f"<li>{esc(r)}</li>" for r in reasons)
            + "</ul>"
            if reasons
            else ""
        )
        + f'<p>Report: <a href="{esc(url, quote=True)}">{esc(url)}</a></p>'
        "<p>The batch is held in quarantine and will not be trained on. Decide in the Airflow UI "
        "(the <i>review</i> task of this run) or with the CLI:</p>"
        f"<pre>{esc(release)}\n{esc(reject)}</pre>"
    )
    return Alert(subject=subject, text="\n".join(text_lines), html=body)


def failure_alert(
    *, dag_id: str, run_id: str, task_id: str | None, error: str, log_url: str | None = None
) -> Alert:
    """The message when a run itself failed (not a quarantine): someone must look."""
    where = f"{dag_id} / {run_id}" + (f" / {task_id}" if task_id else "")
    text = (
        f"The sanitizer run {where} failed: {error}\n\n"
        "Batches of this run stay where they are (landing or quarantine); nothing reached "
        "training. Fix the cause and clear the failed task; reruns are idempotent.\n"
        + (f"\nLog: {log_url}\n" if log_url else "")
    )
    esc = html.escape
    body = (
        f"<h2>Sanitizer run failed: {esc(where)}</h2><pre>{esc(error)}</pre>"
        "<p>Batches of this run stay where they are; nothing reached training. "
        "Fix the cause and clear the failed task; reruns are idempotent.</p>"
        + (
            f'<p>Log: <a href="{esc(log_url, quote=True)}">{esc(log_url)}</a></p>'
            if log_url
            else ""
        )
    )
    return Alert(subject=f"[sanitizer] run failed: {dag_id}", text=text, html=body)


def retrain_alert(outcome: Mapping[str, Any]) -> Alert:
    """The message when a retrained candidate was not promoted."""
    text = (
        f"Retraining {outcome.get('dataset')} produced {outcome.get('version')}, which was NOT "
        f"promoted: {outcome.get('reason')}.\nThe current model "
        f"{outcome.get('current_version')} stays in service. Candidate: {outcome.get('model_uri')}\n"
    )
    esc = html.escape
    return Alert(
        subject=f"[sanitizer] {outcome.get('dataset')}: candidate model not promoted",
        text=text,
        html=f"<pre>{esc(text)}</pre>",
    )


def _failing_lines(report: Mapping[str, Any]) -> list[str]:
    lines = []
    for check in report.get("checks") or []:
        if check.get("status") not in ("fail", "error"):
            continue
        numbers = ", ".join(
            f"{key} {_num(check.get(key))}"
            for key in ("statistic", "threshold", "p_value")
            if check.get(key) is not None
        )
        extra = f" [{numbers}]" if numbers else ""
        lines.append(
            f"{check.get('name')}: {check.get('message')}{extra} ({check.get('flagged_rows', 0)} rows)"
        )
    return lines


def _top_reasons(report: Mapping[str, Any]) -> list[str]:
    rows: Sequence[Mapping[str, Any]] = report.get("rows_flagged") or []
    top = sorted(rows, key=lambda r: -float(r.get("score") or 0.0))[:MAX_REASONS]
    return [
        f"row {r.get('row')} (score {_num(r.get('score'))}): {'; '.join(r.get('reasons') or [])}"
        for r in top
    ]


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)
