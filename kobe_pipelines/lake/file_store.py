"""The lake's content-addressed files: writing a table, its sha256, the hash cache, checks against
a manifest, reads that check page checksums, and removing files no version references.

A file's name is its sha256 (the first 24 hex digits), so a table written twice is stored once
and two versions share every file they have in common; a stored file is never changed. Where
each role's files live (under the lake root):

    raw/bars/through=YYYY/<sha>.parquet raw bars of every closed year up to YYYY (`raw_bars`: the history,
                                         HISTORY_FILES files of alternate row groups)
    raw/bars/year=YYYY/<sha>.parquet    raw bars (`raw_bars`) of one calendar year
    factors/<sha>.parquet                the factor table (`factors`)
    factors/adjustment_events-<sha>.parquet
    actions/<role>-<sha>.parquet         splits, dividends, action_provenance, actions_set_aside

Files are Parquet with LZ4 and a CRC32 on every page (Parquet page checksums).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, Sequence, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kobe_pipelines.fsutil import atomic_write_json, fsync_dir, sha256_file
from kobe_pipelines.lake.errors import LakeCorruptionError
from kobe_pipelines.lake.manifest import FileEntry

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 128 * 1024
# Raw bars are sorted by (symbol, date). A year file's row group of 32k rows holds about 140
# symbols' year: a read of a few symbols decodes only the row groups holding them (`symbol_reads`),
# each whole, and a DuckDB scan weighs every row group of every file it visits (a year of 50,000
# symbols: 360 groups); the size balances the two.
RAW_ROW_GROUP_ROWS = 32 * 1024
# The history (every closed year's bars, sorted by (symbol, date)) is cut into row groups of whole
# symbols, each at most this many rows (a symbol with more has groups of its own): one symbol's
# ten years are one row group, and a DuckDB scan of the history visits a few hundred groups where
# ten year files would make it visit thousands.
HISTORY_ROW_GROUP_ROWS = 120 * 1024
# The history is written as this many files of its partition, its row groups dealt in turn (the
# k-th group that starts a symbol, and the groups going on with that symbol, into file k mod
# HISTORY_FILES: `history.HistoryWriter`), each file encoded by a thread of its own: encoding the
# history is most of a full freeze's work, and one encoder per core keeps both cores of the
# machine the lake is sized for busy. Each file stays sorted by (symbol, date) and no symbol lies
# in two files; a history of one row group is one file.
HISTORY_FILES = 2
# Factors (sorted by symbol) in row groups of a few hundred symbols, for the same reason: a
# one-symbol read of the adjusted views scans one row group of the factor table, not all of it;
# smaller groups make the table larger and its write slower.
FACTOR_ROW_GROUP_ROWS = 8 * 1024
HASH_CACHE_NAME = ".hash_cache.json"
# A file whose ctime is this close to the moment it was hashed is not trusted by its stat later
# (see `ContentStore.remember`): far more than the file-time clock's tick (at most 10 ms).
RACY_NS = 50_000_000
# Files re-hashed at a time by `ContentStore.check_all` (one per core of the machine the lake is
# sized for; sha256 releases the GIL).
CHECK_THREADS = 2
DATA_FOLDERS = ("raw", "actions", "factors")


def year_partition(year: int) -> str:
    """The raw partition (folder) of one calendar year's bars."""
    return f"year={year}"


def history_partition(through: int) -> str:
    """The raw partition (folder) of the history files: every closed year up to `through`."""
    return f"through={through}"


def is_history(partition: str) -> bool:
    return partition.startswith("through=")


def folder_of(role: str, partition: str | None = None) -> tuple[str, str]:
    """(folder under the root, file name prefix) of a file of `role` (`partition`: a raw file's,
    `year=YYYY` or `through=YYYY`)."""
    if role == "raw_bars":
        return f"raw/bars/{partition}", ""
    if role == "factors":
        return "factors", ""
    return ("factors" if role == "adjustment_events" else "actions"), f"{role}-"


