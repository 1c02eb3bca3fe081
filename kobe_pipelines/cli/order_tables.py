"""The order ledger as people and scripts read it: the per-order table of `kobe orders` and the
closing summary of `kobe demo`, built by the same functions.

`table`: at most 100 columns (`cli.tables`), one row per order with the entry, stop,
take-profit, outcome, fill prices, realized P&L and slippage, and under each row its client
order id and exit reason; `csv` and `json`: every column of the frame, numbers as numbers,
missing values empty (csv) or null (json).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pandas as pd

from kobe_pipelines.cli.tables import Column, format_cell, render_table, wrap_text
from kobe_pipelines.execution.slippage import SLIPPAGE_CONVENTION

OutputFormat = Literal["table", "csv", "json"]

ORDER_TABLE = [
    Column("symbol", "symbol"), Column("side", "side"), Column("qty", "qty", "int"),
    Column("entry", "entry", "price"), Column("stop", "stop", "price"), Column("target", "take_profit", "price"),
    Column("status", "status"), Column("fill in", "entry_fill", "price"), Column("fill out", "exit_fill", "price"),
    Column("P&L USD", "realized_pnl", "usd"), Column("slip bps", "slippage_bps", "bps"),
]
EVENT_TABLE = [
    Column("seq", "seq", "int"), Column("at (UTC)", "at", "time"), Column("event", "event"), Column("leg", "leg"),
    Column("side", "side"), Column("qty", "qty", "int"), Column("price", "price", "price"), Column("status", "status"),
    Column("broker", "broker"),
]
ORDER_TABLE_LEGEND = ("Under each order: its session, client order id and outcome. target: the take-profit limit; "
                      "fill in / fill out: average entry and exit fill prices (USD per share); P&L: realized, USD; "
                      f"slip bps: the cost of the order's fills, each {SLIPPAGE_CONVENTION}.")


def render_frame(frame: pd.DataFrame, output: OutputFormat, columns: list[Column], *, title: str | None = None,
                 detail: str | None = None, legend: str | None = None) -> str:
    """`frame` in `output` format: a table of `columns` (with `detail` under each row and `legend`
    after it), or every column of the frame as CSV or JSON records."""
    if output == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if output == "json":
        return frame.to_json(orient="records", date_format="iso", indent=1)
    rows = frame.to_dict("records")
    text = render_table(rows, columns, title=title, detail=detail)
    return text + ("\n\n" + legend if legend else "")


def with_order_detail(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (orders or intents) with a `detail` column: the session, the client order id and
    the exit reason."""
    out = frame.copy()
    out["detail"] = [" ".join(format_cell(v) for v in values if format_cell(v)) for values in
                     zip(out["trading_date"], out["client_order_id"], out["exit_reason"])]
    return out


def render_orders(frame: pd.DataFrame, output: OutputFormat = "table", *, title: str | None = None) -> str:
    """Orders (`OrderLedger.orders()`) or intents (`OrderLedger.intents()`) in `output` format."""
    if output != "table":
        return render_frame(frame, output, ORDER_TABLE)
    return render_frame(with_order_detail(frame), output, ORDER_TABLE, title=title, detail="detail",
                        legend=wrap_text(ORDER_TABLE_LEGEND))


def render_events(frame: pd.DataFrame, output: OutputFormat = "table") -> str:
    """Ledger events (`OrderLedger.events()`), each event's client order id under its row."""
    if output == "table":
        frame = frame.assign(at=pd.to_datetime(frame["at"], utc=True, format="ISO8601"))
    return render_frame(frame, output, EVENT_TABLE, detail="client_order_id")


def trading_summary(state_dir: str | os.PathLike[str] | Path) -> str:
    """The closing summary of a trading session's state: every order sent, its outcome and P&L
    (the `kobe orders --sent` table), the realized P&L, and the slippage with its reference and
    sign convention. `kobe demo` prints it."""
    from kobe_pipelines.execution.ledger import OrderLedger
    from kobe_pipelines.execution.slippage import SlippageTracker

    orders = OrderLedger(state_dir).orders()
    lines = []
    if orders.empty:
        lines.append("no order was sent")
    else:
        lines.append(render_orders(orders, title=f"orders sent ({len(orders)}): kobe orders --sent"))
        closed = orders["realized_pnl"].notna()
        still_open = int((orders["status"] == "open").sum())
        lines.append(f"realized P&L: {format_cell(orders.loc[closed, 'realized_pnl'].sum(), 'usd')} USD over "
                     f"{int(closed.sum())} closed orders; {still_open} still open")
    overall = SlippageTracker(state_dir).overall()
    if overall.fills:
        lines.append(wrap_text(f"slippage: {overall.fills} fills, mean {format_cell(overall.mean_bps, 'bps')} bps, p95 "
                           f"{format_cell(overall.p95_bps, 'bps')} bps, total {format_cell(overall.total_usd, 'usd')} "
                           f"USD, each fill {SLIPPAGE_CONVENTION}"))
    return "\n".join(lines)

