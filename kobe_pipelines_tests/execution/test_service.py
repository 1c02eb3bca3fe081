import pandas as pd
import pytest

from kobe_pipelines.execution.errors import OrderStatusUnknownError, UnknownSymbolError
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.execution.service import book_for_decisions, book_from_broker, place_order, place_orders, settle
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


# -- exits, resuming, retrying ---------------------------------------------------------------------
D1, D2 = "2024-03-04", "2024-03-05"


def _bars(*rows) -> pd.DataFrame:
    return pd.DataFrame([(*r, 1e6) for r in rows], columns=["symbol", "date", "open", "high", "low", "close", "volume"])


def _long_with_bracket(tmp_path, gate, ledger, qty=100):
    paper = PaperBroker(tmp_path / "state", slippage_bps=0.0)
    done = place_order(intent(coid="long-1", qty=qty, entry=100.0, stop=95.0, take_profit=110.0, trading_date=D1),
                       lambda: book_for_decisions(paper, {"AAA": 100.0}, ledger), gate, paper, ledger)
    assert done.sent, done.reason
    paper.advance(_bars(("AAA", D1, 101.0, 102.0, 98.5, 99.0)))
    ledger.sync(paper)
    return paper


def test_place_orders_when_exit_of_a_bracketed_long_then_legs_cancelled_first_and_the_position_ends_flat(tmp_path, ledger, gate):
    from kobe_pipelines.risk.kill_switch import KillSwitch

    paper = _long_with_bracket(tmp_path, gate, ledger)
    KillSwitch(gate.state_dir).engage("test: exits still pass", "tests")
    exit_intent = intent(coid="exit-1", side="sell", qty=100, entry=99.0, stop=None, take_profit=None,
                         order_type="market", trading_date=D2)
    [done] = place_orders([exit_intent], gate, paper, ledger, lambda: book_for_decisions(paper, {"AAA": 99.0}, ledger))
    assert done.sent and done.decision.approved, done.reason
    events = ledger.events()
    since = events.iloc[events.index[(events["event"] == "intent") & (events["client_order_id"] == "exit-1")][0]:]
    steps = since.loc[since["event"].isin(["exit", "cancel", "decision"]), ["event", "client_order_id"]]
    # the bracket's legs are cancelled before the exit is decided
    assert steps.values.tolist() == [["exit", "exit-1"], ["cancel", "long-1"], ["decision", "exit-1"]]
    # the next bar opens at 97 and trades down to 94: through the old stop at 95, which no longer exists
    result = paper.advance(_bars(("AAA", D2, 97.0, 97.5, 94.0, 96.0)))
    assert [(f.client_order_id, f.price) for f in result.fills] == [("exit-1", 97.0)]
    assert paper.positions() == {}  # flat, never short


def test_place_order_when_the_broker_refused_then_the_same_id_again_is_refused_until_retried(tmp_path, ledger, gate):
    refusing = PaperBroker(tmp_path / "state", symbols={"BBB"})
    first = place_order(intent(), book(), gate, refusing, ledger)
    assert isinstance(first.error, UnknownSymbolError)
    again = place_order(intent(), book(), gate, PaperBroker(tmp_path / "state"), ledger)
    assert not again.approved and [c.name for c in again.decision.failures] == ["duplicate_id"]
    retried = place_order(intent(), book(), gate, PaperBroker(tmp_path / "state"), ledger, retry=True)
    assert retried.sent and retried.resumed == "retry of an order the broker refused"
    assert next(c for c in retried.decision.checks if c.name == "duplicate_id").reason.startswith("retry of ")


class _Crash(BaseException):
    """Stands for the process dying at a step (the kill-9 tests do it with real processes)."""


@pytest.mark.parametrize("step", ["intent_recorded", "decision_logged", "submission_recorded", "sent", "acked"])
def test_place_order_when_interrupted_at_a_step_then_the_same_intent_again_ends_with_exactly_one_order(
        tmp_path, ledger, monkeypatch, step):
    from kobe_pipelines.execution import service
    from kobe_pipelines.risk.gate import PolicyGate
    from kobe_pipelines.risk.limits import RiskLimits
    from kobe_pipelines_tests.execution.conftest import NOW

    paper = PaperBroker(tmp_path / "state")

    def crash(name: str) -> None:
        if name == step:
            raise _Crash(name)

    monkeypatch.setattr(service, "checkpoint", crash)
    with PolicyGate(RiskLimits(), tmp_path / "state", clock=lambda: NOW) as first_gate, pytest.raises(_Crash):
        place_order(intent(), lambda: book_for_decisions(paper, {"AAA": 100.0}, ledger), first_gate, paper, ledger)
    monkeypatch.setattr(service, "checkpoint", lambda name: None)
    with PolicyGate(RiskLimits(), tmp_path / "state", clock=lambda: NOW) as restarted:  # a new process
        done = place_order(intent(), lambda: book_for_decisions(paper, {"AAA": 100.0}, ledger), restarted, paper, ledger)
    assert done.sent and done.error is None
    assert [o.client_order_id for o in PaperBroker(tmp_path / "state").open_orders()] == ["ord-1"]
    assert ledger.order_state("ord-1") in ("ack", "status")
