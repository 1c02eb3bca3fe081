"""The data steps of a freeze: which raw bars are new, and the derived action and factor files.

Kept apart from `store` (which owns files, versions and publishing) so each reads on its own.
"""

from __future__ import annotations

import bisect
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kobe_pipelines.data import adjustments, schema, validation
from kobe_pipelines.lake import duck
from kobe_pipelines.lake.errors import RawRestatementError
from kobe_pipelines.lake.manifest import FileEntry, Manifest

if TYPE_CHECKING:
    import duckdb

_VALUE_COLUMNS = ("open", "high", "low", "close", "volume")


def find_new_rows(root: Path, previous: Manifest | None, bars: pd.DataFrame) -> pd.DataFrame:
    """The bars not stored yet. A stored bar re-delivered with other values is an error: raw
    bars are immutable, and a silent restatement would change history under every model."""
    if previous is None or bars.empty:
        return bars
    lo, hi = bars["date"].min().date(), bars["date"].max().date()
    files = [
        str(root / e.path)
        for e in previous.files_with_role("raw_bars")
        if e.min_date and e.max_date and e.min_date <= str(hi) and e.max_date >= str(lo)
    ]
    if not files:
        return bars
    with duck.cursor() as con:
        con.register("incoming", bars)
        stored = _query_frame(
            con,
            "SELECT o.symbol, o.date::TIMESTAMP_NS AS date, o.open, o.high, o.low, o.close, o.volume "
            "FROM read_parquet($files) o WHERE o.date BETWEEN $lo AND $hi "
            "AND o.symbol IN (SELECT DISTINCT symbol FROM incoming)",
            {"files": files, "lo": lo, "hi": hi},
        )
    if stored.empty:
        return bars
    stored["date"] = stored["date"].astype("datetime64[ns]")
    merged = bars.merge(stored, on=["symbol", "date"], how="left", suffixes=("", "_stored"), indicator=True)
    known = (merged["_merge"] == "both").to_numpy()
    for column in _VALUE_COLUMNS:
        differs = known & (merged[column].to_numpy() != merged[f"{column}_stored"].to_numpy())
        if differs.any():
            row = merged.loc[differs].sort_values(["symbol", "date"]).iloc[0]
            raise RawRestatementError(
                "bar",
                f"{row['symbol']} {row['date'].date()}",
                column,
                f"differs from the stored raw bar ({row[f'{column}_stored']!r}); raw bars are immutable",
                row[column],
            )
    return bars.loc[~known].reset_index(drop=True)


@dataclass(frozen=True)
class Derived:
    entries: list[FileEntry]
    events: pd.DataFrame


def derive_actions_and_factors(
    root: Path,
    previous: Manifest | None,
    stored_raw: list[FileEntry],
    new_rows: pd.DataFrame,
    splits: pd.DataFrame,
    dividends: pd.DataFrame,
    convention: str,
    write: Callable[[pd.DataFrame, str], FileEntry],
    new_row_keys: validation.BarKeys | None = None,
) -> Derived:
    """Merge fetched actions with those stored, validate them against the symbols of the stored
    raw files (`stored_raw`) and of the new rows, and compute the factor table from the raw bars
    around each event. Reads no raw file of this freeze (they may still be being written).
    `new_row_keys`: the (symbol, date) keys validation built for `new_rows`, when it has them."""
    raw_files = [str(root / e.path) for e in stored_raw]
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    # The stored tables are read, and the new ones written, two at a time: Parquet decoding and
    # encoding release the GIL, and a nightly refreeze is mostly this I/O.
    with ThreadPoolExecutor(max_workers=2) as pool:
        return _derive(root, previous, raw_files, new_rows, new_row_keys, splits, dividends, convention, write, now, pool)


