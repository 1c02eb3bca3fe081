"""The order ledger: every intent, gate decision, submission, broker answer, fill and cancel,
in `state/order_ledger.sqlite`, append-only, with UTC times and ids.

Event kinds (column `event`): intent, decision, submitted (written BEFORE the order is sent,
and only for an approved decision: a crash after it leaves a pending order for
reconciliation, never an order the ledger does not know), ack, refused (the broker said no),
unknown (the submission's outcome was lost), status (an order's state changed at the broker),
fill, cancel, reconcile (a drift report).

Fills enter through `sync_order`/`sync`: the broker's order record is the one source of fills
for every broker. Each leg's cumulative filled quantity is compared with what the ledger
holds, and only the new part is recorded (its price backed out of the average), so syncing
twice, or a partial fill growing, never counts a share twice.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kobe_pipelines import paths
from kobe_pipelines.execution.broker import Broker, Fill, LegRole, OrderAck, OrderRecord, OrderSpec, OrderStatus
from kobe_pipelines.execution.sqlite_store import connect
from kobe_pipelines.market_calendar import EXCHANGE_TZ
from kobe_pipelines.risk.types import Decision
from kobe_pipelines.orders import OrderIntent, Side

LEDGER_NAME = "order_ledger.sqlite"
COLUMNS = ("seq", "at", "event", "client_order_id", "broker", "decision_id", "broker_order_id", "symbol", "side",
           "qty", "price", "leg", "status", "is_open", "fill_id", "detail")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, event TEXT NOT NULL, client_order_id TEXT,
    broker TEXT, decision_id TEXT, broker_order_id TEXT, symbol TEXT, side TEXT, qty INTEGER, price REAL,
    leg TEXT, status TEXT, is_open INTEGER, fill_id TEXT UNIQUE, detail TEXT
);
CREATE INDEX IF NOT EXISTS events_order ON events (client_order_id);
"""
_ORDER_STATE_EVENTS = ("submitted", "ack", "refused", "unknown", "status", "cancel")


@dataclass(frozen=True)
class DriftReport:
    """Differences between the ledger and a broker. Empty tuples everywhere: no drift."""

    broker: str
    unknown_orders: tuple[str, ...] = ()  # open at the broker, never seen by the ledger
    missing_orders: tuple[str, ...] = ()  # open in the ledger, unknown to the broker
    stale_orders: tuple[tuple[str, str], ...] = ()  # open in the ledger, closed at the broker: (id, broker status)
    position_diffs: tuple[tuple[str, int, int], ...] = ()  # (symbol, ledger qty, broker qty), signed shares
    checked_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    @property
    def ok(self) -> bool:
        return not (self.unknown_orders or self.missing_orders or self.stale_orders or self.position_diffs)

    def lines(self) -> list[str]:
        if self.ok:
            return [f"{self.broker}: ledger and broker agree"]
        out = [f"{self.broker}: order {c} is open at the broker but not in the ledger" for c in self.unknown_orders]
        out += [f"{self.broker}: order {c} is open in the ledger but unknown to the broker" for c in self.missing_orders]
        out += [f"{self.broker}: order {c} is open in the ledger but {s} at the broker (run a sync)" for c, s in self.stale_orders]
        out += [f"{self.broker}: {s} position is {lq:+d} sh in the ledger, {bq:+d} sh at the broker"
                for s, lq, bq in self.position_diffs]
        return out


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


