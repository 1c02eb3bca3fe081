"""The one path from an intent to a broker: ledger -> gate -> ledger -> broker -> ledger.

`place_orders` records each intent first (durable before anything is decided), then, under the
gate's decision lock (`PolicyGate.exclusive`), reads the book (`book_for_decisions`: the broker's
account, positions and orders not filled yet, plus the ledger's approvals the broker has not
seen), asks the gate, and records each decision and, for an approval, the submission
(write-ahead). Only then, outside the lock, is each approved order sent and the broker's answer
recorded. So there is no window in which an approved order can vanish:

- the same intent again (the same command, or the next trading run) resumes instead of being
  refused as a duplicate: its earlier approval is found in the audit log; the order is looked
  up at the broker by its client order id; found, it is recorded as sent (nothing is sent
  twice); absent, the gate decides the same intent again (`retry_of`: every check runs again)
  and it is sent;
- an order the broker refused (market closed, buying power) is retried only when asked
  (`retry=True`, `kobe order bracket --retry`): the gate decides it again and it is sent;
- a broker that refuses is recorded as `refused`; a submission whose outcome was lost as
  `unknown`, open in the ledger until found.

An exit (an order without legs, on the other side of a held position, for all of it) first
records the protective orders it will cancel (ledger `exit`), cancels them, and only then is
decided and sent: the gate nets a position against its working exit legs, so the exit reduces
the position instead of adding a short behind a stop that is still live. A crash after the
cancels leaves a position without legs: the next run either sends the exit again (the same
intent) or re-places the stop (`protection`).

`checkpoint(step)` names each step (`STEPS`); it does nothing, and crash tests replace it to
kill the process there. `settle` brings fills into the ledger and the slippage tracker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from kobe_pipelines.errors import KobeError
from kobe_pipelines.execution.broker import (
    Broker,
    Fill,
    LegRole,
    OrderAck,
    OrderClass,
    OrderRecord,
    OrderStatus,
    leg_is_working,
)
from kobe_pipelines.execution.errors import OrderStatusUnknownError
from kobe_pipelines.execution.ledger import SENT_STATES, OrderLedger
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines.orders import OrderIntent, OrderType, Side
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.types import Book, Decision, OpenOrder

STEPS = ("intent_recorded", "legs_cancelled", "decision_logged", "submission_recorded", "sent", "acked")
BookSource = Callable[[], Book]


def checkpoint(step: str) -> None:
    """A named step of the order path. Does nothing; crash tests replace it to stop the process here."""


@dataclass(frozen=True)
class Execution:
    """What happened to one intent. `decision` is None when nothing new was decided because the
    order was already at the broker (`ack.created` False); `resumed` says how an earlier,
    interrupted attempt was completed ("" for a first attempt)."""

    intent: OrderIntent
    decision: Decision | None
    ack: OrderAck | None = None
    error: KobeError | None = None  # the broker's refusal, or an unknown outcome
    resumed: str = ""

    @property
    def sent(self) -> bool:
        return self.ack is not None

    @property
    def approved(self) -> bool:
        return self.decision.approved if self.decision is not None else self.ack is not None

    @property
    def reason(self) -> str:
        if self.decision is not None and not self.decision.approved:
            return self.decision.reason
        return str(self.error) if self.error else (self.resumed or "approved")


# -- the book -----------------------------------------------------------------------------------
def book_for_decisions(broker: Broker, last_prices: Mapping[str, float], ledger: OrderLedger | None = None,
                       stale_marks: Mapping[str, str] | None = None) -> Book:
    """The book the gate judges against (read it under `gate.exclusive()`): the broker's account
    and positions; its orders split into entries not filled yet (`OpenOrder`) and working exits
    (`Book.exit_legs`); the ledger's approvals the broker has not answered yet (entries not
    reserved in buying power, or exits); the marks given (USD; every held symbol and the order's
    symbol need one, or the gate refuses), the broker's own marks filling gaps."""
    # the ledger's unanswered approvals first, then the broker: an approval answered in between is
    # then at the broker when it is read, never missed by both
    unsent = ledger.unsent_approvals(broker.name) if ledger is not None else {}
    account = broker.account()
    positions = broker.positions()
    orders = broker.open_orders()
    open_orders, exits = [], {}
    for order in orders:
        entry, exit_qty = _order_exposure(order, positions)
        if entry is not None:
            open_orders.append(entry)
        if exit_qty:
            exits[order.symbol] = exits.get(order.symbol, 0) + exit_qty
    if unsent:
        at_broker = {o.client_order_id for o in orders}
        for coid, sub in unsent.items():
            if coid in at_broker or broker.get_order(coid) is not None:
                continue
            side, qty, symbol = Side(sub["side"]), int(sub["qty"]), sub["symbol"]
            held = positions[symbol].qty if symbol in positions else 0
            if sub.get("order_type") == OrderType.STOP.value or (held and (held > 0) != (side is Side.BUY)):
                exits[symbol] = exits.get(symbol, 0) + side.sign * qty
            else:
                open_orders.append(OpenOrder(coid, symbol, side, qty, float(sub["expected_price"]), sub.get("stop"),
                                             reserved=False))
    marks = {**broker.marks(), **{k: float(v) for k, v in last_prices.items()}}
    return Book(account.equity, account.cash, account.buying_power, positions, marks, tuple(open_orders), exits,
                dict(stale_marks or {}))