def _derive(
    root: Path, previous: Manifest | None, raw_files: list[str], new_rows: pd.DataFrame,
    new_row_keys: validation.BarKeys | None, splits: pd.DataFrame,
    dividends: pd.DataFrame, convention: str, write: Callable[[pd.DataFrame, str], FileEntry], now: str,
    pool: ThreadPoolExecutor,
) -> Derived:
    empty = {"splits": schema.empty_splits(), "dividends": schema.empty_dividends(),
             "action_provenance": _empty_provenance()}
    if _factors_reusable(previous, convention):
        empty |= {"factors": adjustments.empty_factors(), "adjustment_events": adjustments.empty_events()}
    reading = {role: pool.submit(_read_role, root, previous, role, frame) for role, frame in empty.items()}
    stored_splits = reading["splits"].result()
    stored_divs = reading["dividends"].result()

    all_splits = _union(stored_splits, schema.normalize_splits(splits), list(schema.SPLIT_COLUMNS))
    # Stored dividends passed validation when they were stored: only the fetched ones not stored
    # yet are validated, then merged into the stored (sorted) table.
    new_divs = _fresh_rows(stored_divs, schema.normalize_dividends(dividends), schema.DIVIDEND_COLUMNS)
    symbols = _known_symbols(raw_files, new_rows, [stored_splits, stored_divs], _symbols(all_splits) | _symbols(new_divs))
    all_splits = validation.validate_splits(all_splits, symbols)
    fresh_splits = _fresh_rows(stored_splits, all_splits, schema.SPLIT_COLUMNS)
    fresh_divs = validation.validate_dividends(new_divs, symbols)
    all_divs = _merge_dividends(stored_divs, fresh_divs)
    stored_factors = None
    if "factors" in reading:
        stored_factors = (reading["factors"].result()[list(adjustments.empty_factors().columns)],
                          reading["adjustment_events"].result()[list(adjustments.EVENT_COLUMNS)])
    if stored_factors is None:
        bars_near, _ = _bars_near_events(root, previous, new_rows, all_splits, all_divs, new_row_keys=new_row_keys)
        factors, events = adjustments.compute_factors(bars_near, all_splits, all_divs, convention=convention)
    else:
        # Only symbols with a new action, or an event whose closes had to be looked up, can have
        # other factors than the previous version's: recompute those, keep the rest as stored.
        new_actions = _symbols(fresh_splits) | _symbols(fresh_divs)
        bars_near, redo = _bars_near_events(root, previous, new_rows, all_splits, all_divs, also=new_actions,
                                            known=stored_factors[1], new_row_keys=new_row_keys)
        part = adjustments.compute_factors(bars_near, _only(all_splits, redo), _only(all_divs, redo),
                                           convention=convention)
        factors = _replace_symbols(stored_factors[0], part.factors, redo, ["symbol", "valid_from"])
        events = _replace_symbols(stored_factors[1], part.events, redo, ["symbol", "event_date", "kind"])
        factors = factors.astype({"symbol": str, "valid_from": "datetime64[ns]", "valid_to": "datetime64[ns]"})
        events = events.astype({"symbol": str, "kind": str, "event_date": "datetime64[ns]", "prev_date": "datetime64[ns]"})

    provenance = _provenance(reading["action_provenance"].result(), stored_splits, stored_divs, all_splits, all_divs, fresh_splits, fresh_divs, now)
    tables = [
        (all_splits, "splits"),  # validated: sorted by (symbol, execution_date)
        (all_divs, "dividends"),  # sorted by (symbol, ex_dividend_date, cash_amount)
        (provenance, "action_provenance"),
        (factors.reset_index(drop=True), "factors"),
        (events.reset_index(drop=True), "adjustment_events"),
    ]
    entries = list(pool.map(lambda item: write(*item), tables))
    return Derived(entries=entries, events=events)


def _known_symbols(raw_files: list[str], new_rows: pd.DataFrame, stored_actions: list[pd.DataFrame],
                   needed: set[str]) -> set[str]:
    """Which of the `needed` symbols (those of the actions) the lake holds bars of. Symbols of
    stored actions passed this check when they were stored (raw bars are never removed); the
    others are looked for in the new rows, then in the raw files (that symbol list only)."""
    known = set().union(*(_symbols(frame) for frame in stored_actions)) & needed
    missing = needed - known
    if missing and not new_rows.empty:
        known |= missing & _symbols(new_rows)
        missing = needed - known
    if missing and raw_files:
        with duck.cursor() as con:
            rows = con.execute("SELECT DISTINCT symbol FROM read_parquet(?) WHERE symbol IN (SELECT unnest(?))",
                               [raw_files, sorted(missing)]).fetchall()
        known |= {row[0] for row in rows}
    return known


