"""Orders not filled yet and working exit legs in the gate's judgement (risk/exposure.py).

Book unless stated: equity and buying power 100,000 USD, mark AAPL 100; caps heat 10 %,
position 20 %.
"""

from __future__ import annotations

from kobe_pipelines.orders import Side
from kobe_pipelines.risk import KillSwitch, Position
from kobe_pipelines.risk.types import OpenOrder
from kobe_pipelines_tests.risk.conftest import buy, check, make_book, sell


def _book_with(open_orders=(), positions=None, exit_legs=None, buying_power=100_000.0):
    book = make_book(positions, buying_power=buying_power)
    return type(book)(book.equity, book.cash, book.buying_power, book.positions, book.last_prices, tuple(open_orders),
                      exit_legs or {})


def test_position_size_when_open_entries_for_the_symbol_then_counted_as_if_filled(make_gate):
    # five working entries of 40 sh @ 100 = 20,000 USD = 20 % (at the cap); one more is 24 %
    working = [OpenOrder(f"w-{i}", "AAPL", Side.BUY, 40, 100.0, 98.0) for i in range(5)]
    sixth = make_gate().decide(buy("AAPL", 40, 100.0, stop=98.0), _book_with(working))
    result = check(sixth, "position_size")
    assert not result.passed and "AAPL +240 sh x 100.00 = 24.00% of equity" in result.reason


def test_heat_when_open_entries_then_their_risk_counts_from_the_start(make_gate):
    # a working entry of 1,000 sh @ 100 stop 95 holds 5,000 USD (5 %); another 1,100 sh adds 5.5 %
    working = [OpenOrder("w-1", "AAPL", Side.BUY, 1_000, 100.0, 95.0)]
    decision = make_gate().decide(buy("AAPL", 1_100, 100.0, stop=95.0), _book_with(working))
    assert not check(decision, "heat").passed and "5.00% -> 10.50%" in check(decision, "heat").reason


def test_buying_power_when_an_approval_is_not_at_the_broker_yet_then_its_notional_is_taken(make_gate):
    # reserved at the broker: already out of buying power; an approval the broker has not seen: not yet
    gate = make_gate()
    at_broker = _book_with([OpenOrder("w-1", "AAPL", Side.BUY, 50, 100.0, reserved=True)], buying_power=10_000.0)
    assert check(gate.decide(buy("AAPL", 100, 100.0), at_broker), "buying_power").passed  # 10,000 of 10,000
    unsent = _book_with([OpenOrder("w-2", "AAPL", Side.BUY, 50, 100.0, reserved=False)], buying_power=10_000.0)
    result = check(gate.decide(buy("AAPL", 100, 100.0), unsent), "buying_power")
    assert not result.passed and "needs 10,000.00 USD of 5,000.00 USD" in result.reason


def test_reducing_when_live_exit_legs_already_close_the_long_then_a_sell_is_new_risk(make_gate, state):
    KillSwitch(state).engage("halt", "ops")
    held = [Position("AAPL", 100, 90.0, 95.0)]
    gate = make_gate()
    with_legs = gate.decide(sell("AAPL", 100, 100.0), _book_with(positions=held, exit_legs={"AAPL": -100}))
    assert not with_legs.approved and not check(with_legs, "halted").passed  # would flip to a short of 100
    without = gate.decide(sell("AAPL", 100, 100.0), _book_with(positions=held))
    assert without.approved and "only reduces AAPL +100 -> +0 sh" in check(without, "halted").reason


def test_price_collar_when_a_stop_order_then_judged_by_its_side_of_the_last_price(make_gate):
    from kobe_pipelines.orders import OrderType

    gate = make_gate()
    held = _book_with(positions=[Position("AAPL", 100, 90.0)])
    below = gate.decide(sell("AAPL", 100, 80.0, order_type=OrderType.STOP), held)  # 20 % away: a stop, not a limit
    assert below.approved and "stop 80.0000 is below the last price" in check(below, "price_collar").reason
    above = gate.decide(sell("AAPL", 100, 101.0, order_type=OrderType.STOP), held)
    assert not check(above, "price_collar").passed  # a sell stop above the market would trigger at once


def test_duplicate_id_when_retry_of_the_latest_approval_for_the_same_intent_then_passes(make_gate):
    gate = make_gate()
    first = gate.decide(buy("AAPL", 1, 100.0, client_order_id="r-1"), make_book())
    retried = gate.decide(buy("AAPL", 1, 100.0, client_order_id="r-1"), make_book(), retry_of=first.decision_id)
    assert retried.approved and check(retried, "duplicate_id").reason == f"retry of {first.decision_id}, which never reached a broker"
    stale = gate.decide(buy("AAPL", 1, 100.0, client_order_id="r-1"), make_book(), retry_of=first.decision_id)
    assert "the latest approval of 'r-1' is" in check(stale, "duplicate_id").reason
    other = gate.decide(buy("AAPL", 2, 100.0, client_order_id="r-1"), make_book(), retry_of=retried.decision_id)
    assert "another order under the same id: qty 1 -> 2" in check(other, "duplicate_id").reason


def test_duplicate_id_when_another_gate_approved_the_id_then_refused_without_a_restart(make_gate):
    first, second = make_gate(), make_gate()  # two processes' gates on one state folder
    assert first.decide(buy("AAPL", 1, 100.0, client_order_id="both"), make_book()).approved
    assert not check(second.decide(buy("AAPL", 1, 100.0, client_order_id="both"), make_book()), "duplicate_id").passed
