"""buy_and_hold through splits, a reverse split, dividends and a delisting, against total-return prices:
on the simulated market, and on the real Quandl WIKI 2014 sample (AAPL's 7-for-1 split of 2014-06-09,
AAPL's and MSFT's dividends; the copy in `kobe_pipelines_tests/testdata`).

The independent computation: each symbol held is a sleeve valued from the lake's TOTAL-RETURN closes
only. Between two closes a sleeve grows by the total-return ratio R = TR_t / TR_t-1; under the crsp
convention TR_t-1 = P_t-1 / s - D (s the split ratio, D the dividend in post-split shares), so the
shares' value is R x (V_t-1 - n x D) with n = shares x s, the dividend n x D going to cash. A
split's fraction (shares x s - whole shares) leaves the sleeve in proportion and goes to cash at the
session's open, as the broker recorded it. A symbol without a bar keeps its value; its delisting
turns the sleeve into cash at that value. Cash starts at the starting cash less the entry fills
(their slippage is the recorded cost).
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from kobe_pipelines.backtest.market import PointInTimeMarket
from kobe_pipelines.backtest.runner import BacktestConfig, run_backtest
from kobe_pipelines.backtest.signals import UniverseSignals
from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
from kobe_pipelines.execution.corporate_actions import actions_from_tables
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.strategies import StrategyRegistry, buy_and_hold
from kobe_pipelines.strategies.buy_and_hold import BuyAndHold, BuyAndHoldConfig
from kobe_pipelines.lake import Lake
from kobe_pipelines_tests.backtest.conftest import freeze
from kobe_pipelines_tests.testdata import quandl_wiki_2014_inputs

START, END = "2020-01-02", "2021-12-31"
ENTRY = "2020-01-03"
WIKI_START, WIKI_END, WIKI_ENTRY = "2014-01-02", "2014-12-31", "2014-01-03"
# 12 symbols listed from the start: on the held positions, forward splits (4, 3, 10, 5-for-1), the
# 1-for-10 reverse split of the $1.20 symbol K0003 (leaving a fraction), quarterly dividends (K0003's
# across its reverse split) and two delistings (K0000, K0002).
ACTIONS = SimConfig(seed=11, n_symbols=12, start=START, end=END, split_rate_per_year=0.5, listing_share=0.0)
WIDE = RiskLimits(max_heat=1.0, max_position_fraction=1.0, max_order_notional=1_000_000.0, max_drawdown=0.9)


def _buy_and_hold(lake: Lake, version: str, out: Path, start: str, end: str, entry: str):
    market = PointInTimeMarket.from_lake(lake, version)
    actions = actions_from_tables(lake.derived_table("splits", version), lake.derived_table("dividends", version),
                                  start=start, end=end)
    registry = StrategyRegistry(builtins={"buy_and_hold": (
        lambda: BuyAndHold(BuyAndHoldConfig(entry_date=entry, stop_fraction=0.9)), Path(buy_and_hold.__file__))})
    run = run_backtest(market, UniverseSignals(market),
                       BacktestConfig(start=start, end=end, strategy="buy_and_hold", limits=WIDE), out, registry,
                       actions=actions)
    return run, actions, lake.read_bars(version, "total")


@pytest.fixture(scope="module")
def actions_run(tmp_path_factory):
    frozen = freeze(tmp_path_factory.mktemp("actions-lake"), SimulatedProvider(ACTIONS))
    return _buy_and_hold(frozen.lake, frozen.version_id, tmp_path_factory.mktemp("actions-run"), START, END, ENTRY)


@pytest.fixture(scope="module")
def wiki_run(tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("wiki-lake"))
    bars, splits, dividends = quandl_wiki_2014_inputs()
    version = lake.freeze(bars, splits, dividends, provider="files").version.version_id
    return _buy_and_hold(lake, version, tmp_path_factory.mktemp("wiki-run"), WIKI_START, WIKI_END, WIKI_ENTRY)


def sleeve_equity(run, actions, total: pd.DataFrame, entry: str) -> list[tuple[str, float, float]]:
    """(session, equity read at its close, the sleeves' equity: module docstring) after the entry."""
    fills = run.venue.broker.fills()
    entries = [f for f in fills if f.session == entry]
    assert entries and all(f.leg.value == "entry" for f in entries)
    assert [f for f in fills if f.session != entry] == []  # no stop fired (90 % below the entry)
    by_day = {(a.session, a.symbol): a for a in actions}
    lieu = {(e.session, e.symbol): float(e.cash) for e in run.venue.broker.book_events() if e.kind == "split"}
    tr = total.assign(day=total["date"].dt.strftime("%Y-%m-%d")).set_index(["day", "symbol"])["close"].to_dict()
    shares = {f.symbol: f.qty for f in entries}
    cash = run.config.starting_cash - sum(f.qty * f.price for f in entries)
    closes = run.market.raw_bars(entry).set_index("symbol")["close"]
    value = {f.symbol: f.qty * float(closes[f.symbol]) for f in entries}
    last_tr = {s: tr[(entry, s)] for s in shares}
    missing = dict.fromkeys(shares, 0)
    out = []
    for record in run.sessions:
        day = record.reading.session
        if day <= entry:
            continue
        for symbol in list(shares):
            action = by_day.get((day, symbol))
            ratio = action.ratio if action is not None else Fraction(1)
            dividend = float(action.cash_amount) if action is not None else 0.0
            exact = shares[symbol] * ratio
            if (day, symbol) in tr:
                grown = tr[(day, symbol)] / last_tr[symbol] * (value[symbol] - float(exact) * dividend)
                last_tr[symbol], missing[symbol] = tr[(day, symbol)], 0
            else:
                assert action is None
                grown, missing[symbol] = value[symbol], missing[symbol] + 1
            whole = int(exact)
            value[symbol] = grown * whole / float(exact) if exact else 0.0
            shares[symbol] = whole
            cash += whole * dividend + lieu.get((day, symbol), 0.0)
            if missing[symbol] >= run.config.delisted_after:  # delisted: the sleeve turns into cash
                cash += value.pop(symbol)
                del shares[symbol], last_tr[symbol], missing[symbol]
        out.append((day, record.reading.equity, cash + sum(value.values())))
    return out


def test_run_when_buy_and_hold_holds_through_every_kind_of_action_then_the_book_applied_each(actions_run):
    run, _, _ = actions_run
    events = run.venue.broker.book_events()
    kinds = {e.kind for e in events}
    assert {"split", "dividend", "delisting"} <= kinds
    splits = [e for e in events if e.kind == "split"]
    assert any(Fraction(e.detail["split_to"]) < Fraction(e.detail["split_from"]) for e in splits)  # a reverse split
    assert any(Fraction(e.detail["split_to"]) > Fraction(e.detail["split_from"]) for e in splits)
    assert any(e.cash != 0 for e in splits)  # a fraction paid in lieu
    assert run.checker.delisted and {s for _, s in run.checker.delisted} == {e.symbol for e in events
                                                                              if e.kind == "delisting"}
    assert any(a.subject.startswith("K0000 delisted") for a in run.venue.alerts)
    assert not any(r.reading.halted for r in run.sessions)


def test_run_when_buy_and_hold_then_equity_follows_total_return_prices_to_1e_6(actions_run):
    compared = sleeve_equity(*actions_run, ENTRY)
    assert len(compared) > 400
    for day, equity, expected in compared:
        assert equity == pytest.approx(expected, rel=1e-6), day


def test_run_when_buy_and_hold_on_the_wiki_sample_then_aapl_split_and_dividends_follow_total_return_to_1e_6(wiki_run):
    run = wiki_run[0]
    events = run.venue.broker.book_events()
    assert [(e.symbol, e.session, e.qty_after / e.qty_before) for e in events if e.kind == "split"] == [
        ("AAPL", "2014-06-09", 7.0)]
    assert {e.symbol for e in events if e.kind == "dividend"} == {"AAPL", "MSFT"}
    compared = sleeve_equity(*wiki_run, WIKI_ENTRY)
    assert len(compared) == 250
    for day, equity, expected in compared:
        assert equity == pytest.approx(expected, rel=1e-6), day
    assert not any(r.reading.halted for r in run.sessions)
