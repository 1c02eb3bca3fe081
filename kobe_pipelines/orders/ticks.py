"""The price grid of US equities (SEC Rule 612, Reg NMS): $0.01 at or above $1.00, $0.0001 below.

Alpaca rejects a sub-penny price at or above $1.00. All arithmetic is `Decimal`: a float is read
from its shortest text (`repr`), so 187.45 is 187.45 and never 187.4499999999999886, then snapped
to `NOISE` ($1e-9) so that float noise from arithmetic (0.1 + 0.2 = 0.30000000000000004) never
pushes a price across a tick boundary.

Rounding modes (`Rounding`): DOWN never above the input, UP never below it, NEAREST with half a
tick rounding up. The tick is chosen from the price before rounding (a price at or above $1.00
never rounds below $1.00 on the penny grid; a sub-dollar price rounding up onto 1.0000 is written
1.00).

Two uses:
- `to_tick(price, rounding)` turns a computed price into an order price. `round_bracket` applies
  the conservative rule for a whole bracket: never towards more risk or a worse price: a buy's
  entry rounds down and a sell's up (never pay more than asked); the stop rounds towards the
  entry (a buy's up, a sell's down: the loss per share never grows); the take-profit rounds
  towards the entry (a buy's down, a sell's up: the exit is never less likely to fill). The same
  rule moves an order's prices after a split (`kobe_pipelines.execution.corporate_actions`).
- `on_tick_decimal(price)` is what a broker applies to a price the gate approved: it refuses any
  price off the grid by more than the noise (a broker sends exactly the approved price or nothing).
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from enum import Enum
from typing import Any

from kobe_pipelines.errors import RecordError
from kobe_pipelines.orders.intent import Side

PENNY = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
ONE_DOLLAR = Decimal("1")
NOISE = Decimal("1e-9")  # USD: a price within this of a grid point is on it


class Rounding(str, Enum):
    DOWN = "down"  # never above the input
    UP = "up"  # never below the input
    NEAREST = "nearest"  # half a tick rounds up


_MODES = {Rounding.DOWN: ROUND_FLOOR, Rounding.UP: ROUND_CEILING, Rounding.NEAREST: ROUND_HALF_UP}


def as_decimal(price: Any, field: str = "price", record: str = "order") -> Decimal:
    """`price` (USD per share) as a finite Decimal > 0 snapped to `NOISE`, or `RecordError` naming
    `field`. Floats are read from their shortest text."""
    if isinstance(price, bool) or not isinstance(price, (int, float, Decimal, str)):
        raise RecordError("order", record, field, "must be a price in USD per share", price)
    if isinstance(price, float) and not math.isfinite(price):
        raise RecordError("order", record, field, "must be a finite price", price)
    try:
        value = Decimal(repr(float(price))) if isinstance(price, float) else Decimal(price)
    except InvalidOperation:
        raise RecordError("order", record, field, "must be a price in USD per share", price) from None
    if not value.is_finite() or value <= 0:
        raise RecordError("order", record, field, "must be a finite price > 0 USD per share", price)
    return value.quantize(NOISE, rounding=ROUND_HALF_UP) if value.as_tuple().exponent < -9 else value


def tick_for(price: Any) -> Decimal:
    """The tick that applies at `price`: $0.01 at or above $1.00, $0.0001 below."""
    value = price if isinstance(price, Decimal) else as_decimal(price)
    return PENNY if value >= ONE_DOLLAR else SUB_PENNY


def to_tick(price: Any, rounding: Rounding | str = Rounding.NEAREST, field: str = "price", record: str = "order") -> Decimal:
    """`price` on the tick grid, rounded `rounding` (see the module docstring); `RecordError`
    naming `field` for a value that is not a price or rounds to zero."""
    mode = _MODES[Rounding(rounding)]
    value = as_decimal(price, field, record)
    rounded = value.quantize(tick_for(value), rounding=mode)
    if rounded >= ONE_DOLLAR:
        rounded = rounded.quantize(PENNY)  # exact: 1.0000 -> 1.00
    if rounded <= 0:
        raise RecordError("order", record, field, "rounds to zero on the $0.0001 tick", price)
    return rounded


def is_on_tick(price: Any) -> bool:
    """True when `price` is a whole number of its tick (within `NOISE`); False for a non-price."""
    try:
        value = as_decimal(price)
    except RecordError:
        return False
    return value == value.quantize(tick_for(value))


def on_tick_decimal(price: Any, field: str = "price", record: str = "order") -> Decimal:
    """An approved price as a Decimal on the grid; `RecordError` if it is off the grid (the gate's
    tick check should have refused it)."""
    value = as_decimal(price, field, record)
    if value != value.quantize(tick_for(value)):
        raise RecordError("order", record, field, f"is not on the {tick_for(value)} tick", price)
    return to_tick(value, Rounding.NEAREST, field, record)


def exit_rounding(position_sign: int, leg: str) -> Rounding:
    """The conservative rounding of an exit leg's price for a position of `position_sign` (+1
    long, -1 short): the stop towards the market (a long's up, a short's down), the take-profit
    towards the market (a long's down, a short's up). See `round_bracket`."""
    long = position_sign > 0
    if leg == "stop":
        return Rounding.UP if long else Rounding.DOWN
    return Rounding.DOWN if long else Rounding.UP


def entry_rounding(side_sign: int) -> Rounding:
    """A limit entry's conservative rounding: a buy's down, a sell's up (never pay more)."""
    return Rounding.DOWN if side_sign > 0 else Rounding.UP


def round_bracket(
    side: Any,
    entry: Any,
    stop: Any = None,
    take_profit: Any = None,
    record: str = "order",
    check_sides: bool = True,
) -> tuple[Decimal, Decimal | None, Decimal | None]:
    """Entry, stop and take-profit rounded conservatively for `side` (see the module docstring).
    If rounding makes the legs touch or cross, raises `RecordError` naming the leg;
    `check_sides=False` skips that check (for a caller that lets the gate judge it)."""
    side = Side(side)
    entry_d = to_tick(entry, entry_rounding(side.sign), "entry", record)
    stop_d = None if stop is None else to_tick(stop, exit_rounding(side.sign, "stop"), "stop", record)
    target_d = None if take_profit is None else to_tick(take_profit, exit_rounding(side.sign, "take_profit"),
                                                          "take_profit", record)
    if not check_sides:
        return entry_d, stop_d, target_d
    buy = side is Side.BUY
    if stop_d is not None and (stop_d >= entry_d if buy else stop_d <= entry_d):
        where = "below" if buy else "above"
        raise RecordError("order", record, "stop", f"must stay {where} the entry {entry_d} after tick rounding "
                          f"for a {side.value} (rounded to {stop_d})", stop)
    if target_d is not None and (target_d <= entry_d if buy else target_d >= entry_d):
        where = "above" if buy else "below"
        raise RecordError("order", record, "take_profit", f"must stay {where} the entry {entry_d} after tick "
                          f"rounding for a {side.value} (rounded to {target_d})", take_profit)
    return entry_d, stop_d, target_d
