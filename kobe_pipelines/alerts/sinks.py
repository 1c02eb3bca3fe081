"""Where alerts go: the log plus `state/alerts.jsonl` (always), and mail over SMTP (when configured)."""

from __future__ import annotations

import base64
import json
import logging
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from kobe_pipelines.alerts.locks import exclusive
from kobe_pipelines.alerts.mail import Mail
from kobe_pipelines.alerts.model import Alert, Severity
from kobe_pipelines.alerts.settings import SMTP_HOST, AlertSettings
from kobe_pipelines.errors import ConfigError, KobeError, RecordError
from kobe_pipelines.fsutil import fsync_dir
from kobe_pipelines.regular_files import open_regular, read_regular

logger = logging.getLogger("kobe_pipelines.alerts")

_LOG_LEVEL = {Severity.INFO: logging.INFO, Severity.WARNING: logging.WARNING,
              Severity.CRITICAL: logging.CRITICAL}


class DeliveryError(KobeError):
    """A mail was not accepted (refused, timed out, no connection). The message holds no secret."""


class LogSink:
    """Writes every alert to the `kobe_pipelines.alerts` logger and appends it to a JSONL file.

    The append is fsynced and happens under a lock shared with other processes; a line torn by a
    crash is closed off before the next one is written, so it can never swallow a good record.
    """

    def __init__(self, path: Path, lock_path: Path | None = None):
        self.path = Path(path)
        self.lock_path = lock_path or self.path.with_name(f".{self.path.name}.lock")

    def record(self, alert: Alert) -> None:
        text = f"KOBE alert [{alert.severity.value}] {alert.kind}: {alert.subject} (key={alert.key}, id={alert.id})"
        if alert.body.strip():
            text = f"{text}\n{alert.body.strip()}"
        logger.log(_LOG_LEVEL[alert.severity], "%s", text)
        with exclusive(self.lock_path):
            append_line(self.path, json.dumps(alert.to_dict(), sort_keys=True))


def append_line(path: Path, line: str) -> None:
    """Append one line durably; if the file ends in a torn line, end that line first.
    `NotRegularFileError` when the path holds a link, a FIFO or a folder (never blocks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with os.fdopen(open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT), "a+b") as handle:
        handle.seek(0, os.SEEK_END)
        prefix = b""
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                prefix = b"\n"
        handle.write(prefix + line.encode("utf-8") + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        fsync_dir(path.parent)


def read_alert_log(path: Path) -> list[Alert]:
    """The alerts recorded in a JSONL log, oldest first; unreadable lines are logged and skipped.
    `StateFileError` when the path holds anything but a regular file or cannot be read."""
    found = read_regular(path)
    if found is None:
        return []
    alerts: list[Alert] = []
    for number, line in enumerate(found.data.decode("utf-8", errors="replace").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            alerts.append(Alert.from_dict(json.loads(line)))
        except (ValueError, RecordError) as exc:
            logger.warning("alert log %s line %d is unreadable and skipped: %s", path, number, exc)
    return alerts


class EmailSink:
    """Sends a `Mail` over SMTP: STARTTLS (verified against the system CAs, or `KOBE_SMTP_CAFILE`,
    or `ssl_context`), then AUTH when a user is set. One connection per mail.

    With STARTTLS on, a server that does not offer it is an error: credentials and alerts are never
    sent in clear text by accident. Every failure becomes a DeliveryError whose text has the
    password (and its base64 forms) removed.
    """

    def __init__(self, settings: AlertSettings, ssl_context: ssl.SSLContext | None = None):
        if not settings.email_enabled:
            raise ConfigError(SMTP_HOST, "is required to send e-mail")
        self.settings = settings
        self._ssl_context = ssl_context
        if settings.smtp_user and not settings.starttls:
            logger.warning("KOBE_SMTP_STARTTLS is off: the SMTP login of %s travels unencrypted",
                           settings.smtp_user)

    def __repr__(self) -> str:
        return f"EmailSink({self.settings.smtp_host}:{self.settings.smtp_port}, to={list(self.settings.alert_to)})"

    def message(self, mail: Mail) -> EmailMessage:
        s = self.settings
        msg = EmailMessage()
        msg["From"] = s.alert_from
        msg["To"] = ", ".join(s.alert_to)
        msg["Subject"] = mail.subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain=(s.sender_address or "kobe.local").rpartition("@")[2])
        msg["X-KOBE-Alert-Key"] = mail.key
        msg["X-KOBE-Alert-Severity"] = mail.severity.value
        msg.set_content(mail.body)
        return msg

    def deliver(self, mail: Mail) -> None:
        s = self.settings
        msg = self.message(mail)
        try:
            with smtplib.SMTP(s.smtp_host or "", s.smtp_port, timeout=s.timeout_seconds) as smtp:
                smtp.ehlo()
                if s.starttls:
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password or "")
                refused = smtp.send_message(msg, from_addr=s.sender_address, to_addrs=list(s.alert_to))
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            # `from None`: the original exception may quote the server's answer to AUTH.
            raise DeliveryError(
                f"mail '{mail.subject}' to {s.smtp_host}:{s.smtp_port} failed: {self.scrub(_describe(exc))}"
            ) from None
        if refused:
            # Some recipients took it; sending again would duplicate it for them.
            logger.warning("alert mail %r was refused for %s", mail.subject, self.scrub(str(refused)))

    def scrub(self, text: str) -> str:
        return scrub(text, self.settings)

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context(cafile=self.settings.cafile)
        return self._ssl_context


def scrub(text: str, settings: AlertSettings) -> str:
    """`text` with the SMTP password, and the base64 forms AUTH PLAIN/LOGIN carry it in, replaced."""
    password = settings.smtp_password
    if not password:
        return text
    user = settings.smtp_user or ""
    secrets = {
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
    }
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{type(exc).__name__} {exc.smtp_code} {detail}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"{type(exc).__name__} {exc.recipients}"
    return f"{type(exc).__name__}: {exc}"
