"""Reading a lake version: typed queries, bars in a view, event returns and the derived tables.

Every read builds its views from the manifest of the version asked for (default: the one CURRENT
names), in a read-only session (`sessions`); a reader never writes and never takes the writer
lock, so reads work on a read-only lake and while a freeze runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kobe_pipelines.data import adjustments, rules, schema
from kobe_pipelines.lake import catalog, sessions, symbol_reads
from kobe_pipelines.lake.errors import SymbolRequestError
from kobe_pipelines.lake.file_store import ContentStore
from kobe_pipelines.lake.manifest import FileEntry, Manifest
from kobe_pipelines.lake.segments import DERIVED_ORDER, in_derived_order
from kobe_pipelines.lake.versions import VersionStore

VIEWS = ("total", "split", "raw")
VIEW_TABLES = {"total": "bars", "split": "bars_split_adjusted", "raw": "bars_raw"}


class LakeReader:
    """Reads of the lake whose versions `versions` holds and whose files `files` holds."""

    def __init__(self, versions: VersionStore, files: ContentStore):
        self.versions = versions
        self.files = files

    @property
    def root(self) -> Path:
        return self.versions.root

    def manifest(self, version_id: str | None = None) -> Manifest:
        return self.versions.version(version_id) if version_id else self.versions.current_version()

    def connect(self, version_id: str | None = None, start: dt.date | str | None = None,
                end: dt.date | str | None = None) -> duckdb.DuckDBPyConnection:
        """A read-only session (see `sessions`) with views `bars`, `bars_split_adjusted`, `bars_raw`
        over `version_id` (default: the current version) and `lake_versions`. It may read that
        version's files and nothing else; with `start`/`end`, only its raw files of those dates
        (`files_between`): the views then hold those dates' bars and perhaps others."""
        return self._session(files_between(self.manifest(version_id).files, start, end))

    def query(self, sql: str, version_id: str | None = None) -> pd.DataFrame:
        """The rows of a read-only query (SELECT only: anything else raises `QueryRefused`) over
        the views of `version_id` (default: the current version), `lake_versions`, and every
        retained version as `catalog."<version id>".bars` (catalog.duckdb, attached read-only)."""
        statements = sessions.read_only_statements(sql)
        with self._session(self.manifest(version_id).files, catalog_path=self.root / "catalog.duckdb") as con:
            return sessions.run(con, statements)

    def read_bars(self, version_id: str | None = None, view: str = "total", symbols: Sequence[str] | None = None,
                  start: dt.date | str | None = None, end: dt.date | str | None = None) -> pd.DataFrame:
        """Bars of one version in `schema.BAR_COLUMNS`, sorted by symbol and date. `view`: "total"
        (split- and dividend-adjusted), "split" (split-adjusted) or "raw". `symbols`: tickers
        (`SymbolRequestError` names one that cannot be a ticker); a symbol the version lacks has no rows.

        A read of a few symbols opens only the row groups holding them and adjusts those rows
        itself (`symbol_reads`), when that beats a DuckDB scan of the files (`SymbolPlan.pays`);
        both give exactly the rows and values of the view."""
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS} (got {view!r})")
        files = files_between(self.manifest(version_id).files, start, end)
        if symbols is not None:
            symbols = checked_symbols(symbols)
            roles = ("raw_bars",) if view == "raw" else ("raw_bars", "factors")
            plan = symbol_reads.plan(self.root, [e for e in files if e.role in roles], symbols)
            if plan.pays:
                bars = pruned_bars(plan, view, start, end)
                if bars is not None:
                    return bars
        where, params = [], []
        if symbols is not None:
            # a list_contains filter is applied in the scan (row groups of other symbols are
            # skipped); a join against the list would read every bar first
            where.append("list_contains(?, symbol)")
            params.append(list(symbols))
        if start is not None:
            where.append("date >= ?")
            params.append(pd.Timestamp(start).date())
        if end is not None:
            where.append("date <= ?")
            params.append(pd.Timestamp(end).date())
        sql = f"SELECT * FROM {VIEW_TABLES[view]}" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY symbol, date"
        with self._session(files) as con:
            frame = con.execute(sql, params).df()
        return schema.normalize_bars(frame)

    def _session(self, files: Sequence[FileEntry], catalog_path: Path | None = None) -> duckdb.DuckDBPyConnection:
        """A read-only session over `files`, beside `lake_versions` (and the catalog, when given)."""
        return sessions.open_session(self.root, files, self.versions.versions(), self.versions.current_version_id(),
                                     self.versions.pins(), catalog_path=catalog_path)

    def event_returns(self, files: Sequence[FileEntry], events: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Close-to-close log return on each event date, per adjusted view ("split", "total"),
        over the given files (a version's or a candidate's). `events` needs symbol, event_date;
        with `prev_date` (each event's last bar before its session, as the events table records
        it) only the bars of the events' symbols from the earliest prev_date to the latest
        event_date are read, not their whole history."""
        keyed = events[["symbol", "event_date"]].drop_duplicates().copy()
        keyed["event_date"] = pd.to_datetime(keyed["event_date"]).dt.date
        since = pd.to_datetime(events["prev_date"]).min() if "prev_date" in events.columns and len(events) else pd.NaT
        low = since.date() if pd.notna(since) else None
        high = keyed["event_date"].max() if len(keyed) else None
        bounds = [low or dt.date.min, high or dt.date.max]
        out = {}
        with duckdb.connect() as con:
            catalog.create_views(con, self.root, files_between(files, low, high), schema_name="main")
            con.register("events", keyed)
            for view in ("split", "total"):
                out[view] = con.execute(
                    f"""
                    WITH r AS (
                        SELECT symbol, date, ln(close) - ln(lag(close) OVER (PARTITION BY symbol ORDER BY date)) AS log_return
                        FROM {VIEW_TABLES[view]} WHERE symbol IN (SELECT DISTINCT symbol FROM events) AND date BETWEEN ? AND ?
                    )
                    SELECT e.symbol, e.event_date, r.log_return FROM events e
                    JOIN r ON r.symbol = e.symbol AND r.date = e.event_date
                    WHERE r.log_return IS NOT NULL ORDER BY e.symbol, e.event_date
                    """, bounds
                ).df()
        return out

    def derived_table(self, role: str, version_id: str | None = None) -> pd.DataFrame | None:
        """A version's derived table -- "splits", "dividends", "action_provenance", "factors",
        "adjustment_events" or "actions_set_aside" -- as one frame in its order (a table may span
        several files; every page checked against its checksum); None when the version has none."""
        if role not in DERIVED_ORDER:
            raise ValueError(f"role must be one of {sorted(DERIVED_ORDER)} (got {role!r})")
        entries = self.manifest(version_id).files_with_role(role)
        if not entries:
            return None
        return in_derived_order(pa.concat_tables(self.files.read(entries, DERIVED_ORDER)), role).to_pandas()

    def events(self, version_id: str | None = None) -> pd.DataFrame:
        """The adjustment events of a version (one row per split or dividend applied, with its
        effective session `event_date`, amounts and factor)."""
        events = self.derived_table("adjustment_events", version_id)
        return events if events is not None else pd.DataFrame(columns=["symbol", "event_date"])


def files_between(files: Sequence[FileEntry], start: dt.date | str | None, end: dt.date | str | None) -> list[FileEntry]:
    """`files` without the raw files whose dates all lie before `start` or after `end` (by the
    manifest's min and max dates): a read of some dates opens only the years holding them."""
    low = str(pd.Timestamp(start).date()) if start is not None else None
    high = str(pd.Timestamp(end).date()) if end is not None else None

    def needed(entry: FileEntry) -> bool:
        if entry.role != "raw_bars" or entry.min_date is None or entry.max_date is None:
            return True
        return (low is None or entry.max_date >= low) and (high is None or entry.min_date <= high)

    return [entry for entry in files if needed(entry)]


def checked_symbols(symbols: Sequence[str]) -> list[str]:
    """`symbols` as a list, each a ticker (`rules.symbol_problem`); raises `SymbolRequestError`
    naming the first that is not, or when `symbols` is one string rather than a list of them."""
    if isinstance(symbols, (str, bytes)):
        raise SymbolRequestError(repr(symbols), "symbols", f"must be a list of tickers, not one string (pass [{symbols!r}])")
    out = list(symbols)
    for symbol in out:
        problem = rules.symbol_problem(symbol)
        if problem is not None:
            raise SymbolRequestError(repr(symbol), "symbols", problem)
    return out


def pruned_bars(plan: symbol_reads.SymbolPlan, view: str, start: dt.date | str | None,
                end: dt.date | str | None) -> pd.DataFrame | None:
    """`read_bars` of the planned symbols from the planned row groups: the raw rows between
    `start` and `end` by symbol and date, times the factor of the interval each falls in
    (`adjustments.apply_factors`, the views' join: valid_from <= date < valid_to, factor 1 outside
    every interval). None when some symbol's factor intervals overlap (the views' join would then
    repeat bars): the caller scans instead."""
    raw, factors = plan.read("raw_bars", "factors") if view != "raw" else (*plan.read("raw_bars"), None)
    if raw is None:
        return schema.empty_bars()
    if start is not None:
        raw = raw.filter(pc.greater_equal(raw.column("date"), pa.scalar(pd.Timestamp(start).date(), pa.date32())))
    if end is not None:
        raw = raw.filter(pc.less_equal(raw.column("date"), pa.scalar(pd.Timestamp(end).date(), pa.date32())))
    raw = raw.take(pc.sort_indices(raw, [("symbol", "ascending"), ("date", "ascending")]))
    frame = raw.select(list(schema.BAR_COLUMNS)).to_pandas(date_as_object=False, coerce_temporal_nanoseconds=True)
    bars = schema.normalize_bars(frame)
    if factors is None or factors.num_rows == 0:
        return bars
    if intervals_overlap(factors):
        return None
    return adjustments.apply_factors(bars, factors.to_pandas(), view)


def intervals_overlap(factors: pa.Table) -> bool:
    """Whether two factor intervals of one symbol overlap (valid_to null: open-ended)."""
    ordered = factors.take(pc.sort_indices(factors, [("symbol", "ascending"), ("valid_from", "ascending")]))
    symbols = ordered.column("symbol").to_numpy(zero_copy_only=False)
    starts = ordered.column("valid_from").cast(pa.int64()).to_numpy()
    ends = ordered.column("valid_to").cast(pa.int64()).fill_null(np.iinfo(np.int64).max).to_numpy()
    return bool(((symbols[1:] == symbols[:-1]) & (ends[:-1] > starts[1:])).any())
