"""Each gate check, worked by hand, long and short, with and without stops.

Book unless stated: equity 100,000 USD, buying power 100,000 USD, marks AAPL 100, MSFT 200,
TSLA 50; limits: heat cap 10 %, position 20 %, notional 250,000, collar 10 %.
"""

from __future__ import annotations

import pytest

from kobe_pipelines.risk import KillSwitch, OrderIntent, OrderType, Position, RiskLimits, Side
from kobe_pipelines_tests.risk.conftest import buy, check, make_book, sell


# -- heat -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("intent", "passed", "after"), [
    (buy("AAPL", 100, 100.0, stop=95.0), True, "0.50%"),     # 100 x (100 - 95) = 500 -> 0.5 %
    (buy("AAPL", 100, 100.0), True, "10.00%"),               # no stop: 100 x 100 = 10,000 -> 10 % (at cap)
    (buy("AAPL", 101, 100.0), False, "10.10%"),              # 101 x 100 = 10,100 -> 10.1 %
    (sell("MSFT", 100, 200.0, stop=210.0), True, "1.00%"),   # short: 100 x (210 - 200) = 1,000 -> 1 %
    (sell("MSFT", 100, 200.0, stop=310.0), False, "11.00%"),  # 100 x (310 - 200) = 11,000 -> 11 %
    (sell("MSFT", 50, 200.0), True, "10.00%"),               # short, no stop: 50 x 200 = 10,000 -> 10 %
    (sell("MSFT", 51, 200.0), False, "10.20%"),              # 51 x 200 = 10,200 -> 10.2 %
])
def test_heat_when_flat_book_then_order_risk_over_equity_against_cap(make_gate, intent, passed, after):
    result = check(make_gate().decide(intent, make_book()), "heat")
    assert result.passed is passed and f"0.00% -> {after}" in result.reason


def test_heat_when_book_already_holds_risk_then_counts_it_from_marks(make_gate):
    # Book 7,000 USD = 7 % (AAPL long 1,000; MSFT short 1,000; TSLA no stop 5,000 -- see test_heat).
    # Buying 60 AAPL @ 100 stop 50 adds 60 x 50 = 3,000 -> 10 % (passes); 61 adds 3,050 -> 10.05 %.
    book = make_book([Position("AAPL", 100, 95.0, 90.0), Position("MSFT", -50, 205.0, 220.0), Position("TSLA", 100, 45.0)])
    gate = make_gate()
    assert check(gate.decide(buy("AAPL", 61, 100.0, stop=50.0), book), "heat").passed is False
    ok = check(gate.decide(buy("AAPL", 60, 100.0, stop=50.0), book), "heat")
    assert ok.passed and "7.00% -> 10.00%" in ok.reason


def test_heat_when_buy_limit_below_mark_then_risk_measured_from_the_mark(make_gate):
    # Entry 95 with mark 100, stop 90: 1,000 sh x (100 - 90) = 10,000 -> 10 % passes; by the entry alone
    # it would be 5,000. 1,001 sh -> 10,010 -> 10.01 % fails.
    gate = make_gate(RiskLimits(max_position_fraction=1.0, max_orders_per_minute=1000))
    book = make_book(buying_power=1e6)
    assert check(gate.decide(buy("AAPL", 1_001, 95.0, stop=90.0), book), "heat").passed is False
    assert check(gate.decide(buy("AAPL", 1_000, 95.0, stop=90.0), book), "heat").passed is True


def test_heat_when_equity_is_zero_or_negative_then_no_new_risk(make_gate):
    for equity in (0.0, -5_000.0):
        result = check(make_gate().decide(buy("AAPL", 1, 100.0, stop=99.0), make_book(equity=equity)), "heat")
        assert not result.passed and "no new risk" in result.reason


def test_heat_when_reducing_an_over_cap_book_then_passes(make_gate):
    # AAPL long 120 sh, no stop, mark 100: 12,000 = 12 % > cap. Selling 50 only lowers it.
    book = make_book([Position("AAPL", 120, 90.0)])
    gate = make_gate()
    assert check(gate.decide(sell("AAPL", 50, 100.0), book), "heat").passed
    assert not check(gate.decide(buy("MSFT", 1, 200.0, stop=199.0), book), "heat").passed


def test_heat_when_a_book_position_has_no_mark_then_fails_closed(make_gate):
    book = make_book([Position("ZZZ", 100, 10.0, 9.0)])
    result = check(make_gate().decide(buy("AAPL", 1, 100.0, stop=99.0), book), "heat")
    assert not result.passed and "ZZZ" in result.reason


