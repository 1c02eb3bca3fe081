"""Validation of raw bars and corporate actions: each bad input names its record and field."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.data import schema, validation
from kobe_pipelines.data.validation import ActionValidationError, BarValidationError, UnknownSymbolError
from kobe_pipelines.errors import RecordError

from .conftest import dividends_frame, splits_frame

DAYS = ["2024-01-02", "2024-01-03", "2024-01-04"]
AS_OF = dt.date(2024, 1, 31)


@pytest.fixture()
def bars(make_bars) -> pd.DataFrame:
    return pd.concat(
        [make_bars("AAA", DAYS, [10.0, 11.0, 12.0]), make_bars("BBB", DAYS, [20.0, 21.0, 22.0])], ignore_index=True
    )


@pytest.fixture(params=["frame", "arrow", "arrow-dictionary"])
def validate(request):
    """`validate_bars`, or `validate_bars_table` on the same bars as Arrow (their symbols plain or
    dictionary-encoded): every bad bar must be reported the same way."""
    if request.param == "frame":
        return validation.validate_bars

    def through_arrow(bars: pd.DataFrame, as_of=None):
        if request.param == "arrow-dictionary":
            bars = bars.assign(symbol=pd.Categorical(bars["symbol"]))
        return validation.validate_bars_table(schema.bars_table(bars), as_of)

    return through_arrow


def _set(frame: pd.DataFrame, symbol: str, day: str, **values) -> pd.DataFrame:
    out = frame.copy()
    at = (out["symbol"] == symbol) & (out["date"] == pd.Timestamp(day))
    for column, value in values.items():
        out.loc[at, column] = value
    return out


# ---- bars ------------------------------------------------------------------------------------


def test_validate_bars_when_all_rows_are_sound_then_returns_them_unchanged(bars):
    assert validation.validate_bars(bars, as_of=AS_OF) is bars


def test_validate_bars_when_rows_are_unsorted_and_unique_then_passes(bars):
    shuffled = bars.sample(frac=1.0, random_state=3)
    assert validation.validate_bars(shuffled, as_of=AS_OF) is shuffled


@pytest.mark.parametrize("column", ["open", "high", "low", "close"])
@pytest.mark.parametrize("value", [np.nan, -1.0, 0.0, np.inf])
def test_validate_bars_when_a_price_is_nan_or_not_positive_then_names_record_and_field(bars, column, value, validate):
    bad = _set(bars, "BBB", "2024-01-03", **{column: value})
    with pytest.raises(BarValidationError) as info:
        validate(bad, as_of=AS_OF)
    err = info.value
    assert (err.kind, err.record, err.field, err.count) == ("bar", "BBB 2024-01-03", column, 1)
    assert "BBB 2024-01-03" in str(err) and f"'{column}'" in str(err)
    assert isinstance(err, RecordError)


@pytest.mark.parametrize("value", [np.nan, -5.0, np.inf])
def test_validate_bars_when_volume_is_nan_or_negative_then_names_volume(bars, value, validate):
    with pytest.raises(BarValidationError) as info:
        validate(_set(bars, "AAA", "2024-01-04", volume=value), as_of=AS_OF)
    assert (info.value.record, info.value.field) == ("AAA 2024-01-04", "volume")


@pytest.mark.parametrize("dictionary", [False, True])
def test_validate_bars_table_when_rows_are_shuffled_then_returns_them_sorted_with_the_keys_of_the_sorted_frame(bars, dictionary):
    shuffled = bars.sample(frac=1.0, random_state=3).reset_index(drop=True)
    if dictionary:  # categories in no particular order, one of them without rows
        shuffled["symbol"] = pd.Categorical(shuffled["symbol"], categories=["BBB", "ZZZ", "AAA"])
    table, keys = validation.validate_bars_table(schema.bars_table(shuffled), as_of=AS_OF)
    got = schema.normalize_bars(table.to_pandas()).astype({"symbol": str})
    pd.testing.assert_frame_equal(got, bars.astype({"symbol": str}))  # bars: AAA then BBB, by date
    _, expected = validation.validate_bars_keyed(bars, as_of=AS_OF)
    assert keys.increasing and keys.keys.tolist() == expected.keys.tolist()
    assert [keys.symbols[c] for c in keys.codes] == got["symbol"].tolist()


def test_bars_table_when_arrow_dates_carry_a_time_of_day_then_they_are_normalized_as_in_a_frame(bars):
    import pyarrow as pa

    timed = bars.assign(date=bars["date"] + pd.Timedelta(hours=16))  # 16:00, as some vendors stamp the close
    table = pa.Table.from_pandas(timed, preserve_index=False)
    assert table.schema.field("date").type == pa.timestamp("ns")
    converted = schema.bars_table(table)
    assert converted.schema.field("date").type == pa.date32()
    assert converted.column("date").to_pylist() == [d.date() for d in bars["date"]]
    assert converted.equals(schema.bars_table(timed))


def test_validate_bars_when_volume_is_zero_then_passes(bars):
    validation.validate_bars(_set(bars, "AAA", "2024-01-04", volume=0.0), as_of=AS_OF)


def test_validate_bars_when_high_below_low_then_names_high(bars, validate):
    # open and close stay inside neither bound once high < low, but high < low is the root cause
    bad = _set(bars, "AAA", "2024-01-03", high=10.5, low=11.5, open=11.0, close=11.0)
    with pytest.raises(BarValidationError) as info:
        validate(bad, as_of=AS_OF)
    assert (info.value.record, info.value.field, info.value.value) == ("AAA 2024-01-03", "high", 10.5)
    assert "must be >= low" in str(info.value)


@pytest.mark.parametrize(("column", "value"), [("open", 12.5), ("open", 9.5), ("close", 12.5), ("close", 9.5)])
def test_validate_bars_when_open_or_close_outside_low_high_then_names_it(bars, column, value, validate):
    bad = _set(bars, "AAA", "2024-01-03", high=12.0, low=10.0, **{column: value})
    with pytest.raises(BarValidationError) as info:
        validate(bad, as_of=AS_OF)
    assert (info.value.record, info.value.field) == ("AAA 2024-01-03", column)
    assert "within [low, high]" in str(info.value)


@pytest.mark.parametrize("where", ["at_the_end", "next_to_it"])
def test_validate_bars_when_symbol_date_repeats_then_names_the_duplicate(bars, where, validate):
    # at the end the frame is neither (symbol, date) nor (date, symbol) ordered; next to it, it is
    # still (symbol, date) ordered but not strictly
    doubled = pd.concat([bars, bars.iloc[[4]]], ignore_index=True)
    if where == "next_to_it":
        doubled = doubled.iloc[[0, 1, 2, 3, 4, 6, 5]].reset_index(drop=True)
    with pytest.raises(BarValidationError) as info:
        validate(doubled, as_of=AS_OF)
    assert (info.value.record, info.value.field, info.value.count) == ("BBB 2024-01-03", "date", 2)
    assert "duplicates" in str(info.value)


def test_validate_bars_when_date_is_missing_then_names_date(bars, validate):
    bad = bars.copy()
    bad.loc[2, "date"] = pd.NaT
    with pytest.raises(BarValidationError) as info:
        validate(bad, as_of=AS_OF)
    assert (info.value.record, info.value.field) == ("AAA <no date>", "date")


def test_validate_bars_when_date_after_as_of_then_names_the_future_date(bars, make_bars, validate):
    future = pd.concat([bars, make_bars("AAA", ["2024-02-01"], [12.0])], ignore_index=True)
    with pytest.raises(BarValidationError) as info:
        validate(future, as_of=AS_OF)
    assert (info.value.record, info.value.field) == ("AAA 2024-02-01", "date")
    assert "after 2024-01-31" in str(info.value)


def test_validate_bars_when_as_of_is_omitted_then_tomorrow_is_in_the_future(make_bars, validate):
    tomorrow = (pd.Timestamp.now(tz="America/New_York") + pd.Timedelta(days=1)).date()
    with pytest.raises(BarValidationError) as info:
        validate(make_bars("AAA", [str(tomorrow)], [1.0]))
    assert info.value.field == "date"


@pytest.mark.parametrize("symbol", ["", "   "])
def test_validate_bars_when_symbol_is_blank_then_names_symbol(bars, symbol, validate):
    bad = bars.copy()
    bad.loc[1, "symbol"] = symbol
    with pytest.raises(BarValidationError) as info:
        validate(bad, as_of=AS_OF)
    assert (info.value.record, info.value.field) == (" 2024-01-03", "symbol")  # judged trimmed: an empty symbol


def test_validate_bars_when_several_rows_are_bad_then_reports_first_by_symbol_and_date_with_count(bars, validate):
    # three bad rows, listed in reverse order; the first by (symbol, date) is AAA 2024-01-03
    bad = _set(bars, "BBB", "2024-01-02", close=-1.0)
    bad = _set(bad, "AAA", "2024-01-04", volume=-1.0)
    bad = _set(bad, "AAA", "2024-01-03", low=np.nan)
    with pytest.raises(BarValidationError) as info:
        validate(bad.iloc[::-1].reset_index(drop=True), as_of=AS_OF)
    assert (info.value.record, info.value.field, info.value.count, info.value.total) == ("AAA 2024-01-03", "low", 3, 6)
    assert "3 of 6 rows fail" in str(info.value)


# ---- splits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["split_from", "split_to"])
@pytest.mark.parametrize("value", [0.0, -2.0, np.nan])
def test_validate_splits_when_a_ratio_side_is_not_positive_then_names_record_and_field(field, value):
    row = {"split_from": 1.0, "split_to": 4.0, field: value}
    splits = splits_frame([("AAA", "2024-01-03", row["split_from"], row["split_to"])])
    with pytest.raises(ActionValidationError) as info:
        validation.validate_splits(splits, {"AAA"})
    assert (info.value.kind, info.value.record, info.value.field) == ("split", "AAA 2024-01-03", field)


def test_validate_splits_when_symbol_has_no_bars_then_raises_unknown_symbol_naming_it():
    splits = splits_frame([("AAA", "2024-01-03", 1.0, 2.0), ("ZZZ", "2024-01-03", 1.0, 2.0)])
    with pytest.raises(UnknownSymbolError) as info:
        validation.validate_splits(splits, {"AAA"})
    assert (info.value.record, info.value.field, info.value.value) == ("ZZZ 2024-01-03", "symbol", "ZZZ")


def test_validate_splits_when_rows_repeat_exactly_or_with_an_equal_ratio_then_keeps_one():
    splits = splits_frame(
        [("AAA", "2024-01-03", 1.0, 2.0), ("AAA", "2024-01-03", 1.0, 2.0), ("AAA", "2024-01-03", 2.0, 4.0)]
    )
    cleaned = validation.validate_splits(splits, {"AAA"})
    assert len(cleaned) == 1
    assert cleaned["split_to"].iloc[0] / cleaned["split_from"].iloc[0] == 2.0


def test_validate_splits_when_same_symbol_and_date_have_different_ratios_then_names_the_conflict():
    splits = splits_frame([("AAA", "2024-01-03", 1.0, 2.0), ("AAA", "2024-01-03", 1.0, 3.0)])
    with pytest.raises(ActionValidationError) as info:
        validation.validate_splits(splits, {"AAA"})
    assert (info.value.record, info.value.field) == ("AAA 2024-01-03", "split_to")
    assert "1:2" in str(info.value) and "1:3" in str(info.value)


def test_validate_splits_when_ratio_is_one_to_one_then_drops_the_no_op():
    splits = splits_frame([("AAA", "2024-01-03", 1.0, 1.0), ("AAA", "2024-01-04", 1.0, 4.0)])
    cleaned = validation.validate_splits(splits, {"AAA"})
    assert cleaned["execution_date"].tolist() == [pd.Timestamp("2024-01-04")]


# ---- dividends -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, -0.5, np.nan, np.inf])
def test_validate_dividends_when_cash_amount_is_not_positive_then_names_record_and_field(value):
    dividends = dividends_frame([("AAA", "2024-01-03", value)])
    with pytest.raises(ActionValidationError) as info:
        validation.validate_dividends(dividends, {"AAA"})
    assert (info.value.kind, info.value.record, info.value.field) == ("dividend", "AAA 2024-01-03", "cash_amount")


def test_validate_dividends_when_symbol_has_no_bars_then_raises_unknown_symbol_naming_it():
    with pytest.raises(UnknownSymbolError) as info:
        validation.validate_dividends(dividends_frame([("QQQ", "2024-01-03", 0.5)]), {"AAA"})
    assert (info.value.record, info.value.field) == ("QQQ 2024-01-03", "symbol")
    assert "QQQ" in str(info.value)


def test_validate_dividends_when_a_row_repeats_exactly_then_keeps_one_and_keeps_a_different_amount():
    # 0.5 twice is one dividend delivered twice; 2.0 the same day is a second (special) dividend
    dividends = dividends_frame([("AAA", "2024-01-03", 0.5), ("AAA", "2024-01-03", 0.5), ("AAA", "2024-01-03", 2.0)])
    cleaned = validation.validate_dividends(dividends, {"AAA"})
    assert cleaned["cash_amount"].tolist() == [0.5, 2.0]


def test_validate_actions_when_empty_then_return_empty_frames():
    assert validation.validate_splits(splits_frame([]), set()).empty
    assert validation.validate_dividends(dividends_frame([]), set()).empty
