"""The account's equity over time (state/equity_history.jsonl) and its drawdown from the peak."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from kobe_pipelines import paths

EQUITY_NAME = "equity_history.jsonl"


class EquityLog:
    """Append-only, one JSON line per reading: session date, equity and cash (USD)."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None):
        self.path = Path(paths.state_dir(state_dir)) / EQUITY_NAME

    def append(self, session: str, equity: float, cash: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"session": session, "equity": float(equity), "cash": float(cash)}, sort_keys=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def frame(self) -> pd.DataFrame:
        """One row per session (the latest reading wins), with `drawdown` = 1 - equity / running peak."""
        rows = []
        if self.path.exists():
            for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    if number != len(self.path.read_text(encoding="utf-8").splitlines()):
                        raise
                    # a torn last line (crash mid-append) is skipped; earlier lines are intact
        frame = pd.DataFrame(rows, columns=["session", "equity", "cash"])
        frame = frame.drop_duplicates("session", keep="last").sort_values("session").reset_index(drop=True)
        frame["drawdown"] = 1.0 - frame["equity"] / frame["equity"].cummax()
        return frame