def _factors_reusable(previous: Manifest | None, convention: str) -> bool:
    """Whether a refreeze may build on the previous version's factors and applied events (same
    dividend convention, both tables present); else everything is recomputed."""
    if previous is None or previous.dividend_convention != convention:
        return False
    return bool(previous.files_with_role("factors") and previous.files_with_role("adjustment_events"))


def _fresh_rows(stored: pd.DataFrame, merged: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The actions in `merged` that `stored` did not hold."""
    if merged.empty or stored.empty:
        return merged
    keys = pd.MultiIndex.from_frame(merged[list(columns)])
    return merged.loc[~keys.isin(pd.MultiIndex.from_frame(stored[list(columns)]))]


_DIVIDEND_ORDER = ["symbol", "ex_dividend_date", "cash_amount"]
_INSERT_AT_MOST = 1000  # more fresh rows than this: one sort beats a binary search per row


def _merge_dividends(stored: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """The union of two validated, disjoint dividend tables, sorted by `_DIVIDEND_ORDER` (the
    order `validation.validate_dividends` gives)."""
    columns = list(schema.DIVIDEND_COLUMNS)
    return _insert_sorted(stored[columns], fresh[columns], _DIVIDEND_ORDER)


def _insert_sorted(stored: pd.DataFrame, fresh: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`stored` and `fresh` (same columns) as one table in the order of a stable sort by `keys`.
    When `stored` is in that order already (as the lake writes it) and `fresh` is small, each
    fresh row is put in place by a binary search instead of sorting the 100k+ stored rows."""
    both = pd.concat([stored, fresh], ignore_index=True)
    if fresh.empty:
        return both
    if stored.empty or len(fresh) > _INSERT_AT_MOST or not _in_order(stored, keys):
        return both.sort_values(keys, kind="stable").reset_index(drop=True)
    rows = _Rows([_comparable(stored[k]) for k in keys], len(stored))
    fresh_keys = list(zip(*(_comparable(fresh[k]).to_pylist() for k in keys)))
    at = np.array([bisect.bisect_right(rows, key) for key in fresh_keys], dtype=np.int64)
    # fresh rows at one position keep their sorted order (stable: a tie keeps fresh after stored)
    order_fresh = sorted(range(len(fresh)), key=lambda i: (at[i], fresh_keys[i]))
    order = np.insert(np.arange(len(stored)), at[order_fresh], len(stored) + np.array(order_fresh, dtype=np.int64))
    return both.take(order).reset_index(drop=True)


class _Rows:
    """Row i of some Arrow columns as a tuple of Python values, read lazily (for `bisect` over a
    sorted table: about 17 rows are read per search in 126k)."""

    def __init__(self, columns: list[pa.Array], length: int) -> None:
        self._columns, self._length = columns, length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, i: int) -> tuple:
        return tuple(column[i].as_py() for column in self._columns)


def _comparable(column: pd.Series) -> pa.Array:
    """The column as Arrow values that compare as pandas sorts them (dates as int64 ns)."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return pa.array(column.to_numpy(dtype="datetime64[ns]").view(np.int64))
    array = pa.array(column)
    return array.cast(pa.string()) if pa.types.is_dictionary(array.type) or pa.types.is_large_string(array.type) else array


def _in_order(frame: pd.DataFrame, keys: list[str]) -> bool:
    """Whether `frame` is sorted by `keys` (lexicographically; a NaN anywhere: not sorted)."""
    if len(frame) < 2:
        return True
    later = np.zeros(len(frame) - 1, dtype=bool)  # row i+1 > row i on the keys compared so far
    tied = np.ones(len(frame) - 1, dtype=bool)
    for key in keys:
        column = frame[key]
        if column.isna().any():
            return False
        if pd.api.types.is_datetime64_any_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
            values = column.to_numpy(dtype="datetime64[ns]" if column.dtype.kind == "M" else None)
            head, tail = values[:-1], values[1:]
            greater, equal = tail > head, tail == head
        else:
            values = pa.array(column).cast(pa.string())
            head, tail = values.slice(0, len(values) - 1), values.slice(1)
            greater = pc.greater(tail, head).to_numpy(zero_copy_only=False)
            equal = pc.equal(tail, head).to_numpy(zero_copy_only=False)
        later |= tied & greater
        tied &= equal
    return bool(np.all(later | tied))


def _symbols(frame: pd.DataFrame) -> set[str]:
    """The distinct symbols of `frame` (vectorized first: iterating 126k Arrow strings costs 0.1 s;
    a categorical's used categories come from counting its codes, not hashing 12.6M rows)."""
    column = frame["symbol"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        used = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories)) > 0
        return {str(s) for s in column.cat.categories[used]}
    return {str(s) for s in column.unique()}


