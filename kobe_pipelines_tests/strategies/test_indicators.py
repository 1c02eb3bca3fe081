from __future__ import annotations

import math

import pandas as pd
import pytest

from kobe_pipelines.strategies.indicators import last_close_and_atr
from kobe_pipelines_tests.strategies.conftest import AAA, bar_frame


def test_last_close_and_atr_when_three_day_period_then_mean_of_hand_computed_true_ranges():
    # AAA closes 50.00, 50.60, 50.90, 51.237. True ranges (max of H-L, |H-prevC|, |L-prevC|):
    # 06-05: max(1.2, 1.0, 0.2) = 1.2; 06-06: max(1.2, 0.7, 0.5) = 1.2; 06-07: max(1.82, 1.12, 0.7) = 1.82.
    # ATR(3) = (1.2 + 1.2 + 1.82) / 3 = 1.406667
    out = last_close_and_atr(bar_frame({"AAA": AAA}), period=3)
    assert out.loc["AAA", "atr"] == pytest.approx(4.22 / 3, abs=1e-12)
    assert out.loc["AAA", "last_close"] == 51.237
    assert out.loc["AAA", "last_date"] == pd.Timestamp("2024-06-07")


def test_last_close_and_atr_when_gap_then_true_range_uses_previous_close():
    # Day 2 gaps up: H 15, L 14 over a previous close of 10 -> TR = max(1, 5, 4) = 5 (not H-L = 1).
    bars = bar_frame({"GAP": [(10.5, 9.5, 10.0), (15.0, 14.0, 14.5)]}, days=["2024-06-06", "2024-06-07"])
    assert last_close_and_atr(bars, period=1).loc["GAP", "atr"] == 5.0


def test_last_close_and_atr_when_fewer_than_period_plus_one_bars_then_atr_is_nan():
    # 4 bars give 3 true ranges: enough for ATR(3), not for ATR(4).
    bars = bar_frame({"AAA": AAA})
    assert math.isnan(last_close_and_atr(bars, period=4).loc["AAA", "atr"])


def test_last_close_and_atr_when_only_last_bars_matter_then_older_history_is_ignored():
    # ATR(1) on AAA = the last true range, 1.82, however long the history.
    assert last_close_and_atr(bar_frame({"AAA": AAA}), period=1).loc["AAA", "atr"] == pytest.approx(1.82, abs=1e-12)


def test_last_close_and_atr_when_bars_unsorted_then_sorts_by_date_first():
    bars = bar_frame({"AAA": AAA}).iloc[::-1]
    assert last_close_and_atr(bars, period=3).loc["AAA", "last_close"] == 51.237


def test_last_close_and_atr_when_a_price_is_nan_then_atr_is_nan():
    bars = bar_frame({"AAA": AAA})
    bars.loc[2, "high"] = float("nan")
    assert math.isnan(last_close_and_atr(bars, period=3).loc["AAA", "atr"])


def test_last_close_and_atr_when_period_zero_then_raises():
    with pytest.raises(ValueError, match="period"):
        last_close_and_atr(bar_frame({"AAA": AAA}), period=0)


def test_last_close_and_atr_when_two_symbols_in_date_order_then_each_gets_its_own_last_bars():
    # Rows in date order with the symbols interleaved (as the lake hands them): the same values as
    # each symbol alone; GAP has only its 2 bars, AAA its hand-computed ATR(1) of 1.82.
    gap = {"GAP": [(10.5, 9.5, 10.0), (15.0, 14.0, 14.5)]}
    both = pd.concat([bar_frame({"AAA": AAA}), bar_frame(gap, days=["2024-06-06", "2024-06-07"])])
    both = both.sort_values(["date", "symbol"], kind="mergesort")
    assert both["date"].is_monotonic_increasing and both["symbol"].iloc[-2:].tolist() == ["AAA", "GAP"]
    out = last_close_and_atr(both, period=1)
    assert out.loc["AAA", "atr"] == pytest.approx(1.82, abs=1e-12) and out.loc["GAP", "atr"] == 5.0
    assert list(out.index) == ["AAA", "GAP"] and out.loc["GAP", "last_close"] == 14.5
