"""`Lake`: the versioned data lake of one folder, behind one object.

Layout under the lake root (`data_lake/` by default)::

    raw/bars/through=YYYY/<sha>.parquet raw bars of the closed years up to YYYY, as traded (history)
    raw/bars/year=YYYY/<sha>.parquet    raw bars of one later year, or a closed year's added bars;
                                         a file is never changed (raw_bars)
    actions/<role>-<sha>.parquet         splits, dividends, provenance, actions set aside (actions)
    factors/<sha>.parquet                adjustment factor intervals and applied events (factors)
    versions/<version_id>/manifest.json  one per published lake version (versions)
    CURRENT                              the current version id (replaced atomically)
    pins.json                            versions kept regardless of retention
    catalog.duckdb                       DuckDB views over the current and retained versions (catalog)
    staging/                             ingested batches waiting for the next freeze (staging)

`Lake` only delegates: reads to `reader`, freezes to `publish` (under its writer lock), files to
`file_store`, versions to `versions`, staged batches to `staging`. See the package docstring for
which module decides what.
"""

from __future__ import annotations

import datetime as dt
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import duckdb
import pandas as pd
import pyarrow as pa

from kobe_pipelines import paths
from kobe_pipelines.data import schema
from kobe_pipelines.errors import ConfigError
from kobe_pipelines.lake import catalog, publish
from kobe_pipelines.lake.errors import LakeError, LakeWriteError, is_write_failure
from kobe_pipelines.lake.file_store import ContentStore
from kobe_pipelines.lake.manifest import FileEntry, Manifest
from kobe_pipelines.lake.publish import Candidate, FreezeResult
from kobe_pipelines.lake.stream import DEFAULT_BATCH_ROWS
from kobe_pipelines.lake.reader import LakeReader
from kobe_pipelines.lake.staging import PendingBatch, Staging
from kobe_pipelines.lake.versions import VersionStore

DEFAULT_RETENTION = 10

LakeVersion = Manifest


