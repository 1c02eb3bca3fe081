"""A first freeze streamed a batch at a time: its bars validated, written into the raw files (the
history files of the closed years, a file per later year) and summarized for the factors, so
that its memory is set by the batch, not by the history, with the same files -- byte for byte --
and the same content hash as a freeze holding every bar at once (`publish.write_new_rows`).
Bars out of (symbol, date) order are sorted first, by a DuckDB that spills to disk."""

from __future__ import annotations

import datetime as dt
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kobe_pipelines.data import adjustments, schema, validation
from kobe_pipelines.lake.arrow_keys import rows_around, rows_found_in
from kobe_pipelines.lake.file_store import ContentStore, ContentWriter, is_history
from kobe_pipelines.lake.history import HistoryWriter
from kobe_pipelines.lake.manifest import FileEntry
from kobe_pipelines.lake.raw_bars import NewBars, YearSplit

log = logging.getLogger(__name__)

# Rows a streamed freeze validates and writes at a time: with the year files' row groups it
# holds, its memory is set by this, not by the history.
DEFAULT_BATCH_ROWS = 1 << 20


class BarsOutOfOrder(Exception):
    """The streamed bars are not in (symbol, date) order: they must be sorted first."""


@dataclass(frozen=True)
class StreamedBars:
    """What a streamed freeze keeps of its bars once they are written: their count, symbols,
    each symbol's first date, and the bars around the events it was told of (`sessions`)."""

    rows: int
    symbols: set[str]
    first_dates: pd.Series
    sessions: pd.DataFrame  # symbol, event_date: the events whose surrounding bars were kept
    around: pd.DataFrame  # symbol, date, close: for each event, its nearest bars in every batch

    def __len__(self) -> int:
        return self.rows

    @property
    def empty(self) -> bool:
        return self.rows == 0

    def rows_around(self, sessions: pd.DataFrame) -> pd.DataFrame:
        """For each event of `sessions` (among those streamed past), its symbol's last bar before
        the session and first bar on or after it: the nearest of every batch's nearest."""
        missing = ~rows_found_in(sessions, self.sessions, ["symbol", "event_date"])
        if missing.any():
            raise ValueError(f"{int(missing.sum())} event(s) were not among those the streamed bars were searched for")
        return rows_around(self.around, sessions)


def event_sessions(splits: pd.DataFrame, dividends: pd.DataFrame) -> pd.DataFrame:
    """symbol, event_date: the effective session of every split and dividend (each once)."""
    splits, dividends = schema.normalize_splits(splits), schema.normalize_dividends(dividends)
    return pd.DataFrame({
        "symbol": pd.concat([splits["symbol"], dividends["symbol"]], ignore_index=True).astype(str),
        "event_date": adjustments.effective_sessions(
            pd.concat([splits["execution_date"], dividends["ex_dividend_date"]], ignore_index=True)),
    }).drop_duplicates(ignore_index=True)


