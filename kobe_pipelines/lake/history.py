"""The raw files' partitions: one history file for the closed years, a file per year after them,
and compacting the closed years into the history file.

A raw file is either a year file (`year=YYYY` folder: bars of that calendar year) or the history
file (`through=YYYY` folder: bars of every year up to and including YYYY, the closed years when
it was written), both sorted by (symbol, date). A year is closed once the lake's as-of date is
in a later year: a first freeze writes all its closed years' bars into one history file, whose
row groups hold whole symbols (`file_store.HISTORY_ROW_GROUP_ROWS`), so that one symbol's history
is one or two row groups of one file instead of a row group in each of ten year files.

Bars that a refreeze adds to a closed year (a late bar, a symbol's backfilled history) go into a
small file of that year beside the history file. A compaction merges the history file and every
year file of the closed years into a new history file: the first refreeze after a year closes
runs it, and `Lake.compact` on demand. The merge reads a range of symbols at a time from each
file (the row groups holding it), so that its memory is set by the range, not by the history.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kobe_pipelines import market_calendar
from kobe_pipelines.lake.file_store import ContentStore, history_partition, is_history
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
    """The calendar year of a year file; None for the history file."""
    partition = partition_of(entry)
    return int(partition.removeprefix("year=")) if partition.startswith("year=") else None


def to_compact(raw: Sequence[FileEntry], through: int, forced: bool = False) -> tuple[list[FileEntry], int]:
    """What a compaction of the closed years up to `through` merges into one history file, and
    the last year that file holds: the history files and the year files up to the later of
    `through` and the newest history file's last year (nothing when there is nothing to do).
    Unless `forced`, a compaction is due only once a year closed after the newest history file's
    last year (year files of years the history file already covers wait for that); forced,
    whenever there is more than one file to merge or a year file to fold in."""
    histories = [e for e in raw if history_through(e) is not None]
    newest = max((history_through(e) for e in histories), default=None)
    last = through if newest is None else max(through, newest)
    closed = [e for e in raw if (year := year_of(e)) is not None and year <= last]
    if not closed and len(histories) <= 1:
        return [], last
    if not forced and newest is not None and newest >= through:
        return [], last
    return histories + closed, last


@dataclass
class MergeCount:
    """What a compaction held: the most rows read at once (the bound a test checks)."""

    most_rows_held: int = 0
    ranges: int = 0


def merge_history(root: Path, files: ContentStore, entries: Sequence[FileEntry], through: int,
                  range_rows: int = MERGE_RANGE_ROWS, count: MergeCount | None = None) -> FileEntry:
    """`entries` (raw files, each sorted by (symbol, date), no bar in two of them) merged into one
    history file up to `through`, a range of about `range_rows` rows of symbols at a time."""
    indexes = []
    for entry in entries:
        try:
            indexes.append(file_index(root / entry.path))
        except (OSError, pa.ArrowException) as exc:
            raise unreadable(entry, exc) from exc
    schema = pq.read_schema(root / entries[0].path)
    writer = files.writer(plain_symbol_schema(schema), "raw_bars", history_partition(through))
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
