"""The whole loop through Dagster on a fresh temporary lake and state, run once per module.

`TradingWorld` gives `LoopDriver` (what the schedule and sensors do in production) explicit
resources with concrete paths, so the per-test temporary folders of the root conftest do not
apply to these module-wide worlds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from kobe_pipelines.defs.backtest.resources import BacktestResource
from kobe_pipelines.defs.driver import LoopDriver, training_config
from kobe_pipelines.defs.env_resources import (
    AlertsResource, BrokerResource, MlflowResource, RiskResource, StrategyResource,
)
from kobe_pipelines.defs.resources import LakeResource, MarketDataResource

HISTORY = ("2022-01-03", "2024-06-14")
SIM_END = "2024-06-24"  # the last simulated session; the tests replay the sessions before it
FAST_TRAINING = training_config(max_epochs=2, n_folds=1)


@dataclass
class TradingWorld:
    root: Path
    alerts: dict = field(default_factory=dict)  # AlertsResource fields (SMTP settings)
    broker_kind: str = "paper"
    broker_extra: dict = field(default_factory=dict)
    broker_class: type[BrokerResource] = BrokerResource  # a test may give the broker a clock
    strategy: str = "ranked_long"

    def __post_init__(self) -> None:
        self.state = self.root / "state"
        self.state.mkdir(parents=True, exist_ok=True)
        self.strategy_dir = self.root / "strategies"
        self.strategy_dir.mkdir(exist_ok=True)
        self.instance = dg.DagsterInstance.ephemeral()
        self.driver = LoopDriver(self.resources(), self.instance)

    def resources(self) -> dict:
        state = str(self.state)
        return {
            "lake": LakeResource(lake_dir=str(self.root / "lake")),
            "market_data": MarketDataResource(sim_symbols=10, history_start=HISTORY[0], sim_end=SIM_END),
            "alerts": AlertsResource(state_dir=state, **self.alerts),
            "risk": RiskResource(state_dir=state),
            "broker": self.broker_class(state_dir=state, broker=self.broker_kind, **self.broker_extra),
            "mlflow": MlflowResource(state_dir=state),
            "strategy": StrategyResource(state_dir=state, strategy=self.strategy, strategy_dir=str(self.strategy_dir)),
            "backtest": BacktestResource(backtest_dir=str(Path(state).parent / "backtests")),
        }

    def freeze(self, first: str, last: str, with_signals: bool = True) -> None:
        self.driver.freeze(first, last, with_signals)

    def train(self):
        return self.driver.train(FAST_TRAINING)

    def tick(self) -> list[dg.RunRequest]:
        return self.driver.tick()

    def trade(self, request: dg.RunRequest):
        return self.driver.trade(request)

    def tick_and_trade(self):
        requests = self.tick()
        assert len(requests) == 1, requests
        return requests[0], self.trade(requests[0])
