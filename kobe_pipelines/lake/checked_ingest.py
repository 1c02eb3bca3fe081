"""A batch of raw bars fetched, checked and staged: the check (`data.quality.check_raw_bars`)
judges the batch while it is written beside, and only a batch that passes is staged.

The check runs in this process's quality worker (`data.quality_worker.shared_worker`), taken
before the fetch: a new worker imports Great Expectations on the other core meanwhile (a thread
would share the interpreter lock with the fetch), and this process never imports it. A span of
many sessions (a backfill) is fetched in chunks of `CHUNK_SESSIONS` sessions; whenever the worker
is idle, the chunks fetched meanwhile are handed to it together (each check has a fixed cost), so
the worker checks while the rest is fetched and only the last chunks' check follows the fetch. That is exact: each rule is judged per bar, per (symbol,
date) or per symbol, and the chunks are disjoint ranges of dates, so their reports merge into the
report of one check of the whole batch (`quality.merge_raw_bars_reports`). A chunk with a bar
outside its own sessions (or without a date) voids that: the whole batch is checked at once.

The chunks are joined in (symbol, date) order (when each chunk is in that order, the provider's
usual order), the batch's Parquet file is written on a thread while the worker checks (Parquet
writing runs outside the GIL) and committed only when every chunk passes: a refused batch, or a
check that raises, leaves nothing staged.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kobe_pipelines import market_calendar
from kobe_pipelines.data.quality import QualityReport, merge_raw_bars_reports
from kobe_pipelines.data.quality_worker import QualityWorker, shared_worker
from kobe_pipelines.lake.staging import in_symbol_date_order
from kobe_pipelines.lake.store import Lake

CHUNK_SESSIONS = 320  # sessions fetched and checked at a time (about 1.5M bars at 5,000 symbols)


@dataclass(frozen=True)
class CheckedBatch:
    """The bars fetched and the check's report on them (staged only if `report.success`)."""

    table: pa.Table
    report: QualityReport


def session_chunks(first: dt.date, last: dt.date, size: int = CHUNK_SESSIONS) -> list[tuple[dt.date, dt.date]]:
    """The XNYS sessions first..last as consecutive (first, last) ranges of `size` sessions, the
    last range the shortest; [(first, last)] when they hold no session."""
    days = [d.date() for d in market_calendar.sessions(first, last)]
    if not days:
        return [(first, last)]
    return [(days[i], days[min(i + size, len(days)) - 1]) for i in range(0, len(days), size)]


def fetch_check_and_stage(store: Lake, label: str, first: dt.date, last: dt.date,
                          fetch: Callable[[dt.date, dt.date], pa.Table], as_of: dt.date,
                          chunk_sessions: int | None = CHUNK_SESSIONS) -> CheckedBatch:
    """Fetch the bars of sessions `first`..`last` (`fetch(first, last)`, a table of
    `schema.BAR_COLUMNS`; called once per chunk of `chunk_sessions` sessions, or once for them all
    when None), check them (a bar after `as_of` is 'future') and stage them under `label` if they
    pass."""
    spans = session_chunks(first, last, chunk_sessions) if chunk_sessions else [(first, last)]
    with shared_worker() as worker, ThreadPoolExecutor(max_workers=1, thread_name_prefix="checked_ingest") as beside:
        chunks, held, exact, submitted = [], [], True, 0
        for span in spans:
            chunks.append(fetch(*span))
            exact = exact and _within(chunks[-1], *span)
            held += [chunks[-1]] if exact and chunks[-1].num_rows else []
            if exact and held and (span == spans[-1] or worker.idle()):
                worker.submit_raw_bars(_joined(held), as_of)  # the chunks fetched while it was busy, at once
                held, submitted = [], submitted + 1
        table = join_in_symbol_date_order(chunks)
        del chunks, held
        if not exact or not submitted:  # the whole batch at once (it may be empty)
            worker.reports()  # those of the chunks before the one that voided the chunking
            worker.submit_raw_bars(table, as_of)
        written = beside.submit(store.write_pending_bars, label, table) if table.num_rows else None
        report = _merged_reports(worker, written)
    if written is not None:
        pending = written.result()
        if report.success:
            pending.commit()
        else:
            pending.discard()
    return CheckedBatch(table, report)


def _joined(chunks: list[pa.Table]) -> pa.Table:
    """Consecutive chunks as one table (not copied), one dictionary of symbols for all."""
    return chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks).unify_dictionaries()


def _merged_reports(worker: QualityWorker, written) -> QualityReport:
    try:
        return merge_raw_bars_reports(worker.reports())
    except BaseException:
        if written is not None and written.exception() is None:
            written.result().discard()
        raise


def _within(chunk: pa.Table, first: dt.date, last: dt.date) -> bool:
    """Whether every bar of the chunk has a date in first..last."""
    dates = chunk.column("date")
    if not len(dates):
        return True
    bounds = pc.min_max(dates).as_py()
    return dates.null_count == 0 and first <= bounds["min"] and bounds["max"] <= last


def join_in_symbol_date_order(chunks: list[pa.Table]) -> pa.Table:
    """Tables of consecutive date ranges as one table: in (symbol, date) order when each is in
    that order and their symbols are dictionary-encoded (a stable sort by symbol keeps each
    symbol's chunks in date order), else one after the other (a freeze sorts the staged file)."""
    if len(chunks) == 1:
        return chunks[0]
    if len({chunk.schema for chunk in chunks}) > 1:
        chunks = [chunk.cast(pa.schema([f.with_type(pa.string()) if f.name == "symbol" else f for f in chunk.schema]))
                  for chunk in chunks]
    table = pa.concat_tables(chunks).unify_dictionaries()
    symbols = table.column("symbol")
    if not (pa.types.is_dictionary(symbols.type) and all(in_symbol_date_order(chunk) for chunk in chunks)):
        return table
    symbols = symbols.combine_chunks()
    names = symbols.dictionary
    rank = np.empty(len(names), dtype=np.int32)
    rank[pc.sort_indices(names).to_numpy()] = np.arange(len(names), dtype=np.int32)
    order = np.argsort(rank[symbols.indices.to_numpy()], kind="stable")
    return pa.Table.from_arrays([_taken(symbols if name == "symbol" else table.column(name).combine_chunks(), order)
                                 for name in table.column_names], schema=table.schema)


def _taken(column: pa.Array, order: np.ndarray) -> pa.Array:
    """`column.take(order)`, through NumPy (faster) where the column has no nulls."""
    if pa.types.is_dictionary(column.type):
        return pa.DictionaryArray.from_arrays(_taken(column.indices, order), column.dictionary)
    if column.null_count or not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                                 or pa.types.is_date32(column.type)):
        return column.take(pa.array(order))
    if pa.types.is_date32(column.type):
        return _taken(column.view(pa.int32()), order).view(pa.date32())
    return pa.array(column.to_numpy()[order], type=column.type)