def book_from_broker(broker: Broker, last_prices: Mapping[str, float]) -> Book:
    """`book_for_decisions` without the ledger's unanswered approvals."""
    return book_for_decisions(broker, last_prices)


def _order_exposure(order: OrderRecord, positions: Mapping) -> tuple[OpenOrder | None, int]:
    """(the entry not filled yet, signed shares its working exits would trade) of one order."""
    held = positions[order.symbol].qty if order.symbol in positions else 0
    entry = order.entry
    if order.is_protective_stop or (order.order_class is OrderClass.SIMPLE and held and (held > 0) != (order.side is Side.BUY)):
        left = order.leg_qty(entry) - entry.filled_qty
        return None, (order.side.sign * left if entry.status.is_open else 0)
    open_entry = None
    if entry.status.is_open:
        left = order.qty - entry.filled_qty
        stop = order.leg(LegRole.STOP_LOSS)
        price = entry.price if entry.price is not None else None
        if left > 0 and price is not None:
            open_entry = OpenOrder(order.client_order_id, order.symbol, order.side, left, price,
                                   stop.price if stop is not None else None)
    exit_qty = 0
    live = [leg for leg in order.legs[1:] if leg_is_working(order, leg)]
    if live:  # one-cancels-other: the legs together close the position once
        exit_qty = order.side.opposite.sign * max(order.leg_qty(leg) - leg.filled_qty for leg in live)
    return open_entry, exit_qty


# -- the order path -------------------------------------------------------------------------------
def place_orders(intents: Iterable[OrderIntent], gate: PolicyGate, broker: Broker, ledger: OrderLedger,
                 book: Book | BookSource, *, retry: bool = False,
                 purposes: Mapping[str, dict] | None = None) -> list[Execution]:
    """Decide and send `intents` (see the module docstring); one `Execution` per intent, in order.
    `book`: a callable building the Book under the decision lock (`book_for_decisions`), or a
    Book already built. `retry`: also retry ids the broker refused before. `purposes`: extra
    detail per client order id for the ledger's submission record (e.g. what a stop protects)."""
    batch = list(intents)
    for intent in batch:
        ledger.record_intent(intent, broker.name)
    checkpoint("intent_recorded")
    done: dict[int, Execution] = {}
    plans: list[tuple[int, OrderIntent, str | None, str]] = []  # (index, intent, retry_of, how)
    for index, intent in enumerate(batch):
        found = _resume(intent, gate, broker, ledger, retry)
        if isinstance(found, Execution):
            done[index] = found
        else:
            retry_of, how = found
            plans.append((index, intent, retry_of, how))
    for index, intent, _, _ in plans:
        failed = _cancel_legs_for_exit(intent, broker, ledger)
        if failed is not None:
            done[index] = failed
    plans = [p for p in plans if p[0] not in done]
    checkpoint("legs_cancelled")
    approved: list[tuple[int, OrderIntent, Decision, str]] = []
    with gate.exclusive():
        current = book() if callable(book) else book
        for index, intent, retry_of, how in plans:
            decision = gate.decide(intent, current, retry_of=retry_of)
            checkpoint("decision_logged")
            ledger.record_decision(decision, broker.name)
            if decision.approved:
                ledger.record_submission(decision, broker.name, (purposes or {}).get(str(intent.client_order_id)))
                approved.append((index, intent, decision, how))
            else:
                done[index] = Execution(intent, decision)
            checkpoint("submission_recorded")
    for index, intent, decision, how in approved:
        done[index] = _send(intent, decision, broker, ledger, how)
    return [done[i] for i in range(len(batch))]


