"""End to end on the embedded defaults: lake -> models -> signals -> trading sensor -> paper broker.

One module-wide scenario (it trains real models, so it runs once) records what happens; each test
asserts one behaviour of it:
- signals start a trading run whose orders reach the paper broker and the ledger, and whose fills
  and slippage are recorded on the next sessions;
- a second tick of the trading sensor starts nothing new, and re-running the same trading run
  sends no order twice;
- a user strategy edited into a broken file keeps trading on its last good version and alerts;
- a forced drawdown engages the halt (with an e-mail to a loopback SMTP server), and the next
  trading run sends no order that adds risk.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from kobe_pipelines.alerts.sinks import read_alert_log
from kobe_pipelines.defs.trading.sensors import drawdown_sensor
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines.risk.drawdown import DrawdownMonitor
from kobe_pipelines.risk.kill_switch import KillSwitch
from kobe_pipelines_tests.integration.conftest import HISTORY, TradingWorld
from kobe_pipelines_tests.support.smtp import ALERT_FROM, ALERT_TO, SMTP_PASSWORD, SMTP_USER, make_tls_files, start_smtp

pytestmark = pytest.mark.slow

DAYS = ("2024-06-17", "2024-06-18", "2024-06-20", "2024-06-21")
HALT_DAY = "2024-06-24"
GOOD_STRATEGY = "from kobe_pipelines.strategies import RankedLong, RankedLongConfig\n" \
                "STRATEGY = RankedLong(RankedLongConfig(top_n=4), name='mine')\n"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    (root / "tls").mkdir()
    controller, smtp = start_smtp(make_tls_files(root / "tls"))
    alerts = dict(smtp_host=smtp.host, smtp_port=str(smtp.port), smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD,
                  alert_from=ALERT_FROM, alert_to=",".join(ALERT_TO), smtp_cafile=str(smtp.cafile), smtp_timeout="5")
    world = TradingWorld(root, alerts=alerts, strategy="mine")
    (world.strategy_dir / "mine.py").write_text(GOOD_STRATEGY)
    seen: dict = {"runs": []}
    try:
        world.freeze(HISTORY[0], HISTORY[1], with_signals=False)
        world.train()
        for number, day in enumerate(DAYS):
            if number == len(DAYS) - 1:
                seen["good_version"] = _strategy_versions(world)
                (world.strategy_dir / "mine.py").write_text("STRATEGY = (\n")  # a broken edit
            request, result = world.tick_and_trade()
            seen["runs"].append((request.run_key, result.success))
            if number == 0:
                seen["after_first_run"] = OrderLedger(world.state).events()
            world.freeze(day, day)
        request, result = world.tick_and_trade()  # the run the last refreeze asked for
        seen["runs"].append((request.run_key, result.success))
        seen["submissions_after_last_run"] = _submissions(world)
        seen["same_key_again"] = world.tick()
        seen["rerun"] = world.trade(request)  # a retried run of the same signals
        seen["submissions_after_rerun"] = _submissions(world)
        seen["versions_after_broken_edit"] = _strategy_versions(world)
        seen["alerts_before_halt"] = read_alert_log(world.state / "alerts.jsonl")

        # a forced drawdown: the account's peak was twice today's equity
        equity = world.resources()["broker"].build().account().equity
        DrawdownMonitor(world.state, max_drawdown=0.15).update(2 * equity, as_of=dt.datetime(2024, 6, 21, 21, 0, tzinfo=dt.timezone.utc))
        context = dg.build_sensor_context(instance=world.instance, resources=world.resources())
        seen["drawdown_tick"] = drawdown_sensor.evaluate_tick(context)
        seen["halt"] = KillSwitch(world.state).status()
        seen["mail_arrived"] = smtp.handler.arrived.wait(timeout=10)
        seen["mails"] = list(smtp.handler.received)
        before = len(OrderLedger(world.state).events())
        world.freeze(HALT_DAY, HALT_DAY)
        world.tick_and_trade()
        seen["after_halt"] = OrderLedger(world.state).events().iloc[before:]
        seen["world"] = world
        yield seen
    finally:
        controller.stop()


def _submissions(world: TradingWorld) -> int:
    events = OrderLedger(world.state).events()
    return int((events["event"] == "submitted").sum())


def _strategy_versions(world: TradingWorld) -> set[str]:
    events = OrderLedger(world.state).events()
    intents = events[events["event"] == "intent"]
    return {str(d) for d in intents["detail"]} if "detail" in intents else set()


def test_trading_run_when_signals_land_then_orders_reach_the_paper_broker_and_the_ledger(scenario):
    first = scenario["after_first_run"]
    assert scenario["runs"][0][1] is True
    assert (first["event"] == "decision").sum() >= 1
    submitted = first[first["event"] == "submitted"]
    assert len(submitted) >= 1 and set(submitted["side"]) == {"buy"}
    acked = first[first["event"] == "ack"]
    assert set(acked["client_order_id"]) == set(submitted["client_order_id"])
    assert set(acked["broker"]) == {"paper"}


def test_trading_runs_when_later_sessions_arrive_then_fills_and_slippage_are_recorded(scenario):
    world = scenario["world"]
    fills = OrderLedger(world.state).events().query("event == 'fill'")
    assert len(fills) >= 1
    slippage = SlippageTracker(world.state).records()
    assert set(slippage["fill_id"]) == set(fills["fill_id"])
    # bps = side sign x (fill - expected) / expected x 10,000: a buy filled below its limit (a gap
    # down through it) is an improvement, negative; one filled above it would be a cost
    sign = slippage["side"].map({"buy": 1.0, "sell": -1.0})
    expected_bps = sign * (slippage["fill_price"] - slippage["expected_price"]) / slippage["expected_price"] * 10_000
    assert slippage["slippage_bps"].to_numpy() == pytest.approx(expected_bps.to_numpy(), rel=1e-9, abs=1e-9)


def test_trading_sensor_when_ticked_again_then_the_same_run_key_and_no_order_is_sent_twice(scenario):
    keys = [key for key, _ in scenario["runs"]]
    assert len(keys) == len(set(keys))  # every session's run had its own key
    again = scenario["same_key_again"]
    assert [r.run_key for r in again] == [keys[-1]]  # Dagster skips a run key it already launched
    assert scenario["rerun"].success
    # the retried run met the same client order ids: the broker returned its orders, none was added
    assert scenario["submissions_after_rerun"] == scenario["submissions_after_last_run"]
    ledger = OrderLedger(scenario["world"].state).events()
    sent = ledger[ledger["event"] == "submitted"]
    assert sent["client_order_id"].is_unique


def test_strategy_when_edited_into_a_broken_file_then_the_last_good_version_trades_and_an_alert_is_raised(scenario):
    alerts = scenario["alerts_before_halt"]
    reload_failures = [a for a in alerts if a.kind == "strategy_reload_failed"]
    assert len(reload_failures) >= 1
    assert scenario["runs"][len(DAYS) - 1][1] is True  # the run with the broken file still succeeded


def test_drawdown_when_past_the_limit_then_halt_engaged_mail_sent_and_no_risk_adding_order_is_sent(scenario):
    assert scenario["halt"].halted and "drawdown" in scenario["halt"].reason.lower()
    assert scenario["mail_arrived"]
    subjects = [m.message["Subject"] for m in scenario["mails"]]
    assert any("drawdown" in s.lower() or "halt" in s.lower() for s in subjects), subjects
    after = scenario["after_halt"]
    decisions = after[after["event"] == "decision"]
    submitted = after[after["event"] == "submitted"]
    assert len(decisions) >= 1
    assert submitted.empty or set(submitted["side"]) == {"sell"}
    assert pd.Series(decisions["detail"]).astype(str).str.contains("halt", case=False).all()


def test_order_when_explained_then_its_chain_names_model_and_lake_version_and_the_score_recomputes_to_match(scenario):
    import json

    from kobe_pipelines.lake import Lake
    from kobe_pipelines.trading.lineage import explain_order

    world = scenario["world"]
    ledger = OrderLedger(world.state)
    events = ledger.events()
    first = events[events["event"] == "submitted"].iloc[0]
    lineage = json.loads(first["detail"])["lineage"]
    assert lineage["model"] == "kobe-ensemble" and lineage["model_version"] and lineage["signals_hash"]
    lake = Lake(world.root / "lake")
    assert lake.version(lineage["lake_version"]).content_hash == lineage["lake_hash"]
    assert lineage["lake_version"] in lake.pins()  # the version an order was made on stays recomputable
    report = explain_order(ledger, first["client_order_id"], lake_dir=world.root / "lake", state_dir=world.state)
    labels = [label for label, _ in report.chain]
    assert labels[:5] == ["intent", "strategy", "model", "lake", "signals"] and "decision" in labels
    assert report.ok and report.recomputed[-1].endswith("MATCH"), report.recomputed
