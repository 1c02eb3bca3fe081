"""End to end with the Alpaca broker: the same Dagster loop, orders sent over HTTP by alpaca-py to
a loopback server speaking Alpaca's trading API (`support/alpaca_server.py`; nothing patched).

One module-wide scenario, three trading sessions:
1. signals of 2024-06-14 start the run for 2024-06-17: bracket orders are posted (the first
   answer is a 500 after Alpaca took the order: the broker finds it by client order id and
   does not send it again);
2. the test, playing the exchange, fills every entry 1 cent under its limit; the run for
   2024-06-18 settles those fills into the ledger and the slippage tracker;
3. one position gaps through its stop (filled 5 cents under it); the run for 2024-06-20
   (06-19 is a holiday) settles the exit, a cost in the tracker;
then a second tick starts nothing, and a retried run of the same signals posts nothing.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from kobe_pipelines.defs.env_resources import BrokerResource
from kobe_pipelines.execution.alpaca import AlpacaBroker
from kobe_pipelines.execution.alpaca_settings import AlpacaSettings
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.execution.slippage import SlippageTracker
from kobe_pipelines.lake import Lake
from kobe_pipelines_tests.integration.conftest import HISTORY, TradingWorld
from kobe_pipelines_tests.support.alpaca_server import FakeAlpaca, serve

pytestmark = pytest.mark.slow

API_KEY, SECRET_KEY = "PKE2EKEY00000000", "e2e-secret-abcdefghijklmnopqrstuv"
SESSIONS = ("2024-06-17", "2024-06-18", "2024-06-20")  # the trading dates of the three runs


class _Clock:
    """The wall clock the Alpaca broker sees: 09:00 New York time of the session being traded
    (it refuses an intent for a session before today's, so the replayed 2024 sessions need one)."""

    now = dt.datetime(2024, 6, 17, 13, 0, tzinfo=dt.timezone.utc)

    @classmethod
    def read(cls) -> dt.datetime:
        return cls.now

    @classmethod
    def morning_of(cls, session: str) -> None:
        cls.now = dt.datetime.fromisoformat(f"{session}T13:00:00+00:00")  # 09:00 EDT


class ClockedBrokerResource(BrokerResource):
    def build(self, universe=None):
        return AlpacaBroker(AlpacaSettings.from_env(self.environ()), clock=_Clock.read)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    fake = FakeAlpaca(server)
    fake.account.update(cash="100000", equity="100000", buying_power="100000", portfolio_value="100000")
    serve(fake)
    extra = dict(alpaca_api_key=API_KEY, alpaca_secret_key=SECRET_KEY, alpaca_base_url=fake.url, alpaca_paper="true",
                 alpaca_timeout_s="5", alpaca_retry_wait_s="0.01", alpaca_reconcile_wait_s="0")
    world = TradingWorld(tmp_path_factory.mktemp("alpaca_loop"), broker_kind="alpaca", broker_extra=extra,
                         broker_class=ClockedBrokerResource)
    seen: dict = {"world": world, "fake": fake, "runs": []}
    try:
        world.freeze(HISTORY[0], HISTORY[1], with_signals=False)
        world.train()

        _Clock.morning_of(SESSIONS[0])
        fake.post_script = ["500-accept"]  # Alpaca takes the first order but answers 500
        request, result = world.tick_and_trade()
        seen["runs"].append((request.run_key, result.success))
        seen["posted_first_run"] = [dict(body) for body in fake.posted]
        seen["orders_first_run"] = set(fake.orders)
        seen["ledger_first_run"] = OrderLedger(world.state).events()

        fills = {}  # the exchange fills every entry 1 cent under its limit, at 09:35 New York time
        for coid, order in fake.orders.items():
            fills[coid] = round(float(order["limit_price"]) - 0.01, 2)
            fake.fill(coid, "entry", fills[coid], f"{SESSIONS[0]}T13:35:00Z")
        seen["entry_fills"] = fills
        world.freeze(SESSIONS[0], SESSIONS[0])

        _Clock.morning_of(SESSIONS[1])
        request, result = world.tick_and_trade()
        seen["runs"].append((request.run_key, result.success))

        stopped = sorted(fills)[0]  # this one gaps through its stop: filled 5 cents under it
        stop_leg = next(leg for leg in fake.orders[stopped]["legs"] if leg["type"] == "stop")
        seen["stop"] = (stopped, float(stop_leg["stop_price"]), round(float(stop_leg["stop_price"]) - 0.05, 2))
        fake.fill(stopped, "stop_loss", seen["stop"][2], f"{SESSIONS[1]}T14:10:00Z")
        world.freeze(SESSIONS[1], SESSIONS[1])

        _Clock.morning_of(SESSIONS[2])
        request, result = world.tick_and_trade()
        seen["runs"].append((request.run_key, result.success))
        seen["posts_after_last_run"] = len(fake.posted)
        seen["same_key_again"] = world.tick()
        seen["rerun"] = world.trade(request)  # a retried run of the same signals
        seen["posts_after_rerun"] = len(fake.posted)
        world.freeze(SESSIONS[2], SESSIONS[2], with_signals=False)  # a newer lake version, no new signals
        seen["rerun_after_freeze"] = world.trade(request)
        seen["current_version"] = Lake(world.root / "lake").current_version_id()
        seen["posts_after_freeze"] = len(fake.posted)
        yield seen
    finally:
        fake.release.set()
        server.stop()


def test_trading_run_when_signals_land_then_bracket_orders_reach_alpaca_with_the_keys(scenario):
    posted, fake = scenario["posted_first_run"], scenario["fake"]
    assert scenario["runs"][0][1] is True
    assert len(posted) >= 1
    for body in posted:
        entry, stop, target = body["limit_price"], body["stop_loss"]["stop_price"], body["take_profit"]["limit_price"]
        # one time in force for the entry and its legs: gtc, so the legs outlive the entry's session
        assert (body["side"], body["type"], body["order_class"], body["time_in_force"]) == ("buy", "limit", "bracket", "gtc")
        assert stop < entry < target  # a buy's bracket: the stop under the entry, the target over it
        assert body["qty"] == int(body["qty"]) > 0
        for price in (entry, stop, target):  # Alpaca refuses sub-penny prices at or above $1.00
            assert round(price, 2) == price
    posts = [h for (method, _), h in zip(fake.requests, fake.headers) if method == "POST"]
    assert {(h["Apca-Api-Key-Id"], h["Apca-Api-Secret-Key"]) for h in posts} == {(API_KEY, SECRET_KEY)}


def test_trading_run_when_alpaca_answers_500_after_taking_the_order_then_it_is_reconciled_not_resent(scenario):
    posted, ledger = scenario["posted_first_run"], scenario["ledger_first_run"]
    ids = [body["client_order_id"] for body in posted]
    assert len(ids) == len(set(ids))  # the order Alpaca took is never posted a second time
    assert set(ids) == scenario["orders_first_run"]
    acks = ledger[ledger["event"] == "ack"]
    assert set(acks["client_order_id"]) == set(ids) and set(acks["broker"]) == {"alpaca"}
    reconciled = {coid: json.loads(detail)["reconciled"] for coid, detail in zip(acks["client_order_id"], acks["detail"])}
    assert reconciled == {coid: coid == ids[0] for coid in ids}  # only the order whose answer was lost


def test_trading_runs_when_alpaca_fills_then_fills_and_slippage_are_recorded_with_the_right_sign(scenario):
    world, fills = scenario["world"], scenario["entry_fills"]
    assert [ok for _, ok in scenario["runs"]] == [True, True, True]
    ledger = OrderLedger(world.state).events()
    entry_fills = ledger[(ledger["event"] == "fill") & (ledger["leg"] == "entry")]
    assert dict(zip(entry_fills["client_order_id"], entry_fills["price"])) == pytest.approx(fills)
    slip = SlippageTracker(world.state).records().set_index("client_order_id")
    entries = slip[slip["leg"] == "entry"]
    limits = {b["client_order_id"]: b["limit_price"] for b in scenario["posted_first_run"]}
    # a buy filled 1 cent under its limit is an improvement: -0.01 / limit x 10,000 bps
    for coid, row in entries.iterrows():
        assert row["slippage_bps"] == pytest.approx(-0.01 / limits[coid] * 10_000, rel=1e-6)
        assert row["slippage_usd"] == pytest.approx(-0.01 * row["qty"], abs=1e-6)
    coid, stop, price = scenario["stop"]
    exit_row = slip[slip["leg"] == "stop_loss"].loc[coid]
    # a sell filled 5 cents under its stop is a cost: -1 x (fill - stop) / stop x 10,000 > 0
    assert exit_row["slippage_bps"] == pytest.approx(0.05 / stop * 10_000, rel=1e-6)
    assert exit_row["slippage_bps"] > 0


def test_trading_sensor_when_ticked_again_or_rerun_then_nothing_is_posted_twice(scenario):
    keys = [key for key, _ in scenario["runs"]]
    assert len(set(keys)) == 3
    assert [r.run_key for r in scenario["same_key_again"]] == [keys[-1]]
    assert scenario["rerun"].success
    assert scenario["posts_after_rerun"] == scenario["posts_after_last_run"]
    ledger = OrderLedger(scenario["world"].state).events()
    assert ledger.loc[ledger["event"] == "submitted", "client_order_id"].is_unique
    orders = OrderLedger(scenario["world"].state).orders()
    assert not orders.empty and set(orders["broker"]) == {"alpaca"}
    assert pd.Series(orders["client_order_id"]).isin(scenario["fake"].orders).all()


def test_trading_run_when_the_lake_moved_on_after_the_signals_then_it_reads_the_signals_own_lake_version(scenario):
    result = scenario["rerun_after_freeze"]
    assert result.success
    [materialization] = result.asset_materializations_for_node("trade_orders")
    used = materialization.metadata["lake_version"].value
    events = OrderLedger(scenario["world"].state).events()
    signals_version = json.loads(events.loc[events["event"] == "intent", "detail"].iloc[-1])["lineage"]["lake_version"]
    assert used == signals_version != scenario["current_version"]
    assert scenario["posts_after_freeze"] == scenario["posts_after_rerun"]  # the same orders: nothing sent again
