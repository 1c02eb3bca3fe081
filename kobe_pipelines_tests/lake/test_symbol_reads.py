"""`read_bars` of a few symbols from only the row groups holding them (`symbol_reads`): exactly the
rows and values of the views, wherever a symbol's rows fall among the row groups, for every
version, whichever path the read takes (the pruned read or the DuckDB scan)."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kobe_pipelines import market_calendar
from kobe_pipelines.data import schema
from kobe_pipelines.lake import Lake, SymbolRequestError, file_store, publish, symbol_reads

from .conftest import flips_caught, page_bytes

GROUP_ROWS = 10
DAYS_2023 = [str(day.date()) for day in market_calendar.sessions("2023-12-01", "2023-12-29")][-10:]
DAYS_2024 = [str(day.date()) for day in market_calendar.sessions("2024-01-02", "2024-01-31")][:10]
SPLIT_DAY = DAYS_2024[5]  # AAA splits 2-for-1: its bars before this session are halved, volume doubled
EX_DAY = DAYS_2024[4]  # BBB pays $1 going ex: its bars before this session x (1 - 1 / the close before it)


def bars_of(symbol: str, days: list[str], close: float) -> pd.DataFrame:
    closes = [close * (0.5 if symbol == "AAA" and day >= SPLIT_DAY else 1.0) + 0.25 * i
              for i, day in enumerate(days)]
    return pd.DataFrame({"symbol": symbol, "date": days, "open": closes, "high": [c + 1 for c in closes],
                         "low": [c - 1 for c in closes], "close": closes, "volume": [1000.0 + i for i in range(len(days))]})


def market(days_2024: list[str] = DAYS_2024) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Year 2023 (row groups of 10 rows): AAA rows 0-9 (all of group 0), BBB rows 10-14, CCC rows
    15-24 (groups 1 and 2); DDD has no bar in 2023. Year 2024: AAA, BBB, CCC, DDD, ten bars each."""
    bars = pd.concat([
        bars_of("AAA", DAYS_2023, 100.0), bars_of("BBB", DAYS_2023[5:], 20.0), bars_of("CCC", DAYS_2023, 30.0),
        *(bars_of(symbol, days_2024, close) for symbol, close in (("AAA", 100.0), ("BBB", 20.0), ("CCC", 30.0), ("DDD", 40.0))),
    ], ignore_index=True)
    splits = pd.DataFrame({"symbol": ["AAA"], "execution_date": [SPLIT_DAY], "split_from": [1.0], "split_to": [2.0]})
    dividends = pd.DataFrame({"symbol": ["BBB"], "ex_dividend_date": [EX_DAY], "cash_amount": [1.0]})
    return schema.normalize_bars(bars), schema.normalize_splits(splits), schema.normalize_dividends(dividends)


@pytest.fixture()
def small_groups(monkeypatch):
    """Raw row groups of exactly GROUP_ROWS rows, factor row groups of 2 rows, and no closed year
    before 2023: the bars are in year files, read here (the history file's reads: test_history)."""
    monkeypatch.setattr(file_store, "RAW_ROW_GROUP_ROWS", GROUP_ROWS)
    monkeypatch.setattr(file_store, "FACTOR_ROW_GROUP_ROWS", 2)
    monkeypatch.setattr(publish, "closed_through", lambda as_of: 2022)


def read_both_ways(lake: Lake, monkeypatch, symbols, view: str = "total", version_id: str | None = None,
                   **dates) -> pd.DataFrame:
    """`read_bars` by the pruned read and by the DuckDB scan, which must agree exactly; the pruned one."""
    with monkeypatch.context() as patch:
        patch.setattr(symbol_reads, "SESSION_GROUPS", 10**9)
        pruned = lake.read_bars(version_id, view, symbols, **dates)
    with monkeypatch.context() as patch:
        patch.setattr(symbol_reads, "SESSION_GROUPS", -(10**9))
        scanned = lake.read_bars(version_id, view, symbols, **dates)
    pd.testing.assert_frame_equal(pruned, scanned, check_exact=True)
    return pruned


def expected_rows(bars: pd.DataFrame, symbol: str) -> pd.DataFrame:
    own = bars.loc[bars["symbol"].astype(str) == symbol]
    return schema.normalize_bars(own.assign(symbol=own["symbol"].astype(str)).sort_values("date", ignore_index=True))


def raw_groups(lake: Lake, year: int) -> list[list[str]]:
    """The symbols of each row group of the raw file of `year`."""
    (entry,) = [e for e in lake.current_version().files_with_role("raw_bars") if e.path.startswith(f"raw/bars/year={year}/")]
    file = pq.ParquetFile(lake.root / entry.path)
    return [sorted(set(file.read_row_group(group, columns=["symbol"]).column("symbol").to_pylist()))
            for group in range(file.num_row_groups)]


