"""`buy_and_hold`: equal weight of the universe on the first session, then hold. The model-free
sanity baseline of a backtest: its equity curve must follow the total-return adjusted prices.

On its entry session (the trading date `entry_date`, or, when that is None, any run whose book
holds no position: the first session of a fresh account) it buys every symbol that has a bar on
the signal date and a row in the signals (any score: the signals only name the universe):

1. weight: the same notional for every symbol, (1 - cash_buffer) x buying power / N, USD;
2. quantity, whole shares: floor(weight / last close); a symbol that sizes to 0 shares (a price
   above the weight) is skipped, its share stays in cash;
3. a MARKET buy (it fills at the next session's open), the last close (rounded to the nearest
   tick) as the expected price; with `stop_fraction` set, a protective stop at
   entry x (1 - stop_fraction) rounded DOWN to the tick (never nearer than asked).

`cash_buffer` covers the gap between the last close and the open the market order fills at
(and its slippage): the account is 1x and a buy never borrows. On every other session it sends
nothing: positions are held through splits and dividends until their stop fires or the symbol
delists. With `stop_fraction=None` it trades without a protective stop (`uses_stops` is False).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR

import pandas as pd

from kobe_pipelines.errors import ConfigError, RecordError
from kobe_pipelines.orders import OrderIntent, OrderType, Rounding, Side, to_tick
from kobe_pipelines.strategies.base import Strategy
from kobe_pipelines.strategies.context import StrategyContext
from kobe_pipelines.strategies.ranked_long import round_to_tick, to_decimal


@dataclass(frozen=True)
class BuyAndHoldConfig:
    """Parameters of `buy_and_hold`. Fractions are plain fractions (0.5 = 50 %)."""

    stop_fraction: float | None = 0.5
    cash_buffer: float = 0.02
    entry_date: str | None = None  # YYYY-MM-DD trading date of the entries; None: whenever the book is empty

    def __post_init__(self) -> None:
        stop = self.stop_fraction
        if stop is not None and (isinstance(stop, bool) or not isinstance(stop, (int, float)) or not 0 < stop < 1):
            raise ConfigError("stop_fraction", "must be a fraction in (0, 1) below the entry, or None for no stop", stop)
        buffer = self.cash_buffer
        if isinstance(buffer, bool) or not isinstance(buffer, (int, float)) or not 0 <= buffer < 1:
            raise ConfigError("cash_buffer", "must be a fraction in [0, 1)", buffer)
        if self.entry_date is not None:
            try:
                ok = pd.Timestamp(self.entry_date).strftime("%Y-%m-%d") == self.entry_date
            except (ValueError, TypeError):
                ok = False
            if not ok:
                raise ConfigError("entry_date", "must be a date YYYY-MM-DD or None", self.entry_date)


class BuyAndHold(Strategy):
    """Equal weight of the universe once, then hold; see the module docstring."""

    def __init__(self, config: BuyAndHoldConfig | None = None, name: str = "buy_and_hold"):
        self.config = config if config is not None else BuyAndHoldConfig()
        self.name = name

    @property
    def uses_stops(self) -> bool:
        """Whether every position it opens carries a protective stop."""
        return self.config.stop_fraction is not None

    def is_entry_session(self, ctx: StrategyContext) -> bool:
        if self.config.entry_date is not None:
            return ctx.trading_date == self.config.entry_date
        return not ctx.book.positions

    def generate(self, ctx: StrategyContext) -> list[OrderIntent]:
        if not self.is_entry_session(ctx) or ctx.signals.empty or ctx.bars.empty:
            return []
        signal_date = pd.Timestamp(pd.to_datetime(ctx.signals["date"]).max())
        named = set(ctx.signals["symbol"].astype(str))
        bars = ctx.bars.loc[pd.to_datetime(ctx.bars["date"]) == signal_date, ["symbol", "close"]]
        closes = {str(s): float(c) for s, c in zip(bars["symbol"], bars["close"]) if str(s) in named}
        universe = sorted(s for s, c in closes.items() if math.isfinite(c) and c > 0)
        if not universe:
            return []
        weight = to_decimal(ctx.book.buying_power) * (1 - to_decimal(self.config.cash_buffer)) / len(universe)
        out = []
        for symbol in universe:
            entry = round_to_tick(closes[symbol], Rounding.NEAREST)
            qty = int((weight / to_decimal(entry)).to_integral_value(rounding=ROUND_FLOOR)) if weight > 0 else 0
            stop = self._stop(entry)
            if qty < 1 or (self.uses_stops and stop is None):
                continue  # too dear for its weight, or too cheap for a stop above $0 on the tick grid
            out.append(self.make_intent(ctx, symbol, Side.BUY, qty, entry, stop, order_type=OrderType.MARKET))
        return out

    def _stop(self, entry: float) -> float | None:
        """entry x (1 - stop_fraction), DOWN to the tick; None without a stop or when that is not above $0."""
        if self.config.stop_fraction is None:
            return None
        try:
            stop = float(to_tick(to_decimal(entry) * (1 - to_decimal(self.config.stop_fraction)), Rounding.DOWN))
        except RecordError:
            return None  # rounds to $0 on the $0.0001 tick
        return stop if stop < entry else None


STRATEGY = BuyAndHold()
