"""Validation of raw bars and corporate actions before anything is stored or adjusted.

Every check is vectorized (numpy over whole columns); Python only runs per row on the error
path. On bad input the error names the FIRST offending record in (symbol, date) order, so the
same input always reports the same record, plus how many rows fail in total.

Conventions checked (see `kobe_pipelines.data.schema` for the columns):
- bars: prices finite and > 0 (USD), volume finite and >= 0 (shares), low <= open, close <= high,
  one row per (symbol, date), no date after `as_of`, a non-empty symbol;
- splits: split_from and split_to finite and > 0 (a 4-for-1 split is 1 -> 4). Exact duplicates
  (Polygon returns some) and ratios equal after reduction (1:2 and 2:4) collapse to one row; two
  different ratios on one (symbol, execution_date) are an error. A 1:1 split changes nothing and
  is DROPPED rather than rejected: vendors publish them for ticker changes and share-class
  conversions, and refusing them would block a freeze for an event with no effect on prices;
- dividends: cash_amount finite and > 0 (USD per share of the ex-date). Exact duplicate rows
  collapse to one; two different amounts on one (symbol, ex_dividend_date) are kept as two
  dividends (a regular and a special one) and summed by `adjustments`;
- actions: every symbol must be one the bars know.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kobe_pipelines import market_calendar
from kobe_pipelines.data import rules, schema
from kobe_pipelines.errors import RecordError

# Shifts day numbers (days since 1970, >= -25,567 for 1900) to non-negative values for the keys.
_DAY_OFFSET = 1 << 20


class BarValidationError(RecordError):
    """A raw bar failed validation. `count` rows of `total` fail; `record` is the first of them."""

    def __init__(self, record: str, field: str, problem: str, value: Any = None, *, count: int = 1, total: int = 1):
        self.count = count
        self.total = total
        super().__init__("bar", record, field, f"{problem} [{count} of {total} rows fail; first by (symbol, date) shown]", value)


class ActionValidationError(RecordError):
    """A corporate action (kind "split" or "dividend") failed validation."""

    def __init__(self, kind: str, record: str, field: str, problem: str, value: Any = None, *, count: int = 1, total: int = 1):
        self.count = count
        self.total = total
        suffix = f" [{count} of {total} rows fail; first by (symbol, date) shown]" if total > 1 else ""
        super().__init__(kind, record, field, problem + suffix, value)


class UnknownSymbolError(ActionValidationError):
    """A corporate action names a symbol that has no bars."""


class DividendFactorError(ActionValidationError):
    """A dividend's adjustment factor falls outside (0, 1), e.g. a dividend >= the previous close
    (typically an amount given in a pre-split basis). Raised by `adjustments.compute_factors`."""


# ---- helpers shared with adjustments ---------------------------------------------------------


def day_numbers(dates: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of naive datetime64[ns] values (NaT gives a very negative number)."""
    values = np.asarray(dates, dtype="datetime64[ns]").view(np.int64)
    return values // schema.NS_PER_DAY


def symbol_day_keys(codes: np.ndarray, days: np.ndarray) -> np.ndarray:
    """One int64 per (symbol code, day) that sorts by symbol code, then day."""
    keys = codes.astype(np.int64)  # in place from here: 12.6M-row temporaries cost page faults
    keys <<= 32
    keys |= days + _DAY_OFFSET
    return keys


def key_days(keys: np.ndarray) -> np.ndarray:
    """The day numbers back out of `symbol_day_keys`."""
    return (keys & 0xFFFFFFFF) - _DAY_OFFSET


def record_name(symbol: Any, date: Any) -> str:
    """The record id used in every message: ``"AAPL 2014-06-09"``."""
    shown = "<no date>" if pd.isna(date) else str(pd.Timestamp(date).date())
    return f"{symbol} {shown}"


