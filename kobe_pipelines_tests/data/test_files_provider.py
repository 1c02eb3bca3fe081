"""The `files` provider against real CSV and Parquet files in a temporary folder."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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


@pytest.fixture(params=["csv", "parquet"])
def folder(request, tmp_path):
    _write(tmp_path, "bars", BARS, request.param, "date")
    _write(tmp_path, "splits", SPLITS, request.param, "execution_date")
    _write(tmp_path, "dividends", DIVIDENDS, request.param, "ex_dividend_date")
    return tmp_path


def test_files_provider_when_constructed_then_implements_the_provider_protocol(folder):
    provider = FilesProvider(folder)
    assert isinstance(provider, MarketDataProvider) and provider.name == "files"


def test_daily_bars_when_range_is_given_then_returns_normalized_rows_in_range(folder):
    bars = FilesProvider(folder).daily_bars("2024-01-03", "2024-01-04")
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


@pytest.mark.parametrize("date_type", ["date", "timestamp", "string"])
def test_daily_bars_when_parquet_dates_have_any_type_then_range_filter_is_the_same(tmp_path, date_type):
    _write(tmp_path, "bars", BARS, "parquet", "date", date_type)
    bars = FilesProvider(tmp_path).daily_bars("2024-01-04", "2024-01-04")
    assert sorted(bars["symbol"]) == ["AAA", "TRUE"] and set(bars["date"]) == {pd.Timestamp("2024-01-04")}


def test_splits_and_dividends_when_their_files_are_absent_then_empty_frames_with_schema_columns(tmp_path):
    _write(tmp_path, "bars", BARS, "csv", "date")
    provider = FilesProvider(tmp_path)
    assert provider.splits("2024-01-01", "2024-12-31").empty
    assert list(provider.dividends("2024-01-01", "2024-12-31").columns) == ["symbol", "ex_dividend_date", "cash_amount"]


def test_daily_bars_when_bars_file_is_missing_then_error_names_the_file(tmp_path):
    with pytest.raises(SourceFileError, match=r"bars\.csv.*bars\.csv or bars\.parquet"):
        FilesProvider(tmp_path).daily_bars("2024-01-01", "2024-12-31")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_daily_bars_when_a_column_is_missing_then_error_names_file_and_column(tmp_path, fmt):
    _write(tmp_path, "bars", BARS.drop(columns=["volume"]), fmt, "date")
    with pytest.raises(SourceFileError) as info:
        FilesProvider(tmp_path).daily_bars("2024-01-01", "2024-12-31")
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


def test_daily_bars_when_parquet_is_corrupt_then_error_names_the_file(tmp_path):
    (tmp_path / "bars.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(SourceFileError, match=r"bars\.parquet.*not a readable Parquet file"):
        FilesProvider(tmp_path).daily_bars("2024-01-01", "2024-12-31")


def test_files_provider_when_folder_does_not_exist_then_error_names_it(tmp_path):
    with pytest.raises(SourceFileError, match="is not a folder"):
        FilesProvider(tmp_path / "nowhere")


def test_daily_bars_when_a_price_is_not_a_number_then_it_becomes_nan_for_validation_to_name(tmp_path):
    bad = BARS.astype({"close": object})
    bad.loc[1, "close"] = "abc"
    _write(tmp_path, "bars", bad, "csv", "date")
    bars = FilesProvider(tmp_path).daily_bars("2024-01-01", "2024-12-31")
    assert bars["close"].isna().tolist() == [False, True, False, False, False, False]


def test_freeze_when_the_same_data_comes_as_csv_or_parquet_then_same_content_hash(tmp_path):
    # Parquet symbols arrive as a categorical (read from the file's dictionary), CSV ones as
    # strings: the lake must not tell them apart.
    from kobe_pipelines.lake import Lake

    hashes = {}
    for fmt in ("csv", "parquet"):
        source = tmp_path / f"src-{fmt}"
        source.mkdir()
        _write(source, "bars", BARS, fmt, "date")
        _write(source, "splits", SPLITS, fmt, "execution_date")
        _write(source, "dividends", DIVIDENDS.iloc[1:], fmt, "ex_dividend_date")
        provider = FilesProvider(source)
        bars = provider.daily_bars("2024-01-02", "2024-01-04")
        assert isinstance(bars["symbol"].dtype, pd.CategoricalDtype) == (fmt == "parquet")
        result = Lake(tmp_path / f"lake-{fmt}").freeze(
            bars, provider.splits("2024-01-02", "2024-01-04"), provider.dividends("2024-01-02", "2024-01-04"),
            provider="files",
        )
        hashes[fmt] = result.version.content_hash
    assert hashes["csv"] == hashes["parquet"]
