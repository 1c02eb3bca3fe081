"""The lake assets materialized through Dagster on a temporary lake."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from kobe_pipelines.defs.lake.assets import lake_assets
from kobe_pipelines.alerts.sinks import read_alert_log
from kobe_pipelines.defs.env_resources import AlertsResource
from kobe_pipelines.defs.resources import LakeResource, MarketDataResource
from kobe_pipelines.lake import Lake

RANGE = {"dagster/asset_partition_range_start": "2024-01-02", "dagster/asset_partition_range_end": "2024-03-28"}


def materialize(tmp_path, market: MarketDataResource):
    return dg.materialize(
        lake_assets,
        resources={"lake": LakeResource(lake_dir=str(tmp_path / "lake")), "market_data": market,
                   "alerts": AlertsResource(state_dir=str(tmp_path / "state"))},
        instance=dg.DagsterInstance.ephemeral(),
        tags=RANGE,
        raise_on_error=False,
    )


def test_materialize_when_simulated_market_then_checks_pass_and_a_lake_version_is_published(tmp_path):
    market = MarketDataResource(sim_symbols=6, history_start="2024-01-02", sim_end="2024-03-28")
    result = materialize(tmp_path, market)
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
    events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    version_meta = next(m.metadata for m in events if m.asset_key.to_user_string() == "lake_version")
    assert version_meta["version_id"].value == version_id and version_meta["rows"].value == len(delivered)
    assert lake.staged_labels() == []  # consumed by the freeze


def test_materialize_when_a_raw_bar_is_bad_then_blocking_check_fails_and_nothing_is_frozen(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    bars = pd.DataFrame(
        {"symbol": ["AAA", "AAA"], "date": ["2024-01-02", "2024-01-03"], "open": [10.0, 10.0],
         "high": [11.0, 9.0], "low": [9.5, 9.5], "close": [10.5, 9.6], "volume": [100.0, 100.0]}
    )  # 2024-01-03: high 9.0 < low 9.5
    bars.to_csv(source / "bars.csv", index=False)
    market = MarketDataResource(provider="files", files_dir=str(source), history_start="2024-01-02")
    result = materialize(tmp_path, market)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["check_raw_bars_quality"].passed is False
    failed = checks["check_raw_bars_quality"].metadata["failed_expectations"].value
    assert any(f["examples"] and f["examples"][0]["date"] == "2024-01-03" for f in failed)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "lake_version" not in materialized and "adjustment_factors" not in materialized
    lake = Lake(tmp_path / "lake")
    assert lake.current_version_id() is None and lake.staged_labels() == []
    alerts = read_alert_log(tmp_path / "state" / "alerts.jsonl")
    assert [a.kind for a in alerts] == ["data_check_failed"] and "raw_daily_bars" in alerts[0].subject
