"""A refreeze's shortcuts, each against the plain computation it replaces: which symbols it
recomputes, how it merges splits, and which derived tables it writes at all."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kobe_pipelines import market_calendar
from kobe_pipelines.data import adjustments, event_checks, schema
from kobe_pipelines.data.validation import ActionValidationError, validate_splits

from kobe_pipelines.lake import Lake, file_store, raw_bars, segments
from kobe_pipelines.lake.actions import known_symbols, merge_splits
from kobe_pipelines.lake.arrow_keys import isin_sorted, replace_symbols, rows_found_in, rows_missing_from, union_rows
from kobe_pipelines.lake.factors import added_events, unsettled_symbols
from kobe_pipelines.lake.raw_bars import NewBars

from .conftest import sim_inputs

SYMBOLS = ["A", "AA", "B", "BRK.B", "Z"]
# Sessions and weekend days around the 2024-01-15 holiday (MLK day): an action dated on a weekend
# or the holiday takes effect on the next session.
DAYS = pd.to_datetime(["2024-01-11", "2024-01-12", "2024-01-13", "2024-01-15", "2024-01-16", "2024-01-17"])
_symbol = st.sampled_from(SYMBOLS)
_day = st.integers(min_value=0, max_value=len(DAYS) - 1).map(lambda i: DAYS[i])


# ---- `isin_sorted`, `rows_found_in` -------------------------------------------------------------------------

_cell = st.tuples(st.sampled_from(["A", "BRK.B", None]), st.sampled_from(["2024-01-02", "2024-01-03", None]),
                  st.sampled_from([1.0, 2.5, float("nan")]))


@settings(max_examples=200, deadline=None)
@given(st.lists(_cell, max_size=10), st.lists(_cell, max_size=10), st.booleans(),
       st.sampled_from([["symbol"], ["symbol", "date"], ["symbol", "date", "amount"]]))
def test_rows_in_then_same_as_a_set_of_row_tuples(rows, other_rows, categorical, columns):
    def frame(cells):
        out = pd.DataFrame(cells, columns=["symbol", "date", "amount"]).astype({"amount": float})
        return out.assign(date=pd.to_datetime(out["date"]))

    def plain(value):  # a missing value (None, NaN, NaT) equals only a missing one
        return None if value is None or value != value else value

    a, b = frame(rows), frame(other_rows)
    if categorical:
        a["symbol"] = pd.Categorical(a["symbol"], categories=["BRK.B", "A", "Z"])
    held = {tuple(plain(v) for v in row) for row in zip(*(b[c].tolist() for c in columns))}
    expected = [tuple(plain(v) for v in row) in held for row in zip(*(a[c].astype(object).tolist() for c in columns))]
    assert rows_found_in(a, b, columns).tolist() == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-5, 5)), st.lists(st.integers(-5, 5)))
def test_isin_then_same_as_numpy(values, pool):
    values, pool = np.array(values, dtype=np.int64), np.array(pool, dtype=np.int64)
    assert isin_sorted(values, pool).tolist() == np.isin(values, pool).tolist()


@pytest.mark.parametrize("categorical", [False, True])
def test_known_symbols_when_no_raw_file_then_the_asked_symbols_that_have_new_rows(categorical):
    frame = pd.DataFrame({"symbol": ["B", "A", "B"], "date": pd.to_datetime(["2024-01-02", "2024-01-02", "2024-01-03"]),
                          "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})
    if categorical:  # "C" is a category without rows: it has no bars
        frame["symbol"] = pd.Categorical(frame["symbol"], categories=["C", "B", "A"])
    new = NewBars.validated(frame, as_of=dt.date(2024, 1, 31))
    assert new.symbols == {"A", "B"}
    assert known_symbols([], new.symbols, {"A", "C", "Z"}) == {"A"}


# ---- `_unsettled_symbols`: which symbols a refreeze recomputes -----------------------------------

def _next_session(day: pd.Timestamp) -> pd.Timestamp:
    """The session on `day` or the next one, for DAYS (worked out by hand: 01-13 is a Saturday,
    01-15 the Martin Luther King Jr. Day holiday)."""
    return {pd.Timestamp("2024-01-13"): pd.Timestamp("2024-01-16"),
            pd.Timestamp("2024-01-15"): pd.Timestamp("2024-01-16")}.get(day, day)


def _ex_date(day: pd.Timestamp, gap: int) -> pd.Timestamp:
    """The ex bar's date: the session, or `gap` days later (the symbol did not trade until then)."""
    return _next_session(day) + pd.Timedelta(days=gap)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_symbol, _day), max_size=6),  # splits
    st.lists(st.tuples(_symbol, _day), max_size=12),  # dividends
    st.lists(st.tuples(_symbol, _day, st.integers(0, 3)), max_size=12),  # applied events (symbol, day, days to the ex bar)
    st.lists(st.tuples(_symbol, _day), max_size=6),  # new bars
)
def test_unsettled_symbols_then_same_as_a_plain_comparison(split_rows, div_rows, event_rows, bar_rows):
    splits = pd.DataFrame(split_rows, columns=["symbol", "execution_date"]).astype(
        {"symbol": str, "execution_date": "datetime64[ns]"})
    divs = pa.table({"symbol": pa.array([s for s, _ in div_rows], pa.large_string()),
                     "ex_dividend_date": pa.array([d for _, d in div_rows], pa.timestamp("ns"))})
    events = pa.table({"symbol": pa.array([s for s, _, _ in event_rows], pa.large_string()),
                       "event_date": pa.array([_next_session(d) for _, d, _ in event_rows], pa.timestamp("ns")),
                       "ex_date": pa.array([_ex_date(d, gap) for _, d, gap in event_rows], pa.timestamp("ns"))})
    first_new = {s: min(d for t, d in bar_rows if t == s) for s, _ in bar_rows}
    # stale: a new bar at or before the bar the event's ex close came from
    stale = {(s, _next_session(d)) for s, d, gap in event_rows if s in first_new and _ex_date(d, gap) >= first_new[s]}
    applied = {(s, _next_session(d)) for s, d, _ in event_rows}
    actions = split_rows + div_rows
    expected = {s for s, d in actions if (s, _next_session(d)) not in applied} | {s for s, _ in stale}
    assert unsettled_symbols(splits, divs, events, pd.Series(first_new, dtype="datetime64[ns]")) == expected


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
    touched = {str(s) for s in rows_missing_from(stored, fetched, schema.SPLIT_COLUMNS)["symbol"]}
    try:
        expected = validate_splits(union_rows(stored, fetched, list(schema.SPLIT_COLUMNS)), symbols)
    except ActionValidationError as exc:
        with pytest.raises(type(exc)):
            merge_splits(stored, fetched, touched, symbols)
        return
    merged, fresh = merge_splits(stored, fetched, touched, symbols)
    pd.testing.assert_frame_equal(merged, expected)
    pd.testing.assert_frame_equal(fresh.reset_index(drop=True),
                                  rows_missing_from(stored, expected, schema.SPLIT_COLUMNS).reset_index(drop=True))


