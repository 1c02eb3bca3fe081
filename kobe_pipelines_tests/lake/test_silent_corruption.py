"""A flipped byte in a lake file never passes silently: the next freeze re-hashes a file whose
ctime changed (its mtime restored or not), Parquet page checksums fail a read of a damaged
page, and the weekly Dagster job re-hashes everything and alerts."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from kobe_pipelines.alerts.sinks import read_alert_log
from kobe_pipelines.defs import build_definitions
from kobe_pipelines.defs.env_resources import AlertsResource
from kobe_pipelines.defs.lake.schedules import LAKE_CORRUPTION_ALERT, verify_lake_job, weekly_lake_verify
from kobe_pipelines.defs.resources import LakeResource
from kobe_pipelines.lake import Lake, LakeCorruptionError

from .conftest import flip, flips_caught, page_bytes, sim_inputs


def test_freeze_when_a_raw_byte_is_flipped_and_its_mtime_restored_then_the_next_freeze_refuses(lake, sim):
    first = lake.freeze(*sim_inputs(sim, end="2021-06-29"), provider="simulated").version
    victim = lake.abspath(first.files_with_role("raw_bars")[0])
    size = victim.stat().st_size
    flip(victim, size // 2)
    assert victim.stat().st_size == size and victim.stat().st_mtime_ns == victim.stat().st_mtime_ns
    with pytest.raises(LakeCorruptionError, match="does not match"):
        Lake(lake.root).freeze(*sim_inputs(sim), provider="simulated")
    assert Lake(lake.root).current_version_id() == first.version_id


def test_derived_table_when_a_byte_of_a_page_is_flipped_then_the_read_fails_or_returns_the_same_rows(lake, sim):
    # Page checksums: every page read with pyarrow is checked against its CRC32, so a flipped byte
    # either fails the read (naming the file) or lies where it changes no value; never a silent change.
    lake.freeze(*sim_inputs(sim), provider="simulated")
    entry = lake.current_version().files_with_role("factors")[0]
    path = lake.abspath(entry)
    offsets = page_bytes(path)
    failed, silent = flips_caught(path, offsets[::max(1, len(offsets) // 200)], lambda: lake.derived_table("factors"), entry.path)
    assert silent == 0 and failed > 100


def materialize_verify(tmp_path, lake_dir):
    return verify_lake_job.execute_in_process(
        resources={"lake": LakeResource(lake_dir=str(lake_dir)), "alerts": AlertsResource(state_dir=str(tmp_path / "state"))},
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_weekly_lake_verify_when_a_file_is_damaged_then_the_run_fails_and_a_critical_alert_names_it(tmp_path, lake, sim):
    lake.freeze(*sim_inputs(sim, end="2021-06-29"), provider="simulated")
    lake.freeze(*sim_inputs(sim), provider="simulated")
    assert materialize_verify(tmp_path, lake.root).success
    older = lake.versions()[0]
    victim = older.files_with_role("raw_bars")[0]
    flip(lake.abspath(victim), lake.abspath(victim).stat().st_size // 3)
    result = materialize_verify(tmp_path, lake.root)
    assert not result.success
    alerts = [a for a in read_alert_log(tmp_path / "state" / "alerts.jsonl") if a.kind == LAKE_CORRUPTION_ALERT]
    assert len(alerts) == 1 and alerts[0].severity == "critical" and victim.path in alerts[0].body


def test_weekly_lake_verify_when_loaded_then_sunday_morning_new_york_and_registered():
    defs = build_definitions({})
    schedule = defs.resolve_schedule_def("weekly_lake_verify")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 5 * * 0", "America/New_York")
    assert defs.resolve_job_def("verify_lake_job") is not None
    request = weekly_lake_verify(dg.build_schedule_context(scheduled_execution_time=pd.Timestamp("2024-07-07 05:00",
                                                                                                  tz="America/New_York")))
    assert request.run_key == "verify-lake-2024-07-07"


def test_check_all_when_two_files_are_damaged_then_raises_the_first_in_order_and_problems_names_both(lake, sim):
    # the files are hashed on threads; the error and the list still follow the manifest's order
    version = lake.freeze(*sim_inputs(sim), provider="simulated").version
    entries = list(version.files)
    first, second = entries[1], entries[-1]
    for entry in (second, first):  # damaged in the reverse order
        path = lake.abspath(entry)
        flip(path, path.stat().st_size // 2)
    files = Lake(lake.root).files
    with pytest.raises(LakeCorruptionError, match=first.path):
        files.check_all(entries)
    problems = files.problems(entries)
    assert len(problems) == 2 and first.path in problems[0] and second.path in problems[1]
