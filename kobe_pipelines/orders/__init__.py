"""The order vocabulary (no Dagster import): the words strategies, risk and execution all speak.

- `intent`: `Side`, `OrderType`, `OrderIntent`, `SignalLineage`;
- `ticks`: the tick grid (Decimal), conservative rounding, `round_bracket`;
- `client_order_id`: the one deterministic id scheme (at most 48 characters);
- `validation`: `parse_intent` and the bracket and tick rules, one rule set for every reader.

This package imports nothing from `strategies`, `risk` or `execution`; they import it.
"""

from kobe_pipelines.orders.client_order_id import (
    MAX_CLIENT_ORDER_ID,
    client_order_id,
    is_valid_client_order_id,
    order_details,
)
from kobe_pipelines.orders.intent import OrderIntent, OrderType, Side, SignalLineage
from kobe_pipelines.orders.ticks import Rounding, as_decimal, is_on_tick, on_tick_decimal, round_bracket, tick_for, to_tick
from kobe_pipelines.orders.validation import ParsedIntent, bracket_problems, parse_intent, tick_problems

__all__ = [
    "MAX_CLIENT_ORDER_ID", "OrderIntent", "OrderType", "ParsedIntent", "Rounding", "Side", "SignalLineage", "as_decimal",
    "bracket_problems", "client_order_id", "is_on_tick", "is_valid_client_order_id", "on_tick_decimal", "order_details",
    "parse_intent", "round_bracket", "tick_for", "tick_problems", "to_tick",
]
