"""The market a backtest replays: one lake version, served session by session as it was known then.

The bars come from ONE lake version (the one as of the backtest's end), read once. For a session
t the backtest hands out:
- `raw_bars(t)`: the raw bars of session t (what traded; the paper broker fills against them);
- `adjusted_history(t, sessions)`: total-return adjusted bars of the last `sessions` sessions up to
  and including t, RE-BASED to t: each symbol's prices are multiplied by F(s) / F(t), F the
  version's total-return factor of its latest bar at or before t (volumes by the split factor's
  inverse ratio). So the bar of session t is the raw bar, and earlier bars carry only the splits
  and dividends up to t: exactly what a lake frozen at t would have shown. Nothing after t is read:
  a split or dividend after t changes F by the same constant for every row up to t, which the
  re-basing divides out.

Conventions: dates are naive midnights naming XNYS sessions; prices USD per share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kobe_pipelines.data.schema import BAR_COLUMNS
from kobe_pipelines.errors import KobeError

PRICE_COLUMNS = ("open", "high", "low", "close")


class MarketDataError(KobeError):
    """The lake version cannot serve the backtest (no bars in the range, misaligned views)."""


@dataclass(frozen=True, eq=False)
class _Columns:
    symbol_codes: np.ndarray  # int32 per row, into `symbols`
    day_index: np.ndarray  # int per row, into `sessions`
    raw: dict[str, np.ndarray]  # open, high, low, close, volume
    total_factor: np.ndarray  # total-return price factor per row
    split_factor: np.ndarray  # split-only price factor per row


class PointInTimeMarket:
    """See the module docstring. `raw`, `total` and `split`: the version's three bar views with the
    same (symbol, date) rows (`Lake.read_bars` views "raw", "total", "split")."""

    def __init__(self, raw: pd.DataFrame, total: pd.DataFrame, split: pd.DataFrame, *, version_id: str = "",
                 content_hash: str = ""):
        if raw.empty:
            raise MarketDataError("the lake version has no bars in the backtest's range")
        keys = ["symbol", "date"]
        raw = raw.sort_values(["date", "symbol"], kind="mergesort").reset_index(drop=True)
        views = {}
        for name, frame in (("total", total), ("split", split)):
            aligned = raw.loc[:, keys].merge(frame.loc[:, [*keys, "close"]], on=keys, how="left")
            if aligned["close"].isna().any():
                row = aligned.loc[aligned["close"].isna()].iloc[0]
                raise MarketDataError(f"bar {row['symbol']} {pd.Timestamp(row['date']).date()}: no {name}-adjusted row")
            views[name] = aligned["close"].to_numpy(dtype="float64") / raw["close"].to_numpy(dtype="float64")
        self.version_id = version_id
        self.content_hash = content_hash
        self.symbols = np.array(sorted(raw["symbol"].astype(str).unique()), dtype=object)
        self._symbol_text = pd.array(self.symbols, dtype="str")  # taken per row: cheaper than from objects
        self.sessions = pd.DatetimeIndex(np.sort(raw["date"].unique()))
        codes = pd.Categorical(raw["symbol"].astype(str), categories=self.symbols).codes.astype("int32")
        days = self.sessions.get_indexer(pd.DatetimeIndex(raw["date"]))
        self._cols = _Columns(codes, days, {c: raw[c].to_numpy(dtype="float64") for c in (*PRICE_COLUMNS, "volume")},
                              views["total"], views["split"])
        # rows of session i are [self._bounds[i], self._bounds[i + 1])
        self._bounds = np.searchsorted(days, np.arange(len(self.sessions) + 1))
        self._latest_total, self._latest_split = self._forward_filled_factors()

    @classmethod
    def from_lake(cls, lake, version_id: str, symbols: list[str] | None = None, start=None, end=None) -> "PointInTimeMarket":
        manifest = lake.version(version_id)
        views = {v: lake.read_bars(manifest.version_id, v, symbols, start, end) for v in ("raw", "total", "split")}
        return cls(views["raw"], views["total"], views["split"], version_id=manifest.version_id,
                   content_hash=manifest.content_hash)

    def _forward_filled_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(session x symbol) factors of each symbol's latest bar at or before each session."""
        shape = (len(self.sessions), len(self.symbols))
        out = []
        for factor in (self._cols.total_factor, self._cols.split_factor):
            grid = np.full(shape, np.nan)
            grid[self._cols.day_index, self._cols.symbol_codes] = factor
            out.append(pd.DataFrame(grid).ffill().to_numpy())
        return out[0], out[1]

    def session_index(self, session: pd.Timestamp | str) -> int:
        day = pd.Timestamp(session)
        i = int(self.sessions.searchsorted(day))
        if i >= len(self.sessions) or self.sessions[i] != day:
            raise MarketDataError(f"session {day.date()} has no bars in lake version {self.version_id or '?'}")
        return i

    def _frame(self, rows: slice, prices: dict[str, np.ndarray]) -> pd.DataFrame:
        cols = self._cols
        out = {"symbol": self._symbol_text.take(cols.symbol_codes[rows]), "date": self.sessions.values[cols.day_index[rows]]}
        out.update(prices)
        return pd.DataFrame(out, columns=list(BAR_COLUMNS))

    def raw_bars(self, session: pd.Timestamp | str) -> pd.DataFrame:
        """The raw bars of `session` (every symbol that traded), sorted by symbol."""
        i = self.session_index(session)
        rows = slice(self._bounds[i], self._bounds[i + 1])
        return self._frame(rows, {c: self._cols.raw[c][rows] for c in (*PRICE_COLUMNS, "volume")})

    def adjusted_history(self, session: pd.Timestamp | str, sessions: int) -> pd.DataFrame:
        """Total-return adjusted bars of the last `sessions` sessions up to `session`, re-based to it."""
        i = self.session_index(session)
        rows = slice(self._bounds[max(0, i - sessions + 1)], self._bounds[i + 1])
        cols = self._cols
        codes = cols.symbol_codes[rows]
        price_scale = cols.total_factor[rows] / self._latest_total[i, codes]
        volume_scale = self._latest_split[i, codes] / cols.split_factor[rows]
        prices = {c: cols.raw[c][rows] * price_scale for c in PRICE_COLUMNS}
        prices["volume"] = cols.raw["volume"][rows] * volume_scale
        return self._frame(rows, prices)

    def symbols_on(self, session: pd.Timestamp | str) -> np.ndarray:
        """Symbols with a bar on `session`, sorted."""
        i = self.session_index(session)
        return self.symbols[self._cols.symbol_codes[self._bounds[i]:self._bounds[i + 1]]]
