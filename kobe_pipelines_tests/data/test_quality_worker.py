"""The bar checks in a worker process (data.quality_worker): the same reports as in this process,
in the order asked, errors carried back, nothing left behind."""

from __future__ import annotations

import datetime as dt
import os
import select
import signal
import subprocess
import sys

from pathlib import Path

import pandas as pd
import pytest

from kobe_pipelines.data import quality, quality_worker, schema
from kobe_pipelines.data.quality_worker import (
    QualityWorker, QualityWorkerError, handover_folder, shared_worker, start_shared_worker,
)

AS_OF = dt.date(2024, 1, 31)


def bad_bars() -> pd.DataFrame:
    """Three bars: a malformed symbol, a Saturday, a fractional volume."""
    frame = pd.DataFrame({"symbol": ["AAA", "AA PL", "BBB"], "date": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-06"])})
    return frame.assign(open=10.0, high=11.0, low=9.0, close=10.5, volume=[1000.0, 1000.0, 12.5])


def good_bars() -> pd.DataFrame:
    frame = pd.DataFrame({"symbol": ["AAA", "BBB"], "date": pd.to_datetime(["2024-01-02", "2024-01-02"])})
    return frame.assign(open=10.0, high=11.0, low=9.0, close=10.5, volume=1000.0)


def jump_returns() -> pd.DataFrame:
    """Two event returns: 0.1 within the band, -0.9 (a 59% drop) outside it."""
    return pd.DataFrame({"symbol": ["AAA", "BBB"], "event_date": pd.to_datetime(["2024-01-02", "2024-01-03"]),
                         "log_return": [0.1, -0.9]})


def test_worker_when_bars_are_checked_then_its_report_equals_the_one_made_in_this_process():
    with QualityWorker() as worker:
        worker.submit_raw_bars(schema.bars_table(bad_bars()), AS_OF)
        [report] = worker.reports()
    assert report == quality.check_raw_bars(bad_bars(), AS_OF)
    assert {(o.expectation, o.column) for o in report.failures} == {
        ("expect_column_values_to_match_regex", "symbol"), ("expect_column_values_to_be_in_set", "date"),
        ("expect_column_values_to_be_between", "volume_fraction")}


def test_worker_when_several_checks_are_asked_then_their_reports_come_back_in_that_order():
    with QualityWorker() as worker:
        worker.submit_raw_bars(schema.bars_table(good_bars()), AS_OF)
        worker.submit_adjusted_jumps(jump_returns(), "split", 0.4)
        worker.submit_raw_bars(schema.bars_table(bad_bars()), AS_OF)
        good, jumps, bad = worker.reports()
        assert worker.reports() == []  # each report is read once
    assert good.success and good.rows == 2
    assert jumps == quality.check_adjusted_jumps(jump_returns(), "split", 0.4)
    assert jumps.outcomes[0].unexpected_count == 1 and jumps.outcomes[0].examples == ["BBB 2024-01-03 log return -0.900"]
    assert bad == quality.check_raw_bars(bad_bars(), AS_OF)


def test_worker_when_the_check_raises_then_the_caller_gets_its_traceback_and_the_bars_file_is_removed():
    table = schema.bars_table(bad_bars()).drop_columns(["volume"])  # the check needs a volume column
    with QualityWorker() as worker:
        worker.submit_raw_bars(table, AS_OF)
        [bars_file] = worker.bars_files
        with pytest.raises(QualityWorkerError, match="volume"):
            worker.reports()
        assert not worker.running  # ended: its later replies could not be told apart
    assert not bars_file.exists()


def test_worker_when_it_is_killed_then_the_caller_gets_an_error_naming_its_exit_and_no_file_is_left():
    with QualityWorker() as worker:
        worker._process.kill()
        worker._process.wait()
        with pytest.raises(QualityWorkerError, match="ended"):
            worker.submit_raw_bars(schema.bars_table(good_bars()), AS_OF)
            worker.reports()
        assert worker.bars_files == []


def test_worker_when_closed_before_any_check_then_it_ends_without_a_report():
    worker = QualityWorker()
    worker.close()
    assert not worker.running and worker.bars_files == []


def test_worker_when_its_caller_dies_then_it_exits_and_removes_the_bars_it_was_handed(tmp_path):
    # the caller hands over a batch and is killed before reading the report: the worker reads the
    # end of its input, removes the batch's file once mapped, and exits
    code = f"""
import datetime as dt, os, sys
import pandas as pd
from kobe_pipelines.data import schema
from kobe_pipelines.data.quality_worker import QualityWorker
bars = pd.DataFrame({{"symbol": ["AAA"], "date": pd.to_datetime(["2024-01-02"]), "open": 10.0, "high": 11.0,
                     "low": 9.0, "close": 10.5, "volume": 1000.0}})
worker = QualityWorker()
worker.submit_raw_bars(schema.bars_table(bars), dt.date(2024, 1, 31))
print(worker._process.pid, worker.bars_files[0], flush=True)
os.kill(os.getpid(), 9)
"""
    caller = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert caller.returncode == -9
    pid, bars_file = caller.stdout.split()
    try:
        ended = os.pidfd_open(int(pid))  # readable once the (orphaned, not our child) worker has exited
    except ProcessLookupError:
        pass  # already gone
    else:
        readable, _, _ = select.select([ended], [], [], 120)
        os.close(ended)
        assert readable, "the orphaned worker did not exit"
    assert not Path(bars_file).exists()


def test_shared_worker_when_used_twice_then_the_same_process_answers_both():
    with shared_worker() as first:
        first.submit_raw_bars(schema.bars_table(good_bars()), AS_OF)
        assert first.reports()[0].success
    with shared_worker() as second:
        assert second is first and second.running


def test_shared_worker_when_its_caller_leaves_with_reports_unread_then_it_is_replaced():
    with pytest.raises(KeyError):
        with shared_worker() as first:
            first.submit_adjusted_jumps(jump_returns(), "split", 0.4)
            raise KeyError("the caller fails before reading its report")
    assert not first.running
    with shared_worker() as second:
        assert second is not first
        second.submit_adjusted_jumps(jump_returns(), "total", 0.4)
        assert second.reports()[0].suite == "adjusted_jumps_total"  # its own report, not the first caller's


def test_start_shared_worker_when_called_before_the_check_then_that_process_answers_it():
    quality_worker.close_shared_worker()
    start_shared_worker()
    started = quality_worker._shared
    start_shared_worker()  # a second call keeps the running one
    with shared_worker() as worker:
        assert worker is started and worker.running
        worker.submit_raw_bars(schema.bars_table(good_bars()), AS_OF)
        assert worker.reports()[0].success


def test_start_shared_worker_when_the_last_one_ended_then_a_new_one_answers():
    with shared_worker() as first:
        pass
    first.close()
    start_shared_worker()
    with shared_worker() as second:
        assert second is not first and second.running
        second.submit_adjusted_jumps(jump_returns(), "split", 0.4)
        assert second.reports()[0].suite == "adjusted_jumps_split"


def test_check_adjusted_jumps_in_worker_when_two_views_then_each_report_equals_the_one_made_here():
    views = {"split": jump_returns(), "total": jump_returns().assign(log_return=[0.1, 0.2])}
    reports = quality_worker.check_adjusted_jumps_in_worker(views, 0.4)
    assert list(reports) == ["split", "total"]
    assert reports["split"] == quality.check_adjusted_jumps(views["split"], "split", 0.4) and not reports["split"].success
    assert reports["total"] == quality.check_adjusted_jumps(views["total"], "total", 0.4) and reports["total"].success


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
    with QualityWorker() as worker:
        worker._receive()  # its "ready"
        worker.submit_raw_bars(schema.bars_table(bad_bars()), AS_OF)
        [bars_file] = worker.bars_files
        worker._process.stdout.peek(1)  # the report has started to arrive: the check is done
        assert not bars_file.exists()
        assert not worker.reports()[0].success
