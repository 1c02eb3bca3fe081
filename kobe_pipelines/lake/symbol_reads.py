"""Reads of a few symbols' rows that open only the row groups holding them.

Lake files (raw bars, factors) are sorted by symbol, so the symbol statistics in a file's footer
say which row groups may hold a symbol. A DuckDB scan of a version weighs every row group's
statistics of every file again on each query (a year of 50,000 symbols has hundreds of groups);
here each file's footer is parsed once per process and kept with its row groups' symbol ranges,
keyed by the file's path, inode, size and modification time (lake files are content-addressed and
never rewritten in place; a file a repair replaces is a new key). The footer is handed back to
pyarrow, so a read parses it no more. A row group without symbol statistics may hold any symbol.

`SymbolPlan.pays` is the rule that picks this read over a DuckDB scan of the files, counted in row
groups: pyarrow decodes each row group it reads whole, which costs about as much as
SCAN_VISITS_PER_READ row groups visited by a DuckDB scan (a scan weighs each group's statistics
and decodes only the vectors holding the symbols); opening a DuckDB session and sorting its rows
costs about as much as reading SESSION_GROUPS row groups. So the pruned read is taken when

    groups read <= SESSION_GROUPS + groups a scan visits / SCAN_VISITS_PER_READ

(a few symbols of a lake of many: yes; hundreds of symbols spread over every row group: no).
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kobe_pipelines.lake.errors import LakeCorruptionError
from kobe_pipelines.lake.manifest import FileEntry

# A pruned read of one row group costs about as much as a DuckDB scan's visits of this many row
# groups, and a DuckDB session about as much as this many pruned reads (see `SymbolPlan.pays`).
SCAN_VISITS_PER_READ = 50
SESSION_GROUPS = 16
READ_THREADS = 3  # row groups decoded at once (pyarrow releases the GIL while it decodes; reads wait on the disk too)
CACHED_FILES = 32  # footers kept per process (a 50,000-symbol year file's: about a megabyte in memory)


@dataclass(frozen=True)
class FileIndex:
    """A file's parsed footer and each row group's least and greatest symbol (None: unknown)."""

    metadata: pq.FileMetaData
    lows: tuple[str | None, ...]
    highs: tuple[str | None, ...]
    sorted_ranges: bool  # every range known and both bounds non-decreasing (a file sorted by symbol)

    @classmethod
    def of(cls, metadata: pq.FileMetaData) -> "FileIndex":
        column = metadata.schema.to_arrow_schema().get_field_index("symbol")
        lows, highs = [], []
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(column).statistics if column >= 0 else None
            known = stats is not None and stats.has_min_max
            lows.append(stats.min if known else None)
            highs.append(stats.max if known else None)
        known = all(value is not None for value in lows + highs)
        ordered = known and all(a <= b for a, b in zip(lows, lows[1:])) and all(a <= b for a, b in zip(highs, highs[1:]))
        return cls(metadata, tuple(lows), tuple(highs), ordered)

    @property
    def num_row_groups(self) -> int:
        return self.metadata.num_row_groups

    def groups_holding(self, wanted: Sequence[str]) -> list[int]:
        """The row groups that may hold a symbol of `wanted` (sorted, no repeats), empty ones left out."""
        if self.sorted_ranges:
            groups: set[int] = set()
            for symbol in wanted:  # the groups whose range holds it form one run
                groups.update(range(bisect.bisect_left(self.highs, symbol), bisect.bisect_right(self.lows, symbol)))
        else:
            groups = {group for group, (low, high) in enumerate(zip(self.lows, self.highs))
                      if low is None or high is None or _any_between(wanted, low, high)}
        return [group for group in sorted(groups) if self.metadata.row_group(group).num_rows > 0]


def _any_between(wanted: Sequence[str], low: str, high: str) -> bool:
    at = bisect.bisect_left(wanted, low)
    return at < len(wanted) and wanted[at] <= high


_cache: OrderedDict[tuple[str, int, int, int], FileIndex] = OrderedDict()
_cache_lock = threading.Lock()


def file_index(path: Path) -> FileIndex:
    """The index of the Parquet file at `path` (from the process's cache while the file is unchanged)."""
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    index = FileIndex.of(pq.read_metadata(path))
    with _cache_lock:
        _cache[key] = index
        while len(_cache) > CACHED_FILES:
            _cache.popitem(last=False)
    return index


@dataclass(frozen=True)
class FileGroups:
    """One file of a plan and the row groups of it to read."""

    entry: FileEntry
    index: FileIndex
    groups: list[int]  # the row groups that may hold a wanted symbol


@dataclass(frozen=True)
class SymbolPlan:
    """Which row groups of which files a read of `symbols` opens."""

    root: Path
    symbols: tuple[str, ...]  # sorted, no repeats
    files: list[FileGroups]

    @property
    def groups_read(self) -> int:
        return sum(len(part.groups) for part in self.files)

    @property
    def groups_visited(self) -> int:
        """The row groups a DuckDB scan of the same files visits."""
        return sum(part.index.num_row_groups for part in self.files)

    @property
    def pays(self) -> bool:
        """Whether reading only the planned row groups beats a DuckDB scan of the files (see the module docstring)."""
        return self.groups_read <= SESSION_GROUPS + self.groups_visited / SCAN_VISITS_PER_READ

    def read(self, *roles: str) -> list[pa.Table | None]:
        """For each of `roles`, the rows of the symbols in the planned files of that role, in file
        order then row order: None when the plan has no such file, a table of the first such
        file's schema and no rows when none holds a symbol. Symbols come back as plain strings;
        every page read is checked against its CRC32. The row groups of all roles are decoded
        READ_THREADS at a time. Raises `LakeCorruptionError` naming a file that cannot be read."""
        wanted = pa.array(self.symbols, pa.string())
        jobs = [(part, group) for part in self.files for group in part.groups]
        if len(jobs) > 1:
            rows = list(_pool().map(lambda job: _rows_of(self.root, *job, wanted), jobs))
        else:
            rows = [_rows_of(self.root, part, group, wanted) for part, group in jobs]
        out = []
        for role in roles:
            files = [part for part in self.files if part.entry.role == role]
            parts = [table for (part, _), table in zip(jobs, rows) if part.entry.role == role]
            if not files:
                out.append(None)
            else:
                out.append(pa.concat_tables(parts) if parts else
                           plain_symbol_schema(files[0].index.metadata.schema.to_arrow_schema()).empty_table())
        return out


_pools: dict[int, ThreadPoolExecutor] = {}  # by process id: a forked child starts its own


def _pool() -> ThreadPoolExecutor:
    pid = os.getpid()
    with _cache_lock:
        if pid not in _pools:
            _pools[pid] = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="kobe-lake-read")
        return _pools[pid]