class OrderLedger:
    def __init__(self, state_dir: str | os.PathLike[str] | None = None):
        self.path = paths.state_dir(state_dir) / LEDGER_NAME
        with self._db(write=False):  # a corrupt file fails here, at start
            pass

    def _db(self, write: bool = True):
        return connect(self.path, _SCHEMA, "events", COLUMNS, write=write)

    def _append(self, con: Any, event: str, **values: Any) -> None:
        detail = values.pop("detail", None)
        row = {c: None for c in COLUMNS[2:]}
        row.update(event=event, **values)
        row["detail"] = None if detail is None else json.dumps(detail, sort_keys=True, default=str)
        con.execute(f"INSERT INTO events (at, {', '.join(row)}) VALUES (?, {', '.join('?' * len(row))})",
                    (_now(), *row.values()))

    # -- the order path ----------------------------------------------------------------------
    def record_intent(self, intent: OrderIntent, broker: str) -> None:
        with self._db() as con:
            self._append(con, "intent", client_order_id=str(intent.client_order_id), broker=broker,
                         symbol=str(intent.symbol), side=str(getattr(intent.side, "value", intent.side)),
                         qty=intent.qty if isinstance(intent.qty, int) else None,
                         price=intent.entry if isinstance(intent.entry, (int, float)) else None, detail=intent.to_dict())

    def record_decision(self, decision: Decision, broker: str) -> None:
        intent = decision.intent
        with self._db() as con:
            self._append(con, "decision", client_order_id=str(intent.client_order_id), broker=broker,
                         decision_id=decision.decision_id, symbol=str(intent.symbol),
                         status="approved" if decision.approved else "rejected", detail=decision.to_dict())

    def record_submission(self, decision: Decision, broker: str) -> OrderSpec:
        """Write-ahead record that the approved order is being sent; refuses (raises
        `UnapprovedOrderError`) anything but an approved gate decision, before writing."""
        spec = OrderSpec.from_decision(decision)
        with self._db() as con:
            self._append(con, "submitted", client_order_id=spec.client_order_id, broker=broker,
                         decision_id=decision.decision_id, symbol=spec.symbol, side=spec.side.value, qty=spec.qty,
                         price=float(spec.expected_price), status=OrderStatus.PENDING.value, is_open=1,
                         detail={"order_class": spec.order_class.value, "limit_price": _num(spec.limit_price),
                                 "expected_price": _num(spec.expected_price), "stop": _num(spec.stop),
                                 "take_profit": _num(spec.take_profit), "trading_date": spec.trading_date})
        return spec

    def record_ack(self, ack: OrderAck) -> None:
        with self._db() as con:
            self._append(con, "ack", client_order_id=ack.client_order_id, broker=ack.broker,
                         broker_order_id=ack.broker_order_id, symbol=ack.record.symbol, side=ack.record.side.value,
                         qty=ack.record.qty, status=ack.status.value, is_open=int(ack.record.is_open),
                         detail={"created": ack.created, "reconciled": ack.reconciled, "order_class": ack.order_class.value})

    def record_broker_error(self, client_order_id: str, broker: str, error: Exception, outcome_unknown: bool) -> None:
        """The broker refused the order (closed), or its outcome is unknown (stays open until reconciled)."""
        with self._db() as con:
            self._append(con, "unknown" if outcome_unknown else "refused", client_order_id=client_order_id, broker=broker,
                         status=OrderStatus.PENDING.value if outcome_unknown else OrderStatus.REJECTED.value,
                         is_open=int(outcome_unknown), detail={"error": type(error).__name__, "message": str(error)})

    def record_cancel(self, record: OrderRecord, broker: str) -> None:
        with self._db() as con:
            self._append(con, "cancel", client_order_id=record.client_order_id, broker=broker,
                         broker_order_id=record.broker_order_id, symbol=record.symbol, status=record.status.value,
                         is_open=int(record.is_open))

    # -- fills and status from the broker --------------------------------------------------
    def sync_order(self, record: OrderRecord, broker: str) -> list[Fill]:
        """Record what changed in `record` since the ledger last saw it; return the new fills."""
        new: list[Fill] = []
        with self._db() as con:
            expected = self._expected_prices(con, record.client_order_id)
            for leg in record.legs:
                done = con.execute("SELECT coalesce(sum(qty), 0), coalesce(sum(qty * price), 0) FROM events "
                                   "WHERE event = 'fill' AND client_order_id = ? AND leg = ?",
                                   (record.client_order_id, leg.role.value)).fetchone()
                delta = leg.filled_qty - int(done[0])
                if delta <= 0 or leg.filled_avg_price is None:
                    continue
                price = round((leg.filled_avg_price * leg.filled_qty - float(done[1])) / delta, 6)
                when = leg.filled_at or dt.datetime.now(dt.timezone.utc)
                fill = Fill(f"{record.client_order_id}:{leg.role.value}:{leg.filled_qty}", record.client_order_id, leg.role,
                            record.symbol, leg.side, delta, price,
                            leg.price if leg.price is not None else expected.get(leg.role.value, price), when,
                            pd.Timestamp(when).tz_convert(EXCHANGE_TZ).date().isoformat(), broker)
                self._append(con, "fill", client_order_id=fill.client_order_id, broker=broker,
                             broker_order_id=leg.broker_order_id or record.broker_order_id, symbol=fill.symbol,
                             side=fill.side.value, qty=fill.qty, price=fill.price, leg=leg.role.value,
                             fill_id=fill.fill_id, detail={"expected_price": fill.expected_price, "filled_at": when,
                                                           "session": fill.session})
                new.append(fill)
            last = con.execute("SELECT status, is_open FROM events WHERE client_order_id = ? AND event IN "
                               f"({', '.join('?' * len(_ORDER_STATE_EVENTS))}) ORDER BY seq DESC LIMIT 1",
                               (record.client_order_id, *_ORDER_STATE_EVENTS)).fetchone()
            state = (record.status.value, int(record.is_open))
            if last is None or tuple(last) != state or new:
                self._append(con, "status", client_order_id=record.client_order_id, broker=broker,
                             broker_order_id=record.broker_order_id, symbol=record.symbol, status=state[0], is_open=state[1],
                             detail={leg.role.value: leg.status.value for leg in record.legs})
        return new

    def sync(self, broker: Broker) -> list[Fill]:
        """`sync_order` for every order the ledger holds as open at `broker`; the new fills."""
        new: list[Fill] = []
        for coid in sorted(self.open_order_ids(broker.name)):
            record = broker.get_order(coid)
            if record is not None:
                new += self.sync_order(record, broker.name)
        return new

    def _expected_prices(self, con: Any, client_order_id: str) -> dict[str, float]:
        row = con.execute("SELECT detail FROM events WHERE event = 'submitted' AND client_order_id = ? "
                          "ORDER BY seq DESC LIMIT 1", (client_order_id,)).fetchone()
        if row is None:
            return {}
        detail = json.loads(row[0])
        return {LegRole.ENTRY.value: detail["expected_price"], LegRole.STOP_LOSS.value: detail["stop"],
                LegRole.TAKE_PROFIT.value: detail["take_profit"]}

    # -- reading ---------------------------------------------------------------------------
    def events(self, client_order_id: str | None = None) -> pd.DataFrame:
        sql = f"SELECT {', '.join(COLUMNS)} FROM events"
        params: tuple[Any, ...] = ()
        if client_order_id is not None:
            sql, params = sql + " WHERE client_order_id = ?", (client_order_id,)
        with self._db(write=False) as con:
            rows = con.execute(sql + " ORDER BY seq", params).fetchall()
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def orders(self) -> pd.DataFrame:
        """One row per client order id that reached a broker: its latest state, filled shares
        per leg, and realized P&L (USD) once an exit leg filled (sign-aware: a short that
        covers lower gains)."""
        events = self.events()
        sent = events[events["event"] == "submitted"]
        rows = []
        for coid, group in events[events["client_order_id"].isin(sent["client_order_id"])].groupby("client_order_id", sort=False):
            first = group[group["event"] == "submitted"].iloc[0]
            states = group[group["event"].isin(_ORDER_STATE_EVENTS)]
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

    def open_order_ids(self, broker: str) -> set[str]:
        with self._db(write=False) as con:
            rows = con.execute(
                "SELECT client_order_id, is_open FROM events e WHERE broker = ? AND event IN "
                f"({', '.join('?' * len(_ORDER_STATE_EVENTS))}) AND seq = (SELECT max(seq) FROM events WHERE "
                "client_order_id = e.client_order_id AND event IN "
                f"({', '.join('?' * len(_ORDER_STATE_EVENTS))}))",
                (broker, *_ORDER_STATE_EVENTS, *_ORDER_STATE_EVENTS)).fetchall()
        return {coid for coid, is_open in rows if is_open}

    def known_order_ids(self, broker: str) -> set[str]:
        with self._db(write=False) as con:
            rows = con.execute("SELECT DISTINCT client_order_id FROM events WHERE broker = ? AND event = 'submitted'",
                               (broker,)).fetchall()
        return {r[0] for r in rows}

    def positions(self, broker: str) -> dict[str, int]:
        """Signed shares per symbol from the fills recorded for `broker`."""
        with self._db(write=False) as con:
            rows = con.execute("SELECT symbol, sum(CASE side WHEN 'buy' THEN qty ELSE -qty END) FROM events "
                               "WHERE event = 'fill' AND broker = ? GROUP BY symbol", (broker,)).fetchall()
        return {symbol: int(qty) for symbol, qty in rows if qty}

    # -- reconciliation --------------------------------------------------------------------
    def reconcile(self, broker: Broker) -> DriftReport:
        """Compare the ledger with the broker's open orders and positions; record and return
        the drift (nothing is changed at the broker or in the ledger's order states)."""
        at_broker = {r.client_order_id: r for r in broker.open_orders()}
        known = self.known_order_ids(broker.name)
        open_here = self.open_order_ids(broker.name)
        missing, stale = [], []
        for coid in sorted(open_here - set(at_broker)):
            record = broker.get_order(coid)
            if record is None:
                missing.append(coid)
            elif not record.is_open:
                stale.append((coid, record.status.value))
        ledger_pos = self.positions(broker.name)
        broker_pos = {s: p.qty for s, p in broker.positions().items() if p.qty}
        diffs = tuple((s, ledger_pos.get(s, 0), broker_pos.get(s, 0)) for s in sorted(set(ledger_pos) | set(broker_pos))
                      if ledger_pos.get(s, 0) != broker_pos.get(s, 0))
        report = DriftReport(broker.name, tuple(sorted(set(at_broker) - known)), tuple(missing), tuple(stale), diffs)
        with self._db() as con:
            self._append(con, "reconcile", broker=broker.name, status="ok" if report.ok else "drift",
                         detail={"lines": report.lines()})
        return report


def _num(value: Any) -> float | None:
    return None if value is None else float(value)

