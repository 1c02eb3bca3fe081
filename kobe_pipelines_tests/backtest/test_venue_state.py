"""The backtest venue's state folder: the same records as production, written without waiting for the disk."""

from __future__ import annotations

import os

import pandas as pd

from kobe_pipelines.backtest.venue import BacktestVenue
from kobe_pipelines.execution.paper import PaperBroker
from kobe_pipelines.fsutil import atomic_write_bytes
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.strategies import RiskBudget, StrategyRegistry


def _venue(tmp_path) -> BacktestVenue:
    return BacktestVenue(tmp_path / "state", limits=RiskLimits(), registry=StrategyRegistry(), strategy_name="ranked_long",
                         universe=["AAA"], starting_cash=1000.0, slippage_bps=5.0, budget=RiskBudget())


def test_backtest_venue_when_opened_then_ledger_and_slippage_commit_with_synchronous_off(tmp_path):
    venue = _venue(tmp_path)
    try:
        for store in (venue.ledger, venue.slippage):
            with store._db(write=False) as con:
                assert con.execute("PRAGMA synchronous").fetchone()[0] == 0  # OFF
    finally:
        venue.close()


def test_sqlite_stores_when_production_defaults_then_synchronous_full(tmp_path):
    from kobe_pipelines.execution.ledger import OrderLedger

    with OrderLedger(tmp_path)._db(write=False) as con:
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_atomic_write_bytes_when_fsync_false_then_no_fsync_and_the_bytes_are_there(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    target = atomic_write_bytes(tmp_path / "f.json", b"{}", fsync=False)
    assert target.read_bytes() == b"{}" and calls == []
    atomic_write_bytes(tmp_path / "f.json", b"[]")
    assert target.read_bytes() == b"[]" and len(calls) == 2  # the file, then its folder


def test_paper_broker_when_not_durable_then_its_state_file_is_written_without_fsync(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    broker = PaperBroker(tmp_path, durable=False)
    broker.advance(pd.DataFrame({"symbol": ["AAA"], "date": [pd.Timestamp("2021-01-04")], "open": [10.0], "high": [11.0],
                                 "low": [9.0], "close": [10.5], "volume": [100.0]}))
    assert broker.last_session == "2021-01-04" and calls == []
    assert PaperBroker(tmp_path).last_session == "2021-01-04"  # another reader sees the saved state
