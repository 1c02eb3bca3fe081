from __future__ import annotations

import numpy as np
import pytest

from kobe_pipelines.risk.intent_fields import off_tick, parse_intent
from kobe_pipelines.risk.types import OrderIntent, OrderType, Side


def test_parse_intent_when_values_come_from_numpy_then_accepted_as_plain_numbers():
    parsed = parse_intent(OrderIntent("n-1", "AAPL", "buy", np.int64(100), np.float64(101.25), np.float32(99.5)))
    assert (parsed.side, parsed.qty, parsed.entry, parsed.stop, parsed.problems) == (Side.BUY, 100, 101.25, 99.5, {})
    assert type(parsed.qty) is int


def test_parse_intent_when_order_type_given_as_text_then_enum():
    assert parse_intent(OrderIntent("n-2", "AAPL", Side.SELL, 1, 10.0, order_type="market")).order_type is OrderType.MARKET


def test_parse_intent_when_client_order_id_longer_than_brokers_accept_then_problem_names_it():
    parsed = parse_intent(OrderIntent("x" * 129, "AAPL", Side.BUY, 1, 10.0))
    assert "client_order_id" in parsed.problems and parsed.client_order_id is None


@pytest.mark.parametrize(("price", "off"), [
    (100.0, False), (100.01, False), (100.005, True), (1.0, False), (0.9999, False), (0.99995, True),
    (12345.67, False), (0.0001, False), (3.3, False),  # 3.3 is 329.99999999999997 cents in binary
])
def test_off_tick_when_price_vs_penny_above_a_dollar_and_hundredth_of_a_cent_below(price, off):
    assert off_tick(price) is off
