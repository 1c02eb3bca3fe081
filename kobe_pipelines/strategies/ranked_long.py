"""`ranked_long`: buy the best-scored symbols with an ATR bracket sized by the risk budget.

On each trading run (for `ctx.trading_date`, the session after the latest signal date):

1. Candidates: the latest date's signals with a score strictly above `entry_threshold`, ranked
   by score (highest first; ties by symbol A-Z), the first `top_n` kept. This top-N is the
   target set: a candidate already held (long or short) is skipped, not replaced by the next.
2. A candidate needs a bar on the signal date (a stale last bar means no fresh price) and an
   ATR: the simple mean of the last `atr_period` true ranges, USD (see `indicators`).
3. Prices, USD per share, on the tick grid ($0.01 at/above $1, $0.0001 below):
   entry = last close rounded DOWN (a limit buy never above the last close);
   stop = entry - stop_atr x ATR rounded DOWN; take_profit = entry + target_atr x ATR
   rounded UP (rounding only ever widens the bracket). A stop at or below 0 skips the symbol.
4. Quantity, whole shares: floor(risk_per_trade x equity / (entry - stop)), capped by
   floor(max_position_fraction x equity / entry) and by the buying power left after the
   entries before it (floor(remaining / entry)); below one share the symbol is skipped.
   So a stop-out loses at most risk_per_trade of equity (before gaps and slippage).
5. Exits (only when `exit_threshold` is set): every long position whose latest score is
   strictly below `exit_threshold` gets a MARKET sell of its whole quantity, no bracket, with
   the last close (rounded to the nearest tick) as the expected price. A held symbol without
   a score today is kept. The order path cancels the position's bracket legs before it sends
   such a sell (`execution.service`), so the sell never meets a live stop.

Output order: exits (symbol A-Z), then entries in rank order. Deterministic: the same context
gives the same intents and the same client order ids.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

import pandas as pd

from kobe_pipelines.errors import ConfigError, RecordError
from kobe_pipelines.orders import Rounding, to_tick
from kobe_pipelines.orders import OrderIntent, OrderType, Side
from kobe_pipelines.strategies.base import Strategy
from kobe_pipelines.strategies.context import RiskBudget, StrategyContext
from kobe_pipelines.strategies.indicators import last_close_and_atr

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankedLongConfig:
    """Parameters of `ranked_long`. Scores are in the signal's own units; ATR multiples are plain numbers."""

    top_n: int = 5
    entry_threshold: float = 0.0
    exit_threshold: float | None = None
    atr_period: int = 14
    stop_atr: float = 2.0
    target_atr: float = 3.0

    def __post_init__(self) -> None:
        for name in ("top_n", "atr_period"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, "must be a whole number of at least 1", value)
        for name in ("entry_threshold", "stop_atr", "target_atr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(name, "must be a finite number", value)
        for name in ("stop_atr", "target_atr"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, "must be above 0 (a multiple of ATR)", getattr(self, name))
        if self.exit_threshold is not None:
            ex = self.exit_threshold
            if isinstance(ex, bool) or not isinstance(ex, (int, float)) or not math.isfinite(ex):
                raise ConfigError("exit_threshold", "must be a finite number or None", ex)
            if ex > self.entry_threshold:
                # A fresh entry would qualify for an exit on the next run: churn.
                raise ConfigError("exit_threshold", f"must not exceed entry_threshold {self.entry_threshold}", ex)


def to_decimal(value: float | int | Decimal) -> Decimal:
    """A number as the Decimal of its shortest text (0.1 -> Decimal('0.1'))."""
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))


def round_to_tick(price: float | Decimal, rounding: Rounding) -> float:
    """`price` on the tick grid in the given direction, as the float an intent carries."""
    return float(to_tick(price, rounding))


def position_size(equity: float, entry: float, stop: float, budget: RiskBudget, buying_power: Decimal | float) -> int:
    """Whole shares for a long bracket: the smallest of the risk, position and buying-power limits.

    risk: floor(risk_per_trade x equity / (entry - stop)); position: floor(max_position_fraction
    x equity / entry); buying power: floor(buying_power / entry). All USD. Returns 0 when equity
    or buying power is not positive or the stop is not below the entry.
    """
    eq, en, st, bp = to_decimal(equity), to_decimal(entry), to_decimal(stop), to_decimal(buying_power)
    if eq <= 0 or bp <= 0 or en <= 0 or st >= en:
        return 0
    by_risk = to_decimal(budget.risk_per_trade) * eq / (en - st)
    by_size = to_decimal(budget.max_position_fraction) * eq / en
    by_cash = bp / en
    return max(0, int(min(by_risk, by_size, by_cash).to_integral_value(rounding=ROUND_FLOOR)))


@dataclass(frozen=True)
class BracketPrices:
    entry: float
    stop: float
    take_profit: float