# -- position size ----------------------------------------------------------------------------
@pytest.mark.parametrize(("positions", "intent", "passed"), [
    ([], buy("AAPL", 200, 100.0, stop=99.0), True),               # 200 x 100 = 20,000 = 20 %
    ([], buy("AAPL", 201, 100.0, stop=99.0), False),              # 20,100 = 20.1 %
    ([], sell("MSFT", 100, 200.0, stop=201.0), True),             # short 100 x 200 = 20 %
    ([], sell("MSFT", 101, 200.0, stop=201.0), False),            # 20,200 = 20.2 %
    ([Position("AAPL", 150, 90.0, 95.0)], buy("AAPL", 51, 100.0, stop=99.0), False),  # (150 + 51) x 100 = 20.1 %
    ([Position("AAPL", 100, 90.0, 95.0)], sell("AAPL", 350, 100.0), False),           # flips to -250: 25 %
    ([Position("AAPL", 300, 90.0, 95.0)], sell("AAPL", 50, 100.0), True),             # reducing a 30 % position
])
def test_position_size_when_resulting_position_vs_20_percent_of_equity(make_gate, positions, intent, passed):
    assert check(make_gate().decide(intent, make_book(positions)), "position_size").passed is passed


# -- order notional -----------------------------------------------------------------------------
@pytest.mark.parametrize(("intent", "passed"), [
    (buy("AAPL", 2_500, 100.0), True),    # 2,500 x 100 = 250,000 (at the cap)
    (buy("AAPL", 2_501, 100.0), False),   # 250,100
    (sell("AAPL", 2_501, 100.0), False),  # the same for a sell, reducing or not
])
def test_order_notional_when_qty_times_entry_vs_250k_cap(make_gate, intent, passed):
    book = make_book([Position("AAPL", 5_000, 90.0)])
    assert check(make_gate().decide(intent, book), "order_notional").passed is passed


# -- price collar -------------------------------------------------------------------------------
@pytest.mark.parametrize(("intent", "passed"), [
    (buy("AAPL", 1, 110.0), True),    # |110 / 100 - 1| = 10 %
    (buy("AAPL", 1, 110.01), False),  # 10.01 %
    (sell("AAPL", 1, 90.0), True),    # 10 % below
    (sell("AAPL", 1, 89.99), False),
])
def test_price_collar_when_entry_vs_10_percent_band_around_last_price(make_gate, intent, passed):
    assert check(make_gate().decide(intent, make_book()), "price_collar").passed is passed


def test_price_collar_when_symbol_has_no_last_price_then_fails(make_gate):
    result = check(make_gate().decide(buy("NVDA", 1, 100.0), make_book()), "price_collar")
    assert not result.passed and "no usable last price for NVDA" in result.reason


# -- bracket ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("intent", "passed", "field"), [
    (buy("AAPL", 1, 100.0, stop=95.0, take_profit=110.0), True, None),
    (buy("AAPL", 1, 100.0), True, None),
    (buy("AAPL", 1, 100.0, stop=100.0), False, "stop"),           # stop must be strictly below
    (buy("AAPL", 1, 100.0, stop=101.0), False, "stop"),
    (buy("AAPL", 1, 100.0, stop=95.0, take_profit=99.0), False, "take_profit"),
    (sell("AAPL", 1, 100.0, stop=105.0, take_profit=90.0), True, None),
    (sell("AAPL", 1, 100.0, stop=95.0), False, "stop"),           # short stop below the entry
    (sell("AAPL", 1, 100.0, take_profit=101.0), False, "take_profit"),
])
def test_bracket_when_legs_on_each_side_of_entry(make_gate, intent, passed, field):
    result = check(make_gate().decide(intent, make_book()), "bracket")
    assert result.passed is passed
    if field:
        assert f"field '{field}'" in result.reason


# -- quantity and fields --------------------------------------------------------------------------
@pytest.mark.parametrize(("qty", "passed"), [(10, True), (10.0, True), (0, False), (-5, False), (1.5, False),
                                             (float("nan"), False), (True, False), ("10", False), (None, False)])
def test_quantity_when_not_a_positive_whole_number_then_fails_naming_qty(make_gate, qty, passed):
    result = check(make_gate().decide(buy("AAPL", qty, 100.0), make_book()), "quantity")
    assert result.passed is passed
    if not passed:
        assert "field 'qty'" in result.reason


