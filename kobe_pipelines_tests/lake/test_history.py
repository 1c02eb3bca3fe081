"""The history: the closed years' bars in row groups of whole symbols dealt in turn into two files
beside the current year's file, read back whole by every read; bars a refreeze adds to a closed
year; the compaction that folds them (and a year that closed) into new history files, with the
same bars."""

from __future__ import annotations

import datetime as dt
import errno

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from kobe_pipelines.cli import main as cli
from kobe_pipelines.data import schema
from kobe_pipelines.lake import Lake, LakeCorruptionError, LakeWriteError, RawRestatementError, file_store, history, symbol_reads
from kobe_pipelines.lake.file_store import ContentWriter

from .conftest import flip, page_bytes

AS_OF = dt.date(2024, 1, 4)  # 2022 and 2023 are closed years, 2024 the current one

# AAA: two bars of 2022, three of 2023 (a 2-for-1 split on 2023-12-28), three of 2024.
# BBB: eight bars of 2023 (more than a history row group of 6 holds), three of 2024 (a 2-for-1 split on 2024-01-03).
# CCC: delisted before the current year. DDD: listed in the current year.
AAA = [("2022-12-29", 100.0), ("2022-12-30", 102.0), ("2023-12-27", 104.0), ("2023-12-28", 52.0), ("2023-12-29", 53.0),
       ("2024-01-02", 54.0), ("2024-01-03", 55.0), ("2024-01-04", 56.0)]
BBB_DAYS = ["2023-12-19", "2023-12-20", "2023-12-21", "2023-12-22", "2023-12-26", "2023-12-27", "2023-12-28", "2023-12-29"]
BBB = [(day, 20.0 + i) for i, day in enumerate(BBB_DAYS)] + [("2024-01-02", 28.0), ("2024-01-03", 14.5), ("2024-01-04", 15.0)]
CCC = [("2023-12-27", 7.0), ("2023-12-28", 7.5)]
DDD = [("2024-01-03", 3.0), ("2024-01-04", 3.5)]


def bars_of(**symbols: list[tuple[str, float]]) -> pd.DataFrame:
    rows = [(symbol, day, close) for symbol, bars in symbols.items() for day, close in bars]
    frame = pd.DataFrame(rows, columns=["symbol", "date", "close"])
    return schema.normalize_bars(frame.assign(open=frame["close"], high=frame["close"] + 1.0, low=frame["close"] - 0.5,
                                              volume=1000.0))


BARS = bars_of(AAA=AAA, BBB=BBB, CCC=CCC, DDD=DDD)
SPLITS = schema.normalize_splits(pd.DataFrame({"symbol": ["AAA", "BBB"], "execution_date": ["2023-12-28", "2024-01-03"],
                                               "split_from": [1.0, 1.0], "split_to": [2.0, 2.0]}))
DIVIDENDS = schema.normalize_dividends(pd.DataFrame(columns=["symbol", "ex_dividend_date", "cash_amount"]))


@pytest.fixture()
def small_groups(monkeypatch):
    monkeypatch.setattr(file_store, "HISTORY_ROW_GROUP_ROWS", 6)


def frozen(tmp_path, bars: pd.DataFrame = BARS, as_of: dt.date = AS_OF, **kwargs) -> Lake:
    lake = Lake(tmp_path / "lake", retention=100)
    lake.freeze(bars, SPLITS, DIVIDENDS, provider="simulated", as_of=as_of, **kwargs)
    return lake


def raw_layout(lake: Lake, version_id: str | None = None) -> list[tuple[str, int, str, str]]:
    manifest = lake.version(version_id) if version_id else lake.current_version()
    return sorted((e.path.split("/")[2], e.rows, e.min_date, e.max_date) for e in manifest.files_with_role("raw_bars"))


def every_read(lake: Lake, version_id: str | None = None) -> dict[str, pd.DataFrame]:
    return {view: lake.read_bars(version_id, view=view) for view in ("raw", "split", "total")}


def closes(frame: pd.DataFrame) -> list[float]:
    return [round(value, 9) for value in frame["close"]]


def history_groups(lake: Lake, version_id: str | None = None) -> list[list[list[str]]]:
    """Each history file's row groups (their symbols), the files ordered by their first symbol."""
    manifest = lake.version(version_id) if version_id else lake.current_version()
    out = []
    for entry in manifest.files_with_role("raw_bars"):
        if "through=" in entry.path:
            file = pq.ParquetFile(lake.abspath(entry))
            out.append([file.read_row_group(g).column("symbol").to_pylist() for g in range(file.num_row_groups)])
    return sorted(out)


