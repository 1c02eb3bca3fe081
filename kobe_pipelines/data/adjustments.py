"""Split and dividend adjustment as a factor table over immutable raw bars (the LEAN/zipline model).

Raw bars are never modified. `compute_factors` derives, once and vectorized, one row per
(symbol, interval) of constant factors; an adjusted view is raw x factor (`apply_factors`, or
the lake's DuckDB views joining `b.date >= f.valid_from` as-of). Factors are anchored at each
symbol's latest bar: the newest interval has factor 1, so adjusted and raw prices agree today.

Conventions (s = split_from / split_to, the price multiplier of one split; a 4-for-1 split is
split_from=1, split_to=4, s = 1/4; a 1-for-10 reverse split is split_from=10, split_to=1, s = 10):
- an event's effective session is its execution/ex-date, or the next XNYS session when that day
  is a weekend or holiday (`market_calendar.next_session_on_or_after`);
- a split multiplies every earlier price by s and every earlier volume by 1/s;
- a cash dividend D (USD per share of the ex-date, i.e. in post-split units when a split executes
  the same day) multiplies every earlier price by q, volume unchanged:
    `crsp`   (default): q = 1 - D / (close_prev * s), close_prev = the last raw close BEFORE the
             effective session (close_prev * s is that close in the ex-date's share units);
             the adjusted close-to-close return on the ex-date is close_ex / (close_prev * s - D);
    `quandl`: q = close_ex / (close_ex + D), close_ex = the raw close of the first bar on or after
             the effective session; the adjusted return there is (close_ex + D) / (close_prev * s),
             the total return. This reproduces Quandl WIKI's adj_* columns (../shared/refdata);
- several events on one session compose: splits multiply, cash amounts add up (a regular and a
  special dividend on one ex-date are one payment of their sum);
- a dividend at least as large as the previous close in ex-date units (D >= close_prev * s, e.g. an
  amount given in a pre-split basis) raises `DividendFactorError` under either convention, as does
  any dividend factor outside (0, 1);
- events are applied only when the symbol has a bar before AND a bar on or after the effective
  session: an event on or before a symbol's first bar has nothing earlier to adjust, and one after
  its last bar is not applied yet (it will be once a bar on or after it arrives).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from kobe_pipelines import market_calendar
from kobe_pipelines.data import schema
from kobe_pipelines.data.validation import DividendFactorError, day_numbers, record_name, symbol_day_keys
from kobe_pipelines.errors import ConfigError

View = Literal["raw", "split", "total"]
VIEWS: tuple[str, ...] = ("raw", "split", "total")
# valid_from of each symbol's first interval: earlier than any bar, so an as-of join always hits.
SENTINEL_START = pd.Timestamp("1900-01-01")
FACTOR_COLUMNS: tuple[str, ...] = ("symbol", "valid_from", "valid_to", "split_factor", "price_factor", "volume_factor")
EVENT_COLUMNS: tuple[str, ...] = (
    "symbol", "event_date", "kind", "split_from", "split_to", "cash_amount",
    "prev_date", "close_prev", "ex_date", "close_ex", "event_factor", "event_volume_factor",
)
_VIEW_PRICE_FACTOR = {"split": "split_factor", "total": "price_factor"}
_FAR_FUTURE_DAY = np.iinfo(np.int32).max
_NS_PER_DAY = 86_400_000_000_000


class Adjustment(NamedTuple):
    """`factors`: one row per (symbol, interval), columns FACTOR_COLUMNS:
    symbol (str); valid_from (datetime64[ns], inclusive); valid_to (datetime64[ns], exclusive,
    NaT for the open-ended latest interval); split_factor, price_factor, volume_factor (float64:
    multipliers of raw prices for the split-adjusted view, of raw prices for the total-return
    view, and of raw volume for both). Symbols without applied events have no rows (factor 1).

    `events`: one row per applied (symbol, event_date, kind), columns EVENT_COLUMNS: kind is
    "split" or "dividend"; split_from/split_to (NaN for dividends) and cash_amount (NaN for
    splits) are the session's composed amounts; prev_date/close_prev the last raw bar before the
    session, ex_date/close_ex the first raw bar on or after it (later than the session when the
    symbol did not trade that day); event_factor the price
    multiplier this event contributes to earlier bars, event_volume_factor the volume one."""

    factors: pd.DataFrame
    events: pd.DataFrame


def empty_factors() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": pd.Series([], dtype=str),
            "valid_from": pd.Series([], dtype="datetime64[ns]"),
            "valid_to": pd.Series([], dtype="datetime64[ns]"),
            **{c: pd.Series([], dtype="float64") for c in ("split_factor", "price_factor", "volume_factor")},
        }
    )


def empty_events() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series([], dtype="float64") for c in EVENT_COLUMNS})
    return frame.astype({"symbol": str, "kind": str, "event_date": "datetime64[ns]", "prev_date": "datetime64[ns]",
                         "ex_date": "datetime64[ns]"})


def effective_sessions(dates: pd.Series | np.ndarray) -> np.ndarray:
    """Each date's XNYS session, or the next one after a weekend or holiday (the vectorized
    `market_calendar.next_session_on_or_after`). Dates outside the calendar's range are kept."""
    values = np.asarray(dates, dtype="datetime64[ns]")
    first, table = market_calendar.next_session_days()
    ns = values.view(np.int64)
    days = ns // _NS_PER_DAY
    offset = days - first
    # midnights inside the calendar (NaT is far below it) through the table; anything else as given,
    # or, for a time of day inside the range, by a search (never met: dates are normalized)
    inside = (offset >= 0) & (offset < len(table))
    out = values.copy()
    at_midnight = inside & (days * _NS_PER_DAY == ns)
    out[at_midnight] = (table[offset[at_midnight]] * _NS_PER_DAY).view("datetime64[ns]")
    timed = inside & ~at_midnight
    if timed.any():
        sessions = market_calendar.xnys().sessions.to_numpy(dtype="datetime64[ns]")
        found = np.searchsorted(sessions, values[timed], side="left")
        out[timed] = np.where(found < len(sessions), sessions[np.minimum(found, len(sessions) - 1)], values[timed])
    return out


