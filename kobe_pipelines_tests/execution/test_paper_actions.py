"""The paper broker's book through splits, dividends and delistings, worked by hand (no slippage).

Every position is opened on Mon 2024-03-04 (D1) by a limit order at 100.00 that the bar trades
through (open 101 / 99 for a buy / sell, fills at the limit), and D1 closes at 99.00. The action
takes effect on Tue 03-05 (D2), whose bar sits exactly at 99.00 / r (or 99.00 - dividend): no
market move, so any change of equity on D2 would be P&L made up by the action itself.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pandas as pd
import pytest

from kobe_pipelines.data.adjustments import apply_factors, compute_factors
from kobe_pipelines.execution.broker import LegRole, OrderStatus
from kobe_pipelines.execution.corporate_actions import CorporateAction, CorporateActionError
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.execution.service import book_for_decisions
from kobe_pipelines.orders import OrderIntent, Side
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines_tests.execution.conftest import NOW

D1, D2, D3, D4, D5, D6 = "2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08", "2024-03-11"


def bars(*rows) -> pd.DataFrame:
    return pd.DataFrame([(*r, 1e6) for r in rows], columns=["symbol", "date", "open", "high", "low", "close", "volume"])


def flat(symbol: str, day: str, price: float) -> tuple:
    return (symbol, day, price, price, price, price)


@pytest.fixture
def paper(tmp_path) -> PaperBroker:
    return PaperBroker(tmp_path / "state", slippage_bps=0.0, starting_cash=100_000.0)


@pytest.fixture
def gate(tmp_path):
    (tmp_path / "state").mkdir(exist_ok=True)
    with PolicyGate(RiskLimits(), tmp_path / "state", clock=lambda: NOW, audit_fsync=False) as g:
        yield g


def open_position(paper: PaperBroker, gate: PolicyGate, side: str, qty: int = 101, stop=None, take_profit=None,
                  coid: str = "open-1") -> None:
    order = OrderIntent(coid, "AAA", side, qty, 100.0, stop, take_profit, trading_date=D1)
    decision = gate.decide(order, book_for_decisions(paper, {"AAA": 100.0}))
    assert decision.approved, decision.reason
    paper.submit(decision)
    entry_bar = ("AAA", D1, 101.0, 102.0, 98.5, 99.0) if side == "buy" else ("AAA", D1, 99.0, 101.5, 98.5, 99.0)
    result = paper.advance(bars(entry_bar))
    assert [(f.leg, f.price) for f in result.fills] == [(LegRole.ENTRY, 100.0)]


SPLITS = {  # name: (split_from, split_to, D2 price = 99 / r)
    "4-for-1": (1, 4, 24.75),
    "1-for-10": (10, 1, 990.0),
    "3-for-2": (2, 3, 66.0),
}


@pytest.mark.parametrize("side, split, qty, avg, stop, target, in_lieu", [
    # long 101 sh @ 100, stop 95.01, take-profit 110.01
    ("buy", "4-for-1", 404, "25", "23.76", "27.50", "0"),          # 95.01/4 = 23.7525 up, 110.01/4 = 27.5025 down
    ("buy", "1-for-10", 10, "1000", "950.10", "1100.10", "99.00"),  # 10.1 sh: 0.1 x 990 paid
    ("buy", "3-for-2", 151, str(Decimal(200) / Decimal(3)), "63.34", "73.34", "33.00"),  # 151.5 sh: 0.5 x 66 paid
    # short 101 sh @ 100, stop 105.01, take-profit 90.01
    ("sell", "4-for-1", -404, "25", "26.25", "22.51", "0"),        # 26.2525 down, 22.5025 up
    ("sell", "1-for-10", -10, "1000", "1050.10", "900.10", "-99.00"),
    ("sell", "3-for-2", -151, str(Decimal(200) / Decimal(3)), "70.00", "60.01", "-33.00"),  # 70.00666 down, 60.00666 up
])
def test_advance_when_a_held_position_splits_then_equity_unchanged_and_shares_prices_and_legs_exact(
        paper, gate, side, split, qty, avg, stop, target, in_lieu):
    legs = (95.01, 110.01) if side == "buy" else (105.01, 90.01)
    open_position(paper, gate, side, stop=legs[0], take_profit=legs[1])
    before = paper.account()
    split_from, split_to, price = SPLITS[split]
    action = CorporateAction("AAA", D2, Fraction(split_from), Fraction(split_to))
    result = paper.advance(bars(flat("AAA", D2, price)), [action])
    after = paper.account()
    assert after.equity == pytest.approx(before.equity, abs=1e-9)  # no P&L from the split itself
    assert after.cash == pytest.approx(before.cash + float(Decimal(in_lieu)), abs=1e-9)
    position = paper.positions()["AAA"]
    assert (position.qty, Decimal(repr(position.avg_entry))) == (qty, Decimal(repr(float(Decimal(avg)))))
    order = paper.get_order("open-1")
    stop_leg, target_leg = order.leg(LegRole.STOP_LOSS), order.leg(LegRole.TAKE_PROFIT)
    assert (Decimal(repr(stop_leg.price)), Decimal(repr(target_leg.price))) == (Decimal(stop), Decimal(target))
    assert order.leg_qty(stop_leg) == order.leg_qty(target_leg) == abs(qty)
    assert position.stop == float(Decimal(stop))  # the moved stop still protects the whole position
    [event] = result.book_events
    assert (event.kind, event.session, event.qty_before, event.qty_after, event.cash) == (
        "split", D2, 101 if side == "buy" else -101, qty, Decimal(in_lieu))


def test_advance_when_a_split_meets_an_open_entry_then_the_entry_is_cancelled_with_the_split_as_reason(paper, gate):
    order = OrderIntent("entry-d2", "AAA", "buy", 10, 100.0, 95.0, 110.0, trading_date=D2)
    paper.submit(gate.decide(order, book_for_decisions(paper, {"AAA": 100.0})))
    paper.advance(bars(flat("AAA", D2, 25.0)), [CorporateAction("AAA", D2, Fraction(1), Fraction(4))])
    record = paper.get_order("entry-d2")
    assert [leg.status for leg in record.legs] == [OrderStatus.CANCELED] * 3
    assert paper.positions() == {} and paper.account().cash == 100_000.0  # never filled in pre-split shares
    state = (paper.state_dir / "paper_broker.json").read_text()
    assert "split 4:1 on 2024-03-05: decided in pre-split shares" in state


@pytest.mark.parametrize("side, cash", [("buy", 50.0), ("sell", -50.0)])
def test_advance_when_ex_dividend_date_then_a_long_is_credited_and_a_short_debited_equity_unchanged(
        paper, gate, side, cash):
    open_position(paper, gate, side, qty=100)
    before = paper.account()
    result = paper.advance(bars(flat("AAA", D2, 98.50)), [CorporateAction("AAA", D2, cash_amount=Decimal("0.50"))])
    after = paper.account()
    assert after.cash == pytest.approx(before.cash + cash, abs=1e-9)  # 100 sh x 0.50 USD
    assert after.equity == pytest.approx(before.equity, abs=1e-9)  # the price drop is the cash paid
    assert [(e.kind, e.cash) for e in result.book_events] == [("dividend", Decimal(str(cash)).quantize(Decimal("0.00")))]


@pytest.mark.parametrize("action, match", [
    (CorporateAction("AAA", D2, cash_amount=Decimal("99.00")), r"AAA 2024-03-05 \(dividend 99.00 USD\).*previous close 99"),
    (CorporateAction("AAA", D2, Fraction(1), Fraction(0)), r"AAA 2024-03-05 .*split ratio must be > 0"),
])
def test_advance_when_an_action_cannot_be_applied_then_error_naming_it_and_the_book_unchanged(paper, gate, action, match):
    open_position(paper, gate, "buy", qty=100)
    before = (paper.account(), paper.positions(), paper.last_session)
    with pytest.raises(CorporateActionError, match=match):
        paper.advance(bars(flat("AAA", D2, 98.5)), [action])
    assert (paper.account(), paper.positions(), paper.last_session) == before


def test_advance_when_split_and_dividend_then_equity_curve_equals_mark_to_market_on_total_return_prices(paper, gate):
    # raw closes: D1 99, D2 101, D3 2-for-1 split -> 50.25, D4 51, D5 ex-dividend 0.40 -> 50.70, D6 51.30
    closes = {D1: 99.0, D2: 101.0, D3: 50.25, D4: 51.0, D5: 50.70, D6: 51.30}
    open_position(paper, gate, "buy", qty=100)  # no legs: nothing exits
    actions = [CorporateAction("AAA", D3, Fraction(1), Fraction(2)), CorporateAction("AAA", D5, cash_amount=Decimal("0.40"))]
    equity, shares = {D1: paper.account().equity}, {D1: 100}
    for day in (D2, D3, D4, D5, D6):
        paper.advance(bars(flat("AAA", day, closes[day])), actions)
        equity[day], shares[day] = paper.account().equity, paper.positions()["AAA"].qty
    # the independent measure: the lake's own factor code, Quandl convention (total return on the
    # ex-date (close_ex + D) / close_prev), on the same raw closes
    raw = bars(*(flat("AAA", d, c) for d, c in closes.items()))
    raw["date"] = pd.to_datetime(raw["date"])
    splits = pd.DataFrame({"symbol": ["AAA"], "execution_date": [pd.Timestamp(D3)], "split_from": [1.0], "split_to": [2.0]})
    dividends = pd.DataFrame({"symbol": ["AAA"], "ex_dividend_date": [pd.Timestamp(D5)], "cash_amount": [0.40]})
    adjusted = apply_factors(raw, compute_factors(raw, splits, dividends, convention="quandl").factors, "total")
    adj = dict(zip(raw["date"].dt.strftime("%Y-%m-%d"), adjusted["close"]))
    days = list(closes)
    for prev, day in zip(days, days[1:]):
        value = shares[prev] * closes[prev]  # the position at the previous close, raw
        assert equity[day] - equity[prev] == pytest.approx(value * (adj[day] / adj[prev] - 1), abs=1e-6), day
    assert shares[D6] == 200 and equity[D6] - equity[D1] == pytest.approx(200 * 51.30 + 80 - 100 * 99.0, abs=1e-9)


def test_ledger_when_paper_book_events_recorded_then_its_positions_follow_the_split_and_agree(paper, gate, tmp_path):
    ledger = OrderLedger(tmp_path / "state")
    order = OrderIntent("open-1", "AAA", "buy", 101, 100.0, 95.01, 110.01, trading_date=D1)
    decision = gate.decide(order, book_for_decisions(paper, {"AAA": 100.0}))
    ledger.record_submission(decision, "paper")
    paper.submit(decision)
    paper.advance(bars(("AAA", D1, 101.0, 102.0, 98.5, 99.0)))
    ledger.sync(paper)
    paper.advance(bars(flat("AAA", D2, 66.0)), [CorporateAction("AAA", D2, Fraction(2), Fraction(3))])
    assert ledger.record_book_events(paper.book_events(), "paper")[0].qty_after == 151
    assert ledger.record_book_events(paper.book_events(), "paper") == []  # each event once
    assert ledger.positions("paper") == {"AAA": 151}
    assert ledger.reconcile(paper).ok


# -- delisting and stale marks -----------------------------------------------------------------------------
def test_advance_when_bars_stop_then_stale_first_and_delisted_after_n_sessions_at_the_last_close(tmp_path, gate):
    paper = PaperBroker(tmp_path / "state", slippage_bps=0.0, delisted_after=3)
    open_position(paper, gate, "buy", qty=100, stop=95.0, take_profit=110.0)
    paper.advance(bars(flat("AAA", D2, 98.0), flat("BBB", D2, 20.0)))  # AAA's last bar
    cash = paper.account().cash
    paper.advance(bars(flat("BBB", D3, 20.0)))
    assert paper.stale_marks() == {"AAA": D2} and paper.positions()["AAA"].qty == 100  # a halt is not a delisting
    assert paper.account().equity == pytest.approx(cash + 100 * 98.0)  # valued at its last mark
    paper.advance(bars(flat("BBB", D4, 20.0)))
    assert "AAA" in paper.positions()
    result = paper.advance(bars(flat("BBB", D5, 20.0)))  # the third session without a bar
    assert paper.positions() == {} and paper.stale_marks() == {}
    assert paper.account().cash == pytest.approx(cash + 100 * 98.0)  # closed at the last raw close
    [event] = result.book_events
    assert (event.kind, event.session, event.qty_before, event.price) == ("delisting", D3, 100, Decimal("98.0"))
    assert all(leg.status is not OrderStatus.NEW for leg in paper.get_order("open-1").legs)


def test_gate_when_a_held_mark_is_stale_or_the_symbol_delisted_then_new_entries_still_pass_heat(tmp_path, gate):
    paper = PaperBroker(tmp_path / "state", slippage_bps=0.0, delisted_after=2)
    open_position(paper, gate, "buy", qty=100, stop=95.0, take_profit=110.0)
    paper.advance(bars(flat("BBB", D2, 20.0)))
    stale = paper.stale_marks()
    book = book_for_decisions(paper, {"BBB": 20.0}, stale_marks=stale)  # AAA's mark: the broker's last close
    stale_day = gate.decide(OrderIntent("bbb-1", "BBB", "buy", 10, 20.0, 19.0, trading_date=D3), book)
    heat = next(c for c in stale_day.checks if c.name == "heat")
    assert stale_day.approved and "stale marks: AAA (last bar 2024-03-04)" in heat.reason
    paper.advance(bars(flat("BBB", D3, 20.0)))  # delisted now
    after = gate.decide(OrderIntent("bbb-2", "BBB", "buy", 10, 20.0, 19.0, trading_date=D4),
                        book_for_decisions(paper, {"BBB": 20.0}))
    assert after.approved and "AAA" not in paper.positions()
