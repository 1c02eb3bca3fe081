"""Which sessions a refreeze ingests when its run names none, and what one run without config does."""

from __future__ import annotations

import datetime as dt

from kobe_pipelines.defs.lake.sessions import SessionRange, sessions_to_ingest
from kobe_pipelines.defs.resources import MarketDataResource
from kobe_pipelines.lake import Lake
from kobe_pipelines_tests.defs.conftest import driver_for

# Friday 2024-03-01, 20:00 New York: that day's session is complete
AFTER_CLOSE = dt.datetime(2024, 3, 2, 1, 0, tzinfo=dt.timezone.utc)
LAKE_ASSETS = ("raw_daily_bars", "corporate_actions", "lake_candidate", "lake_version")


def test_sessions_to_ingest_when_the_lake_is_empty_then_from_the_history_start_to_the_last_completed_session():
    assert sessions_to_ingest(None, "2024-01-01", now=AFTER_CLOSE) == SessionRange(dt.date(2024, 1, 2), dt.date(2024, 3, 1))


def test_sessions_to_ingest_when_the_lake_holds_some_then_from_the_session_after_its_last():
    # 2024-02-16 is a Friday and 2024-02-19 (Presidents' Day) a holiday
    assert sessions_to_ingest(dt.date(2024, 2, 16), "2019-01-02", now=AFTER_CLOSE) == SessionRange(dt.date(2024, 2, 20), dt.date(2024, 3, 1))


def test_sessions_to_ingest_when_the_lake_holds_the_last_completed_session_then_none():
    assert sessions_to_ingest(dt.date(2024, 3, 1), "2019-01-02", now=AFTER_CLOSE) is None


def test_sessions_to_ingest_when_the_run_names_a_range_then_that_range_whatever_the_lake_holds():
    # weekend bounds narrow to the sessions inside them
    got = sessions_to_ingest(dt.date(2024, 3, 1), "2019-01-02", first="2023-12-30", last="2024-01-07", now=AFTER_CLOSE)
    assert got == SessionRange(dt.date(2024, 1, 2), dt.date(2024, 1, 5))


def test_refreeze_when_run_without_config_on_an_empty_lake_then_the_whole_history_is_ingested_in_one_run(tmp_path, instance):
    market = MarketDataResource(sim_symbols=3, history_start="2024-01-02", sim_end="2024-02-29")
    driver = driver_for(tmp_path, market, instance)
    result = driver.run("refreeze_job", assets=LAKE_ASSETS)
    assert result.success
    lake = Lake(tmp_path / "lake")
    stored = lake.query("SELECT count(DISTINCT date) AS days, min(date) AS first, max(date) AS last FROM bars")
    # January 21 sessions (01-15 closed), February 20 (02-19 closed)
    assert stored["days"].iloc[0] == 41
    assert str(stored["first"].iloc[0])[:10] == "2024-01-02" and str(stored["last"].iloc[0])[:10] == "2024-02-29"
    assert len(instance.get_runs()) == 1


def test_refreeze_when_run_again_without_config_and_the_provider_has_nothing_new_then_the_version_stays(tmp_path, instance):
    market = MarketDataResource(sim_symbols=3, history_start="2024-01-02", sim_end="2024-02-29")
    driver = driver_for(tmp_path, market, instance)
    first = driver.run("refreeze_job", assets=LAKE_ASSETS).output_for_node("lake_version")
    again = driver.run("refreeze_job", assets=LAKE_ASSETS)
    assert again.success
    assert again.output_for_node("lake_version") == first == Lake(tmp_path / "lake").current_version_id()
    raw = next(e.event_specific_data.materialization for e in again.get_asset_materialization_events()
               if e.asset_key.to_user_string() == "raw_daily_bars")
    assert raw.metadata["rows"].value == 0 and raw.metadata["staged"].value is False
