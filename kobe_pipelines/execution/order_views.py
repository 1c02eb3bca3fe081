"""Tables of the order ledger for people: one row per order, one row per intent, one order's chain.

Pure functions over `OrderLedger.events()` (and, for intents, the audit log's approvals), so the
CLI and the UI show the same data. Money in USD, quantities in shares.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import pandas as pd

from kobe_pipelines.execution.broker import LegRole
from kobe_pipelines.orders import Side

ORDER_STATE_EVENTS = ("submitted", "ack", "refused", "unknown", "status", "cancel")
INTENT_COLUMNS = ["client_order_id", "trading_date", "strategy", "strategy_version", "symbol", "side", "qty", "entry",
                  "stop", "take_profit", "state", "filled_qty", "model", "lake_version", "first_seen", "updated_at"]


def order_rows(events: pd.DataFrame) -> pd.DataFrame:
    """One row per client order id that reached a broker: its latest state, filled shares per
    leg, and realized P&L (USD) once an exit leg filled (sign-aware: a short that covers lower
    gains)."""
    sent = events[events["event"] == "submitted"]
    rows = []
    for coid, group in events[events["client_order_id"].isin(sent["client_order_id"])].groupby("client_order_id", sort=False):
        first = group[group["event"] == "submitted"].iloc[0]
        states = group[group["event"].isin(ORDER_STATE_EVENTS)]
        last = states.iloc[-1]
        fills = group[group["event"] == "fill"]
        side = Side(first["side"])
        row = {"client_order_id": coid, "broker": first["broker"], "symbol": first["symbol"], "side": side.value,
               "qty": int(first["qty"]), "submitted_at": first["at"], "status": last["status"],
               "is_open": bool(last["is_open"]), "updated_at": group.iloc[-1]["at"]}
        realized = 0.0
        entry_avg = None
        for role in LegRole:
            legs = fills[fills["leg"] == role.value]
            qty = int(legs["qty"].sum()) if not legs.empty else 0
            avg = float((legs["qty"] * legs["price"]).sum() / qty) if qty else None
            row[f"{role.value}_qty"], row[f"{role.value}_avg"] = qty, avg
            if role is LegRole.ENTRY:
                entry_avg = avg
            elif qty and entry_avg is not None:
                realized += side.sign * (avg - entry_avg) * qty
        exited = row["stop_loss_qty"] + row["take_profit_qty"]
        row["realized_pnl"] = round(realized, 6) if exited else None
        rows.append(row)
    return pd.DataFrame(rows)


def intent_rows(events: pd.DataFrame, approvals: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per intent ever recorded (also the ones never decided, rejected, or approved and
    never sent), oldest first, with a `state` a person can act on. `approvals`: client order id
    -> decision id of the audit log's approvals (an approval the ledger missed: a crash right
    after the gate logged it)."""
    approvals = approvals or {}
    intents = events[events["event"] == "intent"]
    rows = []
    for coid, group in events[events["client_order_id"].isin(intents["client_order_id"])].groupby("client_order_id", sort=False):
        first = json.loads(group[group["event"] == "intent"].iloc[-1]["detail"] or "{}")
        lineage = first.get("lineage") or {}
        fills = group[(group["event"] == "fill") & (group["leg"] == LegRole.ENTRY.value)]
        rows.append({
            "client_order_id": coid, "trading_date": first.get("trading_date"), "strategy": first.get("strategy"),
            "strategy_version": first.get("strategy_version"), "symbol": first.get("symbol"), "side": first.get("side"),
            "qty": first.get("qty"), "entry": first.get("entry"), "stop": first.get("stop"),
            "take_profit": first.get("take_profit"), "state": _state(group, coid in approvals),
            "filled_qty": int(fills["qty"].sum()) if not fills.empty else 0,
            "model": f"{lineage['model']} v{lineage['model_version']}" if lineage.get("model") else "",
            "lake_version": lineage.get("lake_version") or "", "first_seen": group.iloc[0]["at"],
            "updated_at": group.iloc[-1]["at"],
        })
    return pd.DataFrame(rows, columns=INTENT_COLUMNS)


def _state(group: pd.DataFrame, approved_in_audit: bool) -> str:
    decisions = group[group["event"] == "decision"]
    states = group[group["event"].isin(ORDER_STATE_EVENTS)]
    if states.empty:
        if not decisions.empty and decisions.iloc[-1]["status"] == "rejected":
            return "rejected by the gate: " + _failed_checks(decisions.iloc[-1]["detail"])
        if approved_in_audit or (not decisions.empty and decisions.iloc[-1]["status"] == "approved"):
            return "approved, never sent (the same command again resumes it)"
        return "never decided (the same command again decides it)"
    last = states.iloc[-1]
    event = last["event"]
    if event == "submitted":
        return "approved, not yet at the broker (the same command again resumes it)"
    if event == "refused":
        detail = json.loads(last["detail"] or "{}")
        return f"refused by the broker: {detail.get('message', '')} (retry explicitly: --retry)"
    if event == "unknown":
        return "sent, outcome unknown (kobe orders --reconcile)"
    reason = json.loads(last["detail"] or "{}").get("reason") if event == "cancel" else None
    return f"{last['status']} at the broker" + (f" ({reason})" if reason else "")


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
