"""The `files` provider against real CSV and Parquet files in a temporary folder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kobe_pipelines.data import schema
from kobe_pipelines.data.providers.base import MarketDataProvider
from kobe_pipelines.data.providers.files import FilesProvider, SourceFileError

BARS = pd.DataFrame(
    {
        "symbol": ["AAA", "AAA", "AAA", "TRUE", "TRUE", "TRUE"],  # "TRUE" must stay a ticker, not a boolean
        "date": ["2024-01-02", "2024-01-03", "2024-01-04"] * 2,
        "open": [10.0, 11.0, 12.0, 5.0, 5.0, 5.0],
        "high": [10.5, 11.5, 12.5, 5.5, 5.5, 5.5],
        "low": [9.5, 10.5, 11.5, 4.5, 4.5, 4.5],
        "close": [10.0, 11.0, 12.0, 5.0, 5.1, 5.2],
        "volume": [100, 200, 300, 400, 500, 600],
        "vwap": [10.1, 11.1, 12.1, 5.1, 5.1, 5.1],  # an extra column, ignored
    }
)
SPLITS = pd.DataFrame({"symbol": ["AAA"], "execution_date": ["2024-01-03"], "split_from": [1], "split_to": [4]})
DIVIDENDS = pd.DataFrame({"symbol": ["TRUE", "TRUE"], "ex_dividend_date": ["2023-12-01", "2024-01-04"], "cash_amount": [0.1, 0.2]})


def _write(folder, name: str, frame: pd.DataFrame, fmt: str, date_column: str, date_type: str = "date") -> None:
    if fmt == "csv":
        frame.to_csv(folder / f"{name}.csv", index=False)
        return
    out = frame.copy()
    if date_type == "date":
        out[date_column] = pd.to_datetime(out[date_column]).dt.date  # Parquet date32
    elif date_type == "timestamp":
        out[date_column] = pd.to_datetime(out[date_column])  # Parquet timestamp
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), folder / f"{name}.parquet")


def _daily_bars(provider: FilesProvider, start: str, end: str, as_table: bool) -> pd.DataFrame:
    """`daily_bars`, or `daily_bars_table` (checked to be Arrow in the bars schema) as a frame."""
    if not as_table:
        return provider.daily_bars(start, end)
    table = provider.daily_bars_table(start, end)
    assert isinstance(table, pa.Table) and table.schema.names == list(schema.BAR_COLUMNS)
    assert table.schema.field("date").type == pa.date32() and table.schema.field("close").type == pa.float64()
    return schema.normalize_bars(table.to_pandas())


as_table = pytest.mark.parametrize("as_table", [False, True], ids=["frame", "arrow"])


@pytest.fixture(params=["csv", "parquet"])
def folder(request, tmp_path):
    _write(tmp_path, "bars", BARS, request.param, "date")
    _write(tmp_path, "splits", SPLITS, request.param, "execution_date")
    _write(tmp_path, "dividends", DIVIDENDS, request.param, "ex_dividend_date")
    return tmp_path


def test_files_provider_when_constructed_then_implements_the_provider_protocol(folder):
    provider = FilesProvider(folder)
    assert isinstance(provider, MarketDataProvider) and provider.name == "files"


@as_table
def test_daily_bars_when_range_is_given_then_returns_normalized_rows_in_range(folder, as_table):
    bars = _daily_bars(FilesProvider(folder), "2024-01-03", "2024-01-04", as_table)
    assert list(bars.columns) == ["symbol", "date", "open", "high", "low", "close", "volume"]
    assert str(bars["date"].dtype) == "datetime64[ns]" and str(bars["volume"].dtype) == "float64"
    assert sorted(zip(bars["symbol"], bars["date"].dt.strftime("%Y-%m-%d"), bars["close"])) == [
        ("AAA", "2024-01-03", 11.0), ("AAA", "2024-01-04", 12.0), ("TRUE", "2024-01-03", 5.1), ("TRUE", "2024-01-04", 5.2)
    ]


def test_splits_and_dividends_when_range_is_given_then_filter_by_their_own_dates(folder):
    provider = FilesProvider(folder)
    splits = provider.splits("2024-01-01", "2024-01-31")
    assert splits[["symbol", "split_from", "split_to"]].values.tolist() == [["AAA", 1.0, 4.0]]
    dividends = provider.dividends("2024-01-01", "2024-01-31")  # the 2023-12-01 dividend is outside
    assert dividends[["symbol", "cash_amount"]].values.tolist() == [["TRUE", 0.2]]
    assert dividends["ex_dividend_date"].tolist() == [pd.Timestamp("2024-01-04")]


@as_table
@pytest.mark.parametrize("date_type", ["date", "timestamp", "string"])
def test_daily_bars_when_parquet_dates_have_any_type_then_range_filter_is_the_same(tmp_path, date_type, as_table):
    _write(tmp_path, "bars", BARS, "parquet", "date", date_type)
    bars = _daily_bars(FilesProvider(tmp_path), "2024-01-04", "2024-01-04", as_table)
    assert sorted(bars["symbol"]) == ["AAA", "TRUE"] and set(bars["date"]) == {pd.Timestamp("2024-01-04")}


@as_table
@pytest.mark.parametrize(("start", "end"), [("2024-01-04", "2024-01-04"), ("2024-01-03", "2024-01-31"), ("2023-12-01", "2024-01-02")])
def test_daily_bars_when_parquet_has_row_groups_then_only_those_in_range_are_read_and_rows_filtered(tmp_path, as_table, start, end):
    # six bars by date in row groups of two: one session per row group
    by_date = BARS.sort_values(["date", "symbol"]).assign(date=lambda f: pd.to_datetime(f["date"]).dt.date)
    pq.write_table(pa.Table.from_pandas(by_date, preserve_index=False), tmp_path / "bars.parquet", row_group_size=2)
    from kobe_pipelines.data.providers.files import _row_groups_within

    metadata = pq.ParquetFile(tmp_path / "bars.parquet").metadata
    groups, inside = _row_groups_within(metadata, 1, pd.Timestamp(start), pd.Timestamp(end))
    sessions = ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert groups == [i for i, day in enumerate(sessions) if start <= day <= end] and inside
    bars = _daily_bars(FilesProvider(tmp_path), start, end, as_table)
    expected = BARS[(BARS["date"] >= start) & (BARS["date"] <= end)]
    assert sorted(zip(bars["symbol"], bars["date"].dt.strftime("%Y-%m-%d"))) == sorted(zip(expected["symbol"], expected["date"]))


def test_splits_and_dividends_when_their_files_are_absent_then_empty_frames_with_schema_columns(tmp_path):
    _write(tmp_path, "bars", BARS, "csv", "date")
    provider = FilesProvider(tmp_path)
    assert provider.splits("2024-01-01", "2024-12-31").empty
    assert list(provider.dividends("2024-01-01", "2024-12-31").columns) == ["symbol", "ex_dividend_date", "cash_amount"]


@as_table
def test_daily_bars_when_bars_file_is_missing_then_error_names_the_file(tmp_path, as_table):
    with pytest.raises(SourceFileError, match=r"bars\.csv.*bars\.csv or bars\.parquet"):
        _daily_bars(FilesProvider(tmp_path), "2024-01-01", "2024-12-31", as_table)


@as_table
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_daily_bars_when_a_column_is_missing_then_error_names_file_and_column(tmp_path, fmt, as_table):
    _write(tmp_path, "bars", BARS.drop(columns=["volume"]), fmt, "date")
    with pytest.raises(SourceFileError) as info:
        _daily_bars(FilesProvider(tmp_path), "2024-01-01", "2024-12-31", as_table)
    assert info.value.path.name == f"bars.{fmt}"
    assert "missing column(s) ['volume']" in str(info.value)


def test_dividends_when_a_column_is_missing_then_error_names_file_and_column(tmp_path):
    _write(tmp_path, "bars", BARS, "csv", "date")
    _write(tmp_path, "dividends", DIVIDENDS.rename(columns={"cash_amount": "amount"}), "csv", "ex_dividend_date")
    with pytest.raises(SourceFileError, match=r"dividends\.csv.*\['cash_amount'\]"):
        FilesProvider(tmp_path).dividends("2024-01-01", "2024-12-31")


def test_daily_bars_when_both_csv_and_parquet_exist_then_refuses_to_guess(tmp_path):
    _write(tmp_path, "bars", BARS, "csv", "date")
    _write(tmp_path, "bars", BARS, "parquet", "date")
    with pytest.raises(SourceFileError, match="keep exactly one"):
        FilesProvider(tmp_path).daily_bars("2024-01-01", "2024-12-31")


@as_table
def test_daily_bars_when_parquet_is_corrupt_then_error_names_the_file(tmp_path, as_table):
    (tmp_path / "bars.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(SourceFileError, match=r"bars\.parquet.*not a readable Parquet file"):
        _daily_bars(FilesProvider(tmp_path), "2024-01-01", "2024-12-31", as_table)


def test_files_provider_when_folder_does_not_exist_then_error_names_it(tmp_path):
    with pytest.raises(SourceFileError, match="is not a folder"):
        FilesProvider(tmp_path / "nowhere")


@as_table
def test_daily_bars_when_a_price_is_not_a_number_then_it_becomes_nan_for_validation_to_name(tmp_path, as_table):
    bad = BARS.astype({"close": object})
    bad.loc[1, "close"] = "abc"
    _write(tmp_path, "bars", bad, "csv", "date")
    bars = _daily_bars(FilesProvider(tmp_path), "2024-01-01", "2024-12-31", as_table)
    assert bars["close"].isna().tolist() == [False, True, False, False, False, False]


@as_table
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_daily_bars_when_a_bar_has_no_date_then_it_is_kept_and_the_freeze_names_it(tmp_path, fmt, as_table):
    # outside every date range, but dropping it would lose a row of the user's file without a word
    from kobe_pipelines.data.validation import BarValidationError
    from kobe_pipelines.lake import Lake

    _write(tmp_path, "bars", BARS.assign(date=BARS["date"].where(BARS.index != 4, None)), fmt, "date")
    provider = FilesProvider(tmp_path)
    bars = _daily_bars(provider, "2024-01-03", "2024-01-04", as_table)
    assert sorted(zip(bars["symbol"], bars["date"].dt.strftime("%m-%d").fillna("none"))) == [
        ("AAA", "01-03"), ("AAA", "01-04"), ("TRUE", "01-04"), ("TRUE", "none")]
    source = provider.daily_bars_table if as_table else provider.daily_bars
    with pytest.raises(BarValidationError) as info:
        Lake(tmp_path / "lake").freeze(source("2024-01-02", "2024-01-04"), SPLITS.iloc[:0], DIVIDENDS.iloc[:0], provider="files")
    assert (info.value.record, info.value.field) == ("TRUE <no date>", "date")


def test_freeze_when_the_same_data_comes_as_csv_or_parquet_then_same_content_hash(tmp_path):
    # Parquet symbols arrive as a categorical (read from the file's dictionary), CSV ones as
    # strings: the lake must not tell them apart.
    from kobe_pipelines.lake import Lake

    # AAA's prices from its 1:4 split on 2024-01-03 on are quartered, as a 1:4 split makes them
    after_split = (BARS["symbol"] == "AAA") & (BARS["date"] >= "2024-01-03")
    bars_split = BARS.copy()
    bars_split.loc[after_split, ["open", "high", "low", "close"]] /= 4
    hashes = {}
    for fmt in ("csv", "parquet"):
        source = tmp_path / f"src-{fmt}"
        source.mkdir()
        _write(source, "bars", bars_split, fmt, "date")
        _write(source, "splits", SPLITS, fmt, "execution_date")
        _write(source, "dividends", DIVIDENDS.iloc[1:], fmt, "ex_dividend_date")
        provider = FilesProvider(source)
        bars = provider.daily_bars("2024-01-02", "2024-01-04")
        assert isinstance(bars["symbol"].dtype, pd.CategoricalDtype) == (fmt == "parquet")
        for kind, given in (("frame", bars), ("arrow", provider.daily_bars_table("2024-01-02", "2024-01-04"))):
            result = Lake(tmp_path / f"lake-{fmt}-{kind}").freeze(
                given, provider.splits("2024-01-02", "2024-01-04"), provider.dividends("2024-01-02", "2024-01-04"),
                provider="files",
            )
            hashes[fmt, kind] = result.version.content_hash
    assert len(set(hashes.values())) == 1, hashes