def compute_factors(
    bars: pd.DataFrame, splits: pd.DataFrame, dividends: pd.DataFrame, convention: str = "crsp"
) -> Adjustment:
    """The factor table and applied events for raw `bars` and validated actions.

    `bars` needs symbol, date and close. For each symbol with actions it must hold at least the
    last bar before and the first bar on or after each event's session (all bars do; the lake
    passes only those rows). `splits`/`dividends` should have passed
    `validation.validate_splits/validate_dividends`. `convention` is the dividend convention,
    "crsp" or "quandl" (see the module docstring). Raises `DividendFactorError` for a dividend
    whose factor falls outside (0, 1).
    """
    if convention not in schema.DIVIDEND_CONVENTIONS:
        raise ConfigError("dividend_convention", f"must be one of {list(schema.DIVIDEND_CONVENTIONS)}", convention)
    day_splits = _split_sessions(schema.normalize_splits(splits))
    day_divs = _dividend_sessions(schema.normalize_dividends(dividends))
    if (day_splits.empty and day_divs.empty) or bars.empty:
        return Adjustment(empty_factors(), empty_events())

    events = pd.concat([day_splits, day_divs], ignore_index=True)
    _locate(events, bars)
    events = events.loc[events["_applied"]].drop(columns="_applied")
    if events.empty:
        return Adjustment(empty_factors(), empty_events())

    split_part = (events["split_from"] / events["split_to"]).where(events["kind"] == "split")
    # The split multiplier of each event's session, to state close_prev in ex-date share units.
    session_s = split_part.fillna(1.0).groupby([events["symbol"], events["event_date"]]).transform("prod")
    is_div = (events["kind"] == "dividend").to_numpy()
    d = events["cash_amount"].to_numpy()
    prev_in_ex_units = events["close_prev"].to_numpy() * session_s.to_numpy()
    crsp_q = 1.0 - d / prev_in_ex_units
    quandl_q = events["close_ex"].to_numpy() / (events["close_ex"].to_numpy() + d)
    q = crsp_q if convention == "crsp" else quandl_q
    _check_dividend_factors(events, is_div, crsp_q, q, prev_in_ex_units, convention)

    events["event_factor"] = np.where(is_div, q, split_part.to_numpy())
    events["event_volume_factor"] = np.where(is_div, 1.0, 1.0 / split_part.to_numpy())
    events = events.sort_values(["symbol", "event_date", "kind"], kind="stable").reset_index(drop=True)
    return Adjustment(_intervals(events), events.loc[:, list(EVENT_COLUMNS)])


