"""Indicators on adjusted daily bars (columns of `kobe_pipelines.data.schema.BAR_COLUMNS`).

Prices are USD per share, dates naive midnights naming XNYS sessions.
"""

from __future__ import annotations

import pandas as pd


def last_close_and_atr(bars: pd.DataFrame, period: int = 14) -> pd.DataFrame:
    """Per symbol: the latest bar's date and close, and the average true range over `period` bars.

    True range of day t (USD): ``max(high_t - low_t, |high_t - close_{t-1}|, |low_t - close_{t-1}|)``.
    ATR (USD) is the simple mean of the last `period` true ranges. Each true range needs the
    previous close, so a symbol needs at least ``period + 1`` bars; with fewer, or with a NaN
    in the prices used, its `atr` is NaN. (Simple mean rather than Wilder's smoothing: the
    value then depends only on the last ``period + 1`` bars, not on how much history is loaded.)

    Returns a DataFrame indexed by symbol with columns `last_date`, `last_close`, `atr`,
    sorted by symbol.
    """
    if period < 1:
        raise ValueError(f"ATR period must be at least 1 (got {period})")
    columns = ["last_date", "last_close", "atr"]
    if bars.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="symbol"))
    frame = bars.loc[:, ["symbol", "date", "high", "low", "close"]]
    # Only the last period + 1 bars of each symbol matter: taken before sorting when the rows are
    # already in date order (each symbol's rows then are too), else after a full sort.
    if frame["date"].is_monotonic_increasing:
        frame = frame.groupby("symbol", sort=False).tail(period + 1).sort_values(["symbol", "date"], kind="mergesort")
    else:
        frame = frame.sort_values(["symbol", "date"], kind="mergesort").groupby("symbol", sort=False).tail(period + 1)
    prev_close = frame.groupby("symbol", sort=False)["close"].shift(1)
    ranges = pd.concat(
        [frame["high"] - frame["low"], (frame["high"] - prev_close).abs(), (frame["low"] - prev_close).abs()],
        axis=1,
    )
    # skipna=False: a NaN anywhere in a day's inputs makes that day's range (and the ATR) NaN.
    frame = frame.assign(tr=ranges.max(axis=1, skipna=False))
    frame.loc[prev_close.isna(), "tr"] = float("nan")
    grouped = frame.groupby("symbol", sort=True)
    last = grouped.tail(1).set_index("symbol").sort_index()
    tail = frame.groupby("symbol", sort=False).tail(period)
    by_symbol = tail.groupby("symbol", sort=True)["tr"]
    complete = (by_symbol.size() == period) & (by_symbol.count() == period)  # period ranges, none NaN
    atr = by_symbol.mean().where(complete)
    out = pd.DataFrame({"last_date": last["date"], "last_close": last["close"], "atr": atr.reindex(last.index)})
    out.index.name = "symbol"
    return out
