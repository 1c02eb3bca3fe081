"""Validation of an order intent's fields, without raising: the one rule set for every reader.

`parse_intent` returns the typed values and a problem per bad field; each reader turns the
problems into its own answer: the policy gate into failed checks (a bad intent is still decided
and logged), a strategy run into rejected intents (`strategies.base.validate_intents`), a broker
into a `RecordError` (`execution.broker.OrderSpec`).

Rules. client_order_id: 1-48 of `[A-Za-z0-9._:-]` (`client_order_id`); symbol: printable, no
spaces; side `buy`/`sell`; order_type `limit`/`market`/`stop`; qty a whole number of shares > 0
(an integral float such as 100.0 is accepted, 1.5 is not; `strict` accepts only an int);
prices USD per share, finite and > 0, `entry` required; the bracket's sides (a buy needs
stop < entry < take-profit, a sell the reverse) and the tick grid (`ticks`) are separate checks
(`bracket_problems`, `tick_problems`) because the gate reports them as checks of their own.
`strict` (strategies) also requires `Side`/`OrderType` members rather than their text.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from kobe_pipelines.orders.client_order_id import MAX_CLIENT_ORDER_ID, is_valid_client_order_id
from kobe_pipelines.orders.intent import OrderIntent, OrderType, SignalLineage, Side
from kobe_pipelines.orders.ticks import is_on_tick

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


def parse_intent(intent: Any, strict: bool = False) -> ParsedIntent:
    problems: dict[str, str] = {}
    if not isinstance(intent, OrderIntent):
        problems["intent"] = f"field 'intent' must be an OrderIntent (got {type(intent).__name__})"
        return ParsedIntent(None, None, None, None, None, None, None, None, problems)
    parsed = ParsedIntent(
        _client_order_id(intent.client_order_id, problems),
        _symbol(intent.symbol, problems),
        _enum(Side, "side", intent.side, problems, strict),
        _enum(OrderType, "order_type", intent.order_type, problems, strict),
        _qty(intent.qty, problems, strict),
        _price("entry", intent.entry, problems, required=True),
        _price("stop", intent.stop, problems, required=False),
        _price("take_profit", intent.take_profit, problems, required=False),
        problems,
    )
    if intent.lineage is not None and not isinstance(intent.lineage, SignalLineage):
        problems["lineage"] = f"field 'lineage' must be a SignalLineage or None (got {type(intent.lineage).__name__})"
    return parsed


def bracket_problems(p: ParsedIntent) -> dict[str, str]:
    """The legs on the wrong side of the entry: a buy needs stop < entry < take-profit, a sell the
    reverse. Empty when the sides are right or cannot be judged (a field is invalid)."""
    if p.side is None or p.entry is None:
        return {}
    buy = p.side is Side.BUY
    out = {}
    if p.stop is not None and (p.stop >= p.entry if buy else p.stop <= p.entry):
        out["stop"] = (f"field 'stop' must be {'below' if buy else 'above'} the entry {p.entry:.4f} for a "
                       f"{p.side.value} (got {p.stop:.4f})")
    if p.take_profit is not None and (p.take_profit <= p.entry if buy else p.take_profit >= p.entry):
        out["take_profit"] = (f"field 'take_profit' must be {'above' if buy else 'below'} the entry {p.entry:.4f} "
                              f"for a {p.side.value} (got {p.take_profit:.4f})")
    return out


def tick_problems(p: ParsedIntent) -> dict[str, str]:
    """Prices a broker would be sent that are off the tick grid (a market order sends no entry)."""
    priced = [("stop", p.stop), ("take_profit", p.take_profit)]
    if p.order_type is not OrderType.MARKET:
        priced.append(("entry", p.entry))
    return {name: f"field '{name}' {price!r} is not on the {'$0.01' if price >= 1 else '$0.0001'} tick"
            for name, price in priced if price is not None and not is_on_tick(price)}


def _client_order_id(value: Any, problems: dict[str, str]) -> str | None:
    if not is_valid_client_order_id(value):
        shown = f"{value[:60]!r}, {len(value)} characters" if isinstance(value, str) else repr(value)
        problems["client_order_id"] = (f"field 'client_order_id' must be 1-{MAX_CLIENT_ORDER_ID} of [A-Za-z0-9._:-] "
                                       f"(got {shown})")
        return None
    return value


def _symbol(value: Any, problems: dict[str, str]) -> str | None:
    if not isinstance(value, str) or not value or not value.isprintable() or value != value.strip() or " " in value:
        problems["symbol"] = f"field 'symbol' must be a ticker without spaces (got {value!r})"
        return None
    return value


def _enum(kind: type, field: str, value: Any, problems: dict[str, str], strict: bool) -> Any:
    if isinstance(value, kind):
        return value
    allowed = " or ".join(repr(member.value) for member in kind)
    if strict:
        problems[field] = f"field '{field}' must be a {kind.__name__} member, {allowed} (got {value!r})"
        return None
    try:
        return kind(value)
    except (ValueError, TypeError):
        problems[field] = f"field '{field}' must be {allowed} (got {value!r})"
        return None


def _qty(value: Any, problems: dict[str, str], strict: bool) -> int | None:
    if type(value) is not int:  # fast path first: most intents carry a plain int
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or (strict and not isinstance(value, numbers.Integral)):
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
