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

Parquet files are read with pyarrow, only the needed columns; when the date column is a date or
timestamp type, row groups whose statistics lie outside the date range are skipped and the other
rows filtered as they are read (a row without a date is always kept: validation names it, rather
than a range dropping it unseen). `daily_bars_table` gives the
bars as an Arrow table, which `Lake.freeze` takes as it is: a history of millions of bars is
then never copied into pandas.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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

    def daily_bars(self, start: dt.date | str, end: dt.date | str | None) -> pd.DataFrame:
        return self._table("bars", schema.BAR_COLUMNS, "date", start, end, schema.normalize_bars, schema.empty_bars)

    def daily_bars_table(self, start: dt.date | str, end: dt.date | str | None) -> pa.Table:
        """`daily_bars` as an Arrow table in `schema.BARS_ARROW_SCHEMA` (symbols dictionary-encoded
        when they come from a Parquet file)."""
        path = self._bars_file()
        lo, hi = _bounds(start, end)
        if path.suffix == ".parquet":
            table = _read_parquet_table(path, schema.BAR_COLUMNS, "date", lo, hi, symbols_as_dictionary=True)
            filtered = _filters_dates(table.schema.field("date").type)
        else:
            table, filtered = _read_csv_table(path, schema.BAR_COLUMNS), False
        try:
            table = schema.bars_table(table)
        except (ValueError, TypeError, pa.ArrowException) as exc:
            raise SourceFileError(path, f"cannot be read as bars: {exc}") from exc
        if filtered:
            return table
        dates = table.column("date")
        # a bar without a date is kept: validation names it
        within = pc.fill_null(pc.and_(pc.greater_equal(dates, pa.scalar(lo.date())), pc.less_equal(dates, pa.scalar(hi.date()))), True)
        return table if pc.all(within).as_py() else table.filter(within)

    def splits(self, start: dt.date | str, end: dt.date | str | None) -> pd.DataFrame:
        return self._table(
            "splits", schema.SPLIT_COLUMNS, "execution_date", start, end, schema.normalize_splits, schema.empty_splits
        )

    def dividends(self, start: dt.date | str, end: dt.date | str | None) -> pd.DataFrame:
        return self._table(
            "dividends", schema.DIVIDEND_COLUMNS, "ex_dividend_date", start, end, schema.normalize_dividends, schema.empty_dividends
        )

    def _table(
        self,
        name: str,
        columns: tuple[str, ...],
        date_column: str,
        start: dt.date | str,
        end: dt.date | str | None,
        normalize: Callable[[pd.DataFrame], pd.DataFrame],
        empty: Callable[[], pd.DataFrame],
    ) -> pd.DataFrame:
        path = self._bars_file() if name == "bars" else self._find(name)
        if path is None:
            return empty()
        lo, hi = _bounds(start, end)
        if path.suffix == ".parquet":
            frame = _frame(_read_parquet_table(path, columns, date_column, lo, hi, symbols_as_dictionary=name == "bars"))
        else:
            frame = _frame(_read_csv_table(path, columns))
        try:
            frame = normalize(frame)
        except (ValueError, TypeError) as exc:  # e.g. a date column that is not dates
            raise SourceFileError(path, f"cannot be read as {name}: {exc}") from exc
        dates = frame[date_column]
        within = ((dates >= lo) & (dates <= hi)) | dates.isna()  # a row without a date is kept: validation names it
        return frame if within.all() else frame.loc[within].reset_index(drop=True)

    def _bars_file(self) -> Path:
        path = self._find("bars")
        if path is None:
            raise SourceFileError(
                self.folder / "bars.csv", f"missing: the folder needs bars.csv or bars.parquet with columns {list(schema.BAR_COLUMNS)}"
            )
        return path

    def _find(self, name: str) -> Path | None:
        found = [self.folder / f"{name}{suffix}" for suffix in SUFFIXES if (self.folder / f"{name}{suffix}").exists()]
        if len(found) > 1:
            raise SourceFileError(found[0], f"both {found[0].name} and {found[1].name} exist; keep exactly one")
        return found[0] if found else None


# The upper bound of a read without an end: the latest midnight pandas holds with a day to spare.
NO_END = pd.Timestamp("2262-04-10")


