"""Raw bars in the lake: which bars of a freeze are new, the refusal of a restated bar, the raw
partitions of new bars (the history of the closed years, one partition per later year:
`history`), and merging a year's small files.

Raw bars are stored as traded and never changed: a stored bar delivered again with other values
is a restatement, refused (`RawRestatementError`). A first freeze writes its bars of the closed
years as the history files and those of each later year into a file of that year (`stream`
when it streams them); a refreeze writes its new bars as one file per calendar year they fall
in (`year=YYYY` folders), a closed year's beside the history until the next compaction. Every
file is sorted by (symbol, date), symbols as plain strings (Parquet dictionary-encodes each row
group with the symbols it holds, so the file is the same whatever encoding the bars came in). A
year that would pass `RAW_FILES_PER_YEAR` files has all of them but the largest merged into one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kobe_pipelines.data import schema, validation
from kobe_pipelines.lake import duck
from kobe_pipelines.lake.arrow_keys import close_frame, frame_of_query, positions_around
from kobe_pipelines.lake.errors import RawRestatementError
from kobe_pipelines.lake.file_store import history_partition, is_history, year_partition
from kobe_pipelines.lake.history import year_of
from kobe_pipelines.lake.manifest import FileEntry, Manifest

VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
RAW_FILES_PER_YEAR = 12  # a year partition holds at most this many raw files after a refreeze


@dataclass(frozen=True)
class NewBars:
    """Validated bars of a freeze, sorted by (symbol, date), with the keys validation built for
    them. Kept in Arrow: a first freeze's millions of rows never become pandas; the freeze asks
    only for what it needs (their symbols, each symbol's first date, the rows around events)."""

    table: pa.Table  # schema.BARS_ARROW_SCHEMA (symbols may be dictionary-encoded)
    keys: validation.BarKeys | None  # None for no rows

    @classmethod
    def validated(cls, bars: pd.DataFrame | pa.Table, as_of: dt.date | None = None) -> "NewBars":
        """Check `bars` (`validation.validate_bars_table`: raises for the first bad record)."""
        return cls(*validation.validate_bars_table(schema.bars_table(bars), as_of))

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def empty(self) -> bool:
        return self.table.num_rows == 0

    @cached_property
    def symbols(self) -> set[str]:
        if self.keys is None:
            return set()
        present = np.bincount(self.keys.codes, minlength=len(self.keys.symbols)) > 0
        return set(self.keys.symbols[present].tolist())

    @cached_property
    def first_dates(self) -> pd.Series:
        """The date of each symbol's first bar here (index: symbol)."""
        if self.keys is None:
            return pd.Series([], dtype="datetime64[ns]")
        codes = self.keys.codes
        starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
        days = validation.key_days(self.keys.keys[starts])
        return pd.Series(days.astype("datetime64[D]").astype("datetime64[ns]"), index=self.keys.symbols[codes[starts]])

    @cached_property
    def date_range(self) -> tuple[dt.date, dt.date]:
        dates = self.table.column("date")
        return pc.min(dates).as_py(), pc.max(dates).as_py()

    @cached_property
    def frame(self) -> pd.DataFrame:
        """All the rows as pandas (`schema.BAR_COLUMNS`)."""
        return schema.normalize_bars(self.table.to_pandas())

    def rows_around(self, sessions: pd.DataFrame) -> pd.DataFrame:
        """For each event (`sessions`: symbol, event_date), its symbol's last bar here before the
        session and first bar on or after it: symbol, date, close (found by the keys)."""
        if self.keys is None:
            return schema.empty_bars()[["symbol", "date", "close"]]
        rows = self.table.select(["symbol", "date", "close"]).take(pa.array(positions_around(self.keys, sessions)))
        return close_frame(rows)

    def subset(self, keep: np.ndarray) -> "NewBars":
        """The rows where `keep` is True (still sorted)."""
        if bool(keep.all()):
            return self
        keys = self.keys
        return NewBars(self.table.filter(pa.array(keep)),
                       validation.BarKeys(keys.symbols, keys.codes[keep], keys.keys[keep], True) if keep.any() else None)


def find_new_rows(root: Path, previous: Manifest | None, bars: NewBars) -> NewBars:
    """The bars not stored yet. A stored bar re-delivered with other values raises
    `RawRestatementError` naming it: raw bars are immutable, and a silent restatement would
    change history under every model."""
    if previous is None or bars.empty:
        return bars
    lo, hi = bars.date_range
    files = [
        str(root / e.path)
        for e in previous.files_with_role("raw_bars")
        if e.min_date and e.max_date and e.min_date <= str(hi) and e.max_date >= str(lo)
    ]
    if not files:
        return bars
    with duck.cursor() as con:
        stored = frame_of_query(
            con,
            "SELECT o.symbol, o.date::TIMESTAMP_NS AS date, o.open, o.high, o.low, o.close, o.volume "
            "FROM read_parquet($files, hive_partitioning = false) o WHERE o.date BETWEEN $lo AND $hi "
            "AND o.symbol IN (SELECT unnest($symbols))",
            {"files": files, "lo": lo, "hi": hi, "symbols": sorted(bars.symbols)},
        )
    if stored.empty:
        return bars
    stored["date"] = stored["date"].astype("datetime64[ns]")
    merged = bars.frame.merge(stored, on=["symbol", "date"], how="left", suffixes=("", "_stored"), indicator=True)
    known = (merged["_merge"] == "both").to_numpy()
    for column in VALUE_COLUMNS:
        differs = known & (merged[column].to_numpy() != merged[f"{column}_stored"].to_numpy())
        if differs.any():
            row = merged.loc[differs].sort_values(["symbol", "date"]).iloc[0]
            raise RawRestatementError(
                "bar",
                f"{row['symbol']} {row['date'].date()}",
                column,
                f"differs from the stored raw bar ({row[f'{column}_stored']!r}); raw bars are immutable",
                row[column],
            )
    return bars.subset(~known)


@dataclass(frozen=True)
class YearSplit:
    """New rows by raw partition: with `history_through`, the rows of every year up to it as one
    history partition (in their (symbol, date) order), and each later year as its own partition;
    without it, each year as its own. `row_years`: each row's year."""

    table: pa.Table
    row_years: np.ndarray
    years: list[int]
    history_through: int | None = None

    @classmethod
    def of(cls, new_rows: NewBars, history_through: int | None = None) -> "YearSplit":
        table = new_rows.table
        row_years = calendar_years(table.column("date").cast(pa.int32()).to_numpy())
        first = int(row_years.min())  # the years present, counted (not a set of millions of Python ints)
        return cls(table, row_years, (np.flatnonzero(np.bincount(row_years - first)) + first).tolist(), history_through)

    @property
    def partitions(self) -> list[str]:
        """The partitions of the rows, the history first."""
        through = self.history_through
        if through is None:
            return [year_partition(year) for year in self.years]
        history = [history_partition(through)] if self.years[0] <= through else []
        return history + [year_partition(year) for year in self.years if year > through]

    def partition_tables(self) -> list[tuple[str, pa.Table]]:
        """Every partition's rows, in order, symbols as plain strings."""
        through = self.history_through
        if through is None or self.years[0] > through:
            return [(year_partition(year), table) for year, table in self._year_tables()]
        if self.years[-1] <= through:
            return [(history_partition(through), plain_symbols(self.table.combine_chunks()))]
        later = self.row_years > through
        rest = YearSplit(self.table.filter(pa.array(later)), self.row_years[later], [y for y in self.years if y > through])
        return [(history_partition(through), self.partition_table(history_partition(through)))] + rest.partition_tables()

    def _year_tables(self) -> list[tuple[int, pa.Table]]:
        """Every year's rows, in order (from one take of all rows)."""
        if len(self.years) == 1:
            return [(self.years[0], plain_symbols(self.table.combine_chunks()))]
        order = np.argsort(self.row_years, kind="stable")
        ordered = plain_symbols(self.table.take(pa.array(order)).combine_chunks())
        counts = np.bincount(self.row_years - self.years[0])[np.array(self.years) - self.years[0]]
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        return [(year, ordered.slice(int(start), int(count))) for year, start, count in zip(self.years, starts, counts)]

    def partition_table(self, partition: str) -> pa.Table:
        """The rows of `partition`, in order, symbols as plain strings: its new raw file."""
        if is_history(partition):
            return self._rows_where(lambda years: years <= self.history_through)
        year = int(partition.removeprefix("year="))
        return self._rows_where(lambda years: years == year)

    def _rows_where(self, wanted: Callable[[np.ndarray], np.ndarray]) -> pa.Table:
        pieces, start = [], 0
        for batch in self.table.to_batches():  # a take per batch: on the chunked table it is slower
            rows = np.flatnonzero(wanted(self.row_years[start:start + batch.num_rows]))
            start += batch.num_rows
            if len(rows):
                pieces.append(batch.take(pa.array(rows)))
        return plain_symbols(pa.Table.from_batches(pieces, schema=self.table.schema).combine_chunks())


def years_to_merge(stored: list[FileEntry], added: list[FileEntry]) -> dict[int, list[FileEntry]]:
    """For each year that gained a file and now has more than RAW_FILES_PER_YEAR, the files to
    merge into one: all of that year's but the largest. The merged files stay as long as an
    older version lists them (retention removes them)."""
    by_year: dict[int, list[FileEntry]] = {}
    for entry in stored + added:
        if (year := year_of(entry)) is not None:  # the history is merged by compactions only
            by_year.setdefault(year, []).append(entry)
    grown = {year_of(entry) for entry in added}
    merges = {}
    for year, files in sorted(by_year.items()):
        if year in grown and len(files) > RAW_FILES_PER_YEAR:
            largest = max(files, key=lambda e: (e.rows, e.path))
            merges[year] = [e for e in files if e is not largest]
    return merges


def merged_year(tables: list[pa.Table]) -> pa.Table:
    """Raw tables of one year as one, sorted by symbol and date (symbols as plain strings)."""
    table = pa.concat_tables([plain_symbols(t) for t in tables])
    return table.take(pc.sort_indices(table, sort_keys=[("symbol", "ascending"), ("date", "ascending")]))


def plain_symbols(table: pa.Table) -> pa.Table:
    """A raw bars table with its symbols as plain strings."""
    return table.set_column(0, pa.field("symbol", pa.string()), table.column("symbol").cast(pa.string()))


def calendar_years(days: np.ndarray) -> np.ndarray:
    """The calendar year (int16) of each day number (days since 1970-01-01)."""
    first = int(days.min())
    lut = np.arange(first, int(days.max()) + 1).astype("datetime64[D]").astype("datetime64[Y]").astype(np.int16) + 1970
    return lut[days - first]


class NewRows(Protocol):
    """What a freeze asks of its new bars: `NewBars` (held whole) or `stream.StreamedBars` (a summary of
    bars written as they streamed)."""

    @property
    def empty(self) -> bool: ...

    @property
    def symbols(self) -> set[str]: ...

    @property
    def first_dates(self) -> pd.Series: ...

    def __len__(self) -> int: ...

    def rows_around(self, sessions: pd.DataFrame) -> pd.DataFrame: ...
