"""order_outcomes: each sent order's outcome, exit reason, fills, realized P&L and slippage,
against orders that went through the real gate, ledger and paper broker (5 bps slippage), with
every figure worked out by hand (`support/traded_book.py` for the orders and bars)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from kobe_pipelines.execution.broker import LegRecord, LegRole, OrderClass, OrderRecord, OrderStatus
from kobe_pipelines.execution.corporate_actions import BookEvent
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines.orders import OrderType, Side
from kobe_pipelines_tests.execution.conftest import intent
from kobe_pipelines_tests.support.traded_book import traded_state


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> pd.DataFrame:
    return OrderLedger(traded_state(tmp_path_factory.mktemp("traded") / "state")).orders().set_index("client_order_id")


def test_order_outcomes_when_the_gate_rejected_an_intent_then_only_sent_orders_are_rows(outcomes):
    assert list(outcomes.index) == ["ord-A", "ord-B", "ord-C", "ord-D", "ord-E"]


def test_order_outcomes_when_take_profit_filled_then_took_profit_with_pnl_and_no_slippage(outcomes):
    a = outcomes.loc["ord-A"]
    assert (a["status"], a["exit_reason"]) == ("took profit", "take-profit 54.00 reached: 100 sh at 54.00")
    assert (a["entry"], a["stop"], a["take_profit"], a["entry_fill"], a["exit_fill"]) == (50.0, 48.0, 54.0, 50.0, 54.0)
    assert a["realized_pnl"] == pytest.approx(400.0)  # (54.00 - 50.00) x 100
    assert a["slippage_bps"] == 0.0 and a["slippage_usd"] == 0.0  # both filled at their own prices
    assert a["broker_status"] == "filled" and not a["is_open"]


def test_order_outcomes_when_the_session_gapped_through_the_stop_then_stopped_out_measured_against_the_open(outcomes):
    b = outcomes.loc["ord-B"]
    assert b["status"] == "stopped out"
    assert b["exit_reason"] == "stop-loss 19.00 hit: 50 sh at 18.4907, the session opened through the stop at 18.50"
    assert (b["entry_fill"], b["exit_fill"], b["filled_qty"], b["exit_qty"]) == (19.91, 18.4907, 50, 50)
    assert b["realized_pnl"] == pytest.approx(-70.965)  # (18.4907 - 19.91) x 50
    # entry (19.91 - 19.90) x 50 = 0.50, stop (18.50 - 18.4907) x 50 = 0.465: 0.965 USD of cost;
    # over the arrival notional 19.90 x 50 + 18.50 x 50 = 1,920: 0.965 / 1,920 x 1e4 = 5.0260 bps
    assert b["slippage_usd"] == pytest.approx(0.965)
    assert b["slippage_bps"] == pytest.approx(5.026042, abs=1e-6)


def test_order_outcomes_when_the_day_entry_never_filled_then_expired_without_fills(outcomes):
    c = outcomes.loc["ord-C"]
    assert (c["status"], c["exit_reason"], c["filled_qty"]) == ("expired", "day order: not filled on its session", 0)
    assert pd.isna(c["entry_fill"]) and pd.isna(c["realized_pnl"]) and pd.isna(c["slippage_bps"])


def test_order_outcomes_when_a_short_is_held_then_open_with_its_entry_slippage_as_a_cost(outcomes):
    d = outcomes.loc["ord-D"]
    assert (d["status"], d["side"], d["entry_fill"], d["is_open"]) == ("open", "sell", 40.1799, True)
    assert pd.isna(d["realized_pnl"])
    # a sell filled 0.0201 below its arrival price, the open 40.20: +0.0201 / 40.20 x 1e4 = +5.00 bps, 0.402 USD
    assert d["slippage_bps"] == pytest.approx(5.0) and d["slippage_usd"] == pytest.approx(0.402)


def test_order_outcomes_when_a_split_came_between_entry_and_exit_then_pnl_uses_the_post_split_entry_price(outcomes):
    e = outcomes.loc["ord-E"]
    assert (e["status"], e["exit_reason"]) == ("stopped out", "stop-loss 47.50 hit: 20 sh at 47.4762")
    assert (e["filled_qty"], e["exit_qty"], e["entry_fill"], e["exit_fill"]) == (10, 20, 100.0, 47.4762)
    # 10 sh at 100.00 are 20 sh at 50.00 after the split: (47.4762 - 50.00) x 20 = -50.476
    assert e["realized_pnl"] == pytest.approx(-50.476)


def test_slippage_tracker_when_paper_fills_settle_then_each_is_measured_against_its_arrival_price(tmp_path):
    state = traded_state(tmp_path / "state")
    records = SlippageTracker(state).records().set_index(["client_order_id", "leg"])
    arrival = records["expected_price"].to_dict()
    assert arrival == {("ord-A", "entry"): 50.0, ("ord-A", "take_profit"): 54.0,  # reached during the session
                       ("ord-B", "entry"): 19.90, ("ord-B", "stop_loss"): 18.50,  # the opens
                       ("ord-D", "entry"): 40.20,                                  # the open
                       ("ord-E", "entry"): 100.0, ("ord-E", "stop_loss"): 47.50}   # the limit, the split stop
    bps = records["slippage_bps"].to_dict()
    assert bps[("ord-B", "entry")] == pytest.approx(0.01 / 19.90 * 1e4)  # +5.03: paid above the open
    assert bps[("ord-B", "stop_loss")] == pytest.approx(0.0093 / 18.50 * 1e4)  # +5.03: sold below the open
    assert bps[("ord-E", "stop_loss")] == pytest.approx(0.0238 / 47.50 * 1e4)  # +5.01: sold below the stop
    assert min(bps.values()) >= 0.0  # the paper broker's slippage is never a gain against arrival


# -- orders closed by another order, or by a delisting (ledger records made by hand) -----------------

WHEN = dt.datetime(2024, 3, 4, 20, 0, tzinfo=dt.timezone.utc)


def bracket(entry_qty: int, entry_avg: float | None, legs_status: OrderStatus) -> OrderRecord:
    return OrderRecord("ord-1", "b-1", "AAA", Side.BUY, 10, OrderClass.BRACKET, WHEN, (
        LegRecord(LegRole.ENTRY, Side.BUY, 100.0, OrderStatus.FILLED, entry_qty, entry_avg, WHEN),
        LegRecord(LegRole.STOP_LOSS, Side.SELL, 95.0, legs_status),
        LegRecord(LegRole.TAKE_PROFIT, Side.SELL, 110.0, legs_status)))


def test_order_outcomes_when_a_strategy_exit_closed_the_position_then_its_fill_and_pnl_count_on_the_bracket(
        tmp_path, approve):
    ledger = OrderLedger(tmp_path / "state")
    ledger.record_submission(approve(), "paper")
    ledger.sync_order(bracket(10, 100.0, OrderStatus.NEW), "paper")
    ledger.record_cancel(bracket(10, 100.0, OrderStatus.CANCELED), "paper", reason="exit exit-1")
    ledger.record_submission(approve(intent("exit-1", side="sell", entry=103.0, stop=None, take_profit=None),
                                     marks={"AAA": 103.0}), "paper")
    ledger.sync_order(OrderRecord("exit-1", "b-2", "AAA", Side.SELL, 10, OrderClass.SIMPLE, WHEN, (
        LegRecord(LegRole.ENTRY, Side.SELL, 103.0, OrderStatus.FILLED, 10, 103.0, WHEN),)), "paper")
    rows = ledger.orders().set_index("client_order_id")
    assert (rows.at["ord-1", "status"], rows.at["ord-1", "exit_fill"]) == ("closed by exit", 103.0)
    assert rows.at["ord-1", "exit_reason"] == "the strategy's exit exit-1: 10 sh at 103.00"
    assert rows.at["ord-1", "realized_pnl"] == pytest.approx(30.0)  # (103 - 100) x 10
    assert (rows.at["exit-1", "exit_reason"], rows.at["exit-1", "status"]) == ("closes ord-1", "filled")
    assert pd.isna(rows.at["exit-1", "realized_pnl"]) and pd.isna(rows.at["exit-1", "slippage_usd"])  # counted once,
    assert rows.at["ord-1", "slippage_usd"] == 0.0  # on the order it closed: both fills at their own limits


def test_order_outcomes_when_the_symbol_was_delisted_then_closed_at_the_last_close(tmp_path, approve):
    ledger = OrderLedger(tmp_path / "state")
    ledger.record_submission(approve(), "paper")
    ledger.sync_order(bracket(10, 100.0, OrderStatus.NEW), "paper")
    ledger.record_book_events([BookEvent("delist-AAA", "delisting", "AAA", "2024-03-12", 10, 0, Decimal("900"),
                                         Decimal("90"))], "paper")
    ledger.sync_order(bracket(10, 100.0, OrderStatus.CANCELED), "paper")
    row = ledger.orders().iloc[0]
    assert (row["status"], row["exit_qty"], row["exit_fill"]) == ("delisted", 10, 90.0)
    assert row["realized_pnl"] == pytest.approx(-100.0)  # (90 - 100) x 10


def test_order_outcomes_when_alpaca_reports_no_arrival_price_then_the_fill_is_measured_against_its_limit(
        tmp_path, approve):
    ledger = OrderLedger(tmp_path / "state")
    ledger.record_submission(approve(), "alpaca")
    [fill] = ledger.sync_order(bracket(10, 99.95, OrderStatus.NEW), "alpaca")
    assert fill.expected_price == 100.0  # the entry limit
    # a buy 0.05 below its limit: -0.05 / 100 x 1e4 = -5.00 bps, a gain
    assert ledger.orders().iloc[0]["slippage_bps"] == pytest.approx(-5.0)


def test_order_outcomes_when_a_stop_placed_again_filled_then_the_bracket_is_stopped_out_with_its_pnl(tmp_path, approve):
    ledger = OrderLedger(tmp_path / "state")
    ledger.record_submission(approve(), "paper")
    ledger.sync_order(bracket(10, 100.0, OrderStatus.NEW), "paper")
    ledger.record_cancel(bracket(10, 100.0, OrderStatus.CANCELED), "paper", reason="its stop was at another price")
    stop = approve(intent("stop-1", side="sell", entry=95.0, stop=None, take_profit=None, order_type="stop"))
    ledger.record_submission(stop, "paper", purpose={"protects": "ord-1"})
    ledger.sync_order(OrderRecord("stop-1", "b-2", "AAA", Side.SELL, 10, OrderClass.SIMPLE, WHEN, (
        LegRecord(LegRole.ENTRY, Side.SELL, 95.0, OrderStatus.FILLED, 10, 94.9525, WHEN),),
        order_type=OrderType.STOP), "paper")
    rows = ledger.orders().set_index("client_order_id")
    assert rows.at["ord-1", "status"] == "stopped out"
    assert rows.at["ord-1", "exit_reason"] == "protective stop placed again hit: 10 sh at 94.9525"
    assert rows.at["ord-1", "realized_pnl"] == pytest.approx(-50.475)  # (94.9525 - 100) x 10
    assert rows.at["stop-1", "exit_reason"] == "protects ord-1" and pd.isna(rows.at["stop-1", "realized_pnl"])


@pytest.mark.parametrize(("outcome_unknown", "status", "reason"), [
    (False, "refused", "market is closed"),
    (True, "unknown", "the broker's answer was lost: reconcile the ledger with the broker (--reconcile)"),
])
def test_order_outcomes_when_the_broker_refused_or_its_answer_was_lost_then_said_so(tmp_path, approve, outcome_unknown,
                                                                                      status, reason):
    ledger = OrderLedger(tmp_path / "state")
    ledger.record_submission(approve(), "alpaca")
    ledger.record_broker_error("ord-1", "alpaca", RuntimeError("market is closed"), outcome_unknown=outcome_unknown)
    row = ledger.orders().iloc[0]
    assert (row["status"], row["exit_reason"], row["filled_qty"], row["is_open"]) == (status, reason, 0, outcome_unknown)
