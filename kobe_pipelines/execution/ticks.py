"""Tick rounding of US equity prices (SEC Rule 612: $0.01 at or above $1.00, $0.0001 below).

Alpaca rejects a sub-penny price at or above $1.00. All arithmetic is `Decimal`, from the
float's shortest text (`repr`), so 187.45 is 187.45 and never 187.4499999999999886.

Two uses, two rules:

- `to_tick(price)` (nearest) is what a broker applies to prices the policy gate already
  approved: the gate refuses off-tick prices, so nearest rounding only removes float noise,
  and `on_tick_decimal` refuses any price that would move by more than that noise (a broker
  sends exactly the approved price or nothing).
- `round_bracket(side, entry, stop, take_profit)` is for a person or a strategy turning a
  computed price into an order, before the gate. It rounds conservatively, never towards more
  risk or a worse price: a buy's entry rounds down and a sell's up (never pay more than
  asked); the stop rounds towards the entry (a buy's up, a sell's down: the loss per share
  never grows past what was computed); the take-profit rounds towards the entry (a buy's
  down, a sell's up: the exit is never less likely to fill). If rounding makes the legs touch
  or cross (a buy needs stop < entry < take-profit), it raises `RecordError` naming the leg.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from kobe_pipelines.errors import RecordError
from kobe_pipelines.risk.types import Side

PENNY = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
ONE_DOLLAR = Decimal("1")
# Largest distance from the grid accepted as float noise on an approved price, in ticks.
NOISE_TICKS = Decimal("0.000001")

NEAREST, DOWN, UP = "nearest", "down", "up"
_MODES = {NEAREST: ROUND_HALF_EVEN, DOWN: ROUND_FLOOR, UP: ROUND_CEILING}


def as_decimal(price: Any, field: str = "price", record: str = "order") -> Decimal:
    """`price` (USD per share) as a finite Decimal > 0, or `RecordError` naming `field`."""
    if isinstance(price, bool) or not isinstance(price, (int, float, Decimal, str)):
        raise RecordError("order", record, field, "must be a price in USD per share", price)
    if isinstance(price, float) and not math.isfinite(price):
        raise RecordError("order", record, field, "must be a finite price", price)
    try:
        value = Decimal(repr(price)) if isinstance(price, float) else Decimal(price)
    except InvalidOperation:
        raise RecordError("order", record, field, "must be a price in USD per share", price) from None
    if not value.is_finite() or value <= 0:
        raise RecordError("order", record, field, "must be a finite price > 0 USD per share", price)
    return value


def tick_for(price: Decimal) -> Decimal:
    """The tick that applies at `price`: $0.01 at or above $1.00, $0.0001 below."""
    return PENNY if price >= ONE_DOLLAR else SUB_PENNY


def to_tick(price: Any, mode: str = NEAREST, field: str = "price", record: str = "order") -> Decimal:
    """`price` on the tick grid, rounded `mode` ("nearest", "down" or "up").

    The tick is chosen from the price before rounding (a price at or above $1.00 never rounds
    below $1.00 on the penny grid; a sub-dollar price rounding up to 1.0000 is written 1.00).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {sorted(_MODES)} (got {mode!r})")
    value = as_decimal(price, field, record)
    rounded = value.quantize(tick_for(value), rounding=_MODES[mode])
    if rounded >= ONE_DOLLAR:
        rounded = rounded.quantize(PENNY)  # exact: 1.0000 -> 1.00
    if rounded <= 0:
        raise RecordError("order", record, field, "rounds to zero on the $0.0001 tick", price)
    return rounded


def on_tick_decimal(price: Any, field: str = "price", record: str = "order") -> Decimal:
    """An approved price as a Decimal on the grid; `RecordError` if it is off the grid by more
    than float noise (the gate's tick check should have refused it)."""
    value = as_decimal(price, field, record)
    rounded = to_tick(value, NEAREST, field, record)
    if abs(rounded - value) > tick_for(value) * NOISE_TICKS:
        raise RecordError("order", record, field, f"is not on the {tick_for(value)} tick", price)
    return rounded


def round_bracket(
    side: Side | str,
    entry: Any,
    stop: Any = None,
    take_profit: Any = None,
    record: str = "order",
    check_sides: bool = True,
) -> tuple[Decimal, Decimal | None, Decimal | None]:
    """Entry, stop and take-profit rounded conservatively for `side` (see the module docstring).
    `check_sides=False` skips the leg-order check (for a caller that lets the gate judge it)."""
    side = Side(side)
    buy = side is Side.BUY
    entry_d = to_tick(entry, DOWN if buy else UP, "entry", record)
    stop_d = None if stop is None else to_tick(stop, UP if buy else DOWN, "stop", record)
    target_d = None if take_profit is None else to_tick(take_profit, DOWN if buy else UP, "take_profit", record)
    if not check_sides:
        return entry_d, stop_d, target_d
    if stop_d is not None and (stop_d >= entry_d if buy else stop_d <= entry_d):
        where = "below" if buy else "above"
        raise RecordError("order", record, "stop", f"must stay {where} the entry {entry_d} after tick rounding "
                          f"for a {side.value} (rounded to {stop_d})", stop)
    if target_d is not None and (target_d <= entry_d if buy else target_d >= entry_d):
        where = "above" if buy else "below"
        raise RecordError("order", record, "take_profit", f"must stay {where} the entry {entry_d} after tick "
                          f"rounding for a {side.value} (rounded to {target_d})", take_profit)
    return entry_d, stop_d, target_d
