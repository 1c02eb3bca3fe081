from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.backtest import stats


def _equity(values: list[float], start: str = "2024-01-02", positions: list[float] | None = None) -> pd.DataFrame:
    days = pd.bdate_range(start, periods=len(values))
    return pd.DataFrame({"date": days, "equity": values, "cash": values,
                         "positions_value": positions if positions is not None else [0.0] * len(values),
                         "drawdown": stats.drawdown(pd.Series(values)).to_numpy(), "heat": 0.0})


def _fills(rows: list[tuple[str, float, float, float, float | None]]) -> pd.DataFrame:
    """(session, qty, price, cost_usd, realized_pnl); the slippage against the order's price is -2 x the cost."""
    return pd.DataFrame([{"session": s, "symbol": "AAA", "side": "buy", "qty": q, "price": p, "cost_usd": c,
                          "slippage_usd": -2 * c, "slippage_bps": 1.0, "realized_pnl": r} for s, q, p, c, r in rows])


def test_sharpe_estimate_when_four_returns_then_mertens_standard_error_by_hand():
    # r = 1%, -1%, 2%, 0%: mean 0.005; deviations .005 -.015 .015 -.005; sum of squares 5e-4;
    # sd (ddof 1) = sqrt(5e-4 / 3) = 0.0129099; SR = 0.387298. m2 = 1.25e-4; m3 = 0 (skew 0);
    # m4 = 2.5625e-8 -> kurtosis 2.5625e-8 / 1.5625e-8 = 1.64.
    # var = (1 + SR^2/2 + (1.64 - 3)/4 x SR^2) / 4 = (1 + 0.075 - 0.051) / 4 = 0.256.
    est = stats.sharpe_estimate(pd.Series([0.01, -0.01, 0.02, 0.0]))
    assert est.sharpe == pytest.approx(0.387298335 * math.sqrt(252))
    assert est.se == pytest.approx(math.sqrt(0.256) * math.sqrt(252))
    assert est.n == 4


def test_sharpe_estimate_when_many_skewed_samples_then_se_matches_the_spread_of_the_estimates():
    # 3,000 samples of 250 skewed daily returns (a shifted exponential): the standard deviation of
    # their Sharpe estimates is the standard error the formula gives (within 6 %); Lo's normal
    # formula would be off, since the skewness enters.
    rng = np.random.default_rng(3)
    draws = rng.exponential(0.01, (3000, 250)) - 0.009
    estimates = [stats.sharpe_estimate(pd.Series(row)) for row in draws]
    spread = np.std([e.sharpe for e in estimates], ddof=1)
    mean_se = np.mean([e.se for e in estimates])
    assert mean_se == pytest.approx(spread, rel=0.06)
    daily = np.array([e.sharpe for e in estimates]) / math.sqrt(252)
    lo = np.mean(np.sqrt((1 + daily**2 / 2) / 250)) * math.sqrt(252)
    assert lo != pytest.approx(spread, rel=0.06)


def test_daily_returns_when_starting_equity_given_then_first_return_against_it():
    frame = _equity([101.0, 99.99])
    assert stats.daily_returns(frame, 100.0).tolist() == pytest.approx([0.01, -0.01])
    assert stats.daily_returns(frame).tolist() == pytest.approx([-0.01])


def test_drawdown_when_peak_then_fall_then_fraction_of_the_running_peak():
    assert stats.drawdown(pd.Series([100.0, 120.0, 90.0, 130.0])).tolist() == pytest.approx([0.0, 0.0, 0.25, 0.0])


def test_monthly_returns_when_two_months_then_each_from_the_previous_month_end():
    # start 100; January ends at 110 (+10 %), February at 99 (-10 %).
    days = pd.to_datetime(["2024-01-30", "2024-01-31", "2024-02-01", "2024-02-29"])
    frame = pd.DataFrame({"date": days, "equity": [105.0, 110.0, 120.0, 99.0]})
    table = stats.monthly_returns(frame, 100.0)
    assert table.loc[2024, 1] == pytest.approx(0.10) and table.loc[2024, 2] == pytest.approx(-0.10)
    assert table.loc[2024, 3:].isna().all()


def test_hit_rate_when_three_closing_fills_then_share_with_positive_pnl():
    fills = _fills([("2024-01-02", 10, 10.0, 0.1, None), ("2024-01-03", 10, 11.0, 0.1, 10.0),
                    ("2024-01-04", 5, 9.0, 0.1, -5.0), ("2024-01-05", 5, 12.0, 0.1, 10.0)])
    assert stats.hit_rate(fills) == (pytest.approx(2 / 3), 3)


def test_summarize_when_known_curve_then_headline_figures_by_hand():
    # start 1,000; equity 1,010, 990, 1,020 (peak 1,010 then 990: drawdown 1.98 %); fills: 100 shares
    # at 10 (cost 2 USD) on day 1 and 100 at 10.2 (cost 1 USD, realized +18) on day 3.
    frame = _equity([1010.0, 990.0, 1020.0], positions=[1000.0, 980.0, 0.0])
    fills = _fills([("2024-01-02", 100, 10.0, 2.0, None), ("2024-01-04", 100, 10.2, 1.0, 18.0)])
    s = stats.summarize(frame, fills, starting_equity=1000.0, halts=1)
    assert (s.start, s.end, s.sessions) == ("2024-01-02", "2024-01-04", 3)
    assert s.total_return == pytest.approx(0.02)
    assert s.max_drawdown == pytest.approx(20 / 1010) and s.max_drawdown_date == "2024-01-03"
    assert s.mean_exposure == pytest.approx((1000 / 1010 + 980 / 990 + 0) / 3)
    # traded 1,000 + 1,020 = 2,020; / 2 / mean equity 1,006.67 / (3 / 252 years)
    assert s.annual_turnover == pytest.approx(2020 / 2 / (3020 / 3) / (3 / 252))
    assert (s.costs_usd, s.closed_trades, s.hit_rate, s.halts) == (3.0, 1, 1.0, 1)
    assert s.costs_bps_of_traded == pytest.approx(3 / 2020 * 10_000) and s.slippage_usd == -6.0
    # before costs the curve is 1,012, 992, 1,023: a higher Sharpe than net
    assert s.sharpe_gross > s.sharpe


def test_gross_equity_when_costs_on_two_sessions_then_added_back_cumulatively():
    frame = _equity([1000.0, 1000.0, 1000.0])
    fills = _fills([("2024-01-02", 1, 1.0, 2.0, None), ("2024-01-04", 1, 1.0, 3.0, None)])
    assert stats.gross_equity(frame, fills).tolist() == [1002.0, 1002.0, 1005.0]


def test_rejection_counts_when_reasons_list_several_checks_then_each_counted_most_frequent_first():
    orders = pd.DataFrame({"approved": [False, False, True, False],
                           "reason": ["heat: 12% (cap 10%); order_notional: 273,042 USD (max 250,000)",
                                      "order_notional: 260,000 USD (max 250,000)", "", "heat: 11% (cap 10%)"]})
    counts = stats.rejection_counts(orders)
    assert counts.to_dict() == {"heat": 2, "order_notional": 2}
    summary = stats.summarize(_equity([1000.0, 1001.0]), _fills([]), starting_equity=1000.0, orders=orders)
    assert (summary.orders_judged, summary.orders_rejected) == (4, 3) and "heat 2" in summary.rejections
