from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.backtest.invariants import InvariantBreach
from kobe_pipelines.backtest.market import PointInTimeMarket
from kobe_pipelines.backtest.outputs import FILL_COLUMNS, LINEAGE_COLUMNS, ORDER_COLUMNS, write_outputs
from kobe_pipelines.backtest.runner import BacktestConfig, run_backtest
from kobe_pipelines.backtest.signals import ScoredSignals, UniverseSignals
from kobe_pipelines.errors import ConfigError
from kobe_pipelines.execution.corporate_actions import actions_from_tables
from kobe_pipelines.execution.ledger import OrderLedger
from kobe_pipelines.lake import Lake
from kobe_pipelines.risk.audit import read_audit_log
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.strategies import StrategyRegistry, buy_and_hold
from kobe_pipelines.strategies.buy_and_hold import BuyAndHold, BuyAndHoldConfig

START, END = "2021-01-04", "2021-03-31"
WIDE = RiskLimits(max_heat=1.0, max_position_fraction=1.0, max_order_notional=1_000_000.0, max_drawdown=0.5)


def _buy_and_hold_registry(entry_date: str) -> StrategyRegistry:
    return StrategyRegistry(builtins={"buy_and_hold": (lambda: BuyAndHold(BuyAndHoldConfig(entry_date=entry_date)),
                                                       Path(buy_and_hold.__file__))})


@pytest.fixture(scope="module")
def quiet_market(quiet_lake) -> PointInTimeMarket:
    return PointInTimeMarket.from_lake(quiet_lake.lake, quiet_lake.version_id)


