"""Fixtures for the strategies tests: a tiny market, worked by hand, and context builders.

Sessions used: Tue 2024-06-04 .. Fri 2024-06-07 (bars, signals on 06-07); the orders are for
the next XNYS session, Mon 2024-06-10.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from kobe_pipelines.risk.types import Book, Position
from kobe_pipelines.strategies import RiskBudget, StrategyContext

TRADING_DATE = "2024-06-10"
SIGNAL_DATE = "2024-06-07"
DAYS = ["2024-06-04", "2024-06-05", "2024-06-06", "2024-06-07"]

# (high, low, close) per day. True ranges worked by hand in test_ranked_long.py.
AAA = [(50.5, 49.5, 50.00), (51.0, 49.8, 50.60), (51.3, 50.1, 50.90), (52.02, 50.2, 51.237)]
BBB = [(0.81, 0.79, 0.80), (0.85, 0.79, 0.82), (0.87, 0.81, 0.85), (0.89, 0.83, 0.87654)]
FLAT = [(20.5, 19.5, 20.0), (20.5, 19.5, 20.0), (20.5, 19.5, 20.0), (20.5, 19.5, 20.0)]


def bar_frame(series: dict[str, list[tuple[float, float, float]]], days: list[str] | None = None) -> pd.DataFrame:
    """Bars in the lake's column contract; open = close of the row (unused by the strategies)."""
    rows = []
    for symbol, values in series.items():
        use_days = (days or DAYS)[-len(values) :]
        for day, (high, low, close) in zip(use_days, values):
            rows.append(
                {"symbol": symbol, "date": pd.Timestamp(day), "open": close, "high": high, "low": low, "close": close, "volume": 1e6}
            )
    return pd.DataFrame(rows, columns=["symbol", "date", "open", "high", "low", "close", "volume"])


def signal_frame(scores: dict[str, float], day: str = SIGNAL_DATE) -> pd.DataFrame:
    return pd.DataFrame({"symbol": list(scores), "date": pd.Timestamp(day), "score": list(scores.values())})


def book(
    equity: float = 100_000.0, buying_power: float | None = None, positions: dict[str, int] | None = None
) -> Book:
    held = {s: Position(s, q, 10.0) for s, q in (positions or {}).items()}
    return Book(equity=equity, cash=equity, buying_power=equity if buying_power is None else buying_power, positions=held)


@pytest.fixture
def market_bars() -> pd.DataFrame:
    return bar_frame({"AAA": AAA, "BBB": BBB, "CCC": FLAT, "DDD": FLAT, "EEE": FLAT})


@pytest.fixture
def make_ctx(market_bars: pd.DataFrame) -> Callable[..., StrategyContext]:
    """Build a context on the tiny market; override any part by keyword."""

    def build(
        scores: dict[str, float] | None = None,
        bars: pd.DataFrame | None = None,
        account: Book | None = None,
        budget: RiskBudget | None = None,
        version: str = "",
    ) -> StrategyContext:
        return StrategyContext(
            signals=signal_frame(scores if scores is not None else {"AAA": 0.8, "BBB": 0.7}),
            bars=market_bars if bars is None else bars,
            book=account if account is not None else book(),
            trading_date=TRADING_DATE,
            budget=budget if budget is not None else RiskBudget(),
            strategy_version=version,
        )

    return build


# -- hot reload --------------------------------------------------------------------------------

FIXED_TEMPLATE = '''
from kobe_pipelines.risk.types import Side
from kobe_pipelines.strategies import Strategy


class Fixed(Strategy):
    name = "fixed"

    def generate(self, ctx):
        return [self.make_intent(ctx, "AAA", Side.BUY, {qty}, 51.23, {stop}, 54.33)]
'''


def fixed_source(qty: str = "10", stop: str = "48.41") -> str:
    """A user strategy buying `qty` AAA at 51.23 with the given stop (tests edit these two)."""
    return FIXED_TEMPLATE.format(qty=qty, stop=stop)


@dataclasses.dataclass
class AlertInbox:
    sent: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __call__(self, subject: str, body: str) -> None:
        self.sent.append((subject, body))


@pytest.fixture
def inbox() -> AlertInbox:
    return AlertInbox()


@pytest.fixture
def strategy_dir(tmp_path: Path) -> Path:
    path = tmp_path / "user_strategies"
    path.mkdir()
    return path


@pytest.fixture
def write_strategy(strategy_dir: Path) -> Callable[[str, str], Path]:
    def write(name: str, source: str) -> Path:
        path = strategy_dir / f"{name}.py"
        path.write_text(source, encoding="utf-8")
        return path

    return write
