import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from kobe_pipelines.errors import RecordError
from kobe_pipelines.execution.broker import (
    LegRecord,
    LegRole,
    OrderClass,
    OrderRecord,
    OrderSpec,
    OrderStatus,
    protective_stop,
)
from kobe_pipelines.risk.types import OrderType, Side, UnapprovedOrderError
from kobe_pipelines_tests.execution.conftest import book, intent


def test_from_decision_when_approved_then_spec_holds_the_exact_prices(approve):
    spec = OrderSpec.from_decision(approve(entry=100.0, stop=95.0, take_profit=110.0))
    assert (spec.side, spec.qty, spec.limit_price, spec.stop, spec.take_profit) == (
        Side.BUY, 10, Decimal("100.00"), Decimal("95.00"), Decimal("110.00"))
    assert spec.order_class is OrderClass.BRACKET and spec.exit_side is Side.SELL


def test_from_decision_when_rejected_then_raises_unapproved(gate):
    rejected = gate.decide(intent(qty=-5), book())
    with pytest.raises(UnapprovedOrderError, match="rejected"):
        OrderSpec.from_decision(rejected)


def test_from_decision_when_decision_altered_after_the_gate_then_raises_unapproved(approve):
    decision = approve()
    forged = dataclasses.replace(decision, intent=intent(qty=10_000))  # same seal, another order
    with pytest.raises(UnapprovedOrderError, match="altered"):
        OrderSpec.from_decision(forged)


@pytest.mark.parametrize(("fields", "field"), [
    ({"qty": -5}, "qty"), ({"qty": 2.5}, "qty"), ({"qty": 0}, "qty"), ({"qty": True}, "qty"),
    ({"entry": float("nan")}, "entry"), ({"stop": float("inf")}, "stop"), ({"take_profit": -1.0}, "take_profit"),
    ({"stop": 101.0}, "stop"), ({"take_profit": 99.0}, "take_profit"), ({"side": "hold"}, "side"),
    ({"symbol": "A A"}, "symbol"), ({"coid": ""}, "client_order_id"), ({"entry": 100.005}, "entry"),
])
def test_from_intent_when_field_bad_then_raises_naming_the_field(fields, field):
    with pytest.raises(RecordError, match=f"field '{field}'"):
        OrderSpec.from_intent(intent(**fields))


def test_from_intent_when_sell_then_legs_must_mirror():
    spec = OrderSpec.from_intent(intent(side="sell", entry=100.0, stop=105.0, take_profit=90.0))
    assert spec.order_class is OrderClass.BRACKET and spec.exit_side is Side.BUY
    with pytest.raises(RecordError, match="field 'stop' must be above the entry"):
        OrderSpec.from_intent(intent(side="sell", entry=100.0, stop=95.0, take_profit=90.0))


def test_from_intent_when_market_then_no_limit_price_but_an_expected_price():
    spec = OrderSpec.from_intent(intent(order_type=OrderType.MARKET, stop=None, take_profit=90.0 + 20))
    assert (spec.limit_price, spec.expected_price, spec.order_class) == (None, Decimal("100.00"), OrderClass.OTO)


def _order(symbol: str, side: Side, qty: int, stop: float, stop_status: OrderStatus, filled: int = 0,
           entry_status: OrderStatus = OrderStatus.FILLED) -> OrderRecord:
    now = dt.datetime(2024, 3, 4, tzinfo=dt.timezone.utc)
    exit_side = Side.SELL if side is Side.BUY else Side.BUY
    entry_filled = qty if entry_status is OrderStatus.FILLED else 0
    return OrderRecord("c", "b", symbol, side, qty, OrderClass.BRACKET, now, (
        LegRecord(LegRole.ENTRY, side, 100.0, entry_status, entry_filled, 100.0 if entry_filled else None),
        LegRecord(LegRole.STOP_LOSS, exit_side, stop, stop_status, filled)))


def test_protective_stop_when_working_stops_cover_the_long_then_the_lowest():
    orders = [_order("AAA", Side.BUY, 10, 95.0, OrderStatus.NEW), _order("AAA", Side.BUY, 5, 93.0, OrderStatus.NEW)]
    assert protective_stop("AAA", 15, orders) == 93.0


def test_protective_stop_when_stops_cover_only_part_then_none():
    orders = [_order("AAA", Side.BUY, 10, 95.0, OrderStatus.NEW)]
    assert protective_stop("AAA", 15, orders) is None


def test_protective_stop_when_stop_held_before_the_entry_filled_or_on_the_other_side_then_not_counted():
    waiting = [_order("AAA", Side.BUY, 10, 95.0, OrderStatus.HELD, entry_status=OrderStatus.NEW)]
    short_stop = [_order("AAA", Side.SELL, 10, 105.0, OrderStatus.NEW)]
    assert protective_stop("AAA", 10, waiting) is None
    assert protective_stop("AAA", 10, short_stop) is None
    assert protective_stop("AAA", -10, short_stop) == 105.0


def test_protective_stop_when_stop_held_after_the_entry_filled_then_counted():
    # Alpaca holds a bracket's stop under its one-cancels-other while the take-profit works
    assert protective_stop("AAA", 10, [_order("AAA", Side.BUY, 10, 95.0, OrderStatus.HELD)]) == 95.0


def test_protective_stop_when_a_simple_stop_order_on_the_other_side_then_counted():
    now = dt.datetime(2024, 3, 4, tzinfo=dt.timezone.utc)
    stop = OrderRecord("s", "b", "AAA", Side.SELL, 10, OrderClass.SIMPLE, now,
                       (LegRecord(LegRole.ENTRY, Side.SELL, 94.0, OrderStatus.NEW),), order_type=OrderType.STOP)
    assert protective_stop("AAA", 10, [stop]) == 94.0 and protective_stop("AAA", -10, [stop]) is None


def test_order_record_when_entry_filled_and_leg_working_then_open():
    record = _order("AAA", Side.BUY, 10, 95.0, OrderStatus.NEW)
    assert record.status is OrderStatus.FILLED and record.is_open
    assert not _order("AAA", Side.BUY, 10, 95.0, OrderStatus.CANCELED).is_open


def test_brokers_when_checked_against_the_protocol_then_paper_and_alpaca_conform(tmp_path, alpaca):
    from kobe_pipelines.execution.broker import Broker
    from kobe_pipelines.execution.paper import PaperBroker

    assert isinstance(PaperBroker(tmp_path), Broker) and isinstance(alpaca, Broker)
    assert not isinstance(object(), Broker)


def test_brokers_when_checked_against_the_replay_protocol_then_only_the_paper_broker_replays_bars(tmp_path, alpaca):
    from kobe_pipelines.execution.broker import BarReplayBroker
    from kobe_pipelines.execution.paper import PaperBroker

    assert isinstance(PaperBroker(tmp_path), BarReplayBroker) and not isinstance(alpaca, BarReplayBroker)
