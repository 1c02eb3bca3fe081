"""The order ledger: every intent, gate decision, submission, broker answer, fill and cancel,
in `state/order_ledger.sqlite`, append-only, with UTC times and ids.

Event kinds (column `event`): intent (written before the gate decides), decision, submitted
(written BEFORE the order is sent, and only for an approved decision: a crash after it leaves
an approval the next run of the same command resumes, never an order the ledger does not
know), ack, refused (the broker said no), unknown (the submission's outcome was lost), status
(an order's state changed at the broker), fill, cancel (with its reason), exit (an exit about to
cancel a position's protective orders: written before it cancels them), split, dividend,
delisting (book events: corporate actions and delistings, `fill_id` = the event id, so each is
recorded once), reconcile (a drift report).

Every intent, decision and submission carries the order's lineage (strategy and version, model
and registry version, lake version and content hash, signals hash) in `detail`.

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
from kobe_pipelines.execution.broker import Broker, Fill, LegRecord, LegRole, OrderAck, OrderRecord, OrderSpec, OrderStatus
from kobe_pipelines.execution.corporate_actions import BookEvent
from kobe_pipelines.execution.order_states import LatestOrderStates
from kobe_pipelines.execution.sqlite_store import connect
from kobe_pipelines.market_calendar import EXCHANGE_TZ
from kobe_pipelines.orders import OrderIntent, Side
from kobe_pipelines.risk.types import Decision

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
BOOK_EVENTS = ("split", "dividend", "delisting")
SENT_STATES = ("ack", "status", "cancel")  # the broker has (or had) the order


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
        out += [f"{self.broker}: order {c} was approved but never reached the broker (the same command, or the next "
                "trading run, resumes it)" for c in self.missing_orders]
        out += [f"{self.broker}: order {c} is open in the ledger but {s} at the broker (run a sync)" for c, s in self.stale_orders]
        out += [f"{self.broker}: {s} position is {lq:+d} sh in the ledger, {bq:+d} sh at the broker"
                for s, lq, bq in self.position_diffs]
        return out


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


class OrderLedger:
    def __init__(self, state_dir: str | os.PathLike[str] | None = None, durable: bool = True):
        """`durable=False`: commits do not wait for the disk (`sqlite_store`; backtests only)."""
        self.path = paths.state_dir(state_dir) / LEDGER_NAME
        self.durable = durable
        self._states = LatestOrderStates(_ORDER_STATE_EVENTS)
        with self._db(write=False):  # a corrupt file fails here, at start
            pass

    def _db(self, write: bool = True):
        return connect(self.path, _SCHEMA, "events", COLUMNS, write=write, durable=self.durable)

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

    def record_submission(self, decision: Decision, broker: str, purpose: dict[str, Any] | None = None) -> OrderSpec:
        """Write-ahead record that the approved order is being sent; refuses (raises
        `UnapprovedOrderError`) anything but an approved gate decision, before writing.
        `purpose`: extra detail, e.g. {"protects": <the bracket a replacement stop protects>}."""
        spec = OrderSpec.from_decision(decision)
        with self._db() as con:
            self._append(con, "submitted", client_order_id=spec.client_order_id, broker=broker,
                         decision_id=decision.decision_id, symbol=spec.symbol, side=spec.side.value, qty=spec.qty,
                         price=float(spec.expected_price), status=OrderStatus.PENDING.value, is_open=1,
                         detail={"order_class": spec.order_class.value, "order_type": spec.order_type.value,
                                 "limit_price": _num(spec.limit_price), "expected_price": _num(spec.expected_price),
                                 "stop": _num(spec.stop), "take_profit": _num(spec.take_profit),
                                 "trading_date": spec.trading_date, "strategy": spec.strategy,
                                 "strategy_version": decision.intent.strategy_version,
                                 "lineage": spec.lineage.to_dict() if spec.lineage is not None else None,
                                 **(purpose or {})})
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

    def record_cancel(self, record: OrderRecord, broker: str, reason: str = "") -> None:
        with self._db() as con:
            self._append(con, "cancel", client_order_id=record.client_order_id, broker=broker,
                         broker_order_id=record.broker_order_id, symbol=record.symbol, status=record.status.value,
                         is_open=int(record.is_open), detail={"reason": reason} if reason else None)

    def record_exit(self, intent: OrderIntent, broker: str, cancelling: list[str]) -> None:
        """An exit is about to cancel the protective orders `cancelling` of its position (written
        first: a crash after the cancels leaves a state the next run completes)."""
        with self._db() as con:
            self._append(con, "exit", client_order_id=str(intent.client_order_id), broker=broker,
                         symbol=str(intent.symbol), side=str(getattr(intent.side, "value", intent.side)),
                         qty=intent.qty if isinstance(intent.qty, int) else None,
                         detail={"cancelling": cancelling})

    def record_book_events(self, events: list[BookEvent], broker: str) -> list[BookEvent]:
        """Record corporate actions and delistings applied to the book, each once (by its id);
        returns the ones that were new. The position moves by qty_after - qty_before."""
        new = []
        with self._db() as con:
            for event in events:
                if con.execute("SELECT 1 FROM events WHERE fill_id = ?", (event.event_id,)).fetchone():
                    continue
                delta = event.qty_after - event.qty_before
                self._append(con, event.kind, broker=broker, symbol=event.symbol,
                             side=(Side.BUY if delta > 0 else Side.SELL).value if delta else None, qty=abs(delta),
                             price=float(event.price) if event.price is not None else None, fill_id=event.event_id,
                             status=event.session, detail=event.to_dict())
                new.append(event)
        return new

    def book_events(self, broker: str) -> list[BookEvent]:
        with self._db(write=False) as con:
            rows = con.execute(f"SELECT detail FROM events WHERE broker = ? AND event IN ({', '.join('?' * len(BOOK_EVENTS))}) "
                               "ORDER BY seq", (broker, *BOOK_EVENTS)).fetchall()
        return [BookEvent.from_dict(json.loads(r[0])) for r in rows]

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
                            arrival_price(leg, expected.get(leg.role.value, price)), when,
                            pd.Timestamp(when).tz_convert(EXCHANGE_TZ).date().isoformat(), broker)
                self._append(con, "fill", client_order_id=fill.client_order_id, broker=broker,
                             broker_order_id=leg.broker_order_id or record.broker_order_id, symbol=fill.symbol,
                             side=fill.side.value, qty=fill.qty, price=fill.price, leg=leg.role.value,
                             fill_id=fill.fill_id, detail={"expected_price": fill.expected_price, "order_price": leg.price,
                                                           "filled_at": when, "session": fill.session})
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
        """One row per client order id sent to a broker, with its outcome, fills, realized P&L
        and slippage (`order_outcomes.order_outcomes`)."""
        from kobe_pipelines.execution.order_outcomes import order_outcomes

        return order_outcomes(self.events())

    def intents(self, approvals: "dict[str, str] | None" = None) -> pd.DataFrame:
        """One row per intent ever recorded, with its state (`order_views.intent_rows`)."""
        from kobe_pipelines.execution.order_views import intent_rows

        return intent_rows(self.events(), approvals)

    def open_order_ids(self, broker: str) -> set[str]:
        """Orders whose latest order-state event at `broker` says open."""
        return self._latest_states().open_ids(broker)

    def _latest_states(self) -> LatestOrderStates:
        """The latest order-state event of every order, brought up to the ledger's last row."""
        with self._db(write=False) as con:
            self._states.refresh(con, self.path)
        return self._states

    def known_order_ids(self, broker: str) -> set[str]:
        with self._db(write=False) as con:
            rows = con.execute("SELECT DISTINCT client_order_id FROM events WHERE broker = ? AND event = 'submitted'",
                               (broker,)).fetchall()
        return {r[0] for r in rows}

    def positions(self, broker: str) -> dict[str, int]:
        """Signed shares per symbol from the fills and book events (splits, delistings) recorded for `broker`."""
        with self._db(write=False) as con:
            rows = con.execute("SELECT symbol, sum(CASE side WHEN 'buy' THEN qty WHEN 'sell' THEN -qty ELSE 0 END) "
                               "FROM events WHERE event IN ('fill', 'split', 'delisting') AND broker = ? GROUP BY symbol",
                               (broker,)).fetchall()
        return {symbol: int(qty) for symbol, qty in rows if qty}

    def fills(self, broker: str, symbols: "set[str] | None" = None) -> list[tuple[str, str, int, str]]:
        """The fills recorded for `broker` (of `symbols` only, when given): (client order id, leg,
        shares, session), in order."""
        where, params = "", ()
        if symbols is not None:
            where, params = f" AND symbol IN ({', '.join('?' * len(symbols))})", tuple(sorted(symbols))
        with self._db(write=False) as con:
            rows = con.execute("SELECT client_order_id, leg, qty, json_extract(detail, '$.session') FROM events "
                               f"WHERE event = 'fill' AND broker = ?{where} ORDER BY seq", (broker, *params)).fetchall()
        return [(coid, leg, int(qty), session or "") for coid, leg, qty, session in rows]

    def protective_orders(self, broker: str) -> dict[str, str]:
        """Client order id -> the bracket it protects, for every stop order placed to protect one."""
        with self._db(write=False) as con:
            rows = con.execute("SELECT client_order_id, json_extract(detail, '$.protects') FROM events WHERE "
                               "event = 'submitted' AND broker = ? AND json_extract(detail, '$.protects') IS NOT NULL",
                               (broker,)).fetchall()
        return dict(rows)

    def position_before(self, broker: str, symbol: str, session: str) -> int:
        """Signed shares of `symbol` at `broker` before `session`: fills of earlier sessions and
        book events effective before it."""
        with self._db(write=False) as con:
            row = con.execute(
                "SELECT sum(CASE side WHEN 'buy' THEN qty WHEN 'sell' THEN -qty ELSE 0 END) FROM events "
                "WHERE broker = ? AND symbol = ? AND ((event = 'fill' AND json_extract(detail, '$.session') < ?) "
                "OR (event IN ('split', 'delisting') AND status < ?))", (broker, symbol, session, session)).fetchone()
        return int(row[0] or 0)

    def order_state(self, client_order_id: str) -> str | None:
        """The latest order-state event of `client_order_id` (submitted, ack, refused, unknown,
        status, cancel), or None when it never reached the submission step."""
        with self._db(write=False) as con:
            row = con.execute(f"SELECT event FROM events WHERE client_order_id = ? AND event IN "
                              f"({', '.join('?' * len(_ORDER_STATE_EVENTS))}) ORDER BY seq DESC LIMIT 1",
                              (client_order_id, *_ORDER_STATE_EVENTS)).fetchone()
        return row[0] if row else None

    def submissions(self, broker: str, client_order_ids: "set[str] | None" = None) -> dict[str, dict[str, Any]]:
        """The write-ahead submission of each order sent to `broker` (the latest per id): side,
        qty, symbol and its detail (prices, trading date, lineage, purpose)."""
        sql = "SELECT client_order_id, symbol, side, qty, detail FROM events WHERE event = 'submitted' AND broker = ?"
        params: tuple = (broker,)
        if client_order_ids is not None:
            if not client_order_ids:
                return {}
            sql += f" AND client_order_id IN ({', '.join('?' * len(client_order_ids))})"
            params += tuple(sorted(client_order_ids))
        with self._db(write=False) as con:
            rows = con.execute(sql + " ORDER BY seq", params).fetchall()
        return {coid: {"symbol": symbol, "side": side, "qty": qty, **json.loads(detail)}
                for coid, symbol, side, qty, detail in rows}

    def unsent_approvals(self, broker: str) -> dict[str, dict[str, Any]]:
        """Submissions to `broker` with no answer yet (a crash or another process between the
        write-ahead record and the broker): they count as orders not filled yet."""
        waiting = self._latest_states().submitted_ids(broker)
        return self.submissions(broker, waiting)

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


def arrival_price(leg: LegRecord, decided: float) -> float:
    """The slippage reference of a leg's fill: the arrival price the broker reports, else the
    leg's own limit or stop, else (a market entry) the entry price the gate decided on."""
    if leg.arrival_price is not None:
        return leg.arrival_price
    return leg.price if leg.price is not None else decided


def _num(value: Any) -> float | None:
    return None if value is None else float(value)

