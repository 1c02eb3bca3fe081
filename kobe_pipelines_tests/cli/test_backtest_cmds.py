"""`kobe backtest` from the command line, on a user's own files."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from kobe_pipelines.cli import main
from kobe_pipelines.data.providers.simulated import SimulatedProvider
from kobe_pipelines_tests.backtest.conftest import QUIET


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Six symbols of the quiet simulated market (no corporate actions) as a user's bars.csv."""
    folder = tmp_path_factory.mktemp("mydata")
    bars = SimulatedProvider(QUIET).daily_bars(QUIET.start, QUIET.end)
    bars = bars.loc[bars["symbol"].isin(sorted(bars["symbol"].unique())[:6])]
    bars.assign(date=bars["date"].dt.strftime("%Y-%m-%d")).to_csv(folder / "bars.csv", index=False)
    return folder


def kobe(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_backtest_when_buy_and_hold_on_files_then_summary_files_and_preset_note(tmp_path, source):
    out = tmp_path / "bh"
    done = kobe("backtest", "--start", "2021-02-01", "--end", "2021-03-31", "--provider", "files", "--source", str(source),
                "--strategy", "buy_and_hold", "--param", "stop_fraction=0.4", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert "buy_and_hold preset" in done.output and "Sharpe, net of costs" in done.output
    assert str(out / "report.html") in done.output.replace("\n", "") and "ms per session" in done.output
    fills = pd.read_csv(out / "fills.csv")
    orders = pd.read_csv(out / "orders.csv")
    assert len(fills) == 6 and set(fills["session"]) == {"2021-02-02"}
    # the stop is 40 % below the entry (its expected price, the close of 2021-02-01, rounded to the tick)
    assert (orders["stop"] <= orders["entry"] * 0.6 + 1e-9).all() and (orders["stop"] > orders["entry"] * 0.6 - 0.01).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["limits"]["max_heat"] == 1.0 and manifest["symbols"] == 6


def test_backtest_when_out_already_holds_a_backtest_then_exit_1_and_the_error_names_it(tmp_path, source):
    out = tmp_path / "again"
    args = ("backtest", "--start", "2021-03-01", "--end", "2021-03-05", "--provider", "files", "--source", str(source),
            "--strategy", "buy_and_hold", "--out", str(out))
    assert kobe(*args).exit_code == 0
    again = CliRunner().invoke(main, list(args))
    assert again.exit_code == 1 and "already holds a backtest" in again.output


@pytest.mark.parametrize(("args", "message"), [
    (("--param", "top_n=many"), "param top_n"),
    (("--param", "no_such=1"), "param no_such"),
    (("--limit", "max_heat=2"), "max_heat"),
    (("--strategy", "nope"), "strategy"),
])
def test_backtest_when_a_setting_is_bad_then_exit_1_naming_it(tmp_path, source, args, message):
    done = CliRunner().invoke(main, ["backtest", "--start", "2021-03-01", "--end", "2021-03-05", "--provider", "files",
                                     "--source", str(source), "--signals", str(source / "bars.csv"), "--out",
                                     str(tmp_path / "bad"), *args])
    assert done.exit_code == 1 and message in done.output, done.output
