"""`backtest_report` materialized through Dagster on a temporary lake."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from kobe_pipelines.defs.backtest.assets import backtest_report
from kobe_pipelines.defs.backtest.resources import BacktestResource
from kobe_pipelines.defs.resources import BrokerResource, LakeResource, StrategyResource
from kobe_pipelines_tests.backtest.conftest import QUIET, freeze
from kobe_pipelines.data.providers.simulated import SimulatedProvider


def test_materialize_when_buy_and_hold_on_the_current_lake_version_then_tear_sheet_and_summary_metadata(tmp_path):
    frozen = freeze(tmp_path / "lake", SimulatedProvider(QUIET))
    config = {"start": "2021-03-01", "end": "2021-03-31", "strategy": "buy_and_hold"}
    result = dg.materialize(
        [backtest_report],
        resources={"lake": LakeResource(lake_dir=str(tmp_path / "lake")),
                   "backtest": BacktestResource(backtest_dir=str(tmp_path / "backtests")),
                   "broker": BrokerResource(state_dir=str(tmp_path / "live-state")),
                   "strategy": StrategyResource(state_dir=str(tmp_path / "live-state"))},
        run_config={"ops": {"backtest_report": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["lake_version"].value == frozen.version_id
    assert meta["tear_sheet"].value.startswith("![tear sheet](data:image/png;base64,")
    folder = meta["folder"].value
    equity = pd.read_csv(f"{folder}/equity.csv")
    assert len(equity) == 23  # the XNYS sessions of March 2021
    assert meta["final_equity_usd"].value == pytest.approx(equity["equity"].iloc[-1], rel=1e-12)
    assert folder.startswith(str(tmp_path / "backtests" / "buy_and_hold-2021-03-01-2021-03-31-"))
