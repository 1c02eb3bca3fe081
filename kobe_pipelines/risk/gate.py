"""The policy gate: the one call between an order intent and a broker.

`PolicyGate.decide(intent, book)` runs every check (never stopping at the first failure),
appends the decision to the audit log and returns a sealed `Decision`; brokers accept only an
approved decision for exactly that intent (`types.require_decision`). It never raises on bad
intent data: a bad field is a failed check naming the field, and the decision is still logged.
An unexpected error inside the gate, or an audit log that cannot be written, rejects.

Checks (names as logged): halted, drawdown, heat, position_size, order_notional, price_collar,
bracket, quantity, fields, tick_size, universe, duplicate_id, rate_limit, buying_power.

Reducing orders (they move an existing position toward zero without flipping it) pass halted,
drawdown, heat, position_size and buying_power, so a halt never traps an exit; every sanity
check (fields, quantity, bracket, tick size, collar, notional, universe, duplicate id, rate)
still applies to them.

A `Book` is a snapshot. Orders approved against the same Book object accumulate: the next
intent sees their position change, their heat and the buying power they use, so a burst of
intents cannot each pass against the same pre-burst book. A new Book object starts afresh and
must reflect every order approved before it (as positions or in `buying_power`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable

from kobe_pipelines.risk import checks as chk
from kobe_pipelines.risk.audit import AuditLog, approved_history, audit_path, encode_record, finite_or_none
from kobe_pipelines.risk.drawdown import HighWaterMarkStore
from kobe_pipelines.risk.heat import book_open_risk, is_reducing
from kobe_pipelines.risk.kill_switch import KillSwitch
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.orders.validation import ParsedIntent, parse_intent
from kobe_pipelines.risk.types import _GATE_TOKEN, Book, CheckResult, Decision
from kobe_pipelines.orders import OrderIntent

log = logging.getLogger(__name__)

CHECK_NAMES = ("halted", "drawdown", "heat", "position_size", "order_notional", "price_collar", "bracket",
               "quantity", "fields", "tick_size", "universe", "duplicate_id", "rate_limit", "buying_power")
RATE_WINDOW_S = 60.0


@dataclass
class _Snapshot:
    """What the gate measured on one Book object, plus what it approved against it since."""

    book: Book
    equity: float | None  # USD, None when not a finite number
    buying_power: float | None
    open_risk: float  # USD, at the book's marks
    problems: tuple[str, ...]  # positions whose risk could not be measured
    pending_risk: float = 0.0
    pending_buying_power: float = 0.0
    pending_qty: dict[str, int] = field(default_factory=dict)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class PolicyGate:
    """Decides order intents against `limits`, the kill switch and high-water mark in
    `state_dir`, and logs every decision to `state_dir/risk_audit.jsonl`.

    `universe`: tradable symbols (None: any symbol). `clock`: returns the current time,
    timezone-aware (naive is taken as UTC); drives the rate limit and `decided_at`.
    `audit_fsync`: see `kobe_pipelines.risk.audit` (True for live trading).
    Approved client order ids and recent approvals are rebuilt from the audit log at start,
    so duplicate ids and the rate limit hold across restarts. Thread-safe; one gate per process
    and state folder (two processes do not see each other's approvals until restarted).
    """

    def __init__(
        self,
        limits: RiskLimits,
        state_dir: str | os.PathLike[str],
        universe: Collection[str] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        *,
        audit_fsync: bool = True,
    ):
        if not isinstance(limits, RiskLimits):
            raise TypeError(f"limits must be RiskLimits, got {type(limits).__name__}")
        self.limits = limits
        self.kill_switch = KillSwitch(state_dir)
        self.state_dir = self.kill_switch.state_dir
        self.universe = frozenset(universe) if universe is not None else None
        self._clock = clock or _utc_now
        self.hwm = HighWaterMarkStore(self.state_dir)
        self.audit = AuditLog(audit_path(self.state_dir), fsync=audit_fsync)
        self._lock = threading.Lock()
        self._history_problem: str | None = None
        try:
            ids, times = approved_history(self.audit.path, limits.max_orders_per_minute)
        except OSError as exc:  # fail closed: without the history, every id might be a duplicate
            ids, times = set(), []
            self._history_problem = f"audit log {self.audit.path} cannot be read ({exc}); duplicates cannot be ruled out"
        self._approved_ids: set[str] = ids
        self._approvals: deque[float] = deque(_epoch(t) for t in times)
        self._snapshot: _Snapshot | None = None
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    # -- public ---------------------------------------------------------------------------
    def decide(self, intent: OrderIntent, book: Book) -> Decision:
        """Decide one intent; the decision is in the audit log (fsynced by default) on return."""
        with self._lock:
            decision, line = self._evaluate(intent, book)
            return self._commit([decision], [line])[0]

    def decide_batch(self, intents: Iterable[OrderIntent], book: Book) -> list[Decision]:
        """Decide intents in order against one book (each sees the approvals before it), then
        log them all with one write and one fsync before returning any."""
        batch = list(intents)  # a failing iterable fails here, before anything is decided
        with self._lock:
            pairs = [self._evaluate(intent, book) for intent in batch]
            return self._commit([d for d, _ in pairs], [line for _, line in pairs])

    def sync(self) -> None:
        """fsync the audit log (needed only with `audit_fsync=False`)."""
        with self._lock:
            self.audit.sync()

    def close(self) -> None:
        with self._lock:
            self.audit.close()

    def __enter__(self) -> "PolicyGate":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------
    def _commit(self, decisions: list[Decision], lines: list[bytes]) -> list[Decision]:
        try:
            if len(lines) == 1:
                self.audit.append(lines[0])
            else:
                self.audit.append_many(lines)
        except OSError as exc:
            # The approvals already counted (ids, rate, pending exposure) stay counted: that can
            # only make later decisions stricter, never looser.
            log.error("audit log %s cannot be written (%s): rejecting %d decision(s)", self.audit.path, exc, len(lines))
            failed = CheckResult("audit_log", False, f"decision could not be written to {self.audit.path} ({exc})")
            return [Decision._from_gate(_GATE_TOKEN, d.decision_id, d.intent, d.checks + (failed,), d.decided_at)
                    for d in decisions]
        return decisions

    def _evaluate(self, intent: OrderIntent, book: Book) -> tuple[Decision, bytes]:
        now = self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.timezone.utc)
        decision_id = f"{self._prefix}-{next(self._counter):07d}"
        parsed = parse_intent(intent)
        raw = intent
        if "intent" in parsed.problems:  # a Decision needs an OrderIntent; the raw value goes to the log
            intent = OrderIntent(client_order_id="", symbol="", side=None, qty=None, entry=None)
        try:
            checks, context, approve = self._run_checks(parsed, book, now.timestamp())
        except Exception as exc:  # a bug in a check must reject, and still be logged
            log.exception("policy gate failed while checking %r", intent)
            checks = (CheckResult("gate_error", False, f"the gate could not evaluate this intent: {exc!r}"),)
            context, approve = {}, None
        decision = Decision._from_gate(_GATE_TOKEN, decision_id, intent, checks, now)
        try:
            line = encode_record(decision, parsed, context, raw)
        except Exception as exc:  # never lose the decision: log what can be encoded, and reject
            log.exception("audit record for %s could not be encoded", decision_id)
            checks = decision.checks + (CheckResult("audit_log", False, f"record could not be encoded: {exc!r}"),)
            decision = Decision._from_gate(_GATE_TOKEN, decision_id, intent, checks, now)
            line = encode_record(decision, parse_intent(None), {}, repr(raw))
        if decision.approved and approve is not None:
            approve()  # only now: the approval counts for duplicates, rate and pending exposure
        return decision, line

    def _run_checks(self, p: ParsedIntent, book: Book, now_s: float):
        snap = self._snapshot_of(book)
        limits = self.limits
        side, qty, symbol = p.side, p.qty, p.symbol
        sign = side.sign if side is not None else 0
        held = book.positions.get(symbol) if symbol is not None else None
        pos_qty = (held.qty if held is not None and type(held.qty) is int else 0) + snap.pending_qty.get(symbol, 0)
        reducing = sign != 0 and qty is not None and is_reducing(pos_qty, sign, qty)
        mark = finite_or_none(book.last_prices.get(symbol)) if symbol is not None else None
        if mark is not None and mark <= 0:
            mark = None
        approvals = self._approvals
        while approvals and approvals[0] <= now_s - RATE_WINDOW_S:
            approvals.popleft()

        added = chk.order_added_risk(p, mark)
        halt = self.kill_switch.status()
        checks = (
            chk.halted(halt, reducing, symbol, pos_qty, sign, qty),
            chk.drawdown(self.hwm, snap.equity, limits.max_drawdown, reducing),
            chk.heat(p, snap, added, mark, limits.max_heat, reducing),
            chk.position_size(p, snap.equity, pos_qty, limits.max_position_fraction, reducing),
            chk.order_notional(p, limits.max_order_notional),
            chk.price_collar(p, mark, limits.price_collar),
            chk.bracket(p),
            chk.quantity(p),
            chk.fields(p),
            chk.tick_size(p),
            chk.universe(symbol, self.universe),
            chk.duplicate_id(p.client_order_id, self._approved_ids, self._history_problem),
            chk.rate_limit(len(approvals), limits.max_orders_per_minute),
            chk.buying_power(p, snap.buying_power, snap.pending_buying_power, reducing),
        )
        context = {"equity": snap.equity, "buying_power": snap.buying_power,
                   "position_qty": pos_qty if symbol is not None else None, "last_price": mark, "reducing": reducing}

        def approve() -> None:
            self._approved_ids.add(p.client_order_id)
            approvals.append(now_s)
            snap.pending_qty[symbol] = snap.pending_qty.get(symbol, 0) + sign * qty
            if not reducing:
                snap.pending_risk += added or 0.0
                snap.pending_buying_power += qty * p.entry

        return checks, context, approve

    def _snapshot_of(self, book: Book) -> _Snapshot:
        snap = self._snapshot
        if snap is None or snap.book is not book:
            risk, problems = book_open_risk(book)
            snap = _Snapshot(book, finite_or_none(book.equity), finite_or_none(book.buying_power), risk, problems)
            self._snapshot = snap
        return snap


def _epoch(stamp: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()
