"""Fixtures for the alerts tests: a real SMTP server on loopback (aiosmtpd) speaking STARTTLS and
AUTH with a certificate made here, a server that never answers, and a clock the test moves."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from kobe_pipelines_tests.support.smtp import (  # noqa: F401 - re-exported for the test modules
    ALERT_FROM, ALERT_TO, SMTP_PASSWORD, SMTP_USER, Received, RecordingHandler, SmtpServer, TlsFiles,
    make_tls_files, start_smtp,
)

T0 = datetime(2024, 6, 3, 13, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_alert_env(monkeypatch):
    """The developer's own SMTP settings must never reach a test."""
    for name in ("KOBE_SMTP_HOST", "KOBE_SMTP_PORT", "KOBE_SMTP_USER", "KOBE_SMTP_PASSWORD",
                 "KOBE_SMTP_STARTTLS", "KOBE_SMTP_TIMEOUT", "KOBE_SMTP_CAFILE", "KOBE_ALERT_FROM",
                 "KOBE_ALERT_TO", "KOBE_ALERT_GROUP_SECONDS"):
        monkeypatch.delenv(name, raising=False)


class FakeClock:
    """Aware UTC time that moves only when the test says so."""

    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server(tls_files) -> Iterator[SmtpServer]:
    """STARTTLS required, AUTH required to be over TLS, user `robot`."""
    controller, server = start_smtp(tls_files)
    yield server
    controller.stop()


@pytest.fixture
def echoing_smtp_server(tls_files) -> Iterator[SmtpServer]:
    """Like `smtp_server`, but its AUTH failure reply quotes the password it was given."""
    controller, server = start_smtp(tls_files, echo_password=True)
    yield server
    controller.stop()


@pytest.fixture
def plaintext_smtp_server(tls_files) -> Iterator[SmtpServer]:
    """Offers no STARTTLS at all (and would take AUTH in clear text)."""
    controller, server = start_smtp(tls_files, tls=False)
    yield server
    controller.stop()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback TCP port whose listener completes the handshake and then never says a word."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()
