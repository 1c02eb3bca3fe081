"""Staged batches: a batch written pending is staged only when committed, and the batch this
process staged last is read from memory only while its file is the one written."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from kobe_pipelines.data import schema
from kobe_pipelines.lake import Lake
from kobe_pipelines.lake.staging import in_symbol_date_order
from kobe_pipelines_tests.lake.conftest import sim_inputs


def read_from_file(lake: Lake, label: str) -> pa.Table:
    """The staged batch as its file holds it, in (symbol, date) order, symbols as strings."""
    table = pq.read_table(lake.staging_dir / f"{label}.parquet")
    return table.cast(schema.BARS_ARROW_SCHEMA).sort_by([("symbol", "ascending"), ("date", "ascending")])


def test_write_pending_bars_when_discarded_then_nothing_is_staged(tmp_path, sim):
    lake = Lake(tmp_path / "lake")
    pending = lake.write_pending_bars("history", sim_inputs(sim)[0])
    assert lake.staged_labels() == []  # written under a hidden name only
    pending.discard()
    assert lake.staged_labels() == [] and list(lake.staging_dir.iterdir()) == []


def test_write_pending_bars_when_committed_then_the_next_read_takes_the_batch_as_written(tmp_path, sim):
    bars = sim_inputs(sim)[0]
    lake = Lake(tmp_path / "lake")
    pending = lake.write_pending_bars("history", bars)
    assert pending.in_order  # the simulator's bars come in (symbol, date) order
    pending.commit()
    assert lake.staged_labels() == ["history"]
    kept = lake.staged_bars_table(["history"])
    assert kept is pending.table  # from memory, not read back
    assert kept.cast(schema.BARS_ARROW_SCHEMA).equals(read_from_file(lake, "history"))
    again = lake.staged_bars_table(["history"])  # held until read once; then read from the file
    assert again is not pending.table and again.equals(read_from_file(lake, "history"))


def test_staged_bars_table_when_another_writer_replaced_the_file_then_its_rows_are_read(tmp_path, sim):
    bars = sim_inputs(sim)[0]
    lake = Lake(tmp_path / "lake")
    lake.write_pending_bars("history", bars).commit()
    fewer = schema.bars_table(bars.iloc[:10])
    pq.write_table(fewer, lake.staging_dir / ".other.tmp")
    (lake.staging_dir / ".other.tmp").replace(lake.staging_dir / "history.parquet")
    assert lake.staged_bars_table(["history"]).num_rows == 10


def test_staged_bars_table_when_the_label_was_cleared_and_staged_again_by_stage_bars_then_the_new_rows(tmp_path, sim):
    bars = sim_inputs(sim)[0]
    lake = Lake(tmp_path / "lake")
    lake.write_pending_bars("history", bars).commit()
    lake.clear_staged(["history"])
    assert lake.staged_labels() == [] and lake.staged_bars_table().num_rows == 0
    shuffled = bars.sample(frac=1.0, random_state=5)
    pending = lake.write_pending_bars("history", shuffled)
    assert not pending.in_order
    pending.commit()
    staged = lake.staged_bars_table(["history"])
    assert staged is not pending.table  # out of order: read back sorted from the file
    keys = list(zip(staged.column("symbol").to_pylist(), staged.column("date").to_pylist()))
    assert len(keys) == len(bars) and keys == sorted(keys)


def test_in_symbol_date_order_when_rows_are_sorted_strings_or_dictionary_then_true_else_false():
    def table(symbols, days, dictionary: bool = False) -> pa.Table:
        column = pa.array(symbols, pa.string())
        return pa.table({"symbol": column.dictionary_encode() if dictionary else column,
                         "date": pa.array(days, pa.int32()).cast(pa.date32())})

    assert in_symbol_date_order(table(["A", "A", "B"], [1, 2, 1]))
    assert in_symbol_date_order(table(["A", "A", "B"], [1, 2, 1], dictionary=True))
    assert not in_symbol_date_order(table(["A", "A", "B"], [2, 1, 1]))  # dates backwards within A
    assert not in_symbol_date_order(table(["A", "A"], [1, 1]))  # a repeated (symbol, date)
    assert not in_symbol_date_order(table(["B", "A"], [1, 1], dictionary=True))
    # a dictionary listing B before A: the order is that of the strings, not of the codes
    codes = pa.DictionaryArray.from_arrays(pa.array([1, 0], pa.int32()), pa.array(["B", "A"]))
    assert in_symbol_date_order(pa.table({"symbol": codes, "date": pa.array([5, 5], pa.int32()).cast(pa.date32())}))
    assert not in_symbol_date_order(table(["A", None], [1, 2]))
