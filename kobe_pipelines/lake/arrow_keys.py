"""Shared Arrow, pandas and key helpers of the lake: symbols as strings, rows of some symbols,
frames as Arrow, row membership and equality, and binary searches over (symbol, day) keys.

No lake concept lives here (no file, version or role): only what several lake modules need of
tables and keys. Symbols arrive as plain or dictionary-encoded strings (a Parquet dictionary, a
pandas categorical); every helper accepts both.
"""

from __future__ import annotations

from typing import Iterator

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kobe_pipelines.data import schema, validation


def large_strings(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Symbols as one large_string chunked array (dictionary-encoded or plain strings alike)."""
    values = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    return values.cast(pa.large_string()) if values.type != pa.large_string() else values


def symbol_set(frame: pd.DataFrame) -> set[str]:
    """The distinct symbols of a frame's `symbol` column (a categorical's used categories are
    found by counting its codes, not by hashing every row)."""
    column = frame["symbol"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        used = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories)) > 0
        return {str(s) for s in column.cat.categories[used]}
    return {str(s) for s in column.unique()}


def table_symbol_set(table: pa.Table | None) -> set[str]:
    """The distinct symbols of a table's `symbol` column (none for no table)."""
    return set(pc.unique(table.column("symbol")).to_pylist()) if table is not None else set()


def frame_rows_of(frame: pd.DataFrame, symbols: set[str]) -> pd.DataFrame:
    """The rows of `frame` whose symbol is one of `symbols`."""
    return frame.loc[frame["symbol"].isin(symbols)]


def table_rows_of(table: pa.Table, symbols: set[str]) -> pa.Table:
    """The rows of `table` whose symbol is one of `symbols`."""
    return table.filter(pc.is_in(large_strings(table.column("symbol")), value_set=pa.array(sorted(symbols), pa.large_string())))


def to_arrow(frame: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """A frame as an Arrow table without pandas metadata (so a file's bytes depend on its rows
    only), in `schema` when given (a stored table's, so that new rows and stored ones are one
    schema). Categorical columns become plain strings."""
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if categorical:
        frame = frame.astype({c: str for c in categorical})
    if schema is not None:  # column by column: faster than from_pandas on small frames
        return pa.Table.from_arrays([pa.array(frame[f.name], type=f.type, from_pandas=True) for f in schema], schema=schema)
    return pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)


