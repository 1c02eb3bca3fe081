from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.backtest.market import MarketDataError, PointInTimeMarket

from .conftest import freeze


@pytest.fixture(scope="module")
def market(sim_lake) -> PointInTimeMarket:
    return PointInTimeMarket.from_lake(sim_lake.lake, sim_lake.version_id)


def test_raw_bars_when_session_given_then_the_lake_raw_rows_of_that_session(market, sim_lake):
    expected = sim_lake.lake.read_bars(sim_lake.version_id, "raw", start="2021-03-01", end="2021-03-01")
    got = market.raw_bars("2021-03-01")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)


def test_adjusted_history_when_compared_with_a_lake_frozen_at_that_session_then_equal(market, sim_lake, tmp_path):
    """Re-basing the end version's total-return bars to t gives what a lake frozen at t shows,
    for sessions around splits and dividends of the year."""
    splits = sim_lake.sim.splits("2020-06-01", "2021-12-31")
    assert not splits.empty
    for session in ["2020-09-15", str(pd.Timestamp(splits["execution_date"].iloc[0]).date()), "2021-06-30"]:
        t = market.sessions[market.sessions.searchsorted(pd.Timestamp(session))]
        then = freeze(tmp_path / str(t.date()), sim_lake.sim, end=str(t.date()))
        expected = then.lake.read_bars(then.version_id, "total", start=market.sessions[market.session_index(t) - 29], end=t)
        got = market.adjusted_history(t, 30).sort_values(["symbol", "date"]).reset_index(drop=True)
        assert len(got) == len(expected)
        for column in ("open", "high", "low", "close", "volume"):
            np.testing.assert_allclose(got[column], expected[column], rtol=1e-9, err_msg=f"{column} on {t.date()}")


def test_adjusted_history_when_session_is_a_split_day_then_the_last_bar_is_raw_and_earlier_ones_carry_the_split(market, sim_lake):
    split = sim_lake.sim.splits("2020-01-02", "2021-12-31").iloc[0]
    day = pd.Timestamp(split["execution_date"])
    history = market.adjusted_history(day, 2)
    rows = history.loc[history["symbol"] == split["symbol"]].sort_values("date")
    raw = market.raw_bars(day).set_index("symbol").loc[split["symbol"]]
    assert rows["close"].iloc[-1] == raw["close"]
    before = market.raw_bars(rows["date"].iloc[0]).set_index("symbol").loc[split["symbol"], "close"]
    assert rows["close"].iloc[0] == pytest.approx(before * split["split_from"] / split["split_to"], rel=1e-12)


def test_session_index_when_date_has_no_bars_then_error_names_the_date(market):
    with pytest.raises(MarketDataError, match="2020-01-04"):
        market.raw_bars("2020-01-04")
