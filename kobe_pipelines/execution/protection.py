"""Protective stops: every open position keeps a live stop at the book's price.

The book's stop of a position part is the stop of the bracket (or OTO) that opened it, as
approved, brought through every split since its entry filled by the rule of
`corporate_actions` (the paper broker moves its legs by the same rule, so its legs always match).
A part is protected when working stops for it (the bracket's own stop leg, or stop orders placed
to protect it) sit at that price and cover its shares.

`check_protection` runs on every trading run: for a part without such a stop, it cancels the
part's working stops at another price (a broker that did not move them through a split) and
places a stop order, good until cancelled, for the uncovered shares at the book's price, through
the policy gate (a stop only reduces a position: a halt never blocks it). The bracket's remaining
legs (a live take-profit) are cancelled first: the shares cannot be held by two exits, so the
re-placed stop protects the part alone, without its take-profit. The trading run alerts on each
re-placement (warning) and on a stop that cannot be placed (critical).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Callable, Mapping

from kobe_pipelines.errors import KobeError
from kobe_pipelines.execution import corporate_actions as ca
from kobe_pipelines.execution.broker import Broker, OrderRecord, working_stops
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.service import Execution, place_order
from kobe_pipelines.orders import OrderIntent, OrderType, Side, client_order_id, tick_for
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.types import Book, Position


@dataclass(frozen=True)
class Protection:
    """The stop one bracket owes its part of a position: `qty` shares at `stop` (USD)."""

    order_id: str
    symbol: str
    position_sign: int
    qty: int
    stop: Decimal


@dataclass(frozen=True)
class ProtectionOutcome:
    protection: Protection
    covered: int  # shares covered by a working stop at the book's price before the check
    cancelled: tuple[str, ...] = ()  # stops at another price, cancelled
    placed: Execution | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def required_protections(ledger: OrderLedger, broker: str, positions: Mapping[str, Position]) -> list[Protection]:
    """The stops the book owes, per bracket part still open, capped by each position's size."""
    left = {symbol: abs(p.qty) for symbol, p in positions.items() if p.qty}
    if not left:
        return []
    fills = ledger.fills(broker, set(left))
    protecting = ledger.protective_orders(broker)
    splits = [e for e in ledger.book_events(broker) if e.kind == "split" and e.symbol in left]
    out: list[Protection] = []
    filled = {coid for coid, _, _, _ in fills}
    closed = {coid for coid, leg, _, _ in fills if leg != "entry"}  # a bracket's exit leg filled
    closed |= {bracket for coid, bracket in protecting.items() if coid in filled}
    entries: dict[str, tuple[int, str]] = {}
    for coid, leg, qty, session in fills:
        if leg == "entry" and coid not in closed:
            shares, last = entries.get(coid, (0, ""))
            entries[coid] = (shares + qty, max(last, session))
    subs = ledger.submissions(broker, set(entries))
    for coid, (qty, session) in entries.items():
        sub = subs.get(coid)
        if sub is None or sub.get("stop") is None or sub.get("order_type") == OrderType.STOP.value or coid in closed:
            continue
        symbol, sign = sub["symbol"], Side(sub["side"]).sign
        position = positions.get(symbol)
        if position is None or position.qty == 0 or (position.qty > 0) != (sign > 0):
            continue
        stop = Decimal(repr(float(sub["stop"])))
        for split in splits:
            if split.symbol == symbol and split.session > session:
                ratio = Fraction(split.detail["split_to"]) / Fraction(split.detail["split_from"])
                qty, stop = ca.split_shares(qty, ratio), ca.split_exit_price(stop, ratio, sign, "stop")
        qty = min(qty, left.get(symbol, 0))
        if qty > 0:
            left[symbol] -= qty
            out.append(Protection(coid, symbol, sign, qty, stop))
    return out


def check_protection(broker: Broker, ledger: OrderLedger, gate: PolicyGate, book: Callable[[], Book],
                     trading_date: str) -> list[ProtectionOutcome]:
    """Verify every owed stop and re-place the missing ones (see the module docstring)."""
    positions = broker.positions()
    owed = required_protections(ledger, broker.name, positions)
    if not owed:
        return []
    orders = broker.open_orders()
    protecting = ledger.protective_orders(broker.name)
    outcomes = []
    for protection in owed:
        outcomes.append(_check_one(protection, positions[protection.symbol].qty, orders, protecting, broker, ledger, gate,
                                   book, trading_date))
    return outcomes


def _check_one(p: Protection, position_qty: int, orders: list[OrderRecord], protecting: dict[str, str], broker: Broker,
               ledger: OrderLedger, gate: PolicyGate, book: Callable[[], Book], trading_date: str) -> ProtectionOutcome:
    mine = [(order, price, qty) for order, price, qty in working_stops(p.symbol, position_qty, orders)
            if order.client_order_id == p.order_id or protecting.get(order.client_order_id) == p.order_id]
    half_tick = tick_for(p.stop) / 2
    at_price = [(o, q) for o, price, q in mine if abs(Decimal(repr(price)) - p.stop) < half_tick]
    covered = sum(q for _, q in at_price)
    if covered >= p.qty:
        return ProtectionOutcome(p, covered)
    # What is left of the part's protection goes first: stops at another price, and the bracket's
    # remaining legs (a live take-profit holds the shares: a new stop beside it could trade them
    # twice, and Alpaca refuses it). The new stop then protects the part alone.
    stale = {order.client_order_id: f"stop {price} is not the book's {p.stop}" for order, price, _ in mine
             if abs(Decimal(repr(price)) - p.stop) >= half_tick}
    bracket = next((o for o in orders if o.client_order_id == p.order_id), None)
    if bracket is not None and bracket.is_open:
        stale.setdefault(bracket.client_order_id, f"its stop is missing: replaced by a stop order at {p.stop}")
    cancelled = []
    for coid, reason in stale.items():
        try:
            record = broker.cancel(coid)
        except KobeError as exc:
            return ProtectionOutcome(p, covered, tuple(cancelled), error=f"cancelling {coid} failed: {exc}")
        ledger.record_cancel(record, broker.name, reason=reason)
        cancelled.append(coid)
    need = p.qty - sum(q for order, q in at_price if order.client_order_id not in cancelled)
    exit_side = Side.SELL if p.position_sign > 0 else Side.BUY
    coid = client_order_id("protect", p.symbol, trading_date, exit_side,
                           details={"protects": p.order_id, "stop": str(p.stop), "qty": need})
    intent = OrderIntent(coid, p.symbol, exit_side, need, float(p.stop), order_type=OrderType.STOP, strategy="protect",
                         strategy_version="1", trading_date=trading_date)
    placed = place_order(intent, book, gate, broker, ledger, purposes={coid: {"protects": p.order_id}})
    error = "" if placed.sent else f"the stop could not be placed: {placed.reason}"
    return ProtectionOutcome(p, covered, tuple(cancelled), placed, error)
