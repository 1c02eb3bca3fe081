"""Slippage of every fill against its arrival price, persisted in `state/slippage.sqlite`.

For one fill of `qty` shares at `fill` whose arrival price is `expected` (USD per share):

    side_sign    = +1 for a buy, -1 for a sell
    slippage_bps = side_sign x (fill - expected) / expected x 10,000
    slippage_usd = side_sign x (fill - expected) x qty

so a positive number is always a cost: a buy filled above the arrival price, or a sell
filled below it. The arrival price (`broker.Fill.expected_price`) is the market price when the
leg became marketable: the session's open for a fill at the open (a limit the bar opened
through, a market entry, a stop the bar gapped through), else the leg's own price, which the
market reached during the session (the entry limit, the stop trigger, the take-profit limit).
So a buy limit at 100.00 filled at 98.049 on a bar that opened at 98.00 costs
(98.049 - 98.00) / 98.00 x 10,000 = +5.0 bps (the paper broker's 5 bps), not the -195 bps
"gain" the limit price would suggest; and a long's stop at 95.00 filled at 92.9535 after a gap
open at 93.00 costs +5.0 bps, where the stop price would show +215 bps. A broker that does not
report the arrival price (Alpaca) is measured against the leg's own price.

Summaries (per symbol, per session, overall) give the number of fills, the mean, median and
95th percentile of slippage_bps over fills (each fill counts once, whatever its size; the
percentile interpolates linearly between the two nearest fills, numpy's default), and the
total slippage in USD. A fill is recorded once by its `fill_id`; recording it again returns
the stored record.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

import numpy as np
import pandas as pd

from kobe_pipelines import paths
from kobe_pipelines.errors import RecordError
from kobe_pipelines.execution.broker import Fill
from kobe_pipelines.execution.sqlite_store import connect
from kobe_pipelines.orders import Side

SLIPPAGE_NAME = "slippage.sqlite"
COLUMNS = ("fill_id", "client_order_id", "leg", "symbol", "side", "qty", "expected_price", "fill_price",
           "slippage_bps", "slippage_usd", "session", "filled_at", "broker", "recorded_at")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS slippage (
    fill_id TEXT PRIMARY KEY, client_order_id TEXT NOT NULL, leg TEXT NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, qty INTEGER NOT NULL, expected_price REAL NOT NULL, fill_price REAL NOT NULL,
    slippage_bps REAL NOT NULL, slippage_usd REAL NOT NULL, session TEXT NOT NULL, filled_at TEXT NOT NULL,
    broker TEXT NOT NULL, recorded_at TEXT NOT NULL
);
"""
SUMMARY_COLUMNS = ("fills", "mean_bps", "median_bps", "p95_bps", "total_usd")
SLIPPAGE_CONVENTION = ("against its arrival price (the session's open for a fill at the open, else the order's own "
                       "limit or stop); positive = cost")


@dataclass(frozen=True)
class SlippageRecord:
    fill_id: str
    symbol: str
    side: Side
    qty: int
    expected_price: float  # the arrival price
    fill_price: float
    slippage_bps: float  # positive = cost
    slippage_usd: float  # positive = cost
    session: str


@dataclass(frozen=True)
class SlippageSummary:
    fills: int
    mean_bps: float
    median_bps: float
    p95_bps: float
    total_usd: float


def measure(fill: Fill) -> SlippageRecord:
    """Slippage of one fill (formula in the module docstring); `RecordError` naming the field
    for an expected price <= 0 or not finite, a bad fill price, quantity or side."""
    record = fill.fill_id
    expected = _price(fill.expected_price, "expected_price", record)
    price = _price(fill.price, "price", record)
    qty = fill.qty
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        raise RecordError("fill", record, "qty", "must be a positive whole number of shares", qty)
    try:
        sign = Side(fill.side).sign
    except ValueError:
        raise RecordError("fill", record, "side", "must be 'buy' or 'sell'", fill.side) from None
    bps, usd = slippage_cost(sign, price, expected, qty)
    return SlippageRecord(fill.fill_id, fill.symbol, Side(fill.side), qty, expected, price, bps, usd, fill.session)


