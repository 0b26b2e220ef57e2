"""Deliver alerts through Airflow notifiers (SMTP by default, any notifier by config).

Notifiers are called through ``notify(context)``, not ``__call__``: their template
fields are not rendered, so a ``{{ ... }}`` inside a file name or a cell value is
sent as text and never evaluated by Jinja.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from sanitizer.alerts import Alert, failure_alert

if TYPE_CHECKING:
    from sanitizer.config import AlertsConfig

log = logging.getLogger(__name__)


def send_alert(alert: Alert, alerts: AlertsConfig, context: Any) -> list[str]:
    """Send ``alert`` on every configured channel; returns the channels used."""
    sent: list[str] = []
    if alerts.email_to:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        SmtpNotifier(
            to=list(alerts.email_to),
            from_email=alerts.from_email,
            subject=alert.subject,
            html_content=alert.html,
            smtp_conn_id=alerts.smtp_conn_id,
        ).notify(context)
        sent.append("email")
    if alerts.notifier:
        cls = _import(alerts.notifier)
        kwargs = {**alerts.notifier_kwargs, alerts.message_argument: alert.text}
        cls(**kwargs).notify(context)
        sent.append(alerts.notifier)
    if not sent:
        log.warning("no alert channel configured; alert not sent: %s", alert.subject)
    return sent


class RunFailureNotifier(BaseNotifier):
    """``on_failure_callback`` of the sanitizer DAGs: a failed run alerts too."""

    template_fields = ()

    def __init__(self, config_path: str) -> None:
        super().__init__()
        self.config_path = config_path

    def notify(self, context: Any) -> None:
        from sanitizer.config import load_config

        alerts = load_config(self.config_path).alerts
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        error = context.get("exception") or context.get("reason") or "unknown error"
        alert = failure_alert(
            dag_id=str(getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", "?")),
            run_id=str(getattr(dag_run, "run_id", None) or getattr(ti, "run_id", "?")),
            task_id=getattr(ti, "task_id", None),
            error=f"{type(error).__name__}: {error}"
            if isinstance(error, BaseException)
            else str(error),
            log_url=getattr(ti, "log_url", None),
        )
        send_alert(alert, alerts, context)


def _import(path: str) -> Any:
    module, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    return getattr(importlib.import_module(module), name)