def bracket_prices(last_close: float, atr: float, config: RankedLongConfig) -> BracketPrices | None:
    """Tick-rounded long bracket around `last_close` (USD) with ATR (USD); None when the stop would be <= 0."""
    entry = round_to_tick(last_close, Rounding.DOWN)
    atr_d = to_decimal(atr)
    raw_stop = to_decimal(entry) - to_decimal(config.stop_atr) * atr_d
    if raw_stop <= 0:
        return None
    stop = round_to_tick(raw_stop, Rounding.DOWN)
    take_profit = round_to_tick(to_decimal(entry) + to_decimal(config.target_atr) * atr_d, Rounding.UP)
    if stop <= 0 or not stop < entry < take_profit:
        return None
    return BracketPrices(entry, stop, take_profit)


def latest_scores(signals: pd.DataFrame) -> pd.Series:
    """Scores of the latest signal date by symbol (NaN scores dropped); raises on a duplicated symbol."""
    if signals.empty:
        return pd.Series(dtype="float64", name="score")
    dates = pd.to_datetime(signals["date"])
    latest = signals.loc[dates == dates.max(), ["symbol", "score"]]
    symbols = latest["symbol"].astype(str)
    dupes = sorted(symbols[symbols.duplicated()].unique())
    if dupes:
        raise RecordError("signal", f"{dupes[0]} {dates.max().date()}", "symbol", "appears more than once on the latest date")
    scores = pd.to_numeric(latest["score"], errors="coerce").astype("float64")
    return pd.Series(scores.to_numpy(), index=symbols.to_numpy(), name="score").dropna()


class RankedLong(Strategy):
    """Long the top-N scores above a threshold with an ATR bracket; see the module docstring."""

    def __init__(self, config: RankedLongConfig | None = None, name: str = "ranked_long"):
        self.config = config if config is not None else RankedLongConfig()
        self.name = name

    def generate(self, ctx: StrategyContext) -> list[OrderIntent]:
        cfg = self.config
        scores = latest_scores(ctx.signals)
        if scores.empty:
            return []
        signal_date = pd.Timestamp(pd.to_datetime(ctx.signals["date"]).max())
        stats = last_close_and_atr(ctx.bars, cfg.atr_period)
        return self._exits(ctx, scores, stats) + self._entries(ctx, scores, stats, signal_date)

    def _exits(self, ctx: StrategyContext, scores: pd.Series, stats: pd.DataFrame) -> list[OrderIntent]:
        if self.config.exit_threshold is None:
            return []
        out = []
        for symbol in sorted(ctx.book.positions):
            pos = ctx.book.positions[symbol]
            if pos.qty <= 0 or symbol not in scores.index or not scores[symbol] < self.config.exit_threshold:
                continue
            close = stats["last_close"].get(symbol, float("nan"))
            if not (math.isfinite(close) and close > 0):
                logger.warning("ranked_long: no usable close for %s; exit skipped", symbol)
                continue
            out.append(
                self.make_intent(
                    ctx, symbol, Side.SELL, int(pos.qty), round_to_tick(close, Rounding.NEAREST), order_type=OrderType.MARKET
                )
            )
        return out

    def _entries(self, ctx: StrategyContext, scores: pd.Series, stats: pd.DataFrame, signal_date: pd.Timestamp) -> list[OrderIntent]:
        cfg, book = self.config, ctx.book
        eligible = scores[scores > cfg.entry_threshold]
        ranked = sorted(eligible.items(), key=lambda item: (-item[1], item[0]))[: cfg.top_n]
        remaining = to_decimal(book.buying_power)
        out = []
        for symbol, _score in ranked:
            if book.position_qty(symbol) != 0:
                continue
            if symbol not in stats.index or stats.at[symbol, "last_date"] != signal_date:
                logger.info("ranked_long: %s has no bar on the signal date %s; skipped", symbol, signal_date.date())
                continue
            close, atr = float(stats.at[symbol, "last_close"]), float(stats.at[symbol, "atr"])
            if not (math.isfinite(close) and close > 0 and math.isfinite(atr) and atr > 0):
                logger.info("ranked_long: %s lacks a usable close/ATR(%d); skipped", symbol, cfg.atr_period)
                continue
            prices = bracket_prices(close, atr, cfg)
            if prices is None:
                logger.info("ranked_long: %s stop would be at or below $0; skipped", symbol)
                continue
            qty = position_size(book.equity, prices.entry, prices.stop, ctx.budget, remaining)
            if qty < 1:
                logger.info("ranked_long: %s sizes to 0 shares; skipped", symbol)
                continue
            remaining -= qty * to_decimal(prices.entry)
            out.append(self.make_intent(ctx, symbol, Side.BUY, qty, prices.entry, prices.stop, prices.take_profit))
        return out


STRATEGY = RankedLong()
