"""The embedded market: a deterministic simulated US-equities universe with RAW prices.

Raw prices really jump at splits and drop at ex-dates, as a vendor's unadjusted bars do:

    raw_close_t = raw_close_{t-1} * exp(x_t) * split_from/split_to * (1 - d_t)

where `x_t` is the symbol's true total log return and `d_t` the fraction of the price paid out as
cash going ex that session (the dividend is d_t times the price before it, reported in USD per
post-split share to 1/100 of a cent). The total return on an ex-date, (close_t + D_t) /
(close_{t-1} x split_from/split_to), is therefore exp(x_t) before rounding to the tick: exactly what
the `quandl` convention's adjusted series shows, and approximately the `crsp` one's.

A weak, known predictable component is planted in the true returns: short-term mean reversion,

    x_t = u_t - signal_strength * (x_{t-1} + ... + x_{t-5}),
    u_t = mu + beta * (MARKET_DRIFT + MARKET_VOL * m_t) + sigma * e_t,   m_t, e_t ~ N(0, 1)

so the planted signal at t is -(x_t + ... + x_{t-4}) (the sum of the last five true log returns,
negated); `signal_strength=0` switches it off. `oracle_score(horizon)` is the exact expectation of
the next `horizon` sessions' simple total return under these equations (`simulated_oracle`), the
yardstick of the models.

Generation is prefix-stable and seekable: the random draws come in blocks of `BLOCK` sessions, each
block from its own seeded stream, so extending `end` only appends sessions, and the bars of any
range cost about the same whatever its distance from `start`. That takes three ideas:
- the cumulative shocks at block boundaries are sums of per-block totals (one normal per block and
  symbol), and the shocks inside a block are drawn given their block's total (a discrete Brownian
  bridge), so a boundary's level needs no block's inner draws;
- the cumulative return S_t = x_0 + ... + x_t equals c * U_t + sum_i b_i u_{t-i}, with U the
  cumulative u, c = 1 / (1 + 5 * signal_strength) and b a geometrically decaying filter
  (`_FilterTerms`): the state entering a block needs only the draws of the few sessions before it;
- splits and dividends are decided once per block from the block's opening reference price (the
  trend level price0 * exp(c * U) with the payouts and splits so far), which needs no inner draws
  either; which sessions they fall on is drawn per block.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa

from kobe_pipelines import market_calendar
from kobe_pipelines.data import schema
from kobe_pipelines.settings import DEFAULT_HISTORY_START

FORWARD_SPLIT_RATIOS = (2, 3, 4, 5, 10)
QUARTER_SESSIONS = 63
BLOCK = 64  # sessions per block of random draws
SPECIAL_DIVIDENDS_PER_SESSION = 0.4 / 2520  # per symbol: about one special dividend in 25 years
SPECIAL_DIVIDEND_SHARE = 0.05  # a special dividend pays out 5% of the price
REVERSE_SPLIT_BOOST = 40  # a symbol under $2 reverse-splits this many times more readily
FORWARD_SPLIT_FLOOR_USD = 4.0  # a forward split needs at least this reference price
REVERSE_SPLIT_CEILING_USD = 2.0  # a reverse split (1 for 10) needs a reference price below this
MARKET_DRIFT, MARKET_VOL = 0.0003, 0.01  # the market's daily log return: drift + vol * m_t

# one seeded stream per purpose (and block): (seed, purpose, block)
_PARAMS, _TOTALS, _SHOCKS, _EVENTS, _INTRADAY = range(5)


@dataclass(frozen=True)
class SimConfig:
    """Settings of the simulated market. Every field is part of the generated data's identity.

    `start`/`end` are exchange dates (America/New_York); `end=None` means the last completed
    XNYS session at construction time. `signal_strength` is the mean-reversion coefficient
    (dimensionless, per day); 0 switches the planted component off.
    """

    seed: int = 7
    n_symbols: int = 24
    start: str = DEFAULT_HISTORY_START
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
        if self.seed < 0:
            raise ValueError(f"SimConfig.seed must be >= 0 (got {self.seed})")


class SimulatedProvider:
    """`MarketDataProvider` over the simulated market (`name = "simulated"`).

    Every method generates only the blocks of sessions its range touches (and the few before it
    that the mean reversion remembers); generated blocks are kept for the provider's life."""

    name = "simulated"

    def __init__(self, config: SimConfig | None = None):
        cfg = config or SimConfig()
        if cfg.end is None:
            cfg = SimConfig(**{**cfg.__dict__, "end": str(market_calendar.last_completed_session().date())})
        self.config = cfg
        self._market = _Market(cfg)

    @property
    def symbols(self) -> list[str]:
        return [_symbol(i) for i in range(self.config.n_symbols)]

    def daily_bars(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        return schema.normalize_bars(self.daily_bars_table(start, end).to_pandas(date_as_object=False))

    def daily_bars_table(self, start: dt.date | str, end: dt.date | str) -> pa.Table:
        """`daily_bars` as an Arrow table in `schema.BARS_ARROW_SCHEMA`, symbols dictionary-encoded,
        rows sorted by symbol, then date (the form a freeze takes without pandas)."""
        first, last = self._market.span(start, end)
        return self._market.bars(first, last)

    def daily_bar_batches(self, start: dt.date | str, end: dt.date | str, rows: int = 1 << 20) -> list[pa.Table]:
        """`daily_bars_table` as one batch (the bars are in memory once fetched)."""
        return [self.daily_bars_table(start, end)]

    def splits(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        first, last = self._market.span(start, end)
        return self._market.splits(first, last)

    def dividends(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """Dividends whose reported ex-date lies in [start, end] (a Sunday ex-date is reported on
        the Sunday and belongs to Monday's session)."""
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        first, last = self._market.span(lo - pd.Timedelta(days=3), hi + pd.Timedelta(days=3))
        frame = self._market.dividends(first, last)
        mask = (frame["ex_dividend_date"] >= lo) & (frame["ex_dividend_date"] <= hi)
        return frame.loc[mask].reset_index(drop=True)

    def planted_signal(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """The planted signal per (symbol, date): -(sum of the last five true log returns up to t)."""
        first, last = self._market.span(start, end)
        return self._market.signal(first, last)

    def symbol_parameters(self) -> pd.DataFrame:
        """Per-symbol drift `mu`, market beta `beta` and idiosyncratic volatility `sigma` (daily log units)."""
        p = self._market.params
        return pd.DataFrame({"symbol": self.symbols, "mu": p.mu, "beta": p.beta, "sigma": p.sigma})

    def true_returns(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """The true total log return x_t per (symbol, date) where the symbol trades: the process
        the mean reversion runs on (it runs before a listing too, unseen)."""
        first, last = self._market.span(start, end)
        return self._market.long_frame(first, last, self._market.log_returns(first, last), "log_return")

    def oracle_score(self, horizon: int, start: dt.date | str | None = None, end: dt.date | str | None = None) -> pd.DataFrame:
        """Oracle score per (symbol, date): E[close-to-close simple total return over the next
        `horizon` sessions | everything up to t], exact under the simulator's equations
        (`simulated_oracle.expected_total_return`). Rows where the symbol trades on t."""
        from kobe_pipelines.data.providers.simulated_oracle import LAGS, expected_total_return

        days, p = self._market.days, self._market.params
        first, last = self._market.span(start or days[0], end or days[-1])
        returns = self._market.log_returns(first - (LAGS - 1), last)  # each window needs the four sessions before it
        windows = np.lib.stride_tricks.sliding_window_view(returns, LAGS, axis=0)  # (sessions, n, LAGS), oldest first
        sessions, n = windows.shape[0], self.config.n_symbols
        drift = np.broadcast_to(p.mu + p.beta * MARKET_DRIFT, (sessions, n)).ravel()
        variance = np.broadcast_to(p.beta**2 * MARKET_VOL**2 + p.sigma**2, (sessions, n)).ravel()
        score = expected_total_return(windows.reshape(-1, LAGS), drift, variance, self.config.signal_strength,
                                      horizon).reshape(sessions, n)
        return self._market.long_frame(first, last, score, "score")


def _symbol(i: int) -> str:
    return f"K{i:04d}"


def _tick_round(price: np.ndarray, how: str) -> np.ndarray:
    """Round to the tick: $0.01 at or above $1, $0.0001 below; `how` is round|floor|ceil."""
    fn = {"round": np.round, "floor": np.floor, "ceil": np.ceil}[how]
    scale = np.where(price >= 1.0, 100.0, 10_000.0)
    return fn(price * scale) / scale


def _blocks(first: int, last: int) -> list[tuple[int, int, int]]:
    """(block, first, last session index inside it) for the blocks that [first, last] touches."""
    return [(block, max(first, block * BLOCK), min(last, block * BLOCK + BLOCK - 1))
            for block in range(first // BLOCK, last // BLOCK + 1)] if last >= first else []


def _stream(cfg: SimConfig, purpose: int, block: int = 0) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, purpose, block])


@dataclass(frozen=True)
class _FilterTerms:
    """S_t = c * U_t + sum_i b[i] * u_{t-i} for the mean-reversion filter x = u / A(z),
    A(z) = 1 + s (z^-1 + ... + z^-5): c = 1 / A(1), b[i] = h_0 + ... + h_i - c with h the filter's
    impulse response (b decays geometrically; it is cut where it stops mattering)."""

    c: float
    b: np.ndarray

    @classmethod
    def of(cls, strength: float) -> _FilterTerms:
        c = 1.0 / (1.0 + 5.0 * strength)
        if strength == 0.0:
            return cls(c, np.zeros(0))
        h = [1.0]
        while len(h) < 5 or max(abs(v) for v in h[-5:]) > 1e-18:  # |roots of A| < 1: h decays
            h.append(-strength * sum(h[-5:]))
        # sum(h) = c, so b[i] = -(h[i+1] + h[i+2] + ...): summed from the small end, exactly
        tail = np.cumsum(np.array(h[:0:-1]))[::-1]
        return cls(c, -tail)


@dataclass(frozen=True)
class _Params:
    """Per-symbol parameters, drawn once from their own stream (independent of the date range)."""

    beta: np.ndarray
    sigma: np.ndarray
    mu: np.ndarray
    price0: np.ndarray
    volume0: np.ndarray
    pays: np.ndarray
    div_yield_q: np.ndarray
    div_phase: np.ndarray
    weekend_ex: np.ndarray  # these report some ex-dates on the preceding non-session day
    listing_day: np.ndarray  # session index of the first bar
    delisting_day: np.ndarray  # session index of the last bar; -1: never

    @classmethod
    def draw(cls, cfg: SimConfig) -> _Params:
        n = cfg.n_symbols
        rng = _stream(cfg, _PARAMS)
        beta = rng.uniform(0.5, 1.5, n)
        sigma = rng.uniform(0.012, 0.03, n)
        mu = rng.normal(0.0002, 0.0002, n)
        price0 = np.exp(rng.uniform(np.log(8.0), np.log(400.0), n))
        volume0 = np.exp(rng.uniform(np.log(2e5), np.log(2e7), n))
        pays = rng.random(n) < cfg.dividend_payer_share
        div_yield_q = rng.uniform(0.002, 0.01, n)
        div_phase = rng.integers(5, QUARTER_SESSIONS, n)
        weekend_ex = rng.random(n) < 0.25
        listing_day = np.where(rng.random(n) < cfg.listing_share, rng.integers(20, 504, n), 0)
        delisting_day = np.where(rng.random(n) < cfg.delisting_share, rng.integers(252, 1260, n), -1)
        if n >= 10:  # keep at least one listing and one delisting in any sizeable universe
            listing_day[1] = listing_day[1] or 60
            delisting_day[2] = delisting_day[2] if delisting_day[2] >= 0 else 400
            price0[3] = 1.2  # a low-priced symbol, a candidate for a reverse split
        return cls(beta, sigma, mu, price0, volume0, pays, div_yield_q, div_phase, weekend_ex, listing_day, delisting_day)

    def can_act(self, t: np.ndarray) -> np.ndarray:
        """Per symbol: a split or dividend may go ex on its session index t[i] (alive there, and
        not on its first bar)."""
        alive = (t >= self.listing_day) & ((self.delisting_day < 0) | (t <= self.delisting_day))
        return alive & (t > self.listing_day) & (t > 0)


@dataclass(frozen=True)
class _BlockEvents:
    """The corporate actions of one block, as (session index, symbol index, value) arrays."""

    split_t: np.ndarray
    split_i: np.ndarray
    split_from: np.ndarray
    split_to: np.ndarray
    payout_t: np.ndarray
    payout_i: np.ndarray
    payout_keep: np.ndarray  # the price kept after the payout: 1 - d (several on one day multiply)


class _Market:
    """The simulated market's state, generated block by block on demand."""

    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.days = market_calendar.sessions(cfg.start, cfg.end)
        self.params = _Params.draw(cfg)
        self.terms = _FilterTerms.of(cfg.signal_strength)
        self._totals: list[np.ndarray] = []  # per block: cumulative (market, symbols) shocks before it
        self._events: list[_BlockEvents] = []
        self._entry: list[tuple[np.ndarray, np.ndarray]] = []  # per block: (log payout kept, log split) before it
        self._returns: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._paths: dict[int, np.ndarray] = {}

    # ---- ranges ------------------------------------------------------------------------------
    def span(self, start: dt.date | str, end: dt.date | str) -> tuple[int, int]:
        """Session indices [first, last] of the sessions in [start, end] (first > last: none)."""
        first = int(self.days.searchsorted(pd.Timestamp(start), side="left"))
        last = int(self.days.searchsorted(pd.Timestamp(end), side="right")) - 1
        return first, last

    # ---- shocks: m (market) and e (symbols) ------------------------------------------------------
    def _boundary(self, block: int) -> np.ndarray:
        """Cumulative shocks before `block`: (1 + n,) market then symbols."""
        width = self.cfg.n_symbols + 1
        while len(self._totals) <= block:
            j = len(self._totals)
            previous = self._totals[-1] if self._totals else np.zeros(width)
            if j == 0:
                self._totals.append(np.zeros(width))
                continue
            total = _stream(self.cfg, _TOTALS, j - 1).standard_normal(width) * np.sqrt(BLOCK)
            self._totals.append(previous + total)
        return self._totals[block]

    def _block_returns(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """u_t and U_t = u_0 + ... + u_t, (BLOCK, n), for the block's sessions. The block's shocks
        are drawn given their drawn total (z - mean(z) + total / BLOCK: iid N(0, 1) again)."""
        if block not in self._returns:
            p, width = self.params, self.cfg.n_symbols + 1
            z = _stream(self.cfg, _SHOCKS, block).standard_normal((BLOCK, width))
            shocks = z - z.mean(axis=0) + (self._boundary(block + 1) - self._boundary(block)) / BLOCK
            inside = np.cumsum(shocks, axis=0) + self._boundary(block)
            t = np.arange(block * BLOCK, (block + 1) * BLOCK)[:, None]
            u = p.mu + p.beta * (MARKET_DRIFT + MARKET_VOL * shocks[:, :1]) + p.sigma * shocks[:, 1:]
            cum = p.mu * (t + 1) + p.beta * (MARKET_DRIFT * (t + 1) + MARKET_VOL * inside[:, :1]) + p.sigma * inside[:, 1:]
            self._returns[block] = (u, cum)
        return self._returns[block]

    def _u_and_cum(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """u_t and U_t, (sessions, n), for t in [first, last]; zero before session 0."""
        n = self.cfg.n_symbols
        u, cum = np.zeros((last - first + 1, n)), np.zeros((last - first + 1, n))
        for block, lo, hi in _blocks(max(first, 0), last):
            block_u, block_cum = self._block_returns(block)
            u[lo - first:hi - first + 1] = block_u[lo - block * BLOCK:hi - block * BLOCK + 1]
            cum[lo - first:hi - first + 1] = block_cum[lo - block * BLOCK:hi - block * BLOCK + 1]
        return u, cum

    # ---- the cumulative true return S ---------------------------------------------------------
    def _path(self, block: int) -> np.ndarray:
        """S_t for the block's sessions (BLOCK, n): the filter's closed form for the six sessions
        before the block, then the recursion through it (a block's values never depend on which
        range asked for them)."""
        if block in self._paths:
            return self._paths[block]
        s, n, t0 = self.cfg.signal_strength, self.cfg.n_symbols, block * BLOCK
        b = self.terms.b
        u_before, cum_before = self._u_and_cum(t0 - 6 - len(b), t0 - 1)
        level = self.terms.c * cum_before[-6:]
        for i, weight in enumerate(b):  # sum_i b_i u_{t-i} for the six sessions t0-6..t0-1
            level = level + weight * u_before[len(u_before) - 6 - i:len(u_before) - i]
        returns = list(np.diff(level, axis=0))  # x_{t0-5} .. x_{t0-1}
        total, last5 = level[-1], np.sum(returns, axis=0)
        u, _ = self._block_returns(block)
        path = np.empty((BLOCK, n))
        for k in range(BLOCK):
            x = u[k] - s * last5
            last5 = last5 + x - returns[-5]
            returns.append(x)
            total = total + x
            path[k] = total
        self._paths[block] = path
        return path

    def cumulative_returns(self, first: int, last: int) -> np.ndarray:
        """S_t (sessions, n) for t in [first, last]; zero before session 0."""
        out = np.zeros((last - first + 1, self.cfg.n_symbols))
        for block, lo, hi in _blocks(max(first, 0), last):
            out[lo - first:hi - first + 1] = self._path(block)[lo - block * BLOCK:hi - block * BLOCK + 1]
        return out

    # ---- corporate actions, decided block by block --------------------------------------------
    def _entry_state(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """(log of the price kept after payouts, log of the split multiple) before `block`."""
        n = self.cfg.n_symbols
        while len(self._entry) <= block:
            j = len(self._entry)
            if j == 0:
                self._entry.append((np.zeros(n), np.zeros(n)))
                continue
            kept, split = self._entry[-1]
            events = self._block_events(j - 1)
            kept, split = kept.copy(), split.copy()
            np.add.at(kept, events.payout_i, np.log(events.payout_keep))
            np.add.at(split, events.split_i, np.log(events.split_to / events.split_from))
            self._entry.append((kept, split))
        return self._entry[block]

    def _block_events(self, block: int) -> _BlockEvents:
        while len(self._events) <= block:
            self._events.append(self._decide(len(self._events)))
        return self._events[block]

    def _decide(self, block: int) -> _BlockEvents:
        """The splits and payouts of `block`, decided from its opening reference price."""
        cfg, p, n, t0 = self.cfg, self.params, self.cfg.n_symbols, block * BLOCK
        kept, split = self._entry_state(block)
        boundary = self._boundary(block)
        trend = p.mu * t0 + p.beta * (MARKET_DRIFT * t0 + MARKET_VOL * boundary[0]) + p.sigma * boundary[1:]
        reference = p.price0 * np.exp(self.terms.c * trend + kept - split)
        rng = _stream(cfg, _EVENTS, block)
        forward_draw, reverse_draw, special_draw = rng.random(n), rng.random(n), rng.random(n)
        forward_at, reverse_at, special_at = (rng.integers(0, BLOCK, n) for _ in range(3))
        ratio_draw = rng.integers(0, len(FORWARD_SPLIT_RATIOS), n)
        idx = np.arange(n)

        per_session = cfg.split_rate_per_year / 252.0
        forward = (forward_draw < -np.expm1(-per_session * BLOCK)) & (reference >= FORWARD_SPLIT_FLOOR_USD)
        forward &= p.can_act(t0 + forward_at)
        reverse = (reverse_draw < -np.expm1(-per_session * REVERSE_SPLIT_BOOST * BLOCK))
        reverse &= (reference < REVERSE_SPLIT_CEILING_USD) & p.can_act(t0 + reverse_at)
        # the drawn ratio, capped so the post-split reference price stays at or above $2
        cap = np.floor(reference / 2.0)
        ratio = np.maximum(2.0, np.minimum(np.take(FORWARD_SPLIT_RATIOS, ratio_draw), cap))
        split_i = np.concatenate([idx[forward], idx[reverse]])
        split_t = np.concatenate([t0 + forward_at[forward], t0 + reverse_at[reverse]])
        split_from = np.concatenate([np.ones(forward.sum()), np.full(reverse.sum(), 10.0)])
        split_to = np.concatenate([ratio[forward], np.ones(reverse.sum())])

        special = (special_draw < -np.expm1(-SPECIAL_DIVIDENDS_PER_SESSION * BLOCK)) & p.can_act(t0 + special_at)
        payout_t, payout_i, payout_keep = [t0 + special_at[special]], [idx[special]], [np.full(special.sum(), 1 - SPECIAL_DIVIDEND_SHARE)]
        first_ex = t0 + (p.div_phase - t0) % QUARTER_SESSIONS  # quarterly: t = phase (mod 63)
        for ex in (first_ex, first_ex + QUARTER_SESSIONS):
            inside = p.pays & (ex < t0 + BLOCK) & p.can_act(ex)
            payout_t.append(ex[inside])
            payout_i.append(idx[inside])
            payout_keep.append(1.0 - p.div_yield_q[inside])
        return _BlockEvents(split_t, split_i, split_from, split_to,
                            np.concatenate(payout_t), np.concatenate(payout_i), np.concatenate(payout_keep))

    def _events_in(self, first: int, last: int) -> list[_BlockEvents]:
        return [self._block_events(block) for block in range(first // BLOCK, last // BLOCK + 1)] if last >= first else []

    def _block_multiples(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """log of the price kept after payouts and log of the split multiple on each of the
        block's sessions (BLOCK, n), counting each session's own actions."""
        n, start = self.cfg.n_symbols, block * BLOCK
        entry_kept, entry_split = self._entry_state(block)
        events = self._block_events(block)
        step_kept, step_split = np.zeros((BLOCK, n)), np.zeros((BLOCK, n))
        np.add.at(step_kept, (events.payout_t - start, events.payout_i), np.log(events.payout_keep))
        np.add.at(step_split, (events.split_t - start, events.split_i), np.log(events.split_to / events.split_from))
        return entry_kept + np.cumsum(step_kept, axis=0), entry_split + np.cumsum(step_split, axis=0)

    # ---- outputs -------------------------------------------------------------------------------
    def _block_prices(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Unrounded raw closes and split multiples (BLOCK, n) of the block's sessions."""
        kept, split = self._block_multiples(block)
        return self.params.price0 * np.exp(self._path(block) + kept - split), np.exp(split)

    def closes(self, first: int, last: int) -> np.ndarray:
        """Unrounded raw closes (sessions, n) for [first, last]."""
        out = np.empty((last - first + 1, self.cfg.n_symbols))
        for block, lo, hi in _blocks(first, last):
            out[lo - first:hi - first + 1] = self._block_prices(block)[0][lo - block * BLOCK:hi - block * BLOCK + 1]
        return out

    def bars(self, first: int, last: int) -> pa.Table:
        """The bars of sessions [first, last], one block at a time straight into their rows
        (sorted by symbol, then date: each symbol's traded sessions are consecutive)."""
        p, n = self.params, self.cfg.n_symbols
        rows = _LongRows(p, first, last, n)
        columns = {name: np.empty(rows.total) for name in ("open", "high", "low", "close", "volume")}
        for block, lo, hi in _blocks(first, last):
            inside = slice(lo - block * BLOCK, hi - block * BLOCK + 1)
            close, shares = (values[inside] for values in self._block_prices(block))
            noise = _stream(self.cfg, _INTRADAY, block).standard_normal((4, BLOCK, n), dtype=np.float32)[:, inside]
            close_r = _tick_round(close, "round")
            open_r = _tick_round(close * np.exp(noise[0] * p.sigma * 0.5), "round")
            high_r = _tick_round(np.maximum(open_r, close_r) * np.exp(np.abs(noise[1]) * p.sigma * 0.4), "ceil")
            low_r = _tick_round(np.minimum(open_r, close_r) * np.exp(-np.abs(noise[2]) * p.sigma * 0.4), "floor")
            volume = np.round(p.volume0 * shares * np.exp(0.4 * noise[3]))
            where, at = rows.positions(lo, hi)
            for name, values in (("open", open_r), ("high", high_r), ("low", low_r), ("close", close_r), ("volume", volume)):
                columns[name][at] = values[where]
        return rows.table(self.days, columns)

    def splits(self, first: int, last: int) -> pd.DataFrame:
        rows = [(e.split_i, e.split_t, e.split_from, e.split_to) for e in self._events_in(first, last)]
        if not rows:
            return schema.empty_splits()
        i, t, split_from, split_to = (np.concatenate(parts) for parts in zip(*rows))
        inside = (t >= first) & (t <= last) & (t < len(self.days))
        frame = pd.DataFrame({"symbol": [_symbol(k) for k in i[inside]], "execution_date": self.days[t[inside]],
                              "split_from": split_from[inside], "split_to": split_to[inside]})
        return schema.normalize_splits(frame.sort_values(["execution_date", "symbol"]).reset_index(drop=True))

    def dividends(self, first: int, last: int) -> pd.DataFrame:
        rows = [(e.payout_i, e.payout_t, e.payout_keep) for e in self._events_in(first, last)]
        if not rows:
            return schema.empty_dividends()
        i, t, keep = (np.concatenate(parts) for parts in zip(*rows))
        inside = (t >= first) & (t <= last) & (t < len(self.days))
        i, t, keep = i[inside], t[inside], keep[inside]
        frame = pd.DataFrame({"i": i, "t": t, "log_keep": np.log(keep)}).groupby(["t", "i"], as_index=False).sum()
        i, t, kept = frame["i"].to_numpy(), frame["t"].to_numpy(), np.exp(frame["log_keep"].to_numpy())
        if not len(t):
            return schema.empty_dividends()
        close = self.closes(int(t.min()), int(t.max()))
        before = close[t - t.min(), i] / kept  # the price the payout is a fraction of
        amount = np.round(before * (1.0 - kept), 4)
        days = self.days[t]
        sunday = self.params.weekend_ex[i] & ((days - pd.Timedelta(days=1)).dayofweek >= 5)
        reported = np.where(sunday, days - pd.Timedelta(days=1), days)  # a Sunday ex-date maps to Monday's session
        out = pd.DataFrame({"symbol": [_symbol(k) for k in i], "ex_dividend_date": reported, "cash_amount": amount})
        out = out.loc[amount > 0]
        return schema.normalize_dividends(out.sort_values(["ex_dividend_date", "symbol"]).reset_index(drop=True))

    def signal(self, first: int, last: int) -> pd.DataFrame:
        if last < first:
            return self.long_frame(first, last, np.zeros((0, self.cfg.n_symbols)), "score")
        level = self.cumulative_returns(first - 5, last)
        return self.long_frame(first, last, -(level[5:] - level[:-5]), "score")

    def log_returns(self, first: int, last: int) -> np.ndarray:
        """x_t (sessions, n) for t in [first, last] (zero before session 0)."""
        if last < first:
            return np.zeros((0, self.cfg.n_symbols))
        return np.diff(self.cumulative_returns(first - 1, last), axis=0)

    def long_frame(self, first: int, last: int, values: np.ndarray, name: str) -> pd.DataFrame:
        """A long (symbol, date, `name`) frame of the (sessions, n) `values` of [first, last], rows
        where the symbol trades."""
        if last < first:
            return pd.DataFrame({"symbol": pd.Series([], dtype=object), "date": pd.Series([], dtype="datetime64[ns]"),
                                 name: pd.Series([], dtype="float64")})
        rows = _LongRows(self.params, first, last, self.cfg.n_symbols)
        where, at = rows.positions(first, last)
        column = np.empty(rows.total)
        column[at] = values[where]
        frame = rows.table(self.days, {name: column}).to_pandas()
        frame["symbol"] = frame["symbol"].astype(str)
        frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
        return frame


class _LongRows:
    """Where each (session, symbol) of [first, last] goes in a long table sorted by symbol, then
    date: a symbol trades on consecutive sessions (listing to delisting), so its rows are one run."""

    def __init__(self, params: _Params, first: int, last: int, n: int):
        self.first, self.last, self.n = first, last, n
        self.lo = np.maximum(first, params.listing_day)
        self.hi = np.where(params.delisting_day < 0, last, np.minimum(last, params.delisting_day))
        self.count = np.maximum(0, self.hi - self.lo + 1)
        self.offset = np.concatenate([[0], np.cumsum(self.count)[:-1]])
        self.total = int(self.count.sum())

    def positions(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """For the sessions lo..hi: a (sessions, n) mask of the traded ones and their rows."""
        t = np.arange(lo, hi + 1)[:, None]
        where = (t >= self.lo) & (t <= self.hi)
        return where, (self.offset + t - self.lo)[where]

    def table(self, days: pd.DatetimeIndex, columns: dict[str, np.ndarray]) -> pa.Table:
        codes = np.repeat(np.arange(self.n, dtype=np.int32), self.count)
        session = np.arange(self.total, dtype=np.int32) - np.repeat((self.offset - self.lo).astype(np.int32), self.count)
        symbols = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array([_symbol(i) for i in range(self.n)], pa.string()))
        day_numbers = days.values.astype("datetime64[D]").astype(np.int32)  # days since 1970-01-01: date32
        dates = pa.array(day_numbers[session] if self.total else np.zeros(0, np.int32)).view(pa.date32())
        arrays = [symbols, dates] + [pa.array(values) for values in columns.values()]
        return pa.Table.from_arrays(arrays, names=["symbol", "date", *columns])