@pytest.fixture(scope="module")
def oracle_run(quiet_lake, quiet_market, tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle-run")
    source = ScoredSignals(quiet_lake.sim.oracle_score(5), model_name="oracle")
    run = run_backtest(quiet_market, source, BacktestConfig(start=START, end=END), out, StrategyRegistry())
    summary = write_outputs(run, out, title="oracle", manifest={})
    return run, out, summary


def test_run_backtest_when_buy_and_hold_on_a_quiet_market_then_equity_is_cash_plus_shares_at_each_close(quiet_market, tmp_path):
    # Independent: the fills (from fills.csv) and the raw closes of each session; nothing happens but price moves.
    run = run_backtest(quiet_market, UniverseSignals(quiet_market),
                       BacktestConfig(start=START, end=END, strategy="buy_and_hold", limits=WIDE),
                       tmp_path, _buy_and_hold_registry("2021-01-05"))
    write_outputs(run, tmp_path, title="bh", manifest={})
    fills = pd.read_csv(tmp_path / "fills.csv")
    equity = pd.read_csv(tmp_path / "equity.csv", parse_dates=["date"])
    assert set(fills["session"]) == {"2021-01-05"} and len(fills) == len(quiet_market.symbols)
    shares = dict(zip(fills["symbol"], fills["qty"]))
    start_cash = BacktestConfig(start=START, end=END).starting_cash
    cash = start_cash - float((fills["qty"] * fills["price"]).sum())
    for row in equity.itertuples():
        if row.date < pd.Timestamp("2021-01-05"):
            assert row.equity == pytest.approx(start_cash)
            continue
        closes = quiet_market.raw_bars(row.date).set_index("symbol")["close"]
        assert row.equity == pytest.approx(cash + sum(q * closes[s] for s, q in shares.items()), rel=1e-9)
    assert not equity["halted"].any()


def test_run_backtest_when_ranked_long_on_scored_signals_then_every_sent_order_was_intended_and_approved_first(oracle_run):
    run, out, _summary = oracle_run
    events = OrderLedger(out / "state").events()
    audit = read_audit_log(out / "state")
    approved = set(audit.loc[audit["approved"], "decision_id"])
    submitted = events.loc[events["event"] == "submitted"]
    assert len(submitted) > 10
    for row in submitted.itertuples():
        earlier = events.loc[(events["client_order_id"] == row.client_order_id) & (events["seq"] < row.seq)]
        assert "intent" in set(earlier["event"])
        assert row.decision_id in approved


def test_write_outputs_when_run_then_csvs_carry_the_lineage_and_costs(oracle_run, quiet_lake):
    run, out, summary = oracle_run
    orders = pd.read_csv(out / "orders.csv")
    fills = pd.read_csv(out / "fills.csv")
    assert list(orders.columns) == list(ORDER_COLUMNS) and list(fills.columns) == list(FILL_COLUMNS)
    assert (orders["lake_version_id"] == quiet_lake.version_id).all() and (orders["model_name"] == "oracle").all()
    assert fills[list(LINEAGE_COLUMNS)].notna().all().all()
    # a limit entry's cost against the bar is at most the 5 bps slippage model plus its $0.0001 rounding up,
    # and never negative (a fill is never better than the bar offered)
    entries = fills.loc[fills["leg"] == "entry"]
    assert (entries["cost_usd"] <= entries["qty"] * (entries["price"] * 5.0 / 10_000 + 0.0001) + 1e-6).all()
    assert (fills["cost_usd"] >= -1e-6).all() and fills["cost_usd"].sum() > 0
    assert summary.sessions == len(pd.read_csv(out / "equity.csv")) and (out / "report.html").exists()


def test_run_backtest_when_the_broker_reports_a_dollar_too_much_then_breach_names_the_session(quiet_market, tmp_path, monkeypatch):
    from kobe_pipelines.execution.broker import Account
    from kobe_pipelines.execution.paper import PaperBroker

    real = PaperBroker.account

    def inflated(self):
        account = real(self)
        return dataclasses.replace(account, equity=account.equity + 1.0) if self.last_session == "2021-01-06" else account

    monkeypatch.setattr(PaperBroker, "account", inflated)
    with pytest.raises(InvariantBreach, match=r"on 2021-01-06 for account: expected [0-9.]+, got [0-9.]+"):
        run_backtest(quiet_market, UniverseSignals(quiet_market),
                     BacktestConfig(start=START, end=END, strategy="buy_and_hold", limits=WIDE),
                     tmp_path, _buy_and_hold_registry("2021-01-05"))
    assert Account  # the record the broker returns


def test_run_backtest_when_out_already_holds_a_backtest_then_config_error(oracle_run, quiet_market):
    _run, out, _summary = oracle_run
    with pytest.raises(ConfigError, match="already holds a backtest"):
        run_backtest(quiet_market, UniverseSignals(quiet_market), BacktestConfig(start=START, end=END), out, StrategyRegistry())


def test_run_backtest_when_range_has_no_session_then_config_error(quiet_market, tmp_path):
    with pytest.raises(ConfigError, match="no session"):
        run_backtest(quiet_market, UniverseSignals(quiet_market), BacktestConfig(start="2030-01-02", end="2030-02-01"),
                     tmp_path, StrategyRegistry())


def test_run_backtest_when_a_split_is_planted_on_a_held_position_then_the_drawdown_does_not_move(oracle_run, quiet_lake,
                                                                                                   tmp_path):
    # The same market with a 4-for-1 split planted on a symbol ranked_long holds: raw prices from the
    # split session on divided by 4, volumes x 4. A split is no P&L: every session's equity and
    # drawdown up to the position's exit are the unplanted run's (the stop moves to stop / 4 on the tick).
    run, _out, _summary = oracle_run
    fills = run.venue.broker.fills()
    sessions = [r.reading.session for r in run.sessions]
    held = None
    for entry in (f for f in fills if f.leg.value == "entry"):
        exits = [f.session for f in fills if f.symbol == entry.symbol and f.session > entry.session]
        last = min(exits) if exits else sessions[-1]
        if sessions.index(last) - sessions.index(entry.session) >= 4:
            held = (entry.symbol, sessions[sessions.index(entry.session) + 2], last)
            break
    assert held is not None
    symbol, split_day, exit_day = held
    raw = quiet_lake.lake.read_bars(quiet_lake.version_id, "raw")
    after = (raw["symbol"] == symbol) & (raw["date"] >= pd.Timestamp(split_day))
    raw.loc[after, ["open", "high", "low", "close"]] /= 4
    raw.loc[after, "volume"] *= 4
    splits = pd.DataFrame({"symbol": [symbol], "execution_date": [pd.Timestamp(split_day)], "split_from": [1.0],
                           "split_to": [4.0]})
    planted_lake = Lake(tmp_path / "lake")
    version = planted_lake.freeze(raw, splits, pd.DataFrame(columns=["symbol", "ex_dividend_date", "cash_amount"]),
                                  provider="simulated").version.version_id
    planted = run_backtest(PointInTimeMarket.from_lake(planted_lake, version),
                           ScoredSignals(quiet_lake.sim.oracle_score(5), model_name="oracle"),
                           BacktestConfig(start=START, end=END), tmp_path / "out", StrategyRegistry(),
                           actions=actions_from_tables(splits, None))
    assert [e.kind for e in planted.venue.broker.book_events()] == ["split"]
    before = {r.reading.session: r.reading for r in run.sessions}
    compared = [r.reading for r in planted.sessions if r.reading.session < exit_day]
    assert split_day in {r.session for r in compared}
    for reading in compared:
        assert reading.equity == pytest.approx(before[reading.session].equity, abs=1e-6), reading.session
        assert reading.drawdown == pytest.approx(before[reading.session].drawdown, abs=1e-12), reading.session
