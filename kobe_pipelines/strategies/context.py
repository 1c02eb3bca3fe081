"""What a strategy sees on a trading run: signals, bars, the book, the date, the risk budget.

Conventions: money in USD; fractions are plain fractions of account equity (0.01 = 1%), never
percent; `trading_date` is the XNYS session (YYYY-MM-DD, America/New_York) the orders are
for, the session AFTER the latest bar and signal.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import cached_property

import pandas as pd

from kobe_pipelines.data.schema import BAR_COLUMNS
from kobe_pipelines.errors import ConfigError, RecordError
from kobe_pipelines.market_calendar import is_session
from kobe_pipelines.orders import SignalLineage
from kobe_pipelines.risk.types import Book

SIGNAL_COLUMNS: tuple[str, ...] = ("symbol", "date", "score")

RISK_PER_TRADE_ENV = "KOBE_RISK_PER_TRADE"
MAX_POSITION_FRACTION_ENV = "KOBE_MAX_POSITION_FRACTION"


@dataclass(frozen=True)
class RiskBudget:
    """How much a strategy may risk per new position.

    `risk_per_trade`: fraction of equity lost if a new position is stopped out at its stop
    (entry - stop, times qty), default 0.01 (1%). `max_position_fraction`: largest entry
    notional of one new position as a fraction of equity, default 0.10 (10%; the policy gate's
    own cap is separate and still applies).
    """

    risk_per_trade: float = 0.01
    max_position_fraction: float = 0.10

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f.name, "must be a finite number", value)
            if not 0 < value <= 1:
                raise ConfigError(f.name, "must be a fraction of equity in (0, 1]", value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "RiskBudget":
        """Read `KOBE_RISK_PER_TRADE` and `KOBE_MAX_POSITION_FRACTION` (fractions); unset keeps the default."""
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for setting, attr in ((RISK_PER_TRADE_ENV, "risk_per_trade"), (MAX_POSITION_FRACTION_ENV, "max_position_fraction")):
            raw = env.get(setting)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[attr] = float(raw)
            except ValueError:
                raise ConfigError(setting, "must be a number", raw) from None
        try:
            return cls(**values)
        except ConfigError as exc:
            env_name = RISK_PER_TRADE_ENV if exc.setting == "risk_per_trade" else MAX_POSITION_FRACTION_ENV
            raise ConfigError(env_name, exc.problem, env.get(env_name)) from None


@dataclass(frozen=True, eq=False)
class StrategyContext:
    """Inputs of one trading run, checked on construction.

    - `signals`: DataFrame(symbol, date, score) for the latest date; higher score = more
      attractive long. Dates naive midnights.
    - `bars`: adjusted daily bars (BAR_COLUMNS), history up to and including the signal date;
      none on or after `trading_date` (that would be look-ahead).
    - `book`: the account now (equity, cash, buying power USD; positions; last prices).
    - `trading_date`: YYYY-MM-DD, the XNYS session the orders are for.
    - `budget`: the risk budget.
    - `strategy_version`: set by the registry to the version of the strategy being run; every
      intent must carry it. Empty outside the registry (the validator then only requires a value).
    - `lineage`: where the signals came from (model and lake version, signals hash); every
      intent carries it with its symbol's score (`lineage_for`). None when unknown (tests).
    """

    signals: pd.DataFrame
    bars: pd.DataFrame
    book: Book
    trading_date: str
    budget: RiskBudget = RiskBudget()
    strategy_version: str = ""
    lineage: SignalLineage | None = None

    def __post_init__(self) -> None:
        record = f"for {self.trading_date!r}"
        try:
            day = dt.date.fromisoformat(self.trading_date) if isinstance(self.trading_date, str) else None
        except ValueError:
            day = None
        if day is None or day.isoformat() != self.trading_date:
            raise RecordError("strategy context", record, "trading_date", "must be a YYYY-MM-DD string", self.trading_date)
        if not is_session(day):
            raise RecordError("strategy context", record, "trading_date", "is not an XNYS session", self.trading_date)
        if not isinstance(self.book, Book):
            raise RecordError("strategy context", record, "book", "must be a risk.types.Book", type(self.book).__name__)
        if not isinstance(self.budget, RiskBudget):
            raise RecordError("strategy context", record, "budget", "must be a RiskBudget", type(self.budget).__name__)
        cutoff = pd.Timestamp(day)
        for name, frame, columns in (("signals", self.signals, SIGNAL_COLUMNS), ("bars", self.bars, BAR_COLUMNS)):
            if not isinstance(frame, pd.DataFrame):
                raise RecordError("strategy context", record, name, "must be a pandas DataFrame", type(frame).__name__)
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise RecordError("strategy context", record, name, f"lacks columns {missing}")
            if not frame.empty:
                latest = pd.to_datetime(frame["date"]).max()
                if latest >= cutoff:
                    raise RecordError(
                        "strategy context", record, name, "has rows on or after the trading date (look-ahead)", str(latest.date())
                    )

    def lineage_for(self, symbol: str) -> SignalLineage | None:
        """The run's lineage with `symbol`'s latest score (None when the symbol has none)."""
        if self.lineage is None:
            return None
        score = self.latest_scores.get(symbol)
        return self.lineage.for_score(score if score is not None and math.isfinite(score) else None)

    @cached_property
    def latest_scores(self) -> dict[str, float]:
        """Scores of the latest signal date by symbol."""
        if self.signals.empty:
            return {}
        dates = pd.to_datetime(self.signals["date"])
        latest = self.signals.loc[dates == dates.max()]
        return {str(s): float(v) for s, v in zip(latest["symbol"], pd.to_numeric(latest["score"], errors="coerce"))}

    def with_version(self, version: str) -> "StrategyContext":
        """The same context for running the strategy version `version`."""
        return replace(self, strategy_version=version)

    @cached_property
    def symbols(self) -> frozenset[str]:
        """Symbols with at least one bar: the only ones an intent may name."""
        return frozenset(self.bars["symbol"].astype(str).unique())