@pytest.mark.parametrize("batch_rows", [None, 3, 1 << 20])
def test_first_freeze_when_years_are_closed_then_history_files_of_whole_symbol_row_groups_dealt_in_turn(tmp_path, small_groups,
                                                                                                       batch_rows):
    lake = frozen(tmp_path, batch_rows=batch_rows)
    # rows AAA x5, BBB x8, CCC x2 in groups of at most 6 ending where a symbol ends, BBB alone filling one:
    # [AAA x5] starts the first file; [BBB x6] starts a symbol, so the second; [BBB x2, CCC x2] goes on with BBB, so
    # it follows BBB into the second file
    assert raw_layout(lake) == [("through=2023", 5, "2022-12-29", "2023-12-29"), ("through=2023", 10, "2023-12-19", "2023-12-29"),
                                ("year=2024", 8, "2024-01-02", "2024-01-04")]
    assert history_groups(lake) == [[["AAA"] * 5], [["BBB"] * 6, ["BBB"] * 2 + ["CCC"] * 2]]


def test_first_freeze_when_many_symbols_then_row_groups_alternate_between_the_two_files_and_no_symbol_spans_both(
        tmp_path, small_groups):
    # the closed year 2023 only: S1..S5 three bars each, T1 seven (more than a group of 6), S6 one
    days = ["2023-12-27", "2023-12-28", "2023-12-29"]
    symbols = {f"S{i}": [(day, float(i)) for day in days] for i in range(1, 6)}
    symbols["T1"] = [(day, 9.0) for day in BBB_DAYS[1:]]
    symbols["U1"] = [("2023-12-29", 1.0)]
    lake = frozen(tmp_path, bars_of(**symbols), batch_rows=4)
    # rows S1..S5 x3, T1 x7, U1 in groups of at most 6 ending where a symbol ends: [S1, S2] [S3, S4] [S5] [T1 x6]
    # [T1, U1]. Each group that starts a symbol goes to the other file than the one before; [T1, U1] goes on with
    # T1, so it follows T1's first group
    assert history_groups(lake) == [
        [["S1"] * 3 + ["S2"] * 3, ["S5"] * 3],
        [["S3"] * 3 + ["S4"] * 3, ["T1"] * 6, ["T1", "U1"]],
    ]
    files = history_groups(lake)
    in_first = {symbol for group in files[0] for symbol in group}
    in_second = {symbol for group in files[1] for symbol in group}
    assert in_first.isdisjoint(in_second) and in_first | in_second == set(symbols)
    for symbol, bars in symbols.items():
        assert closes(lake.read_bars(view="raw", symbols=[symbol])) == [close for _, close in bars]


def test_first_freeze_when_the_history_fits_one_row_group_then_one_history_file(tmp_path):
    lake = frozen(tmp_path)  # 15 closed-year rows, far fewer than a history row group holds
    assert raw_layout(lake) == [("through=2023", 15, "2022-12-29", "2023-12-29"), ("year=2024", 8, "2024-01-02", "2024-01-04")]
    assert history_groups(lake) == [[["AAA"] * 5 + ["BBB"] * 8 + ["CCC"] * 2]]


def test_first_freeze_when_streamed_or_held_at_once_then_the_same_history_file(tmp_path, small_groups):
    streamed = frozen(tmp_path / "a", batch_rows=4).current_version()
    whole = frozen(tmp_path / "b", batch_rows=None).current_version()
    assert streamed.content_hash == whole.content_hash
    assert sorted((e.path, e.sha256) for e in streamed.files_with_role("raw_bars")) == \
        sorted((e.path, e.sha256) for e in whole.files_with_role("raw_bars"))


def test_read_bars_when_a_symbol_spans_two_history_row_groups_then_all_its_bars(tmp_path, small_groups):
    lake = frozen(tmp_path)
    got = lake.read_bars(view="raw", symbols=["BBB"])
    assert [str(d.date()) for d in got["date"]] == [day for day, _ in BBB]
    assert closes(got) == [close for _, close in BBB]
    with lake.connect() as con:
        sql = con.execute("SELECT close FROM bars_raw WHERE symbol = 'BBB' ORDER BY date").df()
    assert closes(sql) == [close for _, close in BBB]


def test_read_bars_when_delisted_before_or_listed_in_the_current_year_then_their_bars_only(tmp_path, small_groups):
    lake = frozen(tmp_path)
    assert closes(lake.read_bars(view="raw", symbols=["CCC"])) == [7.0, 7.5]
    assert closes(lake.read_bars(view="raw", symbols=["DDD"])) == [3.0, 3.5]
    raw = lake.current_version().files_with_role("raw_bars")
    plan = symbol_reads.plan(lake.root, raw, ["DDD"])
    assert plan.groups_read == 1  # the history files hold no DDD row group; the year file one
    assert [len(part.groups) for part in plan.files if "through=" in part.entry.path] == [0, 0]


