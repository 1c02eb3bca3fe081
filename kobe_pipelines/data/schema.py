"""Column contracts for bars and corporate actions, shared by every provider and the lake.

In DataFrames, dates are naive `datetime64[ns]` midnights naming the exchange session
(America/New_York); prices are raw USD per share as traded that day; volume is shares.
"""

from __future__ import annotations

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
    out = df.loc[:, list(columns)].copy()
    out["symbol"] = out["symbol"].astype(str)
    for col in dates:
        out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]").dt.normalize()
    for col in floats:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    return out.reset_index(drop=True)


def normalize_bars(df: pd.DataFrame) -> pd.DataFrame:
    """Select and type the bar columns; values are not validated here (see `validation`)."""
    return _with_types(df, BAR_COLUMNS, ("date",), ("open", "high", "low", "close", "volume"))


def normalize_splits(df: pd.DataFrame) -> pd.DataFrame:
    return _with_types(df, SPLIT_COLUMNS, ("execution_date",), ("split_from", "split_to"))


def normalize_dividends(df: pd.DataFrame) -> pd.DataFrame:
    return _with_types(df, DIVIDEND_COLUMNS, ("ex_dividend_date",), ("cash_amount",))
