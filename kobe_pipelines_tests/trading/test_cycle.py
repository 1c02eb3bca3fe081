"""`run_trading_cycle` on the paper broker, without Dagster: the book through a split, a
corporate action that cannot be applied, and the signals' lineage on every record.

The world: a state folder, the paper broker (no slippage, 100,000 USD), the real gate and
drawdown monitor, and a scripted strategy. Sessions: Mon 2024-03-04 (S0, the position is
opened), Tue 03-05 (S1, the action), Wed 03-06 (S2, the orders' session).
"""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from kobe_pipelines.execution.corporate_actions import CorporateAction, CorporateActionError
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.execution.service import book_for_decisions, place_order
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines.orders import OrderIntent, Side, SignalLineage
from kobe_pipelines.risk.audit import read_audit_log
from kobe_pipelines.risk.drawdown import DrawdownMonitor
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.strategies import Strategy, StrategyRegistry
from kobe_pipelines.trading.cycle import run_trading_cycle
from kobe_pipelines.trading.lineage import stamp_signals

S0, S1, S2 = "2024-03-04", "2024-03-05", "2024-03-06"


class Scripted(Strategy):
    """Buys `buy` (symbol, qty, entry, stop) when set; otherwise trades nothing."""

    name = "scripted"
    buy: tuple | None = None

    def generate(self, ctx):
        if self.buy is None:
            return []
        symbol, qty, entry, stop = self.buy
        return [self.make_intent(ctx, symbol, Side.BUY, qty, entry, stop)]


def frame(rows) -> pd.DataFrame:
    out = pd.DataFrame([(*r, 1e6) for r in rows], columns=["symbol", "date", "open", "high", "low", "close", "volume"])
    out["date"] = pd.to_datetime(out["date"])
    return out


@pytest.fixture
def world(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    strategy = Scripted()
    registry = StrategyRegistry(builtins={"scripted": (lambda: strategy, Path(__file__))})
    gate = PolicyGate(RiskLimits(), state, audit_fsync=False)
    yield {"state": state, "paper": PaperBroker(state, slippage_bps=0.0), "gate": gate, "ledger": OrderLedger(state),
           "strategy": strategy, "registry": registry, "drawdown": DrawdownMonitor(state)}
    gate.close()
    registry.close()


def signals_of(day: str, scores: dict[str, float]) -> pd.DataFrame:
    scores_frame = pd.DataFrame({"symbol": list(scores), "date": pd.Timestamp(day), "score": list(scores.values())})
    return stamp_signals(scores_frame, model="kobe-ensemble", model_version="7", lake_version="v-test",
                         lake_hash="h-test")


def run(world, signals, raw, actions=()):
    return run_trading_cycle(signals=signals, bars=raw, raw_bars=raw, broker=world["paper"], gate=world["gate"],
                             ledger=world["ledger"], slippage=SlippageTracker(world["state"]), registry=world["registry"],
                             strategy_name="scripted", drawdown=world["drawdown"], actions=actions)


def open_long(world, qty: int, stop: float) -> None:
    paper, ledger = world["paper"], world["ledger"]
    order = OrderIntent("long-1", "AAA", "buy", qty, 100.0, stop, 130.0, trading_date=S0)
    assert place_order(order, lambda: book_for_decisions(paper, {"AAA": 100.0}, ledger), world["gate"], paper, ledger).sent
    paper.advance(frame([("AAA", S0, 101.0, 102.0, 98.5, 100.0)]))
    ledger.sync(paper)
    world["drawdown"].update(paper.account().equity, as_of=S0)


def test_run_when_a_held_position_splits_4_for_1_then_no_loss_no_drawdown_and_the_stop_moves(world):
    # 150 sh @ 100 = 15 % of equity, stop 90. The 4-for-1 split opens at 25.00: the old stop at 90
    # would have "filled" there, a loss of 150 x (100 - 25) = 11,250 USD, 11.25 % of equity.
    open_long(world, 150, 90.0)
    before = world["paper"].account().equity
    result = run(world, signals_of(S1, {"AAA": 0.5}), frame([("AAA", S1, 25.0, 25.0, 25.0, 25.0)]),
                 [CorporateAction("AAA", S1, Fraction(1), Fraction(4))])
    assert result.equity == pytest.approx(before) and result.drawdown.drawdown == pytest.approx(0.0)
    position = world["paper"].positions()["AAA"]
    assert (position.qty, position.stop) == (600, 22.5)
    assert [e.kind for e in result.book_events] == ["split"] and world["ledger"].positions("paper") == {"AAA": 600}
    assert result.protection[0].ok and result.protection[0].placed is None  # the moved leg is the book's stop


def test_run_when_a_corporate_action_cannot_be_applied_then_the_run_stops_naming_it(world):
    open_long(world, 10, 90.0)
    bad = CorporateAction("AAA", S1, cash_amount=Decimal("150"))
    with pytest.raises(CorporateActionError, match=r"AAA 2024-03-05 \(dividend 150 USD\)"):
        run(world, signals_of(S1, {"AAA": 0.5}), frame([("AAA", S1, 99.0, 99.0, 99.0, 99.0)]), [bad])
    assert world["ledger"].events()["event"].tolist().count("intent") == 1  # nothing decided after it


def test_run_when_signals_carry_a_lineage_then_intent_decision_ledger_and_broker_order_carry_it(world):
    world["strategy"].buy = ("AAA", 10, 100.0, 95.0)
    raw = frame([("AAA", S0, 100.0, 100.5, 99.5, 100.0), ("AAA", S1, 100.0, 100.5, 99.5, 100.0)])
    result = run(world, signals_of(S1, {"AAA": 0.25, "BBB": -0.5}), raw)
    [execution] = result.executions
    assert execution.sent, execution.reason
    expected = SignalLineage("kobe-ensemble", "7", "v-test", "h-test", result.lineage.signals_hash, S1, 0.25)
    assert execution.intent.lineage == expected
    events = world["ledger"].events(execution.intent.client_order_id)
    for kind in ("intent", "submitted"):
        detail = json.loads(events.loc[events["event"] == kind, "detail"].iloc[0])
        assert SignalLineage.from_dict(detail["lineage"]) == expected, kind
    decision = json.loads(events.loc[events["event"] == "decision", "detail"].iloc[0])
    assert SignalLineage.from_dict(decision["intent"]["lineage"]) == expected
    assert read_audit_log(world["state"])["lineage"].iloc[-1] == expected.to_dict()
    state = json.loads((world["state"] / "paper_broker.json").read_text())
    assert state["orders"][execution.intent.client_order_id]["lineage"] == expected.to_dict()