class ContentStore:
    """The content-addressed files under `root`, and the cache of their hashes.

    `write` may be called from several threads at once."""

    def __init__(self, root: Path):
        self.root = root
        # Files hashed before (verified or written) and their inode, size, mtime and ctime then,
        # kept in HASH_CACHE_NAME: `check(reuse=True)` re-hashes only files whose stat changed
        # since (git's index does the same). The ctime is in the key because no user can set
        # it: a file rewritten with its mtime restored still changes it.
        self._hashed: dict[str, tuple[str, int, int, int, int]] | None = None
        self._created: list[Path] = []  # files written since `forget_created`
        self._lock = threading.Lock()

    def path(self, entry: FileEntry) -> Path:
        return self.root / entry.path

    # ---- writing -----------------------------------------------------------------------------
    def write(self, table: pa.Table, role: str, partition: str | None = None) -> FileEntry:
        """Store `table` as a file of `role` and return its entry (an identical file already
        stored is kept, and the table not written twice)."""
        return written(self.writer(table.schema, role, partition), table)

    def writer(self, schema: pa.Schema, role: str, partition: str | None = None) -> "ContentWriter":
        """A file of `role` written a table at a time (`ContentWriter`): the same bytes as `write`
        of all its rows at once."""
        return ContentWriter(self, schema, role, partition)

    def name_by_content(self, tmp: Path, directory: Path, prefix: str) -> tuple[Path, str]:
        """Give a written temporary file its content address; the final path and its sha256."""
        digest = sha256_file(tmp)
        final = directory / f"{prefix}{digest[:24]}.parquet"
        if final.exists():
            tmp.unlink()  # the same content is stored already: publishing checks that file
        else:
            os.replace(tmp, final)
            fsync_dir(directory)
            self.remember(final.relative_to(self.root).as_posix(), digest, final)
            with self._lock:
                self._created.append(final)
        return final, digest

    def forget_created(self) -> None:
        """Start counting the files written anew (see `remove_created`)."""
        with self._lock:
            self._created = []

    def remove_created(self) -> None:
        """Delete the files written since `forget_created` (never one that existed before:
        content addressing makes an identical earlier file the same path, and it is kept)."""
        with self._lock:
            created, self._created = self._created, []
        for path in created:
            path.unlink(missing_ok=True)
            self.hash_cache().pop(path.relative_to(self.root).as_posix(), None)

    # ---- checking ----------------------------------------------------------------------------
    def check(self, entry: FileEntry, reuse: bool = False) -> None:
        """Re-hash `entry`'s file against its sha256; raises `LakeCorruptionError` naming it.
        `reuse`: skip the hashing when the file was hashed before and its inode, size, mtime and
        ctime (ns) have not changed since."""
        path = self.path(entry)
        if not path.exists():
            raise LakeCorruptionError(entry.path, "is missing")
        if reuse and self.hash_cache().get(entry.path) == (entry.sha256, *_stat_key(path)):
            return
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise LakeCorruptionError(entry.path, f"sha256 {actual[:12]}... does not match the manifest's {entry.sha256[:12]}...")
        self.remember(entry.path, actual, path)

    def check_all(self, entries: Sequence[FileEntry], reuse: bool = False) -> None:
        """`check` every entry, CHECK_THREADS files at a time (hashing releases the GIL); raises
        the error of the first bad file in `entries`' order, once every check has ended."""
        for check in self._checks(entries, reuse):
            check.result()

    def problems(self, entries: Sequence[FileEntry]) -> list[str]:
        """Every file of `entries` re-hashed (`check_all`'s threads); the problems found, in
        `entries`' order (empty when all match)."""
        problems = []
        for check in self._checks(entries, reuse=False):
            error = check.exception()
            if isinstance(error, LakeCorruptionError):
                problems.append(str(error))
            elif error is not None:
                raise error
        return problems

    def _checks(self, entries: Sequence[FileEntry], reuse: bool) -> list[Future]:
        """`check` of each entry run on CHECK_THREADS threads, all ended; their futures in order."""
        self.hash_cache()  # loaded once, before the threads record what they hash
        with ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="kobe-lake-check") as pool:
            return [pool.submit(self.check, entry, reuse) for entry in entries]

    def remember(self, rel_path: str, digest: str, path: Path) -> None:
        """Record that `path` hashed to `digest`, unless it changed too recently to tell a later
        change by its stat: file times come from a clock that ticks every few milliseconds, so a
        file changed again within the same tick would keep its ctime ("racily clean", as git
        calls it). Such a file is hashed again next time instead."""
        key = _stat_key(path)
        if time.time_ns() - key[3] >= RACY_NS:
            self.hash_cache()[rel_path] = (digest, *key)
        else:
            self.hash_cache().pop(rel_path, None)

    def hash_cache(self) -> dict[str, tuple[str, int, int, int, int]]:
        """The stat cache of hashed files; unreadable or malformed, it is empty (all re-hashed)."""
        if self._hashed is None:
            self._hashed = {}
            try:
                data = json.loads((self.root / HASH_CACHE_NAME).read_text())
                for rel, row in data.items():
                    digest, ino, size, mtime, ctime = row
                    self._hashed[str(rel)] = (str(digest), int(ino), int(size), int(mtime), int(ctime))
            except (OSError, ValueError, TypeError, AttributeError):
                self._hashed = {}
        return self._hashed

    def save_hash_cache(self) -> None:
        """Written atomically; a failure costs only re-hashing next time."""
        cache = self.hash_cache()
        try:
            atomic_write_json(self.root / HASH_CACHE_NAME, {k: list(v) for k, v in sorted(cache.items())
                                                            if (self.root / k).exists()})
        except OSError as exc:
            log.warning("lake: could not save the hash cache (%s); the next freeze re-hashes every file", exc)

    # ---- reading -----------------------------------------------------------------------------
    def read(self, entries: list[FileEntry], columns: dict[str, list[str]] | None = None) -> list[pa.Table]:
        """Each file of `entries` read whole, every page checked against its CRC32 (a file
        written without page checksums is read unchecked). `columns`: the columns each role's
        table must have (the footer, which page checksums do not cover, names them). Raises
        `LakeCorruptionError` naming a file that cannot be read or lacks a column."""
        tables = []
        for entry in entries:
            try:
                # (ParquetFile, not pq.read_table: its dataset layer costs more than reading these tables)
                table = pq.ParquetFile(self.path(entry), page_checksum_verification=True).read(use_threads=False)
            except (OSError, pa.ArrowException) as exc:
                raise LakeCorruptionError(entry.path, f"cannot be read ({' '.join(str(exc).split())}); run `kobe lake verify`") from exc
            missing = [name for name in (columns or {}).get(entry.role, []) if name not in table.column_names]
            if missing:
                raise LakeCorruptionError(entry.path, f"lacks the column(s) {missing} of a {entry.role} table; run `kobe lake verify`")
            tables.append(table)
        return tables

    # ---- removing ----------------------------------------------------------------------------
    def collect_garbage(self, referenced: set[str]) -> None:
        """Delete every data file (and leftover temporary file) that `referenced` does not name."""
        for folder in DATA_FOLDERS:
            base = self.root / folder
            if not base.exists():
                continue
            for path in base.rglob("*"):
                if path.is_file() and path.relative_to(self.root).as_posix() not in referenced:
                    path.unlink()


