"""The one `Definitions` loads, and environment variables reach the resources."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from kobe_pipelines.defs import build_definitions
from kobe_pipelines.defs.lake.schedules import nightly_refreeze
from kobe_pipelines.defs.resources import build_resources

NY = ZoneInfo("America/New_York")


def test_definitions_when_loaded_then_every_lake_asset_check_and_schedule_is_there():
    defs = build_definitions({})
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {"raw_daily_bars", "corporate_actions", "adjustment_factors", "adjusted_bars", "lake_version"} <= keys
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"check_raw_bars_quality", "check_split_adjusted_no_unexplained_jump", "check_total_return_no_unexplained_jump"} <= checks
    assert defs.resolve_schedule_def("nightly_refreeze").execution_timezone == "America/New_York"


def test_build_resources_when_variables_unset_then_embedded_defaults():
    resources = build_resources({})
    assert resources["market_data"].provider == "simulated"
    assert resources["lake"].lake_dir is None and resources["lake"].dividend_convention == "crsp"


def test_build_resources_when_variables_set_then_resources_read_them_through_envvar(monkeypatch, tmp_path):
    env = {"KOBE_LAKE_DIR": str(tmp_path / "elsewhere"), "KOBE_DIVIDEND_CONVENTION": "quandl", "KOBE_LAKE_RETENTION": "3",
           "KOBE_MARKET_DATA": "polygon", "POLYGON_API_KEY": "secret-key"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    resources = build_resources(env)
    assert isinstance(resources["market_data"].polygon_api_key, dg.EnvVar)  # the secret is not copied into config
    with dg.build_resources(resources) as built:
        assert built.lake.open().root == (tmp_path / "elsewhere").resolve()
        assert (built.lake.retention, built.lake.dividend_convention) == (3, "quandl")
        assert (built.market_data.provider, built.market_data.polygon_api_key) == ("polygon", "secret-key")


def test_nightly_refreeze_when_evening_of_a_session_then_requests_that_partition():
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2024, 7, 3, 18, 30, tzinfo=NY))
    request = nightly_refreeze(context)
    assert isinstance(request, dg.RunRequest) and request.partition_key == "2024-07-03"


def test_nightly_refreeze_when_holiday_then_skips():
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2024, 7, 4, 18, 30, tzinfo=NY))
    assert isinstance(nightly_refreeze(context), dg.SkipReason)
