"""A first freeze streamed a batch at a time: the same files and content hash as a freeze holding
every bar at once, whatever the batches; a bounded number of rows held; the same errors. And reads
that ask for a subset read only that subset."""

from __future__ import annotations

import datetime as dt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kobe_pipelines.data import schema
from kobe_pipelines.data.providers.files import FilesProvider
from kobe_pipelines.data.validation import BarValidationError
from kobe_pipelines.lake import Lake, file_store
from kobe_pipelines.lake.file_store import ContentWriter
from kobe_pipelines.lake.history import HistoryWriter
from kobe_pipelines.lake.raw_bars import NewBars

from .conftest import SIM_END, sim_inputs

# as of the last session of the simulated bars: 2020 is a closed year (the history file), 2021 the current one
AS_OF = dt.date.fromisoformat(SIM_END)


def sorted_table(bars: pd.DataFrame) -> pa.Table:
    return schema.bars_table(bars.sort_values(["symbol", "date"], ignore_index=True))


def cut(table: pa.Table, *at: int) -> list[pa.Table]:
    """`table` as batches ending before each row position of `at`."""
    edges = [0, *at, table.num_rows]
    return [table.slice(a, b - a) for a, b in zip(edges, edges[1:])]


def freeze(tmp_path, name: str, bars, sim_actions, batch_rows: int | None = 1 << 20, as_of: dt.date | None = None):
    _, splits, dividends = sim_actions
    return Lake(tmp_path / name).freeze(bars, splits, dividends, provider="simulated", batch_rows=batch_rows, as_of=as_of).version


def raw_files(version) -> list[tuple[str, str]]:
    return sorted((entry.path, entry.sha256) for entry in version.files if entry.role == "raw_bars")


@pytest.fixture(scope="module")
def held_at_once(tmp_path_factory, sim):
    """The version of a freeze holding every bar at once (the reference)."""
    inputs = sim_inputs(sim)
    return freeze(tmp_path_factory.mktemp("whole"), "lake", inputs[0], inputs, batch_rows=None)


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 7, 64, 500, 4096, 1 << 20])
def test_streamed_freeze_when_batched_by_any_size_then_the_same_files_and_content_hash(tmp_path, sim, held_at_once, batch_rows):
    inputs = sim_inputs(sim)
    streamed = freeze(tmp_path, "lake", inputs[0], inputs, batch_rows)
    assert streamed.content_hash == held_at_once.content_hash
    assert raw_files(streamed) == raw_files(held_at_once)


def test_streamed_freeze_when_a_batch_boundary_falls_on_a_split_session_then_the_same_factors(tmp_path, sim, held_at_once):
    inputs = sim_inputs(sim)
    table = sorted_table(inputs[0])
    split = inputs[1].iloc[0]
    rows = schema.normalize_bars(table.to_pandas())
    at = int(((rows["symbol"] == split["symbol"]) & (rows["date"] >= split["execution_date"])).to_numpy().argmax())
    # the split's session bar first in a batch, then last in one: its closes come from two batches
    for edges in ((at,), (at + 1,), (at - 1, at + 1)):
        version = freeze(tmp_path, f"lake-{edges}", cut(table, *edges), inputs)
        assert version.content_hash == held_at_once.content_hash
        events = Lake(tmp_path / f"lake-{edges}").events()
        assert ((events["symbol"] == split["symbol"]) & (events["kind"] == "split")).any()


def test_streamed_freeze_when_bars_come_out_of_order_then_sorted_first_and_the_same_content_hash(tmp_path, sim, held_at_once):
    inputs = sim_inputs(sim)
    shuffled = schema.bars_table(inputs[0].sample(frac=1.0, random_state=5))
    version = freeze(tmp_path, "lake", cut(shuffled, 1000, 2000, 3000), inputs)
    assert version.content_hash == held_at_once.content_hash
    assert not list((tmp_path / "lake" / "staging").rglob("*.parquet"))  # the sort's spill is gone