# ---- `_added_events`: append the new events, or rewrite when a stored one changed ------------------

def _events(rows) -> pa.Table:
    frame = pd.DataFrame(rows, columns=["symbol", "event_date", "kind", "cash_amount", "split_to"])
    return pa.Table.from_pandas(frame.astype({"event_date": "datetime64[ns]"}), preserve_index=False)


STORED_EVENTS = [("A", "2024-01-03", "dividend", 0.5, np.nan), ("A", "2024-01-05", "split", np.nan, 2.0)]


def test_added_events_when_stored_ones_come_back_unchanged_then_only_the_new_rows():
    recomputed = _events(STORED_EVENTS + [("A", "2024-01-08", "dividend", 0.25, np.nan)])
    added = added_events(_events(STORED_EVENTS), recomputed).to_pandas()
    assert list(zip(added["event_date"].dt.strftime("%m-%d"), added["cash_amount"])) == [("01-08", 0.25)]
    assert added_events(_events(STORED_EVENTS), _events(STORED_EVENTS)).num_rows == 0  # NaN equals NaN here


@pytest.mark.parametrize("recomputed", [
    [("A", "2024-01-03", "dividend", 0.75, np.nan), ("A", "2024-01-05", "split", np.nan, 2.0)],  # a value changed
    [("A", "2024-01-05", "split", np.nan, 2.0), ("A", "2024-01-08", "dividend", 0.25, np.nan)],  # one went
    [("A", "2024-01-03", "dividend", 0.5, np.nan)],  # one went whose values are all missing
])
def test_added_events_when_a_stored_event_changed_or_went_then_none(recomputed):
    stored = STORED_EVENTS[:1] + [("A", "2024-01-05", "split", np.nan, np.nan)] if len(recomputed) == 1 else STORED_EVENTS
    assert added_events(_events(stored), _events(recomputed)) is None


# ---- tables a refreeze leaves alone are not written again ---------------------------------------

