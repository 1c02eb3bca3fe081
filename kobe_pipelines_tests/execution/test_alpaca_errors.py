"""Alpaca's refusals keep their own meaning (kobe_pipelines/execution/alpaca_wire.py `error_for`),
through alpaca-py against the loopback server answering with Alpaca's error JSON."""

from __future__ import annotations

import pytest

from kobe_pipelines.execution.alpaca_wire import error_for
from kobe_pipelines.execution.errors import (
    AccountRestrictedError,
    AuthenticationError,
    InsufficientBuyingPowerError,
    InsufficientQuantityError,
    MarketClosedError,
    PatternDayTradingError,
    ShortSaleNotAllowedError,
    UnknownSymbolError,
    WashTradeError,
)

SELL = dict(coid="kobe-manual-AAA-20240304-sell", side="sell", entry=187.45, stop=195.3, take_profit=180.1)
MARKS = {"AAA": 187.0}

# Bodies as Alpaca sends them: the message, a shared numeric code, and sometimes more fields.
REFUSALS = [
    (403, {"code": 40310000, "message": "insufficient qty available for order (requested: 10, available: 0)",
           "held_for_orders": "10", "related_orders": ["b5e2a5b4-5c1f-4a56-9d1c-0f1d2f3a4b5c"]},
     InsufficientQuantityError),
    (403, {"code": 40310000, "message": "potential wash trade detected. use complex orders",
           "reject_reason": "opposite side limit order exists"}, WashTradeError),
    (403, {"code": 40310100, "message": "trade denied due to pattern day trading protection"}, PatternDayTradingError),
    (403, {"code": 40310000, "message": "account is not allowed to short"}, ShortSaleNotAllowedError),
    (422, {"code": 42210000, "message": "asset AAA cannot be sold short"}, ShortSaleNotAllowedError),
    (403, {"code": 40310000, "message": "account is not authorized to trade"}, AccountRestrictedError),
    (403, {"code": 40310000, "message": "insufficient buying power"}, InsufficientBuyingPowerError),
    (403, {"message": "forbidden."}, AuthenticationError),
]


@pytest.mark.parametrize(("status", "body", "error"), REFUSALS, ids=[b["message"][:30] for _, b, _ in REFUSALS])
def test_submit_when_alpaca_refuses_then_raises_the_error_of_that_reason(fake_alpaca, alpaca, approve, status, body,
                                                                         error):
    fake_alpaca.post_script = [(status, body)]
    with pytest.raises(error) as caught:
        alpaca.submit(approve(marks=MARKS, **SELL))
    assert type(caught.value) is error
    assert f"HTTP {status}: {body['message']}" in str(caught.value)
    assert (caught.value.status, caught.value.client_order_id) == (status, SELL["coid"])


def test_submit_when_403_insufficient_qty_then_not_reported_as_buying_power(fake_alpaca, alpaca, approve):
    fake_alpaca.post_script = [(403, REFUSALS[0][1])]
    with pytest.raises(InsufficientQuantityError) as caught:
        alpaca.submit(approve(marks=MARKS, **SELL))
    assert not isinstance(caught.value, InsufficientBuyingPowerError)
    assert "buying power" not in str(caught.value) and "exit legs" in str(caught.value)
    assert fake_alpaca.orders == {}


@pytest.mark.parametrize(("status", "message", "error"), [
    (422, "market is closed for this order type", MarketClosedError),
    (422, 'asset "ZZZZ" not found', UnknownSymbolError),
    (400, "insufficient qty available for order (requested: 5, available: 2)", InsufficientQuantityError),
    (403, "Order rejected: insufficient Day Trading Buying Power", InsufficientBuyingPowerError),
    (401, "unauthorized", AuthenticationError),
])
def test_error_for_when_other_texts_then_each_keeps_its_class(status, message, error):
    assert type(error_for(status, message, "c-1", "submit")) is error
