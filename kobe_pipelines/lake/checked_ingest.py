"""A batch of raw bars fetched, checked and staged: the check (`data.quality.check_raw_bars`)
judges the batch while it is written beside, and only a batch that passes is staged.

The check runs in this process's quality worker (`data.quality_worker.shared_worker`), taken
before the fetch: a new worker imports Great Expectations on the other core meanwhile (a thread
would share the interpreter lock with the fetch), and this process never imports it. While the
worker checks, this process writes the batch's Parquet file beside the staged ones and works out
what the caller reports about the batch (`describe`), one after the other on one core, so that
the check keeps the other to itself. The file is committed only when the check passes: a
refused batch, or a check that raises, leaves nothing staged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa

from kobe_pipelines.data.quality import QualityReport
from kobe_pipelines.data.quality_worker import shared_worker
from kobe_pipelines.lake.store import Lake


@dataclass(frozen=True)
class CheckedBatch:
    """The bars fetched, the check's report on them (staged only if `report.success`) and what
    `describe` made of them."""

    table: pa.Table
    report: QualityReport
    description: Any = None


def fetch_check_and_stage(store: Lake, label: str, first: dt.date, last: dt.date,
                          fetch: Callable[[dt.date, dt.date], pa.Table], as_of: dt.date,
                          describe: Callable[[pa.Table], Any] | None = None) -> CheckedBatch:
    """Fetch the bars of sessions `first`..`last` (`fetch(first, last)`, a table of
    `schema.BAR_COLUMNS`), check them (a bar after `as_of` is 'future') and stage them under
    `label` if they pass. `describe(table)`, if given, runs while the worker checks; an error
    there raises, with nothing staged."""
    with shared_worker() as worker:
        table = fetch(first, last)
        worker.submit_raw_bars(table, as_of)
        pending = None
        try:
            pending = store.write_pending_bars(label, table) if table.num_rows else None
            description = describe(table) if describe is not None else None
            (report,) = worker.reports()
        except BaseException:
            if pending is not None:
                pending.discard()
            raise
    if pending is not None:
        if report.success:
            pending.commit()
        else:
            pending.discard()
    return CheckedBatch(table, report, description)
