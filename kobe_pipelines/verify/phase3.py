"""Phase 3 live checks: the plan's paper-trade test on the embedded paper broker.

Two bracket orders go through the real policy gate, the order ledger and the paper broker
(5 bps slippage), fill against hand-made bars, and exit: one at its target, one through a
gap below its stop. Every expected figure is worked out by hand below.

  A: buy 100 AAA @ 50.00, stop 48.00, target 54.00, session 2024-03-04
     2024-03-04 o 50.50 h 51.00 l 49.80: low < 50.00, opened above -> entry at the limit 50.00
     2024-03-05 o 50.40 h 54.50 l 50.10: high > 54.00, low > 48.00 -> target at 54.00
     P&L (54.00 - 50.00) x 100 = +400.00
  B: buy 50 BBB @ 20.00, stop 19.00, target 23.00, session 2024-03-04
     2024-03-04 o 19.90: opened below the limit -> 19.90 x 1.0005 = 19.90995 -> up to 19.9100
     2024-03-05 o 18.50: gap below the stop -> 18.50 x 0.9995 = 18.49075 -> down to 18.4907
     P&L (18.4907 - 19.91) x 50 = -70.965
  cash 100,000 - 5,000 - 995.50 + 5,400 + 924.535 = 100,329.035 (flat: equity too)
  slippage against the arrival price (the open for a fill at the open, else the leg's price):
     A entry and target filled at their own prices during the session: 0 and 0 bps;
     B entry arrived at the open 19.90: (19.91 - 19.90)/19.90 x 1e4 = +5.03 bps (+0.50 USD),
     B stop arrived at the gap open 18.50: -(18.4907 - 18.50)/18.50 x 1e4 = +5.03 bps (+0.465 USD);
     total +0.965 USD
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.execution.service import book_from_broker, place_order, settle
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.risk.types import OrderIntent, UnapprovedOrderError
from kobe_pipelines.verify.base import VerifyCheck, run_check

PHASE = 3
SESSION, NEXT = "2024-03-04", "2024-03-05"
BARS = pd.DataFrame(
    [("AAA", SESSION, 50.50, 51.00, 49.80, 50.30, 1e6), ("BBB", SESSION, 19.90, 20.30, 19.70, 20.20, 1e6),
     ("AAA", NEXT, 50.40, 54.50, 50.10, 54.20, 1e6), ("BBB", NEXT, 18.50, 18.90, 18.20, 18.40, 1e6)],
    columns=["symbol", "date", "open", "high", "low", "close", "volume"],
)
A = OrderIntent("verify-A", "AAA", "buy", 100, 50.00, 48.00, 54.00, strategy="verify", trading_date=SESSION)
B = OrderIntent("verify-B", "BBB", "buy", 50, 20.00, 19.00, 23.00, strategy="verify", trading_date=SESSION)
BAD = OrderIntent("verify-C", "AAA", "buy", 10, 50.00, 51.00, 54.00, strategy="verify", trading_date=SESSION)
MARKS = {"AAA": 50.20, "BBB": 20.10}


def _close(a: float, b: float, tol: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=tol)


def run_checks(workdir: Path) -> list[VerifyCheck]:
    state = workdir / "state"
    broker = PaperBroker(state, slippage_bps=5.0, starting_cash=100_000.0)
    ledger = OrderLedger(state)
    slippage = SlippageTracker(state)
    gate = PolicyGate(RiskLimits(), state)
    results: dict[str, object] = {}

    def submit() -> str:
        book = book_from_broker(broker, MARKS)
        done = [place_order(intent, book, gate, broker, ledger) for intent in (A, B)]
        for ex in done:
            if not ex.decision.approved or ex.ack is None or not ex.ack.created:
                raise AssertionError(f"{ex.intent.client_order_id}: {ex.decision.reason} / {ex.error}")
        results["decision_a"] = done[0].decision
        return "; ".join(f"{ex.ack.client_order_id} {ex.ack.order_class.value} {ex.ack.status.value}" for ex in done)

    def duplicate() -> str:
        again = broker.submit(results["decision_a"])
        if again.created or len(broker.open_orders()) != 2:
            raise AssertionError("a second submission of the same decision made a new order")
        return f"same client order id -> existing order {again.broker_order_id}, not a second one"

    def fills() -> str:
        advanced = broker.advance(BARS)
        got = {(f.client_order_id, f.leg.value): f.price for f in advanced.fills}
        want = {("verify-A", "entry"): 50.00, ("verify-A", "take_profit"): 54.00,
                ("verify-B", "entry"): 19.91, ("verify-B", "stop_loss"): 18.4907}
        if got.keys() != want.keys() or not all(_close(got[k], want[k]) for k in want):
            raise AssertionError(f"fills {got}, expected {want}")
        return "A: entry 50.00, target 54.00; B: entry 19.91, stop through a gap 18.4907"

    def pnl() -> str:
        realized = {f.client_order_id: f.realized_pnl for f in broker.fills() if f.realized_pnl is not None}
        account = broker.account()
        if not (_close(realized["verify-A"], 400.0) and _close(realized["verify-B"], -70.965)):
            raise AssertionError(f"realized P&L {realized}, expected A +400.00, B -70.965")
        if not _close(account.equity, 100_329.035) or broker.positions():
            raise AssertionError(f"equity {account.equity}, positions {broker.positions()}; expected 100,329.035 and flat")
        return f"A +400.00, B -70.965 USD; equity {account.equity:,.3f} USD, flat"

    def measured() -> str:
        settle(broker, ledger, slippage)
        by_order = slippage.records().set_index(["client_order_id", "leg"])
        stop_bps = by_order.loc[("verify-B", "stop_loss"), "slippage_bps"]
        total = slippage.overall().total_usd
        entry_bps = by_order.loc[("verify-B", "entry"), "slippage_bps"]
        if not (_close(stop_bps, 5.027027, 1e-4) and _close(entry_bps, 5.025126, 1e-4) and _close(total, 0.965)):
            raise AssertionError(f"slippage {by_order[['slippage_bps', 'slippage_usd']].to_dict()}")
        return (f"4 fills; B entry +{entry_bps:.2f} bps, B stop +{stop_bps:.2f} bps against the opens; total "
                f"+{total:.3f} USD (positive = cost)")

    def ledger_events() -> str:
        events = ledger.events()
        kinds = events.groupby("client_order_id")["event"].apply(list).to_dict()
        for coid in ("verify-A", "verify-B"):
            for kind in ("intent", "decision", "submitted", "ack", "fill", "status"):
                if kind not in kinds.get(coid, []):
                    raise AssertionError(f"ledger has no {kind} event for {coid}")
        orders = ledger.orders().set_index("client_order_id")
        if not (_close(orders.loc["verify-A", "realized_pnl"], 400.0) and _close(orders.loc["verify-B", "realized_pnl"], -70.965)):
            raise AssertionError(f"ledger P&L {orders['realized_pnl'].to_dict()}")
        return f"{len(events)} events; P&L per order matches the broker"

    def rejected() -> str:
        decision = gate.decide(BAD, book_from_broker(broker, MARKS))
        if decision.approved:
            raise AssertionError("a buy with its stop above the entry was approved")
        for action in (lambda: broker.submit(decision), lambda: ledger.record_submission(decision, broker.name)):
            try:
                action()
            except UnapprovedOrderError:
                continue
            raise AssertionError("a rejected decision was accepted")
        if broker.get_order(BAD.client_order_id) is not None or "verify-C" in set(ledger.events()["client_order_id"]):
            raise AssertionError("the rejected order left a trace as sent")
        return f"gate: {decision.reason}; broker and ledger refused it"

    def restart() -> str:
        again = PaperBroker(state)
        if again.account() != broker.account() or len(again.fills()) != 4 or again.last_session != NEXT:
            raise AssertionError("a new PaperBroker on the same state folder sees another book")
        report = OrderLedger(state).reconcile(again)
        if not report.ok:
            raise AssertionError("; ".join(report.lines()))
        return "restart keeps cash, fills and orders; ledger and broker agree"

    checks = [
        ("approved bracket orders sent", submit),
        ("same decision twice: one order", duplicate),
        ("entries, target and gapped stop fill", fills),
        ("P&L recorded", pnl),
        ("slippage recorded", measured),
        ("ledger holds every event", ledger_events),
        ("rejected order refused by the broker", rejected),
        ("restart keeps the paper book", restart),
    ]
    try:
        return [run_check(PHASE, name, fn) for name, fn in checks]
    finally:
        gate.close()
