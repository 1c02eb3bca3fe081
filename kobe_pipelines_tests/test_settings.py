"""The settings layer: one set of names, defaults and parsing for the command line and Dagster."""

from __future__ import annotations

import pytest

from kobe_pipelines.data.providers.factory import build_provider
from kobe_pipelines.defs.resources import build_resources
from kobe_pipelines.errors import ConfigError
from kobe_pipelines.settings import DEFAULT_HISTORY_START, LakeSettings, MarketDataSettings, dagster_home, mlflow_tracking_uri


def test_market_data_settings_when_nothing_is_set_then_the_embedded_simulated_market():
    settings = MarketDataSettings.from_env({})
    assert (settings.provider, settings.history_start, settings.sim_symbols) == ("simulated", DEFAULT_HISTORY_START, 24)


def test_market_data_settings_when_variables_are_set_then_parsed_by_their_field_types():
    env = {"KOBE_SIM_SYMBOLS": "7", "KOBE_SIM_SIGNAL_STRENGTH": "0.1", "KOBE_HISTORY_START": "2021-01-04", "KOBE_SIM_END": ""}
    settings = MarketDataSettings.from_env(env)
    assert (settings.sim_symbols, settings.sim_signal_strength, settings.history_start, settings.sim_end) == (7, 0.1, "2021-01-04", None)


@pytest.mark.parametrize("env, variable", [({"KOBE_SIM_SYMBOLS": "many"}, "KOBE_SIM_SYMBOLS"),
                                           ({"KOBE_HISTORY_START": "2021-13-01"}, "KOBE_HISTORY_START"),
                                           ({"KOBE_MARKET_DATA": "bloomberg"}, "KOBE_MARKET_DATA"),
                                           ({"KOBE_LAKE_RETENTION": "0"}, "KOBE_LAKE_RETENTION")])
def test_settings_when_a_value_does_not_parse_then_config_error_names_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        MarketDataSettings.from_env(env) if variable != "KOBE_LAKE_RETENTION" else LakeSettings.from_env(env)


def test_build_provider_when_simulated_settings_then_the_universe_and_history_start_they_name():
    provider = build_provider(MarketDataSettings(sim_symbols=5, history_start="2024-01-02", sim_end="2024-01-31"))
    bars = provider.daily_bars("2023-01-01", "2024-12-31")
    assert provider.symbols == ["K0000", "K0001", "K0002", "K0003", "K0004"]
    assert str(bars["date"].min().date()) == "2024-01-02" and str(bars["date"].max().date()) == "2024-01-31"


def test_build_provider_when_files_without_a_folder_then_config_error_names_kobe_files_dir():
    with pytest.raises(ConfigError, match="KOBE_FILES_DIR"):
        build_provider(MarketDataSettings(provider="files"))


def test_market_data_resource_when_fed_from_the_environment_then_the_same_settings_as_the_command_line(monkeypatch):
    import dagster as dg

    env = {"KOBE_SIM_SYMBOLS": "9", "KOBE_HISTORY_START": "2022-01-03", "KOBE_DIVIDEND_CONVENTION": "quandl"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with dg.build_resources(build_resources(env)) as built:
        assert built.market_data.settings() == MarketDataSettings.from_env(env)
        assert built.lake.settings() == LakeSettings.from_env(env)


def test_mlflow_and_dagster_home_when_unset_then_under_the_state_folder(tmp_path):
    assert mlflow_tracking_uri({}).endswith("/state/mlflow/mlflow.db")
    assert mlflow_tracking_uri({"MLFLOW_TRACKING_URI": "http://mlflow:5000"}) == "http://mlflow:5000"
    assert dagster_home({}).name == "dagster" and dagster_home({"DAGSTER_HOME": str(tmp_path)}) == tmp_path.resolve()
