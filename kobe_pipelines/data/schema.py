"""Column contracts for bars and corporate actions, shared by every provider and the lake.

In DataFrames, dates are naive `datetime64[ns]` midnights naming the exchange session
(America/New_York); prices are raw USD per share as traded that day; volume is shares.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BAR_COLUMNS: tuple[str, ...] = ("symbol", "date", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
SPLIT_COLUMNS: tuple[str, ...] = ("symbol", "execution_date", "split_from", "split_to")
DIVIDEND_COLUMNS: tuple[str, ...] = ("symbol", "ex_dividend_date", "cash_amount")

DIVIDEND_CONVENTIONS: tuple[str, ...] = ("crsp", "quandl")


def empty_bars() -> pd.DataFrame:
    return normalize_bars(pd.DataFrame({c: [] for c in BAR_COLUMNS}))


def empty_splits() -> pd.DataFrame:
    return normalize_splits(pd.DataFrame({c: [] for c in SPLIT_COLUMNS}))


def empty_dividends() -> pd.DataFrame:
    return normalize_dividends(pd.DataFrame({c: [] for c in DIVIDEND_COLUMNS}))


def _with_types(df: pd.DataFrame, columns: tuple[str, ...], dates: tuple[str, ...], floats: tuple[str, ...]) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"missing columns {missing}; expected {list(columns)}")
    # pandas 3 copies on write: converting only the columns that need it never touches the caller's
    # frame, and a frame that is already normalized (12.6M bars, say) costs next to nothing.
    out = df.loc[:, list(columns)]
    if not isinstance(out["symbol"].dtype, pd.StringDtype) and not _string_categorical(out["symbol"]):
        out["symbol"] = out["symbol"].astype(str)
    for col in dates:
        values = out[col]
        if values.dtype != "datetime64[ns]":
            values = pd.to_datetime(values).astype("datetime64[ns]")
        ns = values.to_numpy().view("int64")
        if len(ns) and (ns % 86_400_000_000_000 != 0).any():
            values = values.dt.normalize()
        out[col] = values
    for col in floats:
        if out[col].dtype != "float64":
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
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
    return _with_types(df, SPLIT_COLUMNS, ("execution_date",), ("split_from", "split_to"))


def normalize_dividends(df: pd.DataFrame) -> pd.DataFrame:
    return _with_types(df, DIVIDEND_COLUMNS, ("ex_dividend_date",), ("cash_amount",))
