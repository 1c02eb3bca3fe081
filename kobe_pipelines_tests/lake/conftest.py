from __future__ import annotations

import pandas as pd
import pytest

from kobe_pipelines.data import schema
from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
from kobe_pipelines.lake import Lake

SIM_END = "2021-06-30"


@pytest.fixture(scope="session")
def sim() -> SimulatedProvider:
    return SimulatedProvider(SimConfig(seed=11, n_symbols=12, start="2020-01-02", end=SIM_END))


@pytest.fixture()
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "lake")


def sim_inputs(sim: SimulatedProvider, end: str = SIM_END) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    start = sim.config.start
    return sim.daily_bars(start, end), sim.splits(start, end), sim.dividends(start, end)


def tiny_market() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Symbol AAA over four sessions with a 2-for-1 split on 2024-01-05 and a $1 dividend going ex
    on 2024-01-04; symbol BBB with no events."""
    days = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    bars = pd.DataFrame(
        {
            "symbol": ["AAA"] * 4 + ["BBB"] * 4,
            "date": days * 2,
            "open": [100.0, 101.0, 100.0, 50.0, 10.0, 10.0, 10.0, 10.0],
            "high": [101.0, 103.0, 101.0, 51.0, 10.5, 10.5, 10.5, 10.5],
            "low": [99.0, 100.0, 99.0, 49.0, 9.5, 9.5, 9.5, 9.5],
            "close": [100.0, 102.0, 100.0, 50.0, 10.0, 10.1, 10.2, 10.3],
            "volume": [1000.0, 1000.0, 1000.0, 2000.0, 500.0, 500.0, 500.0, 500.0],
        }
    )
    splits = pd.DataFrame({"symbol": ["AAA"], "execution_date": ["2024-01-05"], "split_from": [1.0], "split_to": [2.0]})
    dividends = pd.DataFrame({"symbol": ["AAA"], "ex_dividend_date": ["2024-01-04"], "cash_amount": [1.0]})
    return schema.normalize_bars(bars), schema.normalize_splits(splits), schema.normalize_dividends(dividends)
