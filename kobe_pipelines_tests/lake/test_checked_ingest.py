"""Fetch, check and stage (lake.checked_ingest): the batch is checked by the quality worker while
it is written beside, and staged only when the check passes; a worker that dies leaves nothing
staged and no handed-over bars behind."""

from __future__ import annotations

import datetime as dt
import os
import signal

import pandas as pd
import pyarrow as pa
import pytest

from kobe_pipelines.data import quality, quality_worker, schema
from kobe_pipelines.data.quality_worker import QualityWorkerError, shared_worker
from kobe_pipelines.lake import Lake
from kobe_pipelines.lake.staging import in_symbol_date_order
from kobe_pipelines.lake.checked_ingest import fetch_check_and_stage

AS_OF = dt.date(2024, 1, 31)
UNIQUE_COLUMNS = "['symbol', 'date']"  # the column list as the report names it
FIRST, LAST = dt.date(2024, 1, 2), dt.date(2024, 1, 12)  # 9 XNYS sessions
SESSIONS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09", "2024-01-10",
            "2024-01-11", "2024-01-12"]


def market(symbols=("AAA", "AA PL", "BBB")) -> pd.DataFrame:
    """Good bars of `symbols` on every session (open 10, high 11, low 9, close 10.5, volume 1,000)."""
    frame = pd.DataFrame([(s, d) for s in symbols for d in SESSIONS], columns=["symbol", "date"])
    return frame.assign(date=pd.to_datetime(frame["date"]), open=10.0, high=11.0, low=9.0, close=10.5, volume=1000.0)


def sorted_table(frame: pd.DataFrame) -> pa.Table:
    """The bars as a provider delivers them: symbols dictionary-encoded, rows in (symbol, date) order."""
    table = schema.bars_table(frame.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True))
    return table.set_column(0, "symbol", table.column("symbol").dictionary_encode())


def provider(frame: pd.DataFrame, calls: list | None = None):
    """A fetch of the bars dated first..last."""
    def fetch(first: dt.date, last: dt.date) -> pa.Table:
        if calls is not None:
            calls.append((first, last))
        return sorted_table(frame.loc[frame["date"].between(pd.Timestamp(first), pd.Timestamp(last))])
    return fetch


def bad_market() -> pd.DataFrame:
    """Bad bars: the malformed symbol 'AA PL' trades throughout (9 bars); BBB's high is under its
    low on 01-03 and 01-11; AAA's 01-08 bar comes twice; BBB's 01-09 volume is fractional."""
    frame = market()
    low_high = frame["symbol"].eq("BBB") & frame["date"].isin(pd.to_datetime(["2024-01-03", "2024-01-11"]))
    frame.loc[low_high, "high"] = 8.0
    frame.loc[frame["symbol"].eq("BBB") & frame["date"].eq(pd.Timestamp("2024-01-09")), "volume"] = 12.5
    again = frame.loc[frame["symbol"].eq("AAA") & frame["date"].eq(pd.Timestamp("2024-01-08"))]
    return pd.concat([frame, again], ignore_index=True)


def test_fetch_check_and_stage_when_bars_are_bad_then_each_failure_is_counted_and_nothing_is_staged(tmp_path):
    lake, calls = Lake(tmp_path / "lake"), []
    batch = fetch_check_and_stage(lake, "history", FIRST, LAST, provider(bad_market(), calls), AS_OF)
    assert calls == [(FIRST, LAST)]
    whole = quality.check_raw_bars_table(sorted_table(bad_market()), AS_OF)
    assert batch.report == whole
    failed = {(o.expectation, o.column): o for o in batch.report.failures}
    assert batch.report.rows == 28  # 3 symbols x 9 sessions, and the duplicate
    assert set(failed) == {
        ("expect_column_values_to_match_regex", "symbol"),
        ("expect_column_pair_values_a_to_be_greater_than_b", "high,close"),
        ("expect_column_pair_values_a_to_be_greater_than_b", "high,open"),
        ("expect_compound_columns_to_be_unique", UNIQUE_COLUMNS),
        ("expect_column_values_to_be_between", "volume_fraction"),
    }
    regex = failed[("expect_column_values_to_match_regex", "symbol")]
    assert regex.unexpected_count == 9 and regex.examples == [{"symbol": "AA PL", "date": "2024-01-02"}]
    high_close = failed[("expect_column_pair_values_a_to_be_greater_than_b", "high,close")]
    assert high_close.unexpected_count == 2
    assert [(e["symbol"], e["date"]) for e in high_close.examples] == [("BBB", "2024-01-03"), ("BBB", "2024-01-11")]
    unique = failed[("expect_compound_columns_to_be_unique", UNIQUE_COLUMNS)]
    assert unique.unexpected_count == 2
    assert [(e["symbol"], e["date"]) for e in unique.examples] == [("AAA", "2024-01-08")] * 2
    assert failed[("expect_column_values_to_be_between", "volume_fraction")].unexpected_count == 1
    assert lake.staged_labels() == [] and list(lake.staging_dir.iterdir()) == []  # nothing staged, no pending file