def place_order(intent: OrderIntent, book: Book | BookSource, gate: PolicyGate, broker: Broker, ledger: OrderLedger,
                *, retry: bool = False, purposes: Mapping[str, dict] | None = None) -> Execution:
    """`place_orders` for one intent."""
    return place_orders([intent], gate, broker, ledger, book, retry=retry, purposes=purposes)[0]


def _resume(intent: OrderIntent, gate: PolicyGate, broker: Broker, ledger: OrderLedger,
            retry: bool) -> Execution | tuple[str | None, str]:
    """An Execution when the order is already at the broker; else (retry_of, how) for the gate."""
    coid = intent.client_order_id
    if not isinstance(coid, str):
        return None, ""
    approval = gate.approval_of(coid)
    if approval is None:
        return None, ""
    state = ledger.order_state(coid)
    if state == "refused":
        return (approval.decision_id, "retry of an order the broker refused") if retry else (None, "")
    record = broker.get_order(coid)
    if record is not None:
        ack = OrderAck(broker.name, coid, record.broker_order_id, record.status, record.order_class, False,
                       state not in SENT_STATES, record)
        if state not in SENT_STATES:
            ledger.record_ack(ack)
        return Execution(intent, None, ack, resumed="already at the broker: not sent again")
    if state in SENT_STATES:  # the broker acknowledged it once and no longer knows it
        return None, ""
    return approval.decision_id, "resumed: approved before, never reached the broker"


def _send(intent: OrderIntent, decision: Decision, broker: Broker, ledger: OrderLedger, how: str) -> Execution:
    try:
        ack = broker.submit(decision)
    except OrderStatusUnknownError as exc:
        ledger.record_broker_error(str(intent.client_order_id), broker.name, exc, outcome_unknown=True)
        return Execution(intent, decision, error=exc, resumed=how)
    except KobeError as exc:
        ledger.record_broker_error(str(intent.client_order_id), broker.name, exc, outcome_unknown=False)
        return Execution(intent, decision, error=exc, resumed=how)
    checkpoint("sent")
    ledger.record_ack(ack)
    checkpoint("acked")
    return Execution(intent, decision, ack, resumed=how)


def _cancel_legs_for_exit(intent: OrderIntent, broker: Broker, ledger: OrderLedger) -> Execution | None:
    """Cancel the protective orders of the position `intent` closes (only for an exit: no legs,
    the other side of a held position, all of it). None when done or not an exit."""
    if intent.stop is not None or intent.take_profit is not None or not isinstance(intent.qty, int):
        return None
    try:
        side = Side(intent.side)
    except ValueError:
        return None
    held = broker.positions().get(intent.symbol)
    if held is None or held.qty == 0 or (held.qty > 0) == (side is Side.BUY) or intent.qty != abs(held.qty):
        return None
    if OrderType(intent.order_type) is OrderType.STOP:
        return None
    protecting = protective_orders(intent.symbol, held.qty, broker.open_orders())
    if not protecting:
        return None
    ledger.record_exit(intent, broker.name, protecting)
    for coid in protecting:
        try:
            record = broker.cancel(coid)
        except KobeError as exc:
            ledger.record_broker_error(str(intent.client_order_id), broker.name, exc, outcome_unknown=False)
            return Execution(intent, None, error=exc, resumed=f"not sent: cancelling {coid} failed")
        ledger.record_cancel(record, broker.name, reason=f"exit {intent.client_order_id}")
    return None


def protective_orders(symbol: str, position_qty: int, orders: Iterable[OrderRecord]) -> list[str]:
    """Client order ids of the working orders that would close a position of `position_qty`
    signed shares: brackets and OTOs entered on its side with a live exit leg, and simple stop
    orders on the other side."""
    side = Side.BUY if position_qty > 0 else Side.SELL
    out = []
    for order in orders:
        if order.symbol != symbol:
            continue
        if order.is_protective_stop and order.side is side.opposite and order.entry.status.is_open:
            out.append(order.client_order_id)
        elif order.side is side and order.entry.status is OrderStatus.FILLED and any(
                leg.status.is_open for leg in order.legs[1:]):
            out.append(order.client_order_id)
    return sorted(out)


def settle(broker: Broker, ledger: OrderLedger, slippage: SlippageTracker | None = None) -> list[Fill]:
    """Record every new fill of the ledger's open orders at `broker`, and its slippage."""
    fills = ledger.sync(broker)
    if slippage is not None and fills:
        slippage.record_many(fills)
    return fills
