from __future__ import annotations

import shutil

import pytest

from kobe_pipelines.risk import CHECK_NAMES, OrderIntent, Position, RiskLimits, Side, UnapprovedOrderError, require_decision
from kobe_pipelines.risk.audit import read_audit_log
from kobe_pipelines.risk.types import Decision
from kobe_pipelines_tests.risk.conftest import buy, check, make_book, sell


def test_decide_when_order_is_clean_then_approved_with_every_check_reported(make_gate):
    decision = make_gate().decide(buy("AAPL", 10, 100.0, stop=95.0, take_profit=110.0), make_book())
    assert decision.approved and decision.reason == "approved"
    assert tuple(c.name for c in decision.checks) == CHECK_NAMES
    assert all(c.passed and c.reason for c in decision.checks)


def test_decide_when_several_checks_fail_then_all_failures_are_reported_not_only_the_first(make_gate):
    # 3,000 x 110.02 = 330,060 USD: over the notional cap (250,000), the collar (10.02 % > 10 %),
    # position size (330 % > 20 %), buying power (100,000) and heat (no stop: 330 % > 10 %).
    decision = make_gate().decide(buy("AAPL", 3_000, 110.02), make_book())
    assert {c.name for c in decision.failures} == {"heat", "position_size", "order_notional", "price_collar", "buying_power"}


def test_decide_when_intent_is_garbage_then_never_raises_and_rejects_naming_fields(make_gate):
    intent = OrderIntent(client_order_id=None, symbol=42, side="up", qty=-1.5, entry="cheap", stop=float("nan"),
                         take_profit=[1], order_type=object())
    decision = make_gate().decide(intent, make_book())
    assert not decision.approved
    reason = check(decision, "fields").reason
    for field in ("client_order_id", "symbol", "side", "entry", "stop", "take_profit", "order_type"):
        assert f"field '{field}'" in reason
    assert "field 'qty'" in check(decision, "quantity").reason


def test_decide_when_not_given_an_order_intent_then_rejects_and_logs(make_gate, state):
    decision = make_gate().decide({"symbol": "AAPL"}, make_book())  # type: ignore[arg-type]
    assert not decision.approved and "field 'intent'" in check(decision, "fields").reason
    assert read_audit_log(state)["invalid"].iloc[-1]["intent"] == "{'symbol': 'AAPL'}"


def test_decide_when_book_is_broken_then_rejects_with_gate_error_and_still_logs(make_gate, state):
    decision = make_gate().decide(buy("AAPL", 1, 100.0), None)  # type: ignore[arg-type]
    assert not decision.approved and decision.checks[0].name == "gate_error"
    assert read_audit_log(state)["failed"].tolist() == ["gate_error"]


def test_decide_when_bad_input_then_decision_is_logged_with_the_raw_value(make_gate, state):
    make_gate().decide(buy("AAPL", 10, float("nan"), client_order_id="nan-1"), make_book())
    row = read_audit_log(state).iloc[-1]
    assert row["client_order_id"] == "nan-1" and not row["approved"]
    assert row["invalid"] == {"entry": "NaN"} and "fields" in row["failed"]


def test_decide_when_same_book_then_earlier_approvals_count_against_heat_and_buying_power(make_gate):
    # Each buy: 60 sh AAPL @ 100, stop 50 -> 3,000 USD risk (3 %), 6,000 USD buying power.
    # Buying power 10,000: the second order needs 6,000 of the 4,000 left.
    gate = make_gate(RiskLimits(max_orders_per_minute=100))
    book = make_book(buying_power=10_000.0)
    assert gate.decide(buy("AAPL", 60, 100.0, stop=50.0), book).approved
    second = gate.decide(buy("AAPL", 60, 100.0, stop=50.0), book)
    assert [c.name for c in second.failures] == ["buying_power"]
    assert "3.00% -> 6.00%" in check(second, "heat").reason


def test_decide_when_same_book_then_two_sells_cannot_both_count_as_closing_the_same_long(make_gate, state):
    from kobe_pipelines.risk import KillSwitch

    KillSwitch(state).engage("halt", "ops")
    gate = make_gate()
    book = make_book([Position("AAPL", 100, 90.0, 95.0)])
    assert gate.decide(sell("AAPL", 100, 100.0), book).approved
    assert not gate.decide(sell("AAPL", 100, 100.0), book).approved  # would open a short of 100


