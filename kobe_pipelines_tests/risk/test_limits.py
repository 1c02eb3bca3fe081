from __future__ import annotations

import dataclasses
import json

import pytest

from kobe_pipelines.errors import ConfigError
from kobe_pipelines.risk.limits import RiskLimits


def test_defaults_when_nothing_is_set_then_match_the_documented_values():
    limits = RiskLimits.load(environ={})
    assert (limits.max_drawdown, limits.max_heat, limits.max_position_fraction) == (0.15, 0.10, 0.20)
    assert (limits.max_order_notional, limits.price_collar, limits.max_orders_per_minute) == (250_000.0, 0.10, 60)


def test_limits_when_changed_after_creation_then_refuse():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RiskLimits().max_heat = 0.5  # type: ignore[misc]


def test_from_env_when_variables_set_then_override_only_those_fields():
    limits = RiskLimits.from_env({"KOBE_RISK_MAX_HEAT": "0.06", "KOBE_RISK_MAX_ORDERS_PER_MINUTE": "10",
                                  "KOBE_RISK_MAX_ORDER_NOTIONAL": "100_000"})
    assert (limits.max_heat, limits.max_orders_per_minute, limits.max_order_notional) == (0.06, 10, 100_000.0)
    assert limits.max_drawdown == 0.15


@pytest.mark.parametrize(
    ("variable", "raw"),
    [("KOBE_RISK_MAX_HEAT", "ten percent"), ("KOBE_RISK_MAX_HEAT", "10"), ("KOBE_RISK_MAX_HEAT", "nan"),
     ("KOBE_RISK_MAX_DRAWDOWN", "0"), ("KOBE_RISK_MAX_ORDERS_PER_MINUTE", "2.5"),
     ("KOBE_RISK_MAX_ORDER_NOTIONAL", "-1"), ("KOBE_RISK_PRICE_COLLAR", "inf")],
)
def test_from_env_when_value_is_broken_then_config_error_names_the_variable(variable, raw):
    # "10" for max_heat is the classic percent-for-fraction slip: 10 = 1000 %, out of (0, 1].
    with pytest.raises(ConfigError) as caught:
        RiskLimits.from_env({variable: raw})
    assert caught.value.setting == variable
    assert variable in str(caught.value)


def test_from_file_when_toml_has_risk_table_then_reads_it(tmp_path):
    path = tmp_path / "risk.toml"
    path.write_text("[risk]\nmax_heat = 0.08\nmax_orders_per_minute = 5\n")
    limits = RiskLimits.from_file(path)
    assert (limits.max_heat, limits.max_orders_per_minute) == (0.08, 5)


def test_from_file_when_json_then_reads_top_level_keys(tmp_path):
    path = tmp_path / "risk.json"
    path.write_text(json.dumps({"price_collar": 0.05, "max_position_fraction": 0.25}))
    limits = RiskLimits.from_file(path)
    assert (limits.price_collar, limits.max_position_fraction) == (0.05, 0.25)


@pytest.mark.parametrize(
    ("text", "field"),
    [("max_heat = 'high'\n", "max_heat"), ("max_heat = true\n", "max_heat"), ("max_drawdown = 1.5\n", "max_drawdown"),
     ("max_orders_per_minute = 0\n", "max_orders_per_minute"), ("max_heta = 0.1\n", "max_heta")],
)
def test_from_file_when_field_is_broken_then_config_error_names_the_field(tmp_path, text, field):
    path = tmp_path / "risk.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        RiskLimits.from_file(path)
    assert caught.value.setting.startswith(field)
    assert str(path) in str(caught.value)


def test_from_file_when_toml_does_not_parse_then_config_error(tmp_path):
    path = tmp_path / "risk.toml"
    path.write_text("max_heat = = 0.1\n")
    with pytest.raises(ConfigError, match="does not parse"):
        RiskLimits.from_file(path)


def test_load_when_config_file_and_env_then_env_overrides_file(tmp_path):
    path = tmp_path / "risk.toml"
    path.write_text("max_heat = 0.08\nmax_drawdown = 0.2\n")
    limits = RiskLimits.load({"KOBE_RISK_CONFIG": str(path), "KOBE_RISK_MAX_HEAT": "0.05"})
    assert (limits.max_heat, limits.max_drawdown) == (0.05, 0.2)


def test_load_when_config_file_is_broken_then_refuses_to_start_naming_the_field(tmp_path):
    path = tmp_path / "risk.toml"
    path.write_text("max_position_fraction = -0.2\n")
    with pytest.raises(ConfigError, match="max_position_fraction"):
        RiskLimits.load({"KOBE_RISK_CONFIG": str(path)})
