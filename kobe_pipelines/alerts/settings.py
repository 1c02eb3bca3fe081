"""Alert settings from environment variables (read at call time, never at import time).

Every variable is optional. Without `KOBE_SMTP_HOST` alerts go to the log and
`state/alerts.jsonl` only; with it they are also mailed. The SMTP password never appears in
`repr()`, in `describe()` or in any log line this package writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from email.utils import getaddresses, parseaddr
from pathlib import Path

from dotenv import dotenv_values

from kobe_pipelines.errors import ConfigError

SMTP_HOST = "KOBE_SMTP_HOST"
SMTP_PORT = "KOBE_SMTP_PORT"
SMTP_USER = "KOBE_SMTP_USER"
SMTP_PASSWORD = "KOBE_SMTP_PASSWORD"
SMTP_STARTTLS = "KOBE_SMTP_STARTTLS"
SMTP_TIMEOUT = "KOBE_SMTP_TIMEOUT"
SMTP_CAFILE = "KOBE_SMTP_CAFILE"
ALERT_FROM = "KOBE_ALERT_FROM"
ALERT_TO = "KOBE_ALERT_TO"
ALERT_GROUP_SECONDS = "KOBE_ALERT_GROUP_SECONDS"

DEFAULT_PORT = 587
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_GROUP_SECONDS = 300.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class AlertSettings:
    """Where and how alerts are mailed.

    `timeout_seconds` bounds every SMTP socket operation (connect, each reply). `group_seconds`
    is the grouping window: alerts sharing a key within it are merged into one mail.
    """

    smtp_host: str | None = None
    smtp_port: int = DEFAULT_PORT
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    alert_from: str | None = None  # a header value: 'a@example.com' or 'KOBE <a@example.com>'
    alert_to: tuple[str, ...] = ()
    starttls: bool = True
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    group_seconds: float = DEFAULT_GROUP_SECONDS
    cafile: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.alert_to, str):
            raise ConfigError(ALERT_TO, "must be a tuple of addresses (from_env splits the variable)", self.alert_to)
        object.__setattr__(self, "alert_to", tuple(self.alert_to))
        if not 1 <= self.smtp_port <= 65535:
            raise ConfigError(SMTP_PORT, "must be a TCP port between 1 and 65535", self.smtp_port)
        if not self.timeout_seconds > 0:
            raise ConfigError(SMTP_TIMEOUT, "must be a positive number of seconds", self.timeout_seconds)
        if not self.group_seconds >= 0:
            raise ConfigError(ALERT_GROUP_SECONDS, "must be zero or a positive number of seconds",
                              self.group_seconds)
        if self.smtp_host is None:
            return
        if not self.smtp_host.strip() or any(c.isspace() for c in self.smtp_host):
            raise ConfigError(SMTP_HOST, "must be a host name or address", self.smtp_host)
        if not self.alert_from:
            raise ConfigError(ALERT_FROM, f"is required when {SMTP_HOST} is set")
        _check_address(ALERT_FROM, parseaddr(self.alert_from)[1] or self.alert_from)
        if not self.alert_to:
            raise ConfigError(ALERT_TO, f"is required when {SMTP_HOST} is set (comma-separated addresses)")
        for address in self.alert_to:
            _check_address(ALERT_TO, address)
        if self.smtp_user and not self.smtp_password:
            raise ConfigError(SMTP_PASSWORD, f"is required when {SMTP_USER} is set")
        if self.smtp_password and not self.smtp_user:
            raise ConfigError(SMTP_USER, f"is required when {SMTP_PASSWORD} is set")
        if self.cafile is not None and not Path(self.cafile).is_file():
            raise ConfigError(SMTP_CAFILE, "is not a readable file", self.cafile)

    @property
    def sender_address(self) -> str | None:
        """The bare address of `alert_from`, used as the SMTP envelope sender."""
        return None if self.alert_from is None else parseaddr(self.alert_from)[1] or self.alert_from

    @property
    def email_enabled(self) -> bool:
        """True when alerts are mailed (`KOBE_SMTP_HOST` set), False for log-only."""
        return self.smtp_host is not None

    def describe(self) -> dict[str, object]:
        """The settings as a dict safe to log or show in the UI (the password masked)."""
        return {
            "smtp_host": self.smtp_host,
            "smtp_port": self.smtp_port,
            "smtp_user": self.smtp_user,
            "smtp_password": "***" if self.smtp_password else None,
            "alert_from": self.alert_from,
            "alert_to": list(self.alert_to),
            "starttls": self.starttls,
            "timeout_seconds": self.timeout_seconds,
            "group_seconds": self.group_seconds,
            "cafile": self.cafile,
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertSettings:
        """Settings from `environ` (default: `os.environ`, read now). Raises ConfigError naming the variable."""
        env = os.environ if environ is None else environ
        return cls(
            smtp_host=_text(env, SMTP_HOST),
            smtp_port=_int(env, SMTP_PORT, DEFAULT_PORT),
            smtp_user=_text(env, SMTP_USER),
            smtp_password=env.get(SMTP_PASSWORD) or None,  # kept verbatim: spaces may be part of it
            alert_from=_text(env, ALERT_FROM),
            alert_to=_addresses(env, ALERT_TO),
            starttls=_bool(env, SMTP_STARTTLS, True),
            timeout_seconds=_float(env, SMTP_TIMEOUT, DEFAULT_TIMEOUT_SECONDS),
            group_seconds=_float(env, ALERT_GROUP_SECONDS, DEFAULT_GROUP_SECONDS),
            cafile=_text(env, SMTP_CAFILE),
        )


def load_dotenv_if_present(
    path: str | os.PathLike[str] | None = None,
    environ: MutableMapping[str, str] | None = None,
) -> Path | None:
    """Copy the variables of a `.env` file into `environ` without overriding ones already set.

    `path` defaults to `.env` in the working directory; `environ` to `os.environ`. Returns the
    file read, or None when there is none. Called explicitly by the CLI and Dagster entry points
    so that importing this package never touches the environment.
    """
    target = Path(path) if path is not None else Path.cwd() / ".env"
    if not target.is_file():
        return None
    env = os.environ if environ is None else environ
    for name, value in dotenv_values(target).items():
        if value is not None and name not in env:
            env[name] = value
    return target


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(name, "must be an integer", raw) from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, "must be a number of seconds", raw) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(name, "must be a finite number of seconds", raw)
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _text(env, name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(name, "must be true or false (1/0, yes/no, on/off)", raw)


def _addresses(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _text(env, name)
    if raw is None:
        return ()
    # getaddresses understands 'Ops Desk <ops@example.com>, b@example.com' and quoted commas.
    found = tuple(address for _, address in getaddresses([raw]) if address)
    if not found:
        raise ConfigError(name, "holds no e-mail address", raw)
    return found


def _check_address(name: str, address: str) -> None:
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>," for c in address):
        raise ConfigError(name, "is not an e-mail address", address)