def _bounds(start: dt.date | str, end: dt.date | str | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end] as midnights; no `end` reads every later row (a bar dated in the future then
    reaches the freeze's validation, which refuses it by name, instead of being left out)."""
    return pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize() if end is not None else NO_END


def _missing_columns(path: Path, have: list[str], columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in have]
    if missing:
        raise SourceFileError(path, f"missing column(s) {missing}; it has {have}, needs {list(columns)}")


def _frame(table: pa.Table) -> pd.DataFrame:
    # One block per column and the Arrow buffers released as they convert: no 2-D float block
    # copy, and half the peak memory on a 12.6M-bar file.
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _read_parquet_table(
    path: Path, columns: tuple[str, ...], date_column: str, lo: pd.Timestamp, hi: pd.Timestamp,
    symbols_as_dictionary: bool = False,
) -> pa.Table:
    """The `columns` of a Parquet file, the rows of [lo, hi] only when its dates are dates or
    timestamps (other types are filtered after normalizing). Row groups whose statistics put
    every date outside the range are not read; the rest are filtered in Arrow. A row without a
    date is kept: validation names it. (pyarrow's `read_table` does the same through its dataset
    layer, which costs a tenth of a second to load in a fresh process.)"""
    try:
        file = pq.ParquetFile(path)
        file_schema = file.schema_arrow
        _missing_columns(path, list(file_schema.names), columns)
        # Bars' symbols straight from the file's dictionary pages: no string per row (in pandas a
        # categorical column), and the freeze works on their integer codes.
        symbol_type = file_schema.field("symbol").type
        if symbols_as_dictionary and (pa.types.is_string(symbol_type) or pa.types.is_large_string(symbol_type)):
            file = pq.ParquetFile(path, read_dictionary=["symbol"])
        date_type = file_schema.field(date_column).type
        if not _filters_dates(date_type):
            return file.read(columns=list(columns))
        if pa.types.is_date(date_type):
            first, after = pa.scalar(lo.date(), date_type), pa.scalar(hi.date(), date_type)
            upper = pc.less_equal
        else:  # whole-day bounds: a timestamp column may carry times of day
            first = pa.scalar(lo.to_pydatetime(), date_type)
            after, upper = pa.scalar((hi + pd.Timedelta(days=1)).to_pydatetime(), date_type), pc.less
        groups, inside = _row_groups_within(file.metadata, file_schema.get_field_index(date_column), lo, hi)
        table = file.read_row_groups(groups, columns=list(columns))
    except (pa.ArrowException, OSError) as exc:
        raise SourceFileError(path, f"is not a readable Parquet file ({exc})") from exc
    if inside:
        return table  # a row filter would cost a pass over every row and drop nothing
    dates = table.column(date_column)
    within = pc.fill_null(pc.and_(pc.greater_equal(dates, first), upper(dates, after)), True)
    return table if pc.all(within).as_py() else table.filter(within)


def _filters_dates(date_type: pa.DataType) -> bool:
    """Whether `_read_parquet_table` filters a date column of this type by the range itself."""
    return pa.types.is_date(date_type) or (pa.types.is_timestamp(date_type) and date_type.tz is None)


def _row_groups_within(metadata: pq.FileMetaData, index: int, lo: pd.Timestamp, hi: pd.Timestamp
                       ) -> tuple[list[int], bool]:
    """The row groups that may hold a date in [lo, hi] (or a missing date), by their statistics,
    and whether those prove every row of them lies in the range."""
    end = hi + pd.Timedelta(days=1)
    groups, inside = [], True
    for i in range(metadata.num_row_groups):
        stats = metadata.row_group(i).column(index).statistics
        if stats is None or not stats.has_min_max or stats.null_count:
            groups.append(i)
            inside = False
            continue
        try:
            first, last = pd.Timestamp(stats.min), pd.Timestamp(stats.max)
        except (TypeError, ValueError):
            groups.append(i)
            inside = False
            continue
        if last >= lo and first < end:
            groups.append(i)
            inside = inside and first >= lo and last < end
    return groups, inside


def _read_csv_table(path: Path, columns: tuple[str, ...]) -> pa.Table:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = [h.strip() for h in next(csv.reader(handle), [])]
        _missing_columns(path, header, columns)
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
            convert_options=pacsv.ConvertOptions(include_columns=list(columns), column_types={"symbol": pa.string()}),
        )
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise SourceFileError(path, f"is not a readable CSV file ({exc})") from exc