class YearFiles:
    """The raw files of a first freeze written as its bars stream past in (symbol, date) order:
    the history files of the years up to `history_through` (`HistoryWriter`) and one file per
    later year, each filled batch after batch (a partition's rows arrive in its own order), with
    the same bytes as a freeze holding every bar at once.

    `take` validates a batch (every check of `validation`, and that it follows the one before)
    and returns its rows by partition; `write` appends them (it may run in another thread, one
    batch at a time); `check` raises the first bad bar of all the batches; then the files are
    closed (`closers`) and `summary` tells the freeze what it needs of the bars."""

    def __init__(self, files: ContentStore, sessions: pd.DataFrame, as_of: dt.date | None, history_through: int):
        self.files = files
        self.sessions = sessions.sort_values(["symbol", "event_date"], ignore_index=True)
        self.session_symbols = self.sessions["symbol"].to_numpy(dtype=object)
        self.as_of = as_of
        self.history_through = history_through
        self.writers: dict[str, ContentWriter | HistoryWriter] = {}
        self.rows = 0
        self.symbols: set[str] = set()
        self.first_dates: list[pd.Series] = []
        self.around: list[pd.DataFrame] = []
        self.errors: list[validation.BarValidationError] = []
        self.last_key: tuple[str, int] | None = None
        self.batch_rows_held = 0  # the largest batch taken, in rows

    def take(self, batch: pa.Table) -> list[tuple[str, pa.Table]]:
        """Validate `batch` and return its rows by raw partition, in order (nothing once some
        batch failed: the freeze will fail, the rest is only counted)."""
        self.rows += batch.num_rows
        self.batch_rows_held = max(self.batch_rows_held, batch.num_rows)
        if batch.num_rows == 0:
            return []
        try:
            bars = NewBars.validated(batch, self.as_of)
        except validation.BarValidationError as error:
            self.errors.append(error)
            return []
        first = (str(bars.keys.symbols[bars.keys.codes[0]]), int(validation.key_days(bars.keys.keys[:1])[0]))
        if self.last_key is not None and first <= self.last_key:
            if first == self.last_key:  # the same (symbol, date) ends one batch and starts the next
                symbol, day = first
                date = pd.Timestamp(np.datetime64(day, "D"))
                self.errors.append(validation.BarValidationError(
                    validation.record_name(symbol, date), "date", "duplicates another bar of the same (symbol, date)",
                    date, count=2, total=2, symbol=symbol, date=date))
                return []
            raise BarsOutOfOrder(f"{first[0]} follows {self.last_key[0]}")
        last = len(bars) - 1
        self.last_key = (str(bars.keys.symbols[bars.keys.codes[last]]), int(validation.key_days(bars.keys.keys[last:])[0]))
        if self.errors:
            return []
        self.symbols |= bars.symbols
        self.first_dates.append(bars.first_dates)
        # the events of this batch's symbols: the batch holds a range of symbols, in order
        low = np.searchsorted(self.session_symbols, first[0], side="left")
        high = np.searchsorted(self.session_symbols, self.last_key[0], side="right")
        if high > low:
            self.around.append(bars.rows_around(self.sessions.iloc[low:high]))
        return YearSplit.of(bars, self.history_through).partition_tables()

    def write(self, pieces: list[tuple[str, pa.Table]]) -> None:
        for partition, rows in pieces:
            if partition not in self.writers:
                self.writers[partition] = (HistoryWriter(self.files, rows.schema, self.history_through) if is_history(partition)
                                           else self.files.writer(rows.schema, "raw_bars", partition))
            self.writers[partition].write(rows)

    @property
    def rows_held(self) -> int:
        """Rows held now for the files' next row groups (and the history's groups in flight)."""
        return sum(writer.rows_held for writer in self.writers.values())

    def check(self) -> None:
        """Raise the first bad bar of all the batches taken (`BarValidationError`), if any."""
        if self.errors:
            raise validation.BarValidationError.first_of(self.errors, self.rows)

    def closers(self) -> list[Callable[[], list[FileEntry]]]:
        """For each raw partition (the history first, then the years in order), what closes its
        files and returns their entries, to be called once every batch is written."""
        return [self._closer(self.writers[partition]) for partition in sorted(self.writers, key=lambda p: (not is_history(p), p))]

    @staticmethod
    def _closer(writer: ContentWriter | HistoryWriter) -> Callable[[], list[FileEntry]]:
        if isinstance(writer, HistoryWriter):
            return writer.close
        return lambda: [writer.close()]

    def summary(self) -> StreamedBars:
        firsts = pd.concat(self.first_dates) if self.first_dates else pd.Series([], dtype="datetime64[ns]")
        firsts = firsts.groupby(level=0).min() if len(firsts) else firsts
        around = pd.concat(self.around, ignore_index=True) if self.around else schema.empty_bars()[["symbol", "date", "close"]]
        return StreamedBars(self.rows, self.symbols, firsts, self.sessions, around)

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()
        self.writers = {}


def batches_of(bars: pd.DataFrame | pa.Table | Iterable[pa.Table], rows: int) -> Iterable[pa.Table]:
    """Bars as batches of at most `rows` rows: a frame or a table sliced, batches as given. The
    result can be iterated again (to sort bars that came out of order)."""
    if isinstance(bars, pd.DataFrame):
        bars = schema.bars_table(bars)
    if isinstance(bars, pa.Table):
        return [bars.slice(start, rows) for start in range(0, bars.num_rows, rows)]
    return bars