def test_decide_when_new_book_object_then_pending_approvals_are_forgotten(make_gate):
    gate = make_gate()
    gate.decide(buy("AAPL", 60, 100.0, stop=50.0), make_book(buying_power=10_000.0))
    assert gate.decide(buy("AAPL", 60, 100.0, stop=50.0), make_book(buying_power=10_000.0)).approved


def test_decide_when_audit_log_cannot_be_written_then_rejects_with_audit_check(make_gate, state):
    gate = make_gate()
    shutil.rmtree(state)  # the state folder vanished under a running gate
    decision = gate.decide(buy("AAPL", 1, 100.0), make_book())
    assert not decision.approved
    assert decision.checks[-1].name == "audit_log" and not decision.checks[-1].passed
    assert not state.exists()  # the gate never re-creates it


def test_decide_batch_when_called_then_each_intent_sees_the_earlier_ones_and_all_are_logged(make_gate, state):
    gate = make_gate()
    intents = [buy("AAPL", 60, 100.0, stop=50.0) for _ in range(4)]  # 3 % heat each
    decisions = gate.decide_batch(intents, make_book())
    assert [d.approved for d in decisions] == [True, True, True, False]  # 9 % then 12 % > 10 %
    assert read_audit_log(state)["decision_id"].tolist() == [d.decision_id for d in decisions]


def test_require_decision_when_approved_for_that_intent_then_returns_it(make_gate):
    intent = buy("AAPL", 1, 100.0)
    assert require_decision(make_gate().decide(intent, make_book()), intent) is intent


def test_require_decision_when_rejected_then_refuses(make_gate):
    intent = buy("AAPL", 1, float("nan"))
    with pytest.raises(UnapprovedOrderError, match="rejected"):
        require_decision(make_gate().decide(intent, make_book()), intent)


def test_require_decision_when_for_another_order_or_forged_then_refuses(make_gate):
    decision = make_gate().decide(buy("AAPL", 1, 100.0), make_book())
    with pytest.raises(UnapprovedOrderError):
        require_decision(decision, buy("AAPL", 1000, 100.0))
    with pytest.raises(UnapprovedOrderError):
        Decision._from_gate(object(), "x", decision.intent, decision.checks, decision.decided_at)
    forged = Decision(decision.decision_id, OrderIntent("z", "AAPL", Side.BUY, 9_999, 100.0), True, decision.checks,
                      decision.decided_at, decision.seal)
    with pytest.raises(UnapprovedOrderError, match="altered"):
        require_decision(forged)


def test_book_when_caller_tries_to_change_it_then_refuses(make_gate):
    book = make_book([Position("AAPL", 100, 90.0)])
    with pytest.raises(TypeError):
        book.positions["AAPL"] = Position("AAPL", 1, 1.0)  # type: ignore[index]


def test_decide_when_called_from_several_threads_then_rate_limit_holds_and_every_decision_is_logged(make_gate, state):
    import threading

    gate = make_gate(RiskLimits(max_orders_per_minute=50))
    book = make_book(equity=1e9, buying_power=1e9)
    results = []

    def worker(tag: str) -> None:
        for i in range(40):
            results.append(gate.decide(buy("AAPL", 1, 100.0, client_order_id=f"{tag}-{i}"), book).approved)

    threads = [threading.Thread(target=worker, args=(f"w{k}",)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 160 intents within the same (fake) minute, 50 allowed.
    assert sum(results) == 50 and len(results) == 160
    assert len(read_audit_log(state)) == 160


def test_decide_when_clock_is_naive_then_time_is_taken_as_utc(state):
    import datetime as dt

    from kobe_pipelines.risk import PolicyGate

    with PolicyGate(RiskLimits(), state, clock=lambda: dt.datetime(2024, 3, 1, 14, 30)) as gate:
        decision = gate.decide(buy("AAPL", 1, 100.0), make_book())
    assert decision.decided_at.isoformat() == "2024-03-01T14:30:00+00:00"
