"""Hand-worked adjustment cases; every expected number is worked out in the comment beside it."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from kobe_pipelines import market_calendar
from kobe_pipelines.data import adjustments
from kobe_pipelines.data.adjustments import apply_factors, compute_factors
from kobe_pipelines.data.validation import DividendFactorError
from kobe_pipelines.errors import ConfigError

from .conftest import dividends_frame, splits_frame

JAN = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
NO_SPLITS = splits_frame([])
NO_DIVIDENDS = dividends_frame([])


def _closes(frame: pd.DataFrame, symbol: str = "AAA") -> list[float]:
    return frame.loc[frame["symbol"] == symbol, "close"].tolist()


def _volumes(frame: pd.DataFrame, symbol: str = "AAA") -> list[float]:
    return frame.loc[frame["symbol"] == symbol, "volume"].tolist()


def test_apply_factors_when_four_for_one_split_then_earlier_prices_quarter_and_volume_quadruples(make_bars):
    # split_from=1, split_to=4 executing 2024-01-04: earlier prices x 1/4, earlier volume x 4.
    # closes 100, 104 -> 25, 26; volume 1000 -> 4000
    bars = make_bars("AAA", JAN, [100.0, 104.0, 26.0, 27.0], [1000.0, 1000.0, 4000.0, 4000.0])
    factors, _ = compute_factors(bars, splits_frame([("AAA", "2024-01-04", 1.0, 4.0)]), NO_DIVIDENDS)
    for view in ("split", "total"):
        adjusted = apply_factors(bars, factors, view)
        assert _closes(adjusted) == pytest.approx([25.0, 26.0, 26.0, 27.0], rel=1e-15)
        assert _volumes(adjusted) == pytest.approx([4000.0] * 4, rel=1e-15)


def test_apply_factors_when_reverse_one_for_ten_split_then_earlier_prices_times_ten_and_volume_tenth(make_bars):
    # split_from=10, split_to=1: earlier prices x 10 (1.0, 1.1 -> 10, 11), volume x 1/10 (5000 -> 500)
    bars = make_bars("AAA", JAN, [1.0, 1.1, 11.5, 12.0], [5000.0, 5000.0, 500.0, 500.0])
    factors, events = compute_factors(bars, splits_frame([("AAA", "2024-01-04", 10.0, 1.0)]), NO_DIVIDENDS)
    adjusted = apply_factors(bars, factors, "split")
    assert _closes(adjusted) == pytest.approx([10.0, 11.0, 11.5, 12.0], rel=1e-15)
    assert _volumes(adjusted) == pytest.approx([500.0] * 4, rel=1e-15)
    assert events["event_factor"].tolist() == [10.0]


@pytest.mark.parametrize(
    ("convention", "expected_total"),
    [
        # crsp: q = 1 - D / (close_prev * s) = 1 - 1 / (100 * 1/2) = 0.98; earlier factor 0.5 * 0.98 = 0.49
        #   closes 98, 100 -> 48.02, 49.0; ex-date return 48 / 49 = close_ex / (close_prev * s - D)
        ("crsp", [48.02, 49.0, 48.0, 49.0]),
        # quandl: q = close_ex / (close_ex + D) = 48 / 49; earlier factor 0.5 * 48/49 = 24/49
        #   closes 98, 100 -> 48.0, 2400/49 = 48.979591836734...; ex-date return 49/50 = (48 + 1) / 50
        ("quandl", [48.0, 2400.0 / 49.0, 48.0, 49.0]),
    ],
)
def test_compute_factors_when_split_and_dividend_share_a_day_then_they_compose(make_bars, convention, expected_total):
    # 2-for-1 split and a $1 dividend (post-split units) both on 2024-01-04
    bars = make_bars("AAA", JAN, [98.0, 100.0, 48.0, 49.0])
    splits = splits_frame([("AAA", "2024-01-04", 1.0, 2.0)])
    dividends = dividends_frame([("AAA", "2024-01-04", 1.0)])
    factors, events = compute_factors(bars, splits, dividends, convention=convention)
    assert _closes(apply_factors(bars, factors, "total")) == pytest.approx(expected_total, rel=1e-13)
    # the split-adjusted view ignores the dividend: 98, 100 -> 49, 50
    assert _closes(apply_factors(bars, factors, "split")) == pytest.approx([49.0, 50.0, 48.0, 49.0], rel=1e-15)
    assert events["kind"].tolist() == ["dividend", "split"]
    assert len(factors) == 2  # [1900-01-01, 2024-01-04) and [2024-01-04, open)


def test_compute_factors_when_two_dividends_share_an_ex_date_then_amounts_add_up(make_bars):
    # regular 0.5 + special 2.0 = 2.5 on 2024-01-04; crsp q = 1 - 2.5/50 = 0.95
    # closes 49, 50 -> 46.55, 47.5
    bars = make_bars("AAA", JAN, [49.0, 50.0, 47.5, 48.0])
    dividends = dividends_frame([("AAA", "2024-01-04", 0.5), ("AAA", "2024-01-04", 2.0)])
    factors, events = compute_factors(bars, NO_SPLITS, dividends)
    assert _closes(apply_factors(bars, factors, "total")) == pytest.approx([46.55, 47.5, 47.5, 48.0], rel=1e-14)
    assert events[["kind", "cash_amount"]].values.tolist() == [["dividend", 2.5]]


def test_compute_factors_when_three_dividends_share_an_ex_date_then_amounts_add_up(make_bars):
    # 0.5 + 1.0 + 1.0 = 2.5 on 2024-01-04 (more than two amounts on a session take the grouped
    # sum): crsp q = 1 - 2.5/50 = 0.95; closes 49, 50 -> 46.55, 47.5
    bars = make_bars("AAA", JAN, [49.0, 50.0, 47.5, 48.0])
    dividends = dividends_frame([("AAA", "2024-01-04", 1.0), ("AAA", "2024-01-04", 0.5), ("AAA", "2024-01-04", 1.0)])
    factors, events = compute_factors(bars, NO_SPLITS, dividends)
    assert _closes(apply_factors(bars, factors, "total")) == pytest.approx([46.55, 47.5, 47.5, 48.0], rel=1e-14)
    assert events[["kind", "cash_amount"]].values.tolist() == [["dividend", 2.5]]


def test_compute_factors_when_special_dividend_is_a_quarter_of_the_price_then_it_counts(make_bars):
    # $10 special on a $40 close: crsp q = 1 - 10/40 = 0.75; closes 40, 40 -> 30, 30
    bars = make_bars("AAA", JAN, [40.0, 40.0, 30.5, 31.0])
    factors, _ = compute_factors(bars, NO_SPLITS, dividends_frame([("AAA", "2024-01-04", 10.0)]))
    assert _closes(apply_factors(bars, factors, "total")) == pytest.approx([30.0, 30.0, 30.5, 31.0], rel=1e-15)


@pytest.mark.parametrize(
    ("ex_date", "session", "cash"),
    [
        # Independence Day 2024 (Thursday, a holiday): next session Friday 2024-07-05; previous close 40.0
        # (2024-07-03), D = 0.4 -> q = 1 - 0.4/40 = 0.99
        ("2024-07-04", "2024-07-05", 0.4),
        # Saturday 2024-07-06: next session Monday 2024-07-08; previous close 39.6 (2024-07-05),
        # D = 0.396 -> q = 1 - 0.396/39.6 = 0.99
        ("2024-07-06", "2024-07-08", 0.396),
    ],
)
def test_compute_factors_when_ex_date_is_not_a_session_then_it_maps_to_the_next_session(make_bars, ex_date, session, cash):
    days = ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08", "2024-07-09"]
    closes = [40.0, 41.0, 40.0, 39.6, 40.0, 40.5]
    bars = make_bars("AAA", days, closes)
    factors, events = compute_factors(bars, NO_SPLITS, dividends_frame([("AAA", ex_date, cash)]))
    assert events["event_date"].tolist() == [pd.Timestamp(session)]
    assert events["event_factor"].iloc[0] == pytest.approx(0.99, rel=1e-14)
    before = [pd.Timestamp(d) < pd.Timestamp(session) for d in days]
    expected = [c * 0.99 if b else c for c, b in zip(closes, before)]
    assert _closes(apply_factors(bars, factors, "total")) == pytest.approx(expected, rel=1e-14)


def test_effective_sessions_when_given_any_day_then_equals_next_session_on_or_after():
    days = pd.date_range("2023-12-20", "2024-01-20", freq="D")
    expected = [market_calendar.next_session_on_or_after(d) for d in days]
    assert list(pd.DatetimeIndex(adjustments.effective_sessions(days))) == expected


def test_apply_factors_when_only_dividends_then_volume_is_unchanged(make_bars):
    bars = make_bars("AAA", JAN, [49.0, 50.0, 47.5, 48.0], [100.0, 200.0, 300.0, 400.0])
    factors, _ = compute_factors(bars, NO_SPLITS, dividends_frame([("AAA", "2024-01-04", 2.5)]))
    assert _volumes(apply_factors(bars, factors, "total")) == [100.0, 200.0, 300.0, 400.0]


def test_apply_factors_when_several_events_then_latest_bar_keeps_factor_one_in_every_view(make_bars):
    bars = make_bars("AAA", JAN, [100.0, 50.0, 49.0, 48.0])
    splits = splits_frame([("AAA", "2024-01-03", 1.0, 2.0)])
    dividends = dividends_frame([("AAA", "2024-01-04", 1.0), ("AAA", "2024-01-05", 0.5)])
    factors, _ = compute_factors(bars, splits, dividends)
    for view in ("raw", "split", "total"):
        last = apply_factors(bars, factors, view).iloc[-1]
        assert (last["close"], last["volume"]) == (48.0, 1000.0)
    latest = factors.iloc[-1]
    assert pd.isna(latest["valid_to"]) and latest["valid_from"] == pd.Timestamp("2024-01-05")
    assert (latest["split_factor"], latest["price_factor"], latest["volume_factor"]) == (1.0, 1.0, 1.0)


def test_compute_factors_when_events_fall_on_first_bar_or_after_last_bar_then_they_are_not_applied(make_bars):
    # a dividend on the first bar has nothing earlier to adjust; a split after the last bar waits for its bar
    bars = make_bars("AAA", JAN, [10.0, 11.0, 12.0, 13.0])
    factors, events = compute_factors(
        bars, splits_frame([("AAA", "2024-01-08", 1.0, 2.0)]), dividends_frame([("AAA", "2024-01-02", 0.1)])
    )
    assert factors.empty and events.empty
    assert _closes(apply_factors(bars, factors, "total")) == [10.0, 11.0, 12.0, 13.0]


@pytest.mark.parametrize("convention", ["crsp", "quandl"])
def test_compute_factors_when_dividend_is_at_least_previous_close_then_names_the_record(make_bars, convention):
    # 4-for-1 split with a $30 dividend on 2024-01-04: the previous close 100 is 25 in post-split
    # units, so D = 30 >= 25 (an amount given in a pre-split basis); crsp q = 1 - 30/25 = -0.2
    bars = make_bars("AAA", JAN, [100.0, 100.0, 25.0, 25.0])
    with pytest.raises(DividendFactorError) as info:
        compute_factors(
            bars, splits_frame([("AAA", "2024-01-04", 1.0, 4.0)]), dividends_frame([("AAA", "2024-01-04", 30.0)]), convention
        )
    assert (info.value.kind, info.value.record, info.value.field, info.value.value) == (
        "dividend", "AAA 2024-01-04", "cash_amount", 30.0
    )
    assert "outside (0, 1)" in str(info.value)


def test_compute_factors_when_dividend_equals_previous_close_then_raises(make_bars):
    # crsp q = 1 - 100/100 = 0: not a usable factor
    bars = make_bars("AAA", JAN, [100.0, 100.0, 1.0, 1.0])
    with pytest.raises(DividendFactorError, match="AAA 2024-01-04"):
        compute_factors(bars, NO_SPLITS, dividends_frame([("AAA", "2024-01-04", 100.0)]))


def test_compute_factors_when_called_then_factor_table_has_the_documented_columns_and_intervals(make_bars):
    # AAA: split 2024-01-03 (s = 1/2), dividend 2024-01-05 (q = 1 - 0.48/48 = 0.99); BBB: no events
    bars = pd.concat(
        [make_bars("AAA", JAN, [100.0, 50.0, 49.0, 48.0]), make_bars("BBB", JAN, [5.0, 5.0, 5.0, 5.0])], ignore_index=True
    )
    factors, events = compute_factors(
        bars, splits_frame([("AAA", "2024-01-03", 1.0, 2.0)]), dividends_frame([("AAA", "2024-01-05", 0.49)])
    )
    assert tuple(factors.columns) == adjustments.FACTOR_COLUMNS
    assert tuple(events.columns) == adjustments.EVENT_COLUMNS
    assert str(factors["valid_from"].dtype) == str(factors["valid_to"].dtype) == "datetime64[ns]"
    assert all(str(factors[c].dtype) == "float64" for c in ("split_factor", "price_factor", "volume_factor"))
    # intervals: [1900-01-01, 01-03) x 0.5*0.99; [01-03, 01-05) x 0.99; [01-05, open) x 1
    assert factors["valid_from"].tolist() == [pd.Timestamp(d) for d in ("1900-01-01", "2024-01-03", "2024-01-05")]
    assert factors["valid_to"].tolist()[:2] == [pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-05")]
    assert pd.isna(factors["valid_to"].iloc[2])
    np.testing.assert_allclose(factors["price_factor"], [0.495, 0.99, 1.0], rtol=1e-15)
    np.testing.assert_allclose(factors["split_factor"], [0.5, 1.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(factors["volume_factor"], [2.0, 1.0, 1.0], rtol=1e-15)
    assert set(factors["symbol"]) == {"AAA"}


def test_apply_factors_when_bars_are_shuffled_then_rows_index_and_extra_columns_are_kept_and_input_untouched(make_bars):
    bars = make_bars("AAA", JAN, [100.0, 104.0, 26.0, 27.0])
    bars["note"] = ["a", "b", "c", "d"]
    factors, _ = compute_factors(bars, splits_frame([("AAA", "2024-01-04", 1.0, 4.0)]), NO_DIVIDENDS)
    shuffled = bars.iloc[[2, 0, 3, 1]]
    before = shuffled.copy()
    adjusted = apply_factors(shuffled, factors, "total")
    assert adjusted.index.tolist() == [2, 0, 3, 1] and adjusted["note"].tolist() == ["c", "a", "d", "b"]
    assert adjusted["close"].tolist() == pytest.approx([26.0, 25.0, 27.0, 26.0], rel=1e-15)
    pd.testing.assert_frame_equal(shuffled, before)  # raw bars are never modified


def test_apply_factors_when_read_through_a_duckdb_asof_join_then_matches_the_pandas_result(make_bars):
    # the lake's views join `b.date >= f.valid_from` as-of, and honour valid_to
    bars = pd.concat(
        [make_bars("AAA", JAN, [100.0, 50.0, 49.0, 48.0]), make_bars("BBB", JAN, [5.0, 5.1, 5.2, 5.3])], ignore_index=True
    )
    factors, _ = compute_factors(
        bars, splits_frame([("AAA", "2024-01-03", 1.0, 2.0)]), dividends_frame([("AAA", "2024-01-05", 0.49)])
    )
    with duckdb.connect() as con:
        con.register("b", bars)
        con.register("f", factors)
        via_sql = con.execute(
            "SELECT b.symbol, b.date, b.close * coalesce(CASE WHEN f.valid_to IS NULL OR b.date < f.valid_to "
            "THEN f.price_factor END, 1.0) AS close FROM b ASOF LEFT JOIN f ON b.symbol = f.symbol AND b.date >= f.valid_from "
            "ORDER BY b.symbol, b.date"
        ).df()
    np.testing.assert_allclose(via_sql["close"], apply_factors(bars, factors, "total")["close"], rtol=1e-15)


def test_compute_factors_when_convention_is_unknown_then_raises_config_error(make_bars):
    with pytest.raises(ConfigError, match="dividend_convention"):
        compute_factors(make_bars("AAA", JAN, [1.0] * 4), NO_SPLITS, NO_DIVIDENDS, convention="yahoo")


def test_apply_factors_when_view_is_unknown_then_raises(make_bars):
    with pytest.raises(ValueError, match="view"):
        apply_factors(make_bars("AAA", JAN, [1.0] * 4), adjustments.empty_factors(), "adjusted")


def test_compute_factors_when_no_actions_then_returns_empty_tables_with_the_documented_columns(make_bars):
    factors, events = compute_factors(make_bars("AAA", JAN, [1.0] * 4), NO_SPLITS, NO_DIVIDENDS)
    assert tuple(factors.columns) == adjustments.FACTOR_COLUMNS and factors.empty
    assert tuple(events.columns) == adjustments.EVENT_COLUMNS and events.empty