class Lake:
    """A lake folder. Cheap to construct; every method reads the folder afresh.

    `root`: the folder (default `paths.lake_dir()`); `retention`: how many versions a publish
    keeps besides the pinned ones (the settings layer reads `KOBE_LAKE_RETENTION`)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, retention: int = DEFAULT_RETENTION):
        self.root = paths.lake_dir(root)
        if retention < 1:
            raise ConfigError("retention", "must keep at least 1 version", retention)
        self.retention = retention
        self.files = ContentStore(self.root)
        self.version_store = VersionStore(self.root)
        self.reader = LakeReader(self.version_store, self.files)
        self.staging = Staging(self.root)

    # ---- locations -------------------------------------------------------------------------
    @property
    def versions_dir(self) -> Path:
        return self.version_store.versions_dir

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def staging_dir(self) -> Path:
        return self.staging.bars_dir

    def abspath(self, entry: FileEntry) -> Path:
        return self.files.path(entry)

    # ---- versions --------------------------------------------------------------------------
    def current_version_id(self) -> str | None:
        return self.version_store.current_version_id()

    def current_version(self) -> Manifest:
        return self.version_store.current_version()

    def version(self, version_id: str) -> Manifest:
        return self.version_store.version(version_id)

    def versions(self) -> list[Manifest]:
        """Published versions, oldest first."""
        return self.version_store.versions()

    def pins(self) -> dict[str, str]:
        return self.version_store.pins()

    def actions_fetch_start(self, history_start: str) -> str:
        """Where a refreeze fetches corporate actions from (`versions.ACTIONS_LOOKBACK` before
        the current version's last date, or `history_start` for an empty lake)."""
        return self.version_store.actions_fetch_start(history_start)

    def pin(self, version_id: str, reason: str) -> None:
        """Keep `version_id` regardless of retention (for example: a production model learned from it)."""
        self.version(version_id)
        with self._writer("pin a version in"):
            pins = self.pins()
            pins[version_id] = reason
            publish.save_pins(self.root, self.version_store, pins)

    def unpin(self, version_id: str) -> None:
        with self._writer("unpin a version in"):
            pins = self.pins()
            pins.pop(version_id, None)
            publish.save_pins(self.root, self.version_store, pins)

    # ---- reading ---------------------------------------------------------------------------
    def connect(self, version_id: str | None = None, start: dt.date | str | None = None,
                end: dt.date | str | None = None) -> duckdb.DuckDBPyConnection:
        """A read-only DuckDB session with the views of `version_id` (default: current); with
        `start`/`end`, over only the raw files holding those dates."""
        return self.reader.connect(version_id, start, end)

    def query(self, sql: str, version_id: str | None = None) -> pd.DataFrame:
        """The rows of a read-only SELECT (anything else raises `QueryRefused`)."""
        return self.reader.query(sql, version_id)

    def read_bars(self, version_id: str | None = None, view: str = "total", symbols: Sequence[str] | None = None,
                  start: dt.date | str | None = None, end: dt.date | str | None = None) -> pd.DataFrame:
        """Bars of one version in `schema.BAR_COLUMNS`, sorted by symbol and date; `view` "total", "split" or "raw";
        `symbols` a list of tickers (`SymbolRequestError` names one that is not); a few symbols
        are read from only the row groups holding them."""
        return self.reader.read_bars(version_id, view, symbols, start, end)

    def event_returns(self, files: Sequence[FileEntry], events: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Close-to-close log return on each event date, per adjusted view ("split", "total")."""
        return self.reader.event_returns(files, events)

    def events(self, version_id: str | None = None) -> pd.DataFrame:
        """The adjustment events of a version."""
        return self.reader.events(version_id)

    def derived_table(self, role: str, version_id: str | None = None) -> pd.DataFrame | None:
        """A version's derived table of `role` as one frame in its order; None when it has none."""
        return self.reader.derived_table(role, version_id)

    # ---- staging ---------------------------------------------------------------------------
    def stage_bars(self, label: str, bars: pd.DataFrame | pa.Table) -> Path:
        """Store an ingested batch (a frame or an Arrow table of `schema.BAR_COLUMNS`) until the next freeze."""
        return self.staging.stage_bars(label, bars)

    def write_pending_bars(self, label: str, bars: pd.DataFrame | pa.Table) -> PendingBatch:
        """Write a batch as `stage_bars` does, staged only once the returned `PendingBatch` is
        committed (discarded, nothing of it is staged)."""
        return self.staging.write_pending(label, bars)

    def staged_labels(self) -> list[str]:
        return self.staging.labels()

    def staged_bars_table(self, labels: list[str] | None = None) -> pa.Table:
        """The staged batches as one Arrow table in `schema.BARS_ARROW_SCHEMA`."""
        return self.staging.bars_table(labels)

    def clear_staged(self, labels: list[str]) -> None:
        self.staging.clear(labels)

    def stage_actions(self, splits: pd.DataFrame, dividends: pd.DataFrame) -> None:
        self.staging.stage_actions(splits, dividends)

    def staged_actions(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self.staging.actions()

    # ---- freezing --------------------------------------------------------------------------
    def freeze(self, bars: pd.DataFrame | pa.Table | Iterable[pa.Table], splits: pd.DataFrame, dividends: pd.DataFrame, *,
               provider: str, dividend_convention: str = "crsp", as_of: dt.date | None = None, notes: dict | None = None,
               batch_rows: int | None = DEFAULT_BATCH_ROWS) -> FreezeResult:
        """Validate the inputs, store what is new, and publish a lake version (prepare + publish)."""
        candidate = self.prepare(bars, splits, dividends, provider=provider, dividend_convention=dividend_convention,
                                 as_of=as_of, notes=notes, batch_rows=batch_rows)
        return self.publish(candidate)

    def prepare(self, bars: pd.DataFrame | pa.Table | Iterable[pa.Table], splits: pd.DataFrame, dividends: pd.DataFrame, *,
                provider: str, dividend_convention: str = "crsp", as_of: dt.date | None = None, notes: dict | None = None,
                batch_rows: int | None = DEFAULT_BATCH_ROWS) -> Candidate:
        """Validate the inputs and write the new immutable files; publish nothing.

        `bars`: a frame or an Arrow table of `schema.BAR_COLUMNS`, or such tables as batches (an
        iterable that can be iterated again, e.g. `FilesProvider.daily_bar_batches`). They may
        repeat bars already stored (identical values are ignored; different values raise
        `RawRestatementError`). The first freeze of a lake streams them `batch_rows` at a time,
        in bounded memory, with the same files as holding them at once (`batch_rows` None).
        `splits`/`dividends` are the provider's current view of corporate actions, merged with
        those stored. Any bad record raises before a version changes; the files written here stay
        invisible until `publish`."""
        if dividend_convention not in schema.DIVIDEND_CONVENTIONS:
            raise ConfigError("dividend_convention", f"must be one of {list(schema.DIVIDEND_CONVENTIONS)}", dividend_convention)
        with self._lock():
            return publish.prepare(self.root, self.files, self.version_store, bars, splits, dividends, provider,
                                   dividend_convention, as_of, notes, batch_rows)

    def publish(self, candidate: Candidate) -> FreezeResult:
        """Make `candidate` the current version, unless an identical version exists (then that one
        becomes current and no new version is made). Refuses if the lake moved on meanwhile."""
        with self._lock():
            return publish.publish(self.root, self.files, self.version_store, candidate, self.retention)

    def compact(self, as_of: dt.date | None = None) -> Manifest | None:
        """Merge the history files and every year file of the closed years (those before the year
        of `as_of`, default the last completed session) into new history files, and publish them
        as a new version with the same bars and tables; None when there is nothing to merge. The
        first refreeze after a year closes compacts by itself."""
        with self._lock():
            candidate = publish.prepare_compaction(self.root, self.files, self.version_store, as_of)
            if candidate is None:
                return None
            return publish.publish(self.root, self.files, self.version_store, candidate, self.retention).version

    # ---- integrity -------------------------------------------------------------------------
    def verify(self, version_id: str | None = None) -> list[str]:
        """Re-hash every file of a version (default: the current one) against its manifest and,
        for the current version, check that catalog.duckdb shows it (`catalog_problems`);
        returns the problems found (empty when all is well)."""
        manifest = self.version(version_id) if version_id else self.current_version()
        problems = self.files.problems(manifest.files)
        if manifest.version_id == self.current_version_id():
            problems += [f"lake catalog {self.catalog_path}: {problem}" for problem in self.catalog_problems()]
        return problems

    def verify_all(self) -> dict[str, list[str]]:
        """`verify` of every retained version: version id -> the problems found."""
        return {manifest.version_id: self.verify(manifest.version_id) for manifest in self.versions()}

    def catalog_problems(self) -> list[str]:
        """What is wrong with catalog.duckdb (shows another version than CURRENT names, written
        for another folder or older views, missing or unreadable); empty when all is well. The
        next writer of the lake rewrites it; readers read through CURRENT meanwhile."""
        return catalog.problems(self.root, self.catalog_path, self.current_version_id())

    def repair(self) -> list[str]:
        """Take the writer lock, which removes what an interrupted writer left and rewrites a
        catalog that disagrees with CURRENT; the catalog problems found before."""
        problems = self.catalog_problems()
        with self._lock():
            pass
        return problems

    # ---- the writer lock -------------------------------------------------------------------
    def _lock(self):
        return publish.writer_lock(self.root, self.version_store)

    @contextmanager
    def _writer(self, doing: str) -> Iterator[None]:
        """The writer lock, with the file system refusing a write turned into one `LakeWriteError` line."""
        with self._lock():
            try:
                yield
            except BaseException as exc:
                if is_write_failure(exc) and not isinstance(exc, LakeError):
                    raise LakeWriteError(self.root, doing, exc, "nothing was changed") from exc
                raise

