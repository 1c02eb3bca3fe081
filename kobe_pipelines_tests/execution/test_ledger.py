import datetime as dt
import sqlite3

import pandas as pd
import pytest

from kobe_pipelines.errors import StateFileError
from kobe_pipelines.execution.broker import LegRecord, LegRole, OrderClass, OrderRecord, OrderStatus
from kobe_pipelines.execution.ledger import LEDGER_NAME, OrderLedger
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.risk.types import Side, UnapprovedOrderError
from kobe_pipelines_tests.execution.conftest import book, intent

WHEN = dt.datetime(2024, 3, 4, 20, 0, tzinfo=dt.timezone.utc)  # 15:00 in New York: session 2024-03-04


def record(entry_qty=0, entry_avg=None, entry_status=OrderStatus.NEW, stop_qty=0, stop_avg=None,
           stop_status=OrderStatus.HELD, side=Side.BUY) -> OrderRecord:
    exit_side = Side.SELL if side is Side.BUY else Side.BUY
    return OrderRecord("ord-1", "b-1", "AAA", side, 10, OrderClass.OTO, WHEN, (
        LegRecord(LegRole.ENTRY, side, 100.0, entry_status, entry_qty, entry_avg, WHEN if entry_qty else None),
        LegRecord(LegRole.STOP_LOSS, exit_side, 95.0 if side is Side.BUY else 105.0, stop_status, stop_qty, stop_avg,
                  WHEN if stop_qty else None)))


@pytest.fixture
def ledger(tmp_path) -> OrderLedger:
    return OrderLedger(tmp_path / "state")


def test_record_submission_when_decision_rejected_then_raises_and_writes_nothing(ledger, gate):
    rejected = gate.decide(intent(stop=101.0), book())
    with pytest.raises(UnapprovedOrderError):
        ledger.record_submission(rejected, "paper")
    assert ledger.events().empty


def test_record_submission_when_approved_then_order_is_open_and_pending(ledger, approve):
    ledger.record_submission(approve(), "paper")
    assert ledger.open_order_ids("paper") == {"ord-1"}
    assert ledger.events()[["event", "status", "qty", "price"]].values.tolist() == [["submitted", "pending", 10, 100.0]]


def test_sync_order_when_partial_fill_grows_then_records_only_the_new_shares_at_their_price(ledger, approve):
    ledger.record_submission(approve(stop=95.0, take_profit=None), "alpaca")
    first = ledger.sync_order(record(4, 100.0, OrderStatus.PARTIALLY_FILLED), "alpaca")
    second = ledger.sync_order(record(10, 100.06, OrderStatus.FILLED, stop_status=OrderStatus.NEW), "alpaca")
    # the second 6 shares: (10 x 100.06 - 4 x 100.00) / 6 = (1000.6 - 400) / 6 = 100.10
    assert [(f.qty, f.price) for f in first] == [(4, 100.0)]
    assert [(f.qty, f.price, f.session) for f in second] == [(6, pytest.approx(100.10), "2024-03-04")]
    assert ledger.sync_order(record(10, 100.06, OrderStatus.FILLED, stop_status=OrderStatus.NEW), "alpaca") == []
    assert ledger.positions("alpaca") == {"AAA": 10}


def test_sync_order_when_stop_fills_then_order_closes_with_realized_pnl(ledger, approve):
    ledger.record_submission(approve(stop=95.0, take_profit=None), "paper")
    ledger.sync_order(record(10, 100.0, OrderStatus.FILLED, 10, 94.9525, OrderStatus.FILLED), "paper")
    row = ledger.orders().iloc[0]
    # (94.9525 - 100) x 10 = -50.475
    assert (row["status"], row["broker_status"], row["is_open"]) == ("stopped out", "filled", False)
    assert row["realized_pnl"] == pytest.approx(-50.475)
    assert ledger.open_order_ids("paper") == set() and ledger.positions("paper") == {}


def test_orders_when_short_covered_lower_then_realized_pnl_is_a_gain(ledger, approve):
    ledger.record_submission(approve(side="sell", entry=100.0, stop=105.0, take_profit=None), "paper")
    ledger.sync_order(record(10, 100.0, OrderStatus.FILLED, 10, 98.0, OrderStatus.FILLED, side=Side.SELL), "paper")
    assert ledger.orders().iloc[0]["realized_pnl"] == pytest.approx(20.0)  # (100 - 98) x 10


def test_sync_order_when_nothing_changed_then_no_new_event(ledger, approve):
    ledger.record_submission(approve(stop=95.0, take_profit=None), "paper")
    ledger.sync_order(record(), "paper")
    count = len(ledger.events())
    ledger.sync_order(record(), "paper")
    assert len(ledger.events()) == count


# ---- reconciliation against the paper broker ---------------------------------------------------


def bars(*rows) -> pd.DataFrame:
    return pd.DataFrame([(*r, 1e6) for r in rows], columns=["symbol", "date", "open", "high", "low", "close", "volume"])


@pytest.fixture
def paper(tmp_path) -> PaperBroker:
    return PaperBroker(tmp_path / "state")


def test_reconcile_when_broker_has_an_order_the_ledger_never_saw_then_reported(ledger, paper, approve):
    paper.submit(approve())
    report = ledger.reconcile(paper)
    assert report.unknown_orders == ("ord-1",) and not report.ok


def test_reconcile_when_ledger_sent_an_order_the_broker_never_got_then_reported_missing(ledger, paper, approve):
    ledger.record_submission(approve(), "paper")  # e.g. the process died before the request left
    assert ledger.reconcile(paper).missing_orders == ("ord-1",)


