"""The policy gate's limits: one frozen config object, from environment variables or a file.

Units: every fraction is a plain fraction of account equity (0.15 means 15 %, never "15");
money is USD; the rate limit counts approved orders in any trailing 60-second window.

Defaults (used when neither the environment nor a file sets a value):

=========================  ===============================  ==========
field                      environment variable             default
=========================  ===============================  ==========
max_drawdown               KOBE_RISK_MAX_DRAWDOWN           0.15
max_heat                   KOBE_RISK_MAX_HEAT               0.10
max_position_fraction      KOBE_RISK_MAX_POSITION_FRACTION  0.20
max_order_notional         KOBE_RISK_MAX_ORDER_NOTIONAL     250000.0
price_collar               KOBE_RISK_PRICE_COLLAR           0.10
max_orders_per_minute      KOBE_RISK_MAX_ORDERS_PER_MINUTE  60
=========================  ===============================  ==========

`RiskLimits.load()` reads the file named by `KOBE_RISK_CONFIG` (TOML or JSON) when set, then
lets `KOBE_RISK_*` variables override single fields. A value that does not parse or is out of
range raises `ConfigError` naming the field, so a broken config refuses to start instead of
trading on a silent default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from kobe_pipelines.errors import ConfigError, StateFileError
from kobe_pipelines.regular_files import read_regular

ENV_PREFIX = "KOBE_RISK_"
CONFIG_FILE_ENV = "KOBE_RISK_CONFIG"


@dataclass(frozen=True)
class RiskLimits:
    """Limits the policy gate enforces on every order.

    max_drawdown: fraction of the high-water mark of account equity; at a drawdown of this
        much or more the drawdown monitor halts trading and the gate refuses new risk. Default 0.15.
    max_heat: cap on portfolio heat, the open risk of all positions (to their stops, or their
        whole market value without a stop) as a fraction of equity, after the order. Default 0.10.
    max_position_fraction: cap on one symbol's position after the order, valued at the order's
        entry price, as a fraction of equity. Default 0.20.
    max_order_notional: cap on one order's qty x entry, USD. Default 250,000.
    price_collar: the entry must lie within this fraction of the symbol's last price
        (|entry / last - 1| <= collar). Default 0.10.
    max_orders_per_minute: approved orders allowed in any trailing 60 seconds (by the gate's
        clock), reducing orders included. Default 60.
    """

    max_drawdown: float = 0.15
    max_heat: float = 0.10
    max_position_fraction: float = 0.20
    max_order_notional: float = 250_000.0
    price_collar: float = 0.10
    max_orders_per_minute: int = 60

    def __post_init__(self) -> None:
        for name, low, high in _FRACTIONS:
            value = _real(name, getattr(self, name))
            if not (low < value <= high):
                raise ConfigError(name, f"must be a fraction in ({low}, {high}]", value)
            object.__setattr__(self, name, value)
        notional = _real("max_order_notional", self.max_order_notional)
        if notional <= 0:
            raise ConfigError("max_order_notional", "must be a positive amount of USD", notional)
        object.__setattr__(self, "max_order_notional", notional)
        rate = self.max_orders_per_minute
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
            raise ConfigError("max_orders_per_minute", "must be a whole number >= 1", rate)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> "RiskLimits":
        """Limits from a mapping of field name -> value; unknown names are refused (typos)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(unknown[0], f"is not a risk limit in {source} (known: {', '.join(sorted(known))})")
        try:
            return cls(**dict(values))
        except ConfigError as exc:
            raise ConfigError(f"{exc.setting} in {source}", exc.problem, values.get(exc.setting)) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, base: "RiskLimits | None" = None) -> "RiskLimits":
        """`base` (default: the defaults) with each `KOBE_RISK_<FIELD>` variable that is set applied."""
        env = os.environ if environ is None else environ
        values = dataclasses.asdict(base or cls())
        from_env: set[str] = set()
        for f in dataclasses.fields(cls):
            variable = ENV_PREFIX + f.name.upper()
            raw = env.get(variable)
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _parse_text(variable, raw, int if f.name == "max_orders_per_minute" else float)
            from_env.add(f.name)
        try:
            return cls(**values)
        except ConfigError as exc:
            if exc.setting in from_env:
                raise ConfigError(ENV_PREFIX + exc.setting.upper(), exc.problem, values[exc.setting]) from None
            raise

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "RiskLimits":
        """Limits from a TOML or JSON file: top-level keys, or a `[risk]` table, named like the fields."""
        file = Path(path)
        try:
            found = read_regular(file)  # a FIFO, link or folder there is refused, never waited on
        except StateFileError as exc:
            raise ConfigError(CONFIG_FILE_ENV, f"file {file} {exc.problem}") from exc
        if found is None:
            raise ConfigError(CONFIG_FILE_ENV, f"file {file} does not exist")
        try:
            text = found.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(CONFIG_FILE_ENV, f"file {file} is not UTF-8 text: {exc}") from exc
        try:
            data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(CONFIG_FILE_ENV, f"file {file} does not parse: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(CONFIG_FILE_ENV, f"file {file} must hold a table of limits")
        if set(data) == {"risk"} and isinstance(data["risk"], dict):
            data = data["risk"]
        return cls.from_mapping(data, source=str(file))

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> "RiskLimits":
        """The limits a process runs with: `$KOBE_RISK_CONFIG` file if set, then `KOBE_RISK_*` overrides."""
        env = os.environ if environ is None else environ
        config = env.get(CONFIG_FILE_ENV)
        base = cls.from_file(config) if config else cls()
        return cls.from_env(env, base=base)


_FRACTIONS = (
    ("max_drawdown", 0.0, 1.0),
    ("max_heat", 0.0, 1.0),
    ("max_position_fraction", 0.0, 1.0),
    ("price_collar", 0.0, 1.0),
)


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, "must be a number", value)
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(name, "must be a finite number", value)
    return number


def _parse_text(variable: str, raw: str, kind: type) -> float | int:
    try:
        return kind(raw.strip().replace("_", ""))
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise ConfigError(variable, f"must be {noun}", raw) from None
