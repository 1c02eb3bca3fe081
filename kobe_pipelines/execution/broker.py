"""The broker protocol and the order, fill and account records every broker speaks.

Conventions: prices are USD per share; quantities are whole shares, always positive on an
order or a fill (the side carries the direction); a position's `qty` is signed (+ long,
- short, `kobe_pipelines.risk.types.Position`). Times are timezone-aware UTC. A "session"
is the exchange trading date, YYYY-MM-DD (America/New_York).

A broker accepts only an approved policy-gate `Decision` (`risk.types.require_decision`),
and sends exactly the order it approved: `OrderSpec.from_decision` re-validates every field
and puts the prices on the tick grid without moving them (`kobe_pipelines.orders.ticks`). The
order class follows the legs: both a stop and a take-profit make a bracket, one of them an OTO
(one-triggers-other), none a simple order. A simple `stop` order is a protective stop on its own.

Lifetimes: an entry is a day order for its `trading_date` (unfilled after its session, it is
cancelled: by the paper broker itself, by the trading run at Alpaca); exit legs and protective
stops are good until cancelled: they live as long as the position.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Iterable, Protocol, runtime_checkable

from kobe_pipelines.errors import RecordError
from kobe_pipelines.execution.corporate_actions import BookEvent, CorporateAction
from kobe_pipelines.execution.errors import DuplicateClientOrderIdError
from kobe_pipelines.orders import OrderIntent, OrderType, Side, SignalLineage, on_tick_decimal, parse_intent
from kobe_pipelines.orders.validation import bracket_problems
from kobe_pipelines.risk.types import Decision, Position, require_decision

if TYPE_CHECKING:
    import pandas as pd


class OrderStatus(str, Enum):
    PENDING = "pending"  # sent, no acknowledgement yet (or its outcome is unknown)
    HELD = "held"  # an exit leg waiting for its entry to fill
    NEW = "new"  # working at the broker
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.PENDING, OrderStatus.HELD, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class OrderClass(str, Enum):
    SIMPLE = "simple"
    BRACKET = "bracket"
    OTO = "oto"


class LegRole(str, Enum):
    ENTRY = "entry"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


@dataclass(frozen=True)
class OrderSpec:
    """The exact order a broker sends, built from an approved decision. Prices are Decimals on
    the tick grid; `limit_price` is None for a market entry."""

    client_order_id: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType
    limit_price: Decimal | None
    expected_price: Decimal  # the entry price the order was decided on (slippage reference)
    stop: Decimal | None
    take_profit: Decimal | None
    trading_date: str
    strategy: str
    lineage: SignalLineage | None = None

    @property
    def order_class(self) -> OrderClass:
        if self.stop is not None and self.take_profit is not None:
            return OrderClass.BRACKET
        if self.stop is not None or self.take_profit is not None:
            return OrderClass.OTO
        return OrderClass.SIMPLE

    @property
    def exit_side(self) -> Side:
        return Side.SELL if self.side is Side.BUY else Side.BUY

    @classmethod
    def from_decision(cls, decision: Decision) -> "OrderSpec":
        """The order `decision` approved; `UnapprovedOrderError` for anything but an approved,
        untampered gate decision, `RecordError` naming the field for a value no broker may send."""
        return cls.from_intent(require_decision(decision))

    @classmethod
    def from_intent(cls, intent: OrderIntent) -> "OrderSpec":
        """Validate `intent` field by field (the gate has done so; this is the broker's own
        last line) and build the spec. Raises `RecordError` naming the field."""
        record = str(intent.client_order_id) if isinstance(intent, OrderIntent) else "?"
        parsed = parse_intent(intent)
        problems = {**parsed.problems, **bracket_problems(parsed)}
        if problems:
            name, text = next(iter(problems.items()))
            raise RecordError("order", record, name, text.removeprefix(f"field '{name}' "))
        entry = on_tick_decimal(parsed.entry, "entry", record)
        stop = None if parsed.stop is None else on_tick_decimal(parsed.stop, "stop", record)
        target = None if parsed.take_profit is None else on_tick_decimal(parsed.take_profit, "take_profit", record)
        order_type = parsed.order_type
        return cls(parsed.client_order_id, parsed.symbol, parsed.side, parsed.qty, order_type,
                   entry if order_type is not OrderType.MARKET else None, entry, stop, target,
                   str(intent.trading_date or ""), str(intent.strategy or ""), intent.lineage)


@dataclass(frozen=True)
class LegRecord:
    """One leg of an order as the broker reports it. `price` is the leg's limit (entry,
    take-profit) or stop trigger (stop-loss); None for a market entry."""

    role: LegRole
    side: Side
    price: float | None
    status: OrderStatus
    filled_qty: int = 0
    filled_avg_price: float | None = None
    filled_at: dt.datetime | None = None
    broker_order_id: str | None = None
    qty: int | None = None  # the leg's own shares when they differ from the order's (after a split)


@dataclass(frozen=True)
class OrderRecord:
    """An order at the broker: the entry leg first, then its exit legs."""

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    qty: int
    order_class: OrderClass
    submitted_at: dt.datetime
    legs: tuple[LegRecord, ...]
    trading_date: str = ""
    order_type: OrderType = OrderType.LIMIT

    @property
    def entry(self) -> LegRecord:
        return self.legs[0]

    def leg_qty(self, leg: LegRecord) -> int:
        """The shares `leg` is for (its own after a split, else the order's)."""
        return leg.qty if leg.qty is not None else self.qty

    @property
    def is_protective_stop(self) -> bool:
        """A simple stop order: it only ever closes a position."""
        return self.order_type is OrderType.STOP and self.order_class is OrderClass.SIMPLE

    @property
    def status(self) -> OrderStatus:
        """The entry leg's status (the order's status as brokers report it)."""
        return self.entry.status

    @property
    def is_open(self) -> bool:
        """True while any leg can still trade (the entry, or an exit leg after the entry filled)."""
        return any(leg.status.is_open for leg in self.legs)

    def leg(self, role: LegRole) -> LegRecord | None:
        return next((leg for leg in self.legs if leg.role is role), None)


def conflicts(spec: OrderSpec, record: "OrderRecord") -> list[str]:
    """Fields in which an existing order with the same client order id differs from `spec`
    (empty: it is the same order). A reused id for another order must never pass as "already sent"."""
    out = []
    if record.symbol != spec.symbol:
        out.append(f"symbol {record.symbol} != {spec.symbol}")
    if record.side is not spec.side:
        out.append(f"side {record.side.value} != {spec.side.value}")
    if record.qty != spec.qty:
        out.append(f"qty {record.qty} != {spec.qty}")
    price = record.entry.price
    if spec.limit_price is not None and price is not None and abs(price - float(spec.limit_price)) > 1e-9:
        out.append(f"entry {price} != {spec.limit_price}")
    return out


def require_same_order(spec: OrderSpec, record: "OrderRecord", where: str) -> None:
    """`DuplicateClientOrderIdError` when `record`, found under `spec`'s client order id, is
    another order (`conflicts`): an id reused for a different order never passes as "already sent"."""
    differs = conflicts(spec, record)
    if differs:
        raise DuplicateClientOrderIdError(f"{where} {spec.client_order_id}: the id is already used by another order "
                                          f"({'; '.join(differs)})", spec.client_order_id)


def working_stops(symbol: str, position_qty: int,
                  orders: "list[OrderRecord] | tuple[OrderRecord, ...]") -> list[tuple["OrderRecord", float, int]]:
    """The working stops that would close part of a position of `position_qty` signed shares:
    (order, stop price, shares). A bracket's or OTO's stop leg once its entry filled (new,
    partially filled, or held: Alpaca holds a bracket's stop under its one-cancels-other while the
    take-profit works) on an order entered on the position's side, and a simple stop order on the
    other side."""
    if position_qty == 0:
        return []
    side = Side.BUY if position_qty > 0 else Side.SELL
    out: list[tuple[OrderRecord, float, int]] = []
    for order in orders:
        if order.symbol != symbol:
            continue
        if order.is_protective_stop:
            leg = order.entry
            if order.side is side.opposite and leg.price is not None and leg.status.is_open and leg.status is not OrderStatus.HELD:
                out.append((order, leg.price, order.leg_qty(leg) - leg.filled_qty))
            continue
        leg = order.leg(LegRole.STOP_LOSS)
        if order.side is not side or leg is None or leg.price is None:
            continue
        if leg_is_working(order, leg):
            out.append((order, leg.price, order.leg_qty(leg) - leg.filled_qty))
    return out


def leg_is_working(order: OrderRecord, leg: LegRecord) -> bool:
    """An exit leg that can trade now: new or partially filled, or held once the entry filled."""
    if leg.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
        return True
    return leg.status is OrderStatus.HELD and order.entry.status is OrderStatus.FILLED


def protective_stop(symbol: str, qty: int, orders: "list[OrderRecord] | tuple[OrderRecord, ...]") -> float | None:
    """The stop protecting a position of `qty` signed shares, for the gate's heat check.

    The working stops (`working_stops`) must cover the whole quantity; then the farthest stop
    (the most risk: the lowest for a long, the highest for a short) is returned. Otherwise
    None: the position counts as unprotected (its whole market value is at risk).
    """
    stops = working_stops(symbol, qty, orders)
    if not stops or sum(q for _, _, q in stops) < abs(qty):
        return None
    prices = [price for _, price, _ in stops]
    return min(prices) if qty > 0 else max(prices)


@dataclass(frozen=True)
class OrderAck:
    """A broker's answer to `submit`.

    `created` is False when an order with this client order id already existed and is
    returned instead of a second one; `reconciled` is True when the submission's answer was
    lost (timeout, 5xx) and the order was found by its client order id afterwards.
    """

    broker: str
    client_order_id: str
    broker_order_id: str
    status: OrderStatus
    order_class: OrderClass
    created: bool
    reconciled: bool
    record: OrderRecord


@dataclass(frozen=True)
class Fill:
    """One execution of one leg. `expected_price` is the price the leg was placed at (entry
    limit, stop trigger, take-profit limit; for a market entry the decided entry), the
    reference for slippage. `realized_pnl` (USD) is set on fills that reduce a position."""

    fill_id: str
    client_order_id: str
    leg: LegRole
    symbol: str
    side: Side
    qty: int
    price: float
    expected_price: float
    filled_at: dt.datetime
    session: str
    broker: str
    realized_pnl: float | None = None


@dataclass(frozen=True)
class Account:
    """USD amounts: equity (cash + positions at their marks), cash, buying power."""

    equity: float
    cash: float
    buying_power: float


@dataclass(frozen=True)
class AdvanceResult:
    """What one replay of bars did at a `BarReplayBroker`."""

    sessions: tuple[str, ...]  # processed now, in order
    skipped_sessions: tuple[str, ...]  # already processed before: ignored
    fills: tuple[Fill, ...]
    expired: tuple[str, ...]  # client order ids whose entry expired unfilled
    book_events: tuple[BookEvent, ...] = ()  # corporate actions and delistings applied


@runtime_checkable
class Broker(Protocol):
    """What the trading loop needs from any broker.

    `account().buying_power` is net of the notional the broker reserves for its working entry
    orders (the gate adds only approvals the broker has not seen yet)."""

    name: str

    def submit(self, decision: Decision) -> OrderAck:
        """Send the order `decision` approved (simple, OTO or bracket by its legs). An order
        with the same client order id that already exists is returned, never doubled."""
        ...

    def get_order(self, client_order_id: str) -> OrderRecord | None: ...

    def cancel(self, client_order_id: str) -> OrderRecord:
        """Cancel every working leg of the order; `OrderNotFoundError` if there is none."""
        ...

    def open_orders(self) -> list[OrderRecord]: ...

    def positions(self) -> dict[str, Position]: ...

    def account(self) -> Account: ...

    def marks(self) -> dict[str, float]:
        """The broker's latest price of every symbol it holds, USD."""
        ...


@runtime_checkable
class BarReplayBroker(Broker, Protocol):
    """A broker that fills orders against the bars it is handed (the paper broker): the trading
    run replays each session's raw bars and corporate actions into it before deciding. A live
    broker fills on its own and applies corporate actions itself."""

    @property
    def last_session(self) -> str | None:
        """The last session replayed (YYYY-MM-DD), None before the first."""
        ...

    def advance(self, bars: "pd.DataFrame", actions: Iterable[CorporateAction] = ()) -> AdvanceResult:
        """Bring the book through every session of `bars` not replayed yet (actions first, then fills)."""
        ...

    def book_events(self) -> list[BookEvent]:
        """Every corporate action and delisting applied to the book, in order."""
        ...

    def stale_marks(self) -> dict[str, str]:
        """Held symbols without a bar on the last session replayed: symbol -> session of its last bar."""
        ...
