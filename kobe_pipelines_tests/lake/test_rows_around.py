"""`_rows_around`: the bars the factor computation needs around each event, picked by key search."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from kobe_pipelines import market_calendar
from kobe_pipelines.lake.freeze_steps import NewBars, _rows_around


def _bars(rows):
    return pd.DataFrame(rows, columns=["symbol", "date", "close"]).astype({"date": "datetime64[ns]"})


BARS = _bars([
    ("AAA", "2024-01-02", 10.0), ("AAA", "2024-01-03", 11.0), ("AAA", "2024-01-05", 12.0), ("AAA", "2024-01-08", 13.0),
    ("BBB", "2024-01-02", 20.0), ("BBB", "2024-01-03", 21.0),
    ("CCC", "2024-01-04", 30.0),
])


def _events(rows):
    return pd.DataFrame(rows, columns=["symbol", "event_date"]).astype({"event_date": "datetime64[ns]"})


def _picked(bars, events):
    out = _rows_around(bars, events)
    return sorted(zip(out["symbol"], out["date"].dt.strftime("%Y-%m-%d")))


def test_rows_around_when_event_falls_in_a_gap_then_the_bar_before_and_the_first_after_are_picked():
    # AAA has no bar on 01-04: the event needs 01-03 (last before) and 01-05 (first on or after)
    assert _picked(BARS, _events([("AAA", "2024-01-04")])) == [("AAA", "2024-01-03"), ("AAA", "2024-01-05")]


def test_rows_around_when_event_is_on_a_bar_then_that_bar_and_the_one_before():
    assert _picked(BARS, _events([("BBB", "2024-01-03")])) == [("BBB", "2024-01-02"), ("BBB", "2024-01-03")]


def test_rows_around_when_event_precedes_or_follows_the_history_then_only_the_bars_of_that_symbol():
    # before CCC's first bar: only that bar (never BBB's last one); after AAA's last bar: only it
    assert _picked(BARS, _events([("CCC", "2023-12-29"), ("AAA", "2024-02-01")])) == [
        ("AAA", "2024-01-08"), ("CCC", "2024-01-04")]


def test_rows_around_when_bars_arrive_unsorted_or_symbol_unknown_then_same_rows():
    shuffled = BARS.sample(frac=1.0, random_state=3).reset_index(drop=True)
    events = _events([("AAA", "2024-01-04"), ("BBB", "2024-01-03"), ("ZZZ", "2024-01-03")])
    assert _picked(shuffled, events) == [("AAA", "2024-01-03"), ("AAA", "2024-01-05"), ("BBB", "2024-01-02"),
                                         ("BBB", "2024-01-03")]


def _categorical(bars, categories):
    return bars.assign(symbol=pd.Categorical(bars["symbol"], categories=categories))


def test_rows_around_when_symbols_are_categorical_in_reverse_order_then_same_rows_as_strings():
    # A Parquet source read with its dictionary gives categories in the file's order, not by name:
    # ZZZ unused, CCC first. Sorted and shuffled rows must pick what the string column picks.
    events = _events([("AAA", "2024-01-04"), ("BBB", "2024-01-03"), ("CCC", "2023-12-29")])
    expected = [("AAA", "2024-01-03"), ("AAA", "2024-01-05"), ("BBB", "2024-01-02"), ("BBB", "2024-01-03"),
                ("CCC", "2024-01-04")]
    for bars in (BARS, BARS.sample(frac=1.0, random_state=5).reset_index(drop=True)):
        assert _picked(_categorical(bars, ["ZZZ", "CCC", "BBB", "AAA"]), events) == expected


# ---- `NewBars.rows_around`: the new rows of a freeze, searched by validation's keys ----------------

def _full_bars(rows):
    frame = _bars(rows)
    return frame.assign(open=frame["close"], high=frame["close"], low=frame["close"], volume=100.0)[
        ["symbol", "date", "open", "high", "low", "close", "volume"]]


def _by_hand(bars, events):
    """Each event's symbol's last bar before the event and first bar on or after it, by scanning."""
    picked = set()
    for symbol, day in zip(events["symbol"], events["event_date"]):
        own = bars.loc[bars["symbol"] == symbol, "date"]
        if (own < day).any():
            picked.add((symbol, own[own < day].max().strftime("%Y-%m-%d")))
        if (own >= day).any():
            picked.add((symbol, own[own >= day].min().strftime("%Y-%m-%d")))
    return sorted(picked)


_symbols = st.sampled_from(["A", "AA", "B", "BRK.B", "C"])
_days = st.integers(min_value=0, max_value=20)


@settings(max_examples=150, deadline=None)
@given(st.sets(st.tuples(_symbols, _days), min_size=1, max_size=40),
       st.lists(st.tuples(st.sampled_from(["A", "AA", "B", "BRK.B", "C", "ZZ"]), _days), min_size=1, max_size=8),
       st.booleans(), st.booleans())
def test_new_bars_rows_around_then_the_rows_a_scan_finds(bar_keys, event_rows, categorical, shuffled):
    day0 = pd.Timestamp("2024-01-01")
    sessions = market_calendar.sessions("2024-01-02", "2024-02-15")  # bars are dated on sessions; events on any day
    rows = sorted((s, str(sessions[d].date()), 10.0) for s, d in bar_keys)
    bars = _full_bars(rows)
    if categorical:
        bars = _categorical(bars, ["C", "BRK.B", "B", "AA", "A", "Q"])  # categories not in name order, one unused
    if shuffled:
        bars = bars.sample(frac=1.0, random_state=len(rows)).reset_index(drop=True)
    events = _events([(s, str((day0 + pd.Timedelta(days=d)).date())) for s, d in event_rows])
    new = NewBars.validated(bars, as_of=dt.date(2030, 1, 1))
    out = new.rows_around(events)
    got = sorted(zip(out["symbol"].astype(str), out["date"].dt.strftime("%Y-%m-%d")))
    assert got == _by_hand(bars.astype({"symbol": str}), events)


def test_first_freeze_when_bars_are_sorted_then_the_events_are_found_by_validation_keys(tmp_path, monkeypatch):
    from kobe_pipelines.lake import Lake, freeze_steps

    calls = []
    real = freeze_steps._rows_by_keys
    monkeypatch.setattr(freeze_steps, "_rows_by_keys", lambda keys, sessions: calls.append(len(sessions)) or real(keys, sessions))
    bars = _full_bars([("AAA", "2024-01-02", 20.0), ("AAA", "2024-01-03", 10.5), ("BBB", "2024-01-02", 20.0),
                       ("BBB", "2024-01-03", 21.0)])
    splits = pd.DataFrame({"symbol": ["AAA"], "execution_date": [pd.Timestamp("2024-01-03")], "split_from": [1.0],
                           "split_to": [2.0]})
    Lake(tmp_path / "lake").freeze(bars, splits, pd.DataFrame(columns=["symbol", "ex_dividend_date", "cash_amount"]),
                                   provider="test", as_of=dt.date(2030, 1, 1))
    assert calls == [1]
