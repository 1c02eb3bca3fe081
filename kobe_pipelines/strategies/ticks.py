"""Price grid of US equities (SEC Rule 612, Reg NMS): $0.01 at or above $1.00, $0.0001 below.

Prices are USD per share. Rounding is done in `Decimal` so that the result is exactly on the
grid; a float input is first snapped to 1e-9 USD so that float noise from arithmetic
(``100 - 2 * 1.4999999999999998``) does not push a price across a tick boundary.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import Enum

CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
ONE_DOLLAR = Decimal("1")
_SNAP = Decimal("1e-9")


class Rounding(str, Enum):
    DOWN = "down"  # toward zero price (never above the input)
    UP = "up"  # never below the input
    NEAREST = "nearest"  # half a tick rounds up


_MODES = {Rounding.DOWN: ROUND_FLOOR, Rounding.UP: ROUND_CEILING, Rounding.NEAREST: ROUND_HALF_UP}


def to_decimal(value: float | int | Decimal) -> Decimal:
    """Exact decimal of a price as written (``0.1`` -> ``Decimal('0.1')``), snapped to 1e-9."""
    if isinstance(value, Decimal):
        dec = value
    else:
        if isinstance(value, bool) or not math.isfinite(float(value)):
            raise ValueError(f"not a finite price: {value!r}")
        dec = Decimal(repr(float(value)))
    return dec.quantize(_SNAP, rounding=ROUND_HALF_UP)


def tick_size(price: float | Decimal) -> Decimal:
    """The tick (USD) that applies to `price`: $0.01 at or above $1.00, else $0.0001."""
    return CENT if to_decimal(price) >= ONE_DOLLAR else SUB_PENNY


def round_to_tick(price: float | Decimal, rounding: Rounding = Rounding.NEAREST) -> float:
    """`price` moved onto its tick grid in the given direction; returns a float for the order."""
    dec = to_decimal(price)
    tick = CENT if dec >= ONE_DOLLAR else SUB_PENNY
    rounded = dec.quantize(tick, rounding=_MODES[Rounding(rounding)])
    return float(rounded)


def is_on_tick(price: float | Decimal) -> bool:
    """True when `price` is a whole number of its tick (within the 1e-9 snap)."""
    dec = to_decimal(price)
    tick = CENT if dec >= ONE_DOLLAR else SUB_PENNY
    return dec == dec.quantize(tick)
