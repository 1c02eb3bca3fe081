"""Column contracts for bars and corporate actions, shared by every provider and the lake.

In DataFrames, dates are naive `datetime64[ns]` midnights naming the exchange session
(America/New_York); prices are raw USD per share as traded that day; volume is shares. In Arrow
tables (`bars_table`), the same columns as `BARS_ARROW_SCHEMA`: dates as `date32`, and symbols
as strings or dictionary-encoded strings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

BAR_COLUMNS: tuple[str, ...] = ("symbol", "date", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
SPLIT_COLUMNS: tuple[str, ...] = ("symbol", "execution_date", "split_from", "split_to")
DIVIDEND_COLUMNS: tuple[str, ...] = ("symbol", "ex_dividend_date", "cash_amount")

DIVIDEND_CONVENTIONS: tuple[str, ...] = ("crsp", "quandl")
NS_PER_DAY = 86_400_000_000_000  # nanoseconds in a day: a date is a midnight


def empty_bars() -> pd.DataFrame:
    return normalize_bars(pd.DataFrame({c: [] for c in BAR_COLUMNS}))


def empty_splits() -> pd.DataFrame:
    return normalize_splits(pd.DataFrame({c: [] for c in SPLIT_COLUMNS}))


def empty_dividends() -> pd.DataFrame:
    return normalize_dividends(pd.DataFrame({c: [] for c in DIVIDEND_COLUMNS}))


def _with_types(df: pd.DataFrame, columns: tuple[str, ...], dates: tuple[str, ...], floats: tuple[str, ...],
                trim_symbols: bool = False) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"missing columns {missing}; expected {list(columns)}")
    # pandas 3 copies on write: converting only the columns that need it never touches the caller's
    # frame, and a frame that is already normalized (12.6M bars, say) costs next to nothing.
    out = df if list(df.columns) == list(columns) else df.loc[:, list(columns)]
    if not isinstance(out["symbol"].dtype, pd.StringDtype) and not _string_categorical(out["symbol"]):
        out = out.assign(symbol=out["symbol"].astype(str))
    if trim_symbols and len(out) and (out["symbol"].str.strip() != out["symbol"]).any():
        out = out.assign(symbol=out["symbol"].str.strip())
    for col in dates:
        values = out[col]
        if values.dtype != "datetime64[ns]":
            values = pd.to_datetime(values).astype("datetime64[ns]")
        ns = values.to_numpy().view("int64")
        if len(ns) and (ns % NS_PER_DAY != 0).any():
            values = values.dt.normalize()
        if values is not out[col]:
            out = out.assign(**{col: values})
    for col in floats:
        if out[col].dtype != "float64":
            out = out.assign(**{col: pd.to_numeric(out[col], errors="coerce").astype("float64")})
    index = out.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return out if out is not df else df.copy(deep=False)
    return out.reset_index(drop=True)


def _string_categorical(values: pd.Series) -> bool:
    """A categorical column of strings: what a Parquet source read with its symbol dictionary
    gives. Kept as it is: 12.6M symbols as 5,000 categories and int codes, not 12.6M strings."""
    return isinstance(values.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(values.cat.categories)


def sorted_symbol_codes(symbols: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """For a categorical symbol column: each row's code in sorted-symbol order (-1 where the
    symbol is missing) and the sorted categories, in O(rows) without touching a string per row.
    None for any other dtype: the caller takes its string path."""
    if not _string_categorical(symbols):
        return None
    categories = symbols.cat.categories.to_numpy(dtype=object)
    order = np.argsort(categories, kind="stable")
    rank = np.empty(len(order) + 1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    rank[-1] = -1  # code -1 (missing) indexes the last slot and stays -1
    return rank[symbols.cat.codes.to_numpy()], categories[order]


def normalize_bars(df: pd.DataFrame) -> pd.DataFrame:
    """Select and type the bar columns; values are not validated here (see `validation`)."""
    return _with_types(df, BAR_COLUMNS, ("date",), ("open", "high", "low", "close", "volume"))


def normalize_splits(df: pd.DataFrame) -> pd.DataFrame:
    """Select and type the split columns, symbols trimmed (" AAA " is AAA, as in bars)."""
    return _with_types(df, SPLIT_COLUMNS, ("execution_date",), ("split_from", "split_to"), trim_symbols=True)


def normalize_dividends(df: pd.DataFrame) -> pd.DataFrame:
    """Select and type the dividend columns, symbols trimmed (" AAA " is AAA, as in bars)."""
    return _with_types(df, DIVIDEND_COLUMNS, ("ex_dividend_date",), ("cash_amount",), trim_symbols=True)


BARS_ARROW_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("date", pa.date32()),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
    ]
)


def bars_table(bars: pd.DataFrame | pa.Table) -> pa.Table:
    """Bars as an Arrow table in `BARS_ARROW_SCHEMA` (symbols may stay dictionary-encoded), rows
    in their given order, values not validated (see `validation.validate_bars_table`).

    An Arrow table whose columns already have these types, or types that convert exactly
    (large strings, integer prices or volumes, timestamps at midnight), is converted column by
    column without pandas; anything else takes the pandas route of `normalize_bars` (which
    raises ValueError for a column it cannot read as bars)."""
    if isinstance(bars, pd.DataFrame):
        return _frame_table(normalize_bars(bars))
    missing = [c for c in BAR_COLUMNS if c not in bars.column_names]
    if missing:
        raise ValueError(f"missing columns {missing}; expected {list(BAR_COLUMNS)}")
    columns = [_arrow_symbols(bars.column("symbol")), _arrow_dates(bars.column("date"))]
    columns += [_arrow_floats(bars.column(c)) for c in ("open", "high", "low", "close", "volume")]
    if any(column is None for column in columns):
        return _frame_table(normalize_bars(bars.select(list(BAR_COLUMNS)).to_pandas()))
    return pa.Table.from_arrays(columns, schema=BARS_ARROW_SCHEMA.set(0, pa.field("symbol", columns[0].type)))


def _frame_table(frame: pd.DataFrame) -> pa.Table:
    """A normalized bars frame as Arrow: a categorical symbol column becomes a dictionary column
    (its codes, without a string per row), NaT a null date, NaN stays NaN."""
    symbols = frame["symbol"]
    if _string_categorical(symbols):
        codes = symbols.cat.codes.to_numpy().astype(np.int32)
        categories = pa.array(symbols.cat.categories.to_numpy(dtype=object).tolist(), pa.string())
        symbol = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), categories)
    else:
        symbol = pc.cast(pa.array(symbols, from_pandas=True), pa.string())
    days = frame["date"].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    arrays = [symbol, pa.array(days, pa.date32(), mask=np.isnat(days))]
    arrays += [pa.array(frame[c].to_numpy(dtype="float64")) for c in ("open", "high", "low", "close", "volume")]
    return pa.Table.from_arrays(arrays, schema=BARS_ARROW_SCHEMA.set(0, pa.field("symbol", symbol.type)))


def _arrow_symbols(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    kind = column.type
    if pa.types.is_dictionary(kind) and (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)):
        wanted = pa.dictionary(pa.int32(), pa.string())
        return column if kind == wanted else pc.cast(column, wanted)
    if pa.types.is_string(kind):
        return column
    if pa.types.is_large_string(kind):
        return pc.cast(column, pa.string())
    return None


def _arrow_dates(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    kind = column.type
    if pa.types.is_date32(kind):
        return column
    if pa.types.is_date64(kind):
        return pc.cast(column, pa.date32())
    if pa.types.is_timestamp(kind) and kind.tz is None:
        # Arrow's cast to a date drops the time of day silently; only exact midnights convert here
        # (normalize_bars decides what a time of day means).
        ns = pc.cast(column, pa.timestamp("ns")).cast(pa.int64())
        if pc.any(pc.not_equal(pc.multiply(pc.divide(ns, NS_PER_DAY), NS_PER_DAY), ns)).as_py():
            return None
        return pc.cast(column, pa.date32())
    return None


def _arrow_floats(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    kind = column.type
    if pa.types.is_float64(kind):
        return column
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return pc.cast(column, pa.float64())
    return None
