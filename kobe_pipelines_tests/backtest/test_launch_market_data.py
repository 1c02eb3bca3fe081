"""A backtest's own lake, frozen from the provider it names: built by the same factory and
settings as `kobe lake freeze` (a Polygon server on loopback speaking its wire format)."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from kobe_pipelines.backtest.launch import open_lake
from kobe_pipelines.backtest.settings import BacktestSettings
from kobe_pipelines.errors import ConfigError
from kobe_pipelines_tests.data import polygon_fixtures as fx


def polygon_settings(tmp_path) -> BacktestSettings:
    return BacktestSettings(start="2024-01-04", end="2024-01-04", out=tmp_path / "bt", provider="polygon",
                            history_start="2024-01-03")


def test_open_lake_with_polygon_when_the_key_is_set_then_the_served_bars_and_split_are_frozen(tmp_path, monkeypatch,
                                                                                             httpserver: HTTPServer):
    fx.serve_flat_market(httpserver, monkeypatch, "AAA", {"2024-01-03": 40.0, "2024-01-04": 20.4},
                         splits=[fx.split("AAA", "2024-01-04", 1, 2)])

    lake, version_id = open_lake(polygon_settings(tmp_path))

    bars = lake.query("SELECT date, close FROM bars_raw WHERE symbol = 'AAA' ORDER BY date", version_id)
    assert bars["close"].tolist() == [40.0, 20.4]
    adjusted = lake.query("SELECT close FROM bars_split_adjusted WHERE symbol = 'AAA' ORDER BY date", version_id)
    assert adjusted["close"].tolist() == [20.0, 20.4]  # 40 x 1/2 before the 2-for-1 split


def test_open_lake_with_polygon_when_no_key_is_set_then_config_error_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="POLYGON_API_KEY"):
        open_lake(polygon_settings(tmp_path))
    assert not (tmp_path / "bt" / "lake").exists()
