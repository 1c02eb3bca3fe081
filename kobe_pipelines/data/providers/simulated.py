"""The embedded market: a deterministic simulated US-equities universe with RAW prices.

Raw prices really jump at splits and drop at ex-dates, as a vendor's unadjusted bars do:

    raw_close_t = raw_close_{t-1} * exp(r_t) * split_from/split_to - D_t

where `r_t` is the symbol's true total log return and `D_t` the cash dividend going ex that
session (USD per post-split share). The total return on an ex-date, (close_t + D_t) /
(close_{t-1} x split_from/split_to), is therefore exp(r_t) before rounding to the tick: exactly
what the `quandl` convention's adjusted series shows, and approximately the `crsp` one's.

A weak, known predictable component is planted in the true returns: short-term mean reversion,

    r_{t+1} = mu + beta * m_{t+1} + sigma * e_{t+1} - signal_strength * (r_t + ... + r_{t-4})

so the planted signal at t is -(sum of the last five log returns up to t); `signal_strength=0`
switches it off. `oracle_score(horizon)` is the exact expectation of the next `horizon` sessions'
simple total return under these equations (`simulated_oracle`), the yardstick of the models. Generation is prefix-stable: extending `end` only appends sessions, so a
nightly run sees yesterday's history unchanged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from kobe_pipelines import market_calendar
from kobe_pipelines.data import schema

FORWARD_SPLIT_RATIOS = (2, 3, 4, 5, 10)
QUARTER_SESSIONS = 63
MARKET_DRIFT, MARKET_VOL = 0.0003, 0.01  # the common market log return m_t ~ N(drift, vol^2), per session


@dataclass(frozen=True)
class SimConfig:
    """Settings of the simulated market. Every field is part of the generated data's identity.

    `start`/`end` are exchange dates (America/New_York); `end=None` means the last completed
    XNYS session at construction time. `signal_strength` is the mean-reversion coefficient
    (dimensionless, per day); 0 switches the planted component off.
    """

    seed: int = 7
    n_symbols: int = 24
    start: str = "2019-01-02"
    end: str | None = None
    signal_strength: float = 0.05
    split_rate_per_year: float = 0.1  # about one split per symbol per decade
    dividend_payer_share: float = 0.6
    listing_share: float = 0.1  # symbols that list after `start`
    delisting_share: float = 0.08  # symbols that delist within five years of `start`

    def __post_init__(self) -> None:
        if self.n_symbols < 1:
            raise ValueError(f"SimConfig.n_symbols must be >= 1 (got {self.n_symbols})")
        if not np.isfinite(self.signal_strength) or not 0 <= self.signal_strength < 0.2:
            raise ValueError(f"SimConfig.signal_strength must be in [0, 0.2) (got {self.signal_strength})")


@dataclass(frozen=True)
class _Market:
    bars: pd.DataFrame
    splits: pd.DataFrame
    dividends: pd.DataFrame
    signal: pd.DataFrame
    true_returns: np.ndarray  # (session x symbol) r_t as it enters the mean reversion: 0 before listing and on its day
    parameters: pd.DataFrame  # symbol, mu, beta, sigma


class SimulatedProvider:
    """`MarketDataProvider` over the simulated market (`name = "simulated"`)."""

    name = "simulated"

    def __init__(self, config: SimConfig | None = None):
        cfg = config or SimConfig()
        if cfg.end is None:
            cfg = SimConfig(**{**cfg.__dict__, "end": str(market_calendar.last_completed_session().date())})
        self.config = cfg

    @property
    def symbols(self) -> list[str]:
        return [_symbol(i) for i in range(self.config.n_symbols)]

    def daily_bars(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        return _between(self._market.bars, "date", start, end)

    def splits(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        return _between(self._market.splits, "execution_date", start, end)

    def dividends(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        return _between(self._market.dividends, "ex_dividend_date", start, end)

    def planted_signal(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """Oracle score per (symbol, date): -(sum of the last five true log returns up to t)."""
        return _between(self._market.signal, "date", start, end)

    def symbol_parameters(self) -> pd.DataFrame:
        """Per-symbol drift `mu`, market beta `beta` and idiosyncratic volatility `sigma` (daily log units)."""
        return self._market.parameters.copy()

    def true_returns(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """The true total log return r_t per (symbol, date) where the symbol trades (0 on its listing day)."""
        days = market_calendar.sessions(self.config.start, self.config.end)
        frame = _frame(days, self.config.n_symbols, {"log_return": self._market.true_returns})
        alive = self._market.signal.loc[:, ["symbol", "date"]]
        return _between(alive.merge(frame, on=["symbol", "date"], how="left"), "date", start, end)

    def oracle_score(self, horizon: int, start: dt.date | str | None = None, end: dt.date | str | None = None) -> pd.DataFrame:
        """Oracle score per (symbol, date): E[close-to-close simple total return over the next
        `horizon` sessions | everything up to t], exact under the simulator's equations
        (`simulated_oracle.expected_total_return`). Rows where the symbol trades on t."""
        from kobe_pipelines.data.providers.simulated_oracle import oracle_frame

        market = self._market
        days = market_calendar.sessions(self.config.start, self.config.end)
        frame = oracle_frame(market.true_returns, market.parameters, days, self.config.signal_strength, horizon,
                             MARKET_DRIFT, MARKET_VOL)
        alive = market.signal.loc[:, ["symbol", "date"]]
        frame = alive.merge(frame, on=["symbol", "date"], how="left")
        return _between(frame, "date", start or days[0], end or days[-1])

    @cached_property
    def _market(self) -> _Market:
        return _simulate(self.config)


def _symbol(i: int) -> str:
    return f"K{i:04d}"


def _between(df: pd.DataFrame, column: str, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
    mask = (df[column] >= pd.Timestamp(start)) & (df[column] <= pd.Timestamp(end))
    return df.loc[mask].reset_index(drop=True)


def _tick_round(price: np.ndarray, how: str) -> np.ndarray:
    """Round to the tick: $0.01 at or above $1, $0.0001 below; `how` is round|floor|ceil."""
    fn = {"round": np.round, "floor": np.floor, "ceil": np.ceil}[how]
    scale = np.where(price >= 1.0, 100.0, 10_000.0)
    return fn(price * scale) / scale


def _simulate(cfg: SimConfig) -> _Market:  # noqa: PLR0915 - one pass, kept together on purpose
    days = market_calendar.sessions(cfg.start, cfg.end)
    n, t_len = cfg.n_symbols, len(days)
    rng = np.random.default_rng(cfg.seed)

    # Per-symbol parameters: drawn once, independent of the date range (prefix-stable).
    beta = rng.uniform(0.5, 1.5, n)
    sigma = rng.uniform(0.012, 0.03, n)
    mu = rng.normal(0.0002, 0.0002, n)
    price0 = np.exp(rng.uniform(np.log(8.0), np.log(400.0), n))
    volume0 = np.exp(rng.uniform(np.log(2e5), np.log(2e7), n))
    pays = rng.random(n) < cfg.dividend_payer_share
    div_yield_q = rng.uniform(0.002, 0.01, n)
    div_phase = rng.integers(5, QUARTER_SESSIONS, n)
    weekend_ex = rng.random(n) < 0.25  # these report some ex-dates on the preceding non-session day
    listing_day = np.where(rng.random(n) < cfg.listing_share, rng.integers(20, 504, n), 0)
    delisting_day = np.where(rng.random(n) < cfg.delisting_share, rng.integers(252, 1260, n), -1)
    if n >= 10:  # keep at least one listing and one delisting in any sizeable universe
        listing_day[1] = listing_day[1] or 60
        delisting_day[2] = delisting_day[2] if delisting_day[2] >= 0 else 400
        price0[3] = 1.2  # a low-priced symbol, a candidate for a reverse split
    split_p = cfg.split_rate_per_year / 252.0

    closes = np.full((t_len, n), np.nan)
    opens, highs, lows, vols = (np.full((t_len, n), np.nan) for _ in range(4))
    signal = np.full((t_len, n), np.nan)
    true_returns = np.zeros((t_len, n))
    last5 = np.zeros((5, n))
    prev_close = price0.copy()
    share_mult = np.ones(n)  # shares outstanding multiplier from splits (volume scales with it)
    split_rows: list[tuple[str, pd.Timestamp, float, float]] = []
    div_rows: list[tuple[str, pd.Timestamp, float]] = []

    for t in range(t_len):
        # Fixed order of draws per session keeps the stream prefix-stable.
        market = rng.normal(MARKET_DRIFT, MARKET_VOL)
        eps = rng.standard_normal(n)
        split_draw = rng.random(n)
        ratio_draw = rng.integers(0, len(FORWARD_SPLIT_RATIOS), n)
        special_draw = rng.random(n)
        intraday = rng.standard_normal((3, n))
        vol_noise = rng.standard_normal(n)

        r = mu + beta * market + sigma * eps - cfg.signal_strength * last5.sum(axis=0)
        alive = (t >= listing_day) & ((delisting_day < 0) | (t <= delisting_day))
        listed_today = t == listing_day
        growth = prev_close * np.exp(r)

        split_from = np.ones(n)
        split_to = np.ones(n)
        can_split = alive & ~listed_today & (t > 0)
        fwd = can_split & (split_draw < split_p) & (growth >= 4.0)
        rev = can_split & (split_draw < split_p * 40) & (growth < 2.0)
        # the drawn ratio, capped so the post-split price stays at or above $2
        split_to[fwd] = np.maximum(2, np.minimum(np.take(FORWARD_SPLIT_RATIOS, ratio_draw[fwd]), np.floor(growth[fwd] / 2.0)))
        split_from[rev] = 10.0
        growth = growth * split_from / split_to

        dividend = np.zeros(n)
        quarterly = pays & alive & ~listed_today & ((t - div_phase) % QUARTER_SESSIONS == 0) & (t > 0)
        dividend[quarterly] = prev_close[quarterly] * div_yield_q[quarterly] * split_from[quarterly] / split_to[quarterly]
        special = alive & ~listed_today & (t > 0) & (special_draw < 0.4 / 2520)
        dividend[special] += growth[special] * 0.05
        dividend = np.round(dividend, 2)

        close = np.where(listed_today, prev_close, growth - dividend)
        close_r = _tick_round(close, "round")
        open_r = _tick_round(close * np.exp(intraday[0] * sigma * 0.5), "round")
        high_r = _tick_round(np.maximum(open_r, close_r) * np.exp(np.abs(intraday[1]) * sigma * 0.4), "ceil")
        low_r = _tick_round(np.minimum(open_r, close_r) * np.exp(-np.abs(intraday[2]) * sigma * 0.4), "floor")
        share_mult = share_mult * split_to / split_from
        volume = np.round(volume0 * share_mult * np.exp(0.4 * vol_noise))

        closes[t] = np.where(alive, close_r, np.nan)
        opens[t], highs[t], lows[t], vols[t] = (np.where(alive, a, np.nan) for a in (open_r, high_r, low_r, volume))
        true_r = np.where(alive & ~listed_today, r, 0.0)
        last5 = np.vstack([last5[1:], true_r])
        true_returns[t] = true_r
        signal[t] = np.where(alive, -last5.sum(axis=0), np.nan)
        prev_close = np.where(alive, close, prev_close)

        day = days[t]
        for i in np.flatnonzero(fwd | rev):
            split_rows.append((_symbol(i), day, float(split_from[i]), float(split_to[i])))
        for i in np.flatnonzero(dividend > 0):
            reported = day
            if weekend_ex[i] and (day - pd.Timedelta(days=1)).dayofweek >= 5:
                reported = day - pd.Timedelta(days=1)  # a Sunday ex-date: maps to Monday's session
            div_rows.append((_symbol(i), reported, float(dividend[i])))

    return _Market(
        bars=_frame(days, n, {"open": opens, "high": highs, "low": lows, "close": closes, "volume": vols}),
        splits=schema.normalize_splits(pd.DataFrame(split_rows, columns=list(schema.SPLIT_COLUMNS))),
        dividends=schema.normalize_dividends(pd.DataFrame(div_rows, columns=list(schema.DIVIDEND_COLUMNS))),
        signal=_frame(days, n, {"score": signal}).dropna(subset=["score"]).reset_index(drop=True),
        true_returns=true_returns,
        parameters=pd.DataFrame({"symbol": [_symbol(i) for i in range(n)], "mu": mu, "beta": beta, "sigma": sigma}),
    )


def _frame(days: pd.DatetimeIndex, n: int, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long (symbol, date) frame from (session x symbol) arrays, rows where the symbol traded."""
    t_len = len(days)
    first = next(iter(columns.values()))
    keep = ~np.isnan(first).T.ravel()  # symbol-major order: sorted by symbol, then date
    out = {
        "symbol": np.repeat(np.array([_symbol(i) for i in range(n)], dtype=object), t_len)[keep],
        "date": np.tile(days.values.astype("datetime64[ns]"), n)[keep],
    }
    for name, values in columns.items():
        out[name] = values.T.ravel()[keep]
    frame = pd.DataFrame(out)
    return schema.normalize_bars(frame) if "close" in columns else frame
