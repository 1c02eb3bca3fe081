"""The live path's side of the book: what a broker that fills and applies corporate actions on
its own (Alpaca) leaves to the trading run.

- `cancel_expired_entries`: an entry still unfilled after its session is cancelled (a bracket
  goes out good-til-cancelled so that its legs outlive the entry's session; the entry itself
  is a day order in effect).
- `record_live_actions`: the corporate actions of the sessions the broker has already traded
  are brought into the ledger by the same rules the paper broker applies (`corporate_actions`),
  on the ledger's position before each action's session; reconciling the ledger with the
  broker's positions afterwards (`OrderLedger.reconcile`) shows any disagreement.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Iterable, Mapping

from kobe_pipelines.errors import KobeError
from kobe_pipelines.execution import corporate_actions as ca
from kobe_pipelines.execution.broker import Broker
from kobe_pipelines.execution.corporate_actions import BookEvent, CorporateAction
from kobe_pipelines.execution.ledger import OrderLedger

CENT = Decimal("0.01")


def cancel_expired_entries(broker: Broker, ledger: OrderLedger, session: str) -> tuple[list[str], list[str]]:
    """Cancel every entry the ledger sent for a session before `session` that is still unfilled
    at the broker (with its legs). Returns (cancelled ids, failures as text)."""
    subs = ledger.submissions(broker.name)
    cancelled, failed = [], []
    for order in broker.open_orders():
        sub = subs.get(order.client_order_id)
        if sub is None or order.is_protective_stop or not sub.get("trading_date") or sub["trading_date"] >= session:
            continue
        if order.entry.filled_qty > 0 or not order.entry.status.is_open:
            continue
        try:
            record = broker.cancel(order.client_order_id)
        except KobeError as exc:
            failed.append(f"{order.client_order_id}: {exc}")
            continue
        ledger.record_cancel(record, broker.name, reason=f"day entry for {sub['trading_date']} not filled")
        cancelled.append(order.client_order_id)
    return cancelled, failed


def record_live_actions(ledger: OrderLedger, broker: str, actions: Iterable[CorporateAction],
                        opens: Mapping[tuple[str, str], float], previous_closes: Mapping[tuple[str, str], float]
                        ) -> list[BookEvent]:
    """Book events for `actions` on the ledger's positions (each recorded once). `opens`:
    (symbol, session) -> the raw open, for cash in lieu; `previous_closes`: (symbol, session) ->
    the last raw close before the session, to refuse a dividend at least that large."""
    events: list[BookEvent] = []
    for action in actions:
        held = ledger.position_before(broker, action.symbol, action.session)
        if held == 0:
            continue
        if action.has_split:
            ca.check_split(action)
            open_price = opens.get((action.symbol, action.session))
            price = Decimal(repr(float(open_price))) if open_price is not None else Decimal(0)
            effect = ca.split_position(held, Decimal(0), action.ratio, price)
            events.append(BookEvent(ca.event_id("split", action.symbol, action.session), "split", action.symbol,
                                    action.session, held, effect.qty, effect.cash.quantize(CENT, ROUND_HALF_EVEN),
                                    price if open_price is not None else None,
                                    {"split_from": str(action.split_from), "split_to": str(action.split_to),
                                     "fraction_shares": str(effect.fraction)}))
            held = effect.qty
        if action.cash_amount:
            close = previous_closes.get((action.symbol, action.session))
            previous = None if close is None else ca.split_price(Decimal(repr(float(close))), action.ratio)
            cash = ca.dividend_cash(held, action, previous)
            events.append(BookEvent(ca.event_id("dividend", action.symbol, action.session), "dividend", action.symbol,
                                    action.session, held, held, cash, action.cash_amount,
                                    {"cash_amount": str(action.cash_amount)}))
    return ledger.record_book_events(events, broker)
