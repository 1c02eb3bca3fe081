"""Ingested batches waiting for the next freeze (the Dagster assets stage, then freeze):

    staging/bars/<label>.parquet       a batch of raw bars (e.g. one session's), replaced by label
    staging/actions/splits.parquet     the latest fetch of corporate actions (replaced each fetch)
    staging/actions/dividends.parquet

Staged files are not part of any version; a freeze that publishes clears the labels it used.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kobe_pipelines.data import schema
from kobe_pipelines.fsutil import atomic_write_bytes, fsync_dir
from kobe_pipelines.lake import duck


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
        target = self.bars_dir / f"{label}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        pq.write_table(schema.bars_table(bars), tmp, write_page_checksum=True)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        return target

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
        files = [str(self.bars_dir / f"{label}.parquet") for label in labels]
        with duck.cursor() as con:
            table = con.sql(f"SELECT {', '.join(schema.BAR_COLUMNS)} FROM read_parquet(?) ORDER BY symbol, date",
                            params=[files]).to_arrow_table()
        return schema.bars_table(table)

    def clear(self, labels: list[str]) -> None:
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
