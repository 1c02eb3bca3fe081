"""A refreeze's shortcuts, each against the plain computation it replaces: which symbols it
recomputes, how it merges splits, and which derived tables it writes at all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kobe_pipelines.data import schema
from kobe_pipelines.data.validation import ActionValidationError, validate_splits

from kobe_pipelines.lake import Lake, store
from kobe_pipelines.lake.freeze_steps import _fresh_rows, _isin, _merge_splits, _union, _unsettled_symbols

from .conftest import sim_inputs

SYMBOLS = ["A", "AA", "B", "BRK.B", "Z"]
# Sessions and weekend days around the 2024-01-15 holiday (MLK day): an action dated on a weekend
# or the holiday takes effect on the next session.
DAYS = pd.to_datetime(["2024-01-11", "2024-01-12", "2024-01-13", "2024-01-15", "2024-01-16", "2024-01-17"])
_symbol = st.sampled_from(SYMBOLS)
_day = st.integers(min_value=0, max_value=len(DAYS) - 1).map(lambda i: DAYS[i])


# ---- `_isin` ----------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-5, 5)), st.lists(st.integers(-5, 5)))
def test_isin_then_same_as_numpy(values, pool):
    values, pool = np.array(values, dtype=np.int64), np.array(pool, dtype=np.int64)
    assert _isin(values, pool).tolist() == np.isin(values, pool).tolist()


# ---- `_unsettled_symbols`: which symbols a refreeze recomputes -----------------------------------

def _next_session(day: pd.Timestamp) -> pd.Timestamp:
    """The session on `day` or the next one, for DAYS (worked out by hand: 01-13 is a Saturday,
    01-15 the Martin Luther King Jr. Day holiday)."""
    return {pd.Timestamp("2024-01-13"): pd.Timestamp("2024-01-16"),
            pd.Timestamp("2024-01-15"): pd.Timestamp("2024-01-16")}.get(day, day)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_symbol, _day), max_size=6),  # splits
    st.lists(st.tuples(_symbol, _day), max_size=12),  # dividends
    st.lists(st.tuples(_symbol, _day), max_size=12),  # applied events (symbol, session)
    st.lists(st.tuples(_symbol, _day), max_size=6),  # new bars
)
def test_unsettled_symbols_then_same_as_a_plain_comparison(split_rows, div_rows, event_rows, bar_rows):
    splits = pd.DataFrame(split_rows, columns=["symbol", "execution_date"]).astype(
        {"symbol": str, "execution_date": "datetime64[ns]"})
    divs = pa.table({"symbol": pa.array([s for s, _ in div_rows], pa.large_string()),
                     "ex_dividend_date": pa.array([d for _, d in div_rows], pa.timestamp("ns"))})
    events = pa.table({"symbol": pa.array([s for s, _ in event_rows], pa.large_string()),
                       "event_date": pa.array([_next_session(d) for _, d in event_rows], pa.timestamp("ns"))})
    new_rows = pd.DataFrame(bar_rows, columns=["symbol", "date"]).astype({"symbol": str, "date": "datetime64[ns]"})

    first_new = {s: min(d for t, d in bar_rows if t == s) for s, _ in bar_rows}
    stale = {(s, _next_session(d)) for s, d in event_rows if s in first_new and _next_session(d) >= first_new[s]}
    applied = {(s, _next_session(d)) for s, d in event_rows} - stale
    actions = split_rows + div_rows
    expected = {s for s, d in actions if (s, _next_session(d)) not in applied} | {s for s, _ in stale}
    assert _unsettled_symbols(splits, divs, events, new_rows) == expected


# ---- `_merge_splits`: only the symbols with a new split are validated again ----------------------

_split = st.tuples(_symbol, _day, st.sampled_from([(1.0, 2.0), (2.0, 4.0), (1.0, 3.0), (10.0, 1.0), (1.0, 1.0)]))


def _splits(rows) -> pd.DataFrame:
    frame = pd.DataFrame([(s, d, a, b) for s, d, (a, b) in rows], columns=list(schema.SPLIT_COLUMNS))
    return schema.normalize_splits(frame)


@settings(max_examples=200, deadline=None)
@given(st.lists(_split, max_size=10), st.lists(_split, max_size=6), st.booleans())
def test_merge_splits_then_same_as_validating_every_stored_and_fetched_split(stored_rows, new_rows, refetch_stored):
    symbols = set(SYMBOLS)
    try:
        stored = validate_splits(_splits(stored_rows), symbols)
    except ActionValidationError:
        assume(False)  # a stored table passed validation
    fetched = pd.concat([stored if refetch_stored else stored.iloc[:0], _splits(new_rows)], ignore_index=True)
    touched = {str(s) for s in _fresh_rows(stored, fetched, schema.SPLIT_COLUMNS)["symbol"]}
    try:
        expected = validate_splits(_union(stored, fetched, list(schema.SPLIT_COLUMNS)), symbols)
    except ActionValidationError as exc:
        with pytest.raises(type(exc)):
            _merge_splits(stored, fetched, touched, symbols)
        return
    merged, fresh = _merge_splits(stored, fetched, touched, symbols)
    pd.testing.assert_frame_equal(merged, expected)
    pd.testing.assert_frame_equal(fresh.reset_index(drop=True),
                                  _fresh_rows(stored, expected, schema.SPLIT_COLUMNS).reset_index(drop=True))


# ---- tables a refreeze leaves alone are not written again ---------------------------------------

def _record_writes(monkeypatch) -> list[str]:
    written: list[str] = []
    original = store.Lake._write_derived

    def recording(self, table, role):
        written.append(role)
        return original(self, table, role)

    monkeypatch.setattr(store.Lake, "_write_derived", recording)
    return written


def test_refreeze_when_a_new_session_brings_no_action_then_no_derived_table_is_written(lake, sim, monkeypatch):
    bars, splits, divs = sim_inputs(sim, end="2021-06-29")
    first = lake.freeze(bars, splits, divs, provider="simulated").version
    written = _record_writes(monkeypatch)
    all_bars = sim_inputs(sim)[0]
    second = lake.freeze(all_bars, splits, divs, provider="simulated").version
    assert written == []
    derived = {"splits", "dividends", "action_provenance", "factors", "adjustment_events"}
    assert {e for e in second.files if e.role in derived} == {e for e in first.files if e.role in derived}
    assert second.version_id != first.version_id and second.end_date == "2021-06-30"


def test_refreeze_when_one_dividend_is_new_then_only_the_tables_it_changes_are_written(tmp_path, sim, monkeypatch):
    bars, splits, divs = sim_inputs(sim)
    special = pd.DataFrame({"symbol": [sorted(bars["symbol"].unique())[0]],
                            "ex_dividend_date": [pd.Timestamp("2021-06-30")], "cash_amount": [0.01]})
    stepwise = Lake(tmp_path / "stepwise")
    first = stepwise.freeze(bars, splits, divs, provider="simulated").version
    written = _record_writes(monkeypatch)
    second = stepwise.freeze(bars, splits, pd.concat([divs, special]), provider="simulated").version
    assert sorted(written) == ["action_provenance", "adjustment_events", "dividends", "factors"]
    assert second.files_with_role("splits") == first.files_with_role("splits")
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(bars, splits, pd.concat([divs, special]), provider="simulated")
    for role in ("dividends", "factors", "adjustment_events"):
        path = lambda lk: lk.root / lk.current_version().files_with_role(role)[0].path  # noqa: E731
        pd.testing.assert_frame_equal(pd.read_parquet(path(stepwise)), pd.read_parquet(path(fresh)))
