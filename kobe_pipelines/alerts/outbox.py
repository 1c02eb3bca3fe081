"""The durable outbox: alerts waiting to be mailed, and per-key delivery state.

`state/alert_outbox.jsonl` holds one JSON object per line, of two types:

- ``{"type": "pending", "queued_at": ..., "alert": {...}}``: an alert not yet mailed;
- ``{"type": "key", "key": ..., "last_sent_at": ..., "attempts": n, "next_attempt_at": ...,
  "last_error": ...}``: when a key was last mailed, and its failed attempts since.

Every change rewrites the file atomically (fsutil) under a lock shared by all processes, so a
crash leaves the old outbox or the new one. A line that cannot be read (edited by hand, a disk
fault) is appended verbatim to `alert_outbox.corrupt.jsonl` before it leaves the outbox, and
counted in the load result: set aside and reported, never silently dropped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kobe_pipelines.alerts.locks import exclusive
from kobe_pipelines.alerts.model import Alert, parse_utc
from kobe_pipelines.alerts.sinks import append_line
from kobe_pipelines.errors import RecordError
from kobe_pipelines.fsutil import atomic_write_text
from kobe_pipelines.regular_files import read_regular

logger = logging.getLogger("kobe_pipelines.alerts")

OUTBOX_FILE = "alert_outbox.jsonl"
CORRUPT_FILE = "alert_outbox.corrupt.jsonl"
UNDELIVERABLE_FILE = "alert_undeliverable.jsonl"


@dataclass(frozen=True)
class PendingAlert:
    """An alert in the outbox; `queued_at` (UTC, the alerter's clock) starts its grouping window."""

    alert: Alert
    queued_at: datetime


@dataclass(frozen=True)
class KeyState:
    """Delivery state of one grouping key. `attempts` counts failures since the last success."""

    key: str
    last_sent_at: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class OutboxState:
    pending: tuple[PendingAlert, ...] = ()
    keys: Mapping[str, KeyState] = field(default_factory=dict)


class Outbox:
    """The outbox files of one state folder."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / OUTBOX_FILE
        self.corrupt_path = self.state_dir / CORRUPT_FILE
        self.undeliverable_path = self.state_dir / UNDELIVERABLE_FILE
        self.lock_path = self.state_dir / f".{OUTBOX_FILE}.lock"

    def add(self, pending: PendingAlert) -> None:
        self.update(lambda state: OutboxState(state.pending + (pending,), state.keys))

    def load(self) -> tuple[OutboxState, int]:
        """The outbox and how many corrupt lines were set aside while reading it."""
        with exclusive(self.lock_path):
            return self._load_locked()

    def update(self, change: Callable[[OutboxState], OutboxState]) -> int:
        """Apply `change` under the lock and write the result atomically; returns corrupt lines set aside."""
        with exclusive(self.lock_path):
            state, corrupt = self._load_locked()
            self._save_locked(change(state))
            return corrupt

    def set_aside_undeliverable(self, items: tuple[PendingAlert, ...], reason: str, attempts: int) -> None:
        """Keep alerts that exhausted their attempts in `alert_undeliverable.jsonl`. Call under `update`."""
        for item in items:
            append_line(self.undeliverable_path, json.dumps({
                "alert": item.alert.to_dict(), "queued_at": item.queued_at.isoformat(),
                "attempts": attempts, "reason": reason,
            }, sort_keys=True))

    def _load_locked(self) -> tuple[OutboxState, int]:
        found = read_regular(self.path)  # a link, FIFO or folder there: NotRegularFileError
        if found is None:
            return OutboxState(), 0
        raw = found.data.decode("utf-8", errors="replace")
        pending: list[PendingAlert] = []
        keys: dict[str, KeyState] = {}
        seen: set[str] = set()
        corrupt: list[str] = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = _parse_line(json.loads(line), number)
            except (ValueError, RecordError) as exc:
                logger.error("alert outbox %s line %d is unreadable; set aside in %s: %s",
                             self.path, number, self.corrupt_path.name, exc)
                corrupt.append(line)
                continue
            if isinstance(item, KeyState):
                keys[item.key] = item
            elif item.alert.id not in seen:
                seen.add(item.alert.id)
                pending.append(item)
        state = OutboxState(tuple(pending), keys)
        if corrupt:
            # Aside first, then the rewrite: a crash in between duplicates a line, never loses it.
            for line in corrupt:
                append_line(self.corrupt_path, line)
            self._save_locked(state)
        return state, len(corrupt)

    def _save_locked(self, state: OutboxState) -> None:
        lines = [json.dumps(_key_dict(k), sort_keys=True) for k in state.keys.values()]
        lines += [json.dumps({"type": "pending", "queued_at": p.queued_at.isoformat(),
                              "alert": p.alert.to_dict()}, sort_keys=True) for p in state.pending]
        atomic_write_text(self.path, "".join(f"{line}\n" for line in lines))


def _key_dict(state: KeyState) -> dict[str, Any]:
    return {
        "type": "key",
        "key": state.key,
        "last_sent_at": None if state.last_sent_at is None else state.last_sent_at.isoformat(),
        "attempts": state.attempts,
        "next_attempt_at": None if state.next_attempt_at is None else state.next_attempt_at.isoformat(),
        "last_error": state.last_error,
    }


def _parse_line(data: Any, number: int) -> PendingAlert | KeyState:
    record = f"line {number}"
    if not isinstance(data, dict):
        raise RecordError("alert outbox", record, "(line)", "must be a JSON object")
    kind = data.get("type")
    if kind == "pending":
        if "queued_at" not in data or "alert" not in data:
            raise RecordError("alert outbox", record, "queued_at/alert", "is missing")
        return PendingAlert(Alert.from_dict(data["alert"]),
                            parse_utc(data["queued_at"], "alert outbox", record, "queued_at"))
    if kind == "key":
        key = data.get("key")
        if not isinstance(key, str) or not key:
            raise RecordError("alert outbox", record, "key", "must be a non-empty string", key)
        attempts = data.get("attempts", 0)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
            raise RecordError("alert outbox", record, "attempts", "must be a non-negative integer", attempts)
        error = data.get("last_error")
        if error is not None and not isinstance(error, str):
            raise RecordError("alert outbox", record, "last_error", "must be text or null", error)
        return KeyState(key, _optional_time(data, "last_sent_at", record), attempts,
                        _optional_time(data, "next_attempt_at", record), error)
    raise RecordError("alert outbox", record, "type", "must be 'pending' or 'key'", kind)


def _optional_time(data: Mapping[str, Any], name: str, record: str) -> datetime | None:
    raw = data.get(name)
    return None if raw is None else parse_utc(raw, "alert outbox", record, name)
