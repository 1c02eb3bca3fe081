"""`schema`: normalizing keeps a categorical symbol column, and its codes in sorted-name order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kobe_pipelines.data import schema


def test_sorted_symbol_codes_when_categories_are_not_in_name_order_then_codes_rank_by_name():
    symbols = pd.Series(pd.Categorical(["MSFT", "AAPL", None, "MSFT", "IBM"], categories=["MSFT", "ZZZ", "AAPL", "IBM"]))
    codes, names = schema.sorted_symbol_codes(symbols)
    # by name: AAPL=0, IBM=1, MSFT=2, ZZZ=3 (unused); the missing symbol is -1
    assert names.tolist() == ["AAPL", "IBM", "MSFT", "ZZZ"]
    assert codes.tolist() == [2, 0, -1, 2, 1]


def test_sorted_symbol_codes_when_symbols_are_strings_then_none():
    assert schema.sorted_symbol_codes(pd.Series(["AAPL", "IBM"])) is None


def test_normalize_bars_when_symbol_is_categorical_then_kept_categorical_with_the_same_values():
    bars = pd.DataFrame({
        "symbol": pd.Categorical(["IBM", "AAPL"]), "date": ["2024-01-02", "2024-01-02"],
        "open": [1, 2], "high": [1, 2], "low": [1, 2], "close": [1, 2], "volume": [5, 6],
    })
    out = schema.normalize_bars(bars)
    assert isinstance(out["symbol"].dtype, pd.CategoricalDtype)
    assert out["symbol"].astype(str).tolist() == ["IBM", "AAPL"]
    assert out["close"].dtype == np.float64
