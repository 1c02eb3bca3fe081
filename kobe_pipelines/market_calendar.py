"""The exchange's trading calendar (XNYS, America/New_York) via exchange-calendars."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd

EXCHANGE = "XNYS"
EXCHANGE_TZ = "America/New_York"


@lru_cache(maxsize=1)
def xnys() -> xcals.ExchangeCalendar:
    # exchange-calendars' default window starts 20 years back; ask for more so long
    # simulated histories and old reference data fit.
    return xcals.get_calendar(EXCHANGE, start="1990-01-02")


@lru_cache(maxsize=1)
def next_session_days() -> tuple[int, np.ndarray]:
    """For every calendar day from the calendar's first session to its last, the day number
    (days since 1970-01-01) of the session on it or the next one after it: (the first day's
    number, that table). A look-up table, so mapping 100k+ action dates is one gather."""
    days = xnys().sessions.to_numpy(dtype="datetime64[D]").view(np.int64)
    every_day = np.arange(days[0], days[-1] + 1)
    return int(days[0]), days[np.searchsorted(days, every_day, side="left")]


def sessions(start: dt.date | str, end: dt.date | str) -> pd.DatetimeIndex:
    """Trading sessions from `start` to `end` inclusive, as naive midnight timestamps."""
    cal = xnys()
    first = max(pd.Timestamp(start), cal.first_session)
    last = min(pd.Timestamp(end), cal.last_session)
    if first > last:
        return pd.DatetimeIndex([])
    return cal.sessions_in_range(first, last)


def is_session(day: dt.date | str) -> bool:
    return bool(xnys().is_session(pd.Timestamp(day)))


def next_session_on_or_after(day: dt.date | str) -> pd.Timestamp:
    """The session on `day`, or the next one when `day` is a weekend or holiday."""
    return xnys().date_to_session(pd.Timestamp(day), direction="next")


def previous_session(day: dt.date | str) -> pd.Timestamp:
    """The last session strictly before `day`."""
    cal = xnys()
    ts = pd.Timestamp(day)
    if cal.is_session(ts):
        return cal.previous_session(ts)
    return cal.date_to_session(ts, direction="previous")


def last_completed_session(now: dt.datetime | None = None) -> pd.Timestamp:
    """The latest session whose close has passed, judged in America/New_York."""
    cal = xnys()
    now_ts = pd.Timestamp(now) if now is not None else pd.Timestamp.now(tz="UTC")
    if now_ts.tzinfo is None:
        now_ts = now_ts.tz_localize(EXCHANGE_TZ)
    today = now_ts.tz_convert(EXCHANGE_TZ).tz_localize(None).normalize()
    candidate = cal.date_to_session(today, direction="previous")
    if cal.session_close(candidate) > now_ts.tz_convert("UTC"):
        candidate = cal.previous_session(candidate)
    return candidate


def next_session_to_trade(now: dt.datetime | None = None) -> pd.Timestamp:
    """The first session whose close has not passed, judged in America/New_York: today's until its
    close (early closes included), then the next one."""
    return xnys().next_session(last_completed_session(now))
