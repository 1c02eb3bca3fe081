"""The live path against the loopback Alpaca server: a missing stop is placed again at the book's
price, a split on a held position is brought into the ledger and reconciled, unfilled day entries
are cancelled after their session."""

from __future__ import annotations

from fractions import Fraction

import pytest

from kobe_pipelines.execution.corporate_actions import CorporateAction
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.live_book import cancel_expired_entries, record_live_actions
from kobe_pipelines.execution.protection import check_protection
from kobe_pipelines.execution.service import book_for_decisions, place_order
from kobe_pipelines_tests.execution.conftest import intent

SESSION = "2024-03-04"  # the conftest clock's day


@pytest.fixture
def ledger(tmp_path) -> OrderLedger:
    return OrderLedger(tmp_path / "gate_state")


def _held_bracket(fake_alpaca, alpaca, gate, ledger):
    """Long 10 AAA bought at 187.45 through a bracket (stop 180.10, take-profit 195.30)."""
    order = intent(coid="br-1", qty=10, entry=187.45, stop=180.1, take_profit=195.3, trading_date=SESSION)
    done = place_order(order, lambda: book_for_decisions(alpaca, {"AAA": 187.45}, ledger), gate, alpaca, ledger)
    assert done.sent, done.reason
    fake_alpaca.fill("br-1", "entry", 187.45, f"{SESSION}T15:00:00Z")
    ledger.sync(alpaca)


def _book(alpaca, ledger, price):
    return lambda: book_for_decisions(alpaca, {"AAA": price}, ledger)


def test_check_protection_when_the_bracket_stop_is_live_then_nothing_is_sent(fake_alpaca, alpaca, gate, ledger):
    _held_bracket(fake_alpaca, alpaca, gate, ledger)
    posts = len(fake_alpaca.posted)
    [outcome] = check_protection(alpaca, ledger, gate, _book(alpaca, ledger, 187.45), SESSION)
    assert outcome.ok and outcome.placed is None and outcome.covered == 10  # the held stop leg counts
    assert len(fake_alpaca.posted) == posts


def test_check_protection_when_the_stop_leg_is_gone_then_a_gtc_stop_is_placed_at_the_book_price(fake_alpaca, alpaca, gate,
                                                                                                 ledger):
    _held_bracket(fake_alpaca, alpaca, gate, ledger)
    stop_leg = next(leg for leg in fake_alpaca.orders["br-1"]["legs"] if leg["type"] == "stop")
    stop_leg["status"] = "canceled"  # cancelled by hand at the broker
    [outcome] = check_protection(alpaca, ledger, gate, _book(alpaca, ledger, 187.45), SESSION)
    assert outcome.ok and outcome.placed.sent and outcome.cancelled == ("br-1",)  # its take-profit went first
    body = fake_alpaca.posted[-1]
    assert {k: body[k] for k in ("symbol", "side", "type", "time_in_force", "stop_price", "qty")} == {
        "symbol": "AAA", "side": "sell", "type": "stop", "time_in_force": "gtc", "stop_price": 180.1, "qty": 10.0}
    assert alpaca.positions()["AAA"].stop == 180.1
    [again] = check_protection(alpaca, ledger, gate, _book(alpaca, ledger, 187.45), SESSION)
    assert again.placed is None and again.covered == 10  # the placed stop protects it now


def test_live_split_when_alpaca_applied_it_then_the_ledger_follows_reconciles_and_the_stop_is_replaced(
        fake_alpaca, alpaca, gate, ledger):
    _held_bracket(fake_alpaca, alpaca, gate, ledger)
    fake_alpaca.split("AAA", 2.0)  # overnight 2-for-1; Alpaca cancels the working orders
    action = CorporateAction("AAA", "2024-03-05", Fraction(1), Fraction(2))
    [event] = record_live_actions(ledger, "alpaca", [action], {("AAA", "2024-03-05"): 93.9}, {})
    assert (event.qty_before, event.qty_after, event.cash) == (10, 20, 0)
    ledger.sync(alpaca)  # as a trading run settles before it reconciles
    assert ledger.reconcile(alpaca).ok  # 20 sh in the ledger, 20 at Alpaca
    [outcome] = check_protection(alpaca, ledger, gate, _book(alpaca, ledger, 93.9), "2024-03-05")
    # the book's stop is 180.10 / 2 = 90.05 on 20 sh
    assert outcome.placed.sent and (outcome.protection.qty, str(outcome.protection.stop)) == (20, "90.05")
    assert (fake_alpaca.posted[-1]["stop_price"], fake_alpaca.posted[-1]["qty"]) == (90.05, 20.0)


def test_live_split_when_alpaca_disagrees_with_the_lake_then_reconcile_reports_the_position(fake_alpaca, alpaca, gate,
                                                                                             ledger):
    _held_bracket(fake_alpaca, alpaca, gate, ledger)
    fake_alpaca.split("AAA", 3.0)  # Alpaca applied 3-for-1
    record_live_actions(ledger, "alpaca", [CorporateAction("AAA", "2024-03-05", Fraction(1), Fraction(2))], {}, {})
    ledger.sync(alpaca)
    report = ledger.reconcile(alpaca)
    assert report.position_diffs == (("AAA", 20, 30),)
    assert report.lines() == ["alpaca: AAA position is +20 sh in the ledger, +30 sh at the broker"]


def test_cancel_expired_entries_when_an_entry_is_unfilled_after_its_session_then_cancelled_with_its_legs(
        fake_alpaca, alpaca, gate, ledger):
    order = intent(coid="day-1", qty=10, entry=187.45, stop=180.1, take_profit=195.3, trading_date=SESSION)
    assert place_order(order, _book(alpaca, ledger, 187.45), gate, alpaca, ledger).sent
    assert cancel_expired_entries(alpaca, ledger, SESSION) == ([], [])  # still its own session
    cancelled, failed = cancel_expired_entries(alpaca, ledger, "2024-03-05")
    assert (cancelled, failed) == (["day-1"], [])
    assert {leg["status"] for leg in [fake_alpaca.orders["day-1"], *fake_alpaca.orders["day-1"]["legs"]]} == {"canceled"}
    assert "day entry for 2024-03-04 not filled" in ledger.events("day-1")["detail"].iloc[-1]
