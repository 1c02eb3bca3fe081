"""What became of each order sent to a broker: its outcome, exit reason, fill prices, realized
P&L and slippage, from the order ledger's events alone (pure functions; the CLI, the demo and
scripts read the same rows).

Outcome (`status`), in the words a trader uses:
- `working`: the entry is at the broker, not filled yet; `not yet sent`: approved, the
  submission was written but no broker answer is recorded (the same command resumes it);
  `unknown`: the broker's answer was lost (`kobe orders --reconcile`); `refused`: the broker
  said no; `expired`: a day entry not filled on its session; `cancelled`: the entry was
  cancelled unfilled (a split, a request);
- once the entry filled: `open` (the position is held, its exits working), `stopped out` (the
  stop-loss filled, or a protective stop placed again for it), `took profit`, `closed by exit`
  (an exit order of the strategy closed it, cancelling its legs), `delisted` (closed at its last
  close by the delisting rule), `closed` (its exit legs were cancelled without an exit fill);
- an order that only closes another one (a strategy's exit, a protective stop placed again):
  its broker status (`filled`, `new`, ...), with `exit_reason` naming the order it closes (or
  protects); its fill, P&L and slippage count on that order.

Money: prices USD per share, P&L and slippage USD. `realized_pnl` = side sign x (exit fill -
entry fill per post-split share) x exited shares, summed over the exit fills: a split between
the entry and an exit (ratio r = split_to / split_from) divides the entry price by r; cash in
lieu of fractional shares and dividends are book cash, not part of an order's P&L. Slippage is
measured against each fill's arrival price (`execution.slippage`: the session's open for a fill
at the open, else the leg's own limit or stop): `slippage_usd` sums the order's fills (entry and
exits; positive = cost), `slippage_bps` is that sum over the fills' arrival notional x 10,000.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import pandas as pd

from kobe_pipelines.execution.broker import LegRole
from kobe_pipelines.execution.slippage import slippage_cost
from kobe_pipelines.orders import Side

ORDER_COLUMNS = ["client_order_id", "broker", "trading_date", "strategy", "symbol", "side", "qty", "entry", "stop",
                 "take_profit", "status", "exit_reason", "filled_qty", "entry_fill", "exit_qty", "exit_fill",
                 "realized_pnl", "slippage_usd", "slippage_bps", "is_open", "broker_status", "submitted_at", "updated_at"]
_STATE_EVENTS = ("submitted", "ack", "refused", "unknown", "status", "cancel")
_ENTRY_OPEN = ("pending", "held", "new", "partially_filled")


@dataclass(frozen=True)
class Execution:
    """One fill counted for an order: shares, price and arrival price (USD per share)."""

    leg: str  # entry, stop_loss, take_profit, exit (another order's fill), protective_stop, delisting
    side: Side
    qty: int
    price: float
    arrival: float | None  # None: no slippage is measured (a delisting)
    session: str
    order_price: float | None = None  # the leg's limit or stop when it filled (after any split)


def order_outcomes(events: pd.DataFrame) -> pd.DataFrame:
    """One row per client order id that reached the submission step, in order of submission,
    with the columns `ORDER_COLUMNS` (see the module docstring)."""
    if events.empty:
        return pd.DataFrame(columns=ORDER_COLUMNS)
    submitted = events[events["event"] == "submitted"]
    details = {coid: _json(detail) for coid, detail in zip(submitted["client_order_id"], submitted["detail"])}
    fills = _fills(events)
    closers = _closing_orders(events, details)
    borrowed = _borrowed_exits(closers, fills, details, submitted)
    splits = _splits(events)
    delistings = _delistings(events)
    rows = []
    for coid, group in events[events["client_order_id"].isin(details)].groupby("client_order_id", sort=False):
        rows.append(_row(coid, group, details[coid], fills.get(coid, []), borrowed.get(coid, []), closers.get(coid),
                         splits, delistings))
    frame = pd.DataFrame(rows, columns=ORDER_COLUMNS)
    return frame.astype({"qty": "Int64", "filled_qty": "Int64", "exit_qty": "Int64"})


def _row(coid: str, group: pd.DataFrame, spec: dict, own: list[Execution], borrowed: list[Execution],
         closes: list[str] | None, splits: dict, delistings: dict) -> dict[str, Any]:
    submission = group[group["event"] == "submitted"].iloc[-1]
    side = Side(submission["side"])
    states = group[group["event"].isin(_STATE_EVENTS)]
    last = states.iloc[-1]
    entries = [f for f in own if f.leg == LegRole.ENTRY.value]
    exits = [f for f in own if f.leg != LegRole.ENTRY.value] + borrowed
    filled = sum(f.qty for f in entries)
    row: dict[str, Any] = {
        "client_order_id": coid, "broker": submission["broker"], "trading_date": spec.get("trading_date"),
        "strategy": spec.get("strategy"), "symbol": submission["symbol"], "side": side.value,
        "qty": int(submission["qty"]),
        "entry": spec.get("limit_price"), "stop": spec.get("stop"), "take_profit": spec.get("take_profit"),
        "filled_qty": filled, "entry_fill": _average(entries), "exit_qty": sum(f.qty for f in exits) or None,
        "exit_fill": _average(exits), "realized_pnl": None, "is_open": bool(last["is_open"]),
        "broker_status": last["status"], "submitted_at": submission["at"], "updated_at": group.iloc[-1]["at"],
    }
    if closes is not None:
        row["status"] = last["status"] if last["event"] != "submitted" else "not yet sent"
        row["exit_reason"] = f"{'protects' if spec.get('protects') else 'closes'} {', '.join(closes)}"
        row.update(slippage_usd=None, slippage_bps=None)  # its fills count on the orders it closes
        return row
    entry_session = entries[0].session if entries else ""
    if filled and not exits and not row["is_open"]:
        gone = delistings.get(submission["symbol"])
        if gone is not None and gone[0] > entry_session:
            ratio = _ratio(splits.get(submission["symbol"], []), entry_session, gone[0])
            exits = [Execution("delisting", side.opposite, int(filled * ratio), gone[1], None, gone[0])]
            row.update(exit_qty=exits[0].qty, exit_fill=gone[1])
    row["status"], row["exit_reason"] = _outcome(last, group, spec, filled, exits, row["is_open"])
    if filled and exits:
        entry_price = row["entry_fill"]
        symbol_splits = splits.get(submission["symbol"], [])
        pnl = sum(side.sign * (f.price - entry_price / float(_ratio(symbol_splits, entry_session, f.session))) * f.qty
                  for f in exits)
        row["realized_pnl"] = round(pnl, 6)
    row.update(_slippage(entries + exits))
    return row


def _outcome(last: pd.Series, group: pd.DataFrame, spec: dict, filled: int, exits: list[Execution],
             is_open: bool) -> tuple[str, str]:
    """(status, exit reason) of an order that is not a closing order."""
    event, status = last["event"], last["status"]
    if event == "submitted":
        return "not yet sent", "approved; the same command again resumes it"
    if event == "refused":
        return "refused", _json(last["detail"]).get("message", "")
    if event == "unknown":
        return "unknown", "the broker's answer was lost: reconcile the ledger with the broker (--reconcile)"
    if not filled:
        if status == "expired":
            return "expired", "day order: not filled on its session"
        if status in _ENTRY_OPEN:
            return "working", ""
        reason = _cancel_reason(group)
        return ("rejected", "rejected by the broker") if status == "rejected" else ("cancelled", reason or "entry cancelled")
    if not exits:
        if is_open:
            return "open", "position held; its exit orders are working"
        return "closed", _cancel_reason(group) or "exit legs cancelled without a fill"
    exit_leg = exits[-1]
    how = f"{exit_leg.qty} sh at {_price(exit_leg.price)}"
    placed = exit_leg.order_price
    if exit_leg.leg == LegRole.STOP_LOSS.value:
        stop = placed if placed is not None else spec.get("stop")
        reason = f"stop-loss {_price(stop)} hit: {how}"
        if exit_leg.arrival is not None and stop is not None and abs(exit_leg.arrival - float(stop)) > 1e-9:
            reason += f", the session opened through the stop at {_price(exit_leg.arrival)}"
        status = "stopped out"
    elif exit_leg.leg == "protective_stop":
        status, reason = "stopped out", f"protective stop placed again hit: {how}"
    elif exit_leg.leg == LegRole.TAKE_PROFIT.value:
        target = placed if placed is not None else spec.get("take_profit")
        status, reason = "took profit", f"take-profit {_price(target)} reached: {how}"
    elif exit_leg.leg == "delisting":
        status, reason = "delisted", f"no bar for the delisting rule's sessions: closed at the last close, {how}"
    else:
        status, reason = "closed by exit", f"the strategy's exit {_cancel_reason(group).removeprefix('exit ')}: {how}"
    if is_open:
        status, reason = "open", f"partly exited ({status}): {reason}"
    return status, reason


def _fills(events: pd.DataFrame) -> dict[str, list[Execution]]:
    out: dict[str, list[Execution]] = defaultdict(list)
    for row in events[events["event"] == "fill"].itertuples(index=False):
        detail = _json(row.detail)
        arrival = detail.get("expected_price")
        placed = detail.get("order_price")
        out[row.client_order_id].append(Execution(row.leg, Side(row.side), int(row.qty), float(row.price),
                                                  None if arrival is None else float(arrival), detail.get("session", ""),
                                                  None if placed is None else float(placed)))
    return out


def _closing_orders(events: pd.DataFrame, details: dict[str, dict]) -> dict[str, list[str]]:
    """Client order id of an order that only closes others -> the orders it closes."""
    closed_by: dict[str, list[str]] = defaultdict(list)
    for coid, detail in zip(events.loc[events["event"] == "cancel", "client_order_id"],
                            events.loc[events["event"] == "cancel", "detail"]):
        reason = str(_json(detail).get("reason") or "")
        if reason.startswith("exit ") and coid not in closed_by[reason[5:]]:
            closed_by[reason[5:]].append(coid)
    out = dict(closed_by)
    out.update({coid: [str(d["protects"])] for coid, d in details.items() if d.get("protects")})
    return out


def _borrowed_exits(closers: dict[str, list[str]], fills: dict[str, list[Execution]], details: dict[str, dict],
                    submitted: pd.DataFrame) -> dict[str, list[Execution]]:
    """The fills of closing orders, handed to the orders they close: in order of submission, each
    takes up to the shares it has filled and not yet exited."""
    order = {coid: i for i, coid in enumerate(submitted["client_order_id"])}
    out: dict[str, list[Execution]] = defaultdict(list)
    for closer, targets in closers.items():
        protective = bool(details.get(closer, {}).get("protects"))
        pool = [f for f in fills.get(closer, []) if f.leg == LegRole.ENTRY.value]
        for target in sorted(targets, key=lambda c: order.get(c, 0)):
            held = sum(f.qty for f in fills.get(target, []) if f.leg == LegRole.ENTRY.value)
            held -= sum(f.qty for f in fills.get(target, []) if f.leg != LegRole.ENTRY.value)
            while pool and held > 0:
                f = pool[0]
                take = min(f.qty, held)
                out[target].append(Execution("protective_stop" if protective else "exit", f.side, take, f.price,
                                             f.arrival, f.session))
                held -= take
                pool[0] = Execution(f.leg, f.side, f.qty - take, f.price, f.arrival, f.session)
                if pool[0].qty == 0:
                    pool.pop(0)
    return out


def _splits(events: pd.DataFrame) -> dict[str, list[tuple[str, Fraction]]]:
    out: dict[str, list[tuple[str, Fraction]]] = defaultdict(list)
    for row in events[events["event"] == "split"].itertuples(index=False):
        detail = _json(row.detail).get("detail") or {}
        out[row.symbol].append((row.status, Fraction(detail["split_to"]) / Fraction(detail["split_from"])))
    return out


def _ratio(splits: list[tuple[str, Fraction]], after: str, upto: str) -> Fraction:
    """Shares after / before of the splits effective after session `after` up to `upto` (actions
    reach the book before the session's fills)."""
    ratio = Fraction(1)
    for session, r in splits:
        if after < session <= upto:
            ratio *= r
    return ratio


def _delistings(events: pd.DataFrame) -> dict[str, tuple[str, float]]:
    rows = events[(events["event"] == "delisting") & events["price"].notna()]
    return {row.symbol: (row.status, float(row.price)) for row in rows.itertuples(index=False)}


def _slippage(fills: list[Execution]) -> dict[str, float | None]:
    measured = [f for f in fills if f.arrival is not None and f.qty]
    if not measured:
        return {"slippage_usd": None, "slippage_bps": None}
    usd = sum(slippage_cost(f.side.sign, f.price, f.arrival, f.qty)[1] for f in measured)
    notional = sum(f.arrival * f.qty for f in measured)
    return {"slippage_usd": round(usd, 6), "slippage_bps": usd / notional * 10_000}


def _average(fills: list[Execution]) -> float | None:
    qty = sum(f.qty for f in fills)
    return round(sum(f.price * f.qty for f in fills) / qty, 6) if qty else None


def _cancel_reason(group: pd.DataFrame) -> str:
    cancels = group[group["event"] == "cancel"]
    return str(_json(cancels.iloc[-1]["detail"]).get("reason") or "") if not cancels.empty else ""


def _price(value: Any) -> str:
    if value is None:
        return "-"
    number = float(value)
    return f"{number:,.2f}" if abs(number * 100 - round(number * 100)) < 1e-6 else f"{number:,.4f}"


def _json(text: Any) -> dict:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
