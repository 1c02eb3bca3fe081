"""Fixtures of the execution tests: the real policy gate, and a loopback Alpaca server."""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

import pytest
from pytest_httpserver import HTTPServer

from kobe_pipelines.execution.alpaca import AlpacaBroker
from kobe_pipelines.execution.alpaca_settings import AlpacaSettings
from kobe_pipelines.risk.gate import PolicyGate
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.risk.types import Book, Decision, OrderIntent
from kobe_pipelines_tests.support.alpaca_server import FakeAlpaca, serve

API_KEY = "PKTESTKEY0123456789"
SECRET_KEY = "s3cr3t-TEST-value-abcdefghijklmnop"
NOW = dt.datetime(2024, 3, 4, 15, 0, tzinfo=dt.timezone.utc)


def intent(coid: str = "ord-1", symbol: str = "AAA", side: str = "buy", qty: Any = 10, entry: Any = 100.0,
           stop: Any = 95.0, take_profit: Any = 110.0, trading_date: str = "2024-03-04", **kw: Any) -> OrderIntent:
    return OrderIntent(coid, symbol, side, qty, entry, stop, take_profit, trading_date=trading_date, **kw)


def book(marks: dict[str, float] | None = None, equity: float = 100_000.0) -> Book:
    return Book(equity, equity, equity, {}, marks or {"AAA": 100.0, "BBB": 20.0})


@pytest.fixture
def gate(tmp_path):
    """The real policy gate on its own state folder, with a fixed clock."""
    (tmp_path / "gate_state").mkdir()
    with PolicyGate(RiskLimits(), tmp_path / "gate_state", clock=lambda: NOW, audit_fsync=False) as g:
        yield g


@pytest.fixture
def approve(gate) -> Callable[..., Decision]:
    """An approved gate decision for `intent(**fields)` (fails the test if the gate rejects)."""

    def make(order: OrderIntent | None = None, marks: dict[str, float] | None = None, **fields: Any) -> Decision:
        decision = gate.decide(order or intent(**fields), book(marks))
        assert decision.approved, decision.reason
        return decision

    return make


@pytest.fixture(scope="session")
def _loopback_server():
    # One server for the session: stopping a werkzeug server waits out its 0.5 s poll.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_alpaca(_loopback_server):
    """A fresh fake Alpaca (no orders, no positions) on the loopback server."""
    _loopback_server.clear()
    fake = FakeAlpaca(_loopback_server)
    serve(fake)
    try:
        yield fake
    finally:
        fake.release.set()
        _loopback_server.clear()


@pytest.fixture
def alpaca_settings(fake_alpaca) -> AlpacaSettings:
    return AlpacaSettings(API_KEY, SECRET_KEY, paper=True, base_url=fake_alpaca.url, timeout_s=0.3, retry_attempts=2,
                          retry_wait_s=0.01, reconcile_attempts=2, reconcile_wait_s=0.0)


@pytest.fixture
def alpaca(alpaca_settings) -> AlpacaBroker:
    return AlpacaBroker(alpaca_settings, clock=lambda: NOW)
