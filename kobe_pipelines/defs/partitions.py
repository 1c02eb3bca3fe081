"""Partitions, defined once: one partition per XNYS session (America/New_York)."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from kobe_pipelines import market_calendar

HISTORY_START = "2019-01-02"


def _non_session_weekdays(start: str) -> list[pd.Timestamp]:
    cal = market_calendar.xnys()
    weekdays = pd.bdate_range(start, cal.last_session)
    return [day for day in weekdays if not cal.is_session(day)]


def build_xnys_daily_partitions(start: str = HISTORY_START) -> dg.TimeWindowPartitionsDefinition:
    """Weekday partitions minus the exchange's holidays. `end_offset=1` exposes today's session
    so the evening schedule can ingest it once the close has passed."""
    return dg.TimeWindowPartitionsDefinition(
        start=start,
        fmt="%Y-%m-%d",
        cron_schedule="0 0 * * 1-5",
        timezone=market_calendar.EXCHANGE_TZ,
        end_offset=1,
        exclusions=[day.to_pydatetime() for day in _non_session_weekdays(start)],
    )


xnys_daily_partitions = build_xnys_daily_partitions()
