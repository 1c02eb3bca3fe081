"""Adjustment against real data: Quandl WIKI 2014 bars with the vendor's own adjusted columns.

The vendor's adjusted *levels* depend on its snapshot date (later dividends scale them), so the
checks compare ratios to each symbol's last row, as kobe_pipelines_tests/testdata/quandl_wiki_2014/README.md advises.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.data import adjustments, validation

# From the README's table of the 9 verified events: (symbol, date, D, raw close before the ex-date).
# CRSP factor = 1 - D / close_prev, worked out by hand (rounded to 10 digits, as in the README):
#   AAPL 2014-02-06: 1 - 3.05/512.59 = 0.9940498254
#   AAPL 2014-05-08: 1 - 3.29/592.33 = 0.9944456637
#   AAPL 2014-08-07: 1 - 0.47/94.96  = 0.9950505476
#   AAPL 2014-11-06: 1 - 0.47/108.86 = 0.9956825280
#   MSFT 2014-02-18: 1 - 0.28/37.62  = 0.9925571505
#   MSFT 2014-05-13: 1 - 0.28/39.97  = 0.9929947461
#   MSFT 2014-08-19: 1 - 0.28/45.11  = 0.9937929506
#   MSFT 2014-11-18: 1 - 0.31/49.46  = 0.9937323089
CRSP_DIVIDEND_FACTORS = [
    ("AAPL", "2014-02-06", 0.9940498254),
    ("AAPL", "2014-05-08", 0.9944456637),
    ("AAPL", "2014-08-07", 0.9950505476),
    ("AAPL", "2014-11-06", 0.9956825280),
    ("MSFT", "2014-02-18", 0.9925571505),
    ("MSFT", "2014-05-13", 0.9929947461),
    ("MSFT", "2014-08-19", 0.9937929506),
    ("MSFT", "2014-11-18", 0.9937323089),
]
# The README's "vendor factor" column, close_t / (close_t + D), e.g. 512.51 / 515.56 = 0.9940841027.
QUANDL_DIVIDEND_FACTORS = [
    ("AAPL", "2014-02-06", 0.9940841027),
    ("AAPL", "2014-05-08", 0.9944358003),
    ("AAPL", "2014-08-07", 0.9950500263),
    ("AAPL", "2014-11-06", 0.9956947879),
    ("MSFT", "2014-02-18", 0.9925729443),
    ("MSFT", "2014-05-13", 0.9931203931),
    ("MSFT", "2014-08-19", 0.9938609954),
    ("MSFT", "2014-11-18", 0.9936799185),
]


def test_validate_bars_when_given_the_vendor_sample_then_every_bar_passes(refdata_inputs):
    bars, splits, dividends = refdata_inputs
    assert validation.validate_bars(bars, as_of=dt.date(2014, 12, 31)) is bars
    known = set(bars["symbol"])
    assert len(validation.validate_splits(splits, known)) == 1
    assert len(validation.validate_dividends(dividends, known)) == 8


@pytest.mark.parametrize("column", ["open", "high", "low", "close", "volume"])
def test_apply_factors_when_quandl_convention_then_ratios_to_last_row_match_vendor_within_1e9(refdata, refdata_inputs, column):
    bars, splits, dividends = refdata_inputs
    factors, _ = adjustments.compute_factors(bars, splits, dividends, convention="quandl")
    adjusted = adjustments.apply_factors(bars, factors, "total")
    for symbol in ("AAPL", "BRK_A", "MSFT", "ZEN"):
        ours = adjusted.loc[adjusted["symbol"] == symbol, column].to_numpy()
        vendor = refdata.loc[refdata["ticker"] == symbol, f"adj_{column}"].to_numpy()
        assert len(ours) == len(vendor) > 100
        np.testing.assert_allclose(ours / ours[-1], vendor / vendor[-1], rtol=1e-9, atol=0, err_msg=f"{symbol} {column}")


def test_compute_factors_when_quandl_convention_then_event_factors_equal_the_vendors(refdata_inputs):
    bars, splits, dividends = refdata_inputs
    _, events = adjustments.compute_factors(bars, splits, dividends, convention="quandl")
    divs = events.loc[events["kind"] == "dividend"]
    got = [(s, str(d.date()), f) for s, d, f in zip(divs["symbol"], divs["event_date"], divs["event_factor"])]
    assert [g[:2] for g in got] == [e[:2] for e in QUANDL_DIVIDEND_FACTORS]
    np.testing.assert_allclose([g[2] for g in got], [e[2] for e in QUANDL_DIVIDEND_FACTORS], rtol=1e-9)


def test_compute_factors_when_crsp_convention_then_each_dividend_factor_is_one_minus_d_over_previous_close(refdata_inputs):
    bars, splits, dividends = refdata_inputs
    _, events = adjustments.compute_factors(bars, splits, dividends, convention="crsp")
    divs = events.loc[events["kind"] == "dividend"]
    got = [(s, str(d.date()), f) for s, d, f in zip(divs["symbol"], divs["event_date"], divs["event_factor"])]
    assert [g[:2] for g in got] == [e[:2] for e in CRSP_DIVIDEND_FACTORS]
    # the README rounds to 10 digits: agreement to 1e-10 absolute
    np.testing.assert_allclose([g[2] for g in got], [e[2] for e in CRSP_DIVIDEND_FACTORS], rtol=0, atol=1e-10)


def test_compute_factors_when_crsp_convention_then_prices_before_an_ex_date_scale_by_its_factor(refdata_inputs):
    # AAPL's last dividend (2014-11-06, D = 0.47, close before = 108.86) is its last event, so the
    # 2014-11-05 close (108.86) is adjusted by that factor alone: 108.86 * (1 - 0.47/108.86) = 108.39.
    bars, splits, dividends = refdata_inputs
    factors, _ = adjustments.compute_factors(bars, splits, dividends, convention="crsp")
    adjusted = adjustments.apply_factors(bars, factors, "total")
    row = adjusted.loc[(adjusted["symbol"] == "AAPL") & (adjusted["date"] == pd.Timestamp("2014-11-05"))]
    assert row["close"].iloc[0] == pytest.approx(108.39, rel=1e-12)


def test_compute_factors_when_aapl_splits_seven_for_one_then_earlier_prices_divide_by_7_and_volume_multiplies_by_7(refdata_inputs):
    bars, splits, dividends = refdata_inputs
    factors, events = adjustments.compute_factors(bars, splits, dividends, convention="crsp")
    split = events.loc[events["kind"] == "split"].iloc[0]
    assert (split["symbol"], split["event_date"]) == ("AAPL", pd.Timestamp("2014-06-09"))
    assert split["event_factor"] == pytest.approx(1 / 7, rel=1e-15)
    assert split["event_volume_factor"] == pytest.approx(7.0, rel=1e-15)
    # split-adjusted view: the 2014-06-06 close 645.57 becomes 645.57 / 7 = 92.2242857...
    adjusted = adjustments.apply_factors(bars, factors, "split")
    row = adjusted.loc[(adjusted["symbol"] == "AAPL") & (adjusted["date"] == pd.Timestamp("2014-06-06"))].iloc[0]
    raw = bars.loc[(bars["symbol"] == "AAPL") & (bars["date"] == pd.Timestamp("2014-06-06"))].iloc[0]
    assert row["close"] == pytest.approx(645.57 / 7, rel=1e-12)
    assert row["volume"] == pytest.approx(raw["volume"] * 7, rel=1e-12)


def test_compute_factors_when_symbol_has_no_events_then_it_has_no_factor_rows(refdata_inputs):
    bars, splits, dividends = refdata_inputs
    factors, _ = adjustments.compute_factors(bars, splits, dividends, convention="crsp")
    assert set(factors["symbol"]) == {"AAPL", "MSFT"}  # BRK_A and ZEN: factor 1 everywhere
