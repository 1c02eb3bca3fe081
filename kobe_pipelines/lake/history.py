"""The raw files' partitions: the history files of the closed years, a file per year after them,
and compacting the closed years into new history files.

A raw file is either a year file (`year=YYYY` folder: bars of that calendar year) or a history
file (`through=YYYY` folder: bars of every year up to and including YYYY, the closed years when
it was written), each sorted by (symbol, date). A year is closed once the lake's as-of date is in
a later year: a first freeze writes all its closed years' bars as the history, row groups of
whole symbols (`file_store.HISTORY_ROW_GROUP_ROWS`) dealt in turn into `file_store.HISTORY_FILES`
files, each encoded by its own thread (`HistoryWriter`), so that one symbol's history is one or
two row groups of one file instead of a row group in each of ten year files. The files are the
same, byte for byte, whatever batches the bars come in.

Bars that a refreeze adds to a closed year (a late bar, a symbol's backfilled history) go into a
small file of that year beside the history. A compaction merges the history files and every
year file of the closed years into a new history: the first refreeze after a year closes runs
it, and `Lake.compact` on demand. The merge reads a range of symbols at a time from each file
(the row groups holding it), so that its memory is set by the range, not by the history.
"""

from __future__ import annotations

import bisect
import datetime as dt
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kobe_pipelines import market_calendar
from kobe_pipelines.lake import file_store
from kobe_pipelines.lake.file_store import ContentStore, ContentWriter, RowGroups, history_partition, is_history, written
from kobe_pipelines.lake.manifest import FileEntry
from kobe_pipelines.lake.symbol_reads import FileIndex, file_index, plain_symbol_schema, unreadable

# Rows a compaction reads at a time (a range of symbols from every file, plus the row groups
# that straddle its ends): its memory is set by this, not by the history.
MERGE_RANGE_ROWS = 2_000_000


def closed_through(as_of: dt.date | None) -> int:
    """The last closed year for a freeze as of `as_of` (None: the last completed XNYS session)."""
    day = as_of if as_of is not None else market_calendar.last_completed_session().date()
    return day.year - 1


def partition_of(entry: FileEntry) -> str:
    """The partition folder of a raw file (`year=YYYY` or `through=YYYY`)."""
    return entry.path.split("/")[2]


def history_through(entry: FileEntry) -> int | None:
    """The last year a history file holds; None for a year file."""
    partition = partition_of(entry)
    return int(partition.removeprefix("through=")) if is_history(partition) else None


def year_of(entry: FileEntry) -> int | None:
    """The calendar year of a year file; None for a history file."""
    partition = partition_of(entry)
    return int(partition.removeprefix("year=")) if partition.startswith("year=") else None


def to_compact(raw: Sequence[FileEntry], through: int, forced: bool = False) -> tuple[list[FileEntry], int]:
    """What a compaction of the closed years up to `through` merges into a new history, and
    the last year it holds: the history files and the year files up to the later of
    `through` and the newest history file's last year (nothing when there is nothing to do).
    Unless `forced`, a compaction is due only once a year closed after the newest history file's
    last year (year files of years the history already covers wait for that); forced, whenever
    there is a year file to fold in or history files of more than one partition to merge."""
    histories = [e for e in raw if history_through(e) is not None]
    newest = max((history_through(e) for e in histories), default=None)
    last = through if newest is None else max(through, newest)
    closed = [e for e in raw if (year := year_of(e)) is not None and year <= last]
    if not closed and len({partition_of(e) for e in histories}) <= 1:
        return [], last
    if not forced and newest is not None and newest >= through:
        return [], last
    return histories + closed, last


class HistoryWriter:
    """The history of the closed years up to `through`, written a table at a time (rows in
    (symbol, date) order): the rows cut into row groups of whole symbols (`RowGroups`), dealt in
    turn to `file_store.HISTORY_FILES` files, each written by its own thread. Group k goes to
    file k mod HISTORY_FILES, counting only groups that start a symbol: the groups of a symbol
    too large for one follow it into the same file, so that no symbol lies in two files. A group
    is handed to a file's thread once the file's previous group is written, so at most one group
    per file is in flight. Only files dealt a group are written (one file when the history is one
    group; no rows at all: one file of no rows). `close` returns the files' entries in dealing
    order; `abort` removes what was written."""

    def __init__(self, store: ContentStore, schema: pa.Schema, through: int):
        self.store = store
        self.schema = schema
        self.partition = history_partition(through)
        self.groups = RowGroups(file_store.HISTORY_ROW_GROUP_ROWS, whole_symbols=True)
        self.files: list[ContentWriter] = []
        self._encoders: list[ThreadPoolExecutor] = []
        self._last: list[tuple[Future, int]] = []  # per file: its last group handed to its thread, and its rows
        self._turns = 0  # groups dealt that start a symbol
        self._at = 0  # the file of the last group dealt
        self._last_symbol: str | None = None  # the symbol of the last row dealt

    @property
    def rows_held(self) -> int:
        """Rows kept for the next row group, and those of each file's last group (which may still
        be being written): at most HISTORY_FILES + 1 groups' worth."""
        return self.groups.rows_held + sum(rows for _, rows in self._last)

    def write(self, table: pa.Table) -> None:
        for group in self.groups.add(table):
            self._deal(group)

    def _deal(self, group: pa.Table) -> None:
        symbols = group.column("symbol")
        if symbols[0].as_py() != self._last_symbol:  # else the group goes on with the last symbol
            self._at = self._turns % file_store.HISTORY_FILES
            self._turns += 1
        self._last_symbol = symbols[-1].as_py()
        at = self._at
        if at == len(self.files):
            self._open()
        else:
            self._last[at][0].result()  # raises what the file's thread met
        self._last[at] = (self._encoders[at].submit(self.files[at].write_group, group), group.num_rows)

    def _open(self) -> None:
        self.files.append(self.store.writer(self.schema, "raw_bars", self.partition))
        self._encoders.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="kobe-lake-history"))
        self._last.append((Future(), 0))
        self._last[-1][0].set_result(None)

    def close(self) -> list[FileEntry]:
        """Write the last group, close every file (each by its own thread) and return their entries."""
        try:
            rest = self.groups.rest()
            if rest is not None:
                self._deal(rest)
            elif not self.files:
                self._open()
            for last, _ in self._last:
                last.result()
            closing = [encoder.submit(file.close) for file, encoder in zip(self.files, self._encoders)]
            wait(closing)
            entries = [future.result() for future in closing]
        except BaseException:
            self.abort()
            raise
        self._shutdown()
        return entries

    def abort(self) -> None:
        wait([last for last, _ in self._last])
        for file in self.files:
            file.abort()
        self._shutdown()

    def _shutdown(self) -> None:
        for encoder in self._encoders:
            encoder.shutdown(wait=True)
        self._last = [(future, 0) for future, _ in self._last]


