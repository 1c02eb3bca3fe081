"""Fixtures of the backtest tests: small simulated lakes frozen once per session."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
from kobe_pipelines.lake import Lake

# 12 symbols over 2020-2021: splits (forward and the reverse split of the $1.20 symbol K0003),
# quarterly dividends, a listing (K0001) and a delisting (K0002) in any universe of 10 or more.
SIM = SimConfig(seed=11, n_symbols=12, start="2020-01-02", end="2021-12-31")


@dataclass(frozen=True)
class FrozenSim:
    lake: Lake
    version_id: str
    sim: SimulatedProvider


def freeze(root, sim: SimulatedProvider, end: str | None = None, dividend_convention: str = "crsp") -> FrozenSim:
    start, last = sim.config.start, end or sim.config.end
    lake = Lake(root)
    result = lake.freeze(sim.daily_bars(start, last), sim.splits(start, last), sim.dividends(start, last),
                         provider="simulated", dividend_convention=dividend_convention)
    return FrozenSim(lake, result.version.version_id, sim)


@pytest.fixture(scope="session")
def sim_lake(tmp_path_factory) -> FrozenSim:
    return freeze(tmp_path_factory.mktemp("backtest-lake"), SimulatedProvider(SIM))


# The same market without any corporate action (no splits, no dividends, no listings or delistings):
# a yardstick where the book's arithmetic is plain mark-to-market.
QUIET = SimConfig(seed=4, n_symbols=8, start="2020-01-02", end="2021-06-30", split_rate_per_year=0.0,
                  dividend_payer_share=0.0, listing_share=0.0, delisting_share=0.0)


@pytest.fixture(scope="session")
def quiet_lake(tmp_path_factory) -> FrozenSim:
    frozen = freeze(tmp_path_factory.mktemp("quiet-lake"), SimulatedProvider(QUIET))
    assert frozen.sim.dividends(QUIET.start, QUIET.end).empty  # no special dividend drawn either
    return frozen
