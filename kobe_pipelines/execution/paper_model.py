"""How the paper broker fills orders against daily bars (pure functions, Decimal prices).

A daily bar says where the price went (open, high, low, close), not in which order, so
every rule takes the reading that is worst for us unless the bar proves otherwise. The
slippage `slip` is a fraction (bps / 10,000), always applied against us, and fill prices are
rounded to $0.0001 against us too (a buy's up, a sell's down).

Entry (a day order: it can fill only on the bar of its trading date, else it expires):
- limit buy at L fills when the bar trades THROUGH the limit, low < L (a touch, low == L, is not
  a fill: our order may have been behind others at that price). Price: min(open, L) plus
  slippage, but never above L (a limit order never fills worse than its limit), so a bar that
  opens above L fills at L exactly and a bar that opens below L fills at min(L, open x (1+slip)).
  A limit sell mirrors it: high > L, max(open, L) less slippage, never below L.
- market: the open plus slippage (buy) or less slippage (sell).

Exit legs (one-cancels-other; they become live when the entry fills). For a long (a buy
entry; the legs sell):
- stop S triggers when low <= S (a touch triggers a stop) and fills as a market order: at S
  less slippage, or at the OPEN less slippage when the bar opens at or below S (a gap through
  the stop fills worse than the stop);
- take-profit T fills when high > T, at T (or better at a gap open above T, less slippage,
  never below T);
- both touched in one bar: the STOP wins (the bar does not say which came first), unless the
  bar opened through the target: the open is the first trade, so the target filled first.
On the entry's own bar: the stop is checked, because every price path from the open to a low
at or below S passes the entry limit L > S first, so the stop can only have triggered after the
fill. The take-profit is checked only when the entry filled at the open (the bar opened
through the limit, or a market entry); otherwise the high may have come before the fill.
A short (a sell entry; the legs buy) mirrors every rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from kobe_pipelines.execution.broker import LegRole
from kobe_pipelines.orders import Side

FILL_TICK = Decimal("0.0001")


@dataclass(frozen=True)
class Bar:
    """One session's prices for one symbol, USD per share."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True)
class ModelFill:
    price: Decimal
    at_open: bool  # the fill happened at the bar's open


@dataclass(frozen=True)
class ExitFill:
    role: LegRole
    price: Decimal
    at_open: bool


def pay_up(price: Decimal, slip: Decimal) -> Decimal:
    """A buy's price after slippage, rounded up to $0.0001."""
    return (price * (1 + slip)).quantize(FILL_TICK, rounding=ROUND_CEILING)


def receive_less(price: Decimal, slip: Decimal) -> Decimal:
    """A sell's price after slippage, rounded down to $0.0001."""
    return (price * (1 - slip)).quantize(FILL_TICK, rounding=ROUND_FLOOR)


def entry_fill(side: Side, limit: Decimal | None, bar: Bar, slip: Decimal) -> ModelFill | None:
    """The entry's fill on its trading date's bar, or None (it expires)."""
    if limit is None:  # market order: at the open
        price = pay_up(bar.open, slip) if side is Side.BUY else receive_less(bar.open, slip)
        return ModelFill(price, True)
    if side is Side.BUY:
        if not bar.low < limit:
            return None
        return ModelFill(min(limit, pay_up(min(bar.open, limit), slip)), bar.open < limit)
    if not bar.high > limit:
        return None
    return ModelFill(max(limit, receive_less(max(bar.open, limit), slip)), bar.open > limit)


def exit_fill(
    entry_side: Side,
    stop: Decimal | None,
    target: Decimal | None,
    bar: Bar,
    slip: Decimal,
    *,
    entry_bar: bool = False,
    entry_at_open: bool = False,
) -> ExitFill | None:
    """Which exit leg fills on `bar`, and at what price; None if neither.

    `entry_bar`: this is the bar the entry filled on; `entry_at_open`: it filled at the open.
    """
    target_live = target is not None and (not entry_bar or entry_at_open)
    if entry_side is Side.BUY:  # long: the legs sell
        if target_live and bar.open > target:
            return ExitFill(LegRole.TAKE_PROFIT, max(target, receive_less(bar.open, slip)), True)
        if stop is not None and bar.low <= stop:
            gap = bar.open <= stop
            return ExitFill(LegRole.STOP_LOSS, receive_less(bar.open if gap else stop, slip), gap)
        if target_live and bar.high > target:
            return ExitFill(LegRole.TAKE_PROFIT, target, False)
        return None
    # short: the legs buy
    if target_live and bar.open < target:
        return ExitFill(LegRole.TAKE_PROFIT, min(target, pay_up(bar.open, slip)), True)
    if stop is not None and bar.high >= stop:
        gap = bar.open >= stop
        return ExitFill(LegRole.STOP_LOSS, pay_up(bar.open if gap else stop, slip), gap)
    if target_live and bar.low < target:
        return ExitFill(LegRole.TAKE_PROFIT, target, False)
    return None