def frame_of_query(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> pd.DataFrame:
    """A query's rows as pandas, through Arrow (DuckDB's own `.df()` spends a long first call
    warming up in each process)."""
    return con.sql(sql, params=params).to_arrow_table().to_pandas()


def close_frame(rows: pa.Table) -> pd.DataFrame:
    """symbol (str), date (datetime64[ns]) and close of a bars table's rows, as pandas."""
    return pd.DataFrame({
        "symbol": rows.column("symbol").cast(pa.string()).to_pandas(),
        "date": rows.column("date").to_numpy().astype("datetime64[ns]"),
        "close": rows.column("close").to_numpy(),
    })


# ---- membership and equality of rows ---------------------------------------------------------


def rows_found_in(frame: pd.DataFrame, other: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> np.ndarray:
    """Whether each row of `frame` equals some row of `other` in `columns` (a missing value
    matches only a missing one). Each column of both is factorized together and the codes folded
    into one integer key per row: no tuple per row, no MultiIndex."""
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


def rows_missing_from(stored: pd.DataFrame, merged: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The rows of `merged` that `stored` does not hold (equal in `columns`)."""
    if merged.empty or stored.empty:
        return merged
    return merged.loc[~rows_found_in(merged, stored, columns)]


def union_rows(stored: pd.DataFrame, fetched: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The rows of both frames (`columns` only), each distinct row once."""
    both = pd.concat([stored[columns], fetched[columns]], ignore_index=True)
    return both.drop_duplicates().reset_index(drop=True)


def key_tuples(table: pa.Table, columns: list[str]) -> Iterator[tuple]:
    """The rows of `table`'s `columns` as tuples (timestamps as int64)."""
    values = []
    for column in columns:
        array = table.column(column)
        values.append((array.cast(pa.int64()) if pa.types.is_timestamp(array.type) else array).to_pylist())
    return zip(*values)


def same_values(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    """Whether two columns hold the same values row by row (a missing value only where the other
    is missing, NaN only where the other is NaN)."""
    same = pc.fill_null(pc.equal(a, b), False)
    same = pc.or_(same, pc.and_(pc.is_null(a), pc.is_null(b)))
    if pa.types.is_floating(a.type):
        same = pc.or_(same, pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False))
    return bool(pc.all(same).as_py() is not False)


def distinct_sorted_rows(table: pa.Table) -> pa.Table:
    """The rows of a sorted table, each once: a row equal to the one before it is dropped (a
    missing value or NaN equals a missing value or NaN)."""
    if table.num_rows < 2:
        return table
    same = np.ones(table.num_rows - 1, dtype=bool)
    for name in table.column_names:
        column = table.column(name)
        head, tail = column.slice(0, table.num_rows - 1), column.slice(1)
        equal = pc.fill_null(pc.equal(head, tail), False)
        both = pc.and_(pc.is_null(head, nan_is_null=True), pc.is_null(tail, nan_is_null=True))
        same &= pc.or_(equal, both).to_numpy(zero_copy_only=False)
    return table.filter(pa.array(np.concatenate(([True], ~same))))


def replace_symbols(stored: pa.Table, fresh: pa.Table, symbols: set[str], keys: list[str]) -> pa.Table:
    """`stored` with the rows of `symbols` replaced by `fresh` (same schema), in the order a full
    computation gives: sorted by `keys`, whose first is the symbol. Each symbol's rows come from
    one side, so when `stored` is in that order the fresh rows, sorted, go where their symbol's
    block starts among the stored symbols: one concatenation and one take, no sort of the kept rows."""
    sort_keys = [(k, "ascending") for k in keys]
    fresh = fresh.take(pc.sort_indices(fresh, sort_keys=sort_keys))
    both = pa.concat_tables([stored, fresh]).combine_chunks()  # a take over many chunks is slower
    names = large_strings(stored.column("symbol")).combine_chunks()
    drop = pc.is_in(names, value_set=pa.array(sorted(symbols), pa.large_string())).to_numpy(zero_copy_only=False)
    head, tail = names.slice(0, max(len(names) - 1, 0)), names.slice(1)
    if len(names) > 1 and not pc.all(pc.greater_equal(tail, head)).as_py():  # not in symbol order
        kept = both.take(pa.array(np.concatenate([np.flatnonzero(~drop), len(names) + np.arange(fresh.num_rows)])))
        return kept.take(pc.sort_indices(kept, sort_keys=sort_keys))
    # the first stored row of each symbol, and the stored row each fresh row goes before
    starts = np.flatnonzero(np.concatenate(([True], pc.not_equal(tail, head).to_numpy(zero_copy_only=False)))) \
        if len(names) else np.zeros(0, dtype=np.int64)
    block = np.searchsorted(np.array(names.take(pa.array(starts)).to_pylist(), dtype=object),
                            np.array(large_strings(fresh.column("symbol")).to_pylist(), dtype=object), side="left")
    before = np.append(starts, len(names))[block]
    kept = np.flatnonzero(~drop)
    order = np.insert(kept, np.searchsorted(kept, before, side="left"), len(names) + np.arange(fresh.num_rows))
    return both.take(pa.array(order))


# ---- (symbol, day) keys ----------------------------------------------------------------------


def isin_sorted(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """`np.isin` for int64 keys, by binary search in `pool` (sorted here unless it is already)."""
    if len(pool) == 0:
        return np.zeros(len(values), dtype=bool)
    if not bool(np.all(pool[1:] >= pool[:-1])):
        pool = np.sort(pool)
    at = np.minimum(np.searchsorted(pool, values), len(pool) - 1)
    return pool[at] == values


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """`np.unique` of int positions, by a sort."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def positions_around(keys: validation.BarKeys, sessions: pd.DataFrame) -> np.ndarray:
    """Row positions, ascending, of each event's last bar before its session and first bar on or
    after it (of the event's own symbol), in strictly increasing (symbol, day) `keys`.
    `sessions`: symbol, event_date."""
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
    return sorted_unique(np.concatenate(picks))


def rows_around(bars: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """The rows of `bars` (symbol, date, close) that some event of `sessions` (symbol,
    event_date) needs: the symbol's last bar before the event session and its first bar on or
    after it. One binary search over (symbol, date) keys (bars usually arrive sorted; otherwise
    they are sorted first)."""
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
        return rows_around(bars.reset_index(drop=True), sessions)
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
    keys = group_of_row * span  # then in place: each temporary of the whole length costs fresh pages
    keys += days
    keys -= days.min()
    targets = event_group * span + (event_days - days.min())
    at_or_after = np.searchsorted(keys, targets, side="left")
    picks = []
    for pos in (at_or_after, at_or_after - 1):
        inside = (pos >= 0) & (pos < len(keys))
        pos, groups = pos[inside], event_group[inside]
        picks.append(pos[group_of_row[pos] == groups])
    rows = sorted_unique(np.concatenate(picks))
    return bars.iloc[rows]