def test_reconcile_when_order_closed_at_broker_but_not_synced_then_stale_and_position_drift(ledger, paper, approve):
    decision = approve()
    ledger.record_submission(decision, "paper")
    ledger.record_ack(paper.submit(decision))
    paper.advance(bars(("AAA", "2024-03-04", 101, 102, 99.5, 100.5)))  # entry fills; legs working: still open
    report = ledger.reconcile(paper)
    assert report.position_diffs == (("AAA", 0, 10),) and report.stale_orders == ()
    paper.cancel("ord-1")
    assert ledger.reconcile(paper).stale_orders == (("ord-1", "filled"),)


def test_reconcile_when_synced_then_ok_and_the_report_is_recorded(ledger, paper, approve):
    decision = approve()
    ledger.record_submission(decision, "paper")
    ledger.record_ack(paper.submit(decision))
    paper.advance(bars(("AAA", "2024-03-04", 101, 102, 99.5, 100.5)))
    ledger.sync(paper)
    report = ledger.reconcile(paper)
    assert report.ok and report.lines() == ["paper: ledger and broker agree"]
    assert ledger.events()["event"].tolist()[-1] == "reconcile"


def test_ledger_when_file_is_not_a_database_then_state_file_error(tmp_path):
    (tmp_path / LEDGER_NAME).write_text("garbage")
    with pytest.raises(StateFileError, match=LEDGER_NAME):
        OrderLedger(tmp_path)


def test_ledger_when_table_has_another_shape_then_state_file_error(tmp_path):
    with sqlite3.connect(tmp_path / LEDGER_NAME) as con:
        con.execute("CREATE TABLE events (seq INTEGER, at TEXT)")
    with pytest.raises(StateFileError, match=LEDGER_NAME):
        OrderLedger(tmp_path)


def test_events_when_a_new_ledger_opens_the_folder_then_they_persist(tmp_path, approve):
    OrderLedger(tmp_path).record_submission(approve(), "paper")
    events = OrderLedger(tmp_path).events()
    assert events["client_order_id"].tolist() == ["ord-1"]
    assert dt.datetime.fromisoformat(events["at"].iloc[0]).tzinfo == dt.timezone.utc


def test_record_decision_when_rejected_then_logged_with_its_status(ledger, gate):
    decision = gate.decide(intent(qty=-1), book())
    ledger.record_decision(decision, "paper")
    assert ledger.events()[["event", "status", "decision_id"]].values.tolist() == [
        ["decision", "rejected", decision.decision_id]]


MARKS = {"AAA": 100.0, "BBB": 100.0, "CCC": 100.0}


def _states_from_scratch(path, broker: str) -> tuple[set[str], set[str]]:
    """Open and awaiting-answer order ids at `broker`, from every row: each order's highest-seq
    order-state event, read with one query over the whole table."""
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT client_order_id, broker, event, is_open FROM events e WHERE seq = (SELECT max(seq) "
                           "FROM events WHERE client_order_id = e.client_order_id AND event IN "
                           "('submitted', 'ack', 'refused', 'unknown', 'status', 'cancel'))").fetchall()
    return ({c for c, b, _, o in rows if b == broker and o}, {c for c, b, e, _ in rows if b == broker and e == "submitted"})


def test_open_order_ids_when_another_ledger_object_writes_between_reads_then_each_read_sees_every_row(tmp_path, gate):
    reader, writer = OrderLedger(tmp_path / "state"), OrderLedger(tmp_path / "state")  # a second process's view
    decisions = {c: gate.decide(intent(coid=c, symbol=s), book(MARKS)) for c, s in (("o-1", "AAA"), ("o-2", "BBB"), ("o-3", "CCC"))}
    writer.record_submission(decisions["o-1"], "paper")
    writer.record_submission(decisions["o-2"], "paper")
    assert reader.open_order_ids("paper") == {"o-1", "o-2"}
    assert set(reader.unsent_approvals("paper")) == {"o-1", "o-2"}
    writer.record_broker_error("o-1", "paper", RuntimeError("no"), outcome_unknown=False)  # refused: closed
    writer.record_submission(decisions["o-3"], "alpaca")
    writer.record_broker_error("o-3", "alpaca", RuntimeError("lost"), outcome_unknown=True)  # unknown: stays open
    assert reader.open_order_ids("paper") == {"o-2"} and reader.open_order_ids("alpaca") == {"o-3"}
    assert set(reader.unsent_approvals("paper")) == {"o-2"} and reader.unsent_approvals("alpaca") == {}
    for broker in ("paper", "alpaca"):
        assert (reader.open_order_ids(broker), set(reader.unsent_approvals(broker))) == \
            _states_from_scratch(reader.path, broker)


def test_open_order_ids_when_ledger_file_replaced_by_another_then_reads_the_new_file_from_its_start(tmp_path, gate):
    ledger = OrderLedger(tmp_path / "state")
    ledger.record_submission(gate.decide(intent(coid="o-1"), book(MARKS)), "paper")
    ledger.record_submission(gate.decide(intent(coid="o-2", symbol="BBB"), book(MARKS)), "paper")
    assert ledger.open_order_ids("paper") == {"o-1", "o-2"}
    other = OrderLedger(tmp_path / "other")  # a different ledger with one order and a lower highest seq
    other.record_submission(gate.decide(intent(coid="o-9", symbol="CCC"), book(MARKS)), "paper")
    (tmp_path / "other" / LEDGER_NAME).replace(ledger.path)
    assert ledger.open_order_ids("paper") == {"o-9"}
