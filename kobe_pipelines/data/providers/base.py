"""The one interface every market-data provider implements."""

from __future__ import annotations

import datetime as dt
from typing import Iterable, Protocol, runtime_checkable

import pandas as pd
import pyarrow as pa


@runtime_checkable
class MarketDataProvider(Protocol):
    """A source of RAW daily bars and corporate actions.

    Every method returns a DataFrame with exactly the columns of `kobe_pipelines.data.schema`
    (`BAR_COLUMNS`, `SPLIT_COLUMNS`, `DIVIDEND_COLUMNS`), normalized with the matching
    `normalize_*` function, but `daily_bars_table`, which returns the bars as Arrow. Date ranges are inclusive, in exchange (America/New_York) dates.
    Prices are raw: they jump at splits and drop at ex-dates; adjustment happens downstream.
    """

    name: str

    def daily_bars(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Raw bars for every session in [start, end]; a holiday simply has no rows."""
        ...

    def daily_bars_table(self, start: dt.date, end: dt.date) -> pa.Table:
        """`daily_bars` as an Arrow table in `schema.BARS_ARROW_SCHEMA`: the form `Lake.freeze`
        takes fastest (a provider that reads Arrow, like the files provider, never makes pandas)."""
        ...

    def daily_bar_batches(self, start: dt.date, end: dt.date, rows: int) -> Iterable[pa.Table]:
        """`daily_bars_table` as Arrow tables of about `rows` rows, an iterable that can be
        iterated again: what a first freeze streams in bounded memory."""
        ...

    def splits(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Splits with execution_date in [start, end]. A 4-for-1 split is split_from=1, split_to=4."""
        ...

    def dividends(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Cash dividends with ex_dividend_date in [start, end], in USD per share of that date."""
        ...


def bars_for_freeze(provider: MarketDataProvider, start: dt.date | str, end: dt.date | str | None) -> pa.Table:
    """The provider's bars in the form `Lake.freeze` takes fastest (`daily_bars_table`)."""
    return provider.daily_bars_table(start, end)


def bar_batches_for_freeze(provider: MarketDataProvider, start: dt.date | str, end: dt.date | str | None,
                           rows: int = 1 << 20) -> Iterable[pa.Table]:
    """The provider's bars as batches `Lake.freeze` streams (`daily_bar_batches`)."""
    return provider.daily_bar_batches(start, end, rows)
