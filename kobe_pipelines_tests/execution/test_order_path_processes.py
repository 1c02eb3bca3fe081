"""The order path with real processes: two racing for the same caps, and kill -9 at each step.

Racing processes start together at a barrier (no sleeping); each decides and sends its orders
through `place_order` on one shared state folder and paper broker. The kill tests run `kobe order
bracket` in a child process that SIGKILLs itself at a named step of the order path
(`execution.service.STEPS`), then run the same command again and check that exactly one order
exists at the broker.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.execution.service import STEPS

SPAWN = multiprocessing.get_context("spawn")
MARKS = {"AAA": 100.0, **{f"S{i:02d}": 10.0 for i in range(20)}}


def _race(state: str, limits: dict, intents: list[dict], barrier, results) -> None:
    """One racing process (spawned): its own gate, ledger and paper broker on the shared state."""
    from kobe_pipelines.execution.service import book_for_decisions, place_order
    from kobe_pipelines.orders import OrderIntent
    from kobe_pipelines.risk.gate import PolicyGate
    from kobe_pipelines.risk.limits import RiskLimits

    paper, ledger = PaperBroker(state, slippage_bps=0.0), OrderLedger(state)
    with PolicyGate(RiskLimits(**limits), state) as gate:
        barrier.wait()
        for fields in intents:
            try:
                done = place_order(OrderIntent(**fields), lambda: book_for_decisions(paper, MARKS, ledger), gate, paper,
                                   ledger)
            except Exception as exc:  # reported, so the test fails instead of waiting
                results.put((fields["client_order_id"], None, None, [repr(exc)]))
                continue
            failed = [c.name for c in done.decision.failures] if done.decision is not None else []
            results.put((fields["client_order_id"], done.approved, done.sent, failed))


def _run_race(state: Path, limits: dict, batches: list[list[dict]]) -> list[tuple]:
    barrier, results = SPAWN.Barrier(len(batches)), SPAWN.Queue()
    workers = [SPAWN.Process(target=_race, args=(str(state), limits, batch, barrier, results)) for batch in batches]
    for worker in workers:
        worker.start()
    found = [results.get(timeout=120) for _ in range(sum(len(b) for b in batches))]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert all(ok is not None for _, ok, _, _ in found), found
    return found


def _intent(coid: str, symbol: str = "AAA", qty: int = 40, entry: float = 100.0, stop: float = 98.0) -> dict:
    return {"client_order_id": coid, "symbol": symbol, "side": "buy", "qty": qty, "entry": entry, "stop": stop,
            "take_profit": None, "trading_date": "2024-03-04", "strategy": "manual"}


@pytest.fixture
def state(tmp_path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir()
    return folder


def test_two_processes_racing_for_one_symbol_then_the_position_cap_counts_both_and_holds(state):
    # 40 sh @ 100 = 4 % of 100,000 USD each; the 20 % cap fits five; six are sent, three per process
    found = _run_race(state, {}, [[_intent(f"p{p}-{i}") for i in range(3)] for p in range(2)])
    approved = [row for row in found if row[1]]
    assert len(approved) == 5 and all(sent for _, _, sent, _ in approved)
    assert [failed for _, ok, _, failed in found if not ok] == [["position_size"]]
    assert len(PaperBroker(state).open_orders()) == 5


def test_two_processes_racing_past_the_rate_limit_then_every_process_approvals_count(state):
    # at most 5 approvals a minute; 14 orders on 14 symbols (small: no other cap binds), 7 per process
    batches = [[_intent(f"r{p}-{i}", symbol=f"S{p * 7 + i:02d}", qty=1, entry=10.0, stop=9.0) for i in range(7)]
               for p in range(2)]
    found = _run_race(state, {"max_orders_per_minute": 5}, batches)
    assert sum(1 for row in found if row[1]) == 5
    assert {tuple(failed) for _, ok, _, failed in found if not ok} == {("rate_limit",)}


# -- kill -9 at each step --------------------------------------------------------------------------------
KILLER = """
import os, signal, sys
from kobe_pipelines.execution import service
target = sys.argv[1]
def checkpoint(step):
    if step == target:
        os.kill(os.getpid(), signal.SIGKILL)