def _first_offender(
    frame: pd.DataFrame, date_column: str, checks: list[tuple[str, str, np.ndarray]]
) -> tuple[int, str, str, int] | None:
    """(row position, field, problem, offending-row count) of the first bad row in (symbol, date)
    order, the field being that of the first check in `checks` it fails; None when all pass."""
    bad = np.zeros(len(frame), dtype=bool)
    for _field, _problem, mask in checks:
        bad |= mask
    count = int(bad.sum())
    if count == 0:
        return None
    positions = np.flatnonzero(bad)
    candidates = pd.DataFrame(
        {
            "symbol": frame["symbol"].to_numpy()[positions].astype(str),
            "date": frame[date_column].to_numpy()[positions],
            "pos": positions,
        }
    ).sort_values(["symbol", "date", "pos"], na_position="first", kind="stable")
    first = int(candidates["pos"].iloc[0])
    for field, problem, mask in checks:
        if mask[first]:
            return first, field, problem, count
    raise AssertionError("unreachable: a bad row fails at least one check")


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}; expected {list(columns)}")


def _float_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    series = frame[column]
    if series.dtype == np.float64:
        return series.to_numpy()  # no copy on the happy path of normalized bars
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _finite_positive(x: np.ndarray) -> np.ndarray:
    # NaN fails both comparisons, inf fails the second.
    return (x > 0) & (x < np.inf)