def _trading_on_the_last_two_days(bars: pd.DataFrame) -> list[str]:
    """Symbols with bars on 2021-06-29 and 2021-06-30: a dividend going ex on the 30th applies."""
    last_two = bars.loc[bars["date"] >= "2021-06-29"].groupby("symbol", observed=True)["date"].count()
    return sorted(str(s) for s in last_two[last_two == 2].index)


def _record_writes(monkeypatch) -> list[str]:
    """The roles of the derived tables written from here on."""
    written: list[str] = []
    original = file_store.ContentStore.write

    def recording(self, table, role, year=None):
        if role != "raw_bars":
            written.append(role)
        return original(self, table, role, year)

    monkeypatch.setattr(file_store.ContentStore, "write", recording)
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
    special = pd.DataFrame({"symbol": [_trading_on_the_last_two_days(bars)[0]],
                            "ex_dividend_date": [pd.Timestamp("2021-06-30")], "cash_amount": [0.01]})
    stepwise = Lake(tmp_path / "stepwise")
    first = stepwise.freeze(bars, splits, divs, provider="simulated").version
    written = _record_writes(monkeypatch)
    second = stepwise.freeze(bars, splits, pd.concat([divs, special]), provider="simulated").version
    assert sorted(written) == ["action_provenance", "adjustment_events", "dividends", "factors"]
    assert second.files_with_role("splits") == first.files_with_role("splits")
    # the new dividend and its event are added as a file each; the factors are written anew
    assert [len(second.files_with_role(r)) for r in ("dividends", "action_provenance", "adjustment_events", "factors")] \
        == [2, 2, 2, 1]
    assert set(first.files_with_role("dividends")) < set(second.files_with_role("dividends"))
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(bars, splits, pd.concat([divs, special]), provider="simulated")
    for role in ("dividends", "factors", "adjustment_events"):
        pd.testing.assert_frame_equal(stepwise.derived_table(role), fresh.derived_table(role))
    assert second.row_counts["dividends"] == len(divs) + 1


def test_refreeze_when_a_table_would_pass_the_segment_limit_then_it_is_written_as_one_file(tmp_path, sim, monkeypatch):
    monkeypatch.setattr(segments, "SEGMENTS_MAX", 3)
    bars, splits, divs = sim_inputs(sim)
    symbols = _trading_on_the_last_two_days(bars)
    stepwise = Lake(tmp_path / "stepwise")
    stepwise.freeze(bars, splits, divs, provider="simulated")
    counts, added = [], divs
    for i in range(4):  # one more special dividend each time
        special = pd.DataFrame({"symbol": [symbols[i]], "ex_dividend_date": [pd.Timestamp("2021-06-30")],
                                "cash_amount": [0.01]})
        added = pd.concat([added, special], ignore_index=True)
        version = stepwise.freeze(bars, splits, added, provider="simulated").version
        counts.append(len(version.files_with_role("dividends")))
        fresh = Lake(tmp_path / f"fresh{i}")
        fresh.freeze(bars, splits, added, provider="simulated")
        for role in ("dividends", "action_provenance", "factors", "adjustment_events"):
            got, want = stepwise.derived_table(role), fresh.derived_table(role)
            if role == "action_provenance":  # stamped with the time each action was first fetched
                got, want = got.drop(columns="first_seen_at"), want.drop(columns="first_seen_at")
            pd.testing.assert_frame_equal(got, want)
    assert counts == [2, 3, 1, 2]  # 1 + 1, + 1, then compacted into one, then one added again