def _only(frame: pd.DataFrame, symbols: set[str]) -> pd.DataFrame:
    return frame.loc[frame["symbol"].isin(symbols)]


def _replace_symbols(stored: pd.DataFrame, fresh: pd.DataFrame, symbols: set[str], keys: list[str]) -> pd.DataFrame:
    """`stored` with the rows of `symbols` replaced by `fresh`, in the order a full computation
    gives: sorted by `keys`, whose first is the symbol. Each symbol's rows come from one side, so
    when `stored` is in that order (as the lake writes it) the fresh rows, sorted, go where their
    symbol's block starts among the stored symbols: one concatenation and one take, no sort of
    the kept 100k+ rows."""
    drop = stored["symbol"].isin(symbols).to_numpy()
    fresh = fresh.sort_values(keys, kind="stable")
    both = pd.concat([stored, fresh], ignore_index=True)
    names = pa.array(stored["symbol"]).cast(pa.string())
    head, tail = names.slice(0, max(len(names) - 1, 0)), names.slice(1)
    if len(stored) > 1 and not pc.all(pc.greater_equal(tail, head)).as_py():  # not in symbol order
        kept = np.concatenate([np.flatnonzero(~drop), len(stored) + np.arange(len(fresh))])
        return both.take(kept).sort_values(keys, kind="stable").reset_index(drop=True)
    # the first stored row of each symbol, and the stored row each fresh row goes before
    starts = np.flatnonzero(np.concatenate(([True], pc.not_equal(tail, head).to_numpy(zero_copy_only=False)))) \
        if len(stored) else np.zeros(0, dtype=np.int64)
    block = np.searchsorted(np.array(names.take(pa.array(starts)).to_pylist(), dtype=object),
                            fresh["symbol"].to_numpy(dtype=object), side="left")
    before = np.append(starts, len(stored))[block]
    kept = np.flatnonzero(~drop)
    order = np.insert(kept, np.searchsorted(kept, before, side="left"), len(stored) + np.arange(len(fresh)))
    return both.take(order).reset_index(drop=True)


def _read_role(root: Path, previous: Manifest | None, role: str, empty: pd.DataFrame) -> pd.DataFrame:
    if previous is None:
        return empty
    files = [str(root / e.path) for e in previous.files_with_role(role)]
    if not files:
        return empty
    return pd.read_parquet(files[0])