def sorted_batches(batches: Iterable[pa.Table], folder: Path, rows: int) -> Iterator[pa.Table]:
    """`batches` in (symbol, date) order, `rows` at a time: written to a temporary Parquet file
    in `folder` (symbols trimmed as validation trims them), then read back sorted by a DuckDB of
    its own that sorts beyond `SORT_MEMORY`, spilling to `folder`. The file goes at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    spill = folder / f"unsorted-{os.getpid()}.parquet"
    try:
        writer = None
        for batch in batches:
            table = schema.bars_table(batch)
            table = table.set_column(0, pa.field("symbol", pa.string()), validation.trimmed_symbols(table.column("symbol")).cast(pa.string()))
            if writer is None:
                writer = pq.ParquetWriter(spill, table.schema, compression="lz4")
            writer.write_table(table)
        if writer is None:
            return
        writer.close()
        with duckdb.connect(config={"memory_limit": SORT_MEMORY, "temp_directory": str(folder)}) as con:
            reader = con.sql("SELECT symbol, date, open, high, low, close, volume FROM read_parquet($spill) ORDER BY symbol, date",
                             params={"spill": str(spill)}).fetch_record_batch(rows)
            for batch in reader:
                yield pa.Table.from_batches([batch])
    finally:
        spill.unlink(missing_ok=True)


SORT_MEMORY = "1GB"  # what DuckDB may hold while it sorts bars that came out of order


def stream_raw_files(root: Path, files: ContentStore, bars: pd.DataFrame | pa.Table | Iterable[pa.Table],
                     splits: pd.DataFrame, dividends: pd.DataFrame, as_of: dt.date | None, history_through: int,
                     batch_rows: int, pool: ThreadPoolExecutor) -> tuple[list[Future], StreamedBars]:
    """The raw files of a first freeze (the history files of the years up to `history_through`, a
    file per later year), its bars streamed `batch_rows` at a time (`YearFiles`), each batch
    written while the next is validated; the files being closed by `pool` (each future gives one
    partition's entries, the history first), and what the freeze needs of the bars.
    Bars out of (symbol, date) order are sorted first (`sorted_batches`); `bars` given
    as batches must then be iterable again. The closes around every action's session are kept
    for the factors."""
    sessions = event_sessions(splits, dividends)
    batches = batches_of(bars, batch_rows)
    try:
        return _stream(files, batches, sessions, as_of, history_through, pool)
    except BarsOutOfOrder as disorder:
        log.info("lake: the bars are not in (symbol, date) order (%s): sorting them first", disorder)
        return _stream(files, sorted_batches(batches, root / "staging" / ".sort", batch_rows), sessions, as_of,
                       history_through, pool)


def _stream(files: ContentStore, batches: Iterable[pa.Table], sessions: pd.DataFrame, as_of: dt.date | None,
            history_through: int, pool: ThreadPoolExecutor) -> tuple[list[Future], StreamedBars]:
    """Stream `batches` into raw files: the history by one thread (which deals its row groups to
    the history files' own threads), the later years by another (a file always by the same one,
    so its rows stay in order), one batch while the next is read and validated."""
    years = YearFiles(files, sessions, as_of, history_through)
    writers = {history: ThreadPoolExecutor(max_workers=1) for history in (True, False)}
    writing: list[Future] = []
    try:
        for batch in batches:
            pieces = years.take(batch)
            for future in writing:
                future.result()  # one batch written while the next is validated: two at most held
            writing = [writer.submit(years.write, [piece for piece in pieces if is_history(piece[0]) == history])
                       for history, writer in writers.items()]
        for future in writing:
            future.result()
        years.check()
    except BaseException:
        wait(writing)
        years.abort()
        raise
    finally:
        for writer in writers.values():
            writer.shutdown(wait=True)
    return [pool.submit(close) for close in years.closers()], years.summary()
