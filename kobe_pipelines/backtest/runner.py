"""The day-by-day backtest: the production trading run, once per session, with invariants at each close.

For every session t of [start, end] (XNYS sessions of the lake version), in order:
1. the signal source scores t (from data at or before t only);
2. the strategy sees the total-return bars of the last `history_sessions` sessions re-based to t
   (`market`), the book and the signals; the venue runs `run_trading_cycle`: the paper broker
   first applies t's corporate actions (`execution.corporate_actions`, read from the lake's
   tables by `actions_from_tables`), replays the raw bars of t (fills of the orders placed at
   t-1) and books delistings, then the drawdown monitor reads equity, the strategy runs and its
   intents go gate -> ledger -> broker for t+1;
3. `SessionChecker` checks the invariants at t's close and reads equity, cash, heat, drawdown.

The orders the last session places are left working (their session is after the range).
Outputs (`outputs.write_outputs`) go under `out`; the state folder is `out/state`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kobe_pipelines.backtest.market import PointInTimeMarket
from kobe_pipelines.backtest.session_checks import CloseReading, SessionChecker
from kobe_pipelines.backtest.signals import SignalSource
from kobe_pipelines.backtest.venue import BacktestVenue
from kobe_pipelines.errors import ConfigError
from kobe_pipelines.execution.corporate_actions import DEFAULT_DELISTED_AFTER, CorporateAction
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.strategies import RiskBudget, StrategyRegistry
from kobe_pipelines.strategies.context import SIGNAL_COLUMNS
from kobe_pipelines.trading.cycle import TradingRunResult

STATE_FOLDER = "state"
DEFAULT_HISTORY_SESSIONS = 84  # about the 120 calendar days the production trading run hands the strategy


@dataclass(frozen=True)
class BacktestConfig:
    """What a backtest runs. Money in USD; `slippage_bps` per fill, adverse."""

    start: str
    end: str
    strategy: str = "ranked_long"
    starting_cash: float = 100_000.0  # the paper broker's default (KOBE_PAPER_STARTING_CASH)
    slippage_bps: float = 5.0
    limits: RiskLimits = field(default_factory=RiskLimits)
    budget: RiskBudget = field(default_factory=RiskBudget)
    history_sessions: int = DEFAULT_HISTORY_SESSIONS
    require_stops: bool = True
    delisted_after: int = DEFAULT_DELISTED_AFTER  # sessions without a bar that delist a held symbol

    def __post_init__(self) -> None:
        if pd.Timestamp(self.end) < pd.Timestamp(self.start):
            raise ConfigError("end", f"must not be before the start {self.start}", self.end)
        if self.history_sessions < 2:
            raise ConfigError("history_sessions", "must be at least 2 sessions", self.history_sessions)
        if isinstance(self.delisted_after, bool) or not isinstance(self.delisted_after, int) or self.delisted_after < 1:
            raise ConfigError("delisted_after", "must be a whole number of sessions >= 1", self.delisted_after)


@dataclass(frozen=True)
class SessionRecord:
    """What one session produced: the close reading and the trading run."""

    session: pd.Timestamp
    reading: CloseReading
    run: TradingRunResult
    signals_hash: str
    model_version: str
    seconds: float


@dataclass
class BacktestRun:
    config: BacktestConfig
    market: PointInTimeMarket
    venue: BacktestVenue
    sessions: list[SessionRecord]
    checker: SessionChecker
    model_name: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.venue.state_dir


def signals_hash(frame: pd.DataFrame) -> str:
    """sha256 (first 16 hex) of a session's signals: symbol, date and score, in their order."""
    hashed = pd.util.hash_pandas_object(frame.loc[:, list(SIGNAL_COLUMNS)], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def run_backtest(market: PointInTimeMarket, source: SignalSource, config: BacktestConfig, out: str | Path,
                 registry: StrategyRegistry, *, actions: Sequence[CorporateAction] = (),
                 progress: Callable[[int, int, pd.Timestamp], Any] | None = None) -> BacktestRun:
    """Run the backtest (module docstring); an invariant breach raises `InvariantBreach`."""
    folder = Path(out)
    sessions = market.sessions[(market.sessions >= pd.Timestamp(config.start)) & (market.sessions <= pd.Timestamp(config.end))]
    if len(sessions) == 0:
        raise ConfigError("start", f"no session of lake version {market.version_id} lies in {config.start}..{config.end}")
    state = folder / STATE_FOLDER
    if state.exists() and any(state.iterdir()):
        raise ConfigError("out", f"{folder} already holds a backtest's state; choose a new --out folder", str(folder))
    venue = BacktestVenue(state, limits=config.limits, registry=registry, strategy_name=config.strategy,
                          universe=[str(s) for s in market.symbols], starting_cash=config.starting_cash,
                          slippage_bps=config.slippage_bps, budget=config.budget, delisted_after=config.delisted_after)
    by_session: dict[str, list[CorporateAction]] = {}
    for action in actions:
        by_session.setdefault(action.session, []).append(action)
    checker = SessionChecker(venue, starting_cash=config.starting_cash, require_stops=config.require_stops,
                             delisted_after=config.delisted_after)
    run = BacktestRun(config, market, venue, [], checker, source.model_name)
    begun = time.perf_counter()
    signal_seconds = 0.0
    try:
        for i, session in enumerate(sessions):
            started = time.perf_counter()
            signals = source.signals(session)
            version = source.model_version(session)
            signal_seconds += time.perf_counter() - started
            if signals.empty:  # nothing scored: the universe with no score (no entries, positions kept)
                symbols = market.symbols_on(session)
                signals = pd.DataFrame({"symbol": symbols, "date": session, "score": float("nan")})
            bars = market.adjusted_history(session, config.history_sessions)
            raw = market.raw_bars(session)
            due = by_session.get(str(session.date()), [])
            checker.start()
            result = venue.run_session(session, signals, bars, raw, due)
            reading = checker.close(session, result, raw, due)
            run.sessions.append(SessionRecord(session, reading, result, signals_hash(signals), version,
                                              time.perf_counter() - started))
            if progress is not None:
                progress(i + 1, len(sessions), session)
    finally:
        venue.close()
    run.timings = {"loop_s": time.perf_counter() - begun - signal_seconds, "signals_s": signal_seconds,
                   "sessions": float(len(run.sessions))}
    return run
