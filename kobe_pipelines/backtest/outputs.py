"""A backtest's files under `--out` (each written atomically):

- `equity.csv`: date, equity, cash, positions_value, drawdown, heat, halted (USD; fractions);
- `orders.csv`: one row per intent the gate judged: client_order_id, trading_date, symbol, side,
  qty, order_type, entry, stop, take_profit, approved, sent, status, reason, decision_id, and the
  lineage columns;
- `fills.csv`: one row per fill: fill_id, client_order_id, session, symbol, side, qty, price,
  expected_price, leg, cost_usd (the fill against the bar's price when it filled: the raw open for
  a fill at the open, else the order's own price; positive = cost), slippage_bps and slippage_usd
  (against the order's price, the slippage tracker's measure), realized_pnl, and the lineage
  columns of its order;
- `halts.csv` (date, event, reason), `cap_excesses.csv`, `alerts.jsonl`, `manifest.json`;
- `report.html` and the PNGs of `report`.

Lineage columns: strategy, strategy_version, model_name, model_version, lake_version_id,
lake_content_hash, signals_hash (of the session's signals the order came from).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pandas as pd

from kobe_pipelines.backtest import report
from kobe_pipelines.backtest.runner import BacktestRun
from kobe_pipelines.backtest.stats import Summary
from kobe_pipelines.fsutil import atomic_write_json, atomic_write_text
from kobe_pipelines.market_calendar import xnys
from kobe_pipelines.risk.kill_switch import KillSwitch

EQUITY_COLUMNS = ("date", "equity", "cash", "positions_value", "drawdown", "heat", "halted")
LINEAGE_COLUMNS = ("strategy", "strategy_version", "model_name", "model_version", "lake_version_id",
                   "lake_content_hash", "signals_hash")
ORDER_COLUMNS = ("client_order_id", "trading_date", "symbol", "side", "qty", "order_type", "entry", "stop",
                 "take_profit", "approved", "sent", "status", "reason", "decision_id", *LINEAGE_COLUMNS)
FILL_COLUMNS = ("fill_id", "client_order_id", "session", "symbol", "side", "qty", "price", "expected_price", "leg",
                "cost_usd", "slippage_bps", "slippage_usd", "realized_pnl", *LINEAGE_COLUMNS)


def equity_frame(run: BacktestRun) -> pd.DataFrame:
    rows = [{"date": r.reading.session, "equity": r.reading.equity, "cash": r.reading.cash,
             "positions_value": r.reading.positions_value, "drawdown": r.reading.drawdown, "heat": r.reading.heat,
             "halted": r.reading.halted} for r in run.sessions]
    return pd.DataFrame(rows, columns=list(EQUITY_COLUMNS))


def orders_frame(run: BacktestRun) -> pd.DataFrame:
    statuses = run.venue.ledger.orders()
    status = dict(zip(statuses["client_order_id"], statuses["status"])) if not statuses.empty else {}
    market = run.market
    rows = []
    for record in run.sessions:
        for e in record.run.executions:
            i = e.intent
            rows.append({
                "client_order_id": i.client_order_id, "trading_date": i.trading_date, "symbol": i.symbol,
                "side": i.side.value, "qty": i.qty, "order_type": i.order_type.value, "entry": i.entry, "stop": i.stop,
                "take_profit": i.take_profit, "approved": e.decision.approved, "sent": e.sent,
                "status": status.get(i.client_order_id, "error" if e.error else "rejected"),
                "reason": e.decision.reason if not e.decision.approved else (str(e.error) if e.error else ""),
                "decision_id": e.decision.decision_id, "strategy": i.strategy, "strategy_version": i.strategy_version,
                "model_name": run.model_name, "model_version": record.model_version,
                "lake_version_id": market.version_id, "lake_content_hash": market.content_hash,
                "signals_hash": record.signals_hash,
            })
    return pd.DataFrame(rows, columns=list(ORDER_COLUMNS))


def fills_frame(run: BacktestRun, orders: pd.DataFrame) -> pd.DataFrame:
    fills = [f for record in run.sessions for f in record.run.fills]
    if not fills:
        return pd.DataFrame(columns=list(FILL_COLUMNS))
    slippage = run.venue.slippage.records().set_index("fill_id")
    lineage = orders.drop_duplicates("client_order_id").set_index("client_order_id")
    rows, opens = [], {}
    for f in fills:
        cost = slippage.loc[f.fill_id] if f.fill_id in slippage.index else None
        row = {"fill_id": f.fill_id, "client_order_id": f.client_order_id, "session": f.session, "symbol": f.symbol,
               "side": f.side.value, "qty": f.qty, "price": f.price, "expected_price": f.expected_price,
               "leg": f.leg.value, "cost_usd": execution_cost(run, f, opens),
               "slippage_bps": None if cost is None else cost["slippage_bps"],
               "slippage_usd": None if cost is None else cost["slippage_usd"], "realized_pnl": None}
        source = lineage.loc[f.client_order_id] if f.client_order_id in lineage.index else None
        row.update({c: None if source is None else source[c] for c in LINEAGE_COLUMNS})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(FILL_COLUMNS))
    # the ledger's fills carry no P&L; the broker's own fill records do, one per (order, leg)
    realized = {(b.client_order_id, b.leg.value): b.realized_pnl for b in run.venue.broker.fills()}
    frame["realized_pnl"] = [realized.get(key) for key in zip(frame["client_order_id"], frame["leg"])]
    return frame


def execution_cost(run: BacktestRun, fill, opens: dict[str, pd.Series]) -> float:
    """USD a fill cost against the bar's price when it filled: the raw open for a fill at the
    session's open, else the price its leg was placed at (positive = cost). `opens` keeps each
    session's raw opens by symbol, read once for all the session's fills."""
    at_open = pd.Timestamp(fill.filled_at) == xnys().session_open(pd.Timestamp(fill.session))
    if at_open:
        if fill.session not in opens:
            bars = run.market.raw_bars(fill.session)
            opens[fill.session] = pd.Series(bars["open"].to_numpy(), index=bars["symbol"])
        reference = float(opens[fill.session][fill.symbol])
    else:
        reference = fill.expected_price
    return fill.side.sign * (fill.price - reference) * fill.qty


def halts_frame(run: BacktestRun) -> pd.DataFrame:
    rows = []
    for event in KillSwitch(run.state_dir).history():
        when = pd.Timestamp(event.get("at")).tz_convert("America/New_York").date() if event.get("at") else None
        rows.append({"date": str(when), "event": event.get("event"), "reason": event.get("reason", "")})
    return pd.DataFrame(rows, columns=list(report.HALT_COLUMNS))


def write_outputs(run: BacktestRun, out: str | Path, *, title: str, manifest: dict) -> Summary:
    """Every file of the module docstring; returns the tear sheet's summary."""
    folder = Path(out)
    equity = equity_frame(run)
    orders = orders_frame(run)
    fills = fills_frame(run, orders)
    halts = halts_frame(run)
    excesses = pd.DataFrame([dataclasses.asdict(e) for e in run.checker.excesses],
                            columns=["session", "symbol", "measure", "value", "cap"])
    for name, frame in (("equity.csv", equity), ("orders.csv", orders), ("fills.csv", fills), ("halts.csv", halts),
                        ("cap_excesses.csv", excesses)):
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        atomic_write_text(folder / name, buffer.getvalue())
    atomic_write_text(folder / "alerts.jsonl", "".join(json.dumps(a.to_dict()) + "\n" for a in run.venue.alerts))
    summary = report.write_report(folder, equity, orders, fills, halts, starting_equity=run.config.starting_cash,
                                  title=title)
    atomic_write_json(folder / "manifest.json", {**manifest, "summary": summary.as_dict(), "timings": run.timings,
                                                 "cap_excesses": len(excesses), "alerts": len(run.venue.alerts)})
    return summary
