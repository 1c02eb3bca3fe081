"""`kobe lake freeze` runs the checks the Dagster assets run (one code path, `Lake.prepare`): the
XNYS calendar, the jump check at splits and ex-dates, ticker and volume rules; and sets aside
the actions of symbols without bars. One test per attack of issue 17, items 5 and 6."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer

from kobe_pipelines import market_calendar
from kobe_pipelines.cli import main
from kobe_pipelines.data import quality
from kobe_pipelines.data.event_checks import RepeatedSplitError, UnexplainedJumpError
from kobe_pipelines.data.validation import BarValidationError
from kobe_pipelines.lake import Lake
from kobe_pipelines_tests.data import polygon_fixtures as fx

DAYS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]


def bars_frame(rows: list[tuple[str, str, float]], volume: float = 1000.0) -> pd.DataFrame:
    """Bars whose open, high, low and close are all `close` (the prices never judge themselves here)."""
    frame = pd.DataFrame(rows, columns=["symbol", "date", "close"])
    return frame.assign(open=frame["close"], high=frame["close"], low=frame["close"], volume=volume)[
        ["symbol", "date", "open", "high", "low", "close", "volume"]]


def flat(symbol: str, days: list[str], close: float = 10.0) -> list[tuple[str, str, float]]:
    return [(symbol, day, close) for day in days]


def source(tmp_path, bars: pd.DataFrame, splits: pd.DataFrame | None = None, dividends: pd.DataFrame | None = None,
           fmt: str = "csv"):
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    if fmt == "csv":
        bars.to_csv(folder / "bars.csv", index=False)
    else:
        pq.write_table(pa.Table.from_pandas(bars.assign(date=pd.to_datetime(bars["date"]).dt.date), preserve_index=False),
                       folder / "bars.parquet")
    if splits is not None:
        splits.to_csv(folder / "splits.csv", index=False)
    if dividends is not None:
        dividends.to_csv(folder / "dividends.csv", index=False)
    return folder


def freeze(tmp_path, folder, *extra: str):
    return CliRunner().invoke(main, ["lake", "freeze", "--provider", "files", "--source", str(folder),
                                     "--lake", str(tmp_path / "lake"), *extra])


def refused(tmp_path, result, record: str, field: str, *words: str) -> None:
    """Exit 1, one line naming the record and the field, and nothing frozen."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{record}: field '{field}'" in lines[0], result.output
    for word in words:
        assert word in lines[0], result.output
    assert Lake(tmp_path / "lake").versions() == []


def splits_frame(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["symbol", "execution_date", "split_from", "split_to"])


# ---- the XNYS calendar -----------------------------------------------------------------------


@pytest.mark.parametrize("day, why", [("2023-07-04", "holiday"), ("2024-01-06", "Saturday")])
def test_freeze_when_a_bar_is_dated_on_a_holiday_or_weekend_then_refused_by_name(tmp_path, day, why):
    bars = bars_frame(flat("AAA", ["2023-07-03", day, "2023-07-05"] if why == "holiday" else DAYS + [day]))
    refused(tmp_path, freeze(tmp_path, source(tmp_path, bars)), f"AAA {day}", "date", "XNYS session")


def test_freeze_when_a_bar_is_dated_in_the_future_then_refused_not_dropped(tmp_path):
    bars = bars_frame(flat("AAA", DAYS + ["2030-01-02"]))
    refused(tmp_path, freeze(tmp_path, source(tmp_path, bars)), "AAA 2030-01-02", "date", "future")


# ---- the jump check at splits and ex-dates ----------------------------------------------------


def test_freeze_when_a_split_of_a_million_meets_flat_raw_prices_then_refused_by_name(tmp_path):
    bars = bars_frame(flat("AAA", DAYS, close=99.5))
    splits = splits_frame([("AAA", "2024-01-04", 1.0, 1_000_000.0)])
    result = freeze(tmp_path, source(tmp_path, bars, splits))
    refused(tmp_path, result, "split AAA 2024-01-04", "split_to", "unexplained jump", "split-adjusted")


def test_freeze_when_a_split_is_listed_twice_a_week_apart_then_refused_naming_the_second(tmp_path):
    # SHOP's 10:1 split of 2022-06-29, listed again for 2022-07-06: the raw prices fall tenfold once
    days = [str(d.date()) for d in market_calendar.sessions("2022-06-24", "2022-07-12")]
    bars = bars_frame([("SHOP", d, 400.0 if d < "2022-06-29" else 40.0) for d in days])
    splits = splits_frame([("SHOP", "2022-06-29", 1.0, 10.0), ("SHOP", "2022-07-06", 1.0, 10.0)])
    result = freeze(tmp_path, source(tmp_path, bars, splits))
    refused(tmp_path, result, "split SHOP 2022-07-06", "execution_date", "listed twice", "2022-06-29", "4 session(s)")


