"""The raw closes each corporate action is computed from, and when a late bar restates them.

An applied event records two raw bars of its symbol: the last before its session (`prev_date`,
`close_prev`) and the first on or after it (`ex_date`, `close_ex`); its factor comes from those
closes (`data.adjustments`). Raw bars never change, so a refreeze reuses the closes a stored event
recorded -- unless a new bar of that symbol arrives dated at or before the event's `ex_date`:
such a late bar is either a new last bar before the session or a new first bar on or after it,
and the event is restated (`restated_by_new_bars`, the one place this is decided). Every other
event looks its closes up: in the freeze's new rows (in memory) and, for symbols already stored,
in the stored raw files (three columns, those symbols only, a window around the events first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kobe_pipelines.data import adjustments, schema, validation
from kobe_pipelines.lake import duck
from kobe_pipelines.lake.arrow_keys import frame_of_query, frame_rows_of, rows_around, rows_found_in, symbol_set
from kobe_pipelines.lake.manifest import FileEntry, Manifest
from kobe_pipelines.lake.raw_bars import NewRows

NEAR_DAYS = 40  # calendar days around an event that the first, windowed look-up of stored files covers
CLOSE_COLUMNS = ["symbol", "date", "close"]


def restated_by_new_bars(symbols: pd.Series, ex_dates: pd.Series, first_new: pd.Series) -> np.ndarray:
    """For applied events (their symbols, and the dates of the bars their ex closes came from):
    whether a new bar of the symbol (`first_new`: each symbol's first new bar, as
    `NewBars.first_dates`) lands at or before that bar. Such a late bar changes the close before
    the session or becomes the first bar on or after it: the event must be computed again."""
    if first_new.empty or symbols.empty:
        return np.zeros(len(symbols), dtype=bool)
    at = first_new.index.get_indexer(symbols)
    first = np.where(at >= 0, first_new.to_numpy(dtype="datetime64[ns]")[np.maximum(at, 0)], np.datetime64("NaT", "ns"))
    return (at >= 0) & (ex_dates.to_numpy(dtype="datetime64[ns]") >= first)


def restated_events(events: pa.Table, first_new: pd.Series) -> np.ndarray:
    """`restated_by_new_bars` over a stored events table (a boolean per row). Only events from
    the first new bar on can be restated: only those become pandas."""
    restated = np.zeros(events.num_rows, dtype=bool)
    if first_new.empty or events.num_rows == 0:
        return restated
    dates = events.column("ex_date")
    later = pc.fill_null(pc.greater_equal(dates, pa.scalar(first_new.min(), type=dates.type)), False)
    maybe = np.flatnonzero(later.to_numpy(zero_copy_only=False))
    if len(maybe):
        late = events.select(["symbol", "ex_date"]).take(pa.array(maybe)).to_pandas()
        restated[maybe[restated_by_new_bars(late["symbol"], late["ex_date"], first_new)]] = True
    return restated


def bars_near_events(
    root: Path, previous: Manifest | None, new_rows: NewRows, splits: pd.DataFrame, divs: pd.DataFrame,
    also: set[str] | None = None, known: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, set[str]]:
    """The raw closes the factor computation needs (symbol, date, close, each (symbol, date) once,
    sorted): for each event, the last bar before its session and the first bar on or after it;
    and the symbols whose bars had to be looked up. With `also` (a refreeze recomputing only some
    symbols), only the bars of those symbols and of the looked-up ones are returned, and the
    second value is that union. `known`: the previous version's applied events (of the symbols in
    question), None when it has none; their closes are reused unless a late bar restates them."""
    sessions = pd.DataFrame(
        {
            "symbol": pd.concat([splits["symbol"], divs["symbol"]], ignore_index=True),
            "event_date": adjustments.effective_sessions(
                pd.concat([splits["execution_date"], divs["ex_dividend_date"]], ignore_index=True)
            ),
        }
    ).drop_duplicates()
    if sessions.empty:
        return schema.empty_bars()[CLOSE_COLUMNS], set()
    parts = []
    wanted: set[str] = set(also or ())
    if known is None:
        known = pd.DataFrame(columns=["symbol", "event_date"])
    if not known.empty:
        known = known[["symbol", "event_date", "prev_date", "close_prev", "ex_date", "close_ex"]]
        known = known.loc[~restated_by_new_bars(known["symbol"], known["ex_date"], new_rows.first_dates)]
        sessions = sessions.loc[~rows_found_in(sessions, known, ["symbol", "event_date"])]
        if also is not None:
            wanted = symbol_set(sessions) | also
            known = frame_rows_of(known, wanted)
        parts += [pd.DataFrame({"symbol": known["symbol"].to_numpy(), "date": known[date].to_numpy(), "close": known[close].to_numpy()})
                  for date, close in (("prev_date", "close_prev"), ("ex_date", "close_ex"))]
    if not sessions.empty:
        wanted |= symbol_set(sessions)
        fresh = new_rows.rows_around(sessions)
        parts.append(fresh)
        stored = previous.files_with_role("raw_bars") if previous else []
        if stored:
            parts.append(stored_rows_around(root, stored, sessions, fresh))
    frame = pd.concat(parts, ignore_index=True) if parts else schema.empty_bars()[CLOSE_COLUMNS]
    # each (symbol, date) once (its first row), sorted by them
    symbols = frame["symbol"].to_numpy(dtype=object)
    keys = validation.symbol_day_keys(pd.factorize(symbols, sort=True)[0], validation.day_numbers(frame["date"]))
    order = np.argsort(keys, kind="stable")
    first = order[np.concatenate(([True], keys[order][1:] != keys[order][:-1]))] if len(order) else order
    frame = pd.DataFrame({"symbol": pd.array(symbols[first], dtype=str),
                          "date": frame["date"].to_numpy(dtype="datetime64[ns]")[first],
                          "close": frame["close"].to_numpy(dtype=np.float64)[first]})
    return frame, wanted


def stored_rows_around(root: Path, stored: list[FileEntry], sessions: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """`rows_around` in the stored raw files, reading as little as possible (`fresh`: the rows
    already found around the events in the new bars).

    First only the files whose dates overlap NEAR_DAYS around some event are read, for the
    events' symbols: each event's window, clipped to the stored dates, lies wholly in the files
    read (a file holds whole years), so a bar found inside it is that side's nearest bar, and no
    bar inside it means none exists there. An event with a side still open (a long trading halt,
    a symbol new to the lake) is looked up again in every file."""
    near = pd.Timedelta(days=NEAR_DAYS)
    lo = (sessions["event_date"] - near).to_numpy(dtype="datetime64[ns]")
    hi = (sessions["event_date"] + near).to_numpy(dtype="datetime64[ns]")
    dated = [e for e in stored if e.min_date and e.max_date]
    if len(dated) != len(stored):
        return rows_around(stored_closes(root, stored, symbol_set(sessions)), sessions)
    first = min(np.datetime64(e.min_date, "ns") for e in stored)
    last = max(np.datetime64(e.max_date, "ns") for e in stored)
    windowed = [e for e in stored if bool(((lo <= np.datetime64(e.max_date, "ns")) & (hi >= np.datetime64(e.min_date, "ns"))).any())]
    found = rows_around(stored_closes(root, windowed, symbol_set(sessions)), sessions)
    before, after = nearest_sides(pd.concat([found, fresh], ignore_index=True), sessions)
    open_side = ((before < lo) & (lo > first)) | ((after > hi) & (hi < last))
    unresolved = sessions.loc[open_side]
    if unresolved.empty:
        return found
    again = rows_around(stored_closes(root, stored, symbol_set(unresolved)), unresolved)
    return pd.concat([found, again], ignore_index=True)


def nearest_sides(bars: pd.DataFrame, sessions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For each session: the date of the symbol's last bar in `bars` before it (a minimum date
    when none) and of its first bar on or after it (a maximum date when none). One binary search
    of (symbol, day) keys."""
    lowest, highest = np.datetime64("1677-09-22", "ns"), np.datetime64("2262-04-10", "ns")
    before = np.full(len(sessions), lowest)
    after = np.full(len(sessions), highest)
    if bars.empty or sessions.empty:
        return before, after
    codes, _ = pd.factorize(pd.concat([bars["symbol"].astype(str), sessions["symbol"].astype(str)], ignore_index=True))
    bar_dates = bars["date"].to_numpy(dtype="datetime64[ns]")
    keys = validation.symbol_day_keys(codes[:len(bars)], validation.day_numbers(bar_dates))
    order = np.argsort(keys, kind="stable")
    keys, bar_codes, bar_dates = keys[order], codes[:len(bars)][order], bar_dates[order]
    event_codes = codes[len(bars):]
    at = np.searchsorted(keys, validation.symbol_day_keys(event_codes, validation.day_numbers(sessions["event_date"])))
    prev, nxt = np.maximum(at - 1, 0), np.minimum(at, len(keys) - 1)
    has_prev = (at > 0) & (bar_codes[prev] == event_codes)
    has_next = (at < len(keys)) & (bar_codes[nxt] == event_codes)
    before[has_prev] = bar_dates[prev[has_prev]]
    after[has_next] = bar_dates[nxt[has_next]]
    return before, after


def stored_closes(root: Path, entries: list[FileEntry], symbols: set[str]) -> pd.DataFrame:
    """symbol, date, close of `symbols` from the raw files `entries`, sorted by symbol and date."""
    if not entries or not symbols:
        return schema.empty_bars()[CLOSE_COLUMNS]
    with duck.cursor() as con:
        frame = frame_of_query(
            con,
            "SELECT symbol, date::TIMESTAMP_NS AS date, close FROM read_parquet($files, hive_partitioning = false) "
            "WHERE symbol IN (SELECT unnest($symbols)) ORDER BY symbol, date",  # sorted: rows_around needs no sort
            {"files": [str(root / e.path) for e in entries], "symbols": sorted(symbols)},
        )
    return frame if frame["date"].dtype == "datetime64[ns]" else frame.astype({"date": "datetime64[ns]"})
