"""The lake candidate's jump checks report the returns the prepare's own jump check judged, on the
sessions of the events the candidate adds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
from kobe_pipelines.defs.lake.checks import UncheckedEventError, added_event_returns
from kobe_pipelines.lake import Lake

START, FIRST_END, END = "2020-01-02", "2021-06-30", "2021-12-31"


@pytest.fixture(scope="module")
def sim() -> SimulatedProvider:
    return SimulatedProvider(SimConfig(seed=11, n_symbols=12, start=START, end=END))


def _prepare(lake: Lake, sim: SimulatedProvider, end: str):
    return lake.prepare(sim.daily_bars(START, end), sim.splits(START, end), sim.dividends(START, end), provider="simulated")


def _from_the_stored_views(lake: Lake, candidate, events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The yardstick: the returns DuckDB computes over the candidate's own files."""
    return lake.event_returns(candidate.entries, events)


def _assert_same(got: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    for view in ("split", "total"):
        g, e = got[view], expected[view]
        assert list(g["symbol"]) == list(e["symbol"])
        assert list(pd.to_datetime(g["event_date"])) == list(pd.to_datetime(e["event_date"]))
        np.testing.assert_allclose(g["log_return"].to_numpy(), e["log_return"].to_numpy(), rtol=0, atol=1e-9)


def test_added_event_returns_when_a_first_version_then_every_traded_event_session_with_the_stored_views_returns(tmp_path, sim):
    lake = Lake(tmp_path / "lake")
    candidate = _prepare(lake, sim, FIRST_END)
    events = candidate.events
    got = added_event_returns(candidate, events)
    traded = events.loc[events["ex_date"] == events["event_date"], ["symbol", "event_date"]].drop_duplicates()
    assert len(traded) > 10 and len(got["split"]) == len(got["total"]) == len(traded)
    _assert_same(got, _from_the_stored_views(lake, candidate, events))


def test_added_event_returns_when_a_refreeze_adds_events_then_exactly_their_sessions(tmp_path, sim):
    lake = Lake(tmp_path / "lake")
    first = lake.publish(_prepare(lake, sim, FIRST_END))
    candidate = _prepare(lake, sim, END)
    before = first.events[["symbol", "event_date"]].drop_duplicates()
    merged = candidate.events.merge(before, how="left", indicator=True)
    added = candidate.events.loc[(merged["_merge"] == "left_only").to_numpy()].reset_index(drop=True)
    assert len(added) and pd.to_datetime(added["event_date"]).min() > pd.Timestamp(FIRST_END) - pd.Timedelta(days=40)
    got = added_event_returns(candidate, added)
    traded = added.loc[added["ex_date"] == added["event_date"], ["symbol", "event_date"]].drop_duplicates()
    assert len(got["total"]) == len(traded)
    _assert_same(got, _from_the_stored_views(lake, candidate, added))


def test_added_event_returns_when_an_added_session_was_not_judged_then_unchecked_event_error_names_it(tmp_path, sim):
    lake = Lake(tmp_path / "lake")
    candidate = _prepare(lake, sim, FIRST_END)
    jumps = candidate.event_jumps.sort_values(["symbol", "event_date"])
    dropped = jumps.iloc[0]
    partial = dataclasses.replace(candidate, event_jumps=jumps.iloc[1:])
    with pytest.raises(UncheckedEventError, match=f"{dropped['symbol']} {dropped['event_date'].date()}"):
        added_event_returns(partial, candidate.events)


def test_added_event_returns_when_nothing_added_then_empty_frames(tmp_path, sim):
    lake = Lake(tmp_path / "lake")
    candidate = _prepare(lake, sim, FIRST_END)
    got = added_event_returns(dataclasses.replace(candidate, event_jumps=None), candidate.events.head(0))
    assert {view: len(frame) for view, frame in got.items()} == {"split": 0, "total": 0}
