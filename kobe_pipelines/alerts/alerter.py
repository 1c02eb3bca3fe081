"""The one entry point for alerts: `Alerter.send` records and queues, `Alerter.flush` mails.

`send` never raises: a trading run must go on when the disk or the mail server misbehaves. It
always logs the alert and appends it to `state/alerts.jsonl`; with SMTP configured it also
queues it in the durable outbox. `flush` mails what is due and keeps what failed for later.

Grouping, per key (the kind by default), with W = `KOBE_ALERT_GROUP_SECONDS`:
- a key's pending alerts are mailed together, as one digest when there are several;
- a non-critical key is due W after its oldest pending alert was queued (a window collects);
- a key holding a critical alert is due at once;
- either way at most one mail per key every W: repeated halts within W of the last halt mail
  wait and leave as one "N x halt" digest.

A failed delivery keeps the alerts in the outbox and backs the key off exponentially
(`RetryPolicy`); after `max_attempts` failures they move to `state/alert_undeliverable.jsonl`.
Delivery is at-least-once: a crash between the server's acceptance and the outbox update sends
that mail again on the next flush. Each mail the server accepted is listed in
`state/alert_sent.jsonl` (what `kobe alerts` shows as mailed).

`send_now` is for events a person must hear of at once without a running daemon (a manual
halt or clear): it sends, then flushes with that alert's key forced, past its window and
back-off. `flush(force_all=True)` (`kobe alerts flush`) delivers everything pending now.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from kobe_pipelines import paths
from kobe_pipelines.alerts.locks import try_exclusive
from kobe_pipelines.alerts.mail import Mail, compose_mail
from kobe_pipelines.alerts.model import Alert, Clock, Severity, utc_now
from kobe_pipelines.alerts.outbox import KeyState, Outbox, OutboxState, PendingAlert
from kobe_pipelines.alerts.settings import AlertSettings
from kobe_pipelines.alerts.sinks import DeliveryError, EmailSink, LogSink, append_line, scrub

logger = logging.getLogger("kobe_pipelines.alerts")

ALERT_LOG_FILE = "alerts.jsonl"
SENT_LOG_FILE = "alert_sent.jsonl"  # one line per mail the server accepted


class MailTransport(Protocol):
    def deliver(self, mail: Mail) -> None:
        """Hand `mail` to the server or raise (DeliveryError for the expected failures)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off after failed deliveries of a key: base * 2**(n-1) seconds, capped; n = failures."""

    base_seconds: float = 60.0
    max_seconds: float = 3600.0
    max_attempts: int = 20

    def __post_init__(self) -> None:
        if self.base_seconds < 0 or self.max_seconds < self.base_seconds or self.max_attempts < 1:
            raise ValueError(f"invalid RetryPolicy {self}")

    def delay(self, failures: int) -> timedelta:
        return timedelta(seconds=min(self.base_seconds * 2 ** max(failures - 1, 0), self.max_seconds))


@dataclass(frozen=True)
class FlushReport:
    """What one `flush` did. `pending` counts alerts left in the outbox afterwards."""

    email_enabled: bool
    mails_sent: int = 0
    alerts_sent: int = 0
    failures: tuple[str, ...] = ()
    pending: int = 0
    undeliverable: int = 0
    corrupt_lines: int = 0
    skipped: bool = False


class Alerter:
    """Records, groups and mails alerts for one state folder. `clock` returns aware datetimes."""

    def __init__(
        self,
        settings: AlertSettings,
        state_dir: str | os.PathLike[str],
        clock: Clock | None = None,
        *,
        transport: MailTransport | None = None,
        retry: RetryPolicy = RetryPolicy(),
    ):
        self.settings = settings
        self.state_dir = Path(state_dir)
        self.clock = clock or utc_now
        self.retry = retry
        self.log_sink = LogSink(self.state_dir / ALERT_LOG_FILE)
        self.outbox = Outbox(self.state_dir)
        if transport is None and settings.email_enabled:
            transport = EmailSink(settings)
        self.transport = transport
        self._flush_lock = self.state_dir / ".alert_flush.lock"

    def __repr__(self) -> str:
        mode = f"e-mail via {self.transport!r}" if self.transport is not None else "log only"
        return f"Alerter({mode}, state_dir={str(self.state_dir)!r})"

    @property
    def email_enabled(self) -> bool:
        return self.transport is not None

    def send(self, alert: Alert) -> bool:
        """Log, record and (with mail on) queue `alert`. Never raises; False when a step failed (logged)."""
        ok = True
        try:
            self.log_sink.record(alert)
        except Exception as exc:
            ok = False
            logger.error("alert %r could not be written to %s: %s", alert, self.log_sink.path, self._safe(exc))
        if self.transport is not None:
            try:
                self.outbox.add(PendingAlert(alert, self._now()))
            except Exception as exc:
                ok = False
                logger.error("alert %r could not be queued in %s: %s", alert, self.outbox.path, self._safe(exc))
        return ok

    def pending(self) -> tuple[PendingAlert, ...]:
        """The alerts waiting in the outbox (empty without mail)."""
        if self.transport is None:
            return ()
        return self.outbox.load()[0].pending

    def send_now(self, alert: Alert) -> tuple[bool, FlushReport]:
        """`send(alert)`, then mail its key at once (its window and back-off do not apply).
        Never raises: (whether recording and queueing worked, what the flush did)."""
        recorded = self.send(alert)
        return recorded, self.flush(force_keys=(alert.key,))

    def flush(self, *, force_keys: Collection[str] = (), force_all: bool = False) -> FlushReport:
        """Mail every due group, and the groups of `force_keys` (or every group: `force_all`) even
        within their window or back-off. Never raises; failures are in the report and the log."""
        if self.transport is None:
            return FlushReport(email_enabled=False)
        try:
            return self._flush(self.transport, frozenset(force_keys), force_all)
        except Exception as exc:
            text = self._safe(exc)
            logger.error("alert flush failed: %s", text)
            return FlushReport(email_enabled=True, failures=(text,))

    def _flush(self, transport: MailTransport, force_keys: frozenset[str], force_all: bool) -> FlushReport:
        with try_exclusive(self._flush_lock) as held:
            if not held:  # another process is flushing this outbox right now
                return FlushReport(email_enabled=True, skipped=True)
            now = self._now()
            state, corrupt = self.outbox.load()
            sent: list[tuple[str, frozenset[str]]] = []
            failed: tuple[str, frozenset[str], str] | None = None
            for key, items in due_groups(state, now, self.settings.group_seconds, force_keys, force_all):
                mail = compose_mail([item.alert for item in items])
                try:
                    transport.deliver(mail)
                except Exception as exc:
                    # Stop here: the next mail would meet the same server, and wait out another timeout.
                    failed = (key, frozenset(mail.alert_ids), self._safe(exc))
                    logger.warning("alert mail for key %s not delivered (kept in the outbox): %s", key, failed[2])
                    break
                sent.append((key, frozenset(mail.alert_ids)))
                logger.info("alert mail sent: %s (%d alert(s))", mail.subject, len(mail.alert_ids))
                self._note_sent(mail, now)

            counts = {"pending": 0, "undeliverable": 0}

            def commit(current: OutboxState) -> OutboxState:
                keys = dict(current.keys)
                done = frozenset().union(*(ids for _, ids in sent)) if sent else frozenset()
                pending = [p for p in current.pending if p.alert.id not in done]
                for key, _ in sent:
                    keys[key] = KeyState(key, last_sent_at=now)
                if failed is not None:
                    key, ids, error = failed
                    before = keys.get(key, KeyState(key))
                    attempts = before.attempts + 1
                    if attempts >= self.retry.max_attempts:
                        dead = tuple(p for p in pending if p.alert.id in ids)
                        self.outbox.set_aside_undeliverable(dead, error, attempts)
                        pending = [p for p in pending if p.alert.id not in ids]
                        counts["undeliverable"] = len(dead)
                        logger.error("%d alert(s) of key %s undeliverable after %d attempts; kept in %s",
                                     len(dead), key, attempts, self.outbox.undeliverable_path)
                        keys[key] = replace(before, attempts=0, next_attempt_at=None, last_error=error)
                    else:
                        keys[key] = replace(before, attempts=attempts, last_error=error,
                                            next_attempt_at=now + self.retry.delay(attempts))
                window = timedelta(seconds=self.settings.group_seconds)
                live = {p.alert.key for p in pending}
                keys = {k: s for k, s in keys.items()
                        if k in live or s.attempts or (s.last_sent_at is not None and now < s.last_sent_at + window)}
                counts["pending"] = len(pending)
                return OutboxState(tuple(pending), keys)

            corrupt += self.outbox.update(commit)
            return FlushReport(
                email_enabled=True,
                mails_sent=len(sent),
                alerts_sent=sum(len(ids) for _, ids in sent),
                failures=() if failed is None else (failed[2],),
                pending=counts["pending"],
                undeliverable=counts["undeliverable"],
                corrupt_lines=corrupt,
            )

    def _note_sent(self, mail: Mail, now: datetime) -> None:
        """List a delivered mail in `alert_sent.jsonl`; a failure here is logged, never retried
        (the mail is out: sending it again would duplicate it)."""
        try:
            append_line(self.state_dir / SENT_LOG_FILE, json.dumps(
                {"sent_at": now.isoformat(), "key": mail.key, "subject": mail.subject,
                 "alert_ids": list(mail.alert_ids)}, sort_keys=True))
        except Exception as exc:
            logger.error("alert mail %r was sent but not listed in %s: %s", mail.subject, SENT_LOG_FILE,
                         self._safe(exc))

    def _now(self) -> datetime:
        now = self.clock()
        if now.utcoffset() is None:
            raise ValueError(f"the alerter clock returned a naive datetime {now!r}")
        return now.astimezone(UTC)

    def _safe(self, exc: BaseException) -> str:
        text = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
        return scrub(text, self.settings)


def due_groups(
    state: OutboxState,
    now: datetime,
    group_seconds: float,
    force_keys: Collection[str] = (),
    force_all: bool = False,
) -> list[tuple[str, tuple[PendingAlert, ...]]]:
    """The keys to mail at `now` with their pending alerts, critical first, then oldest first.
    Keys in `force_keys` (every key with `force_all`) are due whatever their window or back-off."""
    window = timedelta(seconds=group_seconds)
    groups: dict[str, list[PendingAlert]] = {}
    for item in state.pending:
        groups.setdefault(item.alert.key, []).append(item)
    due: list[tuple[str, tuple[PendingAlert, ...]]] = []
    for key, items in groups.items():
        if force_all or key in force_keys:
            due.append((key, tuple(items)))
            continue
        known = state.keys.get(key)
        if known is not None:
            if known.next_attempt_at is not None and now < known.next_attempt_at:
                continue
            if known.last_sent_at is not None and now < known.last_sent_at + window:
                continue
        critical = any(item.alert.severity is Severity.CRITICAL for item in items)
        if not critical and now < min(item.queued_at for item in items) + window:
            continue
        due.append((key, tuple(items)))
    due.sort(key=lambda group: (
        -max(item.alert.severity.rank for item in group[1]),
        min(item.queued_at for item in group[1]),
    ))
    return due


def build_alerter(
    state_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> Alerter:
    """The alerter the settings ask for: mail plus log when `KOBE_SMTP_HOST` is set, else log only.

    `state_dir` defaults to `KOBE_STATE_DIR` (from `environ` when given) or `./state`. Raises
    ConfigError on invalid settings, so a misconfiguration shows when the pipeline starts.
    """
    settings = AlertSettings.from_env(environ)
    override = state_dir if state_dir is not None else (environ or {}).get(paths.STATE_DIR_ENV)
    alerter = Alerter(settings, paths.state_dir(override), clock)
    if settings.email_enabled:
        logger.info("alerts: log, %s and e-mail to %s via %s:%s", ALERT_LOG_FILE,
                    ", ".join(settings.alert_to), settings.smtp_host, settings.smtp_port)
    else:
        logger.info("alerts: log and %s only (KOBE_SMTP_HOST is not set)", ALERT_LOG_FILE)
    return alerter