@pytest.mark.parametrize(("changes", "field"), [
    ({"side": "hold"}, "side"), ({"side": None}, "side"), ({"order_type": "stop_limit"}, "order_type"),
    ({"entry": float("nan")}, "entry"), ({"entry": 0.0}, "entry"), ({"entry": -1.0}, "entry"),
    ({"entry": float("inf")}, "entry"), ({"entry": "100"}, "entry"), ({"stop": float("nan")}, "stop"),
    ({"stop": -3.0}, "stop"), ({"take_profit": 0}, "take_profit"), ({"symbol": ""}, "symbol"),
    ({"symbol": "AA PL"}, "symbol"), ({"client_order_id": ""}, "client_order_id"),
])
def test_fields_when_a_value_is_bad_then_decision_rejected_naming_the_field(make_gate, changes, field):
    base = dict(client_order_id="f-1", symbol="AAPL", side=Side.BUY, qty=10, entry=100.0, stop=95.0)
    decision = make_gate().decide(OrderIntent(**{**base, **changes}), make_book())
    assert not decision.approved and not check(decision, "fields").passed
    assert f"field '{field}'" in check(decision, "fields").reason


def test_fields_when_side_given_as_its_text_value_then_accepted(make_gate):
    decision = make_gate().decide(OrderIntent("s-1", "AAPL", "sell", 1, 100.0, order_type="market"), make_book())
    assert check(decision, "fields").passed


# -- tick size --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("intent", "passed"), [
    (buy("AAPL", 1, 100.01), True),
    (buy("AAPL", 1, 100.005), False),      # half a cent above $1: sub-penny
    (buy("AAPL", 1, 100.0, stop=95.001), False),
    (buy("PENNY", 1, 0.5001), True),       # below $1 the tick is $0.0001
    (buy("PENNY", 1, 0.50005), False),
    (buy("AAPL", 1, 100.005, order_type=OrderType.MARKET), True),  # market: no entry price is sent
])
def test_tick_size_when_prices_off_the_rule_612_grid_then_fails(make_gate, intent, passed):
    book = make_book(marks={"PENNY": 0.5})
    assert check(make_gate().decide(intent, book), "tick_size").passed is passed


# -- universe -----------------------------------------------------------------------------------------
def test_universe_when_symbol_outside_tradable_set_then_fails(make_gate):
    gate = make_gate(universe={"AAPL"})
    assert check(gate.decide(buy("AAPL", 1, 100.0), make_book()), "universe").passed
    result = check(gate.decide(buy("MSFT", 1, 200.0), make_book()), "universe")
    assert not result.passed and "'MSFT' is not in the tradable universe" in result.reason


def test_universe_when_none_configured_then_any_symbol_passes(make_gate):
    assert check(make_gate().decide(buy("TSLA", 1, 50.0), make_book()), "universe").passed


# -- duplicate client order id --------------------------------------------------------------------------
def test_duplicate_id_when_id_already_approved_then_rejected(make_gate):
    gate = make_gate()
    assert gate.decide(buy("AAPL", 1, 100.0, client_order_id="dup"), make_book()).approved
    second = gate.decide(buy("AAPL", 1, 100.0, client_order_id="dup"), make_book())
    assert [c.name for c in second.failures] == ["duplicate_id"]


def test_duplicate_id_when_first_use_was_rejected_then_id_may_be_retried(make_gate):
    gate = make_gate()
    assert not gate.decide(buy("AAPL", 1, float("nan"), client_order_id="retry"), make_book()).approved
    assert gate.decide(buy("AAPL", 1, 100.0, client_order_id="retry"), make_book()).approved


def test_duplicate_id_when_gate_restarts_then_ids_approved_before_are_still_refused(make_gate):
    make_gate().decide(buy("AAPL", 1, 100.0, client_order_id="once"), make_book())
    restarted = make_gate()  # a new gate on the same state folder rebuilds ids from the audit log
    assert not check(restarted.decide(buy("AAPL", 1, 100.0, client_order_id="once"), make_book()), "duplicate_id").passed


