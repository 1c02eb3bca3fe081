"""The trading run reads only the actions that can take effect in its window (defs.trading.assets)."""

from __future__ import annotations

import pandas as pd

from kobe_pipelines.defs.trading.assets import _dated_near
from kobe_pipelines.execution.corporate_actions import actions_from_tables


def splits() -> pd.DataFrame:
    # 2024-03-02 is a Saturday: that split takes effect at Monday 2024-03-04's session
    return pd.DataFrame({"symbol": ["AAA", "BBB", "CCC", "DDD"],
                         "execution_date": pd.to_datetime(["2023-06-01", "2024-02-29", "2024-03-02", "2024-03-05"]),
                         "split_from": 1.0, "split_to": 2.0})


def test_dated_near_when_an_action_dated_before_the_window_takes_effect_in_it_then_it_is_kept():
    start = pd.Timestamp("2024-03-04")
    near = _dated_near(splits(), "execution_date", start)
    assert list(near["symbol"]) == ["BBB", "CCC", "DDD"]  # the 2023 split is dropped, the weekend one kept
    window = {"start": "2024-03-04", "end": "2024-03-08"}
    assert actions_from_tables(near, None, **window) == actions_from_tables(splits(), None, **window)
    assert [(a.symbol, a.session) for a in actions_from_tables(near, None, **window)] == [
        ("CCC", "2024-03-04"), ("DDD", "2024-03-05")]


def test_dated_near_when_the_version_has_no_table_then_none():
    assert _dated_near(None, "execution_date", pd.Timestamp("2024-03-04")) is None
