"""`kobe lake freeze --provider simulated` reads the settings the Dagster assets read."""

from __future__ import annotations

from click.testing import CliRunner

from kobe_pipelines.cli import main
from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
from kobe_pipelines.lake import Lake


def test_lake_freeze_simulated_when_sim_symbols_history_start_and_convention_are_set_then_all_are_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("KOBE_SIM_SYMBOLS", "4")
    monkeypatch.setenv("KOBE_HISTORY_START", "2024-02-01")
    monkeypatch.setenv("KOBE_DIVIDEND_CONVENTION", "quandl")
    lake = tmp_path / "lake"
    result = CliRunner().invoke(main, ["lake", "freeze", "--provider", "simulated", "--end", "2024-03-28", "--lake", str(lake)])
    assert result.exit_code == 0, result.output
    manifest = Lake(lake).current_version()
    held = Lake(lake).query("SELECT symbol, count(*) AS bars, min(date)::VARCHAR AS first FROM bars_raw GROUP BY 1")
    # the four-symbol market started on 2024-02-01 (a symbol may list later)
    expected = SimulatedProvider(SimConfig(n_symbols=4, start="2024-02-01", end="2024-03-28")).daily_bars("2024-02-01", "2024-03-28")
    assert dict(zip(held["symbol"], held["bars"])) == expected.groupby("symbol", observed=True).size().to_dict()
    assert held["first"].min() == "2024-02-01" and manifest.dividend_convention == "quandl"