def slippage_cost(side_sign: int, price: float, expected: float, qty: int) -> tuple[float, float]:
    """(slippage_bps, slippage_usd) of `qty` shares filled at `price` against the arrival price
    `expected` (the module docstring's formula; positive = cost), computed in Decimal."""
    move = Decimal(repr(float(price))) - Decimal(repr(float(expected)))
    return float(side_sign * move / Decimal(repr(float(expected))) * 10_000), float(side_sign * move * qty)


def _price(value: object, field: str, record: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise RecordError("fill", record, field, "must be a finite price > 0 USD per share", value)
    return float(value)


class SlippageTracker:
    """Records fills' slippage durably and summarises it (see the module docstring)."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, durable: bool = True):
        """`durable=False`: commits do not wait for the disk (`sqlite_store`; backtests only)."""
        self.path = paths.state_dir(state_dir) / SLIPPAGE_NAME
        self.durable = durable
        with self._db(write=False):  # a corrupt file fails here, at start
            pass

    def _db(self, write: bool = True):
        return connect(self.path, _SCHEMA, "slippage", COLUMNS, write=write, durable=self.durable)

    def record(self, fill: Fill) -> SlippageRecord:
        return self.record_many([fill])[0]

    def record_many(self, fills: Iterable[Fill]) -> list[SlippageRecord]:
        """Measure and store fills in one transaction (all or none). A fill already recorded
        under its fill_id is not stored again; its stored measurement is returned."""
        measured = [(fill, measure(fill)) for fill in fills]  # every fill is checked before any is stored
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        out: list[SlippageRecord] = []
        with self._db() as con:
            for fill, m in measured:
                con.execute(
                    "INSERT OR IGNORE INTO slippage VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (m.fill_id, fill.client_order_id, fill.leg.value if hasattr(fill.leg, "value") else str(fill.leg),
                     m.symbol, m.side.value, m.qty, m.expected_price, m.fill_price, m.slippage_bps, m.slippage_usd,
                     m.session, fill.filled_at.isoformat(), fill.broker, now))
                row = con.execute("SELECT symbol, side, qty, expected_price, fill_price, slippage_bps, slippage_usd, session "
                                  "FROM slippage WHERE fill_id = ?", (m.fill_id,)).fetchone()
                out.append(SlippageRecord(m.fill_id, row[0], Side(row[1]), *row[2:]))
        return out

    def records(self) -> pd.DataFrame:
        """Every recorded fill, oldest first, with its slippage (columns `COLUMNS`)."""
        with self._db(write=False) as con:
            rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM slippage ORDER BY filled_at, fill_id").fetchall()
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def overall(self) -> SlippageSummary:
        return _summary(self.records())

    def by_symbol(self) -> pd.DataFrame:
        return _grouped(self.records(), "symbol")

    def by_day(self) -> pd.DataFrame:
        """Per exchange session (YYYY-MM-DD) of the fill."""
        return _grouped(self.records(), "session")


def _summary(frame: pd.DataFrame) -> SlippageSummary:
    if frame.empty:
        return SlippageSummary(0, math.nan, math.nan, math.nan, 0.0)
    bps = frame["slippage_bps"].to_numpy(dtype=float)
    return SlippageSummary(len(bps), float(bps.mean()), float(np.median(bps)), float(np.percentile(bps, 95)),
                           float(frame["slippage_usd"].sum()))


def _grouped(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    rows = [{key: name, **_summary(group).__dict__} for name, group in frame.groupby(key, sort=True)]
    return pd.DataFrame(rows, columns=[key, *SUMMARY_COLUMNS])


def plot_png(records: pd.DataFrame) -> bytes:
    """A PNG for the slippage asset: mean bps per session (bars) and cumulative USD (line).
    `records` as from `SlippageTracker.records()`; an empty frame gives an empty chart."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    days = _grouped(records, "session")
    fig, left = plt.subplots(figsize=(8, 3.5), dpi=100)
    try:
        left.bar(days["session"], days["mean_bps"], color="tab:blue", label="mean bps (positive = cost)")
        left.set_ylabel("slippage, bps")
        left.tick_params(axis="x", labelrotation=45, labelsize=7)
        right = left.twinx()
        right.plot(days["session"], days["total_usd"].cumsum(), color="tab:red", marker="o", label="cumulative USD")
        right.set_ylabel("cumulative slippage, USD")
        left.set_title(f"Slippage of {int(days['fills'].sum())} fills")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)
