"""A loopback server speaking Alpaca's trading API (v2): orders, positions and the account.

Shared by the broker tests (execution/) and the end-to-end run with the Alpaca broker
(integration/). It answers what alpaca-py's `TradingClient` asks over real HTTP; nothing in
the client is patched.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

OPEN_STATUSES = ("new", "accepted", "held", "partially_filled")



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

    order = base(body["side"], body["type"], limit_price=body.get("limit_price"), stop_price=body.get("stop_price"))
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

    # -- the exchange's side: what the test plays between trading runs ---------------------
    def fill(self, client_order_id: str, leg: str, price: float, at: str) -> None:
        """Fill one leg ("entry", "take_profit" or "stop_loss") of an order in full at `price`
        (USD) at `at` (ISO time, UTC), and move the position and the cash as Alpaca would: an
        entry fill opens the exit legs; an exit fill cancels the other exit (one-cancels-other)."""
        order = self.orders[client_order_id]
        legs = order["legs"] or []
        kind = {"take_profit": "limit", "stop_loss": "stop"}.get(leg)
        target = order if leg == "entry" else next(x for x in legs if x["type"] == kind)
        qty = int(target["qty"])
        target.update(status="filled", filled_qty=str(qty), filled_avg_price=str(price), filled_at=at, updated_at=at)
        for other in legs:
            if leg == "entry" and other["status"] == "held" and other["type"] == "limit":
                other["status"] = "new"  # Alpaca works the take-profit once the entry filled; the stop stays held
            elif leg != "entry" and other is not target:
                other["status"] = "canceled"
                other["canceled_at"] = at
        signed = qty if target["side"] == "buy" else -qty
        self._move_position(order["symbol"], signed, price)
        cash = float(self.account["cash"]) - signed * price
        self.account["cash"] = str(round(cash, 2))
        self.mark({order["symbol"]: price})

    def split(self, symbol: str, ratio: float, cancel_orders: bool = True) -> None:
        """A split of `ratio` (4.0 for 4-for-1, 0.1 for 1-for-10) as Alpaca applies it overnight: the
        position's shares x ratio (a fraction paid in cash at the price / ratio), its average and
        current price / ratio; `cancel_orders`: the symbol's working orders are cancelled."""
        for pos in self.positions:
            if pos["symbol"] != symbol:
                continue
            exact = int(pos["qty"]) * ratio
            whole = int(exact)
            price = float(pos["current_price"]) / ratio
            sign = 1 if pos["side"] == "long" else -1
            self.account["cash"] = str(round(float(self.account["cash"]) + sign * (exact - whole) * price, 2))
            pos.update(qty=str(whole), qty_available=str(whole), avg_entry_price=str(float(pos["avg_entry_price"]) / ratio),
                       current_price=str(price))
        if cancel_orders:
            for order in self.orders.values():
                if order["symbol"] == symbol:
                    for item in [order, *(order["legs"] or [])]:
                        if item["status"] in OPEN_STATUSES:
                            item["status"] = "canceled"
        self.mark({})

    def mark(self, prices: dict[str, float]) -> None:
        """New current prices for held symbols; equity = cash + sum(qty x price), buying power = cash."""
        for pos in self.positions:
            if pos["symbol"] in prices:
                pos["current_price"] = str(prices[pos["symbol"]])
            value = int(pos["qty"]) * float(pos["current_price"]) * (1 if pos["side"] == "long" else -1)
            pos["market_value"] = str(round(value, 2))
        cash = float(self.account["cash"])
        equity = cash + sum(float(p["market_value"]) for p in self.positions)
        self.account.update(equity=str(round(equity, 2)), portfolio_value=str(round(equity, 2)),
                            buying_power=str(round(max(cash, 0.0), 2)))

    def _move_position(self, symbol: str, signed_qty: int, price: float) -> None:
        held = next((p for p in self.positions if p["symbol"] == symbol), None)
        before = 0 if held is None else int(held["qty"]) * (1 if held["side"] == "long" else -1)
        after = before + signed_qty
        if after == 0:
            self.positions = [p for p in self.positions if p["symbol"] != symbol]
            return
        if held is None or (before > 0) != (after > 0):
            held = {"asset_id": str(uuid.uuid4()), "symbol": symbol, "exchange": "NASDAQ", "asset_class": "us_equity",
                    "avg_entry_price": str(price), "current_price": str(price)}
            self.positions = [p for p in self.positions if p["symbol"] != symbol] + [held]
        elif abs(after) > abs(before):  # adding: a new average entry
            held["avg_entry_price"] = str((abs(before) * float(held["avg_entry_price"]) + abs(signed_qty) * price) / abs(after))
        held.update(qty=str(abs(after)), qty_available=str(abs(after)), side="long" if after > 0 else "short")

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
                if item["status"] in OPEN_STATUSES:
                    item["status"] = "canceled"
            return Response(status=204)
        if path == "/v2/orders" and request.method == "GET":
            return _json(self._list_open(request.args))
        if path == "/v2/positions":
            return _json(self.positions)
        if path == "/v2/account":
            return _json(self.account)
        return _json({"code": 40410000, "message": f"no route {path}"}, 404)

    def _list_open(self, args: Any) -> list[dict[str, Any]]:
        """Open orders as Alpaca pages them: by submission time (`direction`, default desc),
        `until`/`after` exclusive, at most `limit` (default 50, at most 500)."""
        rows = [o for o in self.orders.values() if any(x["status"] in OPEN_STATUSES for x in [o, *(o["legs"] or [])])]

        def at(text: str) -> dt.datetime:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

        if args.get("until"):
            rows = [o for o in rows if at(o["submitted_at"]) < at(args["until"])]
        if args.get("after"):
            rows = [o for o in rows if at(o["submitted_at"]) > at(args["after"])]
        rows.sort(key=lambda o: at(o["submitted_at"]), reverse=args.get("direction", "desc") == "desc")
        return rows[: min(int(args.get("limit", 50)), 500)]

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




def serve(fake: FakeAlpaca) -> None:
    """Route every /v2/ request of `fake.server` to `fake`."""
    fake.server.expect_request(re.compile(r"^/v2/.*")).respond_with_handler(fake.handle)
