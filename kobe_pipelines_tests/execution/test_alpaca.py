"""AlpacaBroker against a loopback server speaking Alpaca's trading API (no client patching)."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest

from kobe_pipelines.execution.alpaca import AlpacaBroker
from kobe_pipelines.execution.broker import LegRole, OrderClass, OrderStatus
from kobe_pipelines.execution.errors import (
    AuthenticationError,
    DuplicateClientOrderIdError,
    InsufficientBuyingPowerError,
    InvalidOrderError,
    MarketClosedError,
    OrderNotFoundError,
    OrderStatusUnknownError,
    RateLimitedError,
    UnknownSymbolError,
)
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.risk.types import UnapprovedOrderError
from kobe_pipelines_tests.execution.conftest import API_KEY, NOW, SECRET_KEY, book, intent
from kobe_pipelines_tests.support.alpaca_server import alpaca_order

BRACKET = dict(coid="kobe-manual-AAA-20240304-0123456789abcdef", entry=187.45, stop=180.1, take_profit=195.3)
MARKS = {"AAA": 187.0}


def posts(fake) -> int:
    return sum(1 for method, path in fake.requests if method == "POST")


def test_submit_when_bracket_then_posts_alpacas_exact_json_body_with_gtc_legs(fake_alpaca, alpaca, approve):
    ack = alpaca.submit(approve(marks=MARKS, **BRACKET))
    # alpaca-py's LimitOrderRequest writes qty and prices as JSON numbers (qty: float field). A bracket
    # has one time in force for the entry and its legs: gtc, so the legs outlive the entry's session.
    assert fake_alpaca.posted == [{
        "symbol": "AAA", "qty": 10.0, "side": "buy", "type": "limit", "time_in_force": "gtc",
        "order_class": "bracket", "client_order_id": "kobe-manual-AAA-20240304-0123456789abcdef",
        "take_profit": {"limit_price": 195.3}, "stop_loss": {"stop_price": 180.1}, "limit_price": 187.45,
    }]
    assert (ack.created, ack.reconciled, ack.status, ack.order_class) == (True, False, OrderStatus.NEW, OrderClass.BRACKET)
    assert [(leg.role, leg.price, leg.status) for leg in ack.record.legs] == [
        (LegRole.ENTRY, 187.45, OrderStatus.NEW), (LegRole.TAKE_PROFIT, 195.3, OrderStatus.HELD),
        (LegRole.STOP_LOSS, 180.1, OrderStatus.HELD)]


def test_submit_when_new_order_then_looks_the_id_up_before_posting_with_the_keys(fake_alpaca, alpaca, approve):
    alpaca.submit(approve(marks=MARKS, **BRACKET))
    assert fake_alpaca.requests == [("GET", "/v2/orders:by_client_order_id"), ("POST", "/v2/orders")]
    assert fake_alpaca.headers[1]["Apca-Api-Key-Id"] == API_KEY
    assert fake_alpaca.headers[1]["Apca-Api-Secret-Key"] == SECRET_KEY


def test_submit_when_only_a_stop_then_sends_an_oto_order(fake_alpaca, alpaca, approve):
    alpaca.submit(approve(marks=MARKS, coid="oto-1", entry=187.45, stop=180.1, take_profit=None))
    body = fake_alpaca.posted[0]
    assert (body["order_class"], body["stop_loss"], "take_profit" in body) == ("oto", {"stop_price": 180.1}, False)
    assert body["time_in_force"] == "gtc"


def test_submit_when_protective_stop_then_sends_a_gtc_stop_order(fake_alpaca, alpaca, approve):
    from kobe_pipelines.orders import OrderType

    marks = {"AAA": 190.0}
    alpaca.submit(approve(marks=marks, coid="stop-1", side="sell", entry=180.1, stop=None, take_profit=None,
                          order_type=OrderType.STOP))
    assert fake_alpaca.posted[0] == {"symbol": "AAA", "qty": 10.0, "side": "sell", "type": "stop",
                                     "time_in_force": "gtc", "client_order_id": "stop-1", "stop_price": 180.1}
    record = alpaca.get_order("stop-1")
    assert (record.order_type, record.is_protective_stop, record.entry.price) == (OrderType.STOP, True, 180.1)


def test_submit_when_no_legs_then_sends_a_simple_order_without_order_class(fake_alpaca, alpaca, approve):
    alpaca.submit(approve(marks=MARKS, coid="simple-1", entry=187.45, stop=None, take_profit=None))
    assert fake_alpaca.posted[0] == {"symbol": "AAA", "qty": 10.0, "side": "buy", "type": "limit",
                                     "time_in_force": "day", "client_order_id": "simple-1", "limit_price": 187.45}


def test_submit_when_the_id_already_exists_at_alpaca_then_returns_it_without_posting(fake_alpaca, alpaca, approve):
    decision = approve(marks=MARKS, **BRACKET)
    first = alpaca.submit(decision)
    again = alpaca.submit(decision)
    assert (again.created, again.broker_order_id) == (False, first.broker_order_id)
    assert posts(fake_alpaca) == 1 and len(fake_alpaca.orders) == 1


def test_submit_when_403_insufficient_buying_power_then_raises_insufficient_buying_power(fake_alpaca, alpaca, approve):
    fake_alpaca.post_script = [(403, {"code": 40310000, "message": "insufficient buying power"})]
    with pytest.raises(InsufficientBuyingPowerError, match="HTTP 403: insufficient buying power") as caught:
        alpaca.submit(approve(marks=MARKS, **BRACKET))
    assert (caught.value.status, caught.value.client_order_id) == (403, BRACKET["coid"])
    assert fake_alpaca.orders == {}


@pytest.mark.parametrize(("message", "error"), [
    ("qty must be > 0", InvalidOrderError),
    ("market is closed for this order type", MarketClosedError),
    ("asset \"ZZZZ\" not found", UnknownSymbolError),
])
def test_submit_when_422_then_raises_the_matching_invalid_order_error(fake_alpaca, alpaca, approve, message, error):
    fake_alpaca.post_script = [(422, {"code": 42210000, "message": message})]
    with pytest.raises(error, match="HTTP 422") as caught:
        alpaca.submit(approve(marks=MARKS, **BRACKET))
    assert caught.value.status == 422 and posts(fake_alpaca) == 1


def test_submit_when_429_then_success_then_retries_and_makes_exactly_one_order(fake_alpaca, alpaca, approve):
    fake_alpaca.post_script = [(429, {"code": 42900000, "message": "rate limit exceeded"}), "ok"]
    ack = alpaca.submit(approve(marks=MARKS, **BRACKET))
    assert ack.created and posts(fake_alpaca) == 2 and len(fake_alpaca.orders) == 1


def test_submit_when_429_on_every_try_then_raises_rate_limited_after_the_retries(fake_alpaca, alpaca, approve):
    fake_alpaca.post_script = [(429, {"code": 42900000, "message": "rate limit exceeded"})] * 3
    with pytest.raises(RateLimitedError, match="429"):
        alpaca.submit(approve(marks=MARKS, **BRACKET))
    assert posts(fake_alpaca) == 3  # retry_attempts=2: the first try and two retries
    assert fake_alpaca.orders == {}


def test_submit_when_timeout_after_alpaca_accepted_then_reconciles_by_id_with_one_order(fake_alpaca, alpaca, approve):
    fake_alpaca.post_script = ["slow-accept"]  # records the order, answers after the 0.3 s client timeout
    ack = alpaca.submit(approve(marks=MARKS, **BRACKET))
    assert (ack.created, ack.reconciled, ack.client_order_id) == (True, True, BRACKET["coid"])
    assert ack.broker_order_id == fake_alpaca.orders[BRACKET["coid"]]["id"]
    assert posts(fake_alpaca) == 1 and len(fake_alpaca.orders) == 1
    assert fake_alpaca.requests[2] == ("GET", "/v2/orders:by_client_order_id")  # after the POST


def test_submit_when_500_after_alpaca_accepted_then_reconciles_instead_of_resubmitting(fake_alpaca, alpaca, approve):
    fake_alpaca.post_script = ["500-accept"]
    ack = alpaca.submit(approve(marks=MARKS, **BRACKET))
    assert ack.reconciled and posts(fake_alpaca) == 1 and len(fake_alpaca.orders) == 1


def test_submit_when_answer_lost_and_order_never_found_then_raises_status_unknown_without_resubmitting(
        fake_alpaca, alpaca, approve):
    fake_alpaca.post_script = ["slow-drop"]
    with pytest.raises(OrderStatusUnknownError, match="2 look-up"):
        alpaca.submit(approve(marks=MARKS, **BRACKET))
    lookups = [r for r in fake_alpaca.requests if r == ("GET", "/v2/orders:by_client_order_id")]
    assert posts(fake_alpaca) == 1 and len(lookups) == 1 + 2  # before the POST, then reconcile_attempts=2


def test_submit_when_decision_rejected_then_raises_before_any_request(fake_alpaca, alpaca, gate):
    rejected = gate.decide(intent(stop=101.0), book())  # a buy's stop above its entry
    assert not rejected.approved
    with pytest.raises(UnapprovedOrderError, match="rejected"):
        alpaca.submit(rejected)
    assert fake_alpaca.requests == []


def test_submit_when_not_a_decision_then_raises_before_any_request(fake_alpaca, alpaca):
    with pytest.raises(UnapprovedOrderError, match="OrderIntent"):
        alpaca.submit(intent())
    assert fake_alpaca.requests == []


def test_errors_and_logs_when_alpaca_echoes_the_keys_then_never_contain_them(fake_alpaca, alpaca, approve, caplog):
    caplog.set_level(logging.DEBUG)
    fake_alpaca.post_script = [(403, {"code": 40310000, "message": f"forbidden for key {API_KEY} / {SECRET_KEY}"})]
    with pytest.raises(AuthenticationError) as caught:
        alpaca.submit(approve(marks=MARKS, **BRACKET))
    shown = " ".join([str(caught.value), repr(caught.value), caplog.text, repr(alpaca), repr(alpaca.settings)])
    assert "forbidden for key ***" in str(caught.value)
    assert API_KEY not in shown and SECRET_KEY not in shown


def test_get_order_when_legs_not_rolled_up_then_reads_them_nested(fake_alpaca, alpaca, approve):
    ack = alpaca.submit(approve(marks=MARKS, **BRACKET))
    parent = fake_alpaca.orders[BRACKET["coid"]]
    parent["status"], parent["filled_qty"], parent["filled_avg_price"] = "filled", "10", "187.41"
    parent["legs"][0]["status"] = parent["legs"][1]["status"] = "new"
    record = alpaca.get_order(BRACKET["coid"])
    assert record.broker_order_id == ack.broker_order_id
    assert [(leg.role, leg.status, leg.filled_qty, leg.filled_avg_price) for leg in record.legs] == [
        (LegRole.ENTRY, OrderStatus.FILLED, 10, 187.41), (LegRole.TAKE_PROFIT, OrderStatus.NEW, 0, None),
        (LegRole.STOP_LOSS, OrderStatus.NEW, 0, None)]
    assert alpaca.get_order("no-such-id") is None


def test_cancel_when_entry_working_then_deletes_the_parent_and_its_legs(fake_alpaca, alpaca, approve):
    ack = alpaca.submit(approve(marks=MARKS, **BRACKET))
    record = alpaca.cancel(BRACKET["coid"])
    assert ("DELETE", f"/v2/orders/{ack.broker_order_id}") in fake_alpaca.requests
    assert [leg.status for leg in record.legs] == [OrderStatus.CANCELED] * 3 and not record.is_open
    with pytest.raises(OrderNotFoundError):
        alpaca.cancel("no-such-id")


def test_cancel_when_entry_filled_then_cancels_only_the_working_legs(fake_alpaca, alpaca, approve):
    alpaca.submit(approve(marks=MARKS, **BRACKET))
    parent = fake_alpaca.orders[BRACKET["coid"]]
    parent["status"], parent["filled_qty"], parent["filled_avg_price"] = "filled", "10", "187.45"
    for leg in parent["legs"]:
        leg["status"] = "new"
    record = alpaca.cancel(BRACKET["coid"])
    deletes = [path for method, path in fake_alpaca.requests if method == "DELETE"]
    assert deletes == [f"/v2/orders/{leg['id']}" for leg in parent["legs"]]
    assert [leg.status for leg in record.legs] == [OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.CANCELED]


def test_positions_when_a_working_stop_covers_the_position_then_carry_that_stop(fake_alpaca, alpaca, approve):
    alpaca.submit(approve(marks=MARKS, **BRACKET))
    parent = fake_alpaca.orders[BRACKET["coid"]]
    parent["status"], parent["filled_qty"], parent["filled_avg_price"] = "filled", "10", "187.45"
    for leg in parent["legs"]:
        leg["status"] = "new"
    fake_alpaca.positions = [
        {"asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "symbol": "AAA", "exchange": "NASDAQ",
         "asset_class": "us_equity", "avg_entry_price": "187.45", "qty": "10", "side": "long", "market_value": "1880",
         "cost_basis": "1874.5", "current_price": "188", "qty_available": "0"},
        {"asset_id": "0b1c2f3a-8b9b-48a9-ba46-b9d54906e415", "symbol": "BBB", "exchange": "NYSE",
         "asset_class": "us_equity", "avg_entry_price": "20.5", "qty": "-30", "side": "short", "market_value": "-600",
         "cost_basis": "-615", "current_price": "20", "qty_available": "-30"},
    ]
    held = alpaca.positions()
    assert (held["AAA"].qty, held["AAA"].avg_entry, held["AAA"].stop) == (10, 187.45, 180.1)
    assert (held["BBB"].qty, held["BBB"].stop) == (-30, None)  # short without a working stop: unprotected
    assert alpaca.marks() == {"AAA": 188.0, "BBB": 20.0}


def test_account_when_alpaca_answers_strings_then_reads_usd_amounts(alpaca):
    account = alpaca.account()
    assert (account.equity, account.cash, account.buying_power) == (101000.25, 95000.5, 190000.0)


def test_open_orders_when_one_working_then_lists_it_with_its_legs(fake_alpaca, alpaca, approve):
    alpaca.submit(approve(marks=MARKS, **BRACKET))
    listed = alpaca.open_orders()
    assert [(r.client_order_id, len(r.legs)) for r in listed] == [(BRACKET["coid"], 3)]


def test_broker_when_built_from_env_then_uses_the_base_url_override(fake_alpaca, monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", API_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("KOBE_ALPACA_BASE_URL", fake_alpaca.url)
    broker = AlpacaBroker()
    assert broker.settings.paper and broker.account().equity == 101000.25


def test_submit_when_trading_date_before_today_then_refused_as_stale_before_any_request(fake_alpaca, alpaca_settings,
                                                                                         approve):
    later = AlpacaBroker(alpaca_settings, clock=lambda: NOW + dt.timedelta(days=1))  # it is 2024-03-05 now
    with pytest.raises(MarketClosedError, match="stale"):
        later.submit(approve(marks=MARKS, **BRACKET))
    assert fake_alpaca.requests == []


def test_submit_when_id_taken_by_a_different_order_at_alpaca_then_refused_without_posting(fake_alpaca, alpaca, approve,
                                                                                         tmp_path):
    alpaca.submit(approve(marks=MARKS, **BRACKET))
    (tmp_path / "other_gate").mkdir()
    with PolicyGate(RiskLimits(), tmp_path / "other_gate", clock=lambda: NOW, audit_fsync=False) as other:
        bigger = other.decide(intent(BRACKET["coid"], qty=20, entry=187.45, stop=180.1, take_profit=195.3), book(MARKS))
    with pytest.raises(DuplicateClientOrderIdError, match="qty 10 != 20"):
        alpaca.submit(bigger)
    assert posts(fake_alpaca) == 1



def test_submit_when_alpaca_answers_422_duplicate_id_then_returns_the_order_found_by_id(fake_alpaca, alpaca, approve):
    # The order arrives at Alpaca between our look-up and our POST (another process sent it):
    # the look-up misses it, the POST is refused as a duplicate id, and the order is returned.
    decision = approve(marks=MARKS, **BRACKET)
    body = {"symbol": "AAA", "qty": 10, "side": "buy", "type": "limit", "time_in_force": "day",
            "order_class": "bracket", "client_order_id": BRACKET["coid"], "limit_price": 187.45,
            "take_profit": {"limit_price": 195.3}, "stop_loss": {"stop_price": 180.1}}
    fake_alpaca.post_script = [(422, {"code": 42210000, "message": "client_order_id must be unique"})]
    original = fake_alpaca.handle

    def arrive_during_post(request):
        if request.method == "POST":
            fake_alpaca.orders[BRACKET["coid"]] = alpaca_order(body)
        return original(request)

    fake_alpaca.handle = arrive_during_post
    fake_alpaca.server.clear()
    fake_alpaca.server.expect_request(re.compile(r"^/v2/.*")).respond_with_handler(arrive_during_post)
    ack = alpaca.submit(decision)
    assert (ack.created, ack.broker_order_id) == (False, fake_alpaca.orders[BRACKET["coid"]]["id"])
    assert posts(fake_alpaca) == 1 and len(fake_alpaca.orders) == 1


def _open_order_at(fake, coid: str, stamp: str) -> None:
    body = {"symbol": "AAA", "qty": 1, "side": "buy", "type": "limit", "time_in_force": "day",
            "client_order_id": coid, "limit_price": 187.45}
    order = alpaca_order(body)
    order.update(submitted_at=stamp, created_at=stamp, updated_at=stamp)
    fake.orders[coid] = order


def test_open_orders_when_more_than_a_page_then_pages_back_by_submission_time(fake_alpaca, alpaca, monkeypatch):
    from kobe_pipelines.execution import alpaca as alpaca_module

    monkeypatch.setattr(alpaca_module, "_OPEN_ORDER_LIMIT", 3)  # pages of three instead of 500
    # six open orders; c and d share a submission time, and the first page ends between them
    for coid, second in [("a", "01.000001"), ("b", "02"), ("c", "03"), ("d", "03"), ("e", "04"), ("f", "05"),
                         ("g", "06")]:
        _open_order_at(fake_alpaca, coid, f"2024-03-04T15:00:{second}Z")
    fake_alpaca.orders["g"]["status"] = "filled"  # not open: never listed
    listed = alpaca.open_orders()
    assert sorted(r.client_order_id for r in listed) == ["a", "b", "c", "d", "e", "f"]
    assert len({r.broker_order_id for r in listed}) == 6  # each once, though pages overlap
    pages = [path for method, path in fake_alpaca.requests if method == "GET" and path == "/v2/orders"]
    # [f, e, c|d]; then until just after 15:00:03: [c, d, b]; then until just after 15:00:02: [b, a]
    assert len(pages) == 3


def test_open_orders_when_a_whole_page_shares_one_time_then_raises_instead_of_missing_orders(
        fake_alpaca, alpaca, monkeypatch):
    from kobe_pipelines.execution import alpaca as alpaca_module
    from kobe_pipelines.execution.errors import BrokerError

    monkeypatch.setattr(alpaca_module, "_OPEN_ORDER_LIMIT", 2)
    for coid in ("a", "b", "c"):
        _open_order_at(fake_alpaca, coid, "2024-03-04T15:00:03Z")
    with pytest.raises(BrokerError, match="2 or more open orders share the submission time"):
        alpaca.open_orders()
