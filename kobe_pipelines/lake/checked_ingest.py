"""A batch of raw bars fetched, checked and staged: the check (`data.quality.check_raw_bars`)
judges the batch while it is written beside, and only a batch that passes is staged.

Great Expectations is imported while the bars are fetched. A batch of a year or more of sessions
and millions of bars (a backfill) is checked by a worker process (`data.quality_worker`) started
before the fetch, which imports it on the other core (a thread would share the interpreter lock
with the fetch); a smaller batch (the nightly session) is checked in this process. Either way the
batch's Parquet file is written on a thread meanwhile (Parquet writing runs outside the GIL) and
committed only when the check passes: a refused batch, or a check that raises, leaves nothing
staged.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa

from kobe_pipelines.data.quality import QualityReport, check_raw_bars_table, import_great_expectations
from kobe_pipelines.data.quality_worker import RawBarsCheckWorker
from kobe_pipelines.lake.store import Lake

# a batch of at least this many days and rows is checked in a worker process, a smaller one here
CHECK_IN_WORKER_FROM_DAYS = 365
CHECK_IN_WORKER_FROM_ROWS = 2_000_000


@dataclass(frozen=True)
class CheckedBatch:
    """The bars fetched and the check's report on them (staged only if `report.success`)."""

    table: pa.Table
    report: QualityReport


def fetch_check_and_stage(store: Lake, label: str, first: dt.date, last: dt.date,
                          fetch: Callable[[], pa.Table], as_of: dt.date) -> CheckedBatch:
    """Fetch the bars of sessions `first`..`last` (`fetch()`, a table of `schema.BAR_COLUMNS`),
    check them (a bar after `as_of` is 'future') and stage them under `label` if they pass.
    Great Expectations is loaded in this process by the time this returns (the lake candidate's
    jump checks use it)."""
    with ExitStack() as stack:
        beside = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="checked_ingest"))
        long_span = (last - first).days >= CHECK_IN_WORKER_FROM_DAYS
        worker = stack.enter_context(RawBarsCheckWorker()) if long_span else None
        imported = None if worker else beside.submit(import_great_expectations)
        table = fetch()
        if worker is not None and table.num_rows < CHECK_IN_WORKER_FROM_ROWS:
            worker.close()  # so few bars check sooner here than the worker is ready
            worker = None
        if worker is not None:
            def check() -> QualityReport:
                worker.submit(table, as_of)
                beside.submit(import_great_expectations)  # after the batch is written, while the worker checks
                return worker.result()
        else:
            (imported or beside.submit(import_great_expectations)).result()

            def check() -> QualityReport:
                return check_raw_bars_table(table, as_of)
        report = _check_while_writing(beside, store, label, table, check)
    return CheckedBatch(table, report)


def _check_while_writing(beside: ThreadPoolExecutor, store: Lake, label: str, table: pa.Table,
                         check: Callable[[], QualityReport]) -> QualityReport:
    """`check()`, with the batch written meanwhile on the `beside` thread and staged only when the
    check passes."""
    written: Future | None = beside.submit(store.write_pending_bars, label, table) if table.num_rows else None
    try:
        report = check()
    except BaseException:
        if written is not None and written.exception() is None:
            written.result().discard()
        raise
    if written is not None:
        pending = written.result()
        if report.success:
            pending.commit()
        else:
            pending.discard()
    return report
