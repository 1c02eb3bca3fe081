"""The simulator's oracle score: the exact h-session expectation under its own equations,
checked against a Monte Carlo of those equations written out here, and a closed form for h = 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.data.providers import simulated
from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
from kobe_pipelines.data.providers.simulated_oracle import response_sums

CONFIG = SimConfig(seed=5, n_symbols=12, start="2020-01-02", end="2020-12-31", signal_strength=0.05)


@pytest.fixture(scope="module")
def sim() -> SimulatedProvider:
    return SimulatedProvider(CONFIG)


def _state(sim: SimulatedProvider, symbol: str, date: str) -> tuple[np.ndarray, pd.Series]:
    """The last five true returns up to `date` (oldest first; 0 before the first session) and the symbol's parameters."""
    rets = sim.true_returns(CONFIG.start, date)
    rets = rets.loc[rets["symbol"] == symbol, "log_return"].to_numpy()
    window = np.concatenate([np.zeros(5), rets])[-5:]
    params = sim.symbol_parameters().set_index("symbol").loc[symbol]
    return window, params


def _monte_carlo(window: np.ndarray, params: pd.Series, strength: float, horizon: int, paths: int, seed: int):
    """Mean and standard error of exp(r_{t+1} + ... + r_{t+h}) - 1, stepping the simulator's equation
    r = mu + beta * m + sigma * e - s * (sum of the last five r) with m ~ N(drift, vol^2), e ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    last = np.tile(window, (paths, 1))
    total = np.zeros(paths)
    for _ in range(horizon):
        m = rng.normal(simulated.MARKET_DRIFT, simulated.MARKET_VOL, paths)
        e = rng.standard_normal(paths)
        r = params["mu"] + params["beta"] * m + params["sigma"] * e - strength * last.sum(axis=1)
        total += r
        last = np.column_stack([last[:, 1:], r])
    gross = np.expm1(total)
    return gross.mean(), gross.std(ddof=1) / np.sqrt(paths)


@pytest.mark.parametrize(("symbol", "date", "horizon"), [
    ("K0000", "2020-03-16", 5),  # after a large fall: a strong mean-reversion forecast
    ("K0004", "2020-06-10", 5),
    ("K0007", "2020-09-01", 10),
    ("K0003", "2020-11-20", 3),
])
def test_oracle_score_when_compared_with_a_monte_carlo_of_the_equations_then_within_four_standard_errors(sim, symbol, date, horizon):
    window, params = _state(sim, symbol, date)
    oracle = sim.oracle_score(horizon, date, date).set_index("symbol").loc[symbol, "score"]
    mean, se = _monte_carlo(window, params, CONFIG.signal_strength, horizon, paths=400_000, seed=11)
    assert abs(oracle - mean) < 4 * se, (oracle, mean, se)
    # the test can tell the exact value from the nearest wrong one: the mean log return alone (no variance term)
    no_variance = np.log1p(oracle) - (params["beta"] ** 2 * simulated.MARKET_VOL ** 2 + params["sigma"] ** 2) / 2 * np.sum(
        response_sums(CONFIG.signal_strength, horizon) ** 2)
    assert abs(np.expm1(no_variance) - mean) > 4 * se


def test_oracle_score_when_horizon_is_one_then_closed_form_of_the_planted_signal(sim):
    # E[exp(r_{t+1})] - 1 = exp(mu + beta * drift + s * signal_t + (beta^2 vol^2 + sigma^2) / 2) - 1
    params = sim.symbol_parameters()
    planted = sim.planted_signal(CONFIG.start, CONFIG.end).merge(params, on="symbol")
    expected = np.expm1(planted["mu"] + planted["beta"] * simulated.MARKET_DRIFT + CONFIG.signal_strength * planted["score"]
                        + (planted["beta"] ** 2 * simulated.MARKET_VOL ** 2 + planted["sigma"] ** 2) / 2)
    oracle = sim.oracle_score(1)
    assert oracle[["symbol", "date"]].equals(planted[["symbol", "date"]])
    np.testing.assert_allclose(oracle["score"], expected, rtol=1e-12, atol=1e-15)


def test_response_sums_when_strength_known_then_hand_values():
    # psi: 1, -s, -s(1 - s) = -s + s^2; Psi: 1, 1 - s, 1 - 2s + s^2
    s = 0.1
    np.testing.assert_allclose(response_sums(s, 3), [1.0, 0.9, 0.81])
    np.testing.assert_allclose(response_sums(0.0, 4), [1.0, 1.0, 1.0, 1.0])


def test_true_returns_when_compared_with_the_raw_bars_then_equal_to_the_total_return_within_tick_rounding(sim):
    # (close_t + D_t) * split_to / split_from / close_{t-1} = exp(r_t), up to the rounding of both closes to the tick
    bars = sim.daily_bars(CONFIG.start, CONFIG.end).loc[:, ["symbol", "date", "close"]]
    divs = sim.dividends(CONFIG.start, CONFIG.end)
    divs = divs.assign(date=divs["ex_dividend_date"].map(lambda d: d if d.dayofweek < 5 else d + pd.offsets.BDay(1)))
    splits = sim.splits(CONFIG.start, CONFIG.end).rename(columns={"execution_date": "date"})
    frame = (bars.merge(sim.true_returns(CONFIG.start, CONFIG.end), on=["symbol", "date"])
             .merge(divs[["symbol", "date", "cash_amount"]], on=["symbol", "date"], how="left")
             .merge(splits[["symbol", "date", "split_from", "split_to"]], on=["symbol", "date"], how="left")
             .fillna({"cash_amount": 0.0, "split_from": 1.0, "split_to": 1.0}))
    frame["prev"] = frame.groupby("symbol")["close"].shift()
    frame = frame.loc[frame["prev"].notna() & (frame["log_return"] != 0)]
    gross = (frame["close"] + frame["cash_amount"]) * frame["split_to"] / frame["split_from"] / frame["prev"]
    tick = np.where(frame["close"] >= 1, 0.005, 0.00005) / frame["close"] + np.where(frame["prev"] >= 1, 0.005, 0.00005) / frame["prev"]
    assert len(frame) > 2000 and (splits["symbol"].isin(frame["symbol"])).any()
    assert (np.abs(gross / np.exp(frame["log_return"]) - 1) <= tick * 1.01 + 1e-12).all()
