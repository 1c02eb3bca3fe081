"""Tables of the order ledger for people: one row per intent, one order's chain (one row per
sent order, with its outcome: `order_outcomes`).

Pure functions over `OrderLedger.events()` (and, for intents, the audit log's approvals), so the
CLI and the UI show the same data. Money in USD, quantities in shares.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import pandas as pd

from kobe_pipelines.execution.order_outcomes import order_outcomes

ORDER_STATE_EVENTS = ("submitted", "ack", "refused", "unknown", "status", "cancel")
OUTCOME_COLUMNS = ["status", "exit_reason", "filled_qty", "entry_fill", "exit_qty", "exit_fill", "realized_pnl",
                   "slippage_usd", "slippage_bps"]
INTENT_COLUMNS = ["client_order_id", "trading_date", "strategy", "strategy_version", "symbol", "side", "qty", "entry",
                  "stop", "take_profit", *OUTCOME_COLUMNS, "model", "lake_version", "first_seen", "updated_at"]


def intent_rows(events: pd.DataFrame, approvals: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per intent ever recorded (also the ones never decided, rejected, or approved and
    never sent), oldest first. A sent order carries its outcome, fills, realized P&L and slippage
    (`order_outcomes`); one never sent gets a `status` (rejected, approved, undecided) and, in
    `exit_reason`, what a person can do about it. `approvals`: client order id -> decision id of
    the audit log's approvals (an approval the ledger missed: a crash right after the gate logged it)."""
    approvals = approvals or {}
    intents = events[events["event"] == "intent"]
    outcomes = order_outcomes(events).set_index("client_order_id")
    rows = []
    for coid, group in events[events["client_order_id"].isin(intents["client_order_id"])].groupby("client_order_id", sort=False):
        first = json.loads(group[group["event"] == "intent"].iloc[-1]["detail"] or "{}")
        lineage = first.get("lineage") or {}
        row = {
            "client_order_id": coid, "trading_date": first.get("trading_date"), "strategy": first.get("strategy"),
            "strategy_version": first.get("strategy_version"), "symbol": first.get("symbol"), "side": first.get("side"),
            "qty": first.get("qty"), "entry": first.get("entry"), "stop": first.get("stop"),
            "take_profit": first.get("take_profit"), "filled_qty": 0,
            "model": f"{lineage['model']} v{lineage['model_version']}" if lineage.get("model") else "",
            "lake_version": lineage.get("lake_version") or "", "first_seen": group.iloc[0]["at"],
            "updated_at": group.iloc[-1]["at"],
        }
        if coid in outcomes.index:
            row.update({c: outcomes.at[coid, c] for c in OUTCOME_COLUMNS})
        else:
            row["status"], row["exit_reason"] = _unsent(group, coid in approvals)
        rows.append(row)
    return pd.DataFrame(rows, columns=INTENT_COLUMNS)


def _unsent(group: pd.DataFrame, approved_in_audit: bool) -> tuple[str, str]:
    """(status, what to do) of an intent with no submission."""
    decisions = group[group["event"] == "decision"]
    if not decisions.empty and decisions.iloc[-1]["status"] == "rejected":
        return "rejected", "rejected by the gate: " + _failed_checks(decisions.iloc[-1]["detail"])
    if approved_in_audit or (not decisions.empty and decisions.iloc[-1]["status"] == "approved"):
        return "approved", "approved, never sent (the same command again resumes it)"
    return "undecided", "never decided (the same command again decides it)"


def _failed_checks(detail: Any) -> str:
    try:
        checks = json.loads(detail or "{}").get("checks") or []
    except ValueError:
        return "?"
    return "; ".join(f"{c['name']}: {c['reason']}" for c in checks if not c.get("passed")) or "?"


def order_chain(events: pd.DataFrame, client_order_id: str) -> list[tuple[str, str]]:
    """The lineage and path of one order as (label, text) lines: strategy, model, lake version,
    signals, decision, submission, broker answers and fills."""
    mine = events[events["client_order_id"] == client_order_id]
    out: list[tuple[str, str]] = []
    intents = mine[mine["event"] == "intent"]
    if intents.empty:
        return out
    intent = json.loads(intents.iloc[-1]["detail"] or "{}")
    lineage = intent.get("lineage") or {}
    out.append(("intent", f"{intent.get('side')} {intent.get('qty')} {intent.get('symbol')} @ {intent.get('entry')} "
                          f"stop {intent.get('stop')} take-profit {intent.get('take_profit')} for {intent.get('trading_date')}"))
    out.append(("strategy", f"{intent.get('strategy')} version {intent.get('strategy_version') or '-'}"))
    if lineage:
        out.append(("model", f"{lineage.get('model') or '-'} registry version {lineage.get('model_version') or '-'}"))
        out.append(("lake", f"version {lineage.get('lake_version') or '-'} content hash {lineage.get('lake_hash') or '-'}"))
        out.append(("signals", f"{lineage.get('signal_date') or '-'} hash {lineage.get('signals_hash') or '-'} "
                               f"score {lineage.get('score')}"))
    else:
        out.append(("lineage", "none: no signal made this order"))
    for _, row in mine.iterrows():
        if row["event"] == "decision":
            out.append(("decision", f"{row['decision_id']} {row['status']} at {row['at']}"))
        elif row["event"] in ORDER_STATE_EVENTS:
            out.append((row["event"], f"{row['status'] or ''} {row['broker']} {row['broker_order_id'] or ''} at {row['at']}".strip()))
        elif row["event"] == "fill":
            out.append(("fill", f"{row['leg']} {row['side']} {row['qty']} @ {row['price']} ({row['fill_id']})"))
    return out
