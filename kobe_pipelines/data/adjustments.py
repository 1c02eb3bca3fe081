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
    days = ns // schema.NS_PER_DAY
    offset = days - first
    # midnights inside the calendar (NaT is far below it) through the table; anything else as given,
    # or, for a time of day inside the range, by a search (never met: dates are normalized)
    inside = (offset >= 0) & (offset < len(table))
    out = values.copy()
    at_midnight = inside & (days * schema.NS_PER_DAY == ns)
    out[at_midnight] = (table[offset[at_midnight]] * schema.NS_PER_DAY).view("datetime64[ns]")
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
    split_days = _per_session(schema.normalize_splits(splits), "execution_date", ("split_from", "split_to"), np.multiply)
    div_days = _per_session(schema.normalize_dividends(dividends), "ex_dividend_date", ("cash_amount",), np.add)
    n_splits, n_divs = len(split_days["symbol"]), len(div_days["symbol"])
    if n_splits + n_divs == 0 or bars.empty:
        return Adjustment(empty_factors(), empty_events())

    # One row per (symbol, session, kind), in (symbol, session, kind) order: a session's split and
    # dividend are adjacent (the dividend first).
    symbol = np.concatenate((split_days["symbol"], div_days["symbol"]))
    event_date = np.concatenate((split_days["event_date"], div_days["event_date"]))
    is_split = np.concatenate((np.ones(n_splits, dtype=bool), np.zeros(n_divs, dtype=bool)))
    nan_s, nan_d = np.full(n_splits, np.nan), np.full(n_divs, np.nan)
    split_from = np.concatenate((split_days["split_from"], nan_d))
    split_to = np.concatenate((split_days["split_to"], nan_d))
    cash = np.concatenate((nan_s, div_days["cash_amount"]))
    order = np.lexsort((is_split, day_numbers(event_date), pd.factorize(symbol, sort=True)[0]))
    symbol, event_date, is_split = symbol[order], event_date[order], is_split[order]
    split_from, split_to, cash = split_from[order], split_to[order], cash[order]

    prev_date, close_prev, ex_date, close_ex, applied = _locate(symbol, event_date, bars)
    if not applied.any():
        return Adjustment(empty_factors(), empty_events())
    symbol, event_date, is_split, split_from, split_to, cash = (
        a[applied] for a in (symbol, event_date, is_split, split_from, split_to, cash))
    prev_date, close_prev, ex_date, close_ex = (a[applied] for a in (prev_date, close_prev, ex_date, close_ex))

    split_part = np.where(is_split, split_from / split_to, np.nan)
    # The split multiplier of each event's session, to state close_prev in ex-date share units:
    # the product over the session's rows (a split and a dividend at most).
    starts = _run_starts(pd.factorize(symbol, sort=False)[0], event_date)
    session_s = np.repeat(np.multiply.reduceat(np.where(is_split, split_part, 1.0), starts),
                          np.diff(np.append(starts, len(symbol))))
    is_div = ~is_split
    prev_in_ex_units = close_prev * session_s
    crsp_q = 1.0 - cash / prev_in_ex_units
    quandl_q = close_ex / (close_ex + cash)
    q = crsp_q if convention == "crsp" else quandl_q
    events = pd.DataFrame({
        "symbol": pd.array(symbol, dtype=str), "event_date": event_date,
        "kind": pd.array(np.where(is_split, "split", "dividend"), dtype=str),
        "split_from": split_from, "split_to": split_to, "cash_amount": cash,
        "prev_date": prev_date, "close_prev": close_prev, "ex_date": ex_date, "close_ex": close_ex,
        "event_factor": np.where(is_div, q, split_part), "event_volume_factor": np.where(is_div, 1.0, 1.0 / split_part),
    })
    _check_dividend_factors(events, is_div, crsp_q, q, prev_in_ex_units, convention)
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


def _per_session(frame: pd.DataFrame, date_column: str, values: tuple[str, ...], combine: np.ufunc
                 ) -> dict[str, np.ndarray]:
    """symbol, event_date (the effective session) and `values` combined (np.multiply: splits
    compose; np.add: cash amounts add up) per (symbol, session), in (symbol, session) order.
    A session's rows are combined in their given order: two at most (a regular and a special
    dividend) add or multiply exactly as pandas' grouped sum and product would; a session with
    more is left to those (pandas compensates such a sum)."""
    sessions = effective_sessions(frame[date_column])
    codes = pd.factorize(frame["symbol"], sort=True)[0]
    order = np.argsort(symbol_day_keys(codes, day_numbers(sessions)), kind="stable")
    starts = _run_starts(codes[order], sessions[order])
    if len(frame) and (np.diff(np.append(starts, len(frame))) > 2).any():
        grouped = frame.assign(event_date=sessions).groupby(["symbol", "event_date"], sort=True)[list(values)]
        day = grouped.prod() if combine is np.multiply else grouped.sum()
        return {"symbol": day.index.get_level_values(0).to_numpy(dtype=object),
                "event_date": day.index.get_level_values(1).to_numpy(dtype="datetime64[ns]"),
                **{c: day[c].to_numpy(dtype=np.float64) for c in values}}
    first = order[starts]
    return {"symbol": frame["symbol"].to_numpy(dtype=object)[first], "event_date": sessions[first],
            **{c: combine.reduceat(frame[c].to_numpy(dtype=np.float64)[order], starts) if len(frame) else
               np.zeros(0) for c in values}}


