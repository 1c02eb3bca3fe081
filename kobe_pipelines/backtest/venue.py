"""The production trading loop's parts, set up in a backtest's own state folder, and one session of it.

`BacktestVenue` holds what `trade_orders` uses in production: the paper broker, the policy gate
(and its audit log), the order ledger, the slippage tracker, the drawdown monitor (and its halt)
and the strategy registry (hot-reload machinery included); `run_session` calls the one
production function, `trading.cycle.run_trading_cycle`. Everything is written under the state
folder it is given, never the live `state/`.

Time is simulated: `SessionClock` stands at the session's close (16:00 New York) while a
session runs, and each gate decision moves it on by one order's spacing at the rate limit
(60 / max_orders_per_minute seconds), as a sender pacing its orders would. The state is written
without waiting for the disk: the audit log without fsync (`risk.audit`), the ledger and the
slippage records with `synchronous=OFF` (`execution.sqlite_store`), the paper broker's file
and the drawdown monitor's high-water mark replaced atomically without fsync, its equity log
appended without fsync: the same records, in the same transactions, but a backtest's
state is rebuilt by running it again, so it does not pay for surviving an OS crash.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import pandas as pd

from kobe_pipelines.alerts import Alert, AlertKind, Severity
from kobe_pipelines.execution.corporate_actions import DEFAULT_DELISTED_AFTER, CorporateAction
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines.market_calendar import xnys
from kobe_pipelines.risk.drawdown import DrawdownMonitor
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.strategies import RiskBudget, StrategyRegistry
from kobe_pipelines.trading.cycle import TradingRunResult, run_trading_cycle


class SessionClock:
    """UTC time of a backtest: the current session's close, plus `spacing` per `tick()`."""

    def __init__(self, spacing_s: float):
        self.spacing = dt.timedelta(seconds=spacing_s)
        self._now = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

    def start(self, session: pd.Timestamp) -> None:
        close = xnys().session_close(pd.Timestamp(session)).to_pydatetime()
        self._now = max(self._now, close.astimezone(dt.timezone.utc))

    def now(self) -> dt.datetime:
        return self._now

    def tick(self) -> dt.datetime:
        self._now += self.spacing
        return self._now


class BacktestVenue:
    """See the module docstring. `universe`: the tradable symbols; `alerts` collects every alert."""

    def __init__(self, state_dir: str | os.PathLike[str], *, limits: RiskLimits, registry: StrategyRegistry,
                 strategy_name: str, universe: Collection[str], starting_cash: float, slippage_bps: float,
                 budget: RiskBudget, delisted_after: int = DEFAULT_DELISTED_AFTER):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.limits = limits
        self.clock = SessionClock(60.0 / limits.max_orders_per_minute)
        self.alerts: list[Alert] = []
        self.registry = registry
        self.strategy_name = strategy_name
        self.budget = budget
        self.broker = PaperBroker(self.state_dir, slippage_bps=slippage_bps, starting_cash=starting_cash,
                                  symbols=universe, clock=self.clock.now, delisted_after=delisted_after,
                                  durable=False)
        self.gate = PolicyGate(limits, self.state_dir, universe=universe, clock=self.clock.tick, audit_fsync=False)
        self.ledger = OrderLedger(self.state_dir, durable=False)
        self.slippage = SlippageTracker(self.state_dir, durable=False)
        self.drawdown = DrawdownMonitor(self.state_dir, max_drawdown=limits.max_drawdown, alert=self._halt_alert,
                                        clock=self.clock.now, by="backtest drawdown monitor", durable=False)

    def run_session(self, session: pd.Timestamp, signals: pd.DataFrame, bars: pd.DataFrame,
                    raw_bars: pd.DataFrame, actions: Sequence[CorporateAction] = ()) -> TradingRunResult:
        """The production trading run for the signals of `session` (orders for the next session);
        the paper broker first applies `actions` (the corporate actions effective on `session`),
        then replays `raw_bars`, the bars of `session`, and books delistings."""
        self.clock.start(session)
        return run_trading_cycle(
            signals=signals, bars=bars, raw_bars=raw_bars, broker=self.broker, gate=self.gate, ledger=self.ledger,
            slippage=self.slippage, registry=self.registry, strategy_name=self.strategy_name, drawdown=self.drawdown,
            budget=self.budget, send_alert=self._collect, actions=actions, delisted_after=self.broker.delisted_after,
        )

    def close(self) -> None:
        self.gate.close()
        self.registry.close()

    def _collect(self, alert: Alert) -> None:
        self.alerts.append(Alert(kind=alert.kind, subject=alert.subject, body=alert.body, severity=alert.severity,
                                 key=alert.key, created_at=self.clock.now(), id=alert.id))

    def _halt_alert(self, subject: str, body: str) -> None:
        self._collect(Alert(kind=AlertKind.HALT, subject=subject, body=body, severity=Severity.CRITICAL))
