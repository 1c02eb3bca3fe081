import pandas as pd
import pytest

from kobe_pipelines.execution.errors import OrderStatusUnknownError, UnknownSymbolError
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.execution.service import book_from_broker, place_order, settle
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines_tests.execution.conftest import book, intent


@pytest.fixture
def ledger(tmp_path) -> OrderLedger:
    return OrderLedger(tmp_path / "state")


@pytest.fixture
def paper(tmp_path) -> PaperBroker:
    return PaperBroker(tmp_path / "state")


def events(ledger) -> list[str]:
    return ledger.events()["event"].tolist()


def test_place_order_when_approved_then_intent_decision_submission_ack_in_that_order(paper, ledger, gate):
    done = place_order(intent(), book_from_broker(paper, {"AAA": 100.0}), gate, paper, ledger)
    assert done.sent and done.ack.created
    assert events(ledger) == ["intent", "decision", "submitted", "ack"]


def test_place_order_when_gate_rejects_then_nothing_sent_or_recorded_as_sent(paper, ledger, gate):
    done = place_order(intent(qty=-10), book(), gate, paper, ledger)
    assert not done.decision.approved and not done.sent
    assert events(ledger) == ["intent", "decision"] and paper.open_orders() == []
    assert "field 'qty' must be a positive number" in done.decision.reason


def test_place_order_when_broker_refuses_then_recorded_as_refused_and_closed(tmp_path, ledger, gate):
    paper = PaperBroker(tmp_path / "state", symbols={"BBB"})
    done = place_order(intent(), book(), gate, paper, ledger)
    assert isinstance(done.error, UnknownSymbolError)
    assert events(ledger) == ["intent", "decision", "submitted", "refused"]
    assert ledger.open_order_ids("paper") == set()


def test_place_order_when_alpaca_answer_lost_then_recorded_unknown_and_still_open(fake_alpaca, alpaca, ledger, gate):
    fake_alpaca.post_script = ["slow-drop"]
    done = place_order(intent(), book(), gate, alpaca, ledger)
    assert isinstance(done.error, OrderStatusUnknownError)
    assert events(ledger)[-1] == "unknown" and ledger.open_order_ids("alpaca") == {"ord-1"}


def test_settle_when_paper_fills_then_ledger_and_slippage_record_them_once(tmp_path, paper, ledger, gate):
    place_order(intent(), book_from_broker(paper, {"AAA": 100.0}), gate, paper, ledger)
    paper.advance(pd.DataFrame([("AAA", "2024-03-04", 99.0, 100.5, 98.5, 100.0, 1e6)],
                               columns=["symbol", "date", "open", "high", "low", "close", "volume"]))
    tracker = SlippageTracker(tmp_path / "state")
    fills = settle(paper, ledger, tracker)
    # opened below the limit: 99 x 1.0005 = 99.0495 vs 100.00 expected -> (99.0495 - 100)/100 x 1e4 = -95.05 bps
    assert [(f.qty, f.price) for f in fills] == [(10, 99.0495)]
    assert tracker.records()["slippage_bps"].tolist() == [pytest.approx(-95.05)]
    assert settle(paper, ledger, tracker) == [] and len(tracker.records()) == 1