def plan(root: Path, entries: Sequence[FileEntry], symbols: Sequence[str]) -> SymbolPlan:
    """The row groups of `entries` (files of the lake at `root`) that may hold one of `symbols`."""
    wanted = tuple(sorted(set(symbols)))
    files = []
    for entry in entries:
        path = root / entry.path
        try:
            index = file_index(path)
        except (OSError, pa.ArrowException) as exc:
            raise unreadable(entry, exc) from exc
        files.append(FileGroups(entry, index, index.groups_holding(wanted)))
    return SymbolPlan(root, wanted, files)


def _rows_of(root: Path, part: FileGroups, group: int, wanted: pa.Array) -> pa.Table:
    """The rows of row group `group` of `part`'s file whose symbol is in `wanted` (symbols as plain strings)."""
    try:
        # symbols read as a dictionary: one comparison per distinct symbol, not one per row
        file = pq.ParquetFile(root / part.entry.path, metadata=part.index.metadata, page_checksum_verification=True,
                              read_dictionary=["symbol"])
        rows = file.read_row_group(group, use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(part.entry, exc) from exc
    symbols = rows.column("symbol").combine_chunks()
    wanted_here = pc.is_in(symbols.dictionary, value_set=wanted.cast(symbols.dictionary.type))
    rows = rows.filter(pc.take(wanted_here, symbols.indices))
    at = rows.schema.get_field_index("symbol")
    return rows.set_column(at, rows.schema.field(at).with_type(pa.string()), rows.column(at).cast(pa.string()))


def plain_symbol_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with its symbol column as plain strings."""
    at = schema.get_field_index("symbol")
    return schema.set(at, schema.field(at).with_type(pa.string()))


def unreadable(entry: FileEntry, exc: BaseException) -> LakeCorruptionError:
    """The error naming a lake file that pyarrow could not read."""
    return LakeCorruptionError(entry.path, f"cannot be read ({' '.join(str(exc).split())}); run `kobe lake verify`")