def test_streamed_freeze_then_the_rows_held_at_once_are_bounded_by_the_batch(tmp_path, sim, monkeypatch):
    inputs = sim_inputs(sim)
    monkeypatch.setattr(file_store, "RAW_ROW_GROUP_ROWS", 64)  # so that the files' row groups are few rows
    monkeypatch.setattr(file_store, "HISTORY_ROW_GROUP_ROWS", 64)
    validated, held, history_held = [], [], []
    real_validated, real_write, real_history_write = NewBars.validated.__func__, ContentWriter.write, HistoryWriter.write

    def counting_validated(cls, bars, as_of=None):
        validated.append(bars.num_rows)
        return real_validated(cls, bars, as_of)

    def counting_write(self, table):
        real_write(self, table)
        if self.role == "raw_bars":
            held.append((self.rows_held, self.group_rows))

    def counting_history_write(self, table):
        real_history_write(self, table)
        history_held.append(self.rows_held)

    monkeypatch.setattr(NewBars, "validated", classmethod(counting_validated))
    monkeypatch.setattr(ContentWriter, "write", counting_write)
    monkeypatch.setattr(HistoryWriter, "write", counting_history_write)
    version = freeze(tmp_path, "lake", inputs[0], inputs, batch_rows=100, as_of=AS_OF)
    files = len(raw_files(version))
    assert sum(validated) == len(inputs[0]) > 20 * 100  # every bar went through, 100 at a time
    assert max(validated) <= 100
    # the year file keeps at most one row group between writes; the history at most one for its next group and
    # one in flight per file (two files): 3 x 64 rows
    assert held and all(rows <= group == 64 for rows, group in held)
    assert len(history_held) > 20 and max(history_held) <= 3 * 64 and files == 3


def test_streamed_freeze_when_bad_bars_lie_in_two_batches_then_the_same_error_as_held_at_once(tmp_path, sim):
    inputs = sim_inputs(sim)
    table = sorted_table(inputs[0]).to_pandas()
    table.loc[[50, 4000], "volume"] = 10.5  # two fractional volumes, far apart
    table.loc[3000, "high"] = table.loc[3000, "low"] / 2  # and a high below the low in between
    errors = []
    for batch_rows in (None, 1000, 64):
        with pytest.raises(BarValidationError) as info:
            freeze(tmp_path, f"lake-{batch_rows}", schema.bars_table(table), inputs, batch_rows)
        errors.append((info.value.record, info.value.field, info.value.count, info.value.total))
        assert not list((tmp_path / f"lake-{batch_rows}").rglob("*.parquet"))
    assert errors[0] == errors[1] == errors[2]
    assert errors[0][2:] == (3, len(table))


def test_streamed_freeze_when_one_bar_ends_a_batch_and_starts_the_next_then_a_duplicate_is_named(tmp_path, sim):
    inputs = sim_inputs(sim)
    table = sorted_table(inputs[0])
    again = table.slice(999, 1)
    with pytest.raises(BarValidationError, match="duplicates another bar") as info:
        freeze(tmp_path, "lake", [table.slice(0, 1000), pa.concat_tables([again, table.slice(1000)])], inputs)
    row = table.slice(999, 1).to_pylist()[0]
    assert info.value.record == f"{row['symbol']} {row['date']}"


def test_files_provider_when_read_in_batches_then_the_rows_of_the_whole_read_again_and_again(tmp_path, sim):
    bars = sim_inputs(sim)[0]
    for fmt in ("csv", "parquet"):
        folder = tmp_path / fmt
        folder.mkdir()
        if fmt == "csv":
            bars.assign(date=bars["date"].dt.strftime("%Y-%m-%d")).to_csv(folder / "bars.csv", index=False)
        else:
            bars.to_parquet(folder / "bars.parquet", index=False, row_group_size=700)
        provider = FilesProvider(folder)
        whole = provider.daily_bars_table("2020-03-01", "2021-02-26")
        batches = provider.daily_bar_batches("2020-03-01", "2021-02-26", rows=500)
        for _ in range(2):  # iterated twice: read twice
            parts = list(batches)
            assert len(parts) > 5 and max(part.num_rows for part in parts) <= 500 or fmt == "csv"
            joined = pa.concat_tables([part.set_column(0, "symbol", part.column("symbol").cast(pa.string())) for part in parts])
            expected = whole.set_column(0, "symbol", whole.column("symbol").cast(pa.string()))
            assert joined.to_pandas().equals(expected.to_pandas())


