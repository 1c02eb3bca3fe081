from __future__ import annotations

import os
from typing import Callable, Iterable

import pandas as pd
import pyarrow.parquet as pq
import pytest

from kobe_pipelines.data import schema
from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
from kobe_pipelines.lake import Lake, LakeCorruptionError

SIM_END = "2021-06-30"


@pytest.fixture(scope="session")
def sim() -> SimulatedProvider:
    return SimulatedProvider(SimConfig(seed=11, n_symbols=12, start="2020-01-02", end=SIM_END))


@pytest.fixture()
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "lake")


def sim_inputs(sim: SimulatedProvider, end: str = SIM_END) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    start = sim.config.start
    return sim.daily_bars(start, end), sim.splits(start, end), sim.dividends(start, end)


def tiny_market() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Symbol AAA over four sessions with a 2-for-1 split on 2024-01-05 and a $1 dividend going ex
    on 2024-01-04; symbol BBB with no events."""
    days = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    bars = pd.DataFrame(
        {
            "symbol": ["AAA"] * 4 + ["BBB"] * 4,
            "date": days * 2,
            "open": [100.0, 101.0, 100.0, 50.0, 10.0, 10.0, 10.0, 10.0],
            "high": [101.0, 103.0, 101.0, 51.0, 10.5, 10.5, 10.5, 10.5],
            "low": [99.0, 100.0, 99.0, 49.0, 9.5, 9.5, 9.5, 9.5],
            "close": [100.0, 102.0, 100.0, 50.0, 10.0, 10.1, 10.2, 10.3],
            "volume": [1000.0, 1000.0, 1000.0, 2000.0, 500.0, 500.0, 500.0, 500.0],
        }
    )
    splits = pd.DataFrame({"symbol": ["AAA"], "execution_date": ["2024-01-05"], "split_from": [1.0], "split_to": [2.0]})
    dividends = pd.DataFrame({"symbol": ["AAA"], "ex_dividend_date": ["2024-01-04"], "cash_amount": [1.0]})
    return schema.normalize_bars(bars), schema.normalize_splits(splits), schema.normalize_dividends(dividends)


def flip(path, offset: int, bit: int = 0) -> None:
    """Flip one bit of `path` in place, then give the file back its access and modification times."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([byte ^ (1 << bit)]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def page_bytes(path, groups: Iterable[int] | None = None) -> list[int]:
    """The offsets of every byte of the file's pages (each column chunk's dictionary and data
    pages with their headers) in `groups` (default: every row group): what page checksums cover.
    The footer is covered by sha256 only."""
    metadata = pq.ParquetFile(path).metadata
    offsets = []
    for group in range(metadata.num_row_groups) if groups is None else groups:
        for column in range(metadata.num_columns):
            chunk = metadata.row_group(group).column(column)
            start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
            offsets += range(start, start + chunk.total_compressed_size)
    return offsets


def flips_caught(path, offsets: Iterable[int], read: Callable[[], pd.DataFrame], name: str) -> tuple[int, int]:
    """Flip one bit at each of `offsets` of `path` in turn (the file restored after each) and
    `read`: (reads that failed with a `LakeCorruptionError` naming `name`, reads whose rows
    differ from an undamaged read's)."""
    expected, original = read(), path.read_bytes()
    failed = silent = 0
    for offset in offsets:
        flip(path, offset, bit=offset % 8)
        try:
            got = read()
        except LakeCorruptionError as exc:
            assert name in str(exc)
            failed += 1
        else:
            silent += not got.equals(expected)
        path.write_bytes(original)
    return failed, silent
