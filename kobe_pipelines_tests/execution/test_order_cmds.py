"""`kobe order bracket` and `kobe orders` (kobe_pipelines/cli/order_cmds.py) on the paper broker."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from kobe_pipelines.cli.order_cmds import _session, order, orders
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.risk import CHECK_NAMES
from kobe_pipelines_tests.support.readable import assert_readable

NY = ZoneInfo("America/New_York")
ORDER = ["bracket", "--symbol", "AAA", "--side", "buy", "--qty", "10", "--entry", "100", "--stop", "95",
         "--take-profit", "110", "--trading-date", "2024-03-04", "--replay", "--last-price", "100"]


def run(command, *args):
    return CliRunner().invoke(command, list(args), catch_exceptions=False)


def state_dir(tmp_path):
    state = tmp_path / "state"  # the root conftest points KOBE_STATE_DIR here
    state.mkdir(exist_ok=True)
    return state


def test_order_bracket_when_approved_then_prints_every_check_and_the_paper_ack(tmp_path):
    state = state_dir(tmp_path)
    result = run(order, *ORDER, "--client-order-id", "manual-1")
    assert result.exit_code == 0, result.output
    assert "decision " in result.output and ": APPROVED" in result.output
    assert all(f"PASS  {name}" in result.output for name in CHECK_NAMES)
    assert result.output.strip().endswith("broker: paper order paper-00000001 new (bracket)")
    assert PaperBroker(state).get_order("manual-1") is not None
    assert OrderLedger(state).events()["event"].tolist()[-4:] == ["intent", "decision", "submitted", "ack"]


def test_order_bracket_when_stop_on_the_wrong_side_then_rejected_exit_1_and_nothing_sent(tmp_path):
    state = state_dir(tmp_path)
    args = [a if a != "95" else "101" for a in ORDER]  # a buy's stop above its entry
    result = run(order, *args)
    assert result.exit_code == 1 and ": REJECTED" in result.output
    assert "FAIL  bracket" in result.output and "field 'stop'" in result.output
    assert PaperBroker(state).open_orders() == []


def test_order_bracket_when_sub_penny_prices_then_rounded_conservatively_and_said_so(tmp_path):
    state_dir(tmp_path)
    args = ORDER[:8] + ["100.009", "--stop", "95.001", "--take-profit", "110.009"] + ORDER[13:]
    result = run(order, *args)
    assert "entry 100.009 rounded to the tick: 100.00" in result.output
    assert "stop 95.001 rounded to the tick: 95.01" in result.output and result.exit_code == 0


def test_order_bracket_when_run_twice_then_the_second_finds_the_order_at_the_broker_and_sends_nothing(tmp_path):
    state = state_dir(tmp_path)
    run(order, *ORDER)
    again = run(order, *ORDER)  # same order -> same derived client order id
    assert again.exit_code == 0, again.output
    assert "already at the broker: not sent again" in again.output and "decision " not in again.output
    assert len(PaperBroker(state).open_orders()) == 1
    assert OrderLedger(state).events()["event"].tolist().count("submitted") == 1


def test_order_bracket_when_state_folder_missing_then_refuses_without_creating_it(tmp_path):
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(order, [*ORDER, "--state", str(missing)])
    assert result.exit_code == 1 and "does not exist" in result.output and not missing.exists()


def test_order_bracket_when_no_last_price_anywhere_then_asks_for_one(tmp_path):
    state_dir(tmp_path)
    result = CliRunner().invoke(order, ORDER[:-2])
    assert result.exit_code == 1 and "pass --last-price" in result.output


def test_orders_when_an_order_was_placed_then_lists_it_and_reconciles(tmp_path):
    state_dir(tmp_path)
    run(order, *ORDER, "--client-order-id", "manual-1")
    result = run(orders, "--reconcile", "paper")
    assert result.exit_code == 0 and "manual-1" in result.output
    assert "paper: ledger and broker agree" in result.output
    events = run(orders, "--order", "manual-1")
    assert all(kind in events.output for kind in ("intent", "decision", "submitted", "ack"))


@pytest.mark.parametrize("broker, replay, message", [
    ("alpaca", True, "a live broker cannot trade a past session"),
    ("paper", False, "pass --replay"),
])
def test_order_bracket_when_trading_date_in_the_past_then_refused_unless_a_paper_replay(tmp_path, broker, replay, message):
    state = state_dir(tmp_path)
    args = [a for a in ORDER if a != "--replay" or replay] + ["--broker", broker]
    result = CliRunner().invoke(order, args)
    assert result.exit_code == 1 and message in result.output
    assert OrderLedger(state).events().empty  # refused before anything was recorded


def test_orders_when_an_intent_was_rejected_or_never_sent_then_still_listed_with_its_state(tmp_path):
    state = state_dir(tmp_path)
    run(order, *[a if a != "95" else "101" for a in ORDER], "--client-order-id", "bad-stop")  # rejected by the gate
    listing = run(orders)
    assert "bad-stop" in listing.output and "rejected by the gate: bracket" in listing.output


def test_orders_when_ledger_empty_then_says_so(tmp_path):
    state_dir(tmp_path)
    assert "the order ledger is empty" in run(orders).output


def test_order_bracket_when_five_orders_for_one_symbol_work_then_the_sixth_is_refused_by_the_position_cap(tmp_path):
    # 40 sh @ 100 = 4 % of 100,000 USD each: five working entries make 20 % (the cap), a sixth 24 %
    state = state_dir(tmp_path)
    args = [a if a != "10" else "40" for a in ORDER]
    codes = [run(order, *args, "--client-order-id", f"five-{i}").exit_code for i in range(6)]
    assert codes == [0, 0, 0, 0, 0, 1]
    sixth = run(order, *args, "--client-order-id", "five-6")
    assert "FAIL  position_size   AAA +240 sh x 100.00 = 24.00% of equity (max 20%)" in sixth.output
    assert len(PaperBroker(state).open_orders()) == 5 and PaperBroker(state).positions() == {}  # before any fill


def test_orders_lineage_when_a_manual_order_then_prints_its_chain_and_that_no_model_made_it(tmp_path):
    state_dir(tmp_path)
    run(order, *ORDER, "--client-order-id", "manual-1")
    result = run(orders, "--lineage", "manual-1")
    assert result.exit_code == 0, result.output
    assert "strategy   manual version -" in result.output and "lineage    none: no signal made this order" in result.output
    assert "recompute: no model made this order's signal; nothing to recompute" in result.output
    assert run(orders, "--lineage", "nope").exit_code == 1


def test_order_bracket_when_the_id_is_derived_then_every_line_fits_100_columns(tmp_path):
    state_dir(tmp_path)
    result = run(order, *ORDER)  # the derived id: manual-20240304-AAA-b-<16 hex>, 37 characters
    assert result.exit_code == 0, result.output
    assert_readable(result.output)
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("order manual-20240304-AAA-b-"))
    assert lines[header + 1] == "  buy 10 AAA @ 100.00 stop 95.00 take-profit 110.00 for 2024-03-04 (paper)"


@pytest.mark.parametrize("now, session", [
    (dt.datetime(2026, 12, 7, 15, 30, tzinfo=NY), "2026-12-07"),  # before Monday's close: Monday's session
    (dt.datetime(2026, 12, 7, 16, 30, tzinfo=NY), "2026-12-08"),  # after it: Tuesday's, not a session already over
])
def test_order_session_when_no_trading_date_then_the_first_session_not_yet_closed(now, session):
    assert _session(None, "paper", replay=False, now=now) == session


def test_order_session_when_the_trading_date_is_today_after_the_close_then_it_is_not_a_past_date():
    # today's session stays allowed (the paper broker refuses it itself once its bars are processed)
    now = dt.datetime(2026, 12, 7, 16, 30, tzinfo=NY)
    assert _session("2026-12-07", "alpaca", replay=False, now=now) == "2026-12-07"
