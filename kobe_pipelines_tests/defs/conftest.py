"""Lake assets on a temporary lake, run as refreeze_job runs them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from kobe_pipelines.defs.driver import LoopDriver
from kobe_pipelines.defs.backtest.resources import BacktestResource
from kobe_pipelines.defs.env_resources import (
    AlertsResource, BrokerResource, MlflowResource, RiskResource, StrategyResource,
)
from kobe_pipelines.defs.resources import LakeResource, MarketDataResource


def lake_resources(root: Path, market: MarketDataResource) -> dict:
    state = str(root / "state")
    return {"lake": LakeResource(lake_dir=str(root / "lake")), "market_data": market, "alerts": AlertsResource(state_dir=state),
            "mlflow": MlflowResource(state_dir=state), "broker": BrokerResource(state_dir=state),
            "risk": RiskResource(state_dir=state), "strategy": StrategyResource(state_dir=state),
            "backtest": BacktestResource(backtest_dir=str(root / "backtests"))}


@pytest.fixture()
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def driver_for(root: Path, market: MarketDataResource, instance: dg.DagsterInstance) -> LoopDriver:
    (root / "state").mkdir(parents=True, exist_ok=True)
    return LoopDriver(lake_resources(root, market), instance)