def test_fetch_check_and_stage_when_every_bar_passes_then_the_batch_is_staged_in_symbol_date_order(tmp_path):
    lake = Lake(tmp_path / "lake")
    good = market(("BBB", "AAA", "CCC"))
    batch = fetch_check_and_stage(lake, "history", FIRST, LAST, provider(good), AS_OF)
    assert batch.report.success and batch.report.rows == 27
    assert batch.report == quality.check_raw_bars_table(sorted_table(good), AS_OF)
    expected = sorted_table(good)
    assert batch.table.cast(schema.BARS_ARROW_SCHEMA).equals(expected.cast(schema.BARS_ARROW_SCHEMA))
    assert lake.staged_labels() == ["history"]
    assert in_symbol_date_order(batch.table)  # so a freeze in this process takes it from memory
    assert lake.staged_bars_table(["history"]).cast(schema.BARS_ARROW_SCHEMA).equals(expected.cast(schema.BARS_ARROW_SCHEMA))


def test_fetch_check_and_stage_when_the_worker_is_killed_during_the_fetch_then_it_raises_and_nothing_is_left(
        tmp_path, monkeypatch):
    handover = tmp_path / "handover"
    handover.mkdir()
    monkeypatch.setattr(quality_worker, "handover_folder", lambda nbytes: handover)
    fetch_range, killed = provider(market()), []

    def fetch(first: dt.date, last: dt.date) -> pa.Table:
        killed.append(quality_worker._shared)
        killed[0]._process.kill()
        killed[0]._process.wait()
        return fetch_range(first, last)

    lake = Lake(tmp_path / "lake")
    with pytest.raises(QualityWorkerError, match="ended"):
        fetch_check_and_stage(lake, "history", FIRST, LAST, fetch, AS_OF)
    assert lake.staged_labels() == [] and not lake.staging_dir.exists()  # raised before the batch was written
    assert list(handover.iterdir()) == []  # the bars handed over are removed
    with shared_worker() as worker:  # the next caller gets a new worker
        assert worker is not killed[0] and worker.running


def test_fetch_check_and_stage_when_the_worker_dies_while_the_batch_is_written_then_the_written_batch_is_discarded(
        tmp_path, monkeypatch):
    # the worker is stopped before it answers anything, and killed while the batch is written
    lake, fetch_range = Lake(tmp_path / "lake"), provider(market())
    write = lake.write_pending_bars

    def fetch(first: dt.date, last: dt.date) -> pa.Table:
        if first == FIRST:
            os.kill(quality_worker._shared._process.pid, signal.SIGSTOP)
        return fetch_range(first, last)

    def write_and_kill(label, table):
        quality_worker._shared._process.kill()
        return write(label, table)

    monkeypatch.setattr(lake, "write_pending_bars", write_and_kill)
    with pytest.raises(QualityWorkerError, match="ended"):
        fetch_check_and_stage(lake, "history", FIRST, LAST, fetch, AS_OF)
    assert lake.staged_labels() == [] and list(lake.staging_dir.iterdir()) == []  # the pending file is gone too




def test_fetch_check_and_stage_when_a_description_is_asked_then_it_describes_the_fetched_batch(tmp_path):
    lake, described = Lake(tmp_path / "lake"), []

    def describe(table: pa.Table) -> tuple[int, str]:
        described.append(table)
        return table.num_rows, str(table.column("date")[0].as_py())

    batch = fetch_check_and_stage(lake, "history", FIRST, LAST, provider(market(("CCC", "AAA", "BBB"))), AS_OF,
                                  describe=describe)
    assert batch.description == (27, "2024-01-02")  # 3 symbols x 9 sessions, AAA's first bar first
    assert len(described) == 1 and described[0] is batch.table
    assert batch.report.success and lake.staged_labels() == ["history"]


def test_fetch_check_and_stage_when_the_description_raises_then_it_raises_and_nothing_is_staged(tmp_path):
    lake = Lake(tmp_path / "lake")

    def describe(table: pa.Table) -> None:
        raise ValueError("no description")

    with pytest.raises(ValueError, match="no description"):
        fetch_check_and_stage(lake, "history", FIRST, LAST, provider(market()), AS_OF, describe=describe)
    assert lake.staged_labels() == [] and list(lake.staging_dir.rglob("*.parquet*")) == []
    with shared_worker() as worker:  # its unread report is not handed to the next caller
        worker.submit_adjusted_jumps(pd.DataFrame({"symbol": ["AAA"], "event_date": [pd.Timestamp(FIRST)], "log_return": [0.0]}),
                                     "split", 0.4)
        assert worker.reports()[0].suite == "adjusted_jumps_split"
