"""The factor table and the applied events of a freeze: which symbols to recompute, and what a
refreeze adds to the stored events.

A first freeze (or one under another dividend convention) computes every symbol's factors. A
refreeze recomputes only the symbols whose factors can differ: a symbol with a fresh action,
with an action no applied event covers yet (its session had no bar on one side), or with an
applied event a late bar restates (`event_closes.restated_by_new_bars`). The other symbols keep
their stored rows. When every stored event of the recomputed symbols comes out as it was, the
events table grows by the new rows alone (one more segment); otherwise it is rewritten.

Every computed adjustment passes `data.event_checks` (no unexplained jump, no split listed
twice) before anything of it is written; the returns it judged go to `checked` when given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kobe_pipelines.data import adjustments, event_checks, validation
from kobe_pipelines.lake.actions import MergedActions
from kobe_pipelines.lake.arrow_keys import (
    frame_rows_of, isin_sorted, key_tuples, large_strings, replace_symbols, same_values, symbol_set, table_rows_of, to_arrow,
)
from kobe_pipelines.lake.event_closes import bars_near_events, restated_events
from kobe_pipelines.lake.manifest import Manifest
from kobe_pipelines.lake.raw_bars import NewRows
from kobe_pipelines.lake.segments import DERIVED_ORDER, DIVIDEND_ORDER, EVENT_KEYS, TableChange


def factors_reusable(previous: Manifest | None, convention: str, stored_factors: pa.Table | None,
                     stored_events: pa.Table | None) -> bool:
    """Whether a refreeze may build on the previous version's factors and applied events: same
    dividend convention, both tables present, and the events record the date of the bar each ex
    close came from (a lake written before they did is recomputed once)."""
    if previous is None or previous.dividend_convention != convention:
        return False
    return stored_factors is not None and events_have_ex_dates(stored_events)


def events_have_ex_dates(events: pa.Table | None) -> bool:
    return events is not None and "ex_date" in events.column_names


def refreshed_factors(
    root: Path, previous: Manifest, new_rows: NewRows, actions: MergedActions, stored_factors: pa.Table,
    stored_events: pa.Table, convention: str, checked: Callable[[pd.DataFrame], None] | None = None,
) -> Iterator[TableChange]:
    """The changes of the factor table and then of the events, each yielded as soon as it is
    known (the factor table can be written while the events are compared); nothing when no
    symbol's factors can differ. The previous version's rows are kept but for `symbols_to_recompute`."""
    redo = symbols_to_recompute(actions, stored_events, new_rows.first_dates)
    if not redo:
        return
    splits = frame_rows_of(actions.splits, redo)
    # in the order a full freeze passes them: same-session cash amounts are summed in this order
    divs = table_rows_of(actions.dividends, redo).to_pandas().sort_values(DIVIDEND_ORDER, kind="stable")
    known = table_rows_of(stored_events, redo)
    bars_near, _ = bars_near_events(root, previous, new_rows, splits, divs, also=redo, known=known.to_pandas())
    part = adjustments.compute_factors(bars_near, splits, divs, convention=convention)
    jumps = event_checks.check_adjustment(part)
    if checked is not None:
        checked(jumps)
    yield TableChange("factors", replace_symbols(stored_factors, to_arrow(part.factors, stored_factors.schema), redo,
                                                 DERIVED_ORDER["factors"]))
    events = to_arrow(part.events, stored_events.schema)
    added = added_events(known, events)
    if added is None:
        # (sorted when written: stored events spread over files need not be in order)
        yield TableChange("adjustment_events", replace_symbols(stored_events, events, redo, EVENT_KEYS), ordered=False)
    elif added.num_rows:
        yield TableChange("adjustment_events", added, append=True)


def all_factors(root: Path, previous: Manifest | None, new_rows: NewRows, actions: MergedActions,
                stored_events: pa.Table | None, convention: str,
                checked: Callable[[pd.DataFrame], None] | None = None) -> Iterator[TableChange]:
    """Every symbol's factors and events (a first freeze, or another dividend convention). Events
    a previous version applied lend their closes (raw bars are immutable)."""
    divs = actions.dividends_frame()
    known = stored_events.to_pandas() if events_have_ex_dates(stored_events) else None
    bars_near, _ = bars_near_events(root, previous, new_rows, actions.splits, divs, known=known)
    computed = adjustments.compute_factors(bars_near, actions.splits, divs, convention=convention)
    jumps = event_checks.check_adjustment(computed)
    if checked is not None:
        checked(jumps)
    yield TableChange("factors", computed.factors)
    yield TableChange("adjustment_events", computed.events)


def symbols_to_recompute(actions: MergedActions, stored_events: pa.Table, first_new: pd.Series) -> set[str]:
    """The symbols whose factors can differ from the stored ones: a fresh action, an action whose
    session no applied event covers (not applicable before, or new), or an applied event that a
    late bar restates (`first_new`: each symbol's first new bar)."""
    return symbol_set(actions.fresh_splits) | symbol_set(actions.fresh_dividends) \
        | unsettled_symbols(actions.splits, actions.dividends, stored_events, first_new)


def unsettled_symbols(splits: pd.DataFrame, divs: pa.Table, events: pa.Table, first_new: pd.Series) -> set[str]:
    """Symbols with an action whose session no applied event covers (not applicable yet, or new),
    or with an applied event that a new bar lands at or before (`event_closes.restated_events`).
    Compared as (symbol code, day) integers, the codes in symbol order: the stored tables are in
    (symbol, date) order, so the keys arrive sorted and each look-up is a binary search."""
    action_symbols = pa.chunked_array(large_strings(pa.array(splits["symbol"])).chunks + large_strings(divs.column("symbol")).chunks,
                                      type=pa.large_string())
    action_days = validation.day_numbers(adjustments.effective_sessions(np.concatenate([
        splits["execution_date"].to_numpy(dtype="datetime64[ns]"),
        divs.column("ex_dividend_date").to_numpy().astype("datetime64[ns]"),
    ])))
    event_symbols = large_strings(events.column("symbol"))
    event_days = validation.day_numbers(events.column("event_date").to_numpy().astype("datetime64[ns]"))
    restated = restated_events(events, first_new)
    vocabulary = pc.unique(pa.chunked_array(action_symbols.chunks + event_symbols.chunks, type=pa.large_string()))
    vocabulary = vocabulary.take(pc.sort_indices(vocabulary))
    action_keys = validation.symbol_day_keys(pc.index_in(action_symbols, value_set=vocabulary).to_numpy(), action_days)
    event_keys = validation.symbol_day_keys(pc.index_in(event_symbols, value_set=vocabulary).to_numpy(), event_days)
    unapplied = ~isin_sorted(action_keys, event_keys)
    found = pc.unique(action_symbols.filter(pa.array(unapplied))).to_pylist()
    found += pc.unique(event_symbols.filter(pa.array(restated))).to_pylist()
    return set(found)


def added_events(stored: pa.Table, recomputed: pa.Table) -> pa.Table | None:
    """The rows of `recomputed` (some symbols' events) that `stored` (the same symbols' stored
    events) lacks, or None when a stored event changed or went (then the table is rewritten)."""
    position = {key: i for i, key in enumerate(key_tuples(recomputed, EVENT_KEYS))}
    matched = [position.get(key) for key in key_tuples(stored, EVENT_KEYS)]
    if None in matched:
        return None
    again = recomputed.take(pa.array(matched, pa.int64()))
    if not all(same_values(stored.column(c), again.column(c)) for c in stored.column_names if c not in EVENT_KEYS):
        return None
    added = np.ones(recomputed.num_rows, dtype=bool)
    added[matched] = False
    return recomputed.filter(pa.array(added))
