"""The simulated market: seekable, prefix-stable, and its raw prices move exactly by its actions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider

CONFIG = SimConfig(seed=3, n_symbols=30, start="2019-01-02", end="2023-12-29")


@pytest.fixture(scope="module")
def whole() -> pd.DataFrame:
    return SimulatedProvider(CONFIG).daily_bars(CONFIG.start, CONFIG.end)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(symbol=frame["symbol"].astype(str)).reset_index(drop=True)


@pytest.mark.parametrize("first, last", [("2021-06-01", "2021-06-01"), ("2020-02-10", "2022-08-31"), ("2023-12-29", "2023-12-29")])
def test_daily_bars_when_a_range_is_asked_by_a_fresh_provider_then_identical_to_that_range_of_the_whole_history(whole, first, last):
    part = SimulatedProvider(CONFIG).daily_bars(first, last)
    expected = whole.loc[(whole["date"] >= first) & (whole["date"] <= last)]
    assert len(part) > 0
    pd.testing.assert_frame_equal(_plain(part), _plain(expected))


def test_daily_bars_when_end_is_later_then_the_earlier_sessions_are_unchanged(whole):
    longer = SimulatedProvider(SimConfig(**{**CONFIG.__dict__, "end": "2024-06-28"}))
    earlier = longer.daily_bars(CONFIG.start, CONFIG.end)
    pd.testing.assert_frame_equal(_plain(earlier), _plain(whole))
    assert longer.daily_bars("2024-06-28", "2024-06-28")["date"].nunique() == 1


def test_actions_when_asked_for_a_part_then_the_same_as_that_part_of_the_whole_history():
    sim = SimulatedProvider(CONFIG)
    splits, dividends = sim.splits(CONFIG.start, CONFIG.end), sim.dividends(CONFIG.start, CONFIG.end)
    fresh = SimulatedProvider(CONFIG)
    part_s, part_d = fresh.splits("2021-01-01", "2021-12-31"), fresh.dividends("2021-01-01", "2021-12-31")
    pd.testing.assert_frame_equal(part_s, splits.loc[splits["execution_date"].dt.year == 2021].reset_index(drop=True))
    pd.testing.assert_frame_equal(part_d, dividends.loc[dividends["ex_dividend_date"].dt.year == 2021].reset_index(drop=True))
    assert len(splits) >= 3 and len(dividends) >= 100  # forward and reverse splits, quarterly dividends


def test_raw_closes_when_an_action_goes_ex_then_they_move_by_it_and_otherwise_by_an_ordinary_return(whole):
    sim = SimulatedProvider(CONFIG)
    splits, dividends = sim.splits(CONFIG.start, CONFIG.end), sim.dividends(CONFIG.start, CONFIG.end)
    bars = _plain(whole).sort_values(["symbol", "date"])
    bars["prev_close"] = bars.groupby("symbol")["close"].shift()
    # a dividend reported on a Sunday goes ex on Monday's session
    ex = dividends.assign(date=dividends["ex_dividend_date"] + pd.to_timedelta(
        (dividends["ex_dividend_date"].dt.dayofweek == 6).astype(int), unit="D"))
    bars = bars.merge(splits.rename(columns={"execution_date": "date"}), on=["symbol", "date"], how="left")
    bars = bars.merge(ex[["symbol", "date", "cash_amount"]], on=["symbol", "date"], how="left").dropna(subset=["prev_close"])
    ratio = (bars["split_from"] / bars["split_to"]).fillna(1.0)
    total_return = np.log((bars["close"] + bars["cash_amount"].fillna(0.0)) / (bars["prev_close"] * ratio))
    # the true daily return is a few percent at most; an unapplied 2-for-1 split alone is log 2 = 0.69
    assert total_return.abs().max() < 0.25
    assert (bars["split_to"] > 1).any() and (bars["split_from"] > 1).any() and bars["cash_amount"].notna().sum() > 50


def test_symbols_when_listing_and_delisting_then_bars_only_while_listed(whole):
    counts = whole.groupby("symbol", observed=True)["date"].agg(["min", "max", "count"])
    sessions = whole["date"].nunique()
    assert counts.loc["K0001", "min"] > pd.Timestamp(CONFIG.start)  # K0001 always lists later
    assert counts.loc["K0002", "max"] < pd.Timestamp(CONFIG.end)  # K0002 always delists
    # between its first and last bar a symbol trades every session
    first_last = whole.groupby("symbol", observed=True)["date"].agg(["min", "max"])
    span = first_last.apply(lambda r: whole.loc[(whole["date"] >= r["min"]) & (whole["date"] <= r["max"]), "date"].nunique(), axis=1)
    assert (span == counts["count"]).all() and counts["count"].max() == sessions


def test_daily_bars_table_when_read_then_the_arrow_form_of_daily_bars():
    sim = SimulatedProvider(CONFIG)
    table = sim.daily_bars_table("2022-03-01", "2022-03-31")
    frame = sim.daily_bars("2022-03-01", "2022-03-31")
    assert table.num_rows == len(frame) and str(table.schema.field("date").type) == "date32[day]"
    assert table.column("symbol").to_pylist() == frame["symbol"].astype(str).tolist()
