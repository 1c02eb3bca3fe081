"""The derived tables of a version and how a refreeze changes them: whole, or by one more segment.

Derived tables (roles), in the order a freeze writes them: splits, dividends, action_provenance,
factors, adjustment_events, actions_set_aside. Each table's rows are kept in `DERIVED_ORDER`
(within each of its files). Tables a refreeze mostly adds rows to -- the dividends, when each
action was first fetched, the applied events -- are kept as up to `SEGMENTS_MAX` files each: a
refreeze writes its new rows as one more file (a segment), and the refreeze that would pass the
limit writes the table again as one file. Storage and time per refreeze then follow what
changed, not the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kobe_pipelines.lake.arrow_keys import to_arrow
from kobe_pipelines.lake.manifest import FileEntry, Manifest

ROLES = ("splits", "dividends", "action_provenance", "factors", "adjustment_events", "actions_set_aside")
ACTION_ROLES = ROLES[:3]
SEGMENTS_MAX = 16
DIVIDEND_ORDER = ["symbol", "ex_dividend_date", "cash_amount"]
PROVENANCE_KEYS = ["kind", "symbol", "date", "amount"]
EVENT_KEYS = ["symbol", "event_date", "kind"]
# The order of each derived table's rows (a segmented table's within each of its files).
DERIVED_ORDER = {
    "splits": ["symbol", "execution_date"], "dividends": DIVIDEND_ORDER, "action_provenance": PROVENANCE_KEYS,
    "factors": ["symbol", "valid_from"], "adjustment_events": EVENT_KEYS,
    "actions_set_aside": ["kind", "symbol", "date", "split_from", "split_to", "cash_amount"],
}


@dataclass(frozen=True)
class TableChange:
    """What a freeze writes of one derived table: the whole table (`append` False), or rows to add
    to the stored ones (a segment). Rows given as a frame become Arrow (in `schema`, when given)
    when they are written. `ordered`: whether a whole table's rows are in DERIVED_ORDER already.
    `rows` None means the table has no rows any more (no file)."""

    role: str
    rows: pa.Table | pd.DataFrame | None
    append: bool = False
    schema: pa.Schema | None = None
    ordered: bool = True

    def table(self) -> pa.Table:
        return self.rows if isinstance(self.rows, pa.Table) else to_arrow(self.rows, self.schema)


@dataclass(frozen=True)
class SegmentWrite:
    """A table change made concrete: the stored files kept as they are, and the table to write
    as one more file (None: nothing to write)."""

    kept: list[FileEntry]
    table: pa.Table | None


class StoredTables(Protocol):
    """The previous version's derived tables, as a freeze reads them."""

    def table(self, role: str) -> pa.Table | None:
        """All the rows of `role` (its files concatenated, in no order across files); None when
        the version has none."""
        ...


def files_by_role(previous: Manifest | None) -> dict[str, list[FileEntry]]:
    """The previous version's files of each derived table (empty lists for none)."""
    return {role: previous.files_with_role(role) if previous else [] for role in ROLES}


def in_derived_order(table: pa.Table, role: str) -> pa.Table:
    """A derived table of `role` sorted by DERIVED_ORDER."""
    return table.take(pc.sort_indices(table, sort_keys=[(k, "ascending") for k in DERIVED_ORDER[role]]))


def plan_write(change: TableChange, stored: list[FileEntry], stored_rows: StoredTables) -> SegmentWrite:
    """What to write for `change`, given the table's `stored` files: the whole table; one more
    segment while the table has fewer than SEGMENTS_MAX files; or, at the limit, the stored rows
    and the new ones as one file (`stored_rows` reads them)."""
    if change.rows is None:
        return SegmentWrite([], None)
    rows = change.table()
    role = change.role
    if not change.append or not stored:
        return SegmentWrite([], rows if change.ordered else in_derived_order(rows, role))
    if len(stored) < SEGMENTS_MAX:
        return SegmentWrite(list(stored), in_derived_order(rows, role))
    return SegmentWrite([], in_derived_order(pa.concat_tables([stored_rows.table(role), rows]), role))