def test_freeze_when_two_real_splits_are_a_week_apart_then_both_are_applied(tmp_path):
    # both show in the raw prices (tenfold, then twofold): two real splits, not one listed twice
    days = [str(d.date()) for d in market_calendar.sessions("2022-06-24", "2022-07-12")]
    bars = bars_frame([("SHOP", d, 400.0 if d < "2022-06-29" else 40.0 if d < "2022-07-06" else 20.0) for d in days])
    splits = splits_frame([("SHOP", "2022-06-29", 1.0, 10.0), ("SHOP", "2022-07-06", 1.0, 2.0)])
    assert freeze(tmp_path, source(tmp_path, bars, splits)).exit_code == 0
    adjusted = Lake(tmp_path / "lake").query("SELECT DISTINCT close FROM bars_split_adjusted")["close"].tolist()
    assert adjusted == [20.0]  # 400 x 1/10 x 1/2, 40 x 1/2, 20


def test_lake_prepare_when_staged_bars_hold_the_same_split_twice_then_the_asset_path_refuses_it_too(tmp_path):
    # the Dagster assets freeze through Lake.prepare (adjustment_factors): the same checks apply
    days = [str(d.date()) for d in market_calendar.sessions("2022-06-24", "2022-07-12")]
    bars = bars_frame([("SHOP", d, 400.0 if d < "2022-06-29" else 40.0) for d in days])
    lake = Lake(tmp_path / "lake")
    lake.stage_bars("2022-06-24_2022-07-12", bars)
    twice = splits_frame([("SHOP", "2022-06-29", 1.0, 10.0), ("SHOP", "2022-07-06", 1.0, 10.0)])
    with pytest.raises(RepeatedSplitError):
        lake.prepare(lake.staged_bars_table(), twice, pd.DataFrame(columns=["symbol", "ex_dividend_date", "cash_amount"]),
                     provider="test")
    million = splits_frame([("SHOP", "2022-07-06", 1.0, 1e6)])
    with pytest.raises(UnexplainedJumpError):
        lake.prepare(lake.staged_bars_table(), million, pd.DataFrame(columns=["symbol", "ex_dividend_date", "cash_amount"]),
                     provider="test")
    holiday = bars_frame(flat("SHOP", ["2022-07-04"]))
    with pytest.raises(BarValidationError, match="XNYS session"):
        lake.prepare(holiday, splits_frame([]), pd.DataFrame(columns=["symbol", "ex_dividend_date", "cash_amount"]),
                     provider="test")
    assert lake.versions() == []


# ---- symbols ----------------------------------------------------------------------------------


def test_freeze_when_a_symbol_has_surrounding_spaces_then_it_is_the_same_symbol(tmp_path):
    bars = bars_frame(flat("AAA", DAYS[:2]) + flat(" AAA ", DAYS[2:]) + flat("BBB", DAYS))
    assert freeze(tmp_path, source(tmp_path, bars)).exit_code == 0
    counts = Lake(tmp_path / "lake").query("SELECT symbol, count(*) AS n FROM bars GROUP BY 1 ORDER BY 1")
    assert counts.values.tolist() == [["AAA", 4], ["BBB", 4]]


def test_freeze_when_a_spaced_symbol_repeats_a_bar_then_refused_as_a_duplicate(tmp_path):
    bars = bars_frame(flat("AAA", DAYS) + flat(" AAA ", DAYS[1:2]))
    refused(tmp_path, freeze(tmp_path, source(tmp_path, bars)), "AAA 2024-01-03", "date", "duplicates")


@pytest.mark.parametrize("symbol, fmt", [("A" * 100_000, "csv"), ("AA\nPL", "parquet"), ("AA\x00PL", "parquet"),
                                         ("AA PL", "csv")])
def test_freeze_when_a_symbol_is_not_a_ticker_then_refused_by_name(tmp_path, symbol, fmt):
    bars = bars_frame(flat("AAA", DAYS) + flat(symbol, DAYS[:1]))
    result = freeze(tmp_path, source(tmp_path, bars, fmt=fmt))
    assert result.exit_code == 1 and "field 'symbol' must be a ticker" in result.output, result.output[:300]
    assert len(result.output.strip().splitlines()) == 1 or "\n" in symbol  # the symbol is shown as given
    assert Lake(tmp_path / "lake").versions() == []