def write_history(store: ContentStore, table: pa.Table, through: int) -> list[FileEntry]:
    """`table` (raw bars of the closed years up to `through`, sorted by (symbol, date), symbols
    as plain strings) written as the history files (`HistoryWriter`)."""
    return written(HistoryWriter(store, table.schema, through), table)


@dataclass
class MergeCount:
    """What a compaction held: the most rows read at once (the bound a test checks)."""

    most_rows_held: int = 0
    ranges: int = 0


def merge_history(root: Path, files: ContentStore, entries: Sequence[FileEntry], through: int,
                  range_rows: int = MERGE_RANGE_ROWS, count: MergeCount | None = None) -> list[FileEntry]:
    """`entries` (raw files, each sorted by (symbol, date), no bar in two of them) merged into
    the history files up to `through` (`HistoryWriter`), a range of about `range_rows` rows of
    symbols at a time."""
    indexes = []
    for entry in entries:
        try:
            indexes.append(file_index(root / entry.path))
        except (OSError, pa.ArrowException) as exc:
            raise unreadable(entry, exc) from exc
    schema = pq.read_schema(root / entries[0].path)
    writer = HistoryWriter(files, plain_symbol_schema(schema), through)
    try:
        low: str | None = None  # the range is (low, high]
        for high in _range_ends(indexes, range_rows):
            pieces, held = [], 0
            for entry, index in zip(entries, indexes):
                groups = _groups_between(index, low, high)
                if not groups:
                    continue
                rows = _read_groups(root, entry, index, groups)
                held += rows.num_rows
                symbols = rows.column("symbol")
                keep = pc.less_equal(symbols, high) if high is not None else None
                if low is not None:
                    keep = pc.greater(symbols, low) if keep is None else pc.and_(keep, pc.greater(symbols, low))
                pieces.append(rows.filter(keep) if keep is not None else rows)
            if count is not None:
                count.most_rows_held = max(count.most_rows_held, held + writer.rows_held)
                count.ranges += 1
            if pieces:
                merged = pa.concat_tables(pieces)
                writer.write(merged.take(pc.sort_indices(merged, sort_keys=[("symbol", "ascending"), ("date", "ascending")])))
            low = high
            if high is None:
                break
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def _range_ends(indexes: list[FileIndex], range_rows: int) -> list[str | None]:
    """The greatest symbol of each range, in order, the last one None (every symbol after):
    ranges of about `range_rows` rows, cut where some file's row group ends."""
    ends = sorted((high, index.metadata.row_group(group).num_rows)
                  for index in indexes for group, high in enumerate(index.highs) if high is not None)
    out: list[str | None] = []
    rows = 0
    for high, group_rows in ends:
        rows += group_rows
        if rows >= range_rows and (not out or high != out[-1]):
            out.append(high)
            rows = 0
    return out + [None]


def _groups_between(index: FileIndex, low: str | None, high: str | None) -> list[int]:
    """The row groups of `index` that may hold a symbol in (low, high] (high None: no bound)."""
    if index.sorted_ranges:
        first = bisect.bisect_right(index.highs, low) if low is not None else 0
        last = bisect.bisect_right(index.lows, high) if high is not None else index.num_row_groups
        return [group for group in range(first, last) if index.metadata.row_group(group).num_rows > 0]
    return [group for group, (lo, hi) in enumerate(zip(index.lows, index.highs))
            if index.metadata.row_group(group).num_rows > 0
            and (lo is None or high is None or lo <= high) and (hi is None or low is None or hi > low)]


def _read_groups(root: Path, entry: FileEntry, index: FileIndex, groups: list[int]) -> pa.Table:
    try:
        rows = pq.ParquetFile(root / entry.path, metadata=index.metadata,
                              page_checksum_verification=True).read_row_groups(groups, use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(entry, exc) from exc
    at = rows.schema.get_field_index("symbol")
    return rows.set_column(at, pa.field("symbol", pa.string()), rows.column(at).cast(pa.string()))
