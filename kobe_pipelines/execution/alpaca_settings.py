"""Settings of the Alpaca broker, from environment variables with documented defaults.

=============================  ==========================================================  =======
variable                       meaning                                                     default
=============================  ==========================================================  =======
ALPACA_API_KEY                 API key id (required)                                       -
ALPACA_SECRET_KEY              API secret (required)                                       -
KOBE_ALPACA_PAPER              "false" asks for the live endpoint (see below)              true
KOBE_LIVE_TRADING              must be "true" as well for live trading                     false
KOBE_ALPACA_BASE_URL           endpoint override (tests point it at a loopback server)     -
KOBE_ALPACA_TIMEOUT_S          seconds per HTTP request (connect and read)                 10
KOBE_ALPACA_RETRY_ATTEMPTS     retries of a 429 answer (alpaca-py's own retry)             3
KOBE_ALPACA_RETRY_WAIT_S       seconds between those retries                               3
KOBE_ALPACA_RECONCILE_ATTEMPTS look-ups by client order id after a lost submission          3
KOBE_ALPACA_RECONCILE_WAIT_S   seconds between those look-ups                              2
=============================  ==========================================================  =======

Live trading takes two deliberate switches: KOBE_ALPACA_PAPER=false and KOBE_LIVE_TRADING=true.
Either alone refuses to start (`ConfigError`) rather than guessing, and so does a base URL on
Alpaca's live host without both. The keys are never part of a repr, a log line or an error.

Time in force is not a setting: a bracket (or OTO) goes out good-til-cancelled, so its exit
legs live as long as the position (Alpaca gives a bracket one time in force for the entry and
its legs), and the trading run cancels an entry still unfilled after its own session (the entry
stays a day order in effect); a simple order (an exit) is a day order; a protective stop order
is good-til-cancelled. The embedded paper broker follows the same lifetimes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlparse

from kobe_pipelines.errors import ConfigError

LIVE_HOST = "api.alpaca.markets"


@dataclass(frozen=True)
class AlpacaSettings:
    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    paper: bool = True
    base_url: str | None = None
    timeout_s: float = 10.0
    retry_attempts: int = 3
    retry_wait_s: float = 3.0
    reconcile_attempts: int = 3
    reconcile_wait_s: float = 2.0

    def __post_init__(self) -> None:
        for name in ("api_key", "secret_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(name, "must be a non-empty key (ALPACA_API_KEY / ALPACA_SECRET_KEY)")
        # retry_wait_s must be > 0: alpaca-py takes 0 to mean its default of 3 s.
        for name, zero_ok in (("timeout_s", False), ("retry_wait_s", False), ("reconcile_wait_s", True)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not (
                value >= 0 if zero_ok else value > 0
            ):
                raise ConfigError(name, f"must be a number of seconds {'>=' if zero_ok else '>'} 0", value)
        for name in ("retry_attempts", "reconcile_attempts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, "must be a whole number >= 1", value)
        if self.base_url is not None and urlparse(self.base_url).scheme not in ("http", "https"):
            raise ConfigError("base_url", "must be an http(s) URL", self.base_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "AlpacaSettings":
        env = os.environ if environ is None else environ
        key, secret = env.get("ALPACA_API_KEY", ""), env.get("ALPACA_SECRET_KEY", "")
        if not key.strip():
            raise ConfigError("ALPACA_API_KEY", "must be set to use the Alpaca broker")
        if not secret.strip():
            raise ConfigError("ALPACA_SECRET_KEY", "must be set to use the Alpaca broker")
        if (env.get("KOBE_ALPACA_TIME_IN_FORCE") or "").strip():
            raise ConfigError("KOBE_ALPACA_TIME_IN_FORCE", "is no longer a setting: brackets go out good-til-cancelled and "
                              "the trading run cancels entries left unfilled after their session; unset it",
                              env.get("KOBE_ALPACA_TIME_IN_FORCE"))
        paper = _flag(env, "KOBE_ALPACA_PAPER", True)
        live_ok = _flag(env, "KOBE_LIVE_TRADING", False)
        base_url = env.get("KOBE_ALPACA_BASE_URL") or None
        if not paper and not live_ok:
            raise ConfigError("KOBE_ALPACA_PAPER", "is false (live trading) but KOBE_LIVE_TRADING is not 'true'; "
                              "refusing to trade live")
        if paper and live_ok:
            raise ConfigError("KOBE_LIVE_TRADING", "is true but KOBE_ALPACA_PAPER is not 'false'; set both to trade "
                              "live, or neither for paper trading")
        if base_url and urlparse(base_url).hostname == LIVE_HOST and not (live_ok and not paper):
            raise ConfigError("KOBE_ALPACA_BASE_URL", "points at Alpaca's live endpoint without live trading enabled",
                              base_url)
        values = {
            "timeout_s": _number(env, "KOBE_ALPACA_TIMEOUT_S", float, cls.timeout_s),
            "retry_attempts": _number(env, "KOBE_ALPACA_RETRY_ATTEMPTS", int, cls.retry_attempts),
            "retry_wait_s": _number(env, "KOBE_ALPACA_RETRY_WAIT_S", float, cls.retry_wait_s),
            "reconcile_attempts": _number(env, "KOBE_ALPACA_RECONCILE_ATTEMPTS", int, cls.reconcile_attempts),
            "reconcile_wait_s": _number(env, "KOBE_ALPACA_RECONCILE_WAIT_S", float, cls.reconcile_wait_s),
        }
        try:
            return cls(key.strip(), secret.strip(), paper, base_url, **values)
        except ConfigError as exc:
            if exc.setting not in values:
                raise
            name = "KOBE_ALPACA_" + exc.setting.upper()
            raise ConfigError(name, exc.problem, env.get(name)) from None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError(name, "must be 'true' or 'false'", raw)


def _number(env: Mapping[str, str], name: str, kind: type, default: float) -> float | int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return kind(raw.strip())
    except ValueError:
        raise ConfigError(name, f"must be a {'whole number' if kind is int else 'number'}", raw) from None
