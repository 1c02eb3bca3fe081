"""The alert record and its JSON form.

Times are timezone-aware UTC. `key` decides grouping: alerts with the same key inside the
grouping window go out as one mail. It defaults to the kind, so every rejected order of a
window lands in one "N x order_rejected" digest; give a narrower key (for example
``"fills_summary:2024-06-03"``) to keep things apart.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kobe_pipelines.errors import RecordError

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (converted to UTC by its users)."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.:-]*$")
_MAX_SUBJECT = 200


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlertKind(StrEnum):
    """The kinds the pipeline raises; any lower-case name matching `[a-z0-9_.:-]` is accepted."""

    HALT = "halt"
    HALT_CLEARED = "halt_cleared"
    ORDER_REJECTED = "order_rejected"
    FILLS_SUMMARY = "fills_summary"
    DATA_CHECK_FAILED = "data_check_failed"
    RUN_FAILED = "run_failed"
    STRATEGY_RELOAD_FAILED = "strategy_reload_failed"


def utc_now() -> datetime:
    return datetime.now(UTC)


def alert_key(kind: str, subject: str) -> str:
    """The grouping key of `kind` alerts about one subject (a symbol, a job): "kind:subject" in
    lower case, as keys are lower-case names ("delisted:brk.b")."""
    return f"{kind}:{subject}".lower()


@dataclass(frozen=True)
class Alert:
    """One thing a person should know about.

    `subject` is one line (at most 200 characters); `body` free text. `created_at` is when the
    event happened (UTC); `id` identifies the alert across the log, the outbox and the mail.
    """

    kind: str
    subject: str
    body: str = ""
    severity: Severity = Severity.WARNING
    key: str = ""
    created_at: datetime = field(default_factory=utc_now)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        record = self.id if isinstance(self.id, str) and self.id else "?"
        if not isinstance(self.id, str) or not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", self.id):
            raise RecordError("alert", record, "id", "must be 1-64 letters, digits, '_' or '-'", self.id)
        if not isinstance(self.kind, str) or not _NAME.match(self.kind):
            raise RecordError("alert", record, "kind", "must be a lower-case name like 'order_rejected'",
                              self.kind)
        try:
            object.__setattr__(self, "severity", Severity(self.severity))
        except ValueError:
            raise RecordError("alert", record, "severity", "must be info, warning or critical",
                              self.severity) from None
        if not isinstance(self.subject, str) or not self.subject.strip():
            raise RecordError("alert", record, "subject", "must be non-empty text", self.subject)
        if "\n" in self.subject or "\r" in self.subject or len(self.subject) > _MAX_SUBJECT:
            raise RecordError("alert", record, "subject",
                              f"must be one line of at most {_MAX_SUBJECT} characters", self.subject)
        if not isinstance(self.body, str):
            raise RecordError("alert", record, "body", "must be text", self.body)
        key = self.key or self.kind
        if not isinstance(key, str) or not _NAME.match(key):
            raise RecordError("alert", record, "key", "must be a lower-case name like 'order_rejected'",
                              self.key)
        object.__setattr__(self, "key", key)
        if not isinstance(self.created_at, datetime) or self.created_at.utcoffset() is None:
            raise RecordError("alert", record, "created_at", "must be a timezone-aware datetime",
                              self.created_at)
        object.__setattr__(self, "created_at", self.created_at.astimezone(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity.value,
            "key": self.key,
            "subject": self.subject,
            "body": self.body,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """The inverse of `to_dict`; RecordError names the field that is missing or wrong."""
        if not isinstance(data, Mapping):
            raise RecordError("alert", "?", "(record)", "must be a JSON object", data)
        record = str(data.get("id", "?"))
        for name in ("id", "kind", "severity", "subject", "created_at"):
            if name not in data:
                raise RecordError("alert", record, name, "is missing")
        return cls(
            id=data["id"],
            kind=data["kind"],
            severity=data["severity"],
            key=data.get("key", ""),
            subject=data["subject"],
            body=data.get("body", ""),
            created_at=parse_utc(data["created_at"], "alert", record, "created_at"),
        )


def parse_utc(raw: Any, kind: str, record: str, field_name: str) -> datetime:
    """An ISO-8601 timestamp with an offset, as UTC; RecordError otherwise."""
    if not isinstance(raw, str):
        raise RecordError(kind, record, field_name, "must be an ISO-8601 timestamp", raw)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise RecordError(kind, record, field_name, "must be an ISO-8601 timestamp", raw) from None
    if value.utcoffset() is None:
        raise RecordError(kind, record, field_name, "must carry a UTC offset", raw)
    return value.astimezone(UTC)
