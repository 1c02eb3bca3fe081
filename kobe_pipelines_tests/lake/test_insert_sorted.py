"""`_insert_sorted` and `_replace_symbols` (on the stored tables as Arrow), checked against pandas'
stable sort of the same rows."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from kobe_pipelines.lake.freeze_steps import _insert_sorted, _replace_symbols

KEYS = ["kind", "symbol", "date", "amount"]

_row = st.tuples(
    st.sampled_from(["dividend", "split"]),
    st.sampled_from(["A", "AA", "AB", "B", "BRK.B", "Z"]),
    st.integers(min_value=0, max_value=6).map(lambda d: pd.Timestamp("2024-01-02") + pd.Timedelta(days=d)),
    st.sampled_from([0.05, 0.25, 0.5, 2.0, 10.0]),
    st.sampled_from(["t0", "t1"]),
)


def _frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=KEYS + ["first_seen_at"])
    return frame.astype({"kind": str, "symbol": str, "date": "datetime64[ns]", "amount": "float64", "first_seen_at": str})


def _arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def _insert(stored: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    return _insert_sorted(_arrow(stored), _arrow(fresh), KEYS).to_pandas()


def _stable_sort(stored: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([stored, fresh], ignore_index=True).sort_values(KEYS, kind="stable").reset_index(drop=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(_row, max_size=30), st.lists(_row, max_size=8))
def test_insert_sorted_when_stored_is_sorted_then_same_as_a_stable_sort_of_both(stored_rows, fresh_rows):
    stored = _stable_sort(_frame(stored_rows), _frame([]))
    fresh = _frame(fresh_rows)  # unsorted, may tie with stored rows and with each other
    pd.testing.assert_frame_equal(_insert(stored, fresh), _stable_sort(stored, fresh))


def test_insert_sorted_when_stored_is_not_sorted_then_everything_is_sorted():
    stored = _frame([("split", "B", "2024-01-02", 2.0, "t0"), ("dividend", "A", "2024-01-03", 0.5, "t0")])
    fresh = _frame([("dividend", "A", "2024-01-02", 0.5, "t1")])
    out = _insert(stored, fresh)
    assert list(zip(out["kind"], out["symbol"], out["date"].dt.day)) == [
        ("dividend", "A", 2), ("dividend", "A", 3), ("split", "B", 2),
    ]


def test_insert_sorted_when_a_tie_then_the_fresh_row_follows_the_stored_one():
    stored = _frame([("dividend", "A", "2024-01-02", 0.5, "t0"), ("dividend", "B", "2024-01-02", 0.5, "t0")])
    fresh = _frame([("dividend", "A", "2024-01-02", 0.5, "t1")])
    assert _insert(stored, fresh)["first_seen_at"].tolist() == ["t0", "t1", "t0"]


# ---- `_replace_symbols`: some symbols' rows swapped for recomputed ones -------------------------

_FACTOR_KEYS = ["symbol", "valid_from"]
_factor_row = st.tuples(st.sampled_from(["A", "AA", "AB", "B", "BRK.B", "Z"]), st.integers(min_value=0, max_value=9),
                        st.sampled_from([0.5, 0.9, 1.0]))


def _factors(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["symbol", "day", "price_factor"])
    frame["valid_from"] = pd.Timestamp("2024-01-02") + pd.to_timedelta(frame["day"], unit="D")
    return frame[["symbol", "valid_from", "price_factor"]].astype({"symbol": str, "valid_from": "datetime64[ns]", "price_factor": "float64"})


@settings(max_examples=200, deadline=None)
@given(st.lists(_factor_row, max_size=30), st.lists(_factor_row, max_size=10),
       st.sets(st.sampled_from(["A", "AA", "AB", "B", "BRK.B", "Z", "NEW"]), max_size=4), st.booleans())
def test_replace_symbols_then_same_as_dropping_them_and_sorting_everything(stored_rows, fresh_rows, replaced, shuffle):
    stored = _factors(stored_rows).sort_values(_FACTOR_KEYS, kind="stable").reset_index(drop=True)
    if shuffle:  # stored out of symbol order: the slow path
        stored = stored.iloc[::-1].reset_index(drop=True)
    fresh = _factors([row for row in fresh_rows if row[0] in replaced])  # only replaced symbols are recomputed
    expected = pd.concat([stored.loc[~stored["symbol"].isin(replaced)], fresh], ignore_index=True)
    expected = expected.sort_values(_FACTOR_KEYS, kind="stable").reset_index(drop=True)
    got = _replace_symbols(_arrow(stored), _arrow(fresh).cast(_arrow(stored).schema), set(replaced), _FACTOR_KEYS).to_pandas()
    if shuffle:  # ties among the kept rows may come in another order; the rows and keys must match
        got = got.sort_values(_FACTOR_KEYS + ["price_factor"], kind="stable").reset_index(drop=True)
        expected = expected.sort_values(_FACTOR_KEYS + ["price_factor"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)
