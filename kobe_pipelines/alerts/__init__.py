"""Alerts: record every alert in the log and `state/alerts.jsonl`, mail them grouped over SMTP.

Domain code (no Dagster import). Entry point: `build_alerter()` then `alerter.send(Alert(...))`
and, at the end of a run or from a sensor, `alerter.flush()`.
"""

from kobe_pipelines.alerts.alerter import (
    ALERT_LOG_FILE,
    SENT_LOG_FILE,
    Alerter,
    FlushReport,
    MailTransport,
    RetryPolicy,
    build_alerter,
    due_groups,
)
from kobe_pipelines.alerts.history import AlertEntry, Delivery, alert_history, pending_outbox
from kobe_pipelines.alerts.mail import Mail, compose_mail
from kobe_pipelines.alerts.model import Alert, AlertKind, Clock, Severity, alert_key, utc_now
from kobe_pipelines.alerts.outbox import KeyState, Outbox, OutboxState, PendingAlert
from kobe_pipelines.alerts.settings import AlertSettings, load_dotenv_if_present
from kobe_pipelines.alerts.sinks import DeliveryError, EmailSink, LogSink, read_alert_log

__all__ = [
    "ALERT_LOG_FILE",
    "SENT_LOG_FILE",
    "Alert",
    "AlertEntry",
    "AlertKind",
    "AlertSettings",
    "Alerter",
    "Clock",
    "Delivery",
    "DeliveryError",
    "EmailSink",
    "FlushReport",
    "KeyState",
    "LogSink",
    "Mail",
    "MailTransport",
    "Outbox",
    "OutboxState",
    "PendingAlert",
    "RetryPolicy",
    "Severity",
    "alert_history",
    "alert_key",
    "build_alerter",
    "compose_mail",
    "due_groups",
    "load_dotenv_if_present",
    "pending_outbox",
    "read_alert_log",
    "utc_now",
]