class RowGroups:
    """Rows cut into row groups as they arrive, the same groups whatever tables they come in:
    groups of `size` rows, or (`whole_symbols`, rows sorted by symbol) groups ending where a
    symbol ends, at most `size` rows each (a symbol with more has groups of its own). At most
    `size` rows are held between calls."""

    def __init__(self, size: int, whole_symbols: bool = False):
        self.size = size
        self.whole_symbols = whole_symbols
        # rows needed to cut a group: a group of whole symbols needs the row after it too
        self.rows_to_cut = size + 1 if whole_symbols else size
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    @property
    def rows_held(self) -> int:
        """Rows kept for the next row group (at most `size`)."""
        return self._pending_rows

    def add(self, table: pa.Table) -> list[pa.Table]:
        """The row groups that `table` completes, in order, each one chunk."""
        if table.num_rows == 0:
            return []
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows < self.rows_to_cut:
            return []
        rows = pa.concat_tables(self._pending).combine_chunks()
        groups, done = [], 0
        while self._pending_rows - done >= self.rows_to_cut:
            size = self._group_end(rows.slice(done, self.size + 1)) if self.whole_symbols else self.size
            groups.append(rows.slice(done, size))
            done += size
        rest = self._pending_rows - done
        # a copy of the rest, so that the written rows' buffers are not kept alive by a slice
        self._pending = [rows.take(pa.array(np.arange(done, self._pending_rows)))] if rest else []
        self._pending_rows = rest
        return groups

    def rest(self) -> pa.Table | None:
        """The rows held, as the last row group (one chunk); None when none are held."""
        if not self._pending_rows:
            return None
        rows = pa.concat_tables(self._pending).combine_chunks()
        self._pending, self._pending_rows = [], 0
        return rows

    def _group_end(self, rows: pa.Table) -> int:
        """Where the row group starting at `rows` ends (`rows`: size + 1 rows): after the last
        whole symbol that fits, or after `size` rows when its first symbol alone fills it."""
        symbols = rows.column("symbol")
        # True at i: row i + 1 starts another symbol
        changes = pc.not_equal(symbols.slice(1), symbols.slice(0, len(symbols) - 1)).to_numpy(zero_copy_only=False)
        ends = np.flatnonzero(changes)
        return int(ends[-1]) + 1 if len(ends) else self.size