def test_read_bars_when_splits_fall_in_a_closed_and_in_the_current_year_then_both_adjust_across_the_files(tmp_path, small_groups):
    lake = frozen(tmp_path)
    # AAA: 2-for-1 on 2023-12-28 (a closed year) halves the three bars before it
    assert closes(lake.read_bars(view="split", symbols=["AAA"])) == [50.0, 51.0, 52.0, 52.0, 53.0, 54.0, 55.0, 56.0]
    # BBB: 2-for-1 on 2024-01-03 (the current year) halves its eight history bars and 2024-01-02
    assert closes(lake.read_bars(view="split", symbols=["BBB"])) == [10.0, 10.5, 11.0, 11.5, 12.0, 12.5, 13.0, 13.5,
                                                                      14.0, 14.5, 15.0]
    with lake.connect() as con:
        sql = con.execute("SELECT close FROM bars_split_adjusted WHERE symbol = 'BBB' ORDER BY date").df()
    assert closes(sql) == closes(lake.read_bars(view="split", symbols=["BBB"]))


def test_read_bars_when_dates_cross_from_the_history_into_the_current_year_then_both_files_rows(tmp_path, small_groups):
    lake = frozen(tmp_path)
    got = lake.read_bars(view="raw", start="2023-12-28", end="2024-01-02")
    assert list(zip(got["symbol"], [str(d.date()) for d in got["date"]], closes(got))) == [
        ("AAA", "2023-12-28", 52.0), ("AAA", "2023-12-29", 53.0), ("AAA", "2024-01-02", 54.0),
        ("BBB", "2023-12-28", 26.0), ("BBB", "2023-12-29", 27.0), ("BBB", "2024-01-02", 28.0),
        ("CCC", "2023-12-28", 7.5),
    ]
    with lake.connect(start="2023-12-28", end="2024-01-02") as con:
        sql = con.execute("SELECT symbol, close FROM bars_raw WHERE date BETWEEN DATE '2023-12-28' AND DATE '2024-01-02' "
                          "ORDER BY symbol, date").df()
    assert closes(sql) == closes(got)


def test_refreeze_when_bars_are_added_to_a_closed_year_then_a_year_file_beside_the_history_until_compacted(tmp_path, small_groups):
    lake = frozen(tmp_path)
    late = bars_of(EEE=[("2023-12-28", 5.0), ("2023-12-29", 5.5)])  # a symbol's history delivered late
    lake.freeze(pd.concat([BARS, late], ignore_index=True), SPLITS, DIVIDENDS, provider="simulated", as_of=AS_OF)
    assert raw_layout(lake) == [("through=2023", 5, "2022-12-29", "2023-12-29"), ("through=2023", 10, "2023-12-19", "2023-12-29"),
                                ("year=2023", 2, "2023-12-28", "2023-12-29"), ("year=2024", 8, "2024-01-02", "2024-01-04")]
    assert closes(lake.read_bars(view="raw", symbols=["EEE"])) == [5.0, 5.5]
    before = every_read(lake)
    compacted = lake.compact(as_of=AS_OF)
    assert compacted is not None and compacted.version_id == lake.current_version_id()
    # AAA x5, BBB x8, CCC x2, EEE x2: [AAA x5] [BBB x6] and the rest [BBB x2, CCC x2, EEE x2] following BBB
    assert raw_layout(lake) == [("through=2023", 5, "2022-12-29", "2023-12-29"), ("through=2023", 12, "2023-12-19", "2023-12-29"),
                                ("year=2024", 8, "2024-01-02", "2024-01-04")]
    after = every_read(lake)
    for view in before:
        pd.testing.assert_frame_equal(after[view], before[view])
    assert lake.compact(as_of=AS_OF) is None  # nothing left to merge


def test_refreeze_when_a_bar_in_the_history_file_comes_again_with_another_close_then_refused_naming_it(tmp_path, small_groups):
    lake = frozen(tmp_path)
    current = lake.current_version_id()
    restated = BARS.copy()
    at = (restated["symbol"] == "BBB") & (restated["date"] == "2023-12-20")
    restated.loc[at, "close"] = 21.25
    with pytest.raises(RawRestatementError, match="BBB 2023-12-20"):
        lake.freeze(restated, SPLITS, DIVIDENDS, provider="simulated", as_of=AS_OF)
    assert lake.current_version_id() == current


