"""The session a manual order is for, judged in America/New_York (kobe_pipelines/market_calendar.py)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from kobe_pipelines.market_calendar import last_completed_session, next_session_to_trade

NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize("now, session", [
    # Monday 2026-12-07: a regular session, closing at 16:00
    (dt.datetime(2026, 12, 7, 8, 0, tzinfo=NY), "2026-12-07"),    # before the open
    (dt.datetime(2026, 12, 7, 15, 59, tzinfo=NY), "2026-12-07"),  # a minute before the close
    (dt.datetime(2026, 12, 7, 16, 1, tzinfo=NY), "2026-12-08"),   # a minute after it
    (dt.datetime(2026, 12, 7, 21, 15, tzinfo=dt.timezone.utc), "2026-12-08"),  # 16:15 in New York
    # Saturday 2026-12-05: the next session is Monday's
    (dt.datetime(2026, 12, 5, 12, 0, tzinfo=NY), "2026-12-07"),
    # Thanksgiving, Thursday 2026-11-26, is a holiday; Friday 2026-11-27 closes early, at 13:00
    (dt.datetime(2026, 11, 26, 12, 0, tzinfo=NY), "2026-11-27"),
    (dt.datetime(2026, 11, 27, 12, 59, tzinfo=NY), "2026-11-27"),
    (dt.datetime(2026, 11, 27, 13, 30, tzinfo=NY), "2026-11-30"),
])
def test_next_session_to_trade_when_now_is_given_then_the_first_session_whose_close_has_not_passed(now, session):
    assert str(next_session_to_trade(now).date()) == session


def test_next_session_to_trade_when_after_a_close_then_the_session_after_the_last_completed_one():
    now = dt.datetime(2026, 12, 4, 17, 0, tzinfo=NY)  # Friday after the close
    assert str(last_completed_session(now).date()) == "2026-12-04"
    assert str(next_session_to_trade(now).date()) == "2026-12-07"
