"""Fixtures of the model tests: simulated lakes (with and without the planted signal), small
training configurations, and temporary MLflow SQLite stores."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
from kobe_pipelines.lake import Lake
from kobe_pipelines.ml.lstm import LSTMConfig
from kobe_pipelines.ml.registry import ModelRegistry
from kobe_pipelines.ml.training import TrainingConfig, TrainingResult, train_from_lake

MARKET_START, MARKET_END = "2019-01-02", "2021-12-31"

# The configuration of the signal tests: three 63-date test blocks (189 out-of-sample dates).
MARKET_CONFIG = TrainingConfig(n_folds=3, test_size=63, validation_size=63, min_train_dates=126,
                               lstm=LSTMConfig(window=20, hidden_size=16, max_epochs=8, patience=2))
# A small, fast configuration for registry and plumbing tests.
SMALL_CONFIG = TrainingConfig(n_folds=1, test_size=42, validation_size=42, min_train_dates=63,
                              lstm=LSTMConfig(window=10, hidden_size=8, max_epochs=3, patience=1))


@dataclass(frozen=True)
class SimLake:
    lake: Lake
    version_id: str
    sim: SimulatedProvider


def freeze_sim(root, config: SimConfig) -> SimLake:
    sim = SimulatedProvider(config)
    start, end = sim.config.start, sim.config.end  # end=None resolves to the last completed session
    lake = Lake(root)
    result = lake.freeze(sim.daily_bars(start, end), sim.splits(start, end), sim.dividends(start, end), provider="simulated")
    return SimLake(lake, result.version.version_id, sim)


@pytest.fixture(scope="session")
def signal_lake(tmp_path_factory) -> SimLake:
    """40 symbols, 2019-2021, the simulator's default planted mean reversion (0.05)."""
    return freeze_sim(tmp_path_factory.mktemp("signal-lake"),
                      SimConfig(seed=7, n_symbols=40, start=MARKET_START, end=MARKET_END, signal_strength=0.05))


@pytest.fixture(scope="session")
def null_lake(tmp_path_factory) -> SimLake:
    """The same market with the planted component switched off."""
    return freeze_sim(tmp_path_factory.mktemp("null-lake"),
                      SimConfig(seed=7, n_symbols=40, start=MARKET_START, end=MARKET_END, signal_strength=0.0))


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory) -> SimLake:
    """16 symbols over 2020-2021 (about 500 sessions), a strong planted signal (0.1)."""
    return freeze_sim(tmp_path_factory.mktemp("small-lake"),
                      SimConfig(seed=3, n_symbols=16, start="2020-01-02", end="2021-12-31", signal_strength=0.1))


@pytest.fixture(scope="session")
def signal_result(signal_lake) -> TrainingResult:
    return train_from_lake(signal_lake.lake, signal_lake.version_id, MARKET_CONFIG)


@pytest.fixture(scope="session")
def small_result(small_lake) -> TrainingResult:
    return train_from_lake(small_lake.lake, small_lake.version_id, SMALL_CONFIG)


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory):
    """An MLflow SQLite database with its schema created (the migrations take about a second)."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    ModelRegistry(f"sqlite:///{path}").client.search_experiments()
    return path


@pytest.fixture()
def registry(tmp_path, _empty_store) -> ModelRegistry:
    """A fresh, empty MLflow store in this test's temporary folder (a copy of the empty template)."""
    target = tmp_path / "mlflow" / "mlflow.db"
    target.parent.mkdir(parents=True)
    shutil.copyfile(_empty_store, target)
    return ModelRegistry(f"sqlite:///{target}")


def inverted(result: TrainingResult) -> TrainingResult:
    """The same members with every member's standardised prediction negated: a model that ranks
    exactly backwards, so its rank IC on any window is minus the original's."""
    spec = dataclasses.replace(result.spec, scales={k: -v for k, v in result.spec.scales.items()})
    return dataclasses.replace(result, spec=spec)


def oracle_frame(sim: SimulatedProvider, rows: pd.DataFrame, horizon: int = 5) -> pd.DataFrame:
    """The given rows (symbol, date, label and any scores) with the simulator's exact
    `horizon`-session expectation as column `oracle` (rows it does not score are dropped)."""
    start, end = rows["date"].min(), rows["date"].max()
    oracle = sim.oracle_score(horizon, start, end).rename(columns={"score": "oracle"})
    return rows.merge(oracle, on=["symbol", "date"], how="inner")


def ramp_bars(n_days: int, symbols=("AAA", "BBB", "CCC"), start: str = "2023-01-02", seed: int = 0) -> pd.DataFrame:
    """Deterministic random-walk bars over consecutive business days (no lake needed)."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range(start, periods=n_days)
    frames = []
    for i, sym in enumerate(symbols):
        close = 20.0 * (i + 1) * np.exp(np.cumsum(rng.normal(0, 0.02, n_days)))
        frames.append(pd.DataFrame({
            "symbol": sym, "date": days, "open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
            "volume": 1e5 * np.exp(rng.normal(0, 0.3, n_days)),
        }))
    return pd.concat(frames, ignore_index=True)
