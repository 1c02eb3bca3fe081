"""`PaperBroker`: the embedded default broker, filling orders against daily bars.

Entries are day orders for their intent's `trading_date` (an XNYS session, required): the
entry can fill only on that session's bar and expires otherwise; exit legs wait ("held")
until the entry fills, then stay live, one-cancels-other, until one fills or the order is
cancelled (good until cancelled, as at Alpaca). A simple `stop` order (a protective stop placed
on its own) is good until cancelled too. Fill rules: `paper_model` (limits fill when a bar
trades through them and never worse than the limit; stops fill at the stop or the gapped open
less slippage; both legs in one bar: the stop wins unless the bar opened through the target).
An exit leg or stop never trades a position past zero: if the position it protected is gone
(or smaller than the leg), the leg is cancelled instead.

Bars arrive through `advance(bars, actions)` (schema `BAR_COLUMNS`, one or more sessions, raw
prices as traded; corporate actions on their effective sessions): sessions are processed in
date order, each once; a session at or before the last one processed is skipped, so replaying
bars never fills twice. Pass every symbol of a session in one call. Each session first brings
the book through that session's actions (`paper_actions`, rules in `corporate_actions`), then
fills orders, then marks; a held symbol without a bar for `delisted_after` sessions is closed
at its last close (a delisting); fewer sessions without a bar leave a stale mark
(`stale_marks`).

The account is 1x (no margin): buying power = equity - the market value of all positions
(long and short) - the notional reserved by working entry orders. Money is exact (`Decimal`):
cash moves by qty x fill price; fill prices are on a $0.0001 grid.

Everything (orders, positions, cash, marks, fills, book events) lives in
`state/paper_broker.json`, rewritten atomically after each change under a file lock, so a
restart or a second process sees the same book. A read re-parses the file only when it changed
(its inode, size or modification time), so a day-by-day driver does not pay for the whole
history on every call. A file that cannot be read or parsed raises `StateFileError`; it is never
reset silently.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import math
import os
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Callable, Collection, Iterable, Iterator

import pandas as pd

from kobe_pipelines import paths
from kobe_pipelines.data import schema
from kobe_pipelines.data.validation import validate_bars
from kobe_pipelines.errors import ConfigError, StateFileError
from kobe_pipelines.execution import paper_actions
from kobe_pipelines.execution import paper_state as ps
from kobe_pipelines.execution.broker import (
    Account,
    AdvanceResult,
    Fill,
    LegRole,
    OrderAck,
    OrderRecord,
    OrderSpec,
    OrderStatus,
    require_same_order,
)
from kobe_pipelines.execution.corporate_actions import DEFAULT_DELISTED_AFTER, BookEvent, CorporateAction
from kobe_pipelines.execution.errors import (
    InsufficientBuyingPowerError,
    InvalidOrderError,
    MarketClosedError,
    OrderNotFoundError,
    UnknownSymbolError,
)
from kobe_pipelines.execution.paper_model import Bar, ExitFill, ModelFill, entry_fill, exit_fill
from kobe_pipelines.market_calendar import is_session, xnys
from kobe_pipelines.regular_files import read_regular, version_of
from kobe_pipelines.orders import OrderType, Side
from kobe_pipelines.risk.heat import is_reducing
from kobe_pipelines.risk.types import Decision, Position

STATE_NAME = "paper_broker.json"
LOCK_NAME = ".paper_broker.lock"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class PaperBroker:
    """See the module docstring. `slippage_bps`: adverse slippage per fill, in basis points of
    price (5.0 = 0.05 %). `starting_cash` (USD) is used only when no state file exists yet.
    `symbols`: the tradable universe (None: any symbol). `clock`: UTC time of submissions.
    `delisted_after`: sessions without a bar after which a held symbol is delisted. `durable=False`:
    the state file is replaced atomically but without fsync (backtests, whose state a rerun rebuilds)."""

    name = "paper"

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        slippage_bps: float = 5.0,
        starting_cash: float = 100_000.0,
        symbols: Collection[str] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        delisted_after: int = DEFAULT_DELISTED_AFTER,
        durable: bool = True,
    ):
        if isinstance(slippage_bps, bool) or not isinstance(slippage_bps, (int, float)) or not (
            math.isfinite(slippage_bps) and 0 <= slippage_bps < 10_000
        ):
            raise ConfigError("slippage_bps", "must be a number of basis points in [0, 10000)", slippage_bps)
        if isinstance(starting_cash, bool) or not isinstance(starting_cash, (int, float)) or not (
            math.isfinite(starting_cash) and starting_cash > 0
        ):
            raise ConfigError("starting_cash", "must be a finite amount of USD > 0", starting_cash)
        if isinstance(delisted_after, bool) or not isinstance(delisted_after, int) or delisted_after < 1:
            raise ConfigError("delisted_after", "must be a whole number of sessions >= 1", delisted_after)
        self.state_dir = paths.state_dir(state_dir)
        self.path = self.state_dir / STATE_NAME
        self.slippage_bps = float(slippage_bps)
        self._slip = Decimal(repr(float(slippage_bps))) / Decimal(10_000)
        self._starting_cash = Decimal(repr(float(starting_cash)))
        self.symbols = frozenset(symbols) if symbols is not None else None
        self._clock = clock or _utc_now
        self.delisted_after = delisted_after
        self.durable = durable
        self._cached: tuple[tuple[int, int, int, int, int] | None, dict[str, Any]] | None = None
        # The working orders of the cached state, by the file version they were found in.
        self._working: tuple[tuple[int, int, int], list[dict[str, Any]]] | None = None
        with self._state(write=False):  # a corrupt file fails here, at start
            pass

    # -- orders ----------------------------------------------------------------------------
    def submit(self, decision: Decision) -> OrderAck:
        spec = OrderSpec.from_decision(decision)  # nothing is recorded unless this passes
        coid = spec.client_order_id
        with self._state(write=True) as state:
            existing = state["orders"].get(coid)
            if existing is not None:
                record = ps.order_record(existing)
                require_same_order(spec, record, "paper submit")
                return OrderAck(self.name, coid, record.broker_order_id, record.status, record.order_class, False, False, record)
            self._refuse_unfit(state, spec)
            state["seq"] += 1
            order = ps.new_order(spec, state["seq"], decision.decision_id, self._clock())
            state["orders"][coid] = order
        record = ps.order_record(order)
        return OrderAck(self.name, coid, record.broker_order_id, record.status, record.order_class, True, False, record)

    def _refuse_unfit(self, state: dict[str, Any], spec: OrderSpec) -> None:
        coid = spec.client_order_id
        if self.symbols is not None and spec.symbol not in self.symbols:
            raise UnknownSymbolError(f"order {coid}: field 'symbol' {spec.symbol!r} is not tradable at the paper broker", coid)
        try:
            session = dt.date.fromisoformat(spec.trading_date)
        except ValueError:
            raise InvalidOrderError(f"order {coid}: field 'trading_date' must be a session YYYY-MM-DD for the paper broker "
                                    f"(got {spec.trading_date!r})", coid) from None
        if not is_session(session):
            raise MarketClosedError(f"order {coid}: field 'trading_date' {session} is not an XNYS session", coid)
        last = state["last_session"]
        if last is not None and spec.trading_date <= last:
            raise MarketClosedError(f"order {coid}: session {session} has already been processed (last {last}); "
                                    "the paper broker cannot fill in the past", coid)
        position = state["positions"].get(spec.symbol)
        held = position["qty"] if position else 0
        if spec.order_type is OrderType.STOP and not is_reducing(held, spec.side.sign, spec.qty):
            raise InvalidOrderError(f"order {coid}: a stop order at the paper broker must protect a position "
                                    f"({spec.symbol} holds {held:+d} sh)", coid)
        if not is_reducing(held, spec.side.sign, spec.qty):
            need = spec.qty * spec.expected_price
            available = ps.buying_power(state)
            if need > available:
                raise InsufficientBuyingPowerError(f"order {coid}: needs {need:,.2f} USD, buying power is {available:,.2f} USD", coid)

    def get_order(self, client_order_id: str) -> OrderRecord | None:
        with self._state(write=False) as state:
            order = state["orders"].get(client_order_id)
        return ps.order_record(order) if order is not None else None

    def cancel(self, client_order_id: str) -> OrderRecord:
        with self._state(write=True) as state:
            order = state["orders"].get(client_order_id)
            if order is None:
                raise OrderNotFoundError(f"no paper order with client order id {client_order_id!r}", client_order_id)
            for leg in order["legs"].values():
                if OrderStatus(leg["status"]).is_open:
                    leg["status"], leg["reason"] = OrderStatus.CANCELED.value, "cancelled by request"
        return ps.order_record(order)

    def open_orders(self) -> list[OrderRecord]:
        with self._state(write=False) as state:
            orders = sorted(self._working_orders(state), key=lambda o: o["seq"])
        return [ps.order_record(o) for o in orders]

    def fills(self) -> list[Fill]:
        with self._state(write=False) as state:
            return [ps.fill_from_dict(f) for f in state["fills"]]

    def book_events(self) -> list[BookEvent]:
        """Every corporate action and delisting applied to the book, in order."""
        with self._state(write=False) as state:
            return [BookEvent.from_dict(e) for e in state["book_events"]]

    # -- account ---------------------------------------------------------------------------
    def positions(self) -> dict[str, Position]:
        with self._state(write=False) as state:
            return ps.positions(state, self._working_orders(state))

    def account(self) -> Account:
        with self._state(write=False) as state:
            equity = ps.equity(state)
            return Account(float(equity), float(Decimal(state["cash"])), float(ps.buying_power(state, self._working_orders(state))))

    def marks(self) -> dict[str, float]:
        """Latest close seen per symbol with a position or an order, USD."""
        with self._state(write=False) as state:
            return {k: float(Decimal(v)) for k, v in state["marks"].items()}

    def stale_marks(self) -> dict[str, str]:
        """Held symbols without a bar on the last session processed: symbol -> session of its last bar."""
        with self._state(write=False) as state:
            return paper_actions.stale_marks(state)

    @property
    def last_session(self) -> str | None:
        with self._state(write=False) as state:
            return state["last_session"]

    # -- bars --------------------------------------------------------------------------------
    def advance(self, bars: pd.DataFrame, actions: Iterable[CorporateAction] = ()) -> AdvanceResult:
        """Process open orders against every session in `bars` not processed yet (see the
        module docstring). Bad bars raise `BarValidationError`, an action that cannot be
        applied `CorporateActionError`, before anything changes."""
        frame = validate_bars(schema.normalize_bars(bars))
        by_day: dict[str, list[CorporateAction]] = {}
        for action in actions:
            by_day.setdefault(action.session, []).append(action)
        with self._state(write=True) as state:
            last = state["last_session"]
            dates = sorted({d.date().isoformat() for d in frame["date"]})
            todo = [d for d in dates if last is None or d > last]
            skipped = tuple(d for d in dates if d not in todo)
            relevant = {o["symbol"] for o in state["orders"].values() if ps.is_open(o)} | set(state["positions"])
            rows = frame[frame["symbol"].isin(relevant)]
            by_session: dict[str, dict[str, Bar]] = {d: {} for d in todo}
            for sym, day, o, h, lo, c in zip(rows["symbol"], rows["date"], rows["open"], rows["high"], rows["low"], rows["close"]):
                key = day.date().isoformat()
                if key in by_session:
                    by_session[key][sym] = Bar(*(Decimal(repr(float(x))) for x in (o, h, lo, c)))
            fills: list[Fill] = []
            expired: list[str] = []
            events: list[BookEvent] = []
            for session in todo:
                for action in sorted(by_day.get(session, ()), key=lambda a: a.symbol):
                    events += paper_actions.apply_action(state, action, by_session[session].get(action.symbol))
                self._process_session(state, session, by_session[session], fills, expired)
                state["last_session"] = session
                events += paper_actions.delist_if_gone(state, session, self.delisted_after)
            state["book_events"].extend(e.to_dict() for e in events)
        return AdvanceResult(tuple(todo), skipped, tuple(fills), tuple(expired), tuple(events))

    def _process_session(self, state: dict[str, Any], session: str, bars: dict[str, Bar], fills: list[Fill],
                         expired: list[str]) -> None:
        ts = pd.Timestamp(session)
        opened, closed = xnys().session_open(ts).to_pydatetime(), xnys().session_close(ts).to_pydatetime()
        for order in sorted(state["orders"].values(), key=lambda o: o["seq"]):
            legs = order["legs"]
            entry = legs[LegRole.ENTRY.value]
            bar = bars.get(order["symbol"])
            if entry["status"] != OrderStatus.NEW.value and entry["status"] != OrderStatus.FILLED.value:
                continue
            if order.get("order_type") == OrderType.STOP.value:
                if entry["status"] == OrderStatus.NEW.value and bar is not None and order["trading_date"] <= session:
                    self._protective_stop(state, order, bar, session, opened, closed, fills)
                continue
            if entry["status"] == OrderStatus.NEW.value:
                if order["trading_date"] > session:
                    continue
                side = Side(order["side"])
                limit = None if entry["price"] is None else Decimal(entry["price"])
                made = entry_fill(side, limit, bar, self._slip) if bar is not None and order["trading_date"] == session else None
                if made is None:
                    entry["status"], entry["reason"] = OrderStatus.EXPIRED.value, "day order: not filled on its session"
                    for role in (LegRole.STOP_LOSS, LegRole.TAKE_PROFIT):
                        if role.value in legs:
                            legs[role.value]["status"] = OrderStatus.CANCELED.value
                    expired.append(order["client_order_id"])
                    continue
                fills.append(self._fill(state, order, LegRole.ENTRY, side, made, bar, opened, closed, session))
                for role in (LegRole.STOP_LOSS, LegRole.TAKE_PROFIT):
                    if role.value in legs:
                        legs[role.value]["status"] = OrderStatus.NEW.value
                self._exit(state, order, bar, session, opened, closed, fills, entry_bar=True, at_open=made.at_open)
            elif bar is not None and entry["session"] < session:
                self._exit(state, order, bar, session, opened, closed, fills, entry_bar=False, at_open=False)
        for sym, bar in bars.items():
            state["marks"][sym] = str(bar.close)
            state["last_bar"][sym] = session

    def _protective_stop(self, state: dict[str, Any], order: dict[str, Any], bar: Bar, session: str,
                         opened: dt.datetime, closed: dt.datetime, fills: list[Fill]) -> None:
        side = Side(order["side"])
        leg = order["legs"][LegRole.ENTRY.value]
        if not self._position_covers(state, order["symbol"], side, int(leg["qty"]), [leg]):
            return
        made = exit_fill(side.opposite, Decimal(leg["price"]), None, bar, self._slip)
        if made is not None:
            fills.append(self._fill(state, order, LegRole.ENTRY, side, made, bar, opened, closed, session))

    def _exit(self, state: dict[str, Any], order: dict[str, Any], bar: Bar, session: str, opened: dt.datetime,
              closed: dt.datetime, fills: list[Fill], *, entry_bar: bool, at_open: bool) -> None:
        legs = order["legs"]
        live = {role: legs[role.value] for role in (LegRole.STOP_LOSS, LegRole.TAKE_PROFIT)
                if role.value in legs and legs[role.value]["status"] == OrderStatus.NEW.value}
        if not live:
            return
        side = Side(order["side"])
        leg_qty = max(int(leg["qty"]) for leg in live.values())
        if not self._position_covers(state, order["symbol"], side.opposite, leg_qty, list(live.values())):
            return
        stop = Decimal(live[LegRole.STOP_LOSS]["price"]) if LegRole.STOP_LOSS in live else None
        target = Decimal(live[LegRole.TAKE_PROFIT]["price"]) if LegRole.TAKE_PROFIT in live else None
        made = exit_fill(side, stop, target, bar, self._slip, entry_bar=entry_bar, entry_at_open=at_open)
        if made is None:
            return
        fills.append(self._fill(state, order, made.role, side.opposite, made, bar, opened, closed, session))
        for role, leg in live.items():
            if role is not made.role:
                leg["status"] = OrderStatus.CANCELED.value

    @staticmethod
    def _position_covers(state: dict[str, Any], symbol: str, exit_side: Side, qty: int, legs: list[dict[str, Any]]) -> bool:
        """Whether an exit of `qty` shares on `exit_side` only reduces the position; if not, the
        legs are cancelled (the position they protected is gone or smaller)."""
        position = state["positions"].get(symbol)
        held = int(position["qty"]) if position else 0
        if is_reducing(held, exit_side.sign, qty):
            return True
        for leg in legs:
            leg["status"], leg["reason"] = OrderStatus.CANCELED.value, f"the position it protected is {held:+d} sh"
        return False

    def _fill(self, state: dict[str, Any], order: dict[str, Any], role: LegRole, side: Side, made: ModelFill | ExitFill,
              bar: Bar, opened: dt.datetime, closed: dt.datetime, session: str) -> Fill:
        """Book one leg's fill. A fill at the open is stamped with the session's open time and
        arrives at the bar's open; a fill later in the session is stamped with the close time and
        arrives at the leg's own price (the limit or stop the market reached)."""
        leg = order["legs"][role.value]
        qty = int(leg["qty"])
        price = made.price
        when = opened if made.at_open else closed
        arrival = bar.open if made.at_open or leg["price"] is None else Decimal(leg["price"])
        leg.update(status=OrderStatus.FILLED.value, filled_qty=qty, filled_avg_price=str(price),
                   filled_at=when.isoformat(), session=session, arrival_price=str(arrival))
        realized = ps.apply_fill(state, order["symbol"], side.sign * qty, price)
        fill = {
            "fill_id": f"{order['client_order_id']}:{role.value}", "client_order_id": order["client_order_id"],
            "leg": role.value, "symbol": order["symbol"], "side": side.value, "qty": qty, "price": str(price),
            "expected_price": str(arrival), "filled_at": when.isoformat(), "session": session, "broker": self.name,
            "realized_pnl": None if realized is None else str(realized),
        }
        state["fills"].append(fill)
        return ps.fill_from_dict(fill)

    # -- state file ------------------------------------------------------------------------
    @contextmanager
    def _state(self, write: bool) -> Iterator[dict[str, Any]]:
        """The state under a file lock (exclusive to write); saved atomically when the block
        ends without an error, so a failed operation changes nothing."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / LOCK_NAME, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            try:
                if write:
                    self._working = None  # the block may change which orders are working
                state = self._load()
                try:
                    yield state
                except BaseException:
                    self._cached = None  # the block may have changed the cached state: read it again
                    raise
                if write:
                    ps.save(self.path, state, self.durable)
                    self._cached = (version_of(self.path), state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _working_orders(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """`paper_state.working_orders` of `state`, read in a read-only block: found once per
        version of the state file (a write block drops it before it can change the state)."""
        key = self._cached[0] if self._cached is not None and self._cached[1] is state else None
        if key is not None and self._working is not None and self._working[0] == key:
            return self._working[1]
        working = ps.working_orders(state)
        if key is not None:
            self._working = (key, working)
        return working

    def _load(self) -> dict[str, Any]:
        # a link, FIFO or folder there: StateFileError, never a fresh book
        if self._cached is not None and version_of(self.path) == self._cached[0]:
            return self._cached[1]  # unchanged since it was parsed: neither read nor parsed again
        found = read_regular(self.path)
        if found is None:
            return ps.fresh_state(self._starting_cash)
        try:
            payload = json.loads(found.data)
        except ValueError as exc:
            raise StateFileError(self.path, f"is not valid JSON ({exc}); refusing to reset the paper account") from exc
        state = ps.check_state(self.path, ps.upgrade(payload))
        self._cached = (found.version, state)
        return state

__all__ = ["AdvanceResult", "PaperBroker", "STATE_NAME"]
