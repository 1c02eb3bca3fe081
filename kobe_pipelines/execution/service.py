"""The one path from an intent to a broker: gate -> ledger -> broker -> ledger.

`place_order` records the intent, asks the policy gate, records the decision, and only for an
approved decision records the submission (write-ahead) and sends it. A broker that refuses
the order (bad order, buying power, rate limit) is recorded as `refused`; a submission whose
outcome was lost is recorded as `unknown` and stays open in the ledger until reconciled.
`settle` brings fills into the ledger and the slippage tracker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from kobe_pipelines.errors import KobeError
from kobe_pipelines.execution.broker import Broker, Fill, OrderAck
from kobe_pipelines.execution.errors import OrderStatusUnknownError
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.types import Book, Decision
from kobe_pipelines.orders import OrderIntent


@dataclass(frozen=True)
class Execution:
    intent: OrderIntent
    decision: Decision
    ack: OrderAck | None = None
    error: KobeError | None = None  # the broker's refusal, or an unknown outcome

    @property
    def sent(self) -> bool:
        return self.ack is not None


def book_from_broker(broker: Broker, last_prices: Mapping[str, float]) -> Book:
    """The book the gate judges against: the broker's account and positions, with the marks
    given (USD; every held symbol and the order's symbol need one, or the gate refuses)."""
    account = broker.account()
    return Book(account.equity, account.cash, account.buying_power, broker.positions(), dict(last_prices))


def place_order(intent: OrderIntent, book: Book, gate: PolicyGate, broker: Broker, ledger: OrderLedger) -> Execution:
    """Decide `intent` and send it if approved; every step is in the ledger (see module docstring)."""
    ledger.record_intent(intent, broker.name)
    decision = gate.decide(intent, book)
    ledger.record_decision(decision, broker.name)
    if not decision.approved:
        return Execution(intent, decision)
    ledger.record_submission(decision, broker.name)
    try:
        ack = broker.submit(decision)
    except OrderStatusUnknownError as exc:
        ledger.record_broker_error(str(intent.client_order_id), broker.name, exc, outcome_unknown=True)
        return Execution(intent, decision, error=exc)
    except KobeError as exc:
        ledger.record_broker_error(str(intent.client_order_id), broker.name, exc, outcome_unknown=False)
        return Execution(intent, decision, error=exc)
    ledger.record_ack(ack)
    return Execution(intent, decision, ack)


def settle(broker: Broker, ledger: OrderLedger, slippage: SlippageTracker | None = None) -> list[Fill]:
    """Record every new fill of the ledger's open orders at `broker`, and its slippage."""
    fills = ledger.sync(broker)
    if slippage is not None and fills:
        slippage.record_many(fills)
    return fills