def apply_factors(bars: pd.DataFrame, factors: pd.DataFrame, view: View = "total") -> pd.DataFrame:
    """`bars` in the requested view: "raw" (a copy), "split" (split-adjusted prices and volume)
    or "total" (split- and dividend-adjusted prices, split-adjusted volume). Same rows, order,
    index and columns as `bars`; prices and volume become raw x factor (float64)."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS} (got {view!r})")
    out = bars.copy(deep=False)
    if view == "raw" or bars.empty or factors.empty:
        return out.copy()
    price_f, volume_f = _factor_per_bar(bars, factors, _VIEW_PRICE_FACTOR[view])
    for column in schema.PRICE_COLUMNS:
        out[column] = bars[column].to_numpy(dtype=np.float64) * price_f
    out["volume"] = bars["volume"].to_numpy(dtype=np.float64) * volume_f
    return out


# ---- internals -------------------------------------------------------------------------------


def _split_sessions(splits: pd.DataFrame) -> pd.DataFrame:
    """Splits composed per (symbol, effective session)."""
    frame = splits.assign(event_date=effective_sessions(splits["execution_date"]))
    day = frame.groupby(["symbol", "event_date"], as_index=False, sort=False)[["split_from", "split_to"]].prod()
    return day.assign(kind="split", cash_amount=np.nan)


def _dividend_sessions(dividends: pd.DataFrame) -> pd.DataFrame:
    """Cash amounts summed per (symbol, effective session)."""
    frame = dividends.assign(event_date=effective_sessions(dividends["ex_dividend_date"]))
    day = frame.groupby(["symbol", "event_date"], as_index=False, sort=False)[["cash_amount"]].sum()
    return day.assign(kind="dividend", split_from=np.nan, split_to=np.nan)


def _locate(events: pd.DataFrame, bars: pd.DataFrame) -> None:
    """Add prev_date, close_prev, ex_date, close_ex and _applied to `events` (in place), by binary search
    of (symbol, session) keys in the bars' sorted (symbol, date) keys."""
    codes, uniques = pd.factorize(bars["symbol"])
    keys = symbol_day_keys(codes, day_numbers(bars["date"]))
    order = None if bool(np.all(keys[1:] >= keys[:-1])) else np.argsort(keys, kind="stable")
    dates = np.asarray(bars["date"], dtype="datetime64[ns]")
    close = bars["close"].to_numpy(dtype=np.float64)
    if order is not None:
        keys, codes, dates, close = keys[order], codes[order], dates[order], close[order]
    ev_codes = pd.Index(uniques).get_indexer(events["symbol"])
    ev_keys = symbol_day_keys(ev_codes, day_numbers(events["event_date"]))
    n = len(keys)
    pos = np.searchsorted(keys, ev_keys, side="left")
    prev, ex = np.clip(pos - 1, 0, n - 1), np.clip(pos, 0, n - 1)
    has_prev = (ev_codes >= 0) & (pos > 0) & (codes[prev] == ev_codes)
    has_ex = (ev_codes >= 0) & (pos < n) & (codes[ex] == ev_codes)
    events["prev_date"] = np.where(has_prev, dates[prev], np.datetime64("NaT", "ns"))
    events["close_prev"] = np.where(has_prev, close[prev], np.nan)
    events["ex_date"] = np.where(has_ex, dates[ex], np.datetime64("NaT", "ns"))
    events["close_ex"] = np.where(has_ex, close[ex], np.nan)
    events["_applied"] = has_prev & has_ex


