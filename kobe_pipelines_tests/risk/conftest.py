"""Fixtures for the risk engine tests: a state folder, a hand-set clock, gates and books."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

import pytest

from kobe_pipelines.risk import Book, OrderIntent, PolicyGate, Position, RiskLimits, Side

T0 = dt.datetime(2024, 3, 1, 14, 30, tzinfo=dt.timezone.utc)


class FakeClock:
    """A clock the test moves by hand (no sleeping)."""

    def __init__(self, start: dt.datetime = T0):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir()
    return folder


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_gate(state: Path, clock: FakeClock) -> Callable[..., PolicyGate]:
    gates: list[PolicyGate] = []

    def build(limits: RiskLimits | None = None, universe=None, **kwargs) -> PolicyGate:
        gate = PolicyGate(limits or RiskLimits(max_orders_per_minute=10_000), state, universe=universe, clock=clock, **kwargs)
        gates.append(gate)
        return gate

    yield build
    for gate in gates:
        gate.close()


def make_book(
    positions: list[Position] | None = None,
    equity: float = 100_000.0,
    buying_power: float = 100_000.0,
    marks: dict[str, float] | None = None,
) -> Book:
    """Equity and buying power 100,000 USD; marks AAPL 100, MSFT 200, TSLA 50 unless given."""
    prices = {"AAPL": 100.0, "MSFT": 200.0, "TSLA": 50.0}
    prices.update(marks or {})
    return Book(equity=equity, cash=buying_power, buying_power=buying_power,
                positions={p.symbol: p for p in positions or []}, last_prices=prices)


_ids = iter(range(1, 10**9))


def buy(symbol: str, qty, entry, stop=None, take_profit=None, **kwargs) -> OrderIntent:
    return OrderIntent(kwargs.pop("client_order_id", f"t-{next(_ids)}"), symbol, Side.BUY, qty, entry, stop, take_profit, **kwargs)


def sell(symbol: str, qty, entry, stop=None, take_profit=None, **kwargs) -> OrderIntent:
    return OrderIntent(kwargs.pop("client_order_id", f"t-{next(_ids)}"), symbol, Side.SELL, qty, entry, stop, take_profit, **kwargs)


def check(decision, name: str):
    """The named check's result in a decision."""
    found = [c for c in decision.checks if c.name == name]
    assert len(found) == 1, f"{name} not in {[c.name for c in decision.checks]}"
    return found[0]
