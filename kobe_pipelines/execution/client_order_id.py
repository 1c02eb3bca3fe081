"""Deterministic client order ids: the same intent always gets the same id.

A retried sensor tick, a restarted process or a submission that timed out produces the
identical id, so the gate's duplicate check and the broker's unique-id rule stop a second
order. The id reads `kobe-<strategy>-<SYMBOL>-<YYYYMMDD>-<digest>`, where the digest is the
first 16 hex characters of SHA-256 over the canonical intent (strategy, symbol, trading date,
side, quantity, order type and the prices on the tick grid). Strategy and symbol are cut and
reduced to `[A-Za-z0-9_.]` for readability only; the digest covers their full text.
At most 5 + 24 + 1 + 12 + 1 + 8 + 1 + 16 = 68 characters (Alpaca accepts 128).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from kobe_pipelines.errors import RecordError
from kobe_pipelines.execution.ticks import to_tick
from kobe_pipelines.risk.types import OrderIntent, OrderType, Side

PREFIX = "kobe"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


def make_client_order_id(
    strategy: str,
    symbol: str,
    trading_date: str | dt.date,
    side: Side | str,
    qty: int,
    entry: Any,
    stop: Any = None,
    take_profit: Any = None,
    order_type: OrderType | str = OrderType.LIMIT,
) -> str:
    """The client order id of this intent (see the module docstring). Raises `RecordError`
    naming the field when a value cannot identify an order."""
    record = f"{symbol} {trading_date}"
    if not isinstance(strategy, str) or not strategy.strip():
        raise RecordError("order", record, "strategy", "must be a non-empty name", strategy)
    if not isinstance(symbol, str) or not symbol.strip():
        raise RecordError("order", record, "symbol", "must be a ticker", symbol)
    session = _session(trading_date, record)
    try:
        side_value = Side(side).value
    except ValueError:
        raise RecordError("order", record, "side", "must be 'buy' or 'sell'", side) from None
    try:
        type_value = OrderType(order_type).value
    except ValueError:
        raise RecordError("order", record, "order_type", "must be 'limit' or 'market'", order_type) from None
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        raise RecordError("order", record, "qty", "must be a positive whole number of shares", qty)
    canonical = {
        "strategy": strategy,
        "symbol": symbol,
        "trading_date": session.isoformat(),
        "side": side_value,
        "qty": qty,
        "order_type": type_value,
        "entry": str(to_tick(entry, field="entry", record=record)),
        "stop": None if stop is None else str(to_tick(stop, field="stop", record=record)),
        "take_profit": None if take_profit is None else str(to_tick(take_profit, field="take_profit", record=record)),
    }
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:16]
    strategy_part = _UNSAFE.sub("_", strategy.strip())[:24]
    symbol_part = _UNSAFE.sub("_", symbol.strip())[:12]
    return f"{PREFIX}-{strategy_part}-{symbol_part}-{session:%Y%m%d}-{digest}"


def client_order_id_for(intent: OrderIntent) -> str:
    """`make_client_order_id` over an intent's own fields (its `client_order_id` is ignored)."""
    return make_client_order_id(intent.strategy, intent.symbol, intent.trading_date, intent.side, intent.qty,
                                intent.entry, intent.stop, intent.take_profit, intent.order_type)


def _session(value: str | dt.date, record: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise RecordError("order", record, "trading_date", "must be a date YYYY-MM-DD", value) from None
