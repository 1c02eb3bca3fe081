"""A small traded book for tests of the order views: six orders through the real policy gate,
order ledger and paper broker (5 bps slippage), two sessions replayed, every fill worked by hand."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path

import pandas as pd

from kobe_pipelines.execution.corporate_actions import CorporateAction
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.execution.service import book_from_broker, place_order, settle
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines.orders import OrderIntent
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.limits import RiskLimits

D1, D2 = "2024-03-04", "2024-03-05"
NOW = dt.datetime(2024, 3, 4, 14, 0, tzinfo=dt.timezone.utc)
MARKS = {"AAA": 50.0, "BBB": 20.0, "CCC": 30.0, "DDD": 40.0, "EEE": 100.0}
ORDERS = [
    OrderIntent("ord-A", "AAA", "buy", 100, 50.0, 48.0, 54.0, trading_date=D1, strategy="manual"),
    OrderIntent("ord-B", "BBB", "buy", 50, 20.0, 19.0, 23.0, trading_date=D1, strategy="manual"),
    OrderIntent("ord-C", "CCC", "buy", 10, 30.0, 28.0, 33.0, trading_date=D1, strategy="manual"),
    OrderIntent("ord-D", "DDD", "sell", 20, 40.0, 42.0, 36.0, trading_date=D1, strategy="manual"),
    OrderIntent("ord-E", "EEE", "buy", 10, 100.0, 95.0, 120.0, trading_date=D1, strategy="manual"),
    OrderIntent("ord-F", "AAA", "buy", 10, 50.0, 51.0, 54.0, trading_date=D1, strategy="manual"),  # stop above entry
]
# Session 1 (D1):
#   A: opens 50.50 above the 50.00 limit, trades down through it (low 49.80): filled at 50.00 during the session
#   B: opens 19.90 below the 20.00 limit: filled at the open, 19.90 x 1.0005 = 19.90995 -> up to 19.9100
#   C: low 30.50 never trades through the 30.00 limit: the day order expires
#   D: short, opens 40.20 above the 40.00 limit: 40.20 x 0.9995 = 40.17990 -> 40.1799 at the open
#   E: opens 101 above the 100.00 limit, low 99.50: filled at 100.00 during the session
# Session 2 (D2), EEE splits 2-for-1 first: E holds 20 sh, its stop 95.00 becomes 47.50
#   A: high 54.50 > 54.00, low 50.10 above the stop: take-profit at 54.00
#   B: opens 18.50 below the 19.00 stop: 18.50 x 0.9995 = 18.49075 -> down to 18.4907
#   D: 38.80 - 39.50 touches neither 42.00 nor 36.00: still open
#   E: opens 50.50, low 47.00 <= 47.50: stop at 47.50 x 0.9995 = 47.47625 -> 47.4762
SESSION_1 = [("AAA", D1, 50.50, 51.00, 49.80, 50.20), ("BBB", D1, 19.90, 20.10, 19.80, 20.00),
             ("CCC", D1, 31.00, 31.50, 30.50, 31.00), ("DDD", D1, 40.20, 40.60, 39.90, 40.10),
             ("EEE", D1, 101.00, 102.00, 99.50, 100.50)]
SESSION_2 = [("AAA", D2, 50.40, 54.50, 50.10, 54.00), ("BBB", D2, 18.50, 18.90, 18.20, 18.60),
             ("CCC", D2, 31.00, 31.50, 30.50, 31.00), ("DDD", D2, 39.00, 39.50, 38.80, 39.20),
             ("EEE", D2, 50.50, 51.00, 47.00, 48.00)]


def bars(rows) -> pd.DataFrame:
    return pd.DataFrame([(*r, 1e6) for r in rows], columns=["symbol", "date", "open", "high", "low", "close", "volume"])


def traded_state(state: Path) -> Path:
    """The six orders above through the gate, the ledger and the paper broker, two sessions replayed."""
    state.mkdir(parents=True, exist_ok=True)
    paper = PaperBroker(state, slippage_bps=5.0, starting_cash=100_000.0)
    ledger, tracker = OrderLedger(state), SlippageTracker(state)
    with PolicyGate(RiskLimits(), state, clock=lambda: NOW, audit_fsync=False) as gate:
        for order in ORDERS:
            place_order(order, book_from_broker(paper, MARKS), gate, paper, ledger)
    for session, actions in ((SESSION_1, []), (SESSION_2, [CorporateAction("EEE", D2, Fraction(1), Fraction(2))])):
        paper.advance(bars(session), actions)
        ledger.record_book_events(paper.book_events(), paper.name)
        settle(paper, ledger, tracker)
    return state