# ---- reads of a subset -------------------------------------------------------------------------


def test_event_returns_when_events_are_recent_then_older_years_are_not_read(tmp_path, sim):
    lake = Lake(tmp_path / "lake")
    lake.freeze(*sim_inputs(sim), provider="simulated", as_of=AS_OF)
    version = lake.current_version()
    events = lake.events()
    recent = events.loc[events["prev_date"] >= "2021-01-04"]
    expected = lake.event_returns(version.files, recent)
    for entry in version.files_with_role("raw_bars"):
        if entry.max_date < "2021-01-01":
            lake.abspath(entry).unlink()  # the history file (2020): a read of it would fail now
    got = lake.event_returns(version.files, recent)
    assert len(recent) > 0 and len(got["total"]) == len(expected["total"]) > 0
    for view in ("split", "total"):
        pd.testing.assert_frame_equal(got[view], expected[view])


def test_read_bars_when_a_date_range_is_asked_then_only_its_years_are_read(tmp_path, sim):
    lake = Lake(tmp_path / "lake")
    lake.freeze(*sim_inputs(sim), provider="simulated", as_of=AS_OF)
    expected = lake.read_bars(start="2021-03-01", end="2021-03-31")
    for entry in lake.current_version().files_with_role("raw_bars"):
        if entry.max_date < "2021-01-01":
            lake.abspath(entry).unlink()
    got = Lake(tmp_path / "lake").read_bars(start="2021-03-01", end="2021-03-31")
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, expected)


def test_lake_connect_when_dates_are_asked_then_only_their_years_are_opened(tmp_path, sim):
    lake = Lake(tmp_path / "lake")
    lake.freeze(*sim_inputs(sim), provider="simulated", as_of=AS_OF)
    sql = "SELECT symbol, date, close FROM bars WHERE date BETWEEN DATE '2021-03-01' AND DATE '2021-03-31' ORDER BY symbol, date"
    with lake.connect() as con:
        expected = con.execute(sql).df()
    for entry in lake.current_version().files_with_role("raw_bars"):
        if entry.max_date < "2021-01-01":
            lake.abspath(entry).unlink()
    with lake.connect(start="2021-03-01", end="2021-03-31") as con:
        got = con.execute(sql).df()
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, expected)


def test_staged_bars_table_when_batches_are_staged_out_of_order_then_read_in_symbol_and_date_order(tmp_path, sim):
    bars = sim_inputs(sim)[0]
    lake = Lake(tmp_path / "lake")
    late, early = bars.loc[bars["date"] >= "2021-01-01"], bars.loc[bars["date"] < "2021-01-01"]
    lake.stage_bars("a-late", late.sample(frac=1.0, random_state=3))
    lake.stage_bars("b-early", early)
    staged = lake.staged_bars_table().to_pandas()
    keys = list(zip(staged["symbol"].astype(str), staged["date"]))
    assert len(keys) == len(bars) and keys == sorted(keys)


def test_read_bars_when_symbols_are_asked_then_exactly_their_bars(tmp_path, sim):
    lake = Lake(tmp_path / "lake")
    lake.freeze(*sim_inputs(sim), provider="simulated")
    whole = lake.read_bars()
    names = sorted(whole["symbol"].astype(str).unique())
    asked = [names[-1], names[0], "NOSUCH"]
    got = lake.read_bars(symbols=asked)
    expected = whole.loc[whole["symbol"].astype(str).isin(asked)].reset_index(drop=True)
    assert set(got["symbol"].astype(str)) == {names[0], names[-1]}
    pd.testing.assert_frame_equal(got, expected, check_categorical=False)
    assert lake.read_bars(symbols=[]).empty


