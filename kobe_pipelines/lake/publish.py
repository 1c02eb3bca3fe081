"""Writing the lake: preparing a candidate version, publishing it, the writer lock, and repairing
what an interrupted writer left.

Prepare: validate the bars, keep the new ones (`raw_bars`), write them (a first freeze: the
history files and the later years' files, streamed a batch at a time by `stream`; a refreeze:
one file per year) in the background while the derived tables are computed (`derivation`),
each derived table written as soon as it is known, then merge a year's small raw files if it
has too many, and compact the closed years into new history files when a year closed since they
were written (`history`). Any failure removes every file the prepare wrote. Nothing is visible
until publish. `prepare_compaction` is a prepare that only compacts (`Lake.compact`).

Publish, in an order that a crash (kill -9 included) or a full disk cannot break:

1. the manifest, in a temporary folder;
2. the catalog the lake will have, beside catalog.duckdb (retention already applied);
3. the version folder renamed into `versions/`;
4. CURRENT replaced (the publication itself);
5. the catalog renamed over catalog.duckdb;
6. the versions retention drops, and the files no version references, deleted.

A failure in 1-4 removes what the publish wrote and leaves the previous version current. A crash
between 4 and 5 leaves a catalog that shows the previous version: readers of the lake read
through CURRENT anyway, and the next writer rewrites the catalog (`repair`). `checkpoint` names
each step; crash tests replace it to stop the process there.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd
import pyarrow as pa

from kobe_pipelines.data import schema
from kobe_pipelines.lake import catalog, duck
from kobe_pipelines.lake.actions import ActionsSetAside
from kobe_pipelines.lake.derivation import Derivation
from kobe_pipelines.lake.errors import LakeBusyError, LakeError, LakeWriteError, is_write_failure
from kobe_pipelines.lake.file_store import ContentStore, is_history, year_partition
from kobe_pipelines.lake.history import closed_through, merge_history, to_compact, write_history
from kobe_pipelines.lake.manifest import FileEntry, Manifest, content_hash
from kobe_pipelines.lake.raw_bars import NewBars, YearSplit, find_new_rows, merged_year, years_to_merge
from kobe_pipelines.lake.stream import DEFAULT_BATCH_ROWS, stream_raw_files
from kobe_pipelines.lake.segments import DERIVED_ORDER, ROLES, TableChange, files_by_role, in_derived_order, plan_write
from kobe_pipelines.lake.versions import VersionStore, new_manifest, retained

log = logging.getLogger(__name__)

RAW_WRITERS = 4  # threads writing the year files of a freeze's new raw bars


def checkpoint(step: str) -> None:
    """A named point in a freeze. Does nothing; crash tests replace it to stop the process here."""


@dataclass(frozen=True)
class Candidate:
    """A prepared, not yet published, version: its files exist but no manifest names them."""

    base_version_id: str | None
    entries: tuple[FileEntry, ...]
    content_hash: str
    provider: str
    dividend_convention: str
    notes: dict
    new_rows: int
    events_table: pa.Table | pd.DataFrame | None  # the adjustment events of the version (None: a compaction's, unchanged)
    actions_set_aside: ActionsSetAside = ActionsSetAside()  # actions of symbols without bars, kept unapplied
    # the returns the prepare's own jump check judged (`Derivation.event_jumps`): on the sessions
    # of every event whose factors it computed; None when it computed none
    event_jumps: pd.DataFrame | None = None

    @cached_property
    def events(self) -> pd.DataFrame:
        """The adjustment events of the version, as pandas (converted when first asked for)."""
        return events_frame(self.events_table)


@dataclass(frozen=True)
class FreezeResult:
    version: Manifest
    created: bool  # False when the inputs matched an existing version (no new version made)
    new_rows: int
    events_table: pa.Table | pd.DataFrame | None  # adjustment events of the version (for metadata and checks)
    actions_set_aside: ActionsSetAside = ActionsSetAside()  # actions of symbols without bars, kept unapplied

    @cached_property
    def events(self) -> pd.DataFrame:
        return events_frame(self.events_table)


def events_frame(table: pa.Table | pd.DataFrame | None) -> pd.DataFrame:
    """Events as pandas, in their order (a refreeze's table is the stored rows, then the new ones)."""
    if table is None:
        return pd.DataFrame(columns=["symbol", "event_date"])
    return table if isinstance(table, pd.DataFrame) else in_derived_order(table, "adjustment_events").to_pandas()


class _StoredReads:
    """The previous version's derived tables (`segments.StoredTables`): the splits, dividends,
    factors and events are read by `pool` as soon as a freeze starts, in the order they are
    needed; the provenance and the actions set aside only when asked for."""

    EAGER = ("splits", "dividends", "factors", "adjustment_events")

    def __init__(self, files: ContentStore, stored: dict[str, list[FileEntry]], pool: ThreadPoolExecutor):
        self._files = files
        self._stored = stored
        self._reading: dict[str, Future] = {role: pool.submit(self._read, role) for role in self.EAGER}
        self._read_later: dict[str, pa.Table | None] = {}
        self._lock = threading.Lock()

    def _read(self, role: str) -> pa.Table | None:
        files = self._stored[role]
        return pa.concat_tables(self._files.read(files, DERIVED_ORDER)) if files else None

    def table(self, role: str) -> pa.Table | None:
        if role in self._reading:
            return self._reading[role].result()
        with self._lock:
            if role not in self._read_later:
                self._read_later[role] = self._read(role)
            return self._read_later[role]

    def pending(self) -> list[Future]:
        return list(self._reading.values())


def prepare(root: Path, files: ContentStore, versions: VersionStore, bars: pd.DataFrame | pa.Table | Iterable[pa.Table],
            splits: pd.DataFrame, dividends: pd.DataFrame, provider: str, convention: str, as_of: dt.date | None,
            notes: dict | None, batch_rows: int | None = DEFAULT_BATCH_ROWS) -> Candidate:
    """Validate the inputs and write the new immutable files of a candidate version (see the
    module docstring); run under the writer lock. Any bad record raises before anything is
    published, and every file written here is removed again.

    The first freeze of a lake streams its bars `batch_rows` at a time (`stream_raw_files`):
    its memory is set by the batch, not by the history. A refreeze, or `batch_rows` None, holds
    the bars at once (a refreeze's new bars are compared with the stored ones)."""
    checkpoint("start")
    previous = versions.current_or_none()
    files.hash_cache()  # loaded here, before the writing threads record what they hash
    if previous is not None:
        files.check_all(previous.files, reuse=True)
    stored_raw = previous.files_with_role("raw_bars") if previous else []
    stored_files = files_by_role(previous)
    files.forget_created()
    # The previous version's derived tables are read, and the new raw files written, in the
    # background while the bars are validated and the derived tables computed: Parquet decoding,
    # encoding and hashing release the GIL, the derivation is mostly pandas. The derived tables
    # are read, then written, by one thread in the order they are needed: on two cores a second
    # one slows the thread doing the derivation more than it gains.
    with ThreadPoolExecutor(max_workers=2) as background, ThreadPoolExecutor(max_workers=1) as tables:
        background.submit(duck.warm)  # the freeze's first look-up then finds DuckDB ready
        stored = _StoredReads(files, stored_files, tables)
        writing: list[Future] = []
        raw: Future | None = None
        try:
            through = closed_through(as_of)
            if previous is None and batch_rows is not None:
                closing, new_rows = stream_raw_files(root, files, bars, splits, dividends, as_of, through, batch_rows, background)
                writing += closing  # the raw files are closed (and hashed) while the derived tables are computed
            else:
                new_rows = find_new_rows(root, previous, NewBars.validated(whole_table(bars), as_of))
                # a first freeze writes the closed years as the history files; a refreeze adds year files
                raw = background.submit(write_new_rows, files, new_rows, through if previous is None else None)
                writing.append(raw)
            derivation = Derivation(root, previous, stored_raw, new_rows, splits, dividends, convention, stored, stored_files)
            derived: dict[str, Future] = {}
            for change in derivation.changes():
                derived[change.role] = tables.submit(write_change, files, change, stored_files[change.role], stored)
                writing.append(derived[change.role])
            derived_entries = [entry for role in ROLES
                               for entry in (derived[role].result() if role in derived else stored_files[role])]
            if raw is None:
                raw_entries = [entry for partition in closing for entry in partition.result()]
            elif previous is None:
                raw_entries = raw.result()
            else:
                raw_entries = compact(root, files, merge_small_raw_files(files, stored_raw, raw.result()), through)
        except BaseException as exc:
            wait(writing + stored.pending())  # no thread writes into the lake after this returns
            files.remove_created()
            if is_write_failure(exc) and not isinstance(exc, LakeError):
                current = previous.version_id if previous else "no version"
                raise LakeWriteError(root, "write new files into", exc, f"nothing was published; {current} stays current") from exc
            raise
    checkpoint("raw_written")
    checkpoint("derived_written")
    files.save_hash_cache()
    entries = raw_entries + derived_entries
    return Candidate(
        base_version_id=previous.version_id if previous else None,
        entries=tuple(entries),
        content_hash=content_hash(entries, convention),
        provider=provider,
        dividend_convention=convention,
        notes=dict(notes or {}),
        new_rows=len(new_rows),
        events_table=derivation.events,
        actions_set_aside=derivation.set_aside,
        event_jumps=derivation.event_jumps,
    )


def whole_table(bars: pd.DataFrame | pa.Table | Iterable[pa.Table]) -> pd.DataFrame | pa.Table:
    """Bars given as batches, as one table (a frame or a table as it is)."""
    if isinstance(bars, (pd.DataFrame, pa.Table)):
        return bars
    tables = [schema.bars_table(batch) for batch in bars]
    return pa.concat_tables(tables, promote_options="permissive") if tables else schema.bars_table(schema.empty_bars())


def write_new_rows(files: ContentStore, new_rows: NewBars, history_through: int | None) -> list[FileEntry]:
    """The new raw bars as the files of each raw partition (`YearSplit`: with `history_through`,
    the years up to it as the history files, `history.write_history`; one file per later year),
    each partition gathered and written in its own thread (Arrow and Parquet release the GIL)."""
    if new_rows.empty:
        return []
    split = YearSplit.of(new_rows, history_through)

    def write(partition: str) -> list[FileEntry]:
        table = split.partition_table(partition)
        if is_history(partition):
            return write_history(files, table, split.history_through)
        return [files.write(table, "raw_bars", partition)]

    with ThreadPoolExecutor(max_workers=min(RAW_WRITERS, os.cpu_count() or 1)) as pool:
        return [entry for entries in pool.map(write, split.partitions) for entry in entries]


def merge_small_raw_files(files: ContentStore, stored: list[FileEntry], added: list[FileEntry]) -> list[FileEntry]:
    """The raw files of the candidate: `stored` and `added`, with each year that has too many
    files merged (`raw_bars.years_to_merge`)."""
    entries = stored + added
    for year, merged in years_to_merge(stored, added).items():
        compacted = files.write(merged_year(files.read(merged)), "raw_bars", year_partition(year))
        log.info("lake: merged %d raw files of %s into %s", len(merged), year, compacted.path)
        entries = [e for e in entries if all(e is not m for m in merged)] + [compacted]
    return entries


def compact(root: Path, files: ContentStore, raw: list[FileEntry], through: int, forced: bool = False) -> list[FileEntry]:
    """The raw files `raw` with the closed years up to `through` compacted into new history files
    when a compaction is due (`history.to_compact`; `forced`: whenever there is one to do)."""
    merged, last = to_compact(raw, through, forced)
    if not merged:
        return raw
    histories = merge_history(root, files, merged, last)
    log.info("lake: compacted %d raw files through %d into %s", len(merged), last, ", ".join(e.path for e in histories))
    return [e for e in raw if all(e is not m for m in merged)] + histories


def prepare_compaction(root: Path, files: ContentStore, versions: VersionStore, as_of: dt.date | None) -> Candidate | None:
    """A candidate version with the current version's bars and tables, its closed years (before
    `as_of`'s year) compacted into new history files; None when there is nothing to compact. Run
    under the writer lock; a failure removes what it wrote."""
    previous = versions.current_or_none()
    if previous is None:
        return None
    files.check_all(previous.files, reuse=True)
    raw = previous.files_with_role("raw_bars")
    files.forget_created()
    try:
        compacted = compact(root, files, raw, closed_through(as_of), forced=True)
    except BaseException as exc:
        files.remove_created()
        if is_write_failure(exc) and not isinstance(exc, LakeError):
            raise LakeWriteError(root, "compact the raw files of", exc, f"nothing was published; {previous.version_id} stays current") from exc
        raise
    if compacted is raw:
        return None
    checkpoint("compacted")
    files.save_hash_cache()
    entries = compacted + [e for e in previous.files if e.role != "raw_bars"]
    return Candidate(base_version_id=previous.version_id, entries=tuple(entries),
                     content_hash=content_hash(entries, previous.dividend_convention), provider=previous.provider,
                     dividend_convention=previous.dividend_convention, notes=dict(previous.notes), new_rows=0,
                     events_table=None)


def write_change(files: ContentStore, change: TableChange, stored: list[FileEntry], stored_rows: _StoredReads) -> list[FileEntry]:
    """Write one derived table's change; the table's files in the new version."""
    plan = plan_write(change, stored, stored_rows)
    return plan.kept + ([files.write(plan.table, change.role)] if plan.table is not None else [])


def publish(root: Path, files: ContentStore, versions: VersionStore, candidate: Candidate, retention: int) -> FreezeResult:
    """Make `candidate` the current version, unless an identical version exists (then that one
    becomes current and no new version is made); run under the writer lock. Refuses if the lake
    moved on since the candidate was prepared."""
    current = versions.current_version_id()
    if current != candidate.base_version_id:
        raise LakeError(f"the candidate was prepared on version {candidate.base_version_id}, but {current} is current now; prepare again")
    files.check_all(candidate.entries, reuse=True)
    files.save_hash_cache()
    for existing in reversed(versions.versions()):
        if existing.content_hash == candidate.content_hash:
            if existing.version_id != current:
                make_current(root, files, versions, existing, new=False, retention=retention)
            return FreezeResult(existing, created=False, new_rows=0, events_table=candidate.events_table,
                                actions_set_aside=candidate.actions_set_aside)
    manifest = new_manifest(list(candidate.entries), candidate.content_hash, candidate.provider,
                            candidate.dividend_convention, candidate.notes)
    make_current(root, files, versions, manifest, new=True, retention=retention)
    return FreezeResult(manifest, created=True, new_rows=candidate.new_rows, events_table=candidate.events_table,
                        actions_set_aside=candidate.actions_set_aside)


def make_current(root: Path, files: ContentStore, versions: VersionStore, manifest: Manifest, new: bool, retention: int) -> None:
    """Publish `manifest` (`new`: a version not stored yet) as the current version, in the order
    of the module docstring."""
    previous = versions.current_version_id()
    everything = versions.versions() + ([manifest] if new else [])
    kept, dropped = retained(everything, manifest.version_id, versions.pins(), retention) if new else (everything, [])
    catalog_path = root / "catalog.duckdb"
    staged: Path | None = None
    catalog_tmp: Path | None = None
    installed: Path | None = None
    try:
        if new:
            staged = versions.stage(manifest)
            checkpoint("manifest_written")
        catalog_tmp = catalog.write(root, catalog_path, kept, manifest.version_id, versions.pins())
        checkpoint("catalog_written")
        if new:
            installed = versions.install(staged, manifest.version_id)
            checkpoint("version_renamed")
        versions.set_current(manifest.version_id)
    except BaseException as exc:
        for folder in (staged, installed):
            if folder is not None:
                versions.delete_folder(folder)
        if catalog_tmp is not None:
            catalog.remove_temporary(catalog_tmp)
        if is_write_failure(exc):
            raise LakeWriteError(root, "publish a version in", exc, f"nothing was published; {previous or 'no version'} stays current") from exc
        raise
    checkpoint("current_switched")
    try:
        catalog.install(catalog_tmp, catalog_path)
    except OSError as exc:
        catalog.remove_temporary(catalog_tmp)
        raise LakeWriteError(root, "rewrite catalog.duckdb in", exc,
                             f"version {manifest.version_id} is published and current; catalog.duckdb still shows "
                             f"{previous} until the next freeze rewrites it") from exc
    checkpoint("catalog_rebuilt")
    versions.delete(dropped)
    files.collect_garbage(versions.referenced_files())
    versions.remove_leftovers()


@contextmanager
def writer_lock(root: Path, versions: VersionStore) -> Iterator[None]:
    """The lake's writer lock (one writer at a time; readers never take it). Taking it repairs
    what an interrupted writer left (`repair`). A lake folder that cannot be written raises
    `LakeWriteError` naming it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / ".lock", "a")
    except OSError as exc:
        raise LakeWriteError(root, "write", exc, "nothing was changed") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LakeBusyError(f"another process is writing the lake at {root}") from None
        try:
            try:
                repair(root, versions)
            except BaseException as exc:
                if is_write_failure(exc):
                    raise LakeWriteError(root, "repair", exc, "nothing was changed") from exc
                raise
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def repair(root: Path, versions: VersionStore) -> None:
    """Undo what an interrupted writer left (run under the lock, where no other writer runs):
    temporary files beside CURRENT, the pins and the hash cache, temporary catalogs and version
    folders, and a catalog that disagrees with CURRENT (rewritten)."""
    catalog_path = root / "catalog.duckdb"
    for leftover in [*root.glob(".*.tmp"), *catalog.leftovers(catalog_path)]:
        leftover.unlink(missing_ok=True)
    versions.remove_leftovers()
    problems = catalog.problems(root, catalog_path, versions.current_version_id())
    if problems:
        log.warning("lake: %s; rewriting catalog.duckdb", "; ".join(problems))
        rebuild_catalog(root, versions)


def rebuild_catalog(root: Path, versions: VersionStore, pins: dict[str, str] | None = None) -> None:
    catalog.rebuild(root, root / "catalog.duckdb", versions.versions(), versions.current_version_id(),
                    versions.pins() if pins is None else pins)


def save_pins(root: Path, versions: VersionStore, pins: dict[str, str]) -> None:
    """pins.json and the catalog's `lake_versions`, the catalog written first."""
    catalog_path = root / "catalog.duckdb"
    tmp = catalog.write(root, catalog_path, versions.versions(), versions.current_version_id(), pins)
    try:
        versions.save_pins(pins)
    except BaseException:
        catalog.remove_temporary(tmp)
        raise
    catalog.install(tmp, catalog_path)