def test_market_layout_when_frozen_in_groups_of_ten_rows_then_as_the_tests_below_assume(tmp_path, small_groups):
    lake = Lake(tmp_path / "lake")
    lake.freeze(*market(), provider="test")
    assert raw_groups(lake, 2023) == [["AAA"], ["BBB", "CCC"], ["CCC"]]
    assert raw_groups(lake, 2024) == [["AAA"], ["BBB"], ["CCC"], ["DDD"]]


@pytest.mark.parametrize("view", ["raw", "split", "total"])
@pytest.mark.parametrize("symbol", ["AAA", "BBB", "CCC", "DDD"])
def test_read_bars_when_one_symbol_is_asked_then_exactly_its_rows_wherever_they_lie_among_the_row_groups(
        tmp_path, small_groups, monkeypatch, symbol, view):
    # AAA fills a row group to its boundary; BBB starts right after one; CCC spans two; DDD is absent from 2023
    bars, splits, dividends = market()
    lake = Lake(tmp_path / "lake")
    lake.freeze(bars, splits, dividends, provider="test")
    got = read_both_ways(lake, monkeypatch, [symbol], view)
    expected = expected_rows(bars, symbol)
    pd.testing.assert_frame_equal(got[["symbol", "date"]], expected[["symbol", "date"]])
    whole = lake.query(f"SELECT * FROM {dict(raw='bars_raw', split='bars_split_adjusted', total='bars')[view]} "
                       f"WHERE symbol = '{symbol}' ORDER BY date")
    pd.testing.assert_frame_equal(got, schema.normalize_bars(whole), check_exact=True)


def test_symbol_plan_when_a_symbol_fills_a_row_group_then_only_that_group_is_read(tmp_path, small_groups):
    lake = Lake(tmp_path / "lake")
    lake.freeze(*market(), provider="test")
    raw = lake.current_version().files_with_role("raw_bars")
    by_year = {int(entry.path.split("year=")[1][:4]): entry for entry in raw}
    plan = symbol_reads.plan(lake.root, [by_year[2023], by_year[2024]], ["AAA"])
    assert [part.groups for part in plan.files] == [[0], [0]]
    assert [part.groups for part in symbol_reads.plan(lake.root, [by_year[2023]], ["CCC"]).files] == [[1, 2]]
    assert [part.groups for part in symbol_reads.plan(lake.root, [by_year[2023]], ["DDD"]).files] == [[]]
    assert (plan.groups_read, plan.groups_visited) == (2, 7)


def test_read_bars_when_prices_are_adjusted_then_raw_times_the_hand_computed_factors(tmp_path, small_groups, monkeypatch):
    bars, splits, dividends = market()
    lake = Lake(tmp_path / "lake")
    lake.freeze(bars, splits, dividends, provider="test")
    raw_aaa, raw_bbb = expected_rows(bars, "AAA"), expected_rows(bars, "BBB")
    before_split = (raw_aaa["date"] < SPLIT_DAY).to_numpy()
    for view in ("split", "total"):  # a split: prices x 1/2 and volume x 2 before it, in both views
        got = read_both_ways(lake, monkeypatch, ["AAA"], view)
        assert got["close"].tolist() == [c * 0.5 if b else c for c, b in zip(raw_aaa["close"], before_split)]
        assert got["volume"].tolist() == [v * 2 if b else v for v, b in zip(raw_aaa["volume"], before_split)]
    # a $1 dividend (CRSP): prices before the ex-date x (1 - 1 / the last close before it); volume as traded
    close_before = raw_bbb.loc[raw_bbb["date"] < EX_DAY, "close"].iloc[-1]
    before_ex = (raw_bbb["date"] < EX_DAY).to_numpy()
    got = read_both_ways(lake, monkeypatch, ["BBB"], "total")
    assert got["open"].tolist() == pytest.approx(
        [o * (1 - 1 / close_before) if b else o for o, b in zip(raw_bbb["open"], before_ex)], rel=1e-13)
    assert got["volume"].tolist() == raw_bbb["volume"].tolist()
    assert read_both_ways(lake, monkeypatch, ["BBB"], "split")["open"].tolist() == raw_bbb["open"].tolist()


