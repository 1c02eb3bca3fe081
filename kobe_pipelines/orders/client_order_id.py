"""The client order id: one deterministic scheme, at most 48 characters.

48 characters is the tightest limit among Alpaca's published specifications. The same order
always gets the same id, so a retried sensor tick, a restarted process or a submission whose
answer was lost produces the identical id, and the gate's duplicate check and the broker's
unique-id rule stop a second order.

The id reads `<strategy>-<YYYYMMDD>-<SYMBOL>-<b|s>-<digest>`: the strategy (at most 8 characters)
and symbol (at most 8) reduced to `[A-Za-z0-9.]`, the session, the side, and the first 16 hex
characters of SHA-256 over the canonical identity: strategy, symbol, session and side in full,
plus the `details` the caller says identify the order. At most 8+1+8+1+8+1+1+1+16 = 45 characters.

What identifies an order is the caller's choice, stated where it calls:
- a strategy's order: (strategy, symbol, session, side), nothing else: an edited strategy re-run
  for the same session meets its earlier order instead of adding one;
- a manual order: also its quantity, order type and prices on the tick grid, so a person can
  place two different orders in one symbol and session, and the same command twice is one order;
- a protective stop placed for a bracket whose stop leg is missing: the bracket's id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any, Mapping

from kobe_pipelines.errors import RecordError
from kobe_pipelines.orders.intent import OrderType, Side
from kobe_pipelines.orders.ticks import to_tick

MAX_CLIENT_ORDER_ID = 48
CLIENT_ORDER_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,48}")
_UNSAFE = re.compile(r"[^A-Za-z0-9.]+")


def client_order_id(strategy: str, symbol: str, trading_date: str | dt.date, side: Side | str,
                    details: Mapping[str, Any] | None = None) -> str:
    """The id of the order (see the module docstring). `details`: further JSON-able values that
    identify it. Raises `RecordError` naming the field when a value cannot identify an order."""
    record = f"{symbol} {trading_date}"
    if not isinstance(strategy, str) or not strategy.strip():
        raise RecordError("order", record, "strategy", "must be a non-empty name", strategy)
    if not isinstance(symbol, str) or not symbol.strip():
        raise RecordError("order", record, "symbol", "must be a ticker", symbol)
    session = _session(trading_date, record)
    try:
        side_value = Side(side)
    except ValueError:
        raise RecordError("order", record, "side", "must be 'buy' or 'sell'", side) from None
    canonical = {"strategy": strategy, "symbol": symbol, "trading_date": session.isoformat(), "side": side_value.value,
                 **{f"detail.{k}": v for k, v in (details or {}).items()}}
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()[:16]
    strategy_part = _UNSAFE.sub("", strategy)[:8] or "x"
    symbol_part = _UNSAFE.sub("", symbol)[:8] or "x"
    return f"{strategy_part}-{session:%Y%m%d}-{symbol_part}-{side_value.value[0]}-{digest}"


def order_details(qty: Any, entry: Any, stop: Any = None, take_profit: Any = None,
                  order_type: OrderType | str = OrderType.LIMIT, record: str = "order") -> dict[str, Any]:
    """Quantity, order type and prices on the tick grid (nearest) as identity `details`: two
    prices that differ only by float noise give the same id. Raises `RecordError` naming the field."""
    try:
        type_value = OrderType(order_type).value
    except ValueError:
        raise RecordError("order", record, "order_type", "must be 'limit', 'market' or 'stop'", order_type) from None
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        raise RecordError("order", record, "qty", "must be a positive whole number of shares", qty)

    def price(value: Any, field: str) -> str | None:
        return None if value is None else str(to_tick(value, field=field, record=record))

    return {"qty": qty, "order_type": type_value, "entry": price(entry, "entry"), "stop": price(stop, "stop"),
            "take_profit": price(take_profit, "take_profit")}


def is_valid_client_order_id(value: Any) -> bool:
    return isinstance(value, str) and CLIENT_ORDER_ID_PATTERN.fullmatch(value) is not None


def _session(value: str | dt.date, record: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise RecordError("order", record, "trading_date", "must be a date YYYY-MM-DD", value) from None


__all__ = ["CLIENT_ORDER_ID_PATTERN", "MAX_CLIENT_ORDER_ID", "client_order_id", "is_valid_client_order_id",
           "order_details"]
