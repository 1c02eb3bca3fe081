"""Fixtures of the execution tests: the real policy gate, and a loopback Alpaca server."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from kobe_pipelines.execution.alpaca import AlpacaBroker
from kobe_pipelines.execution.alpaca_settings import AlpacaSettings
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.risk.types import Book, Decision, OrderIntent

API_KEY = "PKTESTKEY0123456789"
SECRET_KEY = "s3cr3t-TEST-value-abcdefghijklmnop"
NOW = dt.datetime(2024, 3, 4, 15, 0, tzinfo=dt.timezone.utc)


def intent(coid: str = "ord-1", symbol: str = "AAA", side: str = "buy", qty: Any = 10, entry: Any = 100.0,
           stop: Any = 95.0, take_profit: Any = 110.0, trading_date: str = "2024-03-04", **kw: Any) -> OrderIntent:
    return OrderIntent(coid, symbol, side, qty, entry, stop, take_profit, trading_date=trading_date, **kw)


def book(marks: dict[str, float] | None = None, equity: float = 100_000.0) -> Book:
    return Book(equity, equity, equity, {}, marks or {"AAA": 100.0, "BBB": 20.0})


@pytest.fixture
def gate(tmp_path):
    """The real policy gate on its own state folder, with a fixed clock."""
    (tmp_path / "gate_state").mkdir()
    with PolicyGate(RiskLimits(), tmp_path / "gate_state", clock=lambda: NOW, audit_fsync=False) as g:
        yield g


@pytest.fixture
def approve(gate) -> Callable[..., Decision]:
    """An approved gate decision for `intent(**fields)` (fails the test if the gate rejects)."""

    def make(order: OrderIntent | None = None, marks: dict[str, float] | None = None, **fields: Any) -> Decision:
        decision = gate.decide(order or intent(**fields), book(marks))
        assert decision.approved, decision.reason
        return decision

    return make


# ---- a loopback server speaking Alpaca's trading API (v2) ----------------------------------


def alpaca_order(body: dict[str, Any], status: str = "accepted") -> dict[str, Any]:
    """An order as Alpaca answers it, from a submitted body (legs rolled up, as with nested=true)."""
    stamp = "2024-03-04T15:00:00.123456Z"

    def base(side: str, kind: str, **prices: Any) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()), "client_order_id": str(uuid.uuid4()), "created_at": stamp, "updated_at": stamp,
            "submitted_at": stamp, "filled_at": None, "expired_at": None, "canceled_at": None, "failed_at": None,
            "replaced_at": None, "replaced_by": None, "replaces": None, "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
            "symbol": body["symbol"], "asset_class": "us_equity", "notional": None, "qty": str(int(float(body["qty"]))),
            "filled_qty": "0", "filled_avg_price": None, "order_class": body.get("order_class", ""), "order_type": kind,
            "type": kind, "side": side, "time_in_force": body["time_in_force"], "limit_price": None, "stop_price": None,
            "status": status, "extended_hours": False, "legs": None, "trail_percent": None, "trail_price": None,
            "hwm": None, **{k: (None if v is None else str(v)) for k, v in prices.items()},
        }

    order = base(body["side"], body["type"], limit_price=body.get("limit_price"))
    order["client_order_id"] = body["client_order_id"]
    exit_side = "sell" if body["side"] == "buy" else "buy"
    legs = []
    if "take_profit" in body:
        legs.append(base(exit_side, "limit", limit_price=body["take_profit"]["limit_price"]))
    if "stop_loss" in body:
        legs.append(base(exit_side, "stop", stop_price=body["stop_loss"]["stop_price"]))
    for leg in legs:
        leg["status"] = "held"
    order["legs"] = legs or None
    return order


@dataclass
class FakeAlpaca:
    """Alpaca's orders, positions and account on a loopback server.

    `post_script`: answers for the next POST /v2/orders, one per request: "ok", "slow-accept"
    (records the order, then answers only after `release` is set: past the client's timeout),
    "500-accept" (records the order, answers 500), "slow-drop" (records nothing, answers late),
    or (status, json body) to refuse it.
    """

    server: HTTPServer
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # client_order_id -> order
    posted: list[dict[str, Any]] = field(default_factory=list)  # every POST body, in order
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    headers: list[dict[str, str]] = field(default_factory=list)
    post_script: list[Any] = field(default_factory=list)
    positions: list[dict[str, Any]] = field(default_factory=list)
    account: dict[str, Any] = field(default_factory=lambda: {
        "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98", "account_number": "PA3XX", "status": "ACTIVE", "currency": "USD",
        "cash": "95000.5", "equity": "101000.25", "buying_power": "190000", "portfolio_value": "101000.25"})
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def by_id(self, order_id: str) -> dict[str, Any] | None:
        for order in self.orders.values():
            if order["id"] == order_id:
                return order
            for leg in order["legs"] or []:
                if leg["id"] == order_id:
                    return leg
        return None

    def handle(self, request: Request) -> Response:
        self.requests.append((request.method, request.path))
        self.headers.append(dict(request.headers))
        path = request.path
        if path == "/v2/orders" and request.method == "POST":
            return self._post(json.loads(request.get_data()))
        if path == "/v2/orders:by_client_order_id":
            order = self.orders.get(request.args.get("client_order_id", ""))
            if order is None:
                return _json({"code": 40410000, "message": "order not found for " + request.args.get("client_order_id", "")}, 404)
            return _json({**order, "legs": None})  # this endpoint does not roll legs up
        match = re.fullmatch(r"/v2/orders/([0-9a-f-]+)", path)
        if match and request.method == "GET":
            order = self.by_id(match.group(1))
            return _json(order) if order else _json({"code": 40410000, "message": "order not found"}, 404)
        if match and request.method == "DELETE":
            order = self.by_id(match.group(1))
            if order is None:
                return _json({"code": 40410000, "message": "order not found"}, 404)
            for item in [order, *(order.get("legs") or [])]:
                if item["status"] in ("new", "accepted", "held", "partially_filled"):
                    item["status"] = "canceled"
            return Response(status=204)
        if path == "/v2/orders" and request.method == "GET":
            return _json([o for o in self.orders.values()
                          if any(x["status"] in ("new", "accepted", "held", "partially_filled") for x in [o, *(o["legs"] or [])])])
        if path == "/v2/positions":
            return _json(self.positions)
        if path == "/v2/account":
            return _json(self.account)
        return _json({"code": 40410000, "message": f"no route {path}"}, 404)

    def _post(self, body: dict[str, Any]) -> Response:
        self.posted.append(body)
        action = self.post_script.pop(0) if self.post_script else "ok"
        if isinstance(action, tuple):
            return _json(action[1], action[0])
        if action == "slow-drop":  # the order never reaches the book, and the answer comes too late
            self.release.wait(timeout=10)
            return _json({"code": 50010000, "message": "internal server error"}, 500)
        if body["client_order_id"] in self.orders:
            return _json({"code": 42210000, "message": "client_order_id must be unique"}, 422)
        order = alpaca_order(body)
        self.orders[body["client_order_id"]] = order
        if action == "slow-accept":
            self.release.wait(timeout=10)
        if action == "500-accept":
            return _json({"code": 50010000, "message": "internal server error"}, 500)
        return _json(order)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


@pytest.fixture(scope="session")
def _loopback_server():
    # One server for the session: stopping a werkzeug server waits out its 0.5 s poll.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_alpaca(_loopback_server):
    """A fresh fake Alpaca (no orders, no positions) on the loopback server."""
    _loopback_server.clear()
    fake = FakeAlpaca(_loopback_server)
    _loopback_server.expect_request(re.compile(r"^/v2/.*")).respond_with_handler(fake.handle)
    try:
        yield fake
    finally:
        fake.release.set()
        _loopback_server.clear()


@pytest.fixture
def alpaca_settings(fake_alpaca) -> AlpacaSettings:
    return AlpacaSettings(API_KEY, SECRET_KEY, paper=True, base_url=fake_alpaca.url, timeout_s=0.3, retry_attempts=2,
                          retry_wait_s=0.01, reconcile_attempts=2, reconcile_wait_s=0.0)


@pytest.fixture
def alpaca(alpaca_settings) -> AlpacaBroker:
    return AlpacaBroker(alpaca_settings, clock=lambda: NOW)
