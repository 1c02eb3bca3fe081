"""The bars a nightly scoring reads: the last sessions the model looks back over, not the history.

A score at the latest session needs, per symbol, `history_rows` rows: the feature lookback
(`features.WARMUP_ROWS`) plus the model's sequence window. Lookbacks count a symbol's own trading
rows, so a symbol that did not trade on some of the recent sessions needs rows from further back:
those symbols (and only those) are read further back, as far as their history goes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kobe_pipelines import market_calendar

SESSION_MARGIN = 5  # sessions read beyond the rows needed, so a day or two without a bar costs no second read


@dataclass(frozen=True)
class ScoringBars:
    bars: pd.DataFrame  # total-return bars of the rows read, sorted by symbol and date
    latest: pd.Timestamp  # the session scored
    expected: tuple[str, ...]  # symbols trading on it with enough rows to be scored
    rows_read: int


def scoring_bars(lake, version_id: str, history_rows: int) -> ScoringBars:
    """Total-return bars of lake version `version_id` that a score of its last session needs."""
    manifest = lake.version(version_id)
    latest = pd.Timestamp(manifest.end_date)
    sessions = market_calendar.sessions(latest - pd.Timedelta(days=2 * (history_rows + SESSION_MARGIN) + 14), latest)
    start = sessions[-(history_rows + SESSION_MARGIN)] if len(sessions) >= history_rows + SESSION_MARGIN else sessions[0]
    bars = lake.read_bars(version_id=version_id, view="total", start=start, end=latest)
    rows_read = len(bars)
    counts = bars.groupby("symbol", observed=True)["date"].agg(["count", "max"])
    short = counts.index[(counts["max"] == latest) & (counts["count"] < history_rows)]
    if len(short):  # traded today but not on every recent session: read their history back
        longer = lake.read_bars(version_id=version_id, view="total", symbols=[str(s) for s in short], end=latest)
        rows_read += len(longer)
        bars = pd.concat([bars.loc[~bars["symbol"].isin(short)], longer], ignore_index=True)
        bars = bars.sort_values(["symbol", "date"], kind="mergesort").reset_index(drop=True)
        counts = bars.groupby("symbol", observed=True)["date"].agg(["count", "max"])
    expected = counts.index[(counts["max"] == latest) & (counts["count"] >= history_rows)]
    return ScoringBars(bars, latest, tuple(sorted(str(s) for s in expected)), rows_read)
