"""The derived tables of a candidate version, each change yielded as soon as it is known.

Order: the corporate-action tables (`actions.merge_actions`: splits, dividends, provenance, the
actions set aside), then the factor table, then the applied events (`factors`). The caller writes
each change while the next is computed. Nothing here reads a raw file of this freeze (they may
still be being written) or writes anything.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa

from kobe_pipelines.lake.actions import ActionsSetAside, merge_actions
from kobe_pipelines.lake.factors import all_factors, factors_reusable, refreshed_factors
from kobe_pipelines.lake.manifest import FileEntry, Manifest
from kobe_pipelines.lake.raw_bars import NewRows
from kobe_pipelines.lake.segments import StoredTables, TableChange


def freeze_time() -> str:
    """The time stamped on the actions a freeze fetches for the first time (UTC, ISO 8601, whole seconds)."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


class Derivation:
    """The derived tables of a freeze of `new_rows` (validated, not stored yet) with the fetched
    `splits` and `dividends`, on top of `previous` (its raw files `stored_raw`, its derived
    tables read through `stored`). After `changes()` is exhausted, `events` holds the version's
    applied events and `set_aside` the count of actions set aside.

    A refreeze keeps the stored tables in Arrow and turns into pandas only the rows it must look
    at: the stored actions from the earliest fetched date on, and the actions and events of the
    symbols whose factors can change."""

    def __init__(self, root: Path, previous: Manifest | None, stored_raw: list[FileEntry], new_rows: NewRows,
                 splits: pd.DataFrame, dividends: pd.DataFrame, convention: str, stored: StoredTables,
                 stored_files: dict[str, list[FileEntry]]):
        self.root = root
        self.previous = previous
        self.stored_raw = stored_raw
        self.new_rows = new_rows
        self.splits = splits
        self.dividends = dividends
        self.convention = convention
        self.stored = stored
        self.stored_files = stored_files
        self.events: pa.Table | pd.DataFrame | None = None
        self.set_aside = ActionsSetAside()
        self.event_jumps: pd.DataFrame | None = None

    def changes(self) -> Iterator[TableChange]:
        now = freeze_time()
        merge = merge_actions(self.root, self.stored, self.stored_files, self.splits, self.dividends,
                              [str(self.root / e.path) for e in self.stored_raw], self.new_rows.symbols, now)
        self.set_aside = merge.set_aside
        yield from merge.changes
        stored_factors, stored_events = self.stored.table("factors"), self.stored.table("adjustment_events")
        if factors_reusable(self.previous, self.convention, stored_factors, stored_events):
            produced = refreshed_factors(self.root, self.previous, self.new_rows, merge.actions, stored_factors,
                                         stored_events, self.convention, checked=self._checked)
        else:
            produced = all_factors(self.root, self.previous, self.new_rows, merge.actions, stored_events, self.convention,
                                   checked=self._checked)
        events_change = None
        for change in produced:
            if change.role == "adjustment_events":
                events_change = change
            yield change
        if events_change is None:
            self.events = stored_events
        elif events_change.append:
            self.events = pa.concat_tables([stored_events, events_change.table()])
        else:
            self.events = events_change.rows

    def _checked(self, jumps: pd.DataFrame) -> None:
        self.event_jumps = jumps