def test_raw_file_when_written_in_any_batches_then_row_groups_of_the_set_size_and_the_same_bytes(tmp_path, sim, monkeypatch):
    monkeypatch.setattr(file_store, "RAW_ROW_GROUP_ROWS", 64)
    monkeypatch.setattr(file_store, "HISTORY_ROW_GROUP_ROWS", 300)
    inputs = sim_inputs(sim)
    versions = {batch_rows: freeze(tmp_path, f"lake-{batch_rows}", inputs[0], inputs, batch_rows, AS_OF)
                for batch_rows in (7, 500, None)}
    assert raw_files(versions[7]) == raw_files(versions[500]) == raw_files(versions[None])
    kinds, history_files = [], []
    for entry in versions[None].files_with_role("raw_bars"):
        file = pq.ParquetFile(tmp_path / "lake-None" / entry.path)
        sizes = [file.metadata.row_group(index).num_rows for index in range(file.metadata.num_row_groups)]
        if "/year=" in entry.path:  # a year file: groups of exactly 64 rows, the last one the rest
            kinds.append("year")
            assert sizes == [64] * (entry.rows // 64) + ([entry.rows % 64] if entry.rows % 64 else [])
            assert len(sizes) > 10
            continue
        # a history file: groups of at most 300 rows, each ending where a symbol ends (a symbol
        # has 252 bars in 2020: one per group, each whole)
        kinds.append("history")
        symbols = [file.read_row_group(index, columns=["symbol"]).column("symbol").to_pylist() for index in range(len(sizes))]
        assert max(sizes) <= 300 and len(sizes) > 5
        assert all(len(set(group)) == 1 for group in symbols)
        history_files.append([group[0] for group in symbols])
    assert sorted(kinds) == ["history", "history", "year"]
    # the groups (one symbol each) dealt in turn: the first file holds the 1st, 3rd, 5th... symbol, the second the others
    every = sorted(set(inputs[0]["symbol"]))
    assert sorted(history_files) == [every[0::2], every[1::2]]


def test_one_symbol_read_when_files_hold_many_row_groups_then_exactly_its_bars_after_a_nightly_refreeze_and_per_version(
        tmp_path, sim, monkeypatch):
    # row groups of a few symbols' rows, so that a one-symbol read skips most groups of every file
    monkeypatch.setattr(file_store, "RAW_ROW_GROUP_ROWS", 64)
    monkeypatch.setattr(file_store, "HISTORY_ROW_GROUP_ROWS", 64)
    monkeypatch.setattr(file_store, "FACTOR_ROW_GROUP_ROWS", 2)
    lake = Lake(tmp_path / "lake")
    first = lake.freeze(*sim_inputs(sim, end="2021-06-29"), provider="simulated", as_of=AS_OF).version
    bars, splits, dividends = sim_inputs(sim)
    second = lake.freeze(bars, splits, dividends, provider="simulated", as_of=AS_OF).version  # the nightly one
    groups = {e.path: pq.ParquetFile(tmp_path / "lake" / e.path).metadata.num_row_groups for e in second.files
              if e.role == "factors" or (e.role == "raw_bars" and e.rows > 128)}
    assert len(groups) >= 3 and min(groups.values()) > 2
    split_symbol = str(splits["symbol"].iloc[0])
    for version, end in ((first, "2021-06-29"), (second, "2021-06-30")):
        # the input bars of that symbol (raw), and its rows of a full scan of each adjusted view
        own = bars.loc[(bars["symbol"].astype(str) == split_symbol) & (bars["date"] <= end)]
        expected_raw = schema.normalize_bars(own.assign(symbol=own["symbol"].astype(str)).sort_values("date", ignore_index=True))
        pd.testing.assert_frame_equal(lake.read_bars(version.version_id, "raw", symbols=[split_symbol]), expected_raw,
                                      check_categorical=False)
        for view, table in (("total", "bars"), ("split", "bars_split_adjusted")):
            whole = lake.read_bars(version.version_id, view)
            expected = whole.loc[whole["symbol"].astype(str) == split_symbol].reset_index(drop=True)
            assert len(expected) == len(own) > 200
            pd.testing.assert_frame_equal(lake.read_bars(version.version_id, view, symbols=[split_symbol]), expected,
                                          check_categorical=False)
            scanned = lake.query(f"SELECT * FROM {table} WHERE symbol = '{split_symbol}' ORDER BY date", version.version_id)
            pd.testing.assert_frame_equal(schema.normalize_bars(scanned), expected, check_categorical=False)
    # the split changes the adjusted prices before it: the factors were read, not skipped
    assert not lake.read_bars(view="total", symbols=[split_symbol])["close"].equals(expected_raw["close"])
