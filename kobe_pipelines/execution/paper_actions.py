"""The paper broker's book through corporate actions and delistings (rules: `corporate_actions`).

Functions on the paper state dict (`paper_state`), called by `PaperBroker.advance` for each
session before its fills (actions) and after its bars (delistings). Each returns the
`BookEvent`s it made; the state keeps them (`book_events`) for the ledger to read once each.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from kobe_pipelines.execution import corporate_actions as ca
from kobe_pipelines.execution import paper_state as ps
from kobe_pipelines.execution.broker import LegRole, OrderStatus
from kobe_pipelines.execution.corporate_actions import BookEvent, CorporateAction
from kobe_pipelines.execution.paper_model import Bar
from kobe_pipelines.market_calendar import xnys

_EXIT_LEGS = {LegRole.STOP_LOSS.value: "stop", LegRole.TAKE_PROFIT.value: "take_profit"}


def apply_action(state: dict[str, Any], action: CorporateAction, bar: Bar | None) -> list[BookEvent]:
    """Bring the position, orders and mark of `action.symbol` through `action` (split first,
    then the dividend in post-split units). `bar`: the session's bar (its open prices the cash
    in lieu; without one, the split-adjusted last close does)."""
    events = []
    if action.has_split:
        events += _split(state, action, bar)
    if action.cash_amount:
        events += _dividend(state, action)
    return events


def _split(state: dict[str, Any], action: CorporateAction, bar: Bar | None) -> list[BookEvent]:
    ca.check_split(action)
    symbol, ratio = action.symbol, action.ratio
    mark = state["marks"].get(symbol)
    if mark is not None:
        state["marks"][symbol] = str(ca.split_price(Decimal(mark), ratio))
    cancelled = _cancel_open_entries(state, symbol, f"split {action.split_to}:{action.split_from} on {action.session}: "
                                     "decided in pre-split shares; a post-split order is a new decision")
    position = state["positions"].get(symbol)
    held = int(position["qty"]) if position else 0
    moved = _move_exit_legs(state, symbol, ratio, 1 if held >= 0 else -1)
    if not held:
        return []
    open_price = bar.open if bar is not None else Decimal(state["marks"].get(symbol) or position["avg_entry"])
    effect = ca.split_position(held, Decimal(position["avg_entry"]), ratio, open_price)
    cash = effect.cash.quantize(ps.PNL_TICK, rounding=ROUND_HALF_EVEN)
    state["cash"] = str(Decimal(state["cash"]) + cash)
    if effect.qty == 0:
        state["positions"].pop(symbol, None)
    else:
        state["positions"][symbol] = {"qty": effect.qty, "avg_entry": str(effect.avg_entry)}
    detail = {"split_from": str(action.split_from), "split_to": str(action.split_to),
              "fraction_shares": str(effect.fraction), "avg_entry_before": position["avg_entry"],
              "avg_entry_after": str(effect.avg_entry), "cancelled_entries": cancelled, "moved_legs": moved}
    return [BookEvent(ca.event_id("split", symbol, action.session), "split", symbol, action.session, held, effect.qty,
                      cash, open_price, detail)]


def _dividend(state: dict[str, Any], action: CorporateAction) -> list[BookEvent]:
    position = state["positions"].get(action.symbol)
    mark = state["marks"].get(action.symbol)
    previous_close = Decimal(mark) if mark is not None else None
    if not position:
        if previous_close is not None:  # nothing held, but a wrong amount is still an error in the data
            ca.dividend_cash(0, action, previous_close)
        return []
    qty = int(position["qty"])
    cash = ca.dividend_cash(qty, action, previous_close)
    state["cash"] = str(Decimal(state["cash"]) + cash)
    return [BookEvent(ca.event_id("dividend", action.symbol, action.session), "dividend", action.symbol, action.session,
                      qty, qty, cash, action.cash_amount, {"cash_amount": str(action.cash_amount)})]


def _cancel_open_entries(state: dict[str, Any], symbol: str, reason: str) -> list[str]:
    cancelled = []
    for order in state["orders"].values():
        entry = order["legs"][LegRole.ENTRY.value]
        if order["symbol"] != symbol or entry["status"] != OrderStatus.NEW.value or order.get("order_type") == "stop":
            continue
        for leg in order["legs"].values():
            if OrderStatus(leg["status"]).is_open:
                leg["status"], leg["reason"] = OrderStatus.CANCELED.value, reason
        cancelled.append(order["client_order_id"])
    return cancelled


def _move_exit_legs(state: dict[str, Any], symbol: str, ratio: Any, position_sign: int) -> list[str]:
    """Working exit legs and protective stops of `symbol` in post-split shares and prices."""
    moved = []
    for order in state["orders"].values():
        if order["symbol"] != symbol or not ps.is_open(order):
            continue
        if order.get("order_type") == "stop":
            targets = [(order["legs"][LegRole.ENTRY.value], "stop")]
        else:
            targets = [(order["legs"][role], word) for role, word in _EXIT_LEGS.items() if role in order["legs"]]
        for leg, word in targets:
            if not OrderStatus(leg["status"]).is_open:
                continue
            leg["qty"] = ca.split_shares(int(leg["qty"]), ratio)
            leg["price"] = str(ca.split_exit_price(Decimal(leg["price"]), ratio, position_sign, word))
            moved.append(f"{order['client_order_id']}:{word}")
    return moved


def delist_if_gone(state: dict[str, Any], session: str, delisted_after: int) -> list[BookEvent]:
    """Close every position whose symbol has had no bar for `delisted_after` sessions up to
    `session`, at its last close, booked as of the session after its last bar."""
    events = []
    for symbol, position in list(state["positions"].items()):
        last = state["last_bar"].get(symbol)
        if last is None or last >= session or _sessions_after(last, session) < delisted_after:
            continue
        qty = int(position["qty"])
        price = Decimal(state["marks"].get(symbol) or position["avg_entry"])
        booked = str(xnys().next_session(last).date())
        realized = ps.apply_fill(state, symbol, -qty, price)
        reason = f"delisted: no bar since {last} ({delisted_after} sessions)"
        for order in state["orders"].values():
            if order["symbol"] == symbol:
                for leg in order["legs"].values():
                    if OrderStatus(leg["status"]).is_open:
                        leg["status"], leg["reason"] = OrderStatus.CANCELED.value, reason
        events.append(BookEvent(ca.event_id("delisting", symbol, booked), "delisting", symbol, booked, qty, 0,
                                qty * price, price, {"last_bar": last, "detected": session,
                                                     "realized_pnl": str(realized)}))
    return events


def stale_marks(state: dict[str, Any]) -> dict[str, str]:
    """Held symbols whose last bar is older than the last session processed: symbol -> last bar."""
    last = state["last_session"]
    return {symbol: state["last_bar"][symbol] for symbol in state["positions"]
            if last is not None and state["last_bar"].get(symbol) is not None and state["last_bar"][symbol] < last}


def _sessions_after(first: str, last: str) -> int:
    """XNYS sessions strictly after `first` up to and including `last`."""
    return int(xnys().sessions_distance(first, last)) - 1