def _union(stored: pd.DataFrame, fetched: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    both = pd.concat([stored[columns], fetched[columns]], ignore_index=True)
    return both.drop_duplicates().reset_index(drop=True)


def _empty_provenance() -> pd.DataFrame:
    return pd.DataFrame({"kind": [], "symbol": [], "date": [], "amount": [], "first_seen_at": []}).astype(
        {"kind": str, "symbol": str, "date": "datetime64[ns]", "amount": "float64", "first_seen_at": str}
    )


_PROVENANCE_KEYS = ["kind", "symbol", "date", "amount"]


def _provenance_rows(splits: pd.DataFrame, divs: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(
        [
            pd.DataFrame({"kind": "split", "symbol": splits["symbol"], "date": splits["execution_date"],
                          "amount": splits["split_to"] / splits["split_from"]}),
            pd.DataFrame({"kind": "dividend", "symbol": divs["symbol"], "date": divs["ex_dividend_date"],
                          "amount": divs["cash_amount"]}),
        ],
        ignore_index=True,
    )


def _provenance(
    stored: pd.DataFrame, stored_splits: pd.DataFrame, stored_divs: pd.DataFrame, splits: pd.DataFrame,
    divs: pd.DataFrame, fresh_splits: pd.DataFrame, fresh_divs: pd.DataFrame, now: str,
) -> pd.DataFrame:
    """When each action was first fetched. Kept out of the content hash (see manifest).

    Stored actions are never dropped, so when the stored provenance has one row per stored
    action (and every stored action is still there), it is kept whole and only the fresh actions
    are stamped `now`; otherwise every action is matched with the stored provenance."""
    keys = _PROVENANCE_KEYS
    if len(stored) == len(stored_splits) + len(stored_divs) \
            and len(splits) - len(fresh_splits) == len(stored_splits) and len(divs) - len(fresh_divs) == len(stored_divs):
        fresh = _provenance_rows(fresh_splits, fresh_divs).assign(first_seen_at=now)
        if fresh.empty:
            return stored[keys + ["first_seen_at"]].reset_index(drop=True)
        stored = stored[keys + ["first_seen_at"]].astype({"symbol": str, "first_seen_at": str})
        return _insert_sorted(stored, fresh.astype({"symbol": str, "first_seen_at": str}), keys)
    else:
        merged = _provenance_rows(splits, divs).merge(stored[keys + ["first_seen_at"]], on=keys, how="left")
        merged["first_seen_at"] = merged["first_seen_at"].fillna(now)
    merged = merged.astype({"symbol": str, "first_seen_at": str})
    return merged.sort_values(keys).reset_index(drop=True)


def _bars_near_events(
    root: Path, previous: Manifest | None, new_rows: pd.DataFrame, splits: pd.DataFrame, divs: pd.DataFrame,
    also: set[str] | None = None, known: pd.DataFrame | None = None, new_row_keys: validation.BarKeys | None = None,
) -> tuple[pd.DataFrame, set[str]]:
    """The raw closes the factor computation needs: for each event, the last bar before its
    session and the first bar on or after it; and the symbols whose bars had to be looked up.
    With `also` (a refreeze recomputing only some symbols), only the bars of those symbols and
    of the looked-up ones are returned, and the second value is that union. `known`: the
    previous version's applied events, when the caller has read them already.

    Events the previous version already applied reuse the closes it recorded (raw bars are
    immutable) unless a new bar of that symbol arrived at or before the event. Only the other
    events look bars up: in the new rows (in memory) and, for symbols already stored, in the
    stored files (three columns, those symbols only). A nightly refreeze therefore reads little
    beyond its new day, and a full one reads nothing back from disk."""
    sessions = pd.DataFrame(
        {
            "symbol": pd.concat([splits["symbol"], divs["symbol"]], ignore_index=True),
            "event_date": adjustments.effective_sessions(
                pd.concat([splits["execution_date"], divs["ex_dividend_date"]], ignore_index=True)
            ),
        }
    ).drop_duplicates()
    if sessions.empty:
        return schema.empty_bars()[["symbol", "date", "close"]], set()
    parts = []
    wanted: set[str] = set(also or ())
    if known is None:
        known = _read_role(root, previous, "adjustment_events", pd.DataFrame(columns=["symbol", "event_date"]))
    if not known.empty:
        known = known[["symbol", "event_date", "prev_date", "close_prev", "close_ex"]]
        if not new_rows.empty:
            # an applied event stays valid unless a new bar of its symbol lies at or before it
            maybe = (known["event_date"] >= new_rows["date"].min()).to_numpy()
            if maybe.any():
                first_new = known.loc[maybe, "symbol"].map(new_rows.groupby("symbol")["date"].min())
                stale = (first_new.notna() & (known.loc[maybe, "event_date"] >= first_new)).to_numpy()
                keep = np.ones(len(known), dtype=bool)
                keep[np.flatnonzero(maybe)[stale]] = False
                known = known.loc[keep]
        applied = pd.MultiIndex.from_frame(known[["symbol", "event_date"]])
        sessions = sessions.loc[~pd.MultiIndex.from_frame(sessions[["symbol", "event_date"]]).isin(applied)]
        if also is not None:
            wanted = _symbols(sessions) | also
            known = known.loc[known["symbol"].isin(wanted)]
        parts += [
            known.rename(columns={"prev_date": "date", "close_prev": "close"})[["symbol", "date", "close"]],
            known.rename(columns={"event_date": "date", "close_ex": "close"})[["symbol", "date", "close"]],
        ]
    if not sessions.empty:
        wanted |= _symbols(sessions)
        fresh = _rows_around(new_rows[["symbol", "date", "close"]], sessions, new_row_keys)
        parts.append(fresh)
        stored = previous.files_with_role("raw_bars") if previous else []
        if stored:
            parts.append(_stored_rows_around(root, stored, sessions, fresh))
    frame = pd.concat(parts, ignore_index=True) if parts else schema.empty_bars()[["symbol", "date", "close"]]
    frame["date"] = frame["date"].astype("datetime64[ns]")
    frame = frame.drop_duplicates(["symbol", "date"]).sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    return frame, wanted


NEAR_DAYS = 40  # calendar days around an event that the first, windowed look-up covers


def _stored_rows_around(root: Path, stored: list[FileEntry], sessions: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """`_rows_around` in the stored raw files, reading as little as possible (`fresh`: the rows
    already found around the events in the new bars).

    First only the files whose dates overlap NEAR_DAYS around some event are read, for the
    events' symbols: each event's window, clipped to the stored dates, lies wholly in the files
    read (a file holds whole years), so a bar found inside it is that side's nearest bar, and
    no bar inside it means none exists there. An event with a side still open (a long trading
    halt, a symbol new to the lake) is looked up again in every file."""
    near = pd.Timedelta(days=NEAR_DAYS)
    lo = (sessions["event_date"] - near).to_numpy(dtype="datetime64[ns]")
    hi = (sessions["event_date"] + near).to_numpy(dtype="datetime64[ns]")
    dated = [e for e in stored if e.min_date and e.max_date]
    if len(dated) != len(stored):
        return _rows_around(_stored_bars(root, stored, _symbols(sessions)), sessions)
    first = min(np.datetime64(e.min_date, "ns") for e in stored)
    last = max(np.datetime64(e.max_date, "ns") for e in stored)
    windowed = [e for e in stored if bool(((lo <= np.datetime64(e.max_date, "ns")) & (hi >= np.datetime64(e.min_date, "ns"))).any())]
    found = _rows_around(_stored_bars(root, windowed, _symbols(sessions)), sessions)
    before, after = _nearest_sides(pd.concat([found, fresh], ignore_index=True), sessions)
    open_side = ((before < lo) & (lo > first)) | ((after > hi) & (hi < last))
    unresolved = sessions.loc[open_side]
    if unresolved.empty:
        return found
    again = _rows_around(_stored_bars(root, stored, _symbols(unresolved)), unresolved)
    return pd.concat([found, again], ignore_index=True)


def _nearest_sides(bars: pd.DataFrame, sessions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For each session: the date of the symbol's last bar in `bars` before it (NaT-like minimum
    when none) and of its first bar on or after it (maximum when none)."""
    lowest, highest = np.datetime64("1677-09-22", "ns"), np.datetime64("2262-04-10", "ns")
    before = np.full(len(sessions), lowest)
    after = np.full(len(sessions), highest)
    if bars.empty:
        return before, after
    ordered = bars.sort_values(["symbol", "date"], kind="stable")
    events = sessions.reset_index(drop=True).assign(_i=np.arange(len(sessions))).sort_values("event_date", kind="stable")
    left = pd.merge_asof(events, ordered.rename(columns={"date": "_d"})[["symbol", "_d"]].sort_values("_d"),
                         left_on="event_date", right_on="_d", by="symbol", direction="backward", allow_exact_matches=False)
    right = pd.merge_asof(events, ordered.rename(columns={"date": "_d"})[["symbol", "_d"]].sort_values("_d"),
                          left_on="event_date", right_on="_d", by="symbol", direction="forward", allow_exact_matches=True)
    before[left["_i"].to_numpy()] = left["_d"].fillna(pd.Timestamp(lowest)).to_numpy(dtype="datetime64[ns]")
    after[right["_i"].to_numpy()] = right["_d"].fillna(pd.Timestamp(highest)).to_numpy(dtype="datetime64[ns]")
    return before, after


def _rows_by_keys(keys: validation.BarKeys, sessions: pd.DataFrame) -> np.ndarray:
    """Row positions, ascending, of each event's last bar before its session and first bar on or
    after it (of the event's own symbol), in strictly increasing (symbol, day) `keys`."""
    event_codes = pd.Index(keys.symbols).get_indexer(sessions["symbol"])
    known = event_codes >= 0
    event_codes = event_codes[known]
    targets = validation.symbol_day_keys(event_codes, validation.day_numbers(sessions["event_date"])[known])
    at_or_after = np.searchsorted(keys.keys, targets, side="left")
    picks = []
    for pos in (at_or_after, at_or_after - 1):
        inside = (pos >= 0) & (pos < len(keys.keys))
        pos, codes = pos[inside], event_codes[inside]
        picks.append(pos[keys.codes[pos] == codes])
    return np.unique(np.concatenate(picks))


def _stored_bars(root: Path, entries: list[FileEntry], symbols: set[str]) -> pd.DataFrame:
    """symbol, date, close of `symbols` from the raw files `entries`."""
    if not entries or not symbols:
        return schema.empty_bars()[["symbol", "date", "close"]]
    with duck.cursor() as con:
        frame = _query_frame(
            con,
            "SELECT symbol, date::TIMESTAMP_NS AS date, close FROM read_parquet($files) "
            "WHERE symbol IN (SELECT unnest($symbols))",
            {"files": [str(root / e.path) for e in entries], "symbols": sorted(symbols)},
        )
    return frame.astype({"date": "datetime64[ns]"})


def _query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> pd.DataFrame:
    """A query's rows as pandas, through Arrow: DuckDB's own `.df()` spends ~0.2 s warming up
    once per process, more than a nightly refreeze's whole lookup."""
    return con.sql(sql, params=params).to_arrow_table().to_pandas()


def _rows_around(bars: pd.DataFrame, sessions: pd.DataFrame, keys: validation.BarKeys | None = None) -> pd.DataFrame:
    """The rows of `bars` (symbol, date, close) that some event of `sessions` (symbol,
    event_date) needs: the symbol's last bar before the event session and its first bar on or
    after it. One binary search over (symbol, date) keys: a full freeze's 12.6M bars shrink to
    two rows per event without a sort (bars usually arrive sorted; otherwise they are sorted).
    `keys`: the bars' keys as validation built them; when they increase, they are searched as
    they are (nothing is recomputed over the rows)."""
    if bars.empty:
        return bars
    if keys is not None and keys.increasing and len(keys.keys) == len(bars):
        return bars.iloc[_rows_by_keys(keys, sessions)]
    days = bars["date"].to_numpy(dtype="datetime64[D]").view(np.int64)
    coded = schema.sorted_symbol_codes(bars["symbol"])
    if coded is not None:  # a categorical column: compare int codes, not strings
        codes, categories = coded
        changed = codes[1:] != codes[:-1]
        symbols_ordered = bool(np.all(codes[1:] >= codes[:-1]))
    else:
        symbols = pa.array(bars["symbol"])
        symbols = (symbols.combine_chunks() if isinstance(symbols, pa.ChunkedArray) else symbols).cast(pa.string())
        head, tail = symbols.slice(0, len(symbols) - 1), symbols.slice(1)
        changed = pc.not_equal(tail, head).to_numpy(zero_copy_only=False)
        symbols_ordered = pc.all(pc.greater_equal(tail, head)).as_py() is not False
    ordered = symbols_ordered and bool(np.all((days[1:] >= days[:-1]) | changed))
    if not ordered:
        # By symbol name (a categorical's own order is its categories', not the names'), then date.
        bars = bars.iloc[np.lexsort((days, codes))] if coded is not None else bars.sort_values(["symbol", "date"], kind="stable")
        return _rows_around(bars.reset_index(drop=True), sessions)
    starts = np.concatenate(([0], np.flatnonzero(changed) + 1))
    group_of_row = np.cumsum(np.concatenate(([False], changed)), dtype=np.int64)
    if coded is not None:
        names = pd.Index(categories[codes[starts]].tolist())
    else:
        names = pd.Index(symbols.take(pa.array(starts)).to_pylist())
    event_group = names.get_indexer(sessions["symbol"])
    known = event_group >= 0
    event_group = event_group[known]
    event_days = sessions["event_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)[known]
    span = np.int64(1 << 32)  # days since 1970 fit in 32 bits for any real date
    keys = group_of_row * span  # then in place: each 12.6M-row temporary costs fresh pages
    keys += days
    keys -= days.min()
    targets = event_group * span + (event_days - days.min())
    at_or_after = np.searchsorted(keys, targets, side="left")
    picks = []
    for pos in (at_or_after, at_or_after - 1):
        inside = (pos >= 0) & (pos < len(keys))
        pos, groups = pos[inside], event_group[inside]
        picks.append(pos[group_of_row[pos] == groups])
    rows = np.unique(np.concatenate(picks))
    return bars.iloc[rows]
