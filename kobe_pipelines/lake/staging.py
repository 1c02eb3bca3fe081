"""Ingested batches waiting for the next freeze (the Dagster assets stage, then freeze):

    staging/bars/<label>.parquet       a batch of raw bars (e.g. one session's), replaced by label
    staging/actions/splits.parquet     the latest fetch of corporate actions (replaced each fetch)
    staging/actions/dividends.parquet

Staged files are not part of any version; a freeze that publishes clears the labels it used.
The batch this process staged last is also kept in memory, in (symbol, date) order, until it is
read or cleared: a freeze that follows in the same process (a Dagster run of the lake group)
takes it from there instead of reading its file back, as long as the file is the one written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kobe_pipelines.data import schema
from kobe_pipelines.fsutil import atomic_write_bytes, fsync_dir
from kobe_pipelines.lake import duck


def _file_identity(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class _LastStaged:
    """The batch this process staged last (its path, file identity and table), held until read."""

    held: tuple[Path, tuple[int, int, int], pa.Table] | None = None

    @classmethod
    def keep(cls, path: Path, table: pa.Table) -> None:
        cls.held = (path, _file_identity(path), table)

    @classmethod
    def take(cls, path: Path) -> pa.Table | None:
        """The table kept for `path` if its file is still the one written (then no longer kept)."""
        held = cls.held
        if held is None or held[0] != path:
            return None
        cls.held = None
        try:
            return held[2] if _file_identity(path) == held[1] else None
        except FileNotFoundError:
            return None

    @classmethod
    def forget(cls, paths: list[Path]) -> None:
        if cls.held is not None and cls.held[0] in paths:
            cls.held = None


def in_symbol_date_order(table: pa.Table) -> bool:
    """Whether the rows are strictly increasing in (symbol, date), symbols compared as strings:
    the order `bars_table` reads staged batches in."""
    if table.num_rows < 2:
        return True
    symbols = table.column("symbol").combine_chunks()
    if symbols.null_count:
        return False
    days = table.column("date").combine_chunks().cast(pa.int32()).to_numpy(zero_copy_only=False)
    if pa.types.is_dictionary(symbols.type):
        names = symbols.dictionary
        if names.null_count or len(pc.unique(names)) != len(names):
            return False
        rank = np.empty(len(names), dtype=np.int64)
        rank[pc.sort_indices(names).to_numpy()] = np.arange(len(names))
        keys = rank[symbols.indices.to_numpy(zero_copy_only=False)]
        after, same = keys[1:] > keys[:-1], keys[1:] == keys[:-1]
    else:
        earlier, later = symbols.slice(0, len(symbols) - 1), symbols.slice(1)
        after = pc.greater(later, earlier).to_numpy(zero_copy_only=False)
        same = pc.equal(later, earlier).to_numpy(zero_copy_only=False)
    return bool(np.all(after | (same & (days[1:] > days[:-1]))))


@dataclass(frozen=True)
class PendingBatch:
    """A batch of bars written under a hidden name beside the staged ones, not staged yet: a check
    can judge it while it is written. `commit` stages it (atomic rename, replacing the same
    label); `discard` removes it. A hidden file a crash leaves is never read and is overwritten by
    the next write of its label. `table` is the batch as written; `in_order` whether its rows are
    in (symbol, date) order already (then a freeze in this process can take it from memory)."""

    written: Path
    target: Path
    table: pa.Table
    in_order: bool

    def commit(self) -> Path:
        os.replace(self.written, self.target)
        fsync_dir(self.target.parent)
        if self.in_order:
            _LastStaged.keep(self.target, self.table)
        else:
            _LastStaged.forget([self.target])
        return self.target

    def discard(self) -> None:
        self.written.unlink(missing_ok=True)


class Staging:
    """The staging folders of the lake at `root`."""

    def __init__(self, root: Path):
        self.root = root

    @property
    def bars_dir(self) -> Path:
        return self.root / "staging" / "bars"

    @property
    def actions_dir(self) -> Path:
        return self.root / "staging" / "actions"

    def stage_bars(self, label: str, bars: pd.DataFrame | pa.Table) -> Path:
        """Store an ingested batch (a frame or an Arrow table of `schema.BAR_COLUMNS`) until the
        next freeze; replaces the same label."""
        return self.write_pending(label, bars).commit()

    def write_pending(self, label: str, bars: pd.DataFrame | pa.Table) -> PendingBatch:
        """Write a batch as `stage_bars` does, staged only when the returned batch is committed."""
        target = self.bars_dir / f"{label}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        written = target.with_name(f".{target.name}.tmp")
        table = schema.bars_table(bars)
        pq.write_table(table, written, write_page_checksum=True)
        return PendingBatch(written, target, table, in_symbol_date_order(table))

    def labels(self) -> list[str]:
        if not self.bars_dir.exists():
            return []
        return sorted(p.stem for p in self.bars_dir.glob("*.parquet") if not p.name.startswith("."))

    def bars_table(self, labels: list[str] | None = None) -> pa.Table:
        """The staged batches (all, or `labels`) as one Arrow table in `schema.BARS_ARROW_SCHEMA`,
        the form a freeze takes without pandas (a backfill of years stages millions of bars),
        sorted by symbol and date: the order a first freeze streams without sorting again."""
        labels = self.labels() if labels is None else labels
        if not labels:
            return schema.bars_table(schema.empty_bars())
        if len(labels) == 1 and (kept := _LastStaged.take(self.bars_dir / f"{labels[0]}.parquet")) is not None:
            return kept
        files = [str(self.bars_dir / f"{label}.parquet") for label in labels]
        with duck.cursor() as con:
            table = con.sql(f"SELECT {', '.join(schema.BAR_COLUMNS)} FROM read_parquet(?) ORDER BY symbol, date",
                            params=[files]).to_arrow_table()
        return schema.bars_table(table)

    def clear(self, labels: list[str]) -> None:
        _LastStaged.forget([self.bars_dir / f"{label}.parquet" for label in labels])
        for label in labels:
            (self.bars_dir / f"{label}.parquet").unlink(missing_ok=True)

    def stage_actions(self, splits: pd.DataFrame, dividends: pd.DataFrame) -> None:
        """Store the latest fetch of corporate actions until the next freeze (replacing the last fetch)."""
        for name, frame in (("splits", schema.normalize_splits(splits)), ("dividends", schema.normalize_dividends(dividends))):
            buffer = pa.BufferOutputStream()
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, write_page_checksum=True)
            atomic_write_bytes(self.actions_dir / f"{name}.parquet", buffer.getvalue().to_pybytes())

    def actions(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The staged splits and dividends (empty frames when none are staged)."""
        splits, dividends = self.actions_dir / "splits.parquet", self.actions_dir / "dividends.parquet"
        return (
            schema.normalize_splits(pd.read_parquet(splits)) if splits.exists() else schema.empty_splits(),
            schema.normalize_dividends(pd.read_parquet(dividends)) if dividends.exists() else schema.empty_dividends(),
        )