def _run_starts(codes: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Where each run of equal (code, day) starts, in rows sorted by them."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], (codes[1:] != codes[:-1]) | (days[1:] != days[:-1]))))


def _locate(symbols: np.ndarray, sessions: np.ndarray, bars: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """For each event (symbol, session): prev_date and close_prev of the symbol's last bar before
    the session, ex_date and close_ex of its first bar on or after it (NaT/NaN when none), and
    whether it has both (it is applied). A binary search of (symbol, session) keys in the bars'
    sorted (symbol, date) keys."""
    codes, uniques = pd.factorize(bars["symbol"])
    keys = symbol_day_keys(codes, day_numbers(bars["date"]))
    order = None if bool(np.all(keys[1:] >= keys[:-1])) else np.argsort(keys, kind="stable")
    dates = np.asarray(bars["date"], dtype="datetime64[ns]")
    close = bars["close"].to_numpy(dtype=np.float64)
    if order is not None:
        keys, codes, dates, close = keys[order], codes[order], dates[order], close[order]
    ev_codes = pd.Index(uniques).get_indexer(symbols)
    ev_keys = symbol_day_keys(ev_codes, day_numbers(sessions))
    n = len(keys)
    pos = np.searchsorted(keys, ev_keys, side="left")
    prev, ex = np.clip(pos - 1, 0, n - 1), np.clip(pos, 0, n - 1)
    has_prev = (ev_codes >= 0) & (pos > 0) & (codes[prev] == ev_codes)
    has_ex = (ev_codes >= 0) & (pos < n) & (codes[ex] == ev_codes)
    nat = np.datetime64("NaT", "ns")
    return (np.where(has_prev, dates[prev], nat), np.where(has_prev, close[prev], np.nan),
            np.where(has_ex, dates[ex], nat), np.where(has_ex, close[ex], np.nan), has_prev & has_ex)


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
    carries the product of its own and every later event's factor; after the last event, 1.

    `events` is sorted by (symbol, event_date, kind), so each (symbol, session) is a run of rows
    and each symbol a run of sessions. Products run in a fixed order (within a session in row
    order; over sessions from the newest back, as a cumulative product would), in numpy rather
    than with a pandas group-by."""
    if events.empty:
        return empty_factors()
    codes = pd.factorize(events["symbol"], sort=False)[0]  # sorted rows: codes rise with the symbol
    days = events["event_date"].to_numpy(dtype="datetime64[ns]")
    factor = events["event_factor"].to_numpy(dtype=np.float64)
    split = np.where((events["kind"] == "split").to_numpy(), factor, 1.0)
    volume = events["event_volume_factor"].to_numpy(dtype=np.float64)
    starts = _run_starts(codes, days)
    per_day = np.stack([np.multiply.reduceat(column, starts) for column in (split, factor, volume)], axis=1)
    day_codes, day_dates = codes[starts], days[starts]
    first_day = np.concatenate(([True], day_codes[1:] != day_codes[:-1]))
    last_day = np.concatenate((day_codes[1:] != day_codes[:-1], [True]))
    # from each symbol's newest session back: cumulative[i] = cumulative[i + 1] * per_day[i]
    symbol_end = np.flatnonzero(last_day)[np.cumsum(first_day) - 1]
    behind = symbol_end - np.arange(len(day_codes))  # sessions after this one, of the same symbol
    cumulative = per_day.copy()
    for k in range(1, int(behind.max()) + 1):
        at = np.flatnonzero(behind == k)
        cumulative[at] = cumulative[at + 1] * per_day[at]
    valid_from = np.concatenate(([SENTINEL_START.to_datetime64()], day_dates[:-1])).astype("datetime64[ns]")
    valid_from[first_day] = SENTINEL_START.to_datetime64()
    n_closed, n_latest = len(day_codes), int(last_day.sum())
    # each symbol's closed intervals, oldest first, then its open-ended latest one
    order = np.lexsort((np.concatenate((np.zeros(n_closed), np.ones(n_latest))),
                        np.concatenate((day_codes, day_codes[last_day]))))
    names = events["symbol"].to_numpy(dtype=object)[starts]
    out = pd.DataFrame({
        "symbol": pd.array(np.concatenate((names, names[last_day]))[order], dtype=str),
        "valid_from": np.concatenate((valid_from, day_dates[last_day]))[order],
        "valid_to": np.concatenate((day_dates, np.full(n_latest, np.datetime64("NaT", "ns"))))[order],
        **{c: np.concatenate((cumulative[:, i], np.ones(n_latest)))[order]
           for i, c in enumerate(("split_factor", "price_factor", "volume_factor"))},
    })
    return out


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