def _symbol_codes(symbols: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Codes in sorted-symbol order, the sorted symbols, a mask of rows whose symbol is missing
    or blank, and a mask of rows whose symbol breaks the ticker rule (`rules.symbol_problem`)."""
    found = schema.sorted_symbol_codes(symbols)
    codes, uniques = found if found is not None else pd.factorize(symbols, sort=True)
    blank_unique = np.array([not isinstance(u, str) or not u.strip() for u in uniques], dtype=bool)
    bad_unique = np.array([rules.symbol_problem(u) is not None for u in uniques], dtype=bool) & ~blank_unique
    known = codes >= 0
    blank = ~known
    if blank_unique.any():
        blank |= blank_unique[np.maximum(codes, 0)] & known
    bad = bad_unique[np.maximum(codes, 0)] & known if bad_unique.any() else np.zeros(len(codes), dtype=bool)
    return codes, uniques, blank, bad


def _with_trimmed_symbols(bars: pd.DataFrame) -> pd.DataFrame:
    """`bars` with surrounding whitespace trimmed from its symbols (the frame itself when none
    has any). Only the distinct symbols are looked at unless one needs trimming."""
    column = bars["symbol"]
    names = column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else pd.Index(column.unique())
    if not any(isinstance(name, str) and name != name.strip() for name in names):
        return bars
    return bars.assign(symbol=column.map(lambda name: name.strip() if isinstance(name, str) else name).astype(object))


def non_session_days(days: np.ndarray) -> np.ndarray:
    """Which day numbers (days since 1970-01-01) are not XNYS sessions: weekends and exchange
    holidays; outside the calendar's range (`market_calendar.xnys`), weekends only."""
    first, next_session = market_calendar.next_session_days()
    days = np.asarray(days, dtype=np.int64)
    offset = days - first
    inside = (offset >= 0) & (offset < len(next_session))
    weekend = (days + 3) % 7 >= 5  # 1970-01-01 was a Thursday: Monday is 0
    closed = weekend.copy()
    closed[inside] = next_session[offset[inside]] != days[inside]
    return closed


def _duplicate_mask(keys: np.ndarray, alt_keys: Callable[[], np.ndarray]) -> np.ndarray:
    """Rows whose key occurs more than once, for keys that do not strictly increase (the caller
    checked: rows in (symbol, date) order have no duplicate). O(n) when the rows are in (date,
    symbol) order (`alt_keys` builds those keys), as providers deliver them; one sort otherwise."""
    n = len(keys)
    alt = alt_keys()
    if bool(np.all(alt[1:] > alt[:-1])):
        return np.zeros(n, dtype=bool)
    ordered = np.sort(keys)
    if not bool((ordered[1:] == ordered[:-1]).any()):
        return np.zeros(n, dtype=bool)
    return pd.Series(keys).duplicated(keep=False).to_numpy()


# ---- bars ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BarKeys:
    """What validating bars computed about their (symbol, date) order, for reuse: `symbols`, the
    distinct symbols sorted (there may be some without rows: a categorical's unused categories,
    a Parquet dictionary's values outside the rows read); `codes`, each row's index into them;
    `keys`, one int64 per row from `symbol_day_keys`; `increasing`, whether the keys strictly
    increase (the rows are in (symbol, date) order with no duplicate)."""

    symbols: np.ndarray
    codes: np.ndarray
    keys: np.ndarray
    increasing: bool


def validate_bars(bars: pd.DataFrame, as_of: dt.date | None = None) -> pd.DataFrame:
    """Check raw bars; return them unchanged, or raise `BarValidationError` for the first bad row.

    `as_of` is the latest allowed session date (exchange date); None means today in
    America/New_York. Comparisons are exact (no tolerance): a vendor bar with open above high is
    reported, not clipped.
    """
    return validate_bars_keyed(bars, as_of)[0]


def validate_bars_keyed(bars: pd.DataFrame, as_of: dt.date | None = None) -> tuple[pd.DataFrame, BarKeys | None]:
    """`validate_bars`, also returning the (symbol, date) keys it built (None for no bars).
    Symbols are judged trimmed (" AAA " is AAA), as `validate_bars_table` stores them."""
    _require(bars, schema.BAR_COLUMNS, "bars")
    n = len(bars)
    if n == 0:
        return bars, None
    given = bars
    bars = _with_trimmed_symbols(bars)
    limit = _latest_allowed(as_of)
    o, h, l, c, v = (_float_column(bars, col) for col in ("open", "high", "low", "close", "volume"))
    dates = pd.to_datetime(bars["date"]).to_numpy(dtype="datetime64[ns]")
    no_date = np.isnat(dates)
    days = day_numbers(dates)
    if no_date.any():
        days[no_date] = 0
    codes, symbols, blank, not_ticker = _symbol_codes(bars["symbol"])
    keys = symbol_day_keys(codes, days)
    increasing = n < 2 or bool(np.all(keys[1:] > keys[:-1]))
    duplicate = np.zeros(n, dtype=bool) if increasing else \
        _duplicate_mask(keys, lambda: (days + _DAY_OFFSET) << 32 | codes.astype(np.int64))
    duplicate = duplicate & ~no_date & ~blank
    checks = [
        ("symbol", "must be a non-empty ticker", blank),
        ("symbol", _TICKER_RULE, not_ticker),
        ("date", "must be a date", no_date),
        ("date", f"must not be after {limit.date()} (a future date: the last completed session is the latest)",
         dates > limit.to_datetime64()),
        ("date", _SESSION_RULE, ~no_date & non_session_days(days)),
        ("date", "duplicates another bar of the same (symbol, date)", duplicate),
        *_price_checks(o, h, l, c, v),
    ]
    found = _first_offender(bars, "date", checks)
    if found is not None:
        pos, field, problem, count = found
        row = bars.iloc[pos]
        raise BarValidationError(record_name(row["symbol"], row["date"]), field, problem, row[field], count=count, total=n)
    return given, BarKeys(symbols=np.asarray(symbols, dtype=object), codes=codes, keys=keys, increasing=increasing)


def _latest_allowed(as_of: dt.date | None) -> pd.Timestamp:
    """The latest allowed session date: `as_of`, or the last completed XNYS session (a bar of a
    session still trading is not final)."""
    return pd.Timestamp(as_of) if as_of is not None else market_calendar.last_completed_session()


_TICKER_RULE = (f"must be a ticker matching {rules.TICKER_PATTERN} of at most {rules.MAX_SYMBOL_LENGTH} characters "
                "(no spaces, newlines or control characters)")
_SESSION_RULE = "must be an XNYS session (not a weekend or an exchange holiday)"
_VOLUME_RULE = f"must be a whole number of shares from 0 to {rules.MAX_VOLUME:.0e}"


def _price_checks(o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray, v: np.ndarray
                  ) -> list[tuple[str, str, np.ndarray]]:
    """(field, problem, failing rows) of the value checks of bars, in the order they are reported."""
    return [
        ("open", "must be a finite price > 0", ~_finite_positive(o)),
        ("high", "must be a finite price > 0", ~_finite_positive(h)),
        ("low", "must be a finite price > 0", ~_finite_positive(l)),
        ("close", "must be a finite price > 0", ~_finite_positive(c)),
        ("volume", _VOLUME_RULE, ~((v >= 0) & (v <= rules.MAX_VOLUME) & (np.floor(v) == v))),
        ("high", "must be >= low", h < l),
        ("open", "must lie within [low, high]", (o < l) | (o > h)),
        ("close", "must lie within [low, high]", (c < l) | (c > h)),
    ]


def validate_bars_table(bars: pa.Table, as_of: dt.date | None = None) -> tuple[pa.Table, BarKeys | None]:
    """`validate_bars` for an Arrow table in `schema.BARS_ARROW_SCHEMA` (`schema.bars_table`):
    the same checks, in one pass over the Arrow batches with no pandas copy of the rows. Returns
    the table sorted by (symbol, date), its symbols trimmed and dictionary-encoded, and its keys
    (`increasing`; None for no bars).

    Sound bars -- the usual case -- cost two arrays of the whole length (the codes and the keys).
    A table that fails any check is handed to `validate_bars_keyed`, so the error names the same
    record, field and count whichever way the bars came; it finding the bars sound would be a
    bug here, and is raised as one rather than let through."""
    n = bars.num_rows
    if n == 0:
        return bars, None
    encoded = trimmed_symbols(bars.column("symbol"))
    bars = bars.set_column(0, pa.field("symbol", encoded.type), encoded)
    names = encoded.chunk(0).dictionary.to_numpy(zero_copy_only=False) if encoded.num_chunks else np.zeros(0, object)
    sound = encoded.null_count == 0 and bars.column("date").null_count == 0 and all(isinstance(n, str) for n in names)
    order = np.argsort(names, kind="stable") if sound else np.arange(len(names))
    rank = np.empty(len(names), dtype=np.int32)
    rank[order] = np.arange(len(names), dtype=np.int32)
    bad_names = np.array([not sound or rules.symbol_problem(name) is not None for name in names], dtype=bool)
    limit_day = day_numbers(np.array([_latest_allowed(as_of).to_datetime64()]))[0]
    codes = np.empty(n, dtype=np.int32)
    keys = np.empty(n, dtype=np.int64)
    start = 0
    for batch in bars.to_batches() if sound else ():
        stop = start + batch.num_rows
        index = batch.column(0).indices.to_numpy()
        days = batch.column(1).view(pa.int32()).to_numpy()
        prices = [batch.column(i).to_numpy(zero_copy_only=False) for i in range(2, 7)]  # a null reads as NaN
        if (bad_names.any() and bad_names[index].any()) or days.max() > limit_day or non_session_days(days).any() \
                or any(failing.any() for _field, _problem, failing in _price_checks(*prices)):
            sound = False
            break
        codes[start:stop] = rank[index]
        part = keys[start:stop]
        part[:] = codes[start:stop]
        part <<= 32
        part |= days + _DAY_OFFSET
        start = stop
    permutation = None
    if sound and n > 1 and not bool(np.all(keys[1:] > keys[:-1])):
        permutation = np.argsort(keys, kind="stable")
        keys = keys[permutation]
        sound = not bool((keys[1:] == keys[:-1]).any())  # else a duplicate (symbol, date)
    if not sound:
        validate_bars_keyed(schema.normalize_bars(bars.to_pandas()), as_of)
        raise RuntimeError("validate_bars_table: bars failed the Arrow checks but passed validate_bars_keyed")
    if permutation is not None:
        bars, codes = bars.take(pa.array(permutation)), codes[permutation]
    return bars, BarKeys(symbols=names[order], codes=codes, keys=keys, increasing=True)


def trimmed_symbols(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A symbol column dictionary-encoded, one dictionary for every chunk, with surrounding
    whitespace trimmed from each name: " AAA " and "AAA" become one symbol. Only the distinct
    names are looked at, not every row."""
    encoded = column.unify_dictionaries() if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    if encoded.num_chunks == 0:
        return encoded
    dictionary = encoded.chunk(0).dictionary
    trimmed = pc.utf8_trim_whitespace(dictionary)
    if pc.all(pc.fill_null(pc.equal(trimmed, dictionary), True)).as_py() is not False:
        return encoded
    distinct = pc.unique(trimmed)
    remap = pc.index_in(trimmed, value_set=distinct)  # old code -> code of the trimmed name
    chunks = [pa.DictionaryArray.from_arrays(pc.take(remap, chunk.indices).cast(chunk.indices.type), distinct)
              for chunk in encoded.chunks]
    return pa.chunked_array(chunks, type=pa.dictionary(encoded.type.index_type, distinct.type))


# ---- corporate actions -----------------------------------------------------------------------


_UNKNOWN = "is not a known symbol (no bars for it)"


def _unknown_symbols(symbols: pd.Series, known_symbols: Iterable[str]) -> np.ndarray:
    known = pd.Index(list(known_symbols), dtype=object)
    return ~symbols.astype(object).isin(known).to_numpy()


def _raise_action(kind: str, frame: pd.DataFrame, date_column: str, checks: list[tuple[str, str, np.ndarray]]) -> None:
    found = _first_offender(frame, date_column, checks)
    if found is None:
        return
    pos, field, problem, count = found
    row = frame.iloc[pos]
    error = UnknownSymbolError if problem == _UNKNOWN else ActionValidationError
    raise error(kind, record_name(row["symbol"], row[date_column]), field, problem, row[field], count=count, total=len(frame))


def validate_splits(splits: pd.DataFrame, known_symbols: Iterable[str]) -> pd.DataFrame:
    """Check and clean splits; return them normalized, deduplicated, without 1:1 rows, sorted by
    (symbol, execution_date). Raises `ActionValidationError` (`UnknownSymbolError` for a symbol
    with no bars) naming the first bad record."""
    frame = schema.normalize_splits(splits)
    if frame.empty:
        return frame
    fr, to = frame["split_from"].to_numpy(), frame["split_to"].to_numpy()
    no_date = frame["execution_date"].isna().to_numpy()
    _raise_action(
        "split",
        frame,
        "execution_date",
        [
            ("symbol", _UNKNOWN, _unknown_symbols(frame["symbol"], known_symbols)),
            ("execution_date", "must be a date", no_date),
            ("split_from", "must be a finite number > 0", ~_finite_positive(fr)),
            ("split_to", "must be a finite number > 0", ~_finite_positive(to)),
        ],
    )
    # Reduce the ratio so 1:2 and 2:4 are recognised as the same split.
    frame = frame.assign(_ratio=np.round(to / fr, 12)).drop_duplicates(["symbol", "execution_date", "_ratio"])
    conflicting = frame.duplicated(["symbol", "execution_date"], keep=False).to_numpy()
    found = _first_offender(frame, "execution_date", [("split_to", "", conflicting)])
    if found is not None:
        pos, _field, _problem, count = found
        row = frame.iloc[pos]
        same = frame.loc[(frame["symbol"] == row["symbol"]) & (frame["execution_date"] == row["execution_date"])]
        ratios = [f"{a:g}:{b:g}" for a, b in zip(same["split_from"], same["split_to"])]
        raise ActionValidationError(
            "split",
            record_name(row["symbol"], row["execution_date"]),
            "split_to",
            f"conflicts with another split of the same symbol and date (split_from:split_to {ratios})",
            row["split_to"],
            count=count,
            total=len(frame),
        )
    frame = frame.loc[frame["_ratio"] != 1.0].drop(columns="_ratio")
    return frame.sort_values(["symbol", "execution_date"], kind="stable").reset_index(drop=True)


def validate_dividends(dividends: pd.DataFrame, known_symbols: Iterable[str]) -> pd.DataFrame:
    """Check and clean cash dividends; return them normalized, without exact duplicate rows,
    sorted by (symbol, ex_dividend_date). Raises `ActionValidationError` (`UnknownSymbolError`
    for a symbol with no bars) naming the first bad record. Whether a dividend is smaller than
    the previous close needs the bars: `adjustments.compute_factors` checks it."""
    frame = schema.normalize_dividends(dividends)
    if frame.empty:
        return frame
    _raise_action(
        "dividend",
        frame,
        "ex_dividend_date",
        [
            ("symbol", _UNKNOWN, _unknown_symbols(frame["symbol"], known_symbols)),
            ("ex_dividend_date", "must be a date", frame["ex_dividend_date"].isna().to_numpy()),
            ("cash_amount", "must be a finite amount > 0 (USD per share)", ~_finite_positive(frame["cash_amount"].to_numpy())),
        ],
    )
    frame = frame.drop_duplicates()
    return frame.sort_values(["symbol", "ex_dividend_date", "cash_amount"], kind="stable").reset_index(drop=True)
