"""Corporate actions in a freeze: the fetched ones merged with those stored, validated, stamped
with when each was first fetched, and those of symbols without bars set aside.

A provider's list of actions is its current view: it may repeat stored actions (kept once),
bring new ones (validated against the symbols the lake holds bars of, together with the stored
splits of the same symbols so that a duplicate or a conflicting ratio is caught), and name
symbols the lake has no bar of (an OTC ticker, a symbol listed after the frozen range or
delisted before it). Those are set aside: kept in the version unvalidated (role
`actions_set_aside`), counted, and treated as fetched again by every later freeze, so that the
freeze which brings the symbol's first bars applies them. Stored actions are never dropped.

When each action was first fetched (`action_provenance`) is recorded but is not content: a
later fetch of the same actions makes no new version.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kobe_pipelines.data import schema, validation
from kobe_pipelines.lake import duck
from kobe_pipelines.lake.arrow_keys import (
    distinct_sorted_rows, rows_missing_from, symbol_set, table_symbol_set, to_arrow, union_rows,
)
from kobe_pipelines.lake.manifest import FileEntry
from kobe_pipelines.lake.segments import DIVIDEND_ORDER, PROVENANCE_KEYS, StoredTables, TableChange, in_derived_order


@dataclass(frozen=True)
class ActionsSetAside:
    """How many corporate actions a version holds but cannot apply because the lake has no bar
    of their symbol (see the module docstring)."""

    splits: int = 0
    dividends: int = 0
    symbols: int = 0

    @property
    def total(self) -> int:
        return self.splits + self.dividends


@dataclass(frozen=True)
class MergedActions:
    """Every action a version applies (of symbols with bars), and which of them are fresh."""

    splits: pd.DataFrame  # every split, validated, sorted by (symbol, execution_date)
    stored_dividends: pa.Table | None
    fresh_splits: pd.DataFrame  # the splits and dividends the previous version did not hold
    fresh_dividends: pd.DataFrame  # validated, sorted by DIVIDEND_ORDER

    @cached_property
    def dividends(self) -> pa.Table:
        """Every dividend: the stored ones, then the fresh ones."""
        stored = self.stored_dividends if self.stored_dividends is not None else to_arrow(schema.empty_dividends())
        return pa.concat_tables([stored, to_arrow(self.fresh_dividends[list(schema.DIVIDEND_COLUMNS)], stored.schema)])

    def dividends_frame(self) -> pd.DataFrame:
        """Every dividend as pandas, sorted by DIVIDEND_ORDER (the order a first freeze validates them in)."""
        if self.stored_dividends is None:
            return self.fresh_dividends
        return self.dividends.to_pandas().sort_values(DIVIDEND_ORDER, kind="stable")


@dataclass(frozen=True)
class ActionMerge:
    """The result of `merge_actions`: the actions to apply, the changes of the action tables (in
    the order they are to be written), and the count of actions set aside."""

    actions: MergedActions
    changes: list[TableChange]
    set_aside: ActionsSetAside


SET_ASIDE_SCHEMA = pa.schema([("kind", pa.string()), ("symbol", pa.string()), ("date", pa.timestamp("ns")),
                              ("split_from", pa.float64()), ("split_to", pa.float64()), ("cash_amount", pa.float64())])


def merge_actions(root: Path, stored: StoredTables, stored_files: dict[str, list[FileEntry]], splits: pd.DataFrame,
                  dividends: pd.DataFrame, raw_files: list[str], new_symbols: set[str], now: str) -> ActionMerge:
    """The stored actions merged with the fetched `splits` and `dividends` (and the stored
    set-aside ones); the symbols known are those of the stored actions, the new rows
    (`new_symbols`) and the stored raw files (`raw_files`, asked only about the symbols needed).
    `now` stamps the actions fetched for the first time. Only fetched actions the lake does not
    hold yet are validated: stored actions passed validation when they were stored."""
    stored_splits, stored_divs = stored.table("splits"), stored.table("dividends")
    aside_before = stored.table("actions_set_aside")
    fetched_splits, fetched_divs = with_set_aside(aside_before, schema.normalize_splits(splits),
                                                  schema.normalize_dividends(dividends))
    split_candidates = not_stored(stored_splits, fetched_splits, schema.SPLIT_COLUMNS, "execution_date")
    div_candidates = not_stored(stored_divs, fetched_divs, schema.DIVIDEND_COLUMNS, "ex_dividend_date")
    kept_splits = stored_splits.to_pandas() if stored_splits is not None else schema.empty_splits()
    # Symbols of stored actions were checked when they were stored (raw bars are never removed).
    stored_symbols = table_symbol_set(stored_splits) | table_symbol_set(stored_divs)
    needed = symbol_set(split_candidates) | symbol_set(div_candidates)
    symbols = stored_symbols | known_symbols(raw_files, new_symbols, needed - stored_symbols)
    split_candidates, unknown_splits = _split_by_symbol(split_candidates, symbols)
    div_candidates, unknown_divs = _split_by_symbol(div_candidates, symbols)
    if len(unknown_splits):  # the touched symbols' fetched splits are validated with the stored ones
        fetched_splits = _split_by_symbol(fetched_splits, symbols)[0]
    all_splits, fresh_splits = merge_splits(kept_splits, fetched_splits, symbol_set(split_candidates), symbols)
    fresh_divs = validation.validate_dividends(div_candidates, symbols)  # sorted by DIVIDEND_ORDER
    actions = MergedActions(all_splits, stored_divs, fresh_splits, fresh_divs)
    changes = []
    if len(fresh_splits) or stored_splits is None:
        changes.append(TableChange("splits", all_splits))
    added = fresh_divs[list(schema.DIVIDEND_COLUMNS)]
    if stored_divs is None or not added.empty:
        changes.append(TableChange("dividends", added, append=stored_divs is not None,
                                   schema=stored_divs.schema if stored_divs is not None else None))
    provenance = provenance_change(root, stored, stored_files["action_provenance"], len(kept_splits),
                                   stored_divs.num_rows if stored_divs is not None else 0, actions, now)
    if provenance is not None:
        changes.append(provenance)
    aside = set_aside_table(unknown_splits, unknown_divs)
    before = aside_before if aside_before is not None else SET_ASIDE_SCHEMA.empty_table()
    if not aside.equals(before):
        changes.append(TableChange("actions_set_aside", aside if aside.num_rows else None, ordered=True))
    return ActionMerge(actions, changes, count_set_aside(aside))


def _split_by_symbol(frame: pd.DataFrame, symbols: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of `frame` whose symbol is in `symbols`, and the others."""
    if frame.empty:
        return frame, frame
    known = pc.is_in(pa.array(frame["symbol"], type=pa.string(), from_pandas=True),
                     value_set=pa.array(sorted(symbols), pa.string())).to_numpy(zero_copy_only=False)
    return (frame, frame.iloc[:0]) if known.all() else (frame.loc[known], frame.loc[~known])


