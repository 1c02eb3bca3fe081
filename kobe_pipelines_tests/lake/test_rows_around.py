"""`_rows_around`: the bars the factor computation needs around each event, picked by key search."""

from __future__ import annotations

import pandas as pd

from kobe_pipelines.lake.freeze_steps import _rows_around


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
