"""Where a backtest's signals come from, session by session (symbol, date, score for one session).

- `UniverseSignals`: every symbol with a bar on the session, score 0 (model-free strategies such as
  `buy_and_hold`: the signals only name the universe);
- `ScoredSignals`: scores computed beforehand (a file, an oracle), served as they are;
- `WalkForwardSignals`: the models retrained walk-forward (`walk_forward`), scoring each session
  from features at or before it.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import numpy as np
import pandas as pd

from kobe_pipelines.backtest.market import PointInTimeMarket
from kobe_pipelines.errors import RecordError
from kobe_pipelines.strategies.context import SIGNAL_COLUMNS


class SignalSource(Protocol):
    """Scores for one session; `model_name`/`model_version` name what made them ("" if nothing)."""

    model_name: str

    def signals(self, session: pd.Timestamp) -> pd.DataFrame: ...

    def model_version(self, session: pd.Timestamp) -> str: ...


class UniverseSignals:
    model_name = ""

    def __init__(self, market: PointInTimeMarket):
        self.market = market

    def signals(self, session: pd.Timestamp) -> pd.DataFrame:
        symbols = self.market.symbols_on(session)
        return pd.DataFrame({"symbol": symbols, "date": pd.Timestamp(session), "score": np.zeros(len(symbols))},
                            columns=list(SIGNAL_COLUMNS))

    def model_version(self, session: pd.Timestamp) -> str:
        return ""


class ScoredSignals:
    """Scores given beforehand (`frame`: symbol, date, score); a session without any is an error.
    Their version is the first 12 hex digits of the sha256 of every score."""

    def __init__(self, frame: pd.DataFrame, model_name: str = "scores"):
        missing = [c for c in SIGNAL_COLUMNS if c not in frame.columns]
        if missing:
            raise RecordError("signals", "frame", missing[0], "is missing")
        frame = frame.loc[:, list(SIGNAL_COLUMNS)].assign(date=pd.to_datetime(frame["date"]))
        self._by_date = {pd.Timestamp(day): rows.reset_index(drop=True) for day, rows in frame.groupby("date", sort=True)}
        self.model_name = model_name
        hashed = pd.util.hash_pandas_object(frame.sort_values(["date", "symbol"]), index=False).to_numpy()
        self._version = hashlib.sha256(hashed.tobytes()).hexdigest()[:12]

    def signals(self, session: pd.Timestamp) -> pd.DataFrame:
        day = pd.Timestamp(session)
        if day not in self._by_date:
            raise RecordError("signals", str(day.date()), "date", "has no scores")
        return self._by_date[day]

    def model_version(self, session: pd.Timestamp) -> str:
        return self._version
