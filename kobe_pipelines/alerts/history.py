"""What became of each alert, for `kobe alerts`: mailed, waiting in the outbox, undeliverable, or
recorded only (mail off when it was raised).

Read from the files the alerter writes under the state folder: `alerts.jsonl` (every alert),
`alert_sent.jsonl` (mails the server accepted), `alert_outbox.jsonl` (waiting) and
`alert_undeliverable.jsonl` (given up). Reading creates nothing.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from kobe_pipelines.alerts.alerter import ALERT_LOG_FILE, SENT_LOG_FILE
from kobe_pipelines.alerts.model import Alert, parse_utc
from kobe_pipelines.alerts.outbox import Outbox, OutboxState
from kobe_pipelines.alerts.sinks import read_alert_log
from kobe_pipelines.errors import RecordError
from kobe_pipelines.regular_files import read_regular

logger = logging.getLogger("kobe_pipelines.alerts")


class Delivery(StrEnum):
    MAILED = "mailed"
    QUEUED = "queued"
    UNDELIVERABLE = "undeliverable"
    RECORDED = "recorded only"


@dataclass(frozen=True)
class AlertEntry:
    """One alert and its delivery. `detail`: when it was mailed, the next attempt and last error
    of a queued one, or why one was given up."""

    alert: Alert
    delivery: Delivery
    detail: str = ""


def alert_history(state_dir: str | os.PathLike[str]) -> list[AlertEntry]:
    """Every alert recorded in `state_dir`, oldest first, with its delivery."""
    folder = Path(state_dir)
    alerts = {alert.id: alert for alert in read_alert_log(folder / ALERT_LOG_FILE)}
    outbox = pending_outbox(folder)
    mailed = _mailed(folder / SENT_LOG_FILE)
    given_up = _undeliverable(Outbox(folder).undeliverable_path)
    waiting = {item.alert.id: item for item in outbox.pending}
    for item in outbox.pending:  # queued although its log line is missing: still shown
        alerts.setdefault(item.alert.id, item.alert)
    entries = []
    for alert in sorted(alerts.values(), key=lambda a: (a.created_at, a.id)):
        if alert.id in waiting:
            key = outbox.keys.get(alert.key)
            detail = f"queued {waiting[alert.id].queued_at:%Y-%m-%d %H:%M:%S}Z"
            if key is not None and key.attempts:
                when = f"{key.next_attempt_at:%H:%M:%S}Z" if key.next_attempt_at else "next flush"
                detail += f"; {key.attempts} failed attempt(s), next {when}; last error: {key.last_error}"
            entries.append(AlertEntry(alert, Delivery.QUEUED, detail))
        elif alert.id in mailed:
            entries.append(AlertEntry(alert, Delivery.MAILED, f"{mailed[alert.id]:%Y-%m-%d %H:%M:%S}Z"))
        elif alert.id in given_up:
            entries.append(AlertEntry(alert, Delivery.UNDELIVERABLE, given_up[alert.id]))
        else:
            entries.append(AlertEntry(alert, Delivery.RECORDED))
    return entries


def pending_outbox(state_dir: str | os.PathLike[str]) -> OutboxState:
    """The outbox of `state_dir`; empty, without creating its lock file, when there is none."""
    outbox = Outbox(Path(state_dir))
    if not os.path.lexists(outbox.path):
        return OutboxState()
    return outbox.load()[0]


def _mailed(path: Path) -> dict[str, datetime]:
    sent: dict[str, datetime] = {}
    for number, record in _records(path):
        try:
            at = parse_utc(record.get("sent_at"), "alert sent log", f"line {number}", "sent_at")
        except RecordError as exc:
            logger.warning("%s line %d is unreadable and skipped: %s", path, number, exc)
            continue
        for alert_id in record.get("alert_ids") or []:
            sent[str(alert_id)] = at
    return sent


def _undeliverable(path: Path) -> dict[str, str]:
    given_up: dict[str, str] = {}
    for _, record in _records(path):
        alert = record.get("alert")
        if isinstance(alert, dict) and isinstance(alert.get("id"), str):
            given_up[alert["id"]] = f"after {record.get('attempts')} attempts: {record.get('reason')}"
    return given_up


def _records(path: Path) -> list[tuple[int, dict]]:
    found = read_regular(path)
    if found is None:
        return []
    records = []
    for number, line in enumerate(found.data.decode("utf-8", errors="replace").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            logger.warning("%s line %d is unreadable and skipped: %s", path, number, exc)
            continue
        if isinstance(record, dict):
            records.append((number, record))
    return records