def with_set_aside(stored: pa.Table | None, splits: pd.DataFrame, dividends: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fetched splits and dividends with the stored set-aside actions added back."""
    if stored is None or stored.num_rows == 0:
        return splits, dividends
    rows = stored.to_pandas()
    kept_splits = rows.loc[rows["kind"] == "split"].rename(columns={"date": "execution_date"})
    kept_divs = rows.loc[rows["kind"] == "dividend"].rename(columns={"date": "ex_dividend_date"})
    return (pd.concat([splits, schema.normalize_splits(kept_splits)], ignore_index=True),
            pd.concat([dividends, schema.normalize_dividends(kept_divs)], ignore_index=True))


def set_aside_table(splits: pd.DataFrame, dividends: pd.DataFrame) -> pa.Table:
    """The set-aside table of a version: the actions of unknown symbols, each once, sorted by
    every column."""
    frame = pd.concat([
        pd.DataFrame({"kind": "split", "symbol": splits["symbol"], "date": splits["execution_date"],
                      "split_from": splits["split_from"], "split_to": splits["split_to"], "cash_amount": np.nan}),
        pd.DataFrame({"kind": "dividend", "symbol": dividends["symbol"], "date": dividends["ex_dividend_date"],
                      "split_from": np.nan, "split_to": np.nan, "cash_amount": dividends["cash_amount"]}),
    ], ignore_index=True)
    table = to_arrow(frame.astype({"kind": str, "symbol": str, "date": "datetime64[ns]"})[SET_ASIDE_SCHEMA.names],
                     SET_ASIDE_SCHEMA)
    return distinct_sorted_rows(in_derived_order(table, "actions_set_aside"))


def count_set_aside(table: pa.Table) -> ActionsSetAside:
    splits = int(pc.sum(pc.equal(table.column("kind"), "split")).as_py() or 0)
    return ActionsSetAside(splits=splits, dividends=table.num_rows - splits, symbols=len(pc.unique(table.column("symbol"))))


def merge_splits(stored: pd.DataFrame, fetched: pd.DataFrame, touched: set[str], symbols: set[str]
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every split (validated, sorted by symbol and date) and the fresh ones. `touched`: the
    symbols with a fetched split not stored as it is. Validation works per (symbol, date), and the
    other symbols' fetched splits are all stored already, so only the touched symbols' stored and
    fetched splits are validated together; the rest stay as stored."""
    if not touched:
        return stored, stored.iloc[:0]
    columns = list(schema.SPLIT_COLUMNS)
    if stored.empty:  # a first freeze: every fetched split is validated
        merged = validation.validate_splits(union_rows(stored, fetched, columns), symbols)
        return merged, merged
    in_stored, in_fetched = stored["symbol"].isin(sorted(touched)), fetched["symbol"].isin(sorted(touched))
    merged = validation.validate_splits(union_rows(stored.loc[in_stored], fetched.loc[in_fetched], columns), symbols)
    fresh = rows_missing_from(stored.loc[in_stored], merged, schema.SPLIT_COLUMNS)
    both = pd.concat([stored.loc[~in_stored, columns], merged[columns]], ignore_index=True)
    return both.sort_values(["symbol", "execution_date"], kind="stable").reset_index(drop=True), fresh


def not_stored(stored: pa.Table | None, fetched: pd.DataFrame, columns: tuple[str, ...], date_column: str) -> pd.DataFrame:
    """The rows of `fetched` that `stored` does not hold (all `columns` equal). Only the stored
    rows dated on or after the earliest fetched date can match: only those become pandas."""
    if stored is None or stored.num_rows == 0 or fetched.empty:
        return fetched
    first = fetched[date_column].min()
    if pd.notna(first):
        dates = stored.column(date_column)
        stored = stored.filter(pc.greater_equal(dates, pa.scalar(first, type=dates.type)))
    return rows_missing_from(stored.to_pandas(), fetched, columns)


def known_symbols(raw_files: list[str], new_symbols: set[str], needed: set[str]) -> set[str]:
    """Which of the `needed` symbols the lake holds bars of: those among the new rows' symbols
    (`new_symbols`), then those found in the raw files (that symbol list only)."""
    known = needed & new_symbols
    missing = needed - known
    if missing and raw_files:
        with duck.cursor() as con:
            rows = con.execute("SELECT DISTINCT symbol FROM read_parquet(?, hive_partitioning = false) WHERE symbol IN (SELECT unnest(?))",
                               [raw_files, sorted(missing)]).fetchall()
        known |= {row[0] for row in rows}
    return known


def provenance_change(root: Path, stored: StoredTables, files: list[FileEntry], n_stored_splits: int, n_stored_divs: int,
                      actions: MergedActions, now: str) -> TableChange | None:
    """When each action was first fetched (None: as stored).

    Stored actions are never dropped, so when the stored provenance has one row per stored
    action (and every stored action is still there), only the fresh actions are added, stamped
    `now`, and the stored rows are not even read; otherwise every action is matched with the
    stored provenance and the table rewritten."""
    provenance_schema = pq.read_schema(root / files[0].path) if files else to_arrow(empty_provenance()).schema
    splits, fresh_splits, fresh_divs = actions.splits, actions.fresh_splits, actions.fresh_dividends
    stored_rows = sum(entry.rows for entry in files)
    if stored_rows == n_stored_splits + n_stored_divs and len(splits) - len(fresh_splits) == n_stored_splits:
        if fresh_splits.empty and fresh_divs.empty and files:
            return None
        fresh = provenance_rows(fresh_splits, fresh_divs).assign(first_seen_at=now)[provenance_schema.names]
        return TableChange("action_provenance", fresh, append=bool(files), schema=provenance_schema, ordered=False)
    table = stored.table("action_provenance")
    kept = table.to_pandas() if table is not None else empty_provenance()
    keys = PROVENANCE_KEYS
    merged = provenance_rows(splits, actions.dividends_frame()).merge(kept[keys + ["first_seen_at"]], on=keys, how="left")
    merged["first_seen_at"] = merged["first_seen_at"].fillna(now)
    merged = merged.astype({"symbol": str, "first_seen_at": str})
    return TableChange("action_provenance", merged[provenance_schema.names], schema=provenance_schema, ordered=False)


def empty_provenance() -> pd.DataFrame:
    return pd.DataFrame({"kind": [], "symbol": [], "date": [], "amount": [], "first_seen_at": []}).astype(
        {"kind": str, "symbol": str, "date": "datetime64[ns]", "amount": "float64", "first_seen_at": str}
    )


def provenance_rows(splits: pd.DataFrame, divs: pd.DataFrame) -> pd.DataFrame:
    """One provenance row per action (kind, symbol, date, amount: split_to/split_from or cash)."""
    return pd.concat(
        [
            pd.DataFrame({"kind": "split", "symbol": splits["symbol"], "date": splits["execution_date"],
                          "amount": splits["split_to"] / splits["split_from"]}),
            pd.DataFrame({"kind": "dividend", "symbol": divs["symbol"], "date": divs["ex_dividend_date"],
                          "amount": divs["cash_amount"]}),
        ],
        ignore_index=True,
    )
