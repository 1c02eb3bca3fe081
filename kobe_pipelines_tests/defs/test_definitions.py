"""The one `Definitions` loads, environment variables reach the resources, and the nightly schedule
asks for the right sessions."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest

from kobe_pipelines.defs import build_definitions
from kobe_pipelines.defs.env_resources import AlertsResource
from kobe_pipelines.defs.lake.schedules import nightly_refreeze
from kobe_pipelines.defs.resources import LakeResource, MarketDataResource, build_resources
from kobe_pipelines.lake import Lake

NY = ZoneInfo("America/New_York")
HEAVY = ("torch", "sklearn", "mlflow", "great_expectations", "pandas", "duckdb", "matplotlib")


def test_definitions_when_loaded_then_every_lake_asset_check_job_and_schedule_is_there():
    defs = build_definitions({})
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {"raw_daily_bars", "corporate_actions", "lake_candidate", "lake_version", "signals"} <= keys
    assert not {"adjustment_factors", "adjusted_bars"} & keys  # renamed: the candidate and its checks
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"check_raw_bars_quality", "check_split_adjusted_no_unexplained_jump", "check_total_return_no_unexplained_jump"} <= checks
    assert defs.resolve_schedule_def("nightly_refreeze").execution_timezone == "America/New_York"
    assert {job.name for job in defs.jobs} == {"refreeze_job", "training_job", "trading_job", "verify_lake_job"}
    assert defs.resolve_schedule_def("weekly_lake_verify").execution_timezone == "America/New_York"


def test_definitions_when_imported_in_a_fresh_process_then_no_data_or_model_library_is_loaded():
    code = "import sys, json, kobe_pipelines.definitions; print(json.dumps(sorted(m for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300).stdout
    loaded = {name.split(".")[0] for name in json.loads(out.splitlines()[-1])}
    assert not loaded & set(HEAVY)


@pytest.mark.parametrize("provider", ["simulated", "polygon"])
def test_raw_daily_bars_when_a_provider_is_configured_then_its_kind_names_it(provider):
    defs = build_definitions({"KOBE_MARKET_DATA": provider})
    spec = defs.resolve_assets_def("raw_daily_bars").specs_by_key[dg.AssetKey("raw_daily_bars")]
    assert provider in spec.kinds and ({"simulated", "polygon"} - {provider}).isdisjoint(spec.kinds)


def test_sensors_when_the_ui_starts_then_only_the_two_that_write_nothing_unasked_are_running():
    defs = build_definitions({})
    status = {name: defs.resolve_sensor_def(name).default_status for name in
              ("trading_sensor", "drawdown_sensor", "run_failure_alert_sensor", "alerts_flush_sensor")}
    running = {name for name, value in status.items() if value == dg.DefaultSensorStatus.RUNNING}
    assert running == {"run_failure_alert_sensor", "alerts_flush_sensor"}
    for name in ("nightly_refreeze", "weekly_training"):
        assert defs.resolve_schedule_def(name).default_status == dg.DefaultScheduleStatus.STOPPED


def test_alerts_flush_sensor_when_it_ticks_on_a_fresh_state_then_nothing_is_written(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    defs = build_definitions({})
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"alerts": AlertsResource(state_dir=str(state))})
        defs.resolve_sensor_def("alerts_flush_sensor").evaluate_tick(context)
    assert list(state.iterdir()) == []


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


# ---- the nightly schedule ------------------------------------------------------------------------

def _lake_through(root, last: str) -> LakeResource:
    days = pd.bdate_range("2024-06-24", last)
    bars = pd.DataFrame({"symbol": "AAA", "date": days, "open": 10.0, "high": 10.5, "low": 9.5, "close": 10.0, "volume": 1e5})
    Lake(root).freeze(bars, pd.DataFrame(columns=["symbol", "execution_date", "split_from", "split_to"]),
                      pd.DataFrame(columns=["symbol", "ex_dividend_date", "cash_amount"]), provider="files")
    return LakeResource(lake_dir=str(root))


def _tick(day: dt.datetime, lake: LakeResource):
    context = dg.build_schedule_context(scheduled_execution_time=day, resources={"lake": lake, "market_data": MarketDataResource()})
    return nightly_refreeze(context)


def test_nightly_refreeze_when_evening_of_the_session_after_the_lakes_last_then_requests_that_one_session(tmp_path):
    request = _tick(dt.datetime(2024, 7, 3, 18, 30, tzinfo=NY), _lake_through(tmp_path / "lake", "2024-07-02"))
    assert isinstance(request, dg.RunRequest)
    assert request.run_config["ops"]["raw_daily_bars"]["config"] == {"first": "2024-07-03", "last": "2024-07-03"}
    assert request.run_key == "refreeze-2024-07-03" and request.tags["kobe/sessions"] == "2024-07-03"


def test_nightly_refreeze_when_nights_were_missed_then_requests_every_session_the_lake_lacks(tmp_path):
    request = _tick(dt.datetime(2024, 7, 8, 18, 30, tzinfo=NY), _lake_through(tmp_path / "lake", "2024-07-02"))
    # 07-03, 07-05 and 07-08 (07-04 closed, 07-06/07 a weekend)
    assert request.run_config["ops"]["raw_daily_bars"]["config"] == {"first": "2024-07-03", "last": "2024-07-08"}


def test_nightly_refreeze_when_holiday_then_skips(tmp_path):
    assert isinstance(_tick(dt.datetime(2024, 7, 4, 18, 30, tzinfo=NY), _lake_through(tmp_path / "lake", "2024-07-03")), dg.SkipReason)


def test_nightly_refreeze_when_the_lake_is_empty_then_skips_naming_the_catch_up_command(tmp_path):
    skip = _tick(dt.datetime(2024, 7, 3, 18, 30, tzinfo=NY), LakeResource(lake_dir=str(tmp_path / "empty")))
    assert isinstance(skip, dg.SkipReason)
    assert "kobe lake freeze --provider simulated" in skip.skip_message and "refreeze_job" in skip.skip_message


def test_nightly_refreeze_when_the_lake_already_holds_the_session_then_skips(tmp_path):
    skip = _tick(dt.datetime(2024, 7, 3, 18, 30, tzinfo=NY), _lake_through(tmp_path / "lake", "2024-07-03"))
    assert isinstance(skip, dg.SkipReason) and "already holds 2024-07-03" in skip.skip_message


def test_definitions_process_when_it_exits_then_the_heap_is_frozen_last_and_its_status_and_files_are_kept(tmp_path):
    written = tmp_path / "left-open.txt"
    code = """
import atexit, gc, sys
# registered before the definitions load, so it runs after their exit handler
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
import kobe_pipelines.definitions
print("frozen before exit:", gc.get_freeze_count() > 0, flush=True)
left_open = open(sys.argv[1], "w")
left_open.write("buffered, never closed")
sys.exit(3)
"""
    proc = subprocess.run([sys.executable, "-c", code, str(written)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3
    assert proc.stdout.splitlines()[-2:] == ["frozen before exit: False", "frozen at exit: True"]
    assert written.read_text() == "buffered, never closed"
