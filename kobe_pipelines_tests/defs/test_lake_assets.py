"""The lake assets materialized through Dagster on a temporary lake, as refreeze_job runs them."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from kobe_pipelines.alerts.sinks import read_alert_log
from kobe_pipelines.defs.resources import MarketDataResource
from kobe_pipelines.lake import Lake
from kobe_pipelines_tests.defs.conftest import driver_for

LAKE_ASSETS = ("raw_daily_bars", "corporate_actions", "lake_candidate", "lake_version")


def _metadata(result, asset: str) -> dict:
    events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    return {k: v.value for k, v in next(m.metadata for m in events if m.asset_key.to_user_string() == asset).items()}


def test_refreeze_when_simulated_market_then_checks_pass_and_a_lake_version_is_published(tmp_path, instance):
    market = MarketDataResource(sim_symbols=6, history_start="2024-01-02", sim_end="2024-03-28")
    result = driver_for(tmp_path, market, instance).freeze("2024-01-02", "2024-03-28", with_signals=False)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "check_raw_bars_quality": True,
        "check_split_adjusted_no_unexplained_jump": True,
        "check_total_return_no_unexplained_jump": True,
    }
    version_id = result.output_for_node("lake_version")
    lake = Lake(tmp_path / "lake")
    assert lake.current_version_id() == version_id
    # every bar the provider delivered for the 61 sessions 2024-01-02..2024-03-28 (XNYS closed
    # 01-15 and 02-19) is in the version, and nothing else
    delivered = market.build().daily_bars("2024-01-02", "2024-03-28")
    assert delivered["date"].nunique() == 61
    stored = lake.query("SELECT count(*) AS n, count(DISTINCT date) AS days FROM bars")
    assert (stored["n"].iloc[0], stored["days"].iloc[0]) == (len(delivered), 61)
    meta = _metadata(result, "lake_version")
    assert meta["version_id"] == version_id and meta["rows"] == len(delivered)
    assert lake.staged_labels() == []  # consumed by the freeze


def test_refreeze_when_run_then_it_is_listed_under_refreeze_job_with_its_sessions_tag(tmp_path, instance):
    market = MarketDataResource(sim_symbols=3, history_start="2024-01-02", sim_end="2024-01-31")
    driver_for(tmp_path, market, instance).freeze("2024-01-02", "2024-01-31", with_signals=False)
    [run] = instance.get_runs()
    assert run.job_name == "refreeze_job"
    assert run.tags["kobe/sessions"] == "2024-01-02..2024-01-31" and run.tags["kobe/job"] == "refreeze"


def test_backfill_when_more_sessions_then_the_same_number_of_planned_and_materialization_events(tmp_path, instance):
    """Dagster's bookkeeping of a backfill does not grow with the sessions it holds: one planned
    event and one materialization per asset, for 21 sessions as for 250."""
    counts = []
    for name, last in (("short", "2023-01-31"), ("long", "2023-12-29")):
        market = MarketDataResource(sim_symbols=4, history_start="2023-01-03", sim_end=last)
        result = driver_for(tmp_path / name, market, instance).freeze("2023-01-03", last, with_signals=False)
        assert result.success
        planned = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
        done = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        counts.append((len(planned), len(done)))
    assert counts == [(len(LAKE_ASSETS), len(LAKE_ASSETS))] * 2


def test_lake_version_when_published_then_its_latest_materialization_lists_the_sessions_held(tmp_path, instance):
    market = MarketDataResource(sim_symbols=3, history_start="2024-01-02", sim_end="2024-03-28")
    driver = driver_for(tmp_path, market, instance)
    driver.freeze("2024-01-02", "2024-01-31", with_signals=False)
    driver.freeze("2024-03-01", "2024-03-28", with_signals=False)  # February is not ingested
    # what the UI's asset page shows: the latest materialization of lake_version
    event = instance.get_latest_materialization_event(dg.AssetKey("lake_version"))
    meta = event.asset_materialization.metadata
    assert meta["sessions"].value == 21 + 20  # January's 21 sessions (01-15 closed) and March's 20 (03-29 closed)
    assert meta["missing_sessions"].value == 20  # February's 21 weekdays but 02-19
    assert "2024-01-02..2024-01-31: 21 sessions" in meta["sessions_held"].value
    assert "2024-03-01..2024-03-28: 20 sessions" in meta["sessions_held"].value


def test_refreeze_when_a_range_leaves_actions_of_other_symbols_and_sessions_then_they_are_kept_aside_and_counted(tmp_path, instance):
    source = tmp_path / "src"
    source.mkdir()
    days = ["2024-01-02", "2024-01-03", "2024-01-04"]
    close = [20.0, 10.0, 10.2]  # a 2-for-1 split on 2024-01-03
    pd.DataFrame({"symbol": "AAA", "date": days, "open": close, "high": [c + 0.5 for c in close], "low": [c - 0.5 for c in close],
                  "close": close, "volume": 100.0}).to_csv(source / "bars.csv", index=False)
    # BBB has no bars at all; AAA's second split lies after the sessions ingested (not fetched)
    pd.DataFrame({"symbol": ["AAA", "BBB", "AAA"], "execution_date": ["2024-01-03", "2024-01-03", "2024-02-01"],
                  "split_from": [1.0, 1.0, 1.0], "split_to": [2.0, 2.0, 3.0]}).to_csv(source / "splits.csv", index=False)
    market = MarketDataResource(provider="files", files_dir=str(source), history_start="2024-01-02")
    result = driver_for(tmp_path, market, instance).freeze("2024-01-02", "2024-01-04", with_signals=False)
    assert result.success
    meta = _metadata(result, "lake_candidate")
    assert meta["kept_aside_actions"] == 1 and "BBB" in meta["kept_aside_preview"]
    assert "no bars of the symbol" in meta["kept_aside_preview"]
    splits = Lake(tmp_path / "lake").derived_table("splits")
    assert list(zip(splits["symbol"], splits["split_to"])) == [("AAA", 2.0)]


def _refreeze_bars(tmp_path, instance, bars: pd.DataFrame):
    """A refreeze of `bars` (files provider) over their first to last date, failures allowed; the
    run's result and its raw-bar check."""
    source = tmp_path / "src"
    source.mkdir()
    bars.to_csv(source / "bars.csv", index=False)
    first, last = min(bars["date"]), max(bars["date"])
    market = MarketDataResource(provider="files", files_dir=str(source), history_start=first)
    result = driver_for(tmp_path, market, instance).freeze(first, last, with_signals=False, raise_on_error=False)
    return result, {e.check_name: e for e in result.get_asset_check_evaluations()}["check_raw_bars_quality"]


