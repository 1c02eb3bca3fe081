"""Strategies: turn signals, bars and the book into order intents (domain code, no Dagster import).

- `base`: the `Strategy` interface and `validate_intents` (ids and field rules: `kobe_pipelines.orders`).
- `context`: `StrategyContext` (one trading run's inputs) and `RiskBudget`.
- `ranked_long`: the shipped strategy (top-N scores, ATR bracket, risk-budget sizing).
- `hot_reload`: `StrategyRegistry`, serving built-ins and the files in the users' folder,
  reloading an edited file on the next run only after it passes a dry run.
"""

from kobe_pipelines.strategies.base import (
    IntentProblem,
    RejectedIntent,
    Strategy,
    validate_intents,
)
from kobe_pipelines.strategies.context import SIGNAL_COLUMNS, RiskBudget, StrategyContext
from kobe_pipelines.strategies.hot_reload import (
    LoadedStrategy,
    ReloadFailure,
    StrategyRegistry,
    StrategyRun,
    StrategyUnavailableError,
    UnknownStrategyError,
    version_of,
)
from kobe_pipelines.strategies.ranked_long import RankedLong, RankedLongConfig

__all__ = [
    "SIGNAL_COLUMNS",
    "IntentProblem",
    "LoadedStrategy",
    "RankedLong",
    "RankedLongConfig",
    "RejectedIntent",
    "ReloadFailure",
    "RiskBudget",
    "Strategy",
    "StrategyContext",
    "StrategyRegistry",
    "StrategyRun",
    "StrategyUnavailableError",
    "UnknownStrategyError",
    "validate_intents",
    "version_of",
]