def test_refreeze_when_a_dividend_goes_ex_in_a_closed_year_then_its_factor_uses_the_close_in_the_history_file(tmp_path, small_groups):
    lake = frozen(tmp_path)
    dividends = schema.normalize_dividends(pd.DataFrame({"symbol": ["BBB"], "ex_dividend_date": ["2023-12-22"],
                                                         "cash_amount": [1.0]}))
    lake.freeze(BARS, SPLITS, dividends, provider="simulated", as_of=AS_OF)
    # $1 ex on 2023-12-22, the close before it 22.0 (2023-12-21): x 21/22 before it; the 2024 split x 1/2 before 2024-01-03
    got = closes(lake.read_bars(view="total", symbols=["BBB"]))
    assert got == [round(c * 21 / 22 * 0.5, 9) for c in (20.0, 21.0, 22.0)] + [11.5, 12.0, 12.5, 13.0, 13.5, 14.0, 14.5, 15.0]


def test_refreeze_when_the_first_after_a_year_closes_then_that_year_is_compacted_into_the_history(tmp_path, small_groups):
    lake = frozen(tmp_path)
    before = every_read(lake)
    new_year = bars_of(AAA=[("2025-01-02", 57.0)])
    lake.freeze(pd.concat([BARS, new_year], ignore_index=True), SPLITS, DIVIDENDS, provider="simulated",
                as_of=dt.date(2025, 1, 3))
    # AAA x8, BBB x11, CCC x2, DDD x2 in groups [AAA x6] [AAA x2] [BBB x6] [BBB x5] [CCC x2, DDD x2]: AAA's two
    # groups in the first file, BBB's in the second, then CCC's turn in the first
    assert raw_layout(lake) == [("through=2024", 11, "2023-12-19", "2024-01-04"), ("through=2024", 12, "2022-12-29", "2024-01-04"), ("year=2025", 1, "2025-01-02", "2025-01-02")]
    assert history_groups(lake) == [[["AAA"] * 6, ["AAA"] * 2, ["CCC"] * 2 + ["DDD"] * 2], [["BBB"] * 6, ["BBB"] * 5]]
    after = every_read(lake)
    for view in before:  # the same bars, and one more
        pd.testing.assert_frame_equal(after[view].loc[after[view]["date"] < "2025-01-01"].reset_index(drop=True), before[view])


def test_compact_when_an_older_version_is_pinned_then_it_still_reads_its_own_files(tmp_path, small_groups):
    lake = frozen(tmp_path)
    old = lake.current_version_id()
    lake.pin(old, "a model learned from it")
    before = every_read(lake, old)
    old_files = [lake.abspath(e) for e in lake.version(old).files_with_role("raw_bars")]
    compacted = lake.compact(as_of=dt.date(2025, 1, 3))  # 2024 closed: everything into the history files
    assert compacted is not None and compacted.version_id != old
    assert raw_layout(lake) == [("through=2024", 11, "2023-12-19", "2024-01-04"), ("through=2024", 12, "2022-12-29", "2024-01-04")]
    assert history_groups(lake, old) == [[["AAA"] * 5], [["BBB"] * 6, ["BBB"] * 2 + ["CCC"] * 2]]
    assert all(path.exists() for path in old_files)
    for view, frame in every_read(lake, old).items():
        pd.testing.assert_frame_equal(frame, before[view])
    for view, frame in every_read(lake).items():
        pd.testing.assert_frame_equal(frame, before[view])
    assert lake.verify() == [] and lake.verify(old) == []


def test_compact_when_asked_as_of_a_year_the_history_file_already_passed_then_it_keeps_its_last_year(tmp_path, small_groups):
    lake = frozen(tmp_path)  # history through 2023
    late = bars_of(EEE=[("2022-12-30", 5.0)])
    lake.freeze(late, SPLITS, DIVIDENDS, provider="simulated", as_of=dt.date(2023, 6, 1))
    assert lake.compact(as_of=dt.date(2023, 6, 1)) is not None  # 2022 closed: the year=2022 file folded in
    # AAA x5, BBB x8, CCC x2, EEE x1: [AAA x5] [BBB x6] and the rest [BBB x2, CCC x2, EEE] following BBB
    assert raw_layout(lake) == [("through=2023", 5, "2022-12-29", "2023-12-29"), ("through=2023", 11, "2022-12-30", "2023-12-29"),
                                ("year=2024", 8, "2024-01-02", "2024-01-04")]


