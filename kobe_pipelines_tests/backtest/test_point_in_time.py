"""Point in time: change every bar after t, and every decision up to t stays the same."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.backtest.market import PointInTimeMarket
from kobe_pipelines.backtest.outputs import orders_frame
from kobe_pipelines.backtest.runner import BacktestConfig, run_backtest
from kobe_pipelines.backtest.walk_forward import WalkForwardConfig, WalkForwardSignals
from kobe_pipelines.lake import Lake
from kobe_pipelines.market_calendar import xnys
from kobe_pipelines.ml.features import features_from_lake
from kobe_pipelines.strategies import StrategyRegistry

from .conftest import QUIET

START, END = "2021-01-04", "2021-04-30"
# small windows so that a year of history trains: retrains on 2021-01-04, 02-03, 03-05 and 04-06.
CONFIG = WalkForwardConfig(retrain_every=21, validation_size=42, min_train_dates=63)
# t is a retrain session: the model trained at t scores t, so a label read before it was known
# (rows up to t whose forward return ends after t) would show in the decisions of t.
T = "2021-03-05"


def perturbed_bars(bars: pd.DataFrame, after: str, seed: int = 1) -> pd.DataFrame:
    """Every bar after `after`: its four prices times one random factor in [0.7, 1.4] (a valid bar
    stays valid), its volume times another."""
    rng = np.random.default_rng(seed)
    later = bars["date"] > pd.Timestamp(after)
    out = bars.copy()
    price = rng.uniform(0.7, 1.4, int(later.sum()))
    for column in ("open", "high", "low", "close"):
        out.loc[later, column] = (out.loc[later, column] * price).round(2)
    out.loc[later, "volume"] = (out.loc[later, "volume"] * rng.uniform(0.5, 2.0, int(later.sum()))).round()
    return out


def _backtest(lake: Lake, version_id: str, out):
    market = PointInTimeMarket.from_lake(lake, version_id)
    sessions = market.sessions[(market.sessions >= pd.Timestamp(START)) & (market.sessions <= pd.Timestamp(END))]
    source = WalkForwardSignals(features_from_lake(lake, version_id), sessions, CONFIG)
    run = run_backtest(market, source, BacktestConfig(start=START, end=END), out, StrategyRegistry())
    scores = pd.concat([source.signals(s) for s in sessions], ignore_index=True)
    return run, scores


@pytest.mark.slow
def test_backtest_when_every_bar_after_t_changes_then_decisions_up_to_t_are_identical(quiet_lake, tmp_path):
    sim = quiet_lake.sim
    bars = sim.daily_bars(QUIET.start, QUIET.end)
    changed = Lake(tmp_path / "changed-lake")
    version = changed.freeze(perturbed_bars(bars, T), sim.splits(QUIET.start, QUIET.end), sim.dividends(QUIET.start, QUIET.end),
                             provider="simulated").version.version_id
    original, original_scores = _backtest(quiet_lake.lake, quiet_lake.version_id, tmp_path / "original")
    other, other_scores = _backtest(changed, version, tmp_path / "changed")

    decided_by_t = str(xnys().next_session(pd.Timestamp(T)).date())  # the orders of the run at t are for the next session
    columns = ["client_order_id", "trading_date", "symbol", "side", "qty", "order_type", "entry", "stop", "take_profit",
               "approved", "reason"]
    mine, theirs = (orders_frame(r) for r in (original, other))
    before = mine.loc[mine["trading_date"] <= decided_by_t, columns].reset_index(drop=True)
    assert len(before) > 10
    pd.testing.assert_frame_equal(before, theirs.loc[theirs["trading_date"] <= decided_by_t, columns].reset_index(drop=True))
    upto = original_scores["date"] <= pd.Timestamp(T)
    pd.testing.assert_frame_equal(original_scores.loc[upto].reset_index(drop=True),
                                  other_scores.loc[other_scores["date"] <= pd.Timestamp(T)].reset_index(drop=True),
                                  rtol=1e-9)
    equity = [[r.reading.equity for r in run.sessions if r.session <= pd.Timestamp(T)] for run in (original, other)]
    assert equity[0] == equity[1]
    # and the change is real: the decisions after t differ
    after = [frame.loc[frame["trading_date"] > decided_by_t, columns].reset_index(drop=True) for frame in (mine, theirs)]
    assert not after[0].equals(after[1])