def test_refreeze_when_a_raw_bar_is_bad_then_blocking_check_fails_and_nothing_is_frozen(tmp_path, instance):
    bars = pd.DataFrame(
        {"symbol": ["AAA", "AAA"], "date": ["2024-01-02", "2024-01-03"], "open": [10.0, 10.0],
         "high": [11.0, 9.0], "low": [9.5, 9.5], "close": [10.5, 9.6], "volume": [100.0, 100.0]}
    )  # 2024-01-03: high 9.0 < low 9.5
    result, check = _refreeze_bars(tmp_path, instance, bars)
    assert check.passed is False
    failed = check.metadata["failed_expectations"].value
    assert any(f["examples"] and f["examples"][0]["date"] == "2024-01-03" for f in failed)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "lake_version" not in materialized and "lake_candidate" not in materialized
    lake = Lake(tmp_path / "lake")
    assert lake.current_version_id() is None and lake.staged_labels() == []
    alerts = read_alert_log(tmp_path / "state" / "alerts.jsonl")
    assert [a.kind for a in alerts] == ["data_check_failed"] and "raw_daily_bars" in alerts[0].subject


def test_refreeze_when_no_production_model_then_the_lake_is_published_and_the_run_succeeds_saying_to_train(tmp_path, instance):
    market = MarketDataResource(sim_symbols=3, history_start="2024-01-02", sim_end="2024-01-31")
    result = driver_for(tmp_path, market, instance).freeze("2024-01-02", "2024-01-31", with_signals=True)
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == set(LAKE_ASSETS)  # no signals, so no trading run follows
    logs = instance.all_logs(result.run_id)
    assert any("no production version yet" in (entry.user_message or "") and "training_job" in entry.user_message for entry in logs)
    assert Lake(tmp_path / "lake").current_version_id() == result.output_for_node("lake_version")


def test_refreeze_when_a_year_of_sessions_holds_a_bad_bar_then_the_check_in_its_worker_blocks_the_freeze(
        tmp_path, instance):
    # the check runs in the run's quality worker process; its refusal blocks the freeze
    days = ["2023-01-03", "2023-06-01", "2024-01-03"]
    bars = pd.DataFrame({"symbol": ["AAA"] * 3, "date": days, "open": 10.0, "high": [11.0, 9.0, 11.0],
                         "low": 9.5, "close": [10.5, 9.6, 10.5], "volume": 100.0})  # 2023-06-01: high 9.0 < low 9.5
    result, check = _refreeze_bars(tmp_path, instance, bars)
    assert check.passed is False
    failed = check.metadata["failed_expectations"].value
    assert {"expectation": "expect_column_pair_values_a_to_be_greater_than_b", "column": "high,close", "unexpected": 1,
            "examples": [{"high": 9.0, "close": 9.6, "symbol": "AAA", "date": "2023-06-01"}]} in failed
    assert _metadata(result, "raw_daily_bars")["staged"] is False
    lake = Lake(tmp_path / "lake")
    assert lake.current_version_id() is None and lake.staged_labels() == []
    assert list(lake.staging_dir.iterdir()) == []  # the batch written beside the check was discarded


