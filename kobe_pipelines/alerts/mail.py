"""Turning a group of alerts into one mail: a single alert as it is, several as a digest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kobe_pipelines.alerts.model import Alert, Severity

DIGEST_LIMIT = 50
"""Alerts written out in full in one digest; the rest are counted (all are in alerts.jsonl)."""


@dataclass(frozen=True)
class Mail:
    """A composed message: `subject` one line, `body` plain text, `alert_ids` what it carries."""

    key: str
    severity: Severity
    subject: str
    body: str
    alert_ids: tuple[str, ...]


def compose_mail(alerts: Sequence[Alert]) -> Mail:
    """One mail for `alerts` (all sharing a key), oldest first.

    One alert: subject ``[KOBE CRITICAL] <subject>``. Several: a digest with subject
    ``[KOBE WARNING] 5 x order_rejected: <first subject> (+4 more)`` and a body listing each.
    """
    if not alerts:
        raise ValueError("compose_mail needs at least one alert")
    ordered = sorted(alerts, key=lambda a: (a.created_at, a.id))
    keys = {a.key for a in ordered}
    if len(keys) != 1:
        raise ValueError(f"compose_mail got alerts of several keys: {sorted(keys)}")
    key = ordered[0].key
    severity = max((a.severity for a in ordered), key=lambda s: s.rank)
    tag = f"[KOBE {severity.value.upper()}]"
    ids = tuple(a.id for a in ordered)
    if len(ordered) == 1:
        alert = ordered[0]
        return Mail(key, severity, f"{tag} {alert.subject}", _section(alert) + "\n", ids)

    first = ordered[0]
    subject = f"{tag} {len(ordered)} x {key}: {first.subject} (+{len(ordered) - 1} more)"
    lines = [
        f"{len(ordered)} alerts with key '{key}' between {first.created_at:%Y-%m-%d %H:%M:%S} "
        f"and {ordered[-1].created_at:%Y-%m-%d %H:%M:%S} UTC.",
        "",
    ]
    for number, alert in enumerate(ordered[:DIGEST_LIMIT], start=1):
        lines.append(f"{number}. {_section(alert)}")
        lines.append("")
    if len(ordered) > DIGEST_LIMIT:
        lines.append(f"... and {len(ordered) - DIGEST_LIMIT} more; every alert is in state/alerts.jsonl.")
    return Mail(key, severity, subject[:250], "\n".join(lines).rstrip() + "\n", ids)


def _section(alert: Alert) -> str:
    head = (f"[{alert.severity.value}] {alert.kind} at {alert.created_at:%Y-%m-%d %H:%M:%S} UTC: "
            f"{alert.subject}")
    body = alert.body.strip()
    return f"{head}\n{body}" if body else head