def test_refreeze_when_a_late_bar_changes_an_applied_event_then_the_events_are_written_as_one_file(tmp_path, sim):
    bars, splits, divs = sim_inputs(sim)
    ex = divs.iloc[len(divs) // 2]
    late = (bars["symbol"] == ex["symbol"]) & (bars["date"] == bars.loc[bars["date"] < ex["ex_dividend_date"], "date"].max())
    stepwise = Lake(tmp_path / "stepwise")
    stepwise.freeze(bars.loc[~late], splits, divs, provider="simulated")
    version = stepwise.freeze(bars, splits, divs, provider="simulated").version
    assert len(version.files_with_role("adjustment_events")) == 1
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(bars, splits, divs, provider="simulated")
    for role in ("factors", "adjustment_events"):
        pd.testing.assert_frame_equal(stepwise.derived_table(role), fresh.derived_table(role))


def _table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


# ---- `_replace_symbols`: some symbols' rows swapped for recomputed ones -------------------------

_FACTOR_KEYS = ["symbol", "valid_from"]
_factor_row = st.tuples(st.sampled_from(["A", "AA", "AB", "B", "BRK.B", "Z"]), st.integers(min_value=0, max_value=9),
                        st.sampled_from([0.5, 0.9, 1.0]))


def _factors(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["symbol", "day", "price_factor"])
    frame["valid_from"] = pd.Timestamp("2024-01-02") + pd.to_timedelta(frame["day"], unit="D")
    return frame[["symbol", "valid_from", "price_factor"]].astype({"symbol": str, "valid_from": "datetime64[ns]", "price_factor": "float64"})


@settings(max_examples=200, deadline=None)
@given(st.lists(_factor_row, max_size=30), st.lists(_factor_row, max_size=10),
       st.sets(st.sampled_from(["A", "AA", "AB", "B", "BRK.B", "Z", "NEW"]), max_size=4), st.booleans())
def test_replace_symbols_then_same_as_dropping_them_and_sorting_everything(stored_rows, fresh_rows, replaced, shuffle):
    stored = _factors(stored_rows).sort_values(_FACTOR_KEYS, kind="stable").reset_index(drop=True)
    if shuffle:  # stored out of symbol order: the slow path
        stored = stored.iloc[::-1].reset_index(drop=True)
    fresh = _factors([row for row in fresh_rows if row[0] in replaced])  # only replaced symbols are recomputed
    expected = pd.concat([stored.loc[~stored["symbol"].isin(replaced)], fresh], ignore_index=True)
    expected = expected.sort_values(_FACTOR_KEYS, kind="stable").reset_index(drop=True)
    got = replace_symbols(_table(stored), _table(fresh).cast(_table(stored).schema), set(replaced), _FACTOR_KEYS).to_pandas()
    if shuffle:  # ties among the kept rows may come in another order; the rows and keys must match
        got = got.sort_values(_FACTOR_KEYS + ["price_factor"], kind="stable").reset_index(drop=True)
        expected = expected.sort_values(_FACTOR_KEYS + ["price_factor"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)


# ---- raw files of a year are merged once there are too many ---------------------------------------

def test_refreeze_when_a_year_passes_the_raw_file_limit_then_its_small_files_are_merged(tmp_path, sim, monkeypatch):
    monkeypatch.setattr(raw_bars, "RAW_FILES_PER_YEAR", 3)
    bars, splits, divs = sim_inputs(sim)
    days = sorted(bars["date"].unique())[-5:]
    stepwise = Lake(tmp_path / "stepwise", retention=100)
    as_of = days[-1].date()  # 2021 is the current year: its bars are in year files
    stepwise.freeze(bars[bars["date"] < days[0]], splits, divs, provider="simulated", as_of=as_of)
    counts = []
    for day in days:  # one session per refreeze, as the nightly schedule adds them
        version = stepwise.freeze(bars[bars["date"] <= day], splits, divs, provider="simulated", as_of=as_of).version
        counts.append(sum(e.path.startswith("raw/bars/year=2021/") for e in version.files_with_role("raw_bars")))
    # 1 + 1, + 1, then 4 > 3: the three small files merged beside the largest, and again
    assert counts == [2, 3, 2, 3, 2]
    assert stepwise.verify() == []
    assert stepwise.current_version().row_counts["bars"] == len(bars)
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(bars, splits, divs, provider="simulated")
    sql = "SELECT * FROM bars ORDER BY symbol, date"
    pd.testing.assert_frame_equal(stepwise.query(sql), fresh.query(sql))
    again = stepwise.freeze(bars, splits, divs, provider="simulated", as_of=as_of)  # nothing new: nothing merged, no version
    assert not again.created


def test_refreeze_when_the_dividend_convention_changes_then_every_factor_is_that_of_a_fresh_freeze(tmp_path, sim):
    bars, splits, divs = sim_inputs(sim)
    days = sorted(bars["date"].unique())
    switched = Lake(tmp_path / "switched")
    switched.freeze(bars[bars["date"] < days[-1]], splits, divs.iloc[:-3], provider="simulated")  # crsp
    version = switched.freeze(bars, splits, divs, provider="simulated", dividend_convention="quandl").version
    assert version.dividend_convention == "quandl"
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(bars, splits, divs, provider="simulated", dividend_convention="quandl")
    for role in ("dividends", "factors", "adjustment_events"):
        pd.testing.assert_frame_equal(switched.derived_table(role), fresh.derived_table(role))
    sql = "SELECT * FROM bars ORDER BY symbol, date"
    pd.testing.assert_frame_equal(switched.query(sql), fresh.query(sql))


# ---- a late bar between an event's session and the bar its ex close came from ---------------------

def _gap_market():
    """AAA over 2024-01-02..12 with a $1 dividend going ex on 01-04; closes by hand."""
    days = market_calendar.sessions("2024-01-02", "2024-01-12")
    bars = pd.DataFrame({"symbol": "AAA", "date": days, "open": 100.0, "high": 110.0, "low": 90.0,
                         "close": [100.0, 101, 99, 95, 96, 97, 98, 99, 100], "volume": 1000.0})
    divs = pd.DataFrame({"symbol": ["AAA"], "ex_dividend_date": [pd.Timestamp("2024-01-04")], "cash_amount": [1.0]})
    return bars, schema.empty_splits(), divs


@pytest.mark.parametrize("convention, factor", [("crsp", 1 - 1 / 101), ("quandl", 95 / 96)])
def test_refreeze_when_a_late_bar_falls_between_the_session_and_the_ex_bar_then_the_event_uses_it(
        tmp_path, convention, factor):
    # AAA did not trade on 01-04 (the session) nor 01-05 at first: the event's ex close came from
    # 01-08 (96). Then the 01-05 bar (95) arrives: it is now the first bar on or after the session.
    bars, splits, divs = _gap_market()
    missing = bars["date"].isin(pd.to_datetime(["2024-01-04", "2024-01-05"]))
    late = bars["date"] == pd.Timestamp("2024-01-05")
    lake = Lake(tmp_path / "lake")
    lake.freeze(bars[~missing], splits, divs, provider="test", dividend_convention=convention)
    assert lake.events()[["ex_date", "close_ex"]].values.tolist() == [[pd.Timestamp("2024-01-08"), 96.0]]
    lake.freeze(bars[~missing | late], splits, divs, provider="test", dividend_convention=convention)
    event = lake.events().iloc[0]
    assert (event["ex_date"], event["close_prev"], event["close_ex"]) == (pd.Timestamp("2024-01-05"), 101.0, 95.0)
    assert event["event_factor"] == pytest.approx(factor, rel=1e-12)


def test_refreeze_when_stored_events_lack_ex_dates_then_every_close_is_looked_up_again(tmp_path, sim, monkeypatch):
    # a lake written before events recorded ex_date: its first refreeze recomputes every event
    bars, splits, divs = sim_inputs(sim)
    days = sorted(bars["date"].unique())
    old_columns = tuple(c for c in adjustments.EVENT_COLUMNS if c != "ex_date")
    upgraded = Lake(tmp_path / "upgraded")
    with monkeypatch.context() as patch:
        patch.setattr(adjustments, "EVENT_COLUMNS", old_columns)
        patch.setattr(event_checks, "check_adjustment", lambda adjustment: None)  # that writer had no event checks
        upgraded.freeze(bars[bars["date"] < days[-1]], splits, divs, provider="simulated")
    assert "ex_date" not in upgraded.events().columns
    upgraded.freeze(bars, splits, divs, provider="simulated")
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(bars, splits, divs, provider="simulated")
    for role in ("factors", "adjustment_events"):
        pd.testing.assert_frame_equal(upgraded.derived_table(role), fresh.derived_table(role))


def test_refreeze_when_events_spanning_files_are_rewritten_then_the_file_and_the_result_are_in_order(tmp_path, sim):
    # the last symbol's first dividend arrives late (its event is appended as a second file); then
    # a late bar before the first symbol's last dividend rewrites the events as one file
    bars, splits, divs = sim_inputs(sim)
    divs = divs.sort_values(["symbol", "ex_dividend_date"]).reset_index(drop=True)
    payers = sorted(str(s) for s in divs["symbol"].unique())
    late_div = divs.index[divs["symbol"] == payers[-1]][0]
    last_ex = divs.loc[divs["symbol"] == payers[0], "ex_dividend_date"].iloc[-1]
    first = bars["symbol"] == payers[0]
    late_bar = first & (bars["date"] == bars.loc[first & (bars["date"] < last_ex), "date"].max())
    lake = Lake(tmp_path / "lake")
    lake.freeze(bars[~late_bar], splits, divs.drop(late_div), provider="simulated")
    appended = lake.freeze(bars[~late_bar], splits, divs, provider="simulated")
    assert len(appended.version.files_with_role("adjustment_events")) == 2
    pd.testing.assert_frame_equal(appended.events, lake.events())  # the result lists them in order too
    rewritten = lake.freeze(bars, splits, divs, provider="simulated").version
    files = rewritten.files_with_role("adjustment_events")
    assert len(files) == 1
    stored = pd.read_parquet(lake.abspath(files[0]))
    pd.testing.assert_frame_equal(stored, stored.sort_values(["symbol", "event_date", "kind"], kind="stable"))