def test_refreeze_when_a_year_of_simulated_sessions_then_the_worker_passes_them_and_the_version_holds_them(
        tmp_path, instance):
    market = MarketDataResource(sim_symbols=3, history_start="2023-01-03", sim_end="2024-01-31")
    result = driver_for(tmp_path, market, instance).freeze("2023-01-03", "2024-01-31", with_signals=False)
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()}["check_raw_bars_quality"] is True
    meta = _metadata(result, "raw_daily_bars")
    delivered = market.build().daily_bars("2023-01-03", "2024-01-31")
    assert (meta["rows"], meta["sessions"], meta["symbols"]) == (len(delivered), delivered["date"].nunique(), 3)
    assert (meta["first_date"], meta["last_date"]) == ("2023-01-03", "2024-01-31")
    assert Lake(tmp_path / "lake").query("SELECT count(*) AS n FROM bars")["n"].iloc[0] == len(delivered)


def test_refreeze_when_the_run_scores_then_raw_daily_bars_starts_loading_the_scoring_libraries(tmp_path, instance, monkeypatch):
    from kobe_pipelines.ml import preload

    started = []
    monkeypatch.setattr(preload, "start", lambda: started.append("scoring"))
    market = MarketDataResource(sim_symbols=3, history_start="2024-01-02", sim_end="2024-01-31")
    driver = driver_for(tmp_path, market, instance)
    assert driver.freeze("2024-01-02", "2024-01-12", with_signals=False).success
    assert started == []  # the lake alone: nothing to score, nothing loaded
    assert driver.freeze("2024-01-16", "2024-01-31", with_signals=True).success
    assert started == ["scoring"]


def _count_action_fetches(monkeypatch, fail_first_dividends: bool = False) -> list:
    """Record each splits/dividends fetch of the simulated provider as (kind, start, end); the
    first dividends fetch raises when asked."""
    from kobe_pipelines.data.providers.simulated import SimulatedProvider

    calls = []
    splits, dividends = SimulatedProvider.splits, SimulatedProvider.dividends

    def counted_splits(self, start, end):
        calls.append(("splits", str(start), str(end)))
        return splits(self, start, end)

    def counted_dividends(self, start, end):
        calls.append(("dividends", str(start), str(end)))
        if fail_first_dividends and len([c for c in calls if c[0] == "dividends"]) == 1:
            raise ConnectionError("the provider is down for a moment")
        return dividends(self, start, end)

    monkeypatch.setattr(SimulatedProvider, "splits", counted_splits)
    monkeypatch.setattr(SimulatedProvider, "dividends", counted_dividends)
    return calls


def test_refreeze_when_bars_are_checked_then_the_actions_are_fetched_once_meanwhile_and_staged_as_fetched(
        tmp_path, instance, monkeypatch):
    market = MarketDataResource(sim_symbols=6, history_start="2023-01-03", sim_end="2024-03-28")
    driver = driver_for(tmp_path, market, instance)
    assert driver.freeze("2023-01-03", "2024-01-31", with_signals=False).success
    calls = _count_action_fetches(monkeypatch)
    result = driver.freeze("2024-02-01", "2024-03-28", with_signals=False)
    assert result.success
    # the lake's last session 2024-01-31 minus its 30-day look-back, through the last staged session
    assert calls == [("splits", "2024-01-01", "2024-03-28"), ("dividends", "2024-01-01", "2024-03-28")]
    meta = _metadata(result, "corporate_actions")
    assert meta["fetched_while_bars_were_checked"] is True
    assert (meta["fetched_from"], meta["fetched_to"]) == ("2024-01-01", "2024-03-28")
    provider = market.build()
    expected_splits, expected_dividends = provider.splits("2024-01-01", "2024-03-28"), provider.dividends("2024-01-01", "2024-03-28")
    assert (meta["splits"], meta["dividends"]) == (len(expected_splits), len(expected_dividends)) and len(expected_dividends)


def test_refreeze_when_the_fetch_ahead_fails_then_corporate_actions_fetches_again_and_the_run_succeeds(
        tmp_path, instance, monkeypatch):
    calls = _count_action_fetches(monkeypatch, fail_first_dividends=True)
    market = MarketDataResource(sim_symbols=4, history_start="2024-01-02", sim_end="2024-03-28")
    result = driver_for(tmp_path, market, instance).freeze("2024-01-02", "2024-03-28", with_signals=False)
    assert result.success
    assert [kind for kind, _, _ in calls] == ["splits", "dividends", "splits", "dividends"]  # ahead (failed), then again
    meta = _metadata(result, "corporate_actions")
    assert meta["fetched_while_bars_were_checked"] is False
    assert meta["dividends"] == len(market.build().dividends("2024-01-02", "2024-03-28"))
