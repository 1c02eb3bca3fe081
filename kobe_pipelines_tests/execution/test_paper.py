"""PaperBroker: orders through the real gate, fills worked by hand (5 bps slippage), durable state."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kobe_pipelines.data.validation import BarValidationError
from kobe_pipelines.errors import ConfigError, StateFileError
from kobe_pipelines.execution.broker import LegRole, OrderStatus
from kobe_pipelines.execution.errors import (
    DuplicateClientOrderIdError,
    InsufficientBuyingPowerError,
    InvalidOrderError,
    MarketClosedError,
    OrderNotFoundError,
    UnknownSymbolError,
)
from kobe_pipelines.execution.paper import STATE_NAME, PaperBroker
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.risk.types import OrderType, UnapprovedOrderError
from kobe_pipelines_tests.execution.conftest import book, intent

D1, D2, D3 = "2024-03-04", "2024-03-05", "2024-03-06"
ENTRY_BAR = ("AAA", D1, 101, 102, 99.5, 100.5)  # trades through the 100.00 limit after opening above it


def bars(*rows) -> pd.DataFrame:
    return pd.DataFrame([(*r, 1e6) for r in rows], columns=["symbol", "date", "open", "high", "low", "close", "volume"])


@pytest.fixture
def paper(tmp_path) -> PaperBroker:
    return PaperBroker(tmp_path / "state", slippage_bps=5.0, starting_cash=100_000.0)


def legs(paper: PaperBroker, coid: str = "ord-1") -> list[tuple[str, str]]:
    return [(leg.role.value, leg.status.value) for leg in paper.get_order(coid).legs]


def test_submit_when_approved_bracket_then_working_entry_with_held_legs_and_reserved_buying_power(paper, approve):
    ack = paper.submit(approve())
    assert (ack.created, ack.status, ack.broker_order_id) == (True, OrderStatus.NEW, "paper-00000001")
    assert legs(paper) == [("entry", "new"), ("stop_loss", "held"), ("take_profit", "held")]
    assert paper.account().buying_power == 99_000.0  # 100,000 - 10 x 100.00 reserved


def test_submit_when_same_decision_twice_then_returns_the_existing_order(paper, approve):
    decision = approve()
    first, again = paper.submit(decision), paper.submit(decision)
    assert (again.created, again.broker_order_id) == (False, first.broker_order_id)
    assert len(paper.open_orders()) == 1


def test_advance_when_entry_then_stop_then_cash_pnl_and_legs_as_worked_by_hand(paper, approve):
    paper.submit(approve())
    result = paper.advance(bars(ENTRY_BAR, ("AAA", D2, 97, 98, 94.5, 95.5)))
    # entry at the limit 100.00; stop 95 x 0.9995 = 94.9525; P&L (94.9525 - 100) x 10 = -50.475
    assert [(f.leg, f.price, f.realized_pnl) for f in result.fills] == [
        (LegRole.ENTRY, 100.0, None), (LegRole.STOP_LOSS, 94.9525, -50.475)]
    assert paper.account().cash == pytest.approx(99_949.525, abs=1e-9)  # 100,000 - 1,000 + 949.525
    assert paper.positions() == {}
    assert legs(paper) == [("entry", "filled"), ("stop_loss", "filled"), ("take_profit", "canceled")]


def test_advance_when_entry_then_target_then_takes_profit_at_the_limit(paper, approve):
    paper.submit(approve())
    result = paper.advance(bars(ENTRY_BAR, ("AAA", D2, 105, 110.5, 104, 110.2)))
    assert [(f.leg, f.price, f.realized_pnl) for f in result.fills][-1] == (LegRole.TAKE_PROFIT, 110.0, 100.0)
    assert paper.account().equity == 100_100.0  # flat: cash 100,000 - 1,000 + 1,100


def test_advance_when_next_bar_gaps_below_the_stop_then_fills_at_the_open_worse_than_the_stop(paper, approve):
    paper.submit(approve())
    result = paper.advance(bars(ENTRY_BAR, ("AAA", D2, 93, 94, 92, 93.5)))
    # 93 x 0.9995 = 92.9535; P&L (92.9535 - 100) x 10 = -70.465
    assert [(f.leg, f.price, f.realized_pnl) for f in result.fills][-1] == (LegRole.STOP_LOSS, 92.9535, -70.465)


def test_advance_when_both_legs_touched_in_one_bar_then_the_stop_wins(paper, approve):
    paper.submit(approve())
    result = paper.advance(bars(ENTRY_BAR, ("AAA", D2, 100, 111, 94, 105)))
    assert [(f.leg, f.price) for f in result.fills][-1] == (LegRole.STOP_LOSS, 94.9525)
    assert legs(paper)[2] == ("take_profit", "canceled")


def test_advance_when_short_bracket_hits_its_target_then_gains_on_the_cover(paper, approve):
    paper.submit(approve(side="sell", entry=100.0, stop=105.0, take_profit=90.0))
    result = paper.advance(bars(("AAA", D1, 99, 100.5, 98.5, 99.5), ("AAA", D2, 95, 96, 89.5, 91)))
    # sold 10 at 100.00, covered at 90.00: (100 - 90) x 10 = +100
    assert [(f.leg, f.side.value, f.price, f.realized_pnl) for f in result.fills] == [
        (LegRole.ENTRY, "sell", 100.0, None), (LegRole.TAKE_PROFIT, "buy", 90.0, 100.0)]
    assert paper.account().cash == 100_100.0


def test_advance_when_entry_bar_does_not_trade_through_then_entry_expires_and_legs_cancel(paper, approve):
    paper.submit(approve())
    result = paper.advance(bars(("AAA", D1, 101, 102, 100.5, 101.5)))
    assert (result.fills, result.expired) == ((), ("ord-1",))
    assert legs(paper) == [("entry", "expired"), ("stop_loss", "canceled"), ("take_profit", "canceled")]
    assert paper.account().buying_power == 100_000.0  # nothing reserved any more


def test_advance_when_bars_before_the_trading_date_then_order_waits_for_its_session(paper, approve):
    paper.submit(approve(trading_date=D2))
    assert paper.advance(bars(("AAA", D1, 99, 100, 98, 99))).fills == ()  # a cheaper day, but not its session
    assert paper.advance(bars(("AAA", D2, 101, 102, 99.5, 100.5))).fills[0].price == 100.0


def test_advance_when_entry_filled_then_position_carries_its_stop_and_marks_the_close(paper, approve):
    paper.submit(approve())
    paper.advance(bars(ENTRY_BAR))
    position = paper.positions()["AAA"]
    assert (position.qty, position.avg_entry, position.stop) == (10, 100.0, 95.0)
    account = paper.account()
    # cash 99,000 + 10 x close 100.50 = 100,005; buying power = equity - 1,005 held = 99,000
    assert (account.cash, account.equity, account.buying_power) == (99_000.0, 100_005.0, 99_000.0)


def test_advance_when_the_same_bars_come_twice_then_nothing_fills_twice(paper, approve):
    paper.submit(approve())
    day = bars(ENTRY_BAR)
    paper.advance(day)
    again = paper.advance(day)
    assert (again.sessions, again.skipped_sessions, again.fills) == ((), (D1,), ())
    assert len(paper.fills()) == 1


def test_advance_when_a_bar_is_bad_then_raises_and_changes_nothing(paper, approve):
    paper.submit(approve())
    before = (paper.path.read_bytes(), paper.last_session)
    with pytest.raises(BarValidationError, match="field 'close'"):
        paper.advance(bars(ENTRY_BAR, ("AAA", D2, 97, 98, 94.5, float("nan"))))
    assert (paper.path.read_bytes(), paper.last_session) == before


def test_state_when_a_new_broker_opens_the_folder_then_continues_the_same_book(tmp_path, paper, approve):
    paper.submit(approve())
    paper.advance(bars(ENTRY_BAR))
    restarted = PaperBroker(tmp_path / "state")
    assert restarted.account() == paper.account() and restarted.positions() == paper.positions()
    result = restarted.advance(bars(("AAA", D2, 97, 98, 94.5, 95.5)))  # the stop leg survived the restart
    assert [f.leg for f in result.fills] == [LegRole.STOP_LOSS]


@pytest.mark.parametrize("content", ["", "{not json", "[]", '{"format": 1}',
                                     json.dumps({"format": 1, "starting_cash": "1", "cash": "x", "seq": 0, "orders": {},
                                                 "positions": {}, "marks": {}, "fills": []})])
def test_state_when_file_corrupt_then_raises_and_keeps_the_file(tmp_path, content):
    state = tmp_path / "state"
    state.mkdir()
    (state / STATE_NAME).write_text(content)
    with pytest.raises(StateFileError, match=STATE_NAME):
        PaperBroker(state)
    assert (state / STATE_NAME).read_text() == content  # never silently reset


def test_submit_when_decision_rejected_then_raises_and_records_nothing(paper, gate):
    rejected = gate.decide(intent(qty=2.5), book())
    with pytest.raises(UnapprovedOrderError):
        paper.submit(rejected)
    assert not paper.path.exists() and paper.get_order("ord-1") is None


def test_submit_when_symbol_not_tradable_then_raises_and_records_nothing(tmp_path, approve):
    paper = PaperBroker(tmp_path / "state", symbols={"BBB"})
    with pytest.raises(UnknownSymbolError, match="field 'symbol' 'AAA'"):
        paper.submit(approve())
    assert paper.open_orders() == []


@pytest.mark.parametrize(("day", "error"), [("2024-03-09", MarketClosedError),  # a Saturday
                                            ("2024-03-04x", InvalidOrderError), ("", InvalidOrderError)])
def test_submit_when_trading_date_not_a_session_then_refused(paper, approve, day, error):
    with pytest.raises(error, match="field 'trading_date'"):
        paper.submit(approve(trading_date=day))
    assert paper.open_orders() == []


def test_submit_when_session_already_processed_then_refused(paper, approve):
    paper.advance(bars(("BBB", D2, 20, 21, 19, 20)))
    with pytest.raises(MarketClosedError, match="already been processed"):
        paper.submit(approve(trading_date=D1))


def test_submit_when_cash_short_then_insufficient_buying_power(tmp_path, approve):
    paper = PaperBroker(tmp_path / "state", starting_cash=500.0)
    with pytest.raises(InsufficientBuyingPowerError, match="needs 1,000.00 USD"):
        paper.submit(approve())  # the gate saw a 100,000 USD book; the paper account has 500


def test_cancel_when_entry_working_then_every_leg_cancelled(paper, approve):
    paper.submit(approve())
    record = paper.cancel("ord-1")
    assert not record.is_open and paper.open_orders() == []
    with pytest.raises(OrderNotFoundError):
        paper.cancel("nope")


def test_cancel_when_entry_filled_then_position_stays_without_a_stop(paper, approve):
    paper.submit(approve())
    paper.advance(bars(ENTRY_BAR))
    paper.cancel("ord-1")
    assert paper.positions()["AAA"].stop is None  # unprotected: the gate counts its whole value


def test_advance_when_market_entry_then_fills_at_the_open_plus_slippage(paper, approve):
    paper.submit(approve(order_type=OrderType.MARKET, stop=None, take_profit=None))
    # 101 x 1.0005 = 101.0505
    assert paper.advance(bars(ENTRY_BAR)).fills[0].price == 101.0505


@pytest.mark.parametrize(("kwargs", "setting"), [({"slippage_bps": -1.0}, "slippage_bps"),
                                                 ({"slippage_bps": float("nan")}, "slippage_bps"),
                                                 ({"starting_cash": 0.0}, "starting_cash")])
def test_paper_broker_when_config_bad_then_config_error_naming_it(tmp_path, kwargs, setting):
    with pytest.raises(ConfigError, match=setting):
        PaperBroker(tmp_path / "state", **kwargs)


def test_submit_when_id_taken_by_a_different_order_then_refused(tmp_path, paper, approve):
    paper.submit(approve())
    (tmp_path / "other_gate").mkdir()
    with PolicyGate(RiskLimits(), tmp_path / "other_gate", audit_fsync=False) as other:
        different = other.decide(intent(qty=20), book())
    with pytest.raises(DuplicateClientOrderIdError, match="qty 10 != 20"):
        paper.submit(different)
    assert paper.get_order("ord-1").qty == 10


def test_open_orders_when_read_between_writes_of_this_and_another_broker_then_each_read_sees_the_latest_book(
        tmp_path, paper, approve):
    other = PaperBroker(tmp_path / "state", slippage_bps=5.0, starting_cash=100_000.0)  # a second process's view
    paper.submit(approve())
    assert [o.client_order_id for o in paper.open_orders()] == ["ord-1"]
    assert paper.account().buying_power == 99_000.0  # 10 x 100.00 reserved
    other.cancel("ord-1")
    assert paper.open_orders() == [] and paper.account().buying_power == 100_000.0
    paper.submit(approve(intent(coid="ord-2")))
    other.advance(bars(ENTRY_BAR))  # ord-2 enters at 100.00: its stop works, its entry reserves nothing now
    assert [o.client_order_id for o in paper.open_orders()] == ["ord-2"]
    assert paper.positions()["AAA"].stop == 95.0 and paper.account().buying_power == 99_000.0
    paper.cancel("ord-2")  # the position stays, unprotected
    assert paper.open_orders() == [] and paper.positions()["AAA"].stop is None
