"""Strategies: turn signals, bars and the book into order intents (domain code, no Dagster import).

- `base`: the `Strategy` interface, `intent_id`, `validate_intents`.
- `context`: `StrategyContext` (one trading run's inputs) and `RiskBudget`.
- `ranked_long`: the shipped strategy (top-N scores, ATR bracket, risk-budget sizing).
- `hot_reload`: `StrategyRegistry`, serving built-ins and the files in `KOBE_STRATEGY_DIR`,
  reloading an edited file on the next run only after it passes a dry run.
"""

from kobe_pipelines.strategies.base import (
    IntentProblem,
    RejectedIntent,
    Strategy,
    intent_id,
    validate_intents,
)
from kobe_pipelines.strategies.context import SIGNAL_COLUMNS, RiskBudget, StrategyContext
from kobe_pipelines.strategies.hot_reload import (
    STRATEGY_DIR_ENV,
    LoadedStrategy,
    ReloadFailure,
    StrategyRegistry,
    StrategyRun,
    StrategyUnavailableError,
    UnknownStrategyError,
    strategy_dir_from_env,
    version_of,
)
from kobe_pipelines.strategies.ranked_long import RankedLong, RankedLongConfig

__all__ = [
    "SIGNAL_COLUMNS",
    "STRATEGY_DIR_ENV",
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
    "intent_id",
    "strategy_dir_from_env",
    "validate_intents",
    "version_of",
]
