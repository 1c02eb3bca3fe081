"""The backtest group's resource: where backtests write."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field


class BacktestResource(dg.ConfigurableResource):
    """Where backtests write (`KOBE_BACKTEST_DIR`, default `backtests/`), never the live state folder."""

    backtest_dir: str | None = Field(default=None, description="Folder of the backtests; empty means ./backtests")

    def folder(self, name: str) -> Path:
        return Path(self.backtest_dir or "backtests").expanduser().resolve() / name
