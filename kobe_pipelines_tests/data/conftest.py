"""Fixtures of the data tests: small hand-written markets and the Quandl WIKI reference sample."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import pytest

from kobe_pipelines.data import schema

from kobe_pipelines_tests.testdata import QUANDL_WIKI_2014_CSV, quandl_wiki_2014_inputs

MakeBars = Callable[..., pd.DataFrame]


@pytest.fixture()
def make_bars() -> MakeBars:
    """Bars of one symbol from closes (open = high = low = close unless given)."""

    def build(
        symbol: str,
        dates: Sequence[str],
        closes: Sequence[float],
        volumes: Sequence[float] | None = None,
    ) -> pd.DataFrame:
        frame = pd.DataFrame(
            {
                "symbol": symbol,
                "date": list(dates),
                "open": list(closes),
                "high": list(closes),
                "low": list(closes),
                "close": list(closes),
                "volume": list(volumes) if volumes is not None else [1000.0] * len(closes),
            }
        )
        return schema.normalize_bars(frame)

    return build


def splits_frame(rows: Sequence[tuple[str, str, float, float]]) -> pd.DataFrame:
    return schema.normalize_splits(pd.DataFrame(list(rows), columns=list(schema.SPLIT_COLUMNS)))


def dividends_frame(rows: Sequence[tuple[str, str, float]]) -> pd.DataFrame:
    return schema.normalize_dividends(pd.DataFrame(list(rows), columns=list(schema.DIVIDEND_COLUMNS)))


@pytest.fixture(scope="session")
def refdata() -> pd.DataFrame:
    """The vendor's file as is (raw OHLCV, ex-dividend, split_ratio and adj_* columns)."""
    frame = pd.read_csv(QUANDL_WIKI_2014_CSV)
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return frame


@pytest.fixture(scope="session")
def refdata_inputs(refdata: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(bars, splits, dividends) built from the vendor's raw columns (`testdata.quandl_wiki_2014_inputs`)."""
    return quandl_wiki_2014_inputs()
