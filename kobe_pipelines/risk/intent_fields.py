"""Validation of an order intent's fields, without raising.

The gate turns every problem into a failed check whose reason names the field, so a bad
intent is still decided and logged. Conventions: prices are USD per share, finite and > 0;
qty is a whole number of shares > 0 (an integral float such as 100.0 is accepted, 1.5 is not);
prices sent to the venue must sit on the tick grid of SEC Rule 612: $0.01 at or above $1.00,
$0.0001 below.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from kobe_pipelines.risk.types import OrderIntent, OrderType, Side

MAX_CLIENT_ORDER_ID = 128  # the longest id US brokers accept (Alpaca: 128 characters)
_INT64 = 2**63 - 1


@dataclass(slots=True)
class ParsedIntent:
    """Typed values of an intent; a field is None when absent or invalid (see `problems`)."""

    client_order_id: str | None
    symbol: str | None
    side: Side | None
    order_type: OrderType | None
    qty: int | None
    entry: float | None
    stop: float | None
    take_profit: float | None
    problems: dict[str, str]  # field -> "field 'x' must ... (got ...)"

    @property
    def prices_ok(self) -> bool:
        return not ({"entry", "stop", "take_profit"} & self.problems.keys())


def parse_intent(intent: Any) -> ParsedIntent:
    problems: dict[str, str] = {}
    if not isinstance(intent, OrderIntent):
        problems["intent"] = f"field 'intent' must be an OrderIntent (got {type(intent).__name__})"
        return ParsedIntent(None, None, None, None, None, None, None, None, problems)
    return ParsedIntent(
        _client_order_id(intent.client_order_id, problems),
        _symbol(intent.symbol, problems),
        _enum(Side, "side", intent.side, problems),
        _enum(OrderType, "order_type", intent.order_type, problems),
        _qty(intent.qty, problems),
        _price("entry", intent.entry, problems, required=True),
        _price("stop", intent.stop, problems, required=False),
        _price("take_profit", intent.take_profit, problems, required=False),
        problems,
    )


def off_tick(price: float) -> bool:
    """True when `price` (USD) is not a whole number of ticks (SEC Rule 612 sub-penny rule)."""
    ticks = price * 100.0 if price >= 1.0 else price * 10_000.0
    return abs(ticks - round(ticks)) > 1e-6


def _client_order_id(value: Any, problems: dict[str, str]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems["client_order_id"] = f"field 'client_order_id' must be a non-empty text (got {value!r})"
        return None
    if len(value) > MAX_CLIENT_ORDER_ID or value != value.strip():
        problems["client_order_id"] = (
            f"field 'client_order_id' must be at most {MAX_CLIENT_ORDER_ID} characters without surrounding spaces "
            f"(got {value[:40]!r}, {len(value)} characters)")
        return None
    return value


def _symbol(value: Any, problems: dict[str, str]) -> str | None:
    if not isinstance(value, str) or not value or not value.isprintable() or value != value.strip() or " " in value:
        problems["symbol"] = f"field 'symbol' must be a ticker without spaces (got {value!r})"
        return None
    return value


def _enum(kind: type, field: str, value: Any, problems: dict[str, str]) -> Any:
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except (ValueError, TypeError):
        allowed = " or ".join(repr(member.value) for member in kind)
        problems[field] = f"field '{field}' must be {allowed} (got {value!r})"
        return None


def _qty(value: Any, problems: dict[str, str]) -> int | None:
    if type(value) is not int:  # fast path first: most intents carry a plain int
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            problems["qty"] = f"field 'qty' must be a whole number of shares (got {value!r})"
            return None
        value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            problems["qty"] = f"field 'qty' must be a whole number of shares (got {value!r})"
            return None
        value = int(value)
    if value <= 0:
        problems["qty"] = f"field 'qty' must be a positive number of shares (got {value!r})"
        return None
    if value > _INT64:
        problems["qty"] = f"field 'qty' is out of range (got {value!r})"
        return None
    return value


def _price(field: str, value: Any, problems: dict[str, str], required: bool) -> float | None:
    if value is None:
        if required:
            problems[field] = f"field '{field}' is required (a price in USD per share)"
        return None
    if type(value) is not float and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        problems[field] = f"field '{field}' must be a price in USD per share (got {value!r})"
        return None
    price = float(value)
    if not math.isfinite(price) or price <= 0:
        problems[field] = f"field '{field}' must be a finite price > 0 USD per share (got {value!r})"
        return None
    return price