service.checkpoint = checkpoint
{main}
"""
RUN_CLI = "from kobe_pipelines.cli.order_cmds import order\norder.main(args=sys.argv[2:], prog_name='kobe order')"
ORDER = ["bracket", "--symbol", "AAA", "--side", "buy", "--qty", "10", "--entry", "100", "--stop", "95",
         "--take-profit", "110", "--trading-date", "2024-03-04", "--replay", "--last-price", "100"]


def _child(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ}, cwd=Path(__file__).resolve().parents[2])


@pytest.mark.parametrize("step", STEPS)
def test_order_bracket_when_killed_at_a_step_then_the_same_command_again_leaves_exactly_one_order(state, step):
    args = [*ORDER, "--state", str(state)]
    killed = _child(KILLER.format(main=RUN_CLI), step, *args)
    assert killed.returncode == -9, killed.stderr
    listing = _child("from kobe_pipelines.cli.order_cmds import orders\nimport sys\n"
                     "orders.main(args=sys.argv[1:], prog_name='kobe orders')", "--state", str(state))
    assert "manual-20240304-AAA-b-" in listing.stdout  # every intent is listed, sent or not
    again = _child(KILLER.format(main=RUN_CLI), "none", *args)
    assert again.returncode == 0, again.stdout + again.stderr
    orders = PaperBroker(state).open_orders()
    assert len(orders) == 1 and orders[0].client_order_id.startswith("manual-20240304-AAA-b-")
    events = OrderLedger(state).events()
    assert (events["event"] == "ack").sum() == 1
    resumed = "already at the broker" if step in ("sent", "acked") else "resumed" if step in (
        "decision_logged", "submission_recorded") else ""
    assert resumed in again.stdout


EXIT_SCRIPT = """
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.execution.service import book_for_decisions, place_orders
from kobe_pipelines.orders import OrderIntent, OrderType
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.limits import RiskLimits
state = sys.argv[2]
paper, ledger = PaperBroker(state, slippage_bps=0.0), OrderLedger(state)
exit_intent = OrderIntent("exit-1", "AAA", "sell", 100, 99.0, order_type=OrderType.MARKET, trading_date="2024-03-05")
with PolicyGate(RiskLimits(), state) as gate:
    [done] = place_orders([exit_intent], gate, paper, ledger, lambda: book_for_decisions(paper, {"AAA": 99.0}, ledger))
print("sent" if done.sent else "not sent: " + done.reason)
"""


def _long_with_bracket(state: Path) -> PaperBroker:
    import pandas as pd

    from kobe_pipelines.execution.service import book_for_decisions, place_order
    from kobe_pipelines.orders import OrderIntent
    from kobe_pipelines.risk.gate import PolicyGate
    from kobe_pipelines.risk.limits import RiskLimits

    paper, ledger = PaperBroker(state, slippage_bps=0.0), OrderLedger(state)
    with PolicyGate(RiskLimits(), state) as gate:
        done = place_order(OrderIntent("long-1", "AAA", "buy", 100, 100.0, 95.0, 110.0, trading_date="2024-03-04"),
                           lambda: book_for_decisions(paper, {"AAA": 100.0}, ledger), gate, paper, ledger)
    assert done.sent
    paper.advance(pd.DataFrame([("AAA", "2024-03-04", 101.0, 102.0, 98.5, 99.0, 1e6)],
                               columns=["symbol", "date", "open", "high", "low", "close", "volume"]))
    ledger.sync(paper)
    return paper


def test_exit_when_killed_between_cancelling_the_legs_and_sending_then_the_same_exit_completes_it(state):
    paper = _long_with_bracket(state)
    killed = _child(KILLER.format(main=EXIT_SCRIPT), "legs_cancelled", str(state))
    assert killed.returncode == -9, killed.stderr
    assert paper.open_orders() == [] and paper.positions()["AAA"].qty == 100  # naked: the legs are gone
    again = _child(KILLER.format(main=EXIT_SCRIPT), "none", str(state))
    assert again.stdout.strip() == "sent", again.stdout + again.stderr
    import pandas as pd

    paper.advance(pd.DataFrame([("AAA", "2024-03-05", 97.0, 97.5, 94.0, 96.0, 1e6)],
                               columns=["symbol", "date", "open", "high", "low", "close", "volume"]))
    assert paper.positions() == {}


def test_exit_when_killed_after_cancelling_the_legs_and_never_retried_then_the_next_run_replaces_the_stop(state):
    from kobe_pipelines.execution.protection import check_protection
    from kobe_pipelines.execution.service import book_for_decisions
    from kobe_pipelines.risk.gate import PolicyGate
    from kobe_pipelines.risk.limits import RiskLimits

    paper = _long_with_bracket(state)
    assert _child(KILLER.format(main=EXIT_SCRIPT), "legs_cancelled", str(state)).returncode == -9
    ledger = OrderLedger(state)
    with PolicyGate(RiskLimits(), state) as gate:
        [outcome] = check_protection(paper, ledger, gate, lambda: book_for_decisions(paper, {"AAA": 99.0}, ledger),
                                     "2024-03-05")
    assert outcome.ok and outcome.placed.sent and outcome.covered == 0
    [stop] = paper.open_orders()
    assert (stop.is_protective_stop, stop.side.value, stop.qty, stop.entry.price) == (True, "sell", 100, 95.0)
    assert paper.positions()["AAA"].stop == 95.0