def test_read_bars_when_an_older_version_is_pinned_after_a_refreeze_then_each_version_reads_its_own_bars(
        tmp_path, small_groups, monkeypatch):
    bars, splits, dividends = market(DAYS_2024[:8])
    lake = Lake(tmp_path / "lake")
    first = lake.freeze(bars, splits, dividends, provider="test").version
    lake.pin(first.version_id, "a model learned from it")
    later, splits, dividends = market()
    # the nightly refreeze: two more sessions, and CCC splits 3-for-1 on the last one
    ccc_split = pd.DataFrame({"symbol": ["CCC"], "execution_date": [DAYS_2024[9]], "split_from": [1.0], "split_to": [3.0]})
    later.loc[(later["symbol"] == "CCC") & (later["date"] == DAYS_2024[9]), ["open", "high", "low", "close"]] /= 3
    second = lake.freeze(later, schema.normalize_splits(pd.concat([splits, ccc_split])), dividends, provider="test").version
    assert len(second.files_with_role("raw_bars")) == 3  # the refreeze added a small file to 2024
    old = read_both_ways(lake, monkeypatch, ["CCC"], "total", first.version_id)
    new = read_both_ways(lake, monkeypatch, ["CCC"], "total", second.version_id)
    raw_old = expected_rows(bars, "CCC")
    assert old["close"].tolist() == raw_old["close"].tolist()  # no CCC split in the first version
    assert new["close"].tolist()[: len(old)] == pytest.approx([c / 3 for c in raw_old["close"]], rel=1e-13)
    assert len(new) == len(old) + 2


def test_read_bars_when_dates_are_asked_then_only_those_bars_of_the_symbols(tmp_path, small_groups, monkeypatch):
    bars, splits, dividends = market()
    lake = Lake(tmp_path / "lake")
    lake.freeze(bars, splits, dividends, provider="test")
    got = read_both_ways(lake, monkeypatch, ["CCC", "AAA"], "total", start=DAYS_2023[-1], end=DAYS_2024[5])
    assert got["symbol"].tolist() == ["AAA"] * 7 + ["CCC"] * 7
    assert got["date"].dt.strftime("%Y-%m-%d").tolist() == ([DAYS_2023[-1], *DAYS_2024[:6]]) * 2


def test_read_bars_when_a_symbol_is_unknown_then_no_rows_and_the_bar_columns(tmp_path, small_groups, monkeypatch):
    lake = Lake(tmp_path / "lake")
    lake.freeze(*market(), provider="test")
    got = read_both_ways(lake, monkeypatch, ["ZZZ"])
    assert got.empty and list(got.columns) == list(schema.BAR_COLUMNS)
    assert read_both_ways(lake, monkeypatch, ["ZZZ", "DDD"])["symbol"].unique().tolist() == ["DDD"]


@pytest.mark.parametrize("symbols, named", [
    ("AAA", "'AAA'"),  # one string, not a list of tickers
    (["AAA", "bad sym"], "'bad sym'"),
    (["AAA", None], "None"),
    ([""], "''"),
])
def test_read_bars_when_a_symbol_cannot_be_a_ticker_then_an_error_names_it(tmp_path, symbols, named):
    lake = Lake(tmp_path / "lake")
    lake.freeze(*market(), provider="test")
    with pytest.raises(SymbolRequestError, match=f"symbol {named}: field 'symbols'"):
        lake.read_bars(symbols=symbols)


def test_file_index_when_a_file_at_the_same_path_changes_then_its_footer_is_read_again(tmp_path):
    path = tmp_path / "f.parquet"
    table = pa.table({"symbol": ["A", "B", "C", "D"], "value": [1, 2, 3, 4]})
    pq.write_table(table, path, row_group_size=2)
    assert symbol_reads.file_index(path).num_row_groups == 2
    replacement = tmp_path / "g.parquet"
    pq.write_table(table, replacement, row_group_size=1)
    os.replace(replacement, path)
    assert symbol_reads.file_index(path).num_row_groups == 4
    assert symbol_reads.file_index(path).groups_holding(["C"]) == [2]


def test_read_bars_when_a_byte_of_a_page_it_reads_is_flipped_then_the_read_fails_naming_the_file_or_gives_the_same_rows(
        tmp_path, small_groups, monkeypatch):
    lake = Lake(tmp_path / "lake")
    lake.freeze(*market(), provider="test")
    entry = [e for e in lake.current_version().files_with_role("raw_bars") if "year=2023" in e.path][0]
    path = lake.abspath(entry)
    offsets = page_bytes(path, groups=(1, 2))  # the row groups holding CCC
    monkeypatch.setattr(symbol_reads, "SESSION_GROUPS", 10**9)  # the pruned read, which checks page CRCs
    failed, silent = flips_caught(path, offsets[::max(1, len(offsets) // 150)], lambda: lake.read_bars(symbols=["CCC"]), entry.path)
    assert silent == 0 and failed > 50