# -- rate limit --------------------------------------------------------------------------------------
def test_rate_limit_when_more_approvals_than_allowed_in_60_seconds_then_rejected_until_window_passes(make_gate, clock):
    gate = make_gate(RiskLimits(max_orders_per_minute=3))
    book = make_book()
    for _ in range(3):
        assert gate.decide(buy("AAPL", 1, 100.0), book).approved
        clock.advance(10)  # approvals at t = 0, 10, 20 s
    assert check(gate.decide(buy("AAPL", 1, 100.0), book), "rate_limit").passed is False  # t = 30 s
    clock.advance(30)  # t = 60 s: the approval at t = 0 leaves the window
    assert check(gate.decide(buy("AAPL", 1, 100.0), book), "rate_limit").passed is True


def test_rate_limit_when_gate_restarts_then_recent_approvals_still_count(make_gate):
    gate = make_gate(RiskLimits(max_orders_per_minute=2))
    gate.decide(buy("AAPL", 1, 100.0), make_book())
    gate.decide(buy("AAPL", 1, 100.0), make_book())
    restarted = make_gate(RiskLimits(max_orders_per_minute=2))
    assert not check(restarted.decide(buy("AAPL", 1, 100.0), make_book()), "rate_limit").passed


# -- buying power -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("intent", "buying_power", "passed"), [
    (buy("AAPL", 100, 100.0), 10_000.0, True),      # 100 x 100 = 10,000 of 10,000
    (buy("AAPL", 100, 100.0), 9_999.99, False),
    (sell("MSFT", 50, 200.0), 9_999.99, False),     # opening a short (10,000) uses buying power too
])
def test_buying_power_when_order_notional_vs_available(make_gate, intent, buying_power, passed):
    assert check(make_gate().decide(intent, make_book(buying_power=buying_power)), "buying_power").passed is passed


def test_buying_power_when_order_reduces_a_position_then_exempt(make_gate):
    book = make_book([Position("AAPL", 100, 90.0)], buying_power=0.0)
    assert check(make_gate().decide(sell("AAPL", 100, 100.0), book), "buying_power").passed


# -- halted and drawdown --------------------------------------------------------------------------------
@pytest.mark.parametrize(("positions", "intent", "passed"), [
    ([], buy("AAPL", 1, 100.0, stop=95.0), False),                              # new long
    ([], sell("AAPL", 1, 100.0, stop=105.0), False),                            # new short
    ([Position("AAPL", 100, 90.0, 95.0)], sell("AAPL", 40, 100.0), True),       # trims the long
    ([Position("AAPL", 100, 90.0, 95.0)], sell("AAPL", 100, 100.0, take_profit=99.0), True),  # closes it
    ([Position("AAPL", 100, 90.0, 95.0)], sell("AAPL", 101, 100.0), False),     # would flip short
    ([Position("AAPL", 100, 90.0, 95.0)], buy("AAPL", 1, 100.0), False),        # adds to the long
    ([Position("MSFT", -50, 210.0, 220.0)], buy("MSFT", 50, 200.0), True),      # covers the short
    ([Position("MSFT", -50, 210.0, 220.0)], sell("MSFT", 1, 200.0), False),     # adds to the short
])
def test_halted_when_kill_switch_engaged_then_only_reducing_orders_pass(make_gate, state, positions, intent, passed):
    KillSwitch(state).engage("manual: broker incident", "ops")
    decision = make_gate().decide(intent, make_book(positions))
    assert check(decision, "halted").passed is passed and decision.approved is passed
    if not passed:
        assert "manual: broker incident" in check(decision, "halted").reason


def test_drawdown_when_book_equity_15_percent_below_recorded_peak_then_new_risk_rejected(make_gate, state):
    from kobe_pipelines.risk import DrawdownMonitor

    DrawdownMonitor(state, max_drawdown=0.5).update(100_000.0, "2024-01-02")  # records the peak, no halt at 15 %
    gate = make_gate()
    hit = check(gate.decide(buy("AAPL", 1, 100.0), make_book(equity=85_000.0)), "drawdown")
    assert not hit.passed and "15.00%" in hit.reason  # (100,000 - 85,000) / 100,000
    assert check(gate.decide(buy("AAPL", 1, 100.0), make_book(equity=85_001.0)), "drawdown").passed
    book = make_book([Position("AAPL", 10, 90.0)], equity=50_000.0)
    assert check(gate.decide(sell("AAPL", 10, 100.0), book), "drawdown").passed  # closing is exempt


def test_drawdown_when_hwm_file_corrupt_then_new_risk_rejected_as_halted(make_gate, state):
    (state / "high_water_mark.json").write_text("{")
    result = check(make_gate().decide(buy("AAPL", 1, 100.0), make_book()), "drawdown")
    assert not result.passed and "treated as halted" in result.reason
