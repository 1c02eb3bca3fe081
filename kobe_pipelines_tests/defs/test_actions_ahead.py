"""Corporate actions fetched ahead are taken only by the same run for the same dates, once."""

from __future__ import annotations

import pandas as pd

from kobe_pipelines.defs.lake import actions_ahead
from kobe_pipelines.defs.lake.actions_ahead import ActionsWindow

WINDOW = ActionsWindow("2024-01-01", "2024-03-28")


class Provider:
    def __init__(self) -> None:
        self.calls = 0

    def splits(self, start: str, end: str) -> pd.DataFrame:
        self.calls += 1
        return pd.DataFrame({"symbol": ["AAA"], "execution_date": [pd.Timestamp(start)]})

    def dividends(self, start: str, end: str) -> pd.DataFrame:
        return pd.DataFrame({"symbol": ["BBB"], "ex_date": [pd.Timestamp(end)]})


def test_take_when_the_same_run_and_window_then_the_fetched_actions_once():
    actions_ahead.fetch_ahead("run-1", Provider(), WINDOW)
    splits, dividends = actions_ahead.take("run-1", WINDOW)
    assert list(splits["symbol"]) == ["AAA"] and list(dividends["ex_date"]) == [pd.Timestamp("2024-03-28")]
    assert actions_ahead.take("run-1", WINDOW) is None  # no longer held


def test_take_when_another_run_or_other_dates_then_nothing_and_nothing_held_after():
    actions_ahead.fetch_ahead("run-1", Provider(), WINDOW)
    assert actions_ahead.take("run-2", WINDOW) is None
    actions_ahead.fetch_ahead("run-1", Provider(), WINDOW)
    assert actions_ahead.take("run-1", ActionsWindow("2024-01-01", "2024-03-27")) is None
    assert actions_ahead.take("run-1", WINDOW) is None


def test_fetch_ahead_when_the_provider_raises_then_nothing_is_held_not_even_an_earlier_fetch():
    class Down(Provider):
        def dividends(self, start: str, end: str) -> pd.DataFrame:
            raise ConnectionError("down")

    actions_ahead.fetch_ahead("run-1", Provider(), WINDOW)
    actions_ahead.fetch_ahead("run-1", Down(), WINDOW)
    assert actions_ahead.take("run-1", WINDOW) is None


def test_fetch_ahead_when_there_is_no_window_then_nothing_is_fetched_or_held():
    provider = Provider()
    actions_ahead.fetch_ahead("run-1", provider, WINDOW)
    actions_ahead.fetch_ahead("run-1", provider, None)
    assert provider.calls == 1 and actions_ahead.take("run-1", WINDOW) is None
