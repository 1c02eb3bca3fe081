"""The `files` provider: the user's own market data, from a folder of CSV or Parquet files.

The folder holds up to three tables, each as `<name>.csv` or `<name>.parquet` (not both):

    bars       symbol, date, open, high, low, close, volume     required
    splits     symbol, execution_date, split_from, split_to     optional (no file = no splits)
    dividends  symbol, ex_dividend_date, cash_amount            optional (no file = no dividends)

Units and conventions are those of `kobe_pipelines.data.schema`: RAW prices in USD per share as
traded that day (they jump at splits and drop at ex-dates; the lake adjusts them), volume in
shares, dates as exchange dates (America/New_York, e.g. 2024-01-05 in a CSV). A 4-for-1 split is
split_from=1, split_to=4; cash_amount is USD per share of the ex-date. Extra columns are ignored.
Values are not judged here: the lake's freeze validates every row (`data.validation`).

Parquet files are read with pyarrow, only the needed columns, and the date range is pushed down
as a row filter when the date column is a date or timestamp type.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kobe_pipelines.data import schema
from kobe_pipelines.errors import KobeError

SUFFIXES: tuple[str, ...] = (".csv", ".parquet")


class SourceFileError(KobeError, ValueError):
    """A file of the files provider's folder is missing, ambiguous, unreadable or lacks a column."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"market-data file {path}: {problem}")


class FilesProvider:
    """`MarketDataProvider` over a folder of bars/splits/dividends files (`name = "files"`)."""

    name = "files"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceFileError(self.folder, "is not a folder (expected one holding bars.csv or bars.parquet)")

    def daily_bars(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        return self._table("bars", schema.BAR_COLUMNS, "date", start, end, schema.normalize_bars, schema.empty_bars)

    def splits(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        return self._table(
            "splits", schema.SPLIT_COLUMNS, "execution_date", start, end, schema.normalize_splits, schema.empty_splits
        )

    def dividends(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        return self._table(
            "dividends", schema.DIVIDEND_COLUMNS, "ex_dividend_date", start, end, schema.normalize_dividends, schema.empty_dividends
        )

    def _table(
        self,
        name: str,
        columns: tuple[str, ...],
        date_column: str,
        start: dt.date | str,
        end: dt.date | str,
        normalize: Callable[[pd.DataFrame], pd.DataFrame],
        empty: Callable[[], pd.DataFrame],
    ) -> pd.DataFrame:
        path = self._find(name)
        if path is None:
            if name == "bars":
                raise SourceFileError(
                    self.folder / "bars.csv", f"missing: the folder needs bars.csv or bars.parquet with columns {list(columns)}"
                )
            return empty()
        lo, hi = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        if path.suffix == ".parquet":
            frame = _read_parquet(path, columns, date_column, lo, hi, symbols_as_categories=name == "bars")
        else:
            frame = _read_csv(path, columns)
        try:
            frame = normalize(frame)
        except (ValueError, TypeError) as exc:  # e.g. a date column that is not dates
            raise SourceFileError(path, f"cannot be read as {name}: {exc}") from exc
        within = (frame[date_column] >= lo) & (frame[date_column] <= hi)
        return frame if within.all() else frame.loc[within].reset_index(drop=True)

    def _find(self, name: str) -> Path | None:
        found = [self.folder / f"{name}{suffix}" for suffix in SUFFIXES if (self.folder / f"{name}{suffix}").exists()]
        if len(found) > 1:
            raise SourceFileError(found[0], f"both {found[0].name} and {found[1].name} exist; keep exactly one")
        return found[0] if found else None


def _missing_columns(path: Path, have: list[str], columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in have]
    if missing:
        raise SourceFileError(path, f"missing column(s) {missing}; it has {have}, needs {list(columns)}")


def _read_parquet(
    path: Path, columns: tuple[str, ...], date_column: str, lo: pd.Timestamp, hi: pd.Timestamp,
    symbols_as_categories: bool = False,
) -> pd.DataFrame:
    try:
        file_schema = pq.read_schema(path)
        _missing_columns(path, list(file_schema.names), columns)
        date_type = file_schema.field(date_column).type
        filters = None
        if _all_rows_within(path, date_column, lo, hi):
            pass  # a row filter would cost a pass over every row and drop nothing
        elif pa.types.is_date(date_type):
            filters = [(date_column, ">=", lo.date()), (date_column, "<=", hi.date())]
        elif pa.types.is_timestamp(date_type) and date_type.tz is None:
            # Whole-day bounds: a timestamp column may carry times of day.
            filters = [(date_column, ">=", lo.to_pydatetime()), (date_column, "<", (hi + pd.Timedelta(days=1)).to_pydatetime())]
        # Bars' symbols straight from the file's dictionary pages into a categorical column: no
        # string per row, and the freeze works on its integer codes (schema.sorted_symbol_codes).
        symbol_type = file_schema.field("symbol").type
        text = pa.types.is_string(symbol_type) or pa.types.is_large_string(symbol_type)
        dictionary = ["symbol"] if symbols_as_categories and text else None
        table = pq.read_table(path, columns=list(columns), filters=filters, read_dictionary=dictionary)
    except (pa.ArrowException, OSError) as exc:
        raise SourceFileError(path, f"is not a readable Parquet file ({exc})") from exc
    # One block per column and the Arrow buffers released as they convert: no 2-D float block
    # copy, and half the peak memory on a 12.6M-bar file.
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _all_rows_within(path: Path, date_column: str, lo: pd.Timestamp, hi: pd.Timestamp) -> bool:
    """Whether the row-group statistics prove every date of the file lies in [lo, hi]."""
    metadata = pq.ParquetFile(path).metadata
    index = metadata.schema.to_arrow_schema().get_field_index(date_column)
    for i in range(metadata.num_row_groups):
        stats = metadata.row_group(i).column(index).statistics
        if stats is None or not stats.has_min_max or stats.null_count:
            return False
        try:
            if pd.Timestamp(stats.min) < lo or pd.Timestamp(stats.max) >= hi + pd.Timedelta(days=1):
                return False
        except (TypeError, ValueError):  # dates stored as text, or of a type without a timestamp
            return False
    return True


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = [h.strip() for h in next(csv.reader(handle), [])]
        _missing_columns(path, header, columns)
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
            convert_options=pacsv.ConvertOptions(include_columns=list(columns), column_types={"symbol": pa.string()}),
        )
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise SourceFileError(path, f"is not a readable CSV file ({exc})") from exc
    # One block per column and the Arrow buffers released as they convert: no 2-D float block
    # copy, and half the peak memory on a 12.6M-bar file.
    return table.to_pandas(split_blocks=True, self_destruct=True)
