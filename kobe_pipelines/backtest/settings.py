"""What a person asks of a backtest (the CLI's and the Dagster asset's options), checked once.

`NAME=VALUE` assignments set strategy parameters (`--param`) and risk limits (`--limit`); each
value is parsed by the type of the field it sets (a number, a whole number, text, or `none`),
and an unknown name or a bad value raises `ConfigError` naming it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kobe_pipelines.errors import ConfigError
from kobe_pipelines.execution.corporate_actions import DEFAULT_DELISTED_AFTER

PROVIDERS = ("simulated", "files", "polygon")
DEFAULT_SYMBOLS = 50
HISTORY_YEARS = 2  # history before the start: feature warm-up and the first walk-forward training


@dataclass(frozen=True)
class BacktestSettings:
    """Dates are XNYS sessions (YYYY-MM-DD); money USD. `lake`: an existing lake folder to read
    instead of building one from the provider (its current version unless `lake_version`)."""

    start: str
    end: str
    out: Path
    provider: str = "simulated"
    source: Path | None = None
    symbols: int | None = None
    strategy: str = "ranked_long"
    params: tuple[str, ...] = ()
    limits: tuple[str, ...] = ()
    retrain_every: int = 63
    with_lstm: bool = False
    signals_file: Path | None = None
    history_start: str | None = None
    starting_cash: float = 100_000.0  # the paper broker's default (KOBE_PAPER_STARTING_CASH)
    slippage_bps: float = 5.0
    seed: int = 7
    dividend_convention: str = "crsp"
    lake: Path | None = None
    lake_version: str | None = None
    mlflow_uri: str | None = None
    experiment: str = "kobe-backtest"
    delisted_after: int = DEFAULT_DELISTED_AFTER  # KOBE_DELISTED_AFTER_SESSIONS of the paper broker
    strategy_dir: Path | None = None  # the users' strategy files (KOBE_STRATEGY_DIR)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            try:
                ok = pd.Timestamp(value).strftime("%Y-%m-%d") == value
            except (ValueError, TypeError):
                ok = False
            if not ok:
                raise ConfigError(name, "must be a date YYYY-MM-DD", value)
        if pd.Timestamp(self.end) < pd.Timestamp(self.start):
            raise ConfigError("end", f"must not be before the start {self.start}", self.end)
        if self.provider not in PROVIDERS:
            raise ConfigError("provider", f"must be one of {', '.join(PROVIDERS)}", self.provider)
        if self.provider == "files" and self.source is None and self.lake is None:
            raise ConfigError("source", "is required with --provider files (a folder of bars/splits/dividends)")
        if self.symbols is not None and self.symbols < 1:
            raise ConfigError("symbols", "must be at least 1", self.symbols)
        if self.delisted_after < 1:
            raise ConfigError("delisted_after", "must be at least 1 session", self.delisted_after)
        if self.retrain_every < 1:
            raise ConfigError("retrain_every", "must be at least 1 session", self.retrain_every)

    @property
    def first_history_session(self) -> str:
        """Where the lake's history starts: `history_start`, else HISTORY_YEARS before the start."""
        if self.history_start:
            return self.history_start
        return str((pd.Timestamp(self.start) - pd.DateOffset(years=HISTORY_YEARS)).date())


def parse_assignments(assignments: Iterable[str], target: type, what: str) -> dict[str, Any]:
    """`NAME=VALUE` texts as keyword arguments of the dataclass `target` (see the module docstring)."""
    hints = typing.get_type_hints(target)
    known = {f.name for f in dataclasses.fields(target)}
    out: dict[str, Any] = {}
    for text in assignments:
        name, sep, raw = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(what, "must be given as NAME=VALUE", text)
        if name not in known:
            raise ConfigError(f"{what} {name}", f"is unknown (known: {', '.join(sorted(known))})", raw)
        out[name] = _parse(hints[name], raw.strip(), f"{what} {name}")
    return out


def _parse(kind: Any, raw: str, setting: str) -> Any:
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union else (kind,)
    if type(None) in options and raw.lower() in ("none", "null", ""):
        return None
    for option in options:
        if option is type(None):
            continue
        try:
            if option is bool:
                if raw.lower() in ("true", "yes", "1", "false", "no", "0"):
                    return raw.lower() in ("true", "yes", "1")
                continue
            if option is int:
                return int(raw.replace("_", ""))
            if option is float:
                return float(raw.replace("_", ""))
            if option is str:
                return raw
        except ValueError:
            continue
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(setting, f"must be {names}", raw)
