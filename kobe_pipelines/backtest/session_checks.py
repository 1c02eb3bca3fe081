"""The invariants of `invariants`, run against the venue at every session's close.

`SessionChecker.start()` notes the book before the paper broker replays the session;
`SessionChecker.close(session, result, raw_bars, actions)` checks, in this order: the decided
orders, the independent replay (the session's corporate actions first, then its fills, then its
raw closes and delistings), split continuity, the account identity, no sign change through an
exit, live stops; then records cap excesses and returns the session's `CloseReading` (equity,
cash, positions value, heat) for `equity.csv`. The actions are the ones the paper broker is
given (`execution.corporate_actions.actions_from_tables`: one reader of the lake's tables); what
they do to the book is replayed here independently.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kobe_pipelines.backtest import invariants as inv
from kobe_pipelines.backtest.invariants import CapExcess, IndependentBook, SplitMove
from kobe_pipelines.backtest.venue import BacktestVenue
from kobe_pipelines.execution.broker import LegRole
from kobe_pipelines.execution.corporate_actions import DEFAULT_DELISTED_AFTER, CorporateAction
from kobe_pipelines.risk.heat import portfolio_heat
from kobe_pipelines.risk.types import Book, Position
from kobe_pipelines.trading.cycle import TradingRunResult

EXIT_LEGS = (LegRole.STOP_LOSS, LegRole.TAKE_PROFIT)


@dataclass(frozen=True)
class CloseReading:
    session: str
    equity: float
    cash: float
    positions_value: float
    heat: float
    drawdown: float
    halted: bool


class AuditTail:
    """Approved decision ids from the audit log, read incrementally (only the lines added since)."""

    def __init__(self, path: Path):
        self.path = path
        self._offset = 0
        self.approved: set[str] = set()

    def read(self) -> set[str]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return self.approved
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            record = json.loads(line)
            if record.get("approved") is True:
                self.approved.add(record["decision_id"])
        return self.approved


class LedgerTail:
    """The ledger's intent, decision and submission rows (seq, event, client_order_id, symbol,
    status, decision_id), read from its SQLite file incrementally (only rows after the last seen),
    read-only and independently of `OrderLedger`, kept per client order id."""

    EVENTS = ("intent", "decision", "submitted")
    COLUMNS = ("seq", "event", "client_order_id", "symbol", "status", "decision_id")

    def __init__(self, path: Path):
        self.path = path
        self._seq = 0
        self.rows: dict[str, list[tuple]] = {}

    def read(self) -> dict[str, list[tuple]]:
        con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = con.execute(f"SELECT {', '.join(self.COLUMNS)} FROM events WHERE seq > ? AND event IN (?, ?, ?) "
                                "ORDER BY seq", (self._seq, *self.EVENTS)).fetchall()
        finally:
            con.close()
        for row in found:
            self.rows.setdefault(row[2], []).append(row)
            self._seq = row[0]
        return self.rows

    def frame(self, client_order_ids) -> pd.DataFrame:
        return pd.DataFrame([row for coid in client_order_ids for row in self.rows.get(coid, ())],
                            columns=list(self.COLUMNS))


class SessionChecker:
    """See the module docstring. `require_stops`: every position must carry a working stop."""

    def __init__(self, venue: BacktestVenue, *, starting_cash: float, require_stops: bool,
                 delisted_after: int = DEFAULT_DELISTED_AFTER):
        self.venue = venue
        self.book = IndependentBook(cash=float(starting_cash))
        self.require_stops = require_stops
        self.delisted_after = delisted_after
        self.delisted: list[tuple[str, str]] = []  # (session, symbol) closed out by the replay
        self._audit = AuditTail(venue.gate.audit.path)
        self._ledger = LedgerTail(venue.ledger.path)
        self._start: dict[str, Position] = {}
        self.excesses: list[CapExcess] = []

    def start(self) -> None:
        self._start = dict(self.venue.broker.positions())

    def close(self, session: pd.Timestamp, result: TradingRunResult, raw_bars: pd.DataFrame,
              actions: Sequence[CorporateAction] = ()) -> CloseReading:
        day = str(pd.Timestamp(session).date())
        broker = self.venue.broker
        self._check_orders(day, result)
        opens = dict(zip(raw_bars["symbol"], raw_bars["open"]))
        fills = [f for f in result.fills if f.session == day]
        moves = self._apply_actions(actions, opens)
        for fill in fills:
            self.book.apply_fill(fill.symbol, fill.side.sign * fill.qty, fill.price)
        closes = dict(zip(raw_bars["symbol"], raw_bars["close"]))
        self.delisted += [(day, s) for s in self.book.mark(closes, self.delisted_after)]
        positions = broker.positions()
        qty = {s: p.qty for s, p in positions.items() if p.qty}
        account = broker.account()
        marks = broker.marks()
        for move in moves:
            # the position right after the split: at the close, less the session's own fills; its stop
            # is checked only when nothing traded (a fill may have closed it or added another order's stop)
            traded = [f for f in fills if f.symbol == move.symbol]
            after = positions.get(move.symbol)
            inv.check_split_continuity(day, dataclasses.replace(
                move, qty_after=qty.get(move.symbol, 0) - sum(f.side.sign * f.qty for f in traded),
                stop_before=None if traded else move.stop_before,
                stop_after=after.stop if after is not None and not traded else None))
        inv.check_recomputed(day, self.book, qty, account.cash, account.equity)
        inv.check_account_identity(day, account.cash, qty, marks, account.equity)
        exited = {f.symbol for f in fills if f.leg in EXIT_LEGS or _reduces(self._start.get(f.symbol), f.side.sign)}
        inv.check_no_sign_flip(day, {s: p.qty for s, p in self._start.items()}, qty, exited)
        if self.require_stops:
            inv.check_live_stops(day, qty, {s: p.stop for s, p in positions.items()})
        book = Book(account.equity, account.cash, account.buying_power, positions, marks)
        heat = portfolio_heat(book).heat
        limits = self.venue.limits
        self.excesses += inv.cap_excesses(day, qty, marks, account.equity, heat, limits.max_position_fraction, limits.max_heat)
        status = result.drawdown
        return CloseReading(day, account.equity, account.cash, account.equity - account.cash, heat,
                            float(status.drawdown) if status and status.drawdown is not None else math.nan,
                            bool(status.halted) if status else False)

    def _check_orders(self, day: str, result: TradingRunResult) -> None:
        sent = [e for e in result.executions if e.sent]
        if not sent:
            return
        approved = self._audit.read()
        self._ledger.read()
        inv.check_orders_decided(self._ledger.frame(dict.fromkeys(str(e.intent.client_order_id) for e in sent)),
                                 approved, day)

    def _apply_actions(self, actions: Sequence[CorporateAction], opens: dict[str, float]) -> list[SplitMove]:
        moves: list[SplitMove] = []
        for action in actions:
            held = self.book.positions.get(action.symbol, 0)
            if action.has_split:
                before = self.book.closes.get(action.symbol, math.nan)
                opened = opens.get(action.symbol)
                lieu = self.book.apply_split(action.symbol, action.split_from, action.split_to,
                                             None if opened is None else float(opened))
                if held:
                    start = self._start.get(action.symbol)
                    moves.append(SplitMove(action.symbol, float(action.split_from), float(action.split_to), before,
                                           float(opened) if opened is not None else before * float(1 / action.ratio),
                                           held, self.book.positions.get(action.symbol, 0), lieu,
                                           start.stop if start is not None else None))
            if action.cash_amount:
                self.book.apply_dividend(action.symbol, float(action.cash_amount))
        return moves


def _reduces(position: Position | None, side_sign: int) -> bool:
    return position is not None and position.qty != 0 and (position.qty > 0) != (side_sign > 0)
