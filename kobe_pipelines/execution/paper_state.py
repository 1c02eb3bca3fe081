"""The paper broker's state file: layout, validation on load, and the book arithmetic.

Layout of `state/paper_broker.json` (format 2); money and prices are decimal strings (USD):

    {"format": 2, "starting_cash": "100000.0", "cash": "...", "seq": 3, "last_session": "2024-03-04",
     "orders": {client_order_id: order}, "positions": {symbol: {"qty": signed int, "avg_entry": "..."}},
     "marks": {symbol: last close}, "last_bar": {symbol: session of its last bar},
     "fills": [fill, ...], "book_events": [corporate action or delisting, ...]}

An order holds its spec as submitted (`qty`, prices, `lineage`), `seq` (submission order), and
`legs`: {"entry" | "stop_loss" | "take_profit": {"status", "qty", "price", "filled_qty",
"filled_avg_price", "filled_at", "session", "reason", "arrival_price"}}: a leg's own shares and
price, which a split moves (the spec keeps what was approved); `arrival_price`, set when the leg
fills, is the market price when it became marketable (the bar's open for a fill at the open, else
the leg's own price), the slippage reference; a fill's `expected_price` is that arrival price.
A format-1 file is upgraded when read.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from kobe_pipelines.errors import StateFileError
from kobe_pipelines.execution.broker import (
    Fill,
    LegRecord,
    LegRole,
    OrderClass,
    OrderRecord,
    OrderSpec,
    OrderStatus,
    protective_stop,
)
from kobe_pipelines.orders import OrderType
from kobe_pipelines.fsutil import atomic_write_bytes
from kobe_pipelines.risk.types import Position
from kobe_pipelines.orders import Side

FORMAT = 2
PNL_TICK = Decimal("0.0001")
# Bounds of the amounts a state file may hold: far above any account or share price, and small
# enough that 28-digit Decimal arithmetic on them stays exact to the $0.0001 grid.
MAX_AMOUNT = Decimal(10) ** 15
MIN_EXPONENT = -28
MAX_SHARES = 2**63 - 1  # the order ledger stores share counts as signed 64-bit integers
_KEYS = {"format": int, "starting_cash": str, "cash": str, "seq": int, "orders": dict, "positions": dict,
         "marks": dict, "fills": list, "last_bar": dict, "book_events": list}
_PRICE_OF_LEG = {LegRole.ENTRY.value: "limit_price", LegRole.STOP_LOSS.value: "stop", LegRole.TAKE_PROFIT.value: "take_profit"}


def fresh_state(starting_cash: Decimal) -> dict[str, Any]:
    return {"format": FORMAT, "starting_cash": str(starting_cash), "cash": str(starting_cash), "seq": 0,
            "last_session": None, "orders": {}, "positions": {}, "marks": {}, "last_bar": {}, "fills": [],
            "book_events": []}


def upgrade(payload: Any) -> Any:
    """A format-1 state as format 2 (legs get their own shares and price; no book events yet)."""
    if not isinstance(payload, dict) or payload.get("format") != 1:
        return payload
    for order in (payload.get("orders") or {}).values():
        if isinstance(order, dict) and isinstance(order.get("legs"), dict):
            for role, leg in order["legs"].items():
                if isinstance(leg, dict):
                    leg.setdefault("qty", order.get("qty"))
                    leg.setdefault("price", order.get(_PRICE_OF_LEG.get(role, ""), None))
                    leg.setdefault("reason", None)
    payload.setdefault("last_bar", {})
    payload.setdefault("book_events", [])
    payload["format"] = FORMAT
    return payload


def save(path: Path, state: dict[str, Any], durable: bool = True) -> None:
    """Atomically (temp file + rename); `durable=False` skips the fsyncs (`fsutil`; backtests only)."""
    atomic_write_bytes(path, json.dumps(state, separators=(",", ":"), sort_keys=True).encode("utf-8"), fsync=durable)


def check_state(path: Path, payload: Any) -> dict[str, Any]:
    """`payload` if it has the layout above (types and decimal fields), else `StateFileError`
    naming the field. Every amount is a decimal text of a finite number below `MAX_AMOUNT` in
    magnitude ("NaN", "Infinity" and huge exponents are refused); prices are > 0."""
    if not isinstance(payload, dict):
        raise StateFileError(path, "must hold a JSON object")
    for key, kind in _KEYS.items():
        if not isinstance(payload.get(key), kind) or isinstance(payload.get(key), bool):
            raise StateFileError(path, f"field '{key}' is missing or not a {kind.__name__}")
    if payload["format"] != FORMAT:
        raise StateFileError(path, f"field 'format' is {payload['format']}, this version reads {FORMAT}")
    if payload.get("last_session") is not None and not isinstance(payload["last_session"], str):
        raise StateFileError(path, "field 'last_session' must be a date text or null")
    amount(path, "", "cash", payload["cash"])
    amount(path, "", "starting_cash", payload["starting_cash"], positive=True)
    try:
        for symbol, pos in payload["positions"].items():
            where = f"position {symbol}: "
            if not isinstance(pos, dict):
                raise StateFileError(path, f"{where}must be a JSON object")
            _shares(path, where, "qty", pos.get("qty"))
            amount(path, where, "avg_entry", pos.get("avg_entry"), positive=True)
        for symbol, mark in payload["marks"].items():
            amount(path, f"marks {symbol}: ", "close", mark, positive=True)
        for coid, order in payload["orders"].items():
            if (not isinstance(order, dict) or order.get("client_order_id") != coid
                    or not isinstance(order.get("legs"), dict) or "entry" not in order["legs"]):
                raise StateFileError(path, f"order {coid}: missing its id or its legs")
            where = f"order {coid}: "
            _shares(path, where, "qty", order.get("qty"), positive=True)
            amount(path, where, "expected_price", order.get("expected_price"), positive=True)
            for name in ("limit_price", "stop", "take_profit"):
                amount(path, where, name, order.get(name), positive=True, optional=True)
            for role, leg in order["legs"].items():
                if not isinstance(leg, dict):
                    raise StateFileError(path, f"{where}leg {role} must be a JSON object")
                _shares(path, f"{where}leg {role}: ", "filled_qty", leg.get("filled_qty"), positive=False, zero=True)
                for name in ("filled_avg_price", "arrival_price"):
                    amount(path, f"{where}leg {role}: ", name, leg.get(name), positive=True, optional=True)
            order_record(order)
        for number, fill in enumerate(payload["fills"], start=1):
            where = f"fill {number} ({fill.get('fill_id') if isinstance(fill, dict) else '?'}): "
            if not isinstance(fill, dict):
                raise StateFileError(path, f"{where}must be a JSON object")
            _shares(path, where, "qty", fill.get("qty"), positive=True)
            amount(path, where, "price", fill.get("price"), positive=True)
            amount(path, where, "expected_price", fill.get("expected_price"), positive=True)
            amount(path, where, "realized_pnl", fill.get("realized_pnl"), optional=True)
            fill_from_dict(fill)
    except StateFileError:
        raise
    except (InvalidOperation, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateFileError(path, f"has a malformed record ({type(exc).__name__}: {exc})") from exc
    return payload


def amount(path: Path, where: str, field: str, raw: Any, *, positive: bool = False,
           optional: bool = False) -> Decimal | None:
    """A decimal text of the state file as a finite `Decimal` with |value| < `MAX_AMOUNT` (USD, or
    USD per share), > 0 when `positive`; None only when `optional` and null. `StateFileError`
    names the record (`where`) and the field otherwise."""
    if raw is None and optional:
        return None
    if not isinstance(raw, str):
        raise StateFileError(path, f"{where}field '{field}' must be a decimal text (got {str(raw)[:40]!r})")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise StateFileError(path, f"{where}field '{field}' is not a decimal number (got {raw[:40]!r})") from None
    if not value.is_finite():
        raise StateFileError(path, f"{where}field '{field}' must be a finite amount (got {raw[:40]!r})")
    if abs(value) >= MAX_AMOUNT or (value and value.adjusted() < MIN_EXPONENT):
        raise StateFileError(path, f"{where}field '{field}' is out of range (got {raw[:40]!r}; amounts are below "
                                   f"{MAX_AMOUNT:,} in magnitude)")
    if positive and value <= 0:
        raise StateFileError(path, f"{where}field '{field}' must be > 0 (got {raw[:40]!r})")
    return value


def _shares(path: Path, where: str, field: str, raw: Any, *, positive: bool = False, zero: bool = False) -> int:
    """A whole number of shares: non-zero (a held position), > 0 (`positive`), or >= 0 (`zero`)."""
    if isinstance(raw, bool) or not isinstance(raw, int) or abs(raw) > MAX_SHARES:
        raise StateFileError(path, f"{where}field '{field}' must be a whole number of shares (got {str(raw)[:40]!r})")
    if (positive and raw <= 0) or (zero and raw < 0) or (not positive and not zero and raw == 0):
        raise StateFileError(path, f"{where}field '{field}' is {raw}, not a share count this record can hold")
    return raw


def new_order(spec: OrderSpec, seq: int, decision_id: str, now: dt.datetime) -> dict[str, Any]:
    legs: dict[str, Any] = {LegRole.ENTRY.value: _leg(OrderStatus.NEW, spec.qty, spec.limit_price)}
    if spec.stop is not None:
        legs[LegRole.STOP_LOSS.value] = _leg(OrderStatus.HELD, spec.qty, spec.stop)
    if spec.take_profit is not None:
        legs[LegRole.TAKE_PROFIT.value] = _leg(OrderStatus.HELD, spec.qty, spec.take_profit)
    return {
        "client_order_id": spec.client_order_id, "broker_order_id": f"paper-{seq:08d}", "seq": seq,
        "decision_id": decision_id, "symbol": spec.symbol, "side": spec.side.value, "qty": spec.qty,
        "order_type": spec.order_type.value, "order_class": spec.order_class.value,
        "limit_price": None if spec.limit_price is None else str(spec.limit_price),
        "expected_price": str(spec.expected_price),
        "stop": None if spec.stop is None else str(spec.stop),
        "take_profit": None if spec.take_profit is None else str(spec.take_profit),
        "trading_date": spec.trading_date, "strategy": spec.strategy, "submitted_at": now.isoformat(), "legs": legs,
        "lineage": spec.lineage.to_dict() if spec.lineage is not None else None,
    }


def _leg(status: OrderStatus, qty: int, price: Any) -> dict[str, Any]:
    return {"status": status.value, "qty": qty, "price": None if price is None else str(price), "filled_qty": 0,
            "filled_avg_price": None, "filled_at": None, "session": None, "reason": None}


_OPEN = frozenset(s.value for s in OrderStatus if s.is_open)


def is_open(order: dict[str, Any]) -> bool:
    return any(leg["status"] in _OPEN for leg in order["legs"].values())


def order_record(order: dict[str, Any]) -> OrderRecord:
    side = Side(order["side"])
    exit_side = Side.SELL if side is Side.BUY else Side.BUY
    qty = int(order["qty"])
    legs = []
    for role in LegRole:
        leg = order["legs"].get(role.value)
        if leg is None:
            continue
        price = leg["price"]
        legs.append(LegRecord(
            role, side if role is LegRole.ENTRY else exit_side, None if price is None else float(Decimal(price)),
            OrderStatus(leg["status"]), int(leg["filled_qty"]),
            None if leg["filled_avg_price"] is None else float(Decimal(leg["filled_avg_price"])),
            None if leg["filled_at"] is None else dt.datetime.fromisoformat(leg["filled_at"]),
            f"{order['broker_order_id']}-{role.value}", None if int(leg["qty"]) == qty else int(leg["qty"]),
            None if leg.get("arrival_price") is None else float(Decimal(leg["arrival_price"])),
        ))
    return OrderRecord(order["client_order_id"], order["broker_order_id"], order["symbol"], side, qty,
                       OrderClass(order["order_class"]), dt.datetime.fromisoformat(order["submitted_at"]), tuple(legs),
                       order["trading_date"], OrderType(order.get("order_type", "limit")))


def fill_from_dict(fill: dict[str, Any]) -> Fill:
    return Fill(
        fill["fill_id"], fill["client_order_id"], LegRole(fill["leg"]), fill["symbol"], Side(fill["side"]), int(fill["qty"]),
        float(Decimal(fill["price"])), float(Decimal(fill["expected_price"])), dt.datetime.fromisoformat(fill["filled_at"]),
        fill["session"], fill["broker"], None if fill["realized_pnl"] is None else float(Decimal(fill["realized_pnl"])),
    )


def apply_fill(state: dict[str, Any], symbol: str, signed_qty: int, price: Decimal) -> Decimal | None:
    """Move cash and the position by one fill; the realized P&L (USD) of the part that closes
    an existing position, or None when the fill only opens or adds."""
    state["cash"] = str(Decimal(state["cash"]) - signed_qty * price)
    pos = state["positions"].get(symbol, {"qty": 0, "avg_entry": "0"})
    held, avg = int(pos["qty"]), Decimal(pos["avg_entry"])
    new_qty = held + signed_qty
    realized = None
    if held == 0 or (held > 0) == (signed_qty > 0):
        avg = (avg * abs(held) + price * abs(signed_qty)) / abs(new_qty)
    else:
        closing = min(abs(held), abs(signed_qty))
        direction = 1 if held > 0 else -1
        realized = ((price - avg) * closing * direction).quantize(PNL_TICK, rounding=ROUND_HALF_EVEN)
        if new_qty != 0 and (new_qty > 0) != (held > 0):  # flipped: the rest opens at this price
            avg = price
    if new_qty == 0:
        state["positions"].pop(symbol, None)
    else:
        state["positions"][symbol] = {"qty": new_qty, "avg_entry": str(avg)}
    return realized


def mark_of(state: dict[str, Any], symbol: str) -> Decimal:
    mark = state["marks"].get(symbol)
    return Decimal(mark) if mark is not None else Decimal(state["positions"][symbol]["avg_entry"])


def equity(state: dict[str, Any]) -> Decimal:
    """Cash + every position at its mark (its latest close, or its average entry before any)."""
    return Decimal(state["cash"]) + sum((pos["qty"] * mark_of(state, s) for s, pos in state["positions"].items()), Decimal(0))


def working_orders(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The orders with a leg still open, in the state's order."""
    return [order for order in state["orders"].values() if is_open(order)]


def buying_power(state: dict[str, Any], working: list[dict[str, Any]] | None = None) -> Decimal:
    """1x account: equity - |market value| of every position - notional of working entries
    (a protective stop order reserves nothing: it only closes). `working`: the state's
    `working_orders`, when already known."""
    tied = sum((abs(pos["qty"]) * mark_of(state, s) for s, pos in state["positions"].items()), Decimal(0))
    entries = [order for order in (working_orders(state) if working is None else working)
               if order["legs"]["entry"]["status"] == OrderStatus.NEW.value and order.get("order_type") != "stop"]
    reserved = sum((order["qty"] * Decimal(order["expected_price"]) for order in entries), Decimal(0))
    return max(Decimal(0), equity(state) - tied - reserved)


def positions(state: dict[str, Any], working: list[dict[str, Any]] | None = None) -> dict[str, Position]:
    """Positions with the stop that protects them (`broker.protective_stop`). `working`: the
    state's `working_orders`, when already known."""
    records = [order_record(o) for o in (working_orders(state) if working is None else working)]
    return {symbol: Position(symbol, int(pos["qty"]), float(Decimal(pos["avg_entry"])),
                             protective_stop(symbol, int(pos["qty"]), records))
            for symbol, pos in state["positions"].items()}