def test_compact_then_the_rows_held_at_once_are_bounded_by_the_range(tmp_path, small_groups, monkeypatch):
    monkeypatch.setattr(file_store, "RAW_ROW_GROUP_ROWS", 2)
    lake = frozen(tmp_path)
    raw = lake.current_version().files_with_role("raw_bars")
    count = history.MergeCount()
    entries = history.merge_history(lake.root, lake.files, raw, 2024, range_rows=3, count=count)
    # history files [AAA x5] and [BBB x6] [BBB x2, CCC x2]; 2024 groups [AAA x2] [AAA, BBB] [BBB x2] [DDD x2].
    # Ranges cut where groups end once 3 rows are passed: (..AAA] (AAA..BBB] (BBB..CCC] (CCC..).
    # (..AAA] writes AAA x8: a group of 6 handed to the first file's thread, 2 rows kept. (AAA..BBB] then
    # reads the history's 6 + 4 and 2024's 2 + 2 while the writer holds those 2 rows and the group of 6
    # (which may still be being written): 22 rows, the most of any range (of 23).
    assert count.ranges == 4
    assert count.most_rows_held == 22
    files = sorted((pq.read_table(lake.abspath(entry)).to_pandas() for entry in entries), key=lambda f: f["symbol"].iloc[0])
    # groups [AAA x6] [AAA x2] [BBB x6] [BBB x5] [CCC x2, DDD x2]
    assert [f["symbol"].tolist() for f in files] == [["AAA"] * 8 + ["CCC"] * 2 + ["DDD"] * 2, ["BBB"] * 11]
    assert all(f.groupby("symbol")["date"].apply(lambda d: d.is_monotonic_increasing).all() for f in files)


@pytest.mark.parametrize("range_rows", [1, 3, 1 << 20])
def test_compact_then_the_same_history_files_as_a_first_freeze_of_the_same_bars(tmp_path, small_groups, range_rows):
    lake = frozen(tmp_path / "a")  # history through 2023 and a 2024 file
    raw = lake.current_version().files_with_role("raw_bars")
    merged = history.merge_history(lake.root, lake.files, raw, 2024, range_rows=range_rows)  # 2024 closed
    first = frozen(tmp_path / "b", as_of=dt.date(2025, 1, 3))  # every bar written as the history through 2024 at once
    assert len(merged) == 2 and all("/through=2024/" in e.path for e in merged)
    assert sorted((e.path, e.sha256) for e in merged) == \
        sorted((e.path, e.sha256) for e in first.current_version().files_with_role("raw_bars"))


def test_compact_when_the_disk_fails_then_nothing_is_published_and_no_file_is_left(tmp_path, small_groups, monkeypatch):
    lake = frozen(tmp_path)
    current, layout = lake.current_version_id(), raw_layout(lake)
    files_before = sorted(p for p in (tmp_path / "lake" / "raw").rglob("*") if p.is_file())
    real_write = ContentWriter.write_group
    written = []

    def full_disk(self, table):  # the second history group written fills the disk
        if self.whole_symbols:
            written.append(table.num_rows)
            if len(written) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, table)

    monkeypatch.setattr(ContentWriter, "write_group", full_disk)
    with pytest.raises(LakeWriteError, match="nothing was published"):
        lake.compact(as_of=dt.date(2025, 1, 3))
    assert lake.current_version_id() == current and raw_layout(lake) == layout
    assert sorted(p for p in (tmp_path / "lake" / "raw").rglob("*") if p.is_file()) == files_before


def test_compact_when_a_page_of_a_merged_file_is_damaged_then_it_stops_naming_the_file(tmp_path, small_groups):
    lake = frozen(tmp_path)
    current = lake.current_version_id()
    (entry,) = [e for e in lake.current_version().files_with_role("raw_bars") if "year=2024" in e.path]
    path = lake.abspath(entry)
    flip(path, page_bytes(path)[3])
    with pytest.raises(LakeCorruptionError, match=entry.path):
        lake.compact(as_of=dt.date(2025, 1, 3))
    assert lake.current_version_id() == current
    assert not list((tmp_path / "lake" / "raw" / "bars").glob("through=2024/*"))


def test_cli_lake_compact_then_the_history_files_and_the_same_bars(tmp_path, small_groups):
    lake = frozen(tmp_path)
    before = every_read(lake)
    result = CliRunner().invoke(cli, ["lake", "compact", "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    assert f"compacted into version {lake.current_version_id()}" in result.output
    assert [part for part, *_ in raw_layout(lake)] == [f"through={history.closed_through(None)}"] * 2
    for view, frame in every_read(lake).items():
        pd.testing.assert_frame_equal(frame, before[view])
    again = CliRunner().invoke(cli, ["lake", "compact", "--lake", str(tmp_path / "lake")])
    assert again.exit_code == 0 and "nothing to compact" in again.output
