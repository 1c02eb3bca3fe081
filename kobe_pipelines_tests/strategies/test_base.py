from __future__ import annotations

import dataclasses

import pytest

from kobe_pipelines.orders import OrderIntent, OrderType, Side, client_order_id
from kobe_pipelines.strategies import validate_intents
from kobe_pipelines_tests.strategies.conftest import TRADING_DATE


def _intent(**overrides) -> OrderIntent:
    fields = dict(
        client_order_id=client_order_id("momo", "AAA", TRADING_DATE, Side.BUY),
        symbol="AAA",
        side=Side.BUY,
        qty=100,
        entry=51.23,
        stop=48.42,
        take_profit=54.74,
        order_type=OrderType.LIMIT,
        strategy="momo",
        strategy_version="v1",
        trading_date=TRADING_DATE,
    )
    fields.update(overrides)
    return OrderIntent(**fields)


def test_validate_intents_when_well_formed_then_all_pass(make_ctx):
    ctx = make_ctx(version="v1")
    sell = _intent(client_order_id="sell-1", side=Side.SELL, entry=51.23, stop=53.0, take_profit=49.0)
    good, rejected = validate_intents([_intent(), sell], ctx, strategy="momo")
    assert good == [_intent(), sell] and rejected == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"qty": -5}, "qty"),
        ({"qty": 0}, "qty"),
        ({"qty": 10.0}, "qty"),  # a float, even whole, is not a share count
        ({"qty": True}, "qty"),
        ({"entry": float("nan")}, "entry"),
        ({"entry": -1.0}, "entry"),
        ({"entry": None}, "entry"),
        ({"entry": "51.23"}, "entry"),
        ({"stop": 0.0}, "stop"),
        ({"stop": float("inf")}, "stop"),
        ({"stop": 52.0}, "stop"),  # a buy's stop above its entry
        ({"stop": 51.23}, "stop"),  # ... or equal to it
        ({"take_profit": 50.0}, "take_profit"),  # a buy's target below its entry
        ({"entry": 51.235}, "entry"),  # sub-penny at/above $1
        ({"side": "buy"}, "side"),  # a raw string, not a Side
        ({"order_type": "stop_limit"}, "order_type"),
        ({"symbol": "ZZZ"}, "symbol"),  # no bars in this run
        ({"symbol": None}, "symbol"),
        ({"client_order_id": ""}, "client_order_id"),
        ({"client_order_id": "x" * 49}, "client_order_id"),
        ({"client_order_id": "has space"}, "client_order_id"),
        ({"strategy": ""}, "strategy"),
        ({"strategy": "other"}, "strategy"),  # not the strategy being run
        ({"strategy_version": ""}, "strategy_version"),
        ({"strategy_version": "v0"}, "strategy_version"),  # not the running version
        ({"trading_date": "2024-06-07"}, "trading_date"),
    ],
)
def test_validate_intents_when_field_malformed_then_rejected_naming_that_field(make_ctx, overrides, field):
    bad = _intent(**overrides)
    good, rejected = validate_intents([bad], make_ctx(version="v1"), strategy="momo")
    assert good == []
    assert len(rejected) == 1 and rejected[0].intent is bad
    assert field in rejected[0].fields
    assert rejected[0].reason.startswith(f"{field}:") or f"; {field}:" in rejected[0].reason


def test_validate_intents_when_sell_bracket_not_reversed_then_rejects_stop_and_take_profit(make_ctx):
    # For a sell the stop sits above the entry and the target below: here both are on the buy sides.
    bad = _intent(side=Side.SELL)
    _, rejected = validate_intents([bad], make_ctx(version="v1"))
    assert rejected[0].fields == ("stop", "take_profit")
    assert "above the entry" in rejected[0].reason and "below the entry" in rejected[0].reason


def test_validate_intents_when_several_fields_bad_then_every_problem_is_reported(make_ctx):
    _, rejected = validate_intents([_intent(qty=-5, stop=60.0, symbol="ZZZ")], make_ctx(version="v1"))
    assert set(rejected[0].fields) == {"qty", "stop", "symbol"}


def test_validate_intents_when_client_order_id_repeats_then_rejects_every_copy(make_ctx):
    first, second = _intent(), _intent(qty=5)
    other = _intent(client_order_id="other-1", symbol="BBB", entry=0.8765, stop=0.7765, take_profit=1.01)
    good, rejected = validate_intents([first, second, other], make_ctx(version="v1"))
    assert good == [other]
    assert [r.intent for r in rejected] == [first, second]
    assert all(r.fields == ("client_order_id",) and "2 times" in r.reason for r in rejected)


def test_validate_intents_when_not_an_order_intent_then_rejected_naming_intent(make_ctx):
    as_dict = _intent().to_dict()
    good, rejected = validate_intents([as_dict, None], make_ctx(version="v1"))
    assert good == []
    assert [r.fields for r in rejected] == [("intent",), ("intent",)]


def test_validate_intents_when_context_has_no_version_then_any_nonempty_version_passes(make_ctx):
    good, _ = validate_intents([_intent(strategy_version="anything")], make_ctx(version=""))
    assert len(good) == 1


def test_validate_intents_when_rejecting_then_logs_a_warning_with_the_reason(make_ctx, caplog):
    validate_intents([_intent(qty=-5)], make_ctx(version="v1"))
    assert any(r.levelname == "WARNING" and "qty" in r.getMessage() for r in caplog.records)


def test_validate_intents_when_market_order_without_bracket_then_passes(make_ctx):
    exit_order = dataclasses.replace(_intent(), side=Side.SELL, stop=None, take_profit=None, order_type=OrderType.MARKET)
    good, rejected = validate_intents([exit_order], make_ctx(version="v1"))
    assert good == [exit_order] and rejected == []


def test_make_intent_when_only_the_strategy_version_differs_then_the_client_order_id_is_the_same(make_ctx):
    # an edited strategy re-run for the same session must meet its earlier order, not add one
    from kobe_pipelines.strategies.base import Strategy

    class Probe(Strategy):
        name = "probe"

        def generate(self, ctx):
            return []

    v1 = Probe().make_intent(make_ctx().with_version("v1"), "AAA", Side.BUY, 10, 51.23, 48.41, 54.33)
    v2 = Probe().make_intent(make_ctx().with_version("v2"), "AAA", Side.BUY, 10, 51.23, 48.41, 54.33)
    assert (v1.strategy_version, v2.strategy_version) == ("v1", "v2")
    assert v1.client_order_id == v2.client_order_id
