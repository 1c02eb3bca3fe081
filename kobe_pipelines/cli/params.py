"""Command-line values checked before any command runs: prices and share counts.

A value out of these ranges is a usage error naming the option; nothing downstream (tick
rounding, the gate, the ledger) ever sees it.
"""

from __future__ import annotations

import math

import click

MAX_PRICE = 100_000_000.0
"""USD per share: far above any listed US share, and small enough that tick rounding in 28-digit
Decimal arithmetic is exact."""

MAX_SHARES = 2**63 - 1
"""The order ledger stores share counts as signed 64-bit integers."""


class PriceType(click.ParamType):
    """A price in USD per share: a finite number, > 0, at most `MAX_PRICE`."""

    name = "usd"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float):
            number = value
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a price in USD per share (e.g. 187.45)", param, ctx)
        if not math.isfinite(number) or number <= 0:
            self.fail(f"{value!r} is not a finite price > 0 USD per share", param, ctx)
        if number > MAX_PRICE:
            self.fail(f"{value!r} is above {MAX_PRICE:,.0f} USD per share, more than any US share trades at", param, ctx)
        return number


PRICE = PriceType()
SHARES = click.IntRange(1, MAX_SHARES)
