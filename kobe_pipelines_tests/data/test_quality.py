"""Great Expectations checks of raw bars (data.quality): what each rule catches, counted in bars and
named by symbol and date, whether the symbols come as strings or as a categorical column."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from kobe_pipelines.data import quality

DAYS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]  # XNYS sessions
AS_OF = dt.date(2024, 1, 31)


def bars(rows: list[tuple[str | None, str]], categorical: bool = False) -> pd.DataFrame:
    """Well-formed bars (open 10, high 11, low 9, close 10.5, volume 1,000) at (symbol, date)."""
    symbols = [symbol for symbol, _ in rows]
    frame = pd.DataFrame({"symbol": pd.Categorical(symbols) if categorical else pd.Series(symbols, dtype=object),
                          "date": pd.to_datetime([day for _, day in rows])})
    return frame.assign(open=10.0, high=11.0, low=9.0, close=10.5, volume=1000.0)


def good(count: int) -> list[tuple[str, str]]:
    return [(f"S{i:03d}", day) for i in range(count) for day in DAYS]


def failures(report: quality.QualityReport) -> dict[tuple[str, str], quality.ExpectationOutcome]:
    return {(o.expectation, o.column): o for o in report.failures}


@pytest.mark.parametrize("categorical", [False, True])
def test_check_raw_bars_when_a_malformed_symbol_is_among_many_good_bars_then_its_bars_are_counted_and_the_first_named(categorical):
    report = quality.check_raw_bars(bars(good(50) + [("AA PL", day) for day in DAYS[1:]], categorical), AS_OF)
    assert report.rows == 50 * 4 + 3
    assert set(failures(report)) == {("expect_column_values_to_match_regex", "symbol")}
    failed = failures(report)[("expect_column_values_to_match_regex", "symbol")]
    assert failed.unexpected_count == 3  # its three bars, not one symbol
    assert failed.examples == [{"symbol": "AA PL", "date": "2024-01-03"}]


@pytest.mark.parametrize("categorical", [False, True])
def test_check_raw_bars_when_two_symbols_are_one_once_trimmed_then_their_bars_on_a_date_are_duplicates(categorical):
    report = quality.check_raw_bars(bars(good(3) + [("S001 ", DAYS[2]), (" S002", "2024-01-08")], categorical), AS_OF)
    assert set(failures(report)) == {("expect_compound_columns_to_be_unique", "['symbol', 'date']")}
    duplicate = failures(report)[("expect_compound_columns_to_be_unique", "['symbol', 'date']")]
    assert duplicate.unexpected_count == 2  # S001 2024-01-04, given twice
    assert duplicate.examples == [{"symbol": "S001", "date": "2024-01-04"}] * 2


def test_check_raw_bars_when_symbols_differ_only_by_spaces_on_different_dates_then_they_pass():
    report = quality.check_raw_bars(bars([("AAA", DAYS[0]), (" AAA", DAYS[1]), ("AAA  ", DAYS[2])]), AS_OF)
    assert report.success, report.summary()


def test_check_raw_bars_when_symbols_are_too_long_or_blank_then_each_rule_counts_their_bars():
    too_long = "A" * 17
    report = quality.check_raw_bars(bars(good(5) + [(too_long, DAYS[0]), (too_long, DAYS[3]), ("   ", DAYS[1])]), AS_OF)
    found = failures(report)
    assert set(found) == {("expect_column_value_lengths_to_be_between", "symbol"),
                          ("expect_column_values_to_match_regex", "symbol")}
    lengths = found[("expect_column_value_lengths_to_be_between", "symbol")]
    assert lengths.unexpected_count == 3  # two bars of the 17-letter symbol, one of the blank one
    assert sorted(lengths.examples, key=str) == [{"symbol": "", "date": "2024-01-03"}, {"symbol": too_long, "date": "2024-01-02"}]
    blank = found[("expect_column_values_to_match_regex", "symbol")]
    assert (blank.unexpected_count, blank.examples) == (1, [{"symbol": "", "date": "2024-01-03"}])


def test_check_raw_bars_when_a_symbol_is_missing_then_not_null_fails_naming_the_date():
    report = quality.check_raw_bars(bars(good(2) + [(None, DAYS[1])]), AS_OF)
    assert set(failures(report)) == {("expect_column_values_to_not_be_null", "symbol")}
    missing = failures(report)[("expect_column_values_to_not_be_null", "symbol")]
    assert (missing.unexpected_count, missing.examples) == (1, [{"symbol": None, "date": "2024-01-03"}])


def test_check_raw_bars_when_a_bar_is_on_a_holiday_or_after_as_of_then_the_date_rules_name_it():
    report = quality.check_raw_bars(bars(good(2) + [("S000", "2024-01-06"), ("S001", "2024-02-01")]), AS_OF)
    found = failures(report)
    assert set(found) == {("expect_column_values_to_be_in_set", "date"), ("expect_column_values_to_be_between", "date")}
    assert found[("expect_column_values_to_be_in_set", "date")].examples == [{"symbol": "S000", "date": "2024-01-06"}]
    assert found[("expect_column_values_to_be_between", "date")].examples == [{"symbol": "S001", "date": "2024-02-01"}]


def test_check_raw_bars_when_prices_and_volume_break_their_rules_then_each_bar_is_named():
    frame = bars(good(4))
    frame.loc[1, "low"] = 10.6  # above close and open
    frame.loc[6, "volume"] = 12.5
    frame.loc[9, "open"] = -1.0
    found = failures(quality.check_raw_bars(frame, AS_OF))
    assert found[("expect_column_pair_values_a_to_be_greater_than_b", "close,low")].examples == [
        {"close": 10.5, "low": 10.6, "symbol": "S000", "date": "2024-01-03"}]
    assert found[("expect_column_values_to_be_between", "volume_fraction")].examples == [
        {"volume_fraction": 0.5, "symbol": "S001", "date": "2024-01-04"}]
    assert found[("expect_column_values_to_be_between", "open")].examples == [{"open": -1.0, "symbol": "S002", "date": "2024-01-03"}]


def test_trimmed_symbols_when_categories_collide_once_trimmed_then_they_share_one_and_missing_stays_missing():
    trimmed = quality.trimmed_symbols(pd.Series(pd.Categorical(["AAA", " AAA", "BBB ", None, "AAA"])))
    assert list(trimmed.categories) == ["AAA", "BBB"]
    assert trimmed.codes.tolist() == [0, 0, 1, -1, 0]


def test_check_raw_bars_when_it_runs_then_great_expectations_does_not_hash_the_frame(monkeypatch):
    # GE's batch fingerprint is a hash of the whole frame (a third of a backfill's check); no
    # expectation reads it
    quality.import_great_expectations()
    from great_expectations.execution_engine import pandas_execution_engine

    def refuse(frame):
        raise AssertionError(f"a frame of {len(frame)} rows was hashed")

    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", refuse)
    report = quality.check_raw_bars(bars(good(3)), AS_OF)
    assert report.success and report.rows == 12  # 3 symbols x 4 sessions