def _check_dividend_factors(
    events: pd.DataFrame, is_div: np.ndarray, crsp_q: np.ndarray, q: np.ndarray, prev_in_ex_units: np.ndarray, convention: str
) -> None:
    bad = is_div & ~((crsp_q > 0) & (crsp_q < 1) & (q > 0) & (q < 1))
    if not bad.any():
        return
    candidates = events.loc[bad].sort_values(["symbol", "event_date"], kind="stable")
    i = events.index.get_loc(candidates.index[0])
    row = events.iloc[i]
    formula = "1 - D/close_prev" if convention == "crsp" else "close_ex/(close_ex + D)"
    raise DividendFactorError(
        "dividend",
        record_name(row["symbol"], row["event_date"]),
        "cash_amount",
        f"gives a {convention} factor {formula} = {q[i]:.6g}, outside (0, 1): the dividend must be smaller "
        f"than the previous close in ex-date share units ({prev_in_ex_units[i]:.6g} USD on {pd.Timestamp(row['prev_date']).date()}); "
        "an amount in a pre-split basis?",
        float(row["cash_amount"]),
        count=int(bad.sum()),
        total=int(is_div.sum()),
    )


def _intervals(events: pd.DataFrame) -> pd.DataFrame:
    """Cumulative factors per interval: each event's interval [previous event or sentinel, event)
    carries the product of its own and every later event's factor; after the last event, 1."""
    split_only = events["event_factor"].where(events["kind"] == "split", 1.0)
    per_day = events.assign(_split=split_only).groupby(["symbol", "event_date"], sort=True, as_index=False).agg(
        split_factor=("_split", "prod"),
        price_factor=("event_factor", "prod"),
        volume_factor=("event_volume_factor", "prod"),
    )
    columns = ["split_factor", "price_factor", "volume_factor"]
    # Products over "this and every later event": a cumulative product from the newest event back.
    later = per_day.iloc[::-1]
    cumulative = later.groupby("symbol", sort=False)[columns].cumprod().iloc[::-1]
    first_of_symbol = ~per_day["symbol"].duplicated(keep="first").to_numpy()
    valid_from = per_day["event_date"].shift(1).to_numpy(dtype="datetime64[ns]", copy=True)
    valid_from[first_of_symbol] = SENTINEL_START.to_datetime64()
    closed = pd.DataFrame(
        {"symbol": per_day["symbol"].to_numpy(), "valid_from": valid_from, "valid_to": per_day["event_date"].to_numpy()}
    )
    closed[columns] = cumulative[columns].to_numpy()
    last = ~per_day["symbol"].duplicated(keep="last").to_numpy()
    latest = pd.DataFrame(
        {
            "symbol": per_day["symbol"].to_numpy()[last],
            "valid_from": per_day["event_date"].to_numpy()[last],
            "valid_to": np.full(int(last.sum()), np.datetime64("NaT", "ns")),
            **{c: 1.0 for c in columns},
        }
    )
    out = pd.concat([closed, latest], ignore_index=True).sort_values(["symbol", "valid_from"], kind="stable")
    return out.astype({"symbol": str, "valid_from": "datetime64[ns]", "valid_to": "datetime64[ns]"}).reset_index(drop=True)


def _factor_per_bar(bars: pd.DataFrame, factors: pd.DataFrame, price_column: str) -> tuple[np.ndarray, np.ndarray]:
    """(price factor, volume factor) of every bar: the interval with the greatest valid_from <=
    date (and date < valid_to) of its symbol, found by binary search; 1 where none applies."""
    codes, uniques = pd.factorize(bars["symbol"])
    f_codes = pd.Index(uniques).get_indexer(factors["symbol"])
    keep = f_codes >= 0
    f_keys = symbol_day_keys(f_codes[keep], day_numbers(factors["valid_from"].to_numpy()[keep]))
    order = np.argsort(f_keys, kind="stable")
    f_keys, f_codes = f_keys[order], f_codes[keep][order]
    valid_to = factors["valid_to"].to_numpy(dtype="datetime64[ns]")[keep][order]
    to_day = np.where(np.isnat(valid_to), _FAR_FUTURE_DAY, day_numbers(valid_to))
    price = factors[price_column].to_numpy(dtype=np.float64)[keep][order]
    volume = factors["volume_factor"].to_numpy(dtype=np.float64)[keep][order]
    if len(f_keys) == 0:
        ones = np.ones(len(bars))
        return ones, ones
    bar_days = day_numbers(bars["date"])
    idx = np.searchsorted(f_keys, symbol_day_keys(codes, bar_days), side="right") - 1
    at = np.maximum(idx, 0)
    hit = (idx >= 0) & (f_codes[at] == codes) & (bar_days < to_day[at])
    return np.where(hit, price[at], 1.0), np.where(hit, volume[at], 1.0)
