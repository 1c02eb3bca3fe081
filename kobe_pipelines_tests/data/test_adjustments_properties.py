"""Property tests of the adjusted views on random raw markets (hypothesis).

Let s_t be the product of split_from/split_to of the splits whose effective session is t (1 if
none) and D_t the sum of cash dividends going ex at t (0 if none), in session-t share units.
From the definitions (earlier prices x s for a split, x q for a dividend; volume x 1/s):

- split-adjusted view:  adj_t / adj_{t-1} = close_t / (close_{t-1} * s_t)
  i.e. the raw return times split_to/split_from: the price path has no jump at a split;
- total-return view, `crsp` (q = 1 - D / (close_{t-1} s_t)):
      adj_t / adj_{t-1} = close_t / (close_{t-1} * s_t - D_t)
  (the ex-date close over the previous close in ex-date units less the dividend);
- total-return view, `quandl` (q = close_t / (close_t + D)):
      adj_t / adj_{t-1} = (close_t + D_t) / (close_{t-1} * s_t), the total return;
- volume, both views: vol_t * s_t / vol_{t-1};
- on every other session the adjusted return equals the raw return, and the latest bar equals raw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kobe_pipelines import market_calendar
from kobe_pipelines.data import validation
from kobe_pipelines.data.adjustments import apply_factors, compute_factors

from .conftest import dividends_frame, splits_frame

SESSIONS = market_calendar.sessions("2015-01-02", "2019-12-31")
RATIOS = [(1.0, 2.0), (1.0, 3.0), (1.0, 4.0), (2.0, 3.0), (3.0, 2.0), (1.0, 7.0), (1.0, 10.0), (10.0, 1.0)]
REL = 1e-9


@st.composite
def markets(draw):
    """(bars, splits, dividends, per-symbol {session: (s, D)}) for 1-3 symbols, rows shuffled."""
    bars, split_rows, div_rows, truth = [], [], [], {}
    first = draw(st.integers(0, len(SESSIONS) - 60))
    for k in range(draw(st.integers(1, 3))):
        symbol = f"S{k}"
        n = draw(st.integers(3, 30))
        days = SESSIONS[first + k : first + k + n]
        closes = draw(st.lists(st.floats(0.5, 2000.0), min_size=n, max_size=n))
        volumes = draw(st.lists(st.integers(1, 10_000_000), min_size=n, max_size=n))
        bars.append(pd.DataFrame({"symbol": symbol, "date": days, "open": closes, "high": closes, "low": closes,
                                  "close": closes, "volume": np.array(volumes, dtype=float)}))
        # events on any calendar day after the first bar and up to the last: weekends and
        # holidays included, they take effect on the next session
        calendar_days = pd.date_range(days[0] + pd.Timedelta(days=1), days[-1], freq="D")
        events: dict[pd.Timestamp, list[float]] = {}
        for day in draw(st.lists(st.sampled_from(list(calendar_days)), max_size=3, unique=True)):
            split_from, split_to = draw(st.sampled_from(RATIOS))
            split_rows.append((symbol, str(day.date()), split_from, split_to))
            session = market_calendar.next_session_on_or_after(day)
            events.setdefault(session, [1.0, 0.0])[0] *= split_from / split_to
        for day in draw(st.lists(st.sampled_from(list(calendar_days)), max_size=4, unique=True)):
            session = market_calendar.next_session_on_or_after(day)
            if events.get(session, [1.0, 0.0])[1] > 0:
                continue  # one dividend per session here; summed amounts have their own hand-worked test
            fraction = draw(st.floats(0.001, 0.9))
            s = events.get(session, [1.0, 0.0])[0]
            close_prev = closes[days.get_loc(session) - 1]
            cash = fraction * close_prev * s  # below the previous close in ex-date units
            div_rows.append((symbol, str(day.date()), cash))
            events.setdefault(session, [1.0, 0.0])[1] = cash
        truth[symbol] = events
    frame = pd.concat(bars, ignore_index=True)
    frame = frame.sample(frac=1.0, random_state=draw(st.integers(0, 2**31))).reset_index(drop=True)
    return frame, splits_frame(split_rows), dividends_frame(div_rows), truth


def _check_returns(raw: pd.DataFrame, adjusted: pd.DataFrame, truth: dict, expected_ratio) -> None:
    for symbol, events in truth.items():
        r = raw.loc[raw["symbol"] == symbol].sort_values("date")
        a = adjusted.loc[r.index]
        close, adj, vol, adj_vol = (x.to_numpy() for x in (r["close"], a["close"], r["volume"], a["volume"]))
        sessions = list(r["date"])[1:]
        is_event = np.array([d in events for d in sessions], dtype=bool)
        s = np.array([events.get(d, (1.0, 0.0))[0] for d in sessions])
        cash = np.array([events.get(d, (1.0, 0.0))[1] for d in sessions])
        got, got_vol = adj[1:] / adj[:-1], adj_vol[1:] / adj_vol[:-1]
        want = np.where(is_event, expected_ratio(close[:-1], close[1:], s, cash), close[1:] / close[:-1])
        want_vol = np.where(is_event, vol[1:] * s / vol[:-1], vol[1:] / vol[:-1])
        np.testing.assert_allclose(got, want, rtol=REL, atol=0, err_msg=f"{symbol} close-to-close returns")
        np.testing.assert_allclose(got_vol, want_vol, rtol=REL, atol=0, err_msg=f"{symbol} volume ratios")
        # elsewhere the adjusted return is the raw return (the branch above, spelled out)
        np.testing.assert_allclose(got[~is_event], (close[1:] / close[:-1])[~is_event], rtol=REL, atol=0)
        assert (adj[-1], adj_vol[-1]) == (close[-1], vol[-1])  # the latest bar has factor 1


def _factors(bars, splits, dividends, convention):
    known = set(bars["symbol"])
    return compute_factors(
        bars, validation.validate_splits(splits, known), validation.validate_dividends(dividends, known), convention
    ).factors


COMMON = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@COMMON
@given(markets())
def test_total_view_when_crsp_then_ex_date_return_is_close_over_previous_close_less_dividend(market):
    bars, splits, dividends, truth = market
    adjusted = apply_factors(bars, _factors(bars, splits, dividends, "crsp"), "total")
    _check_returns(bars, adjusted, truth, lambda prev, close, s, cash: close / (prev * s - cash))


@COMMON
@given(markets())
def test_total_view_when_quandl_then_ex_date_return_is_the_total_return(market):
    bars, splits, dividends, truth = market
    adjusted = apply_factors(bars, _factors(bars, splits, dividends, "quandl"), "total")
    _check_returns(bars, adjusted, truth, lambda prev, close, s, cash: (close + cash) / (prev * s))


@COMMON
@given(markets())
def test_split_view_when_splits_execute_then_no_jump_and_dividends_ignored(market):
    bars, splits, dividends, truth = market
    adjusted = apply_factors(bars, _factors(bars, splits, dividends, "crsp"), "split")
    _check_returns(bars, adjusted, truth, lambda prev, close, s, cash: close / (prev * s))
