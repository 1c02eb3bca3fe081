"""The versioned data lake: immutable raw bars, corporate actions, factor tables, manifests.

Layout under the lake root (`data_lake/` by default)::

    raw/bars/year=YYYY/<sha>.parquet    raw bars as traded; a file is never changed
    actions/<role>-<sha>.parquet         splits, dividends, and when each was first fetched
    factors/<sha>.parquet                adjustment factor intervals (see data.adjustments)
    versions/<version_id>/manifest.json  one per published lake version
    CURRENT                              the current version id (replaced atomically)
    pins.json                            versions kept regardless of retention
    catalog.duckdb                       DuckDB views over the current and retained versions
    staging/bars/<label>.parquet         ingested batches waiting for the next freeze

Data files are content-addressed, so a refreeze writes only what changed and two versions
share every file they have in common. A year of raw bars, and the dividends, provenance and
applied-events tables, may each span several files: a refreeze adds one, and merges them into
a new file when there are too many (`RAW_FILES_PER_YEAR`, `freeze_steps.SEGMENTS_MAX`); the
merged files stay while a retained version lists them. Publishing is ordered so that a crash at
any point leaves the previous version current and readable: files first, then the manifest
(written in a temporary folder and renamed), then the CURRENT pointer, then the catalog.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kobe_pipelines import paths
from kobe_pipelines.data import schema
from kobe_pipelines.errors import ConfigError
from kobe_pipelines.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text, fsync_dir, sha256_file
from kobe_pipelines.lake import catalog, duck, sessions
from kobe_pipelines.lake.errors import (
    LakeBusyError, LakeCorruptionError, LakeError, LakeVersionNotFound, LakeWriteError, is_write_failure,
)
from kobe_pipelines.lake.freeze_steps import (
    DERIVED_ORDER, ActionsSetAside, NewBars, derive_actions_and_factors, find_new_rows, in_derived_order, read_files, read_stored,
    read_table,
)
from kobe_pipelines.lake.manifest import FileEntry, Manifest, content_hash

log = logging.getLogger(__name__)

RETENTION_ENV = "KOBE_LAKE_RETENTION"
DEFAULT_RETENTION = 10
VIEWS = ("total", "split", "raw")

LakeVersion = Manifest


def _checkpoint(step: str) -> None:
    """A named point in the freeze. Does nothing; crash tests replace it to stop the process here."""


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
    events_table: pa.Table | pd.DataFrame  # the adjustment events of the version
    actions_set_aside: ActionsSetAside = ActionsSetAside()  # actions of symbols without bars, kept unapplied

    @cached_property
    def events(self) -> pd.DataFrame:
        """The adjustment events of the version, as pandas (converted when first asked for)."""
        return _frame(self.events_table)


@dataclass(frozen=True)
class FreezeResult:
    version: Manifest
    created: bool  # False when the inputs matched an existing version (no new version made)
    new_rows: int
    events_table: pa.Table | pd.DataFrame  # adjustment events of the version (for metadata and checks)
    actions_set_aside: ActionsSetAside = ActionsSetAside()  # actions of symbols without bars, kept unapplied

    @cached_property
    def events(self) -> pd.DataFrame:
        return _frame(self.events_table)


def _frame(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """Events as pandas, in their order (a refreeze's table is the stored rows, then the new ones)."""
    return table if isinstance(table, pd.DataFrame) else in_derived_order(table, "adjustment_events").to_pandas()


class Lake:
    """A lake folder. Cheap to construct; every method reads the folder afresh."""

    def __init__(self, root: str | os.PathLike[str] | None = None, retention: int | None = None):
        self.root = paths.lake_dir(root)
        if retention is None:
            raw = os.environ.get(RETENTION_ENV, str(DEFAULT_RETENTION))
            try:
                retention = int(raw)
            except ValueError:
                raise ConfigError(RETENTION_ENV, "must be a whole number of versions", raw) from None
        if retention < 1:
            raise ConfigError(RETENTION_ENV, "must keep at least 1 version", retention)
        self.retention = retention
        # Files hashed before (verified or written) and their inode, size, mtime and ctime then,
        # kept in HASH_CACHE_NAME: a freeze re-hashes only files whose stat changed since (git's
        # index does the same). The ctime is in the key because no user can set it: a file
        # rewritten with its mtime restored still changes it. `verify` always re-hashes everything.
        self._hashed: dict[str, tuple[str, int, int, int, int]] | None = None
        self._created: list[Path] = []  # data files written by the prepare in progress

    # ---- locations -------------------------------------------------------------------------
    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def staging_dir(self) -> Path:
        return self.root / "staging" / "bars"

    def abspath(self, entry: FileEntry) -> Path:
        return self.root / entry.path

    # ---- reading versions ------------------------------------------------------------------
    def current_version_id(self) -> str | None:
        pointer = self.root / "CURRENT"
        if not pointer.exists():
            return None
        version_id = pointer.read_text().strip()
        if not version_id or not (self.versions_dir / version_id / "manifest.json").exists():
            raise LakeCorruptionError(str(pointer), f"points at '{version_id}', which has no manifest")
        return version_id

    def actions_fetch_start(self, history_start: str) -> str:
        """Where a refreeze fetches corporate actions from: the current version's last date minus
        `ACTIONS_LOOKBACK` (late-announced actions are caught again), or `history_start` when the
        lake holds no version yet. Stored actions are kept and merged either way."""
        version_id = self.current_version_id()
        last = self.version(version_id).end_date if version_id else None
        return str((pd.Timestamp(last) - ACTIONS_LOOKBACK).date()) if last else history_start

    def current_version(self) -> Manifest:
        version_id = self.current_version_id()
        if version_id is None:
            raise LakeError(f"the lake at {self.root} has no versions yet: run `kobe demo` or `kobe lake freeze`")
        return self.version(version_id)

    def version(self, version_id: str) -> Manifest:
        path = self.versions_dir / version_id / "manifest.json"
        if not version_id or "/" in version_id or not path.exists():
            raise LakeVersionNotFound(version_id, [m.version_id for m in self.versions()])
        try:
            return Manifest.from_json(path.read_text())
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise LakeCorruptionError(str(path), f"unreadable manifest ({exc})") from exc

    def versions(self) -> list[Manifest]:
        """Published versions, oldest first. A folder without a complete manifest is not a version."""
        if not self.versions_dir.exists():
            return []
        found = []
        for child in self.versions_dir.iterdir():
            if child.name.startswith(".") or not (child / "manifest.json").exists():
                continue
            found.append(self.version(child.name))
        return sorted(found, key=lambda m: (m.created_at, m.version_id))

    def pins(self) -> dict[str, str]:
        path = self.root / "pins.json"
        if not path.exists():
            return {}
        try:
            pins = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LakeCorruptionError(str(path), f"unreadable pins file ({exc})") from exc
        if not isinstance(pins, dict):
            raise LakeCorruptionError(str(path), "expected a JSON object of version id -> reason")
        return pins

    def pin(self, version_id: str, reason: str) -> None:
        """Keep `version_id` regardless of retention (for example: a production model learned from it)."""
        self.version(version_id)
        with self._lock(), self._writing("pin a version in"):
            pins = self.pins()
            pins[version_id] = reason
            self._save_pins(pins)

    def unpin(self, version_id: str) -> None:
        with self._lock(), self._writing("unpin a version in"):
            pins = self.pins()
            pins.pop(version_id, None)
            self._save_pins(pins)

    def _save_pins(self, pins: dict[str, str]) -> None:
        """pins.json and the catalog's `lake_versions`, the catalog written first."""
        tmp = catalog.write(self.root, self.catalog_path, self.versions(), self.current_version_id(), pins)
        try:
            atomic_write_json(self.root / "pins.json", pins)
        except BaseException:
            catalog.remove_temporary(tmp)
            raise
        catalog.install(tmp, self.catalog_path)

    @contextmanager
    def _writing(self, doing: str, outcome: str = "nothing was changed") -> Iterator[None]:
        """Turns the file system refusing a write into one `LakeWriteError` line."""
        try:
            yield
        except BaseException as exc:
            if is_write_failure(exc) and not isinstance(exc, LakeError):
                raise LakeWriteError(self.root, doing, exc, outcome) from exc
            raise

    # ---- querying --------------------------------------------------------------------------
    def connect(self, version_id: str | None = None) -> duckdb.DuckDBPyConnection:
        """A read-only DuckDB session (see `sessions`) with views `bars`, `bars_split_adjusted`,
        `bars_raw` over `version_id` (default: the version CURRENT names) and `lake_versions`.
        It may read that version's files and nothing else."""
        manifest = self.version(version_id) if version_id else self.current_version()
        return sessions.open_session(self.root, manifest, self.versions(), self.current_version_id(), self.pins())

    def query(self, sql: str, version_id: str | None = None) -> pd.DataFrame:
        """The rows of a read-only query (SELECT only: anything else raises `QueryRefused`) over
        the views of `version_id` (default: the current version), `lake_versions`, and every
        retained version as `catalog."<version id>".bars` (from catalog.duckdb, attached
        read-only)."""
        statements = sessions.read_only_statements(sql)
        manifest = self.version(version_id) if version_id else self.current_version()
        with sessions.open_session(self.root, manifest, self.versions(), self.current_version_id(), self.pins(),
                                   catalog_path=self.catalog_path) as con:
            return sessions.run(con, statements)

    def read_bars(
        self,
        version_id: str | None = None,
        view: str = "total",
        symbols: list[str] | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
    ) -> pd.DataFrame:
        """Bars of one version in `schema.BAR_COLUMNS`, sorted by symbol and date.

        `view`: "total" (split- and dividend-adjusted), "split" (split-adjusted) or "raw".
        """
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS} (got {view!r})")
        table = {"total": "bars", "split": "bars_split_adjusted", "raw": "bars_raw"}[view]
        where, params = [], []
        if symbols is not None:
            where.append("symbol IN (SELECT unnest(?))")
            params.append(list(symbols))
        if start is not None:
            where.append("date >= ?")
            params.append(pd.Timestamp(start).date())
        if end is not None:
            where.append("date <= ?")
            params.append(pd.Timestamp(end).date())
        sql = f"SELECT * FROM {table}" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY symbol, date"
        with self.connect(version_id) as con:
            frame = con.execute(sql, params).df()
        return schema.normalize_bars(frame)

    def event_returns(self, files: Sequence[FileEntry], events: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Close-to-close log return on each event date, per adjusted view ("split", "total"),
        over the given files (a version's or a candidate's). `events` needs symbol, event_date."""
        keyed = events[["symbol", "event_date"]].drop_duplicates().copy()
        keyed["event_date"] = pd.to_datetime(keyed["event_date"]).dt.date
        out = {}
        with duckdb.connect() as con:
            catalog.create_views(con, self.root, files, schema_name="main")
            con.register("events", keyed)
            for view, table in (("split", "bars_split_adjusted"), ("total", "bars")):
                out[view] = con.execute(
                    f"""
                    WITH r AS (
                        SELECT symbol, date, ln(close) - ln(lag(close) OVER (PARTITION BY symbol ORDER BY date)) AS log_return
                        FROM {table} WHERE symbol IN (SELECT DISTINCT symbol FROM events)
                    )
                    SELECT e.symbol, e.event_date, r.log_return FROM events e
                    JOIN r ON r.symbol = e.symbol AND r.date = e.event_date
                    WHERE r.log_return IS NOT NULL ORDER BY e.symbol, e.event_date
                    """
                ).df()
        return out

    def events(self, version_id: str | None = None) -> pd.DataFrame:
        """The adjustment events of a version (one row per split or dividend applied, with its
        effective session `event_date`, amounts and factor)."""
        events = self.derived_table("adjustment_events", version_id)
        return events if events is not None else pd.DataFrame(columns=["symbol", "event_date"])

    def derived_table(self, role: str, version_id: str | None = None) -> pd.DataFrame | None:
        """A version's derived table -- "splits", "dividends", "action_provenance", "factors" or
        "adjustment_events" -- as one frame in its order (a table may span several files); None
        when the version has none."""
        if role not in DERIVED_ORDER:
            raise ValueError(f"role must be one of {sorted(DERIVED_ORDER)} (got {role!r})")
        manifest = self.version(version_id) if version_id else self.current_version()
        table = read_table(self.root, manifest.files_with_role(role))
        return in_derived_order(table, role).to_pandas() if table is not None else None

    # ---- staging (ingested batches awaiting a freeze) ----------------------------------------
    def stage_bars(self, label: str, bars: pd.DataFrame) -> Path:
        """Store an ingested batch (e.g. one session's bars) until the next freeze; replaces the same label."""
        frame = schema.normalize_bars(bars)
        target = self.staging_dir / f"{label}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        pq.write_table(schema.bars_table(frame), tmp, write_page_checksum=True)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        return target

    def staged_labels(self) -> list[str]:
        if not self.staging_dir.exists():
            return []
        return sorted(p.stem for p in self.staging_dir.glob("*.parquet") if not p.name.startswith("."))

    def staged_bars(self, labels: list[str] | None = None) -> pd.DataFrame:
        return schema.normalize_bars(self.staged_bars_table(labels).to_pandas())

    def staged_bars_table(self, labels: list[str] | None = None) -> pa.Table:
        """The staged batches (all, or `labels`) as one Arrow table in `schema.BARS_ARROW_SCHEMA`,
        the form `prepare` takes without pandas (a backfill of years stages millions of bars)."""
        labels = self.staged_labels() if labels is None else labels
        if not labels:
            return schema.bars_table(schema.empty_bars())
        files = [str(self.staging_dir / f"{label}.parquet") for label in labels]
        with duck.cursor() as con:
            table = con.sql(f"SELECT {', '.join(schema.BAR_COLUMNS)} FROM read_parquet(?)", params=[files]).to_arrow_table()
        return schema.bars_table(table)

    def clear_staged(self, labels: list[str]) -> None:
        for label in labels:
            (self.staging_dir / f"{label}.parquet").unlink(missing_ok=True)

    def stage_actions(self, splits: pd.DataFrame, dividends: pd.DataFrame) -> None:
        """Store the latest fetch of corporate actions until the next freeze (replacing the last fetch)."""
        folder = self.root / "staging" / "actions"
        for name, frame in (("splits", schema.normalize_splits(splits)), ("dividends", schema.normalize_dividends(dividends))):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            buffer = pa.BufferOutputStream()
            pq.write_table(table, buffer, write_page_checksum=True)
            atomic_write_bytes(folder / f"{name}.parquet", buffer.getvalue().to_pybytes())

    def staged_actions(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        folder = self.root / "staging" / "actions"
        splits = folder / "splits.parquet"
        dividends = folder / "dividends.parquet"
        return (
            schema.normalize_splits(pd.read_parquet(splits)) if splits.exists() else schema.empty_splits(),
            schema.normalize_dividends(pd.read_parquet(dividends)) if dividends.exists() else schema.empty_dividends(),
        )

    # ---- freezing: prepare a candidate, then publish it ---------------------------------------
    def freeze(
        self,
        bars: pd.DataFrame | pa.Table,
        splits: pd.DataFrame,
        dividends: pd.DataFrame,
        *,
        provider: str,
        dividend_convention: str = "crsp",
        as_of: dt.date | None = None,
        notes: dict | None = None,
    ) -> FreezeResult:
        """Validate the inputs, store what is new, and publish a lake version (prepare + publish)."""
        candidate = self.prepare(
            bars, splits, dividends, provider=provider, dividend_convention=dividend_convention, as_of=as_of, notes=notes
        )
        return self.publish(candidate)

    def prepare(
        self,
        bars: pd.DataFrame | pa.Table,
        splits: pd.DataFrame,
        dividends: pd.DataFrame,
        *,
        provider: str,
        dividend_convention: str = "crsp",
        as_of: dt.date | None = None,
        notes: dict | None = None,
    ) -> Candidate:
        """Validate the inputs and write the new immutable files; publish nothing.

        `bars` (a frame or an Arrow table of `schema.BAR_COLUMNS`; Arrow skips pandas for the
        rows, see `schema.bars_table`) may repeat bars already stored (identical values are
        ignored; different values raise `RawRestatementError`). `splits`/`dividends` are the
        provider's current view of corporate actions, merged with those stored. Any bad record
        raises before a version changes; the files written here stay invisible until `publish`.
        """
        if dividend_convention not in schema.DIVIDEND_CONVENTIONS:
            raise ConfigError("dividend_convention", f"must be one of {list(schema.DIVIDEND_CONVENTIONS)}", dividend_convention)
        with self._lock():
            _checkpoint("start")
            previous = self._current_or_none()
            self._hash_cache()  # loaded here, before the writing threads record what they hash
            if previous is not None:
                self._check_files(previous, reuse=True)
            stored_raw = previous.files_with_role("raw_bars") if previous else []
            self._created = []
            # The previous version's derived tables are read, and the new raw files written, in the
            # background while the bars are validated and the actions and factors derived (which
            # reads only the stored files and the new rows in memory): Parquet decoding, encoding
            # and hashing release the GIL, the derivation is mostly pandas. The derived tables are
            # read (and then written) by one thread, in the order they are needed: on two cores a
            # second one slowed the thread doing the derivation more than it gained. If anything
            # fails, every file this call created is removed again.
            with ThreadPoolExecutor(max_workers=2) as background, ThreadPoolExecutor(max_workers=1) as tables:
                background.submit(duck.warm)  # the freeze's first look-up then finds DuckDB ready
                reading = read_stored(tables, self.root, previous)
                writing = None
                try:
                    new_rows = find_new_rows(self.root, previous, NewBars.validated(bars, as_of))
                    writing = background.submit(self._write_raw, new_rows)
                    derived = derive_actions_and_factors(
                        self.root, previous, stored_raw, new_rows, splits, dividends, dividend_convention, self._write_derived,
                        tables, reading,
                    )
                    added = writing.result()
                    raw_entries = self._compact_raw(stored_raw, added) if previous is not None else added
                except BaseException as exc:
                    if writing is not None:
                        wait([writing])  # never leave a thread writing into the lake after the lock is released
                    self._remove_created()
                    if is_write_failure(exc) and not isinstance(exc, LakeError):
                        current = previous.version_id if previous else "no version"
                        raise LakeWriteError(self.root, "write new files into", exc,
                                             f"nothing was published; {current} stays current") from exc
                    raise
            _checkpoint("raw_written")
            _checkpoint("derived_written")
            self._save_hash_cache()
            entries = raw_entries + derived.entries
            return Candidate(
                base_version_id=previous.version_id if previous else None,
                entries=tuple(entries),
                content_hash=content_hash(entries, dividend_convention),
                provider=provider,
                dividend_convention=dividend_convention,
                notes=dict(notes or {}),
                new_rows=len(new_rows),
                events_table=derived.events,
                actions_set_aside=derived.set_aside,
            )

    def publish(self, candidate: Candidate) -> FreezeResult:
        """Make `candidate` the current version, unless an identical version exists (then that one
        becomes current and no new version is made). Refuses if the lake moved on meanwhile."""
        with self._lock():
            current = self.current_version_id()
            if current != candidate.base_version_id:
                raise LakeError(
                    f"the candidate was prepared on version {candidate.base_version_id}, but {current} is current now; prepare again"
                )
            for entry in candidate.entries:
                self._check_file(entry, reuse=True)
            self._save_hash_cache()
            for existing in reversed(self.versions()):
                if existing.content_hash == candidate.content_hash:
                    if existing.version_id != current:
                        self._make_current(existing, new=False)
                    return FreezeResult(existing, created=False, new_rows=0, events_table=candidate.events_table,
                                        actions_set_aside=candidate.actions_set_aside)
            manifest = self._manifest(
                list(candidate.entries), candidate.content_hash, candidate.provider, candidate.dividend_convention, candidate.notes
            )
            self._make_current(manifest, new=True)
            return FreezeResult(manifest, created=True, new_rows=candidate.new_rows, events_table=candidate.events_table,
                                actions_set_aside=candidate.actions_set_aside)

    def _manifest(self, entries: list[FileEntry], chash: str, provider: str, convention: str, notes: dict) -> Manifest:
        raw = [e for e in entries if e.role == "raw_bars"]
        now = dt.datetime.now(dt.timezone.utc)
        counts: dict[str, int] = {"bars": sum(e.rows for e in raw)}
        for entry in entries:
            if entry.role != "raw_bars":  # a segmented table's files add up (see freeze_steps.SEGMENTS_MAX)
                counts[entry.role] = counts.get(entry.role, 0) + entry.rows
        return Manifest(
            version_id=f"v{now:%Y%m%dT%H%M%S%f}Z-{chash[:8]}",
            created_at=now.isoformat(),
            provider=provider,
            dividend_convention=convention,
            start_date=min((e.min_date for e in raw if e.min_date), default=None),
            end_date=max((e.max_date for e in raw if e.max_date), default=None),
            row_counts=counts,
            files=tuple(sorted(entries, key=lambda e: (e.role, e.path))),
            content_hash=chash,
            notes=notes,
        )

    def _make_current(self, manifest: Manifest, new: bool) -> None:
        """Publish `manifest` (`new`: a version not stored yet) as the current version, in an
        order that a crash or a full disk cannot break:

        1. the manifest, in a temporary folder (`new` only);
        2. the catalog the lake will have, beside catalog.duckdb (retention already applied);
        3. the version folder renamed into `versions/` (`new` only);
        4. CURRENT replaced (the publication itself);
        5. the catalog renamed over catalog.duckdb;
        6. the versions retention drops, and the files no version references, deleted.

        A failure in 1-4 removes what this call wrote and leaves the previous version current.
        A crash between 4 and 5 leaves a catalog that shows the previous version: the next
        writer of the lake notices it and rewrites the catalog, and every reader of the lake
        reads through CURRENT meanwhile."""
        previous = self.current_version_id()
        versions = self.versions() + ([manifest] if new else [])
        kept, dropped = self._retention(versions, manifest.version_id)
        staged = self.versions_dir / f".tmp-{manifest.version_id}"
        final = self.versions_dir / manifest.version_id
        catalog_tmp: Path | None = None
        renamed = False
        try:
            if new:
                self.versions_dir.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(staged, ignore_errors=True)
                staged.mkdir()
                atomic_write_text(staged / "manifest.json", manifest.to_json())
                _checkpoint("manifest_written")
            catalog_tmp = catalog.write(self.root, self.catalog_path, kept, manifest.version_id, self.pins())
            _checkpoint("catalog_written")
            if new:
                os.replace(staged, final)
                renamed = True
                fsync_dir(self.versions_dir)
                _checkpoint("version_renamed")
            self._set_current(manifest.version_id)
        except BaseException as exc:
            shutil.rmtree(staged, ignore_errors=True)
            if renamed:
                shutil.rmtree(final, ignore_errors=True)
            if catalog_tmp is not None:
                catalog.remove_temporary(catalog_tmp)
            if is_write_failure(exc):
                raise LakeWriteError(self.root, "publish a version in", exc,
                                     f"nothing was published; {previous or 'no version'} stays current") from exc
            raise
        _checkpoint("current_switched")
        try:
            catalog.install(catalog_tmp, self.catalog_path)
        except OSError as exc:
            catalog.remove_temporary(catalog_tmp)
            raise LakeWriteError(self.root, "rewrite catalog.duckdb in", exc,
                                 f"version {manifest.version_id} is published and current; catalog.duckdb still shows "
                                 f"{previous} until the next freeze rewrites it") from exc
        _checkpoint("catalog_rebuilt")
        self._delete_versions(dropped)

    def _retention(self, versions: list[Manifest], current: str) -> tuple[list[Manifest], list[Manifest]]:
        """`versions` split into those kept -- the newest `retention`, the pinned ones and
        `current` -- and those to delete, each oldest first."""
        keep = {m.version_id for m in versions[-self.retention:]} | set(self.pins()) | {current}
        return [m for m in versions if m.version_id in keep], [m for m in versions if m.version_id not in keep]

    def _set_current(self, version_id: str) -> None:
        atomic_write_text(self.root / "CURRENT", version_id + "\n")

    def _current_or_none(self) -> Manifest | None:
        version_id = self.current_version_id()
        return self.version(version_id) if version_id else None

    # ---- writing immutable files -----------------------------------------------------------
    def _write_raw(self, new_rows: NewBars) -> list[FileEntry]:
        """One content-addressed file per year, rows sorted by (symbol, date), symbols as plain
        strings (Parquet dictionary-encodes each row group with the symbols it holds; the file is
        then the same whatever encoding the bars came in). Each Arrow chunk is split by year, and
        each year gathered and written in its own thread (Arrow and Parquet release the GIL)."""
        if new_rows.empty:
            return []
        table = new_rows.table
        years = _years(table.column("date").cast(pa.int32()).to_numpy())
        first = int(years.min())  # the years present, counted (not a set of 12.6M Python ints)
        present = (np.flatnonzero(np.bincount(years - first)) + first).tolist()

        def write_year(year: int) -> FileEntry:
            pieces, start = [], 0
            for batch in table.to_batches():  # a take per chunk: on the chunked table it is 4x slower
                rows = np.flatnonzero(years[start:start + batch.num_rows] == year)
                start += batch.num_rows
                if len(rows):
                    pieces.append(batch.take(pa.array(rows)))
            part = _plain_symbols(pa.Table.from_batches(pieces).combine_chunks())
            return self._write_content_file(part, f"raw/bars/year={year}", "", "raw_bars")

        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            return list(pool.map(write_year, present))

    def _compact_raw(self, stored: list[FileEntry], added: list[FileEntry]) -> list[FileEntry]:
        """The raw files of the candidate: `stored` and `added`, except that a year which gained a
        file and now has more than RAW_FILES_PER_YEAR has all its files but the largest merged
        into one (sorted by symbol and date). Each refreeze adds a small file; without this a
        year of them would make one symbol's history a read of 250 files (5x slower, measured).
        The merged files stay as long as an older version lists them (see retention)."""
        entries = stored + added
        by_year: dict[str, list[FileEntry]] = {}
        for entry in entries:
            by_year.setdefault(entry.path.split("/")[2], []).append(entry)  # raw/bars/year=YYYY/<sha>.parquet
        grown = {entry.path.split("/")[2] for entry in added}
        for folder, files in sorted(by_year.items()):
            if folder not in grown or len(files) <= RAW_FILES_PER_YEAR:
                continue
            largest = max(files, key=lambda e: (e.rows, e.path))
            merged = [e for e in files if e is not largest]
            table = pa.concat_tables([_plain_symbols(t) for t in read_files(self.root, merged)])
            table = table.take(pc.sort_indices(table, sort_keys=[("symbol", "ascending"), ("date", "ascending")]))
            compacted = self._write_content_file(table, f"raw/bars/{folder}", "", "raw_bars")
            log.info("lake: merged %d raw files of %s into %s", len(merged), folder, compacted.path)
            entries = [e for e in entries if all(e is not m for m in merged)] + [compacted]
        return entries

    def _write_derived(self, table: pa.Table, role: str) -> FileEntry:
        folder = "factors" if role in ("factors", "adjustment_events") else "actions"
        return self._write_content_file(table, folder, "" if role == "factors" else f"{role}-", role)

    def _write_content_file(self, table: pa.Table, folder: str, prefix: str, role: str) -> FileEntry:
        directory = self.root / folder
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{prefix}{os.getpid()}-{id(table)}.parquet.tmp"
        # Dictionary pages for the string columns only: floats rarely repeat, and trying a
        # dictionary on them first costs a third of the write.
        strings = [f.name for f in table.schema
                   if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_dictionary(f.type)]
        rows = {"raw_bars": RAW_ROW_GROUP_ROWS, "factors": FACTOR_ROW_GROUP_ROWS}.get(role, ROW_GROUP_ROWS)
        # LZ4 rather than Snappy: files of the same size, written 6% slower, and DuckDB reads one
        # symbol's history 18% faster and scans everything 27% faster (measured on the benchmark's lake).
        # Every page carries a CRC32 (Parquet page checksums): a flipped byte fails the read of
        # that page wherever the pipeline reads with pyarrow, instead of changing a value.
        pq.write_table(table, tmp, row_group_size=rows, compression="lz4", use_dictionary=strings, write_page_checksum=True)
        digest = sha256_file(tmp)
        final = directory / f"{prefix}{digest[:24]}.parquet"
        if final.exists():
            tmp.unlink()  # the same content is stored already: publish verifies that file
        else:
            os.replace(tmp, final)
            fsync_dir(directory)
            self._remember(final.relative_to(self.root).as_posix(), digest, final)
            self._created.append(final)
        min_date = max_date = None
        if "date" in table.column_names and table.num_rows:
            dates = table.column("date")
            min_date = str(pc.min(dates).as_py())
            max_date = str(pc.max(dates).as_py())
        return FileEntry(
            path=final.relative_to(self.root).as_posix(),
            sha256=digest,
            role=role,
            rows=table.num_rows,
            bytes=final.stat().st_size,
            min_date=min_date,
            max_date=max_date,
        )

    def _remove_created(self) -> None:
        """Undo a failed prepare: delete the data files it created (never one that existed before
        it: content addressing makes an identical earlier file the same path, and it is kept)."""
        for path in self._created:
            path.unlink(missing_ok=True)
            self._hash_cache().pop(path.relative_to(self.root).as_posix(), None)
        self._created = []

    # ---- integrity, retention --------------------------------------------------------------
    def verify(self, version_id: str | None = None) -> list[str]:
        """Re-hash every file of a version (default: the current one) against its manifest and,
        for the current version, check that catalog.duckdb shows it (`catalog_problems`);
        returns the problems found (empty when all is well)."""
        manifest = self.version(version_id) if version_id else self.current_version()
        problems = []
        for entry in manifest.files:
            try:
                self._check_file(entry)
            except LakeCorruptionError as exc:
                problems.append(str(exc))
        if manifest.version_id == self.current_version_id():
            problems += [f"lake catalog {self.catalog_path}: {problem}" for problem in self.catalog_problems()]
        return problems

    def verify_all(self) -> dict[str, list[str]]:
        """`verify` of every retained version: version id -> the problems found (empty lists
        when all is well). The whole check: every file re-hashed, and the catalog."""
        return {manifest.version_id: self.verify(manifest.version_id) for manifest in self.versions()}

    def _check_files(self, manifest: Manifest, reuse: bool = False) -> None:
        for entry in manifest.files:
            self._check_file(entry, reuse)

    def _check_file(self, entry: FileEntry, reuse: bool = False) -> None:
        """Re-hash `entry`'s file against its sha256. `reuse`: skip the hashing when the file was
        hashed before and its inode, size, mtime and ctime (ns) have not changed since."""
        path = self.abspath(entry)
        if not path.exists():
            raise LakeCorruptionError(entry.path, "is missing")
        if reuse and self._hash_cache().get(entry.path) == (entry.sha256, *_stat_key(path)):
            return
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise LakeCorruptionError(entry.path, f"sha256 {actual[:12]}... does not match the manifest's {entry.sha256[:12]}...")
        self._remember(entry.path, actual, path)

    def _remember(self, rel_path: str, digest: str, path: Path) -> None:
        """Record that `path` hashed to `digest`, unless it changed too recently to tell a later
        change by its stat: file times come from a clock that ticks every few milliseconds, so a
        file changed again within the same tick would keep its ctime ("racily clean", as git
        calls it). Such a file is hashed again next time instead."""
        key = _stat_key(path)
        if time.time_ns() - key[3] >= RACY_NS:
            self._hash_cache()[rel_path] = (digest, *key)
        else:
            self._hash_cache().pop(rel_path, None)

    def _hash_cache(self) -> dict[str, tuple[str, int, int, int, int]]:
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

    def _save_hash_cache(self) -> None:
        """Written atomically; a failure costs only re-hashing next time."""
        cache = self._hash_cache()
        try:
            atomic_write_json(self.root / HASH_CACHE_NAME, {k: list(v) for k, v in sorted(cache.items())
                                                            if (self.root / k).exists()})
        except OSError as exc:
            log.warning("lake: could not save the hash cache (%s); the next freeze re-hashes every file", exc)

    def _delete_versions(self, dropped: list[Manifest]) -> None:
        """Delete the versions retention dropped (the catalog no longer lists them), then the
        data files no remaining version references."""
        for manifest in dropped:
            trash = self.versions_dir / f".trash-{manifest.version_id}"
            os.replace(self.versions_dir / manifest.version_id, trash)
            shutil.rmtree(trash, ignore_errors=True)
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        referenced = {entry.path for m in self.versions() for entry in m.files}
        for folder in ("raw", "actions", "factors"):
            base = self.root / folder
            if not base.exists():
                continue
            for path in base.rglob("*"):
                if path.is_file() and path.relative_to(self.root).as_posix() not in referenced:
                    path.unlink()
        for leftover in self.versions_dir.glob(".t*"):  # .tmp-* and .trash-* from interrupted runs
            shutil.rmtree(leftover, ignore_errors=True)

    def _rebuild_catalog(self) -> None:
        catalog.rebuild(self.root, self.catalog_path, self.versions(), self.current_version_id(), self.pins())

    def catalog_problems(self) -> list[str]:
        """What is wrong with catalog.duckdb: it shows another version than CURRENT names, was
        written for another folder or older view definitions, or is missing or unreadable.
        Empty when all is well. The next writer of the lake (a freeze, a pin, `repair`) rewrites
        it; readers of the lake read through CURRENT meanwhile."""
        problems: list[str] = []
        current = self.current_version_id()
        if current is None:
            return problems
        state = catalog.read_state(self.catalog_path)
        if state is None:
            problems.append(f"catalog.duckdb is missing or unreadable (CURRENT names {current})")
        elif state.root != str(self.root):
            problems.append(f"catalog.duckdb was written for the lake folder {state.root}")
        elif state.views != catalog.views_fingerprint():
            problems.append("catalog.duckdb holds views of an older definition")
        elif state.current_version != current:
            problems.append(f"catalog.duckdb shows version {state.current_version} but CURRENT names {current}")
        return problems

    def repair(self) -> list[str]:
        """Take the writer lock, which repairs what an interrupted writer left (see `_repair`);
        the catalog problems found before (empty when there was nothing to rewrite)."""
        problems = self.catalog_problems()
        with self._lock():
            pass
        return problems

    def _repair(self) -> None:
        """Undo what an interrupted writer left (run under the lock, where no other writer runs):
        temporary files beside CURRENT, the pins and the hash cache, temporary catalogs and
        version folders, and a catalog that disagrees with CURRENT (rewritten)."""
        for leftover in [*self.root.glob(".*.tmp"), *catalog.leftovers(self.catalog_path)]:
            leftover.unlink(missing_ok=True)
        if self.versions_dir.exists():
            for leftover in self.versions_dir.glob(".t*"):  # .tmp-* and .trash-*
                shutil.rmtree(leftover, ignore_errors=True)
        problems = self.catalog_problems()
        if problems:
            log.warning("lake: %s; rewriting catalog.duckdb", "; ".join(problems))
            self._rebuild_catalog()

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """The lake's writer lock (one writer at a time; readers never take it). Taking it
        repairs what an interrupted writer left (`_repair`)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / ".lock", "a")
        except OSError as exc:
            raise LakeWriteError(self.root, "write", exc, "nothing was changed") from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LakeBusyError(f"another process is writing the lake at {self.root}") from None
            try:
                try:
                    self._repair()
                except BaseException as exc:
                    if is_write_failure(exc):
                        raise LakeWriteError(self.root, "repair", exc, "nothing was changed") from exc
                    raise
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


ROW_GROUP_ROWS = 128 * 1024
# Raw bars are sorted by (symbol, date): a row group of 16k rows holds a few symbols' year, so a
# one-symbol read touches ~16k rows per year file instead of 128k (row groups are skipped by their
# symbol statistics).
RAW_ROW_GROUP_ROWS = 16 * 1024
# Factors (sorted by symbol) in row groups of a few hundred symbols, for the same reason: a
# one-symbol read of the adjusted views scans one row group of the factor table, not all of it.
# (2k rows made the table 40% larger and its write -- every nightly refreeze's last -- 40% slower.)
FACTOR_ROW_GROUP_ROWS = 8 * 1024
# A year partition holds at most this many raw files after a refreeze (see `Lake._compact_raw`).
RAW_FILES_PER_YEAR = 12
HASH_CACHE_NAME = ".hash_cache.json"
# A file whose ctime is this close to the moment it was hashed is not trusted by its stat later
# (see `Lake._remember`): far more than the file-time clock's tick (at most 10 ms).
RACY_NS = 50_000_000
ACTIONS_LOOKBACK = pd.Timedelta(days=30)  # see `Lake.actions_fetch_start`


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _plain_symbols(table: pa.Table) -> pa.Table:
    """A raw bars table with its symbols as plain strings (older lake files stored them
    dictionary-encoded, one dictionary per file)."""
    return table.set_column(0, pa.field("symbol", pa.string()), table.column("symbol").cast(pa.string()))


def _years(days: np.ndarray) -> np.ndarray:
    """The calendar year (int16) of each day number (days since 1970-01-01)."""
    first = int(days.min())
    lut = np.arange(first, int(days.max()) + 1).astype("datetime64[D]").astype("datetime64[Y]").astype(np.int16) + 1970
    return lut[days - first]
