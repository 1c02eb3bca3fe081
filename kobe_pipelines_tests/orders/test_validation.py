from __future__ import annotations

import numpy as np

from kobe_pipelines.orders import OrderIntent, OrderType, Side, SignalLineage, parse_intent
from kobe_pipelines.orders.validation import bracket_problems, tick_problems


def test_parse_intent_when_values_come_from_numpy_then_accepted_as_plain_numbers():
    parsed = parse_intent(OrderIntent("n-1", "AAPL", "buy", np.int64(100), np.float64(101.25), np.float32(99.5)))
    assert (parsed.side, parsed.qty, parsed.entry, parsed.stop, parsed.problems) == (Side.BUY, 100, 101.25, 99.5, {})
    assert type(parsed.qty) is int


def test_parse_intent_when_order_type_given_as_text_then_enum_unless_strict():
    intent = OrderIntent("n-2", "AAPL", Side.SELL, 1, 10.0, order_type="market")
    assert parse_intent(intent).order_type is OrderType.MARKET
    assert "order_type" in parse_intent(intent, strict=True).problems


def test_parse_intent_when_strict_then_a_whole_float_quantity_is_refused():
    intent = OrderIntent("n-3", "AAPL", Side.BUY, 10.0, 10.0)
    assert parse_intent(intent).qty == 10 and "qty" in parse_intent(intent, strict=True).problems


def test_parse_intent_when_client_order_id_longer_than_48_then_problem_names_it():
    parsed = parse_intent(OrderIntent("x" * 49, "AAPL", Side.BUY, 1, 10.0))
    assert "client_order_id" in parsed.problems and parsed.client_order_id is None
    assert parse_intent(OrderIntent("x" * 48, "AAPL", Side.BUY, 1, 10.0)).problems == {}


def test_parse_intent_when_lineage_not_a_signal_lineage_then_problem_names_it():
    assert "lineage" in parse_intent(OrderIntent("n-4", "AAPL", Side.BUY, 1, 10.0, lineage={"model": "m"})).problems
    assert parse_intent(OrderIntent("n-5", "AAPL", Side.BUY, 1, 10.0, lineage=SignalLineage("m"))).problems == {}


def test_bracket_problems_when_legs_on_the_wrong_side_then_each_named():
    buy = parse_intent(OrderIntent("b-1", "AAPL", Side.BUY, 1, 100.0, stop=101.0, take_profit=99.0))
    assert set(bracket_problems(buy)) == {"stop", "take_profit"}
    sell = parse_intent(OrderIntent("s-1", "AAPL", Side.SELL, 1, 100.0, stop=101.0, take_profit=99.0))
    assert bracket_problems(sell) == {}


def test_tick_problems_when_market_order_then_its_entry_is_not_checked():
    market = parse_intent(OrderIntent("m-1", "AAPL", Side.SELL, 1, 100.005, order_type=OrderType.MARKET))
    limit = parse_intent(OrderIntent("l-1", "AAPL", Side.SELL, 1, 100.005, stop=100.015))
    assert tick_problems(market) == {} and set(tick_problems(limit)) == {"entry", "stop"}


def test_order_intent_when_round_tripped_through_its_dict_then_equal():
    intent = OrderIntent("r-1", "AAPL", Side.BUY, 5, 10.0, 9.0, 12.0, strategy="s", strategy_version="v",
                         trading_date="2024-03-04", lineage=SignalLineage("m", "3", "lv", "h", "sh", "2024-03-01", 0.5))
    assert OrderIntent.from_dict(intent.to_dict()) == intent