# ---- volume -----------------------------------------------------------------------------------


@pytest.mark.parametrize("volume", [100.5, 1e23, -1.0])
def test_freeze_when_volume_is_fractional_or_out_of_range_then_refused_by_name(tmp_path, volume):
    bars = bars_frame(flat("AAA", DAYS))
    bars.loc[2, "volume"] = volume
    refused(tmp_path, freeze(tmp_path, source(tmp_path, bars)), "AAA 2024-01-04", "volume", "whole number of shares")


def test_raw_bars_quality_when_the_same_bars_are_checked_then_great_expectations_refuses_them_too():
    bars = bars_frame(flat("AAA", DAYS) + flat("AA PL", DAYS[:1]) + flat("BBB", ["2024-01-06"]))
    bars.loc[1, "volume"] = 100.5
    report = quality.check_raw_bars(bars.assign(date=pd.to_datetime(bars["date"])), as_of=pd.Timestamp("2024-01-31").date())
    failed = {(o.expectation, o.column) for o in report.failures}
    assert {("expect_column_values_to_match_regex", "symbol"), ("expect_column_values_to_be_in_set", "date"),
            ("expect_column_values_to_be_between", "volume_fraction")} <= failed


# ---- actions of symbols without bars --------------------------------------------------------


def test_freeze_when_an_action_names_a_symbol_without_bars_then_it_is_set_aside_with_a_count(tmp_path):
    bars = bars_frame(flat("AAA", DAYS))
    splits = splits_frame([("OTCX", "2024-01-03", 1.0, 2.0), ("AMZN", "2024-01-04", 1.0, 20.0)])
    dividends = pd.DataFrame({"symbol": ["OTCX"], "ex_dividend_date": ["2024-01-04"], "cash_amount": [0.1]})
    result = freeze(tmp_path, source(tmp_path, bars, splits, dividends))
    assert result.exit_code == 0, result.output
    assert "3 actions of 2 symbols without bars set aside" in result.output
    lake = Lake(tmp_path / "lake")
    assert lake.events().empty
    assert sorted(lake.derived_table("actions_set_aside")["symbol"]) == ["AMZN", "OTCX", "OTCX"]


def test_freeze_when_a_symbols_bars_arrive_later_then_its_set_aside_action_is_applied(tmp_path):
    # the first freeze holds AAA only; BBB's split is kept aside; BBB's bars arrive with the next
    # freeze (its own source no longer lists the split): the kept split is applied
    lake = Lake(tmp_path / "lake")
    bbb = [("BBB", d, 20.0 if d < "2024-01-04" else 10.0) for d in DAYS]
    split = splits_frame([("BBB", "2024-01-04", 1.0, 2.0)])
    no_divs = pd.DataFrame(columns=["symbol", "ex_dividend_date", "cash_amount"])
    first = lake.freeze(bars_frame(flat("AAA", DAYS)), split, no_divs, provider="test")
    assert (first.actions_set_aside.splits, first.actions_set_aside.symbols) == (1, 1)
    second = lake.freeze(bars_frame(flat("AAA", DAYS) + bbb), splits_frame([]), no_divs, provider="test")
    assert second.actions_set_aside.total == 0 and lake.derived_table("actions_set_aside") is None
    closes = lake.query("SELECT close FROM bars_split_adjusted WHERE symbol = 'BBB' ORDER BY date")["close"].tolist()
    assert closes == [10.0, 10.0, 10.0, 10.0]  # 20 x 1/2 before the split, 10 after
    fresh = Lake(tmp_path / "fresh")
    fresh.freeze(bars_frame(flat("AAA", DAYS) + bbb), split, no_divs, provider="test")
    for role in ("splits", "factors", "adjustment_events"):
        pd.testing.assert_frame_equal(lake.derived_table(role), fresh.derived_table(role))


def test_freeze_with_polygon_when_an_action_names_a_ticker_without_bars_then_set_aside(tmp_path, httpserver: HTTPServer,
                                                                                       monkeypatch):
    fx.serve_flat_market(httpserver, monkeypatch, "AAA", {"2024-01-03": 10.0, "2024-01-04": 10.2},
                         splits=[fx.split("AMZN", "2024-01-04", 1, 20)], dividends=[fx.dividend("OTCX", "2024-01-04", 0.1)])
    result = CliRunner().invoke(main, ["lake", "freeze", "--provider", "polygon", "--start", "2024-01-03", "--end", "2024-01-04",
                                       "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    assert "2 actions of 2 symbols without bars set aside" in result.output
