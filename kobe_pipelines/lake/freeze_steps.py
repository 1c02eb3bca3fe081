"""The data steps of a freeze: which raw bars are new, and the derived action and factor files.

Kept apart from `store` (which owns files, versions and publishing) so each reads on its own.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kobe_pipelines.data import adjustments, event_checks, schema, validation
from kobe_pipelines.lake import duck
from kobe_pipelines.lake.errors import LakeCorruptionError, RawRestatementError
from kobe_pipelines.lake.manifest import FileEntry, Manifest

if TYPE_CHECKING:
    import duckdb

_VALUE_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class NewBars:
    """Validated bars of a freeze, sorted by (symbol, date), with the keys validation built for
    them. Kept in Arrow: a first freeze's millions of rows never become pandas; the freeze asks
    only for what it needs (their symbols, each symbol's first date, the rows around events)."""

    table: pa.Table  # schema.BARS_ARROW_SCHEMA (symbols may be dictionary-encoded)
    keys: validation.BarKeys | None  # None for no rows

    @classmethod
    def validated(cls, bars: pd.DataFrame | pa.Table, as_of: dt.date | None = None) -> "NewBars":
        """Check `bars` (`validation.validate_bars_table`: raises for the first bad record)."""
        return cls(*validation.validate_bars_table(schema.bars_table(bars), as_of))

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def empty(self) -> bool:
        return self.table.num_rows == 0

    @cached_property
    def symbols(self) -> set[str]:
        if self.keys is None:
            return set()
        present = np.bincount(self.keys.codes, minlength=len(self.keys.symbols)) > 0
        return set(self.keys.symbols[present].tolist())

    @cached_property
    def first_dates(self) -> pd.Series:
        """The date of each symbol's first bar here (index: symbol)."""
        if self.keys is None:
            return pd.Series([], dtype="datetime64[ns]")
        codes = self.keys.codes
        starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
        days = validation.key_days(self.keys.keys[starts])
        return pd.Series(days.astype("datetime64[D]").astype("datetime64[ns]"), index=self.keys.symbols[codes[starts]])

    @cached_property
    def date_range(self) -> tuple[dt.date, dt.date]:
        dates = self.table.column("date")
        return pc.min(dates).as_py(), pc.max(dates).as_py()

    @cached_property
    def frame(self) -> pd.DataFrame:
        """All the rows as pandas (`schema.BAR_COLUMNS`)."""
        return schema.normalize_bars(self.table.to_pandas())

    def rows_around(self, sessions: pd.DataFrame) -> pd.DataFrame:
        """`_rows_around` of these bars (symbol, date, close), found by the keys."""
        if self.keys is None:
            return schema.empty_bars()[["symbol", "date", "close"]]
        rows = self.table.select(["symbol", "date", "close"]).take(pa.array(_rows_by_keys(self.keys, sessions)))
        return _close_frame(rows)

    def subset(self, keep: np.ndarray) -> "NewBars":
        """The rows where `keep` is True (still sorted)."""
        if bool(keep.all()):
            return self
        keys = self.keys
        return NewBars(self.table.filter(pa.array(keep)),
                       validation.BarKeys(keys.symbols, keys.codes[keep], keys.keys[keep], True) if keep.any() else None)


def _close_frame(rows: pa.Table) -> pd.DataFrame:
    """symbol (str), date (datetime64[ns]), close of a bars table's rows."""
    return pd.DataFrame({
        "symbol": rows.column("symbol").cast(pa.string()).to_pandas(),
        "date": rows.column("date").to_numpy().astype("datetime64[ns]"),
        "close": rows.column("close").to_numpy(),
    })


def find_new_rows(root: Path, previous: Manifest | None, bars: NewBars) -> NewBars:
    """The bars not stored yet. A stored bar re-delivered with other values is an error: raw
    bars are immutable, and a silent restatement would change history under every model."""
    if previous is None or bars.empty:
        return bars
    lo, hi = bars.date_range
    files = [
        str(root / e.path)
        for e in previous.files_with_role("raw_bars")
        if e.min_date and e.max_date and e.min_date <= str(hi) and e.max_date >= str(lo)
    ]
    if not files:
        return bars
    with duck.cursor() as con:
        stored = _query_frame(
            con,
            "SELECT o.symbol, o.date::TIMESTAMP_NS AS date, o.open, o.high, o.low, o.close, o.volume "
            "FROM read_parquet($files, hive_partitioning = false) o WHERE o.date BETWEEN $lo AND $hi "
            "AND o.symbol IN (SELECT unnest($symbols))",
            {"files": files, "lo": lo, "hi": hi, "symbols": sorted(bars.symbols)},
        )
    if stored.empty:
        return bars
    stored["date"] = stored["date"].astype("datetime64[ns]")
    merged = bars.frame.merge(stored, on=["symbol", "date"], how="left", suffixes=("", "_stored"), indicator=True)
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
    return bars.subset(~known)


@dataclass(frozen=True)
class ActionsSetAside:
    """Corporate actions a version holds but cannot apply because the lake has no bar of their
    symbol (an OTC ticker in Polygon's list, a symbol listed after the frozen range or delisted
    before it). They are kept in the version (role `actions_set_aside`), unvalidated, and join
    the fetched actions of the freeze that brings the symbol's first bars."""

    splits: int = 0
    dividends: int = 0
    symbols: int = 0

    @property
    def total(self) -> int:
        return self.splits + self.dividends


@dataclass(frozen=True)
class Derived:
    entries: list[FileEntry]
    events: pa.Table | pd.DataFrame  # the version's applied events
    set_aside: ActionsSetAside


# The derived tables of a version, in the order they are written.
_ROLES = ("splits", "dividends", "action_provenance", "factors", "adjustment_events", "actions_set_aside")


# Tables a refreeze mostly adds rows to -- the dividends, when each action was first fetched, the
# applied events -- are kept as up to SEGMENTS_MAX files each: a refreeze writes its new rows as
# one more file, and the refreeze that would pass the limit writes the table again as one file.
# Storage and time per refreeze then follow what changed, not the 100k+ rows of history.
SEGMENTS_MAX = 16
_DIVIDEND_ORDER = ["symbol", "ex_dividend_date", "cash_amount"]
_PROVENANCE_KEYS = ["kind", "symbol", "date", "amount"]
_EVENT_KEYS = ["symbol", "event_date", "kind"]
# The order of each derived table's rows (a segmented table's within each of its files).
DERIVED_ORDER = {
    "splits": ["symbol", "execution_date"], "dividends": _DIVIDEND_ORDER, "action_provenance": _PROVENANCE_KEYS,
    "factors": ["symbol", "valid_from"], "adjustment_events": _EVENT_KEYS,
    "actions_set_aside": ["kind", "symbol", "date", "split_from", "split_to", "cash_amount"],
}


@dataclass(frozen=True)
class _Change:
    """What a freeze writes for one derived table: the whole table (`append` False), or rows to
    add to the stored ones (segmented tables only). Rows given as a frame are turned into Arrow
    (in `schema`, when given) by the thread that writes them, off the freeze's critical path."""

    rows: pa.Table | pd.DataFrame
    append: bool = False
    schema: pa.Schema | None = None
    ordered: bool = True  # whether a whole table's rows are in DERIVED_ORDER already

    def table(self) -> pa.Table:
        return self.rows if isinstance(self.rows, pa.Table) else _arrow(self.rows, self.schema)


def derive_actions_and_factors(
    root: Path,
    previous: Manifest | None,
    stored_raw: list[FileEntry],
    new_rows: NewBars,
    splits: pd.DataFrame,
    dividends: pd.DataFrame,
    convention: str,
    write: Callable[[pa.Table, str], FileEntry],
    pool: ThreadPoolExecutor,
    reading: dict[str, Future],
) -> Derived:
    """Merge fetched actions with those stored, validate them against the symbols of the stored
    raw files (`stored_raw`) and of the new rows, and compute the factor table from the raw bars
    around each event. Reads no raw file of this freeze (they may still be being written).
    `reading`: the stored tables being read (`read_stored`); `pool` writes the new ones.

    A refreeze keeps the stored tables in Arrow and turns into pandas only the rows it must look
    at: the stored actions from the earliest fetched date on, and the actions and events of the
    symbols whose factors can change. A table nothing changed in keeps its files; new dividends,
    provenance and events are added as a file of their own (see SEGMENTS_MAX)."""
    raw_files = [str(root / e.path) for e in stored_raw]
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    kept = _kept(previous)
    # The pool's threads read the stored tables, then write the new ones, while this one merges and
    # computes: Parquet decoding and encoding release the GIL. The action tables are written while
    # the factors are computed.
    writing: dict[str, Future] = {}
    try:
        stored = {role: reading[role].result() for role in ("splits", "dividends")}
        provenance = _StoredProvenance(root, kept["action_provenance"])
        aside = _SetAside.split(read_table(root, kept["actions_set_aside"]), splits, dividends)
        actions, action_changes, stored["action_provenance"], unknown = _merge_actions(
            stored["splits"], stored["dividends"], provenance, aside.splits, aside.dividends, raw_files, new_symbols=new_rows.symbols,
            now=now)

        def rows_of(role: str) -> Callable[[], pa.Table | None]:
            if role == "action_provenance":
                return lambda: stored[role] if stored[role] is not None else provenance.table()
            return lambda: stored[role]

        def start(role: str, change: _Change) -> None:
            writing[role] = pool.submit(_settle, change, kept[role], role, write, rows_of(role))

        for role, change in zip(_ROLES[:3], action_changes):
            if change is not None:
                start(role, change)
        set_aside = aside.kept(unknown)
        if not set_aside.equals(aside.stored):
            if set_aside.num_rows:
                start("actions_set_aside", _Change(set_aside, ordered=False))
            else:
                writing["actions_set_aside"] = pool.submit(list)  # no file: nothing is set aside any more
        stored |= {role: reading[role].result() for role in _ROLES[3:5]}
        if _factors_reusable(previous, convention) and stored["factors"] is not None \
                and _events_with_ex_dates(stored["adjustment_events"]):
            # the factor table is written while the events are compared
            factors, events = _refreshed_factors(root, previous, new_rows, actions, stored["factors"],
                                                 stored["adjustment_events"], convention, lambda c: start("factors", c))
        else:
            factors, events = _all_factors(root, previous, new_rows, actions, stored["adjustment_events"], convention)
        for role, change in (("factors", factors), ("adjustment_events", events)):
            if change is not None and role not in writing:
                start(role, change)
        entries = [entry for role in _ROLES for entry in (writing[role].result() if role in writing else kept[role])]
    except BaseException:
        wait(list(writing.values()))  # every file this call writes is on disk before the caller removes them
        raise
    if events is None:
        all_events = stored["adjustment_events"]
    else:
        all_events = pa.concat_tables([stored["adjustment_events"], events.table()]) if events.append else events.rows
    return Derived(entries=entries, events=all_events, set_aside=_SetAside.count(set_aside))


def read_stored(pool: ThreadPoolExecutor, root: Path, previous: Manifest | None) -> dict[str, Future]:
    """Start reading the previous version's derived tables (but the provenance, which is read
    only when it must be rewritten: see `_provenance`), for `derive_actions_and_factors`. A
    freeze starts this before it validates the bars, so that the tables are there when needed."""
    kept = _kept(previous)
    return {role: pool.submit(read_table, root, kept[role]) for role in _ROLES[:5] if role != "action_provenance"}


def _kept(previous: Manifest | None) -> dict[str, list[FileEntry]]:
    return {role: previous.files_with_role(role) if previous else [] for role in _ROLES}


def _settle(change: _Change, kept: list[FileEntry], role: str, write: Callable[[pa.Table, str], FileEntry],
            stored: Callable[[], pa.Table | None]) -> list[FileEntry]:
    """Write `change` of `role` (`kept`: its stored files; `stored`: reads their rows, for a
    compaction); the table's files in the new version."""
    rows = change.table()
    if not change.append or not kept:
        return [write(rows if change.ordered else in_derived_order(rows, role), role)]
    if len(kept) < SEGMENTS_MAX:
        return kept + [write(in_derived_order(rows, role), role)]
    return [write(in_derived_order(pa.concat_tables([stored(), rows]), role), role)]  # compacted


def in_derived_order(table: pa.Table, role: str) -> pa.Table:
    """A derived table of `role` sorted by DERIVED_ORDER."""
    return table.take(pc.sort_indices(table, sort_keys=[(k, "ascending") for k in DERIVED_ORDER[role]]))


@dataclass(frozen=True)
class _Actions:
    splits: pd.DataFrame  # every split, validated, sorted by (symbol, execution_date)
    stored_dividends: pa.Table | None
    fresh_splits: pd.DataFrame  # the splits and dividends the previous version did not hold
    fresh_dividends: pd.DataFrame  # validated, sorted by _DIVIDEND_ORDER

    @cached_property
    def dividends(self) -> pa.Table:
        """Every dividend: the stored ones, then the fresh ones."""
        stored = self.stored_dividends if self.stored_dividends is not None else _arrow(schema.empty_dividends())
        return pa.concat_tables([stored, _arrow(self.fresh_dividends[list(schema.DIVIDEND_COLUMNS)], stored.schema)])

    def dividends_frame(self) -> pd.DataFrame:
        """Every dividend as pandas, sorted by _DIVIDEND_ORDER (the order a first freeze validates them in)."""
        if self.stored_dividends is None:
            return self.fresh_dividends
        return self.dividends.to_pandas().sort_values(_DIVIDEND_ORDER, kind="stable")


@dataclass(frozen=True)
class _StoredProvenance:
    """The stored provenance table's files, read only when needed."""

    root: Path
    files: list[FileEntry]

    @property
    def rows(self) -> int:
        return sum(entry.rows for entry in self.files)

    def schema(self) -> pa.Schema | None:
        return pq.read_schema(self.root / self.files[0].path) if self.files else None

    def table(self) -> pa.Table | None:
        return read_table(self.root, self.files)


def _merge_actions(
    stored_splits: pa.Table | None, stored_divs: pa.Table | None, stored_provenance: _StoredProvenance,
    splits: pd.DataFrame, dividends: pd.DataFrame, raw_files: list[str], new_symbols: set[str], now: str,
) -> tuple[_Actions, tuple[_Change | None, _Change | None, _Change | None], pa.Table | None, tuple[pd.DataFrame, pd.DataFrame]]:
    """The stored actions merged with the fetched ones; what to write of the splits, dividends and
    provenance (None: nothing changed); the stored provenance when it had to be read; and the
    fetched splits and dividends of symbols the lake has no bar of (set aside, not validated).
    Stored actions passed validation when they were stored: only fetched actions the lake does
    not hold yet are validated (splits together with the stored ones, so a duplicate or a
    conflicting ratio of a stored split is caught)."""
    fetched_splits, fetched_divs = schema.normalize_splits(splits), schema.normalize_dividends(dividends)
    split_candidates = _not_stored(stored_splits, fetched_splits, schema.SPLIT_COLUMNS, "execution_date")
    div_candidates = _not_stored(stored_divs, fetched_divs, schema.DIVIDEND_COLUMNS, "ex_dividend_date")
    kept_splits = stored_splits.to_pandas() if stored_splits is not None else schema.empty_splits()
    # Symbols of stored actions were checked when they were stored (raw bars are never removed).
    stored_symbols = _table_symbols(stored_splits) | _table_symbols(stored_divs)
    needed = _symbols(split_candidates) | _symbols(div_candidates)
    symbols = stored_symbols | _known_symbols(raw_files, new_symbols, needed - stored_symbols)
    unknown = (split_candidates.loc[~split_candidates["symbol"].isin(symbols)],
               div_candidates.loc[~div_candidates["symbol"].isin(symbols)])
    if len(unknown[0]):
        split_candidates = split_candidates.loc[split_candidates["symbol"].isin(symbols)]
        fetched_splits = fetched_splits.loc[fetched_splits["symbol"].isin(symbols)]
    if len(unknown[1]):
        div_candidates = div_candidates.loc[div_candidates["symbol"].isin(symbols)]
    all_splits, fresh_splits = _merge_splits(kept_splits, fetched_splits, _symbols(split_candidates), symbols)
    fresh_divs = validation.validate_dividends(div_candidates, symbols)  # sorted by _DIVIDEND_ORDER
    actions = _Actions(all_splits, stored_divs, fresh_splits, fresh_divs)
    n_stored_divs = stored_divs.num_rows if stored_divs is not None else 0
    provenance, read = _provenance(stored_provenance, len(kept_splits), n_stored_divs, actions, now)
    added = fresh_divs[list(schema.DIVIDEND_COLUMNS)]
    changes = (
        _Change(all_splits) if len(fresh_splits) or stored_splits is None else None,
        None if stored_divs is not None and added.empty else
        _Change(added, append=stored_divs is not None, schema=stored_divs.schema if stored_divs is not None else None),
        provenance,
    )
    return actions, changes, read, unknown


@dataclass(frozen=True)
class _SetAside:
    """The set-aside actions stored in the previous version (`stored`), and the fetched actions
    with them added back (`splits`, `dividends`): a freeze treats a set-aside action as fetched
    again, so it is applied once the lake holds its symbol's bars."""

    stored: pa.Table
    splits: pd.DataFrame
    dividends: pd.DataFrame

    COLUMNS = ("kind", "symbol", "date", "split_from", "split_to", "cash_amount")
    SCHEMA = pa.schema([("kind", pa.string()), ("symbol", pa.string()), ("date", pa.timestamp("ns")),
                        ("split_from", pa.float64()), ("split_to", pa.float64()), ("cash_amount", pa.float64())])

    @classmethod
    def split(cls, stored: pa.Table | None, splits: pd.DataFrame, dividends: pd.DataFrame) -> "_SetAside":
        stored = stored if stored is not None else cls.SCHEMA.empty_table()
        if stored.num_rows == 0:
            return cls(stored, splits, dividends)
        rows = stored.to_pandas()
        kept_splits = rows.loc[rows["kind"] == "split"].rename(columns={"date": "execution_date"})
        kept_divs = rows.loc[rows["kind"] == "dividend"].rename(columns={"date": "ex_dividend_date"})
        return cls(stored,
                   pd.concat([schema.normalize_splits(splits), schema.normalize_splits(kept_splits)], ignore_index=True),
                   pd.concat([schema.normalize_dividends(dividends), schema.normalize_dividends(kept_divs)], ignore_index=True))

    @classmethod
    def kept(cls, unknown: tuple[pd.DataFrame, pd.DataFrame]) -> pa.Table:
        """The set-aside table of the new version: the actions of unknown symbols, each once,
        sorted by every column."""
        splits, divs = unknown
        frame = pd.concat([
            pd.DataFrame({"kind": "split", "symbol": splits["symbol"], "date": splits["execution_date"],
                          "split_from": splits["split_from"], "split_to": splits["split_to"], "cash_amount": np.nan}),
            pd.DataFrame({"kind": "dividend", "symbol": divs["symbol"], "date": divs["ex_dividend_date"],
                          "split_from": np.nan, "split_to": np.nan, "cash_amount": divs["cash_amount"]}),
        ], ignore_index=True)
        table = _arrow(frame.astype({"kind": str, "symbol": str, "date": "datetime64[ns]"})[list(cls.COLUMNS)], cls.SCHEMA)
        table = in_derived_order(table, "actions_set_aside")
        return _distinct_rows(table)

    @staticmethod
    def count(table: pa.Table) -> ActionsSetAside:
        kinds = table.column("kind")
        splits = int(pc.sum(pc.equal(kinds, "split")).as_py() or 0)
        return ActionsSetAside(splits=splits, dividends=table.num_rows - splits,
                               symbols=len(pc.unique(table.column("symbol"))))


def _distinct_rows(table: pa.Table) -> pa.Table:
    """The rows of a sorted table, each once (a row equal to the one before it is dropped; NaN
    equals NaN)."""
    if table.num_rows < 2:
        return table
    same = np.ones(table.num_rows - 1, dtype=bool)
    for name in table.column_names:
        column = table.column(name)
        head, tail = column.slice(0, table.num_rows - 1), column.slice(1)
        same &= _equal_or_both_missing(head, tail)
    return table.filter(pa.array(np.concatenate(([True], ~same))))


def _equal_or_both_missing(a: pa.ChunkedArray, b: pa.ChunkedArray) -> np.ndarray:
    equal = pc.fill_null(pc.equal(a, b), False)
    both = pc.and_(pc.is_null(a, nan_is_null=True), pc.is_null(b, nan_is_null=True))
    return pc.or_(equal, both).to_numpy(zero_copy_only=False)


def _merge_splits(stored: pd.DataFrame, fetched: pd.DataFrame, touched: set[str], symbols: set[str]
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every split (validated, sorted by symbol and date) and the fresh ones. `touched`: the
    symbols with a fetched split not stored as it is. Validation works per (symbol, date), and the
    other symbols' fetched splits are all stored already, so only the touched symbols' stored and
    fetched splits are validated together; the rest stay as stored."""
    if not touched:
        return stored, stored.iloc[:0]
    columns = list(schema.SPLIT_COLUMNS)
    if stored.empty:  # a first freeze: every fetched split is validated
        merged = validation.validate_splits(_union(stored, fetched, columns), symbols)
        return merged, merged
    in_stored, in_fetched = stored["symbol"].isin(sorted(touched)), fetched["symbol"].isin(sorted(touched))
    merged = validation.validate_splits(_union(stored.loc[in_stored], fetched.loc[in_fetched], columns), symbols)
    fresh = _fresh_rows(stored.loc[in_stored], merged, schema.SPLIT_COLUMNS)
    both = pd.concat([stored.loc[~in_stored, columns], merged[columns]], ignore_index=True)
    return both.sort_values(["symbol", "execution_date"], kind="stable").reset_index(drop=True), fresh


def _not_stored(stored: pa.Table | None, fetched: pd.DataFrame, columns: tuple[str, ...], date_column: str) -> pd.DataFrame:
    """The rows of `fetched` that `stored` does not hold (all `columns` equal). Only the stored
    rows dated on or after the earliest fetched date can match: only those become pandas."""
    if stored is None or stored.num_rows == 0 or fetched.empty:
        return fetched
    first = fetched[date_column].min()
    if pd.notna(first):
        dates = stored.column(date_column)
        stored = stored.filter(pc.greater_equal(dates, pa.scalar(first, type=dates.type)))
    return _fresh_rows(stored.to_pandas(), fetched, columns)


def _refreshed_factors(
    root: Path, previous: Manifest, new_rows: NewBars,
    actions: _Actions, stored_factors: pa.Table, stored_events: pa.Table, convention: str,
    factors_ready: Callable[[_Change], None] = lambda change: None,
) -> tuple[_Change | None, _Change | None]:
    """The previous version's factors and events with those of the symbols that can differ
    recomputed: a symbol with a new action, with an action not applied yet, or with an applied
    event that a new bar lands at or before. (None, None) when no symbol can differ. The events
    change by the new rows alone when every stored event of those symbols came out as it was.
    `factors_ready` is given the factors' change as soon as it is known."""
    redo = _symbols(actions.fresh_splits) | _symbols(actions.fresh_dividends) \
        | _unsettled_symbols(actions.splits, actions.dividends, stored_events, new_rows.first_dates)
    if not redo:
        return None, None
    splits = _only(actions.splits, redo)
    # in the order a full freeze passes them: same-session cash amounts are summed in this order
    divs = _only_table(actions.dividends, redo).to_pandas().sort_values(_DIVIDEND_ORDER, kind="stable")
    known = _only_table(stored_events, redo)
    bars_near, _ = _bars_near_events(root, previous, new_rows, splits, divs, also=redo, known=known.to_pandas())
    part = adjustments.compute_factors(bars_near, splits, divs, convention=convention)
    event_checks.check_adjustment(part)
    factors = _Change(_replace_symbols(stored_factors, _arrow(part.factors, stored_factors.schema), redo,
                                       DERIVED_ORDER["factors"]))
    factors_ready(factors)
    events = _arrow(part.events, stored_events.schema)
    added = _added_events(known, events)
    if added is None:
        # (sorted by the writer: stored events spread over files need not be in order)
        return factors, _Change(_replace_symbols(stored_events, events, redo, _EVENT_KEYS), ordered=False)
    return factors, (_Change(added, append=True) if added.num_rows else None)


def _added_events(stored: pa.Table, recomputed: pa.Table) -> pa.Table | None:
    """The rows of `recomputed` (some symbols' events) that `stored` (the same symbols' stored
    events) lacks, or None when a stored event changed or went (then the table is rewritten)."""
    position = {key: i for i, key in enumerate(_key_tuples(recomputed, _EVENT_KEYS))}
    matched = [position.get(key) for key in _key_tuples(stored, _EVENT_KEYS)]
    if None in matched:
        return None
    again = recomputed.take(pa.array(matched, pa.int64()))
    if not all(_same_values(stored.column(c), again.column(c)) for c in stored.column_names if c not in _EVENT_KEYS):
        return None
    added = np.ones(recomputed.num_rows, dtype=bool)
    added[matched] = False
    return recomputed.filter(pa.array(added))


def _key_tuples(table: pa.Table, columns: list[str]):
    """The rows of `table`'s `columns` as tuples (timestamps as int64)."""
    values = []
    for column in columns:
        array = table.column(column)
        values.append((array.cast(pa.int64()) if pa.types.is_timestamp(array.type) else array).to_pylist())
    return zip(*values)


def _same_values(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    """Whether two columns hold the same values row by row (a missing value only where the other
    is missing, NaN only where the other is NaN)."""
    same = pc.fill_null(pc.equal(a, b), False)
    same = pc.or_(same, pc.and_(pc.is_null(a), pc.is_null(b)))
    if pa.types.is_floating(a.type):
        same = pc.or_(same, pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False))
    return bool(pc.all(same).as_py() is not False)


def _all_factors(
    root: Path, previous: Manifest | None, new_rows: NewBars, actions: _Actions, stored_events: pa.Table | None,
    convention: str,
) -> tuple[_Change, _Change]:
    """Every symbol's factors and events (a first freeze, or another dividend convention). Events
    a previous version applied lend their closes (raw bars are immutable)."""
    divs = actions.dividends_frame()
    known = stored_events.to_pandas() if _events_with_ex_dates(stored_events) else None
    bars_near, _ = _bars_near_events(root, previous, new_rows, actions.splits, divs, known=known)
    computed = adjustments.compute_factors(bars_near, actions.splits, divs, convention=convention)
    event_checks.check_adjustment(computed)
    return _Change(computed.factors), _Change(computed.events)


def _unsettled_symbols(splits: pd.DataFrame, divs: pa.Table, events: pa.Table, first_new: pd.Series) -> set[str]:
    """Symbols with an action whose session no applied event covers (not applicable yet, or new),
    or with an applied event that a new bar lands at or before (its closes may change; `first_new`:
    each symbol's first new bar, as `NewBars.first_dates`). Compared as
    (symbol code, day) integers, the codes in symbol order: the stored tables hold 100k+ rows, in
    (symbol, date) order, so the keys arrive sorted and each look-up is a binary search."""
    action_symbols = pa.chunked_array(_strings(pa.array(splits["symbol"])).chunks + _strings(divs.column("symbol")).chunks,
                                      type=pa.large_string())
    action_days = validation.day_numbers(adjustments.effective_sessions(np.concatenate([
        splits["execution_date"].to_numpy(dtype="datetime64[ns]"),
        divs.column("ex_dividend_date").to_numpy().astype("datetime64[ns]"),
    ])))
    event_symbols = _strings(events.column("symbol"))
    event_days = validation.day_numbers(events.column("event_date").to_numpy().astype("datetime64[ns]"))
    stale = _stale_events(events, first_new)
    vocabulary = pc.unique(pa.chunked_array(action_symbols.chunks + event_symbols.chunks, type=pa.large_string()))
    vocabulary = vocabulary.take(pc.sort_indices(vocabulary))
    action_keys = validation.symbol_day_keys(pc.index_in(action_symbols, value_set=vocabulary).to_numpy(), action_days)
    event_keys = validation.symbol_day_keys(pc.index_in(event_symbols, value_set=vocabulary).to_numpy(), event_days)
    unapplied = ~_isin(action_keys, event_keys)
    found = pc.unique(action_symbols.filter(pa.array(unapplied))).to_pylist()
    found += pc.unique(event_symbols.filter(pa.array(stale))).to_pylist()
    return set(found)


def _isin(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """`np.isin` for int64 keys, by binary search in `pool` (sorted here unless it is already)."""
    if len(pool) == 0:
        return np.zeros(len(values), dtype=bool)
    if not bool(np.all(pool[1:] >= pool[:-1])):
        pool = np.sort(pool)
    at = np.minimum(np.searchsorted(pool, values), len(pool) - 1)
    return pool[at] == values


def _stale_events(events: pa.Table, first_new: pd.Series) -> np.ndarray:
    """`_stale` over a stored events table."""
    stale = np.zeros(events.num_rows, dtype=bool)
    if first_new.empty or events.num_rows == 0:
        return stale
    dates = events.column("ex_date")
    later = pc.fill_null(pc.greater_equal(dates, pa.scalar(first_new.min(), type=dates.type)), False)
    maybe = np.flatnonzero(later.to_numpy(zero_copy_only=False))
    if len(maybe):  # only events from the first new bar on can be stale: only those become pandas
        late = events.select(["symbol", "ex_date"]).take(pa.array(maybe)).to_pandas()
        stale[maybe[_stale(late["symbol"], late["ex_date"], first_new)]] = True
    return stale


def _stale(symbols: pd.Series, ex_dates: pd.Series, first_new: pd.Series) -> np.ndarray:
    """For applied events (their symbols, and the dates of the bars their ex closes came from):
    whether a new bar of the symbol (`first_new`: each symbol's first) lands at or before that
    bar. Such a bar changes the close before the session or becomes the first bar on or after it."""
    if first_new.empty or symbols.empty:
        return np.zeros(len(symbols), dtype=bool)
    at = first_new.index.get_indexer(symbols)
    first = np.where(at >= 0, first_new.to_numpy(dtype="datetime64[ns]")[np.maximum(at, 0)], np.datetime64("NaT", "ns"))
    return (at >= 0) & (ex_dates.to_numpy(dtype="datetime64[ns]") >= first)


def _strings(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Symbols as one large_string chunked array (dictionary or plain strings alike)."""
    values = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    return values.cast(pa.large_string()) if values.type != pa.large_string() else values


def _known_symbols(raw_files: list[str], new_symbols: set[str], needed: set[str]) -> set[str]:
    """Which of the `needed` symbols the lake holds bars of: those among the new rows' symbols
    (`new_symbols`), then those found in the raw files (that symbol list only)."""
    known = needed & new_symbols
    missing = needed - known
    if missing and raw_files:
        with duck.cursor() as con:
            rows = con.execute("SELECT DISTINCT symbol FROM read_parquet(?, hive_partitioning = false) WHERE symbol IN (SELECT unnest(?))",
                               [raw_files, sorted(missing)]).fetchall()
        known |= {row[0] for row in rows}
    return known


def _events_with_ex_dates(events: pa.Table | None) -> bool:
    """Whether stored events record the date of the bar their ex close came from (a lake written
    before they did is recomputed once, every close looked up in the raw files)."""
    return events is not None and "ex_date" in events.column_names


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
    return merged.loc[~_rows_in(merged, stored, columns)]


def _rows_in(frame: pd.DataFrame, other: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> np.ndarray:
    """Whether each row of `frame` equals some row of `other` in `columns` (a missing value
    matches only a missing one). Each column of both is factorized together and the codes folded
    into one integer key per row: no tuple per row, no MultiIndex (pandas' MultiIndex.isin cost
    10-40 ms each time on a refreeze's few thousand rows)."""
    if frame.empty or other.empty:
        return np.zeros(len(frame), dtype=bool)
    n = len(frame)
    key = np.zeros(n + len(other), dtype=np.int64)
    for column in columns:
        both = pd.concat([frame[column], other[column]], ignore_index=True)
        if isinstance(both.dtype, pd.CategoricalDtype):
            both = both.astype(str)
        codes, uniques = pd.factorize(both, use_na_sentinel=False)
        key = pd.factorize(key * len(uniques) + codes)[0]  # folded, then renumbered: stays small
    return np.isin(key[:n], key[n:])


def _symbols(frame: pd.DataFrame) -> set[str]:
    """The distinct symbols of `frame` (vectorized first: iterating 126k Arrow strings costs 0.1 s;
    a categorical's used categories come from counting its codes, not hashing 12.6M rows)."""
    column = frame["symbol"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        used = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories)) > 0
        return {str(s) for s in column.cat.categories[used]}
    return {str(s) for s in column.unique()}


def _table_symbols(table: pa.Table | None) -> set[str]:
    return set(pc.unique(table.column("symbol")).to_pylist()) if table is not None else set()


def _only(frame: pd.DataFrame, symbols: set[str]) -> pd.DataFrame:
    return frame.loc[frame["symbol"].isin(symbols)]


def _only_table(table: pa.Table, symbols: set[str]) -> pa.Table:
    return table.filter(pc.is_in(_strings(table.column("symbol")), value_set=pa.array(sorted(symbols), pa.large_string())))


def _replace_symbols(stored: pa.Table, fresh: pa.Table, symbols: set[str], keys: list[str]) -> pa.Table:
    """`stored` with the rows of `symbols` replaced by `fresh` (same schema), in the order a full
    computation gives: sorted by `keys`, whose first is the symbol. Each symbol's rows come from
    one side, so when `stored` is in that order (as the lake writes it) the fresh rows, sorted, go
    where their symbol's block starts among the stored symbols: one concatenation and one take, no
    sort of the kept 100k+ rows."""
    sort_keys = [(k, "ascending") for k in keys]
    fresh = fresh.take(pc.sort_indices(fresh, sort_keys=sort_keys))
    both = pa.concat_tables([stored, fresh]).combine_chunks()  # a take over many chunks is 4x slower
    names = _strings(stored.column("symbol")).combine_chunks()
    drop = pc.is_in(names, value_set=pa.array(sorted(symbols), pa.large_string())).to_numpy(zero_copy_only=False)
    head, tail = names.slice(0, max(len(names) - 1, 0)), names.slice(1)
    if len(names) > 1 and not pc.all(pc.greater_equal(tail, head)).as_py():  # not in symbol order
        kept = both.take(pa.array(np.concatenate([np.flatnonzero(~drop), len(names) + np.arange(fresh.num_rows)])))
        return kept.take(pc.sort_indices(kept, sort_keys=sort_keys))
    # the first stored row of each symbol, and the stored row each fresh row goes before
    starts = np.flatnonzero(np.concatenate(([True], pc.not_equal(tail, head).to_numpy(zero_copy_only=False)))) \
        if len(names) else np.zeros(0, dtype=np.int64)
    block = np.searchsorted(np.array(names.take(pa.array(starts)).to_pylist(), dtype=object),
                            np.array(_strings(fresh.column("symbol")).to_pylist(), dtype=object), side="left")
    before = np.append(starts, len(names))[block]
    kept = np.flatnonzero(~drop)
    order = np.insert(kept, np.searchsorted(kept, before, side="left"), len(names) + np.arange(fresh.num_rows))
    return both.take(pa.array(order))


def read_table(root: Path, files: list[FileEntry]) -> pa.Table | None:
    """A stored derived table: its files (one, or a segmented table's several) as one table, in
    no particular order across files; None when there are none."""
    if not files:
        return None
    return pa.concat_tables(read_files(root, files))


def read_files(root: Path, files: list[FileEntry]) -> list[pa.Table]:
    """Each of the lake's `files` read whole, every page checked against its CRC32 (a file written
    without page checksums is read unchecked). Raises `LakeCorruptionError` naming a file that
    cannot be read or whose checksum fails."""
    tables = []
    for entry in files:
        try:
            # (ParquetFile, not pq.read_table: its dataset layer costs more than reading these tables)
            table = pq.ParquetFile(root / entry.path, page_checksum_verification=True).read(use_threads=False)
        except (OSError, pa.ArrowException) as exc:
            raise LakeCorruptionError(entry.path, f"cannot be read ({' '.join(str(exc).split())}); run `kobe lake verify`") from exc
        missing = [name for name in DERIVED_ORDER.get(entry.role, []) if name not in table.column_names]
        if missing:  # the footer (not covered by page checksums) names other columns
            raise LakeCorruptionError(entry.path, f"lacks the column(s) {missing} of a {entry.role} table; run `kobe lake verify`")
        tables.append(table)
    return tables


def _arrow(frame: pd.DataFrame, schema_: pa.Schema | None = None) -> pa.Table:
    """A frame as an Arrow table without pandas metadata (stable file bytes), in `schema_` when
    given (the stored table's, so new rows and stored ones are one schema)."""
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if categorical:
        frame = frame.astype({c: str for c in categorical})
    if schema_ is not None:  # column by column: a fifth of from_pandas' time on a nightly's small frames
        return pa.Table.from_arrays([pa.array(frame[f.name], type=f.type, from_pandas=True) for f in schema_], schema=schema_)
    return pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)


def _union(stored: pd.DataFrame, fetched: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    both = pd.concat([stored[columns], fetched[columns]], ignore_index=True)
    return both.drop_duplicates().reset_index(drop=True)


def _empty_provenance() -> pd.DataFrame:
    return pd.DataFrame({"kind": [], "symbol": [], "date": [], "amount": [], "first_seen_at": []}).astype(
        {"kind": str, "symbol": str, "date": "datetime64[ns]", "amount": "float64", "first_seen_at": str}
    )


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
    stored: _StoredProvenance, n_stored_splits: int, n_stored_divs: int, actions: _Actions, now: str,
) -> tuple[_Change | None, pa.Table | None]:
    """When each action was first fetched (None: as stored), and the stored table when it had to
    be read. Kept out of the content hash (see manifest).

    Stored actions are never dropped, so when the stored provenance has one row per stored
    action (and every stored action is still there), only the fresh actions are added, stamped
    `now`, and the stored rows are not even read; otherwise every action is matched with the
    stored provenance and the table rewritten."""
    keys = _PROVENANCE_KEYS
    schema_ = stored.schema() or _arrow(_empty_provenance()).schema
    splits, fresh_splits, fresh_divs = actions.splits, actions.fresh_splits, actions.fresh_dividends
    if stored.rows == n_stored_splits + n_stored_divs and len(splits) - len(fresh_splits) == n_stored_splits:
        if fresh_splits.empty and fresh_divs.empty and stored.files:
            return None, None
        fresh = _provenance_rows(fresh_splits, fresh_divs).assign(first_seen_at=now)[schema_.names]
        return _Change(fresh, append=bool(stored.files), schema=schema_, ordered=False), None
    table = stored.table()
    kept = table.to_pandas() if table is not None else _empty_provenance()
    merged = _provenance_rows(splits, actions.dividends_frame()).merge(kept[keys + ["first_seen_at"]], on=keys, how="left")
    merged["first_seen_at"] = merged["first_seen_at"].fillna(now)
    merged = merged.astype({"symbol": str, "first_seen_at": str})
    return _Change(merged[schema_.names], schema=schema_, ordered=False), table


def _bars_near_events(
    root: Path, previous: Manifest | None, new_rows: NewBars, splits: pd.DataFrame, divs: pd.DataFrame,
    also: set[str] | None = None, known: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, set[str]]:
    """The raw closes the factor computation needs: for each event, the last bar before its
    session and the first bar on or after it; and the symbols whose bars had to be looked up.
    With `also` (a refreeze recomputing only some symbols), only the bars of those symbols and
    of the looked-up ones are returned, and the second value is that union. `known`: the
    previous version's applied events (those of the symbols in question), None when it has none.

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
        known = pd.DataFrame(columns=["symbol", "event_date"])
    if not known.empty:
        known = known[["symbol", "event_date", "prev_date", "close_prev", "ex_date", "close_ex"]]
        known = known.loc[~_stale(known["symbol"], known["ex_date"], new_rows.first_dates)]
        sessions = sessions.loc[~_rows_in(sessions, known, ["symbol", "event_date"])]
        if also is not None:
            wanted = _symbols(sessions) | also
            known = known.loc[known["symbol"].isin(wanted)]
        parts += [pd.DataFrame({"symbol": known["symbol"].to_numpy(), "date": known[date].to_numpy(), "close": known[close].to_numpy()})
                  for date, close in (("prev_date", "close_prev"), ("ex_date", "close_ex"))]
    if not sessions.empty:
        wanted |= _symbols(sessions)
        fresh = new_rows.rows_around(sessions)
        parts.append(fresh)
        stored = previous.files_with_role("raw_bars") if previous else []
        if stored:
            parts.append(_stored_rows_around(root, stored, sessions, fresh))
    frame = pd.concat(parts, ignore_index=True) if parts else schema.empty_bars()[["symbol", "date", "close"]]
    # each (symbol, date) once (its first row), sorted by them
    symbols = frame["symbol"].to_numpy(dtype=object)
    keys = validation.symbol_day_keys(pd.factorize(symbols, sort=True)[0], validation.day_numbers(frame["date"]))
    order = np.argsort(keys, kind="stable")
    first = order[np.concatenate(([True], keys[order][1:] != keys[order][:-1]))] if len(order) else order
    frame = pd.DataFrame({"symbol": pd.array(symbols[first], dtype=str),
                          "date": frame["date"].to_numpy(dtype="datetime64[ns]")[first],
                          "close": frame["close"].to_numpy(dtype=np.float64)[first]})
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
    when none) and of its first bar on or after it (maximum when none). One binary search of
    (symbol, day) keys."""
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
    return _sorted_unique(np.concatenate(picks))


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """`np.unique` of int positions by a sort (numpy's hash-based unique took 0.1 s for 250k)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _stored_bars(root: Path, entries: list[FileEntry], symbols: set[str]) -> pd.DataFrame:
    """symbol, date, close of `symbols` from the raw files `entries`."""
    if not entries or not symbols:
        return schema.empty_bars()[["symbol", "date", "close"]]
    with duck.cursor() as con:
        frame = _query_frame(
            con,
            "SELECT symbol, date::TIMESTAMP_NS AS date, close FROM read_parquet($files, hive_partitioning = false) "
            "WHERE symbol IN (SELECT unnest($symbols)) ORDER BY symbol, date",  # sorted: _rows_around needs no sort
            {"files": [str(root / e.path) for e in entries], "symbols": sorted(symbols)},
        )
    return frame if frame["date"].dtype == "datetime64[ns]" else frame.astype({"date": "datetime64[ns]"})


def _query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> pd.DataFrame:
    """A query's rows as pandas, through Arrow: DuckDB's own `.df()` spends ~0.2 s warming up
    once per process, more than a nightly refreeze's whole lookup."""
    return con.sql(sql, params=params).to_arrow_table().to_pandas()


def _rows_around(bars: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """The rows of `bars` (symbol, date, close) that some event of `sessions` (symbol,
    event_date) needs: the symbol's last bar before the event session and its first bar on or
    after it. One binary search over (symbol, date) keys (bars usually arrive sorted; otherwise
    they are sorted). The new rows of a freeze are searched by the keys validation built for
    them instead (`NewBars.rows_around`)."""
    if bars.empty:
        return bars
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
    rows = _sorted_unique(np.concatenate(picks))
    return bars.iloc[rows]
