"""The raw-bar check in a worker process (data.quality_worker): the same report as in this process,
errors carried back, nothing left behind."""

from __future__ import annotations

import datetime as dt
import os

from pathlib import Path

import pandas as pd
import pytest

from kobe_pipelines.data import quality, schema
from kobe_pipelines.data.quality_worker import QualityWorkerError, RawBarsCheckWorker, handover_folder

AS_OF = dt.date(2024, 1, 31)


def bad_bars() -> pd.DataFrame:
    """Three bars: a malformed symbol, a Saturday, a fractional volume."""
    frame = pd.DataFrame({"symbol": ["AAA", "AA PL", "BBB"], "date": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-06"])})
    return frame.assign(open=10.0, high=11.0, low=9.0, close=10.5, volume=[1000.0, 1000.0, 12.5])


def test_worker_when_bars_are_checked_then_its_report_equals_the_one_made_in_this_process():
    with RawBarsCheckWorker() as worker:
        worker.submit(schema.bars_table(bad_bars()), AS_OF)
        report = worker.result()
    assert report == quality.check_raw_bars(bad_bars(), AS_OF)
    assert {(o.expectation, o.column) for o in report.failures} == {
        ("expect_column_values_to_match_regex", "symbol"), ("expect_column_values_to_be_in_set", "date"),
        ("expect_column_values_to_be_between", "volume_fraction")}


def test_worker_when_the_check_raises_then_the_caller_gets_its_traceback_and_the_bars_file_is_removed():
    table = schema.bars_table(bad_bars()).drop_columns(["volume"])  # the check needs a volume column
    with RawBarsCheckWorker() as worker:
        worker.submit(table, AS_OF)
        bars_file = worker.bars_file
        assert bars_file is not None
        with pytest.raises(QualityWorkerError, match="volume"):
            worker.result()
    assert not bars_file.exists()


def test_worker_when_closed_before_any_bars_then_it_ends_without_a_report():
    worker = RawBarsCheckWorker()
    worker.close()
    assert not worker.running and worker.bars_file is None


def test_handover_folder_when_shared_memory_has_room_then_it_is_used(tmp_path):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    assert handover_folder(1024, shared=tmp_path) == tmp_path
    assert handover_folder(free // 4, shared=tmp_path) == tmp_path  # needs half the free room


def test_handover_folder_when_the_bars_would_not_fit_twice_then_the_temporary_folder_on_disk():
    # e.g. a container's 64 MB /dev/shm and a decade of 5,000 symbols' bars (about 700 MB)
    free = os.statvfs("/tmp").f_bavail * os.statvfs("/tmp").f_frsize
    assert handover_folder(free, shared=Path("/tmp")) is None  # would need twice the free room


def test_handover_folder_when_there_is_no_shared_memory_folder_then_the_temporary_folder(tmp_path):
    assert handover_folder(1024, shared=tmp_path / "absent") is None


def test_worker_when_it_has_mapped_the_bars_then_their_file_is_gone_before_the_report():
    # a caller killed while the worker checks leaves no file behind in (shared) memory
    with RawBarsCheckWorker() as worker:
        worker.submit(schema.bars_table(bad_bars()), AS_OF)
        bars_file = worker.bars_file
        worker._process.stdout.peek(1)  # the report has started to arrive: the check is done
        assert not bars_file.exists()
        assert not worker.result().success