class ContentWriter:
    """One content-addressed file written a table at a time. Rows are cut into row groups as
    they arrive (`RowGroups`), so the file holds the same row groups -- and the same bytes -- as
    one write of all its rows: at most one row group of rows is held here between calls.
    `write_group` writes a row group cut elsewhere (the history's, `history.HistoryWriter`).
    `close` names the file by its sha256 and returns its entry; `abort` removes what was written."""

    def __init__(self, store: ContentStore, schema: pa.Schema, role: str, partition: str | None):
        self.store = store
        self.role = role
        folder, self.prefix = folder_of(role, partition)
        self.directory = store.root / folder
        self.directory.mkdir(parents=True, exist_ok=True)
        self.tmp = self.directory / f".{self.prefix}{os.getpid()}-{threading.get_ident()}-{id(self)}.parquet.tmp"
        # Dictionary pages for the string columns only: floats rarely repeat, and trying a
        # dictionary on them first slows the write.
        strings = [f.name for f in schema
                   if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_dictionary(f.type)]
        self.group_rows = {"raw_bars": RAW_ROW_GROUP_ROWS, "factors": FACTOR_ROW_GROUP_ROWS}.get(role, ROW_GROUP_ROWS)
        # a history file's groups end where a symbol ends
        self.whole_symbols = role == "raw_bars" and partition is not None and is_history(partition)
        if self.whole_symbols:
            self.group_rows = HISTORY_ROW_GROUP_ROWS
        self.groups = RowGroups(self.group_rows, self.whole_symbols)
        # LZ4 rather than Snappy: files of the same size, and DuckDB reads them faster. Every page
        # carries a CRC32: a flipped byte fails the read of that page wherever the pipeline reads
        # with pyarrow, instead of changing a value.
        self.schema = schema
        self._writer = pq.ParquetWriter(self.tmp, schema, compression="lz4", use_dictionary=strings, write_page_checksum=True)
        self.rows = 0
        self.min_date = self.max_date = None

    @property
    def rows_held(self) -> int:
        """Rows kept for the next row group (at most `group_rows`)."""
        return self.groups.rows_held

    def write(self, table: pa.Table) -> None:
        for group in self.groups.add(table):
            self.write_group(group)

    def write_group(self, group: pa.Table) -> None:
        """Write `group` (one chunk, some rows) as one row group."""
        self.rows += group.num_rows
        if "date" in group.column_names:
            dates = group.column("date")
            low, high = pc.min(dates).as_py(), pc.max(dates).as_py()
            self.min_date = low if self.min_date is None else min(self.min_date, low)
            self.max_date = high if self.max_date is None else max(self.max_date, high)
        self._writer.write_table(group, row_group_size=group.num_rows)

    def close(self) -> FileEntry:
        try:
            rest = self.groups.rest()
            if rest is not None:
                self.write_group(rest)
            elif self.rows == 0:  # one empty row group, as a write of an empty table gives
                self._writer.write_table(self.schema.empty_table(), row_group_size=self.group_rows)
            self._writer.close()
            final, digest = self.store.name_by_content(self.tmp, self.directory, self.prefix)
        except BaseException:
            self.abort()
            raise
        return FileEntry(path=final.relative_to(self.store.root).as_posix(), sha256=digest, role=self.role, rows=self.rows,
                         bytes=final.stat().st_size,
                         min_date=str(self.min_date) if self.min_date is not None else None,
                         max_date=str(self.max_date) if self.max_date is not None else None)

    def abort(self) -> None:
        try:
            self._writer.close()
        except (OSError, pa.ArrowException):
            pass
        self.tmp.unlink(missing_ok=True)


Closed = TypeVar("Closed", covariant=True)


class TableWriter(Protocol[Closed]):
    """Something written a table at a time, then closed (giving what it wrote) or aborted."""

    def write(self, table: pa.Table) -> None: ...

    def close(self) -> Closed: ...

    def abort(self) -> None: ...


def written(writer: TableWriter[Closed], table: pa.Table) -> Closed:
    """`table` written by `writer` (a `ContentWriter` or a writer of several files, such as
    `history.HistoryWriter`), which is then closed: what `close` returns. A failure aborts it."""
    try:
        writer.write(table)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns
