"""The policy gate: the one call between an order intent and a broker.

`PolicyGate.decide(intent, book)` runs every check (never stopping at the first failure),
appends the decision to the audit log and returns a sealed `Decision`; brokers accept only an
approved decision for exactly that intent (`types.require_decision`). It never raises on bad
intent data: a bad field is a failed check naming the field, and the decision is still logged.
An unexpected error inside the gate, or an audit log that cannot be written, rejects.

Checks (names as logged): halted, drawdown, heat, position_size, order_notional, price_collar,
bracket, quantity, fields, tick_size, universe, duplicate_id, rate_limit, buying_power.

Reducing orders (they move a position toward zero without flipping it, judged on the position
net of its working exit legs: a long of 100 with a live sell stop of 100 has nothing left to
reduce) pass halted, drawdown, heat, position_size and buying_power, so a halt never traps an
exit; every sanity check (fields, quantity, bracket, tick size, collar, notional, universe,
duplicate id, rate) still applies to them.

Entries not filled yet count as if filled at their price (`Book.open_orders`, and the orders
approved against the same Book object since): their quantity in the position-size cap, their
risk in heat, their notional in buying power (`exposure.BookExposure`). A new Book object starts
afresh and must reflect every order approved before it (at the broker, or as an approval the
broker has not seen yet).

Across processes: decisions are made one at a time under `exclusive()` (a file lock in the state
folder); the caller builds the Book inside the same `exclusive()` block, so the Book includes
every earlier approval. Duplicate ids and the rate limit count the approvals of every process,
read from the audit log under that lock (`approvals.ApprovalHistory`).

An approval that never reached a broker (a crash before the submission, or the broker refused
it) may be decided again for exactly the same intent with `retry_of=<its decision id>`: every
check runs again, and the duplicate-id check passes for that id only.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import secrets
import threading
from contextlib import contextmanager
from typing import Callable, Collection, Iterable, Iterator

from kobe_pipelines.errors import StateFileError
from kobe_pipelines.orders import OrderIntent
from kobe_pipelines.orders.validation import ParsedIntent, parse_intent
from kobe_pipelines.risk import checks as chk
from kobe_pipelines.risk.approvals import Approval, ApprovalHistory, DecisionLock
from kobe_pipelines.risk.audit import AuditLog, audit_path, encode_record, finite_or_none
from kobe_pipelines.risk.drawdown import HighWaterMarkStore
from kobe_pipelines.risk.exposure import BookExposure
from kobe_pipelines.risk.heat import is_reducing
from kobe_pipelines.risk.kill_switch import KillSwitch
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.risk.types import _GATE_TOKEN, Book, CheckResult, Decision

log = logging.getLogger(__name__)

CHECK_NAMES = ("halted", "drawdown", "heat", "position_size", "order_notional", "price_collar", "bracket",
               "quantity", "fields", "tick_size", "universe", "duplicate_id", "rate_limit", "buying_power")
RATE_WINDOW_S = 60.0


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class PolicyGate:
    """Decides order intents against `limits`, the kill switch and high-water mark in
    `state_dir`, and logs every decision to `state_dir/risk_audit.jsonl`.

    `universe`: tradable symbols (None: any symbol). `clock`: returns the current time,
    timezone-aware (naive is taken as UTC); drives the rate limit and `decided_at`.
    `audit_fsync`: see `kobe_pipelines.risk.audit` (True for live trading).
    Thread-safe and safe across processes (see the module docstring).
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
        self._decisions = DecisionLock(self.state_dir)
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)
        self._history = ApprovalHistory(self.audit.path, self._prefix, RATE_WINDOW_S, limits.max_orders_per_minute)
        self._history_problem: str | None = None
        self._exposure: BookExposure | None = None

    # -- public ---------------------------------------------------------------------------
    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the decision lock of the state folder (re-entrant): build the Book and decide
        inside one such block, so no other process decides in between."""
        with self._decisions.hold():
            yield

    def decide(self, intent: OrderIntent, book: Book, *, retry_of: str | None = None) -> Decision:
        """Decide one intent; the decision is in the audit log (fsynced by default) on return.
        `retry_of`: the decision id of this id's earlier approval that never reached a broker."""
        with self.exclusive(), self._lock:
            self._catch_up()
            decision, line = self._evaluate(intent, book, retry_of)
            return self._commit([decision], [line])[0]

    def decide_batch(self, intents: Iterable[OrderIntent], book: Book) -> list[Decision]:
        """Decide intents in order against one book (each sees the approvals before it), then
        log them all with one write and one fsync before returning any."""
        batch = list(intents)  # a failing iterable fails here, before anything is decided
        with self.exclusive(), self._lock:
            self._catch_up()
            pairs = [self._evaluate(intent, book, None) for intent in batch]
            return self._commit([d for d, _ in pairs], [line for _, line in pairs])

    def approval_of(self, client_order_id: str) -> Approval | None:
        """The latest approval of `client_order_id` by any process (read now from the audit log)."""
        with self.exclusive(), self._lock:
            self._catch_up()
            return self._history.approvals.get(client_order_id)

    def sync(self) -> None:
        """fsync the audit log (needed only with `audit_fsync=False`)."""
        with self._lock:
            self.audit.sync()

    def close(self) -> None:
        with self._lock:
            self.audit.close()
            self._decisions.close()

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
        except (OSError, StateFileError) as exc:
            # The approvals already counted (ids, rate, pending exposure) stay counted: that can
            # only make later decisions stricter, never looser.
            log.error("audit log %s cannot be written (%s): rejecting %d decision(s)", self.audit.path, exc, len(lines))
            failed = CheckResult("audit_log", False, f"decision could not be written to {self.audit.path} ({exc})")
            return [Decision._from_gate(_GATE_TOKEN, d.decision_id, d.intent, d.checks + (failed,), d.decided_at)
                    for d in decisions]
        self._history.appended(sum(len(line) for line in lines))  # our own records: nothing to read back
        return decisions

    def _catch_up(self) -> None:
        try:
            self._history.catch_up()
            self._history_problem = None
        except (OSError, StateFileError) as exc:  # fail closed: without the history, every id might be a duplicate
            self._history_problem = f"audit log {self.audit.path} cannot be read ({exc}); duplicates cannot be ruled out"

    def _evaluate(self, intent: OrderIntent, book: Book, retry_of: str | None) -> tuple[Decision, bytes]:
        now = self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.timezone.utc)
        decision_id = f"{self._prefix}-{next(self._counter):07d}"
        parsed = parse_intent(intent)
        raw = intent
        if "intent" in parsed.problems:  # a Decision needs an OrderIntent; the raw value goes to the log
            intent = OrderIntent(client_order_id="", symbol="", side=None, qty=None, entry=None)
        try:
            checks, context, approve = self._run_checks(parsed, book, now, decision_id, retry_of)
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

    def _run_checks(self, p: ParsedIntent, book: Book, now: dt.datetime, decision_id: str, retry_of: str | None):
        exposure = self._exposure_of(book)
        limits = self.limits
        side, qty, symbol = p.side, p.qty, p.symbol
        sign = side.sign if side is not None else 0
        net = exposure.net_position(symbol) if symbol is not None else 0
        reducing = sign != 0 and qty is not None and is_reducing(net, sign, qty)
        if_filled = exposure.position_if_filled(symbol) if symbol is not None else 0
        mark = finite_or_none(book.last_prices.get(symbol)) if symbol is not None else None
        if mark is not None and mark <= 0:
            mark = None
        now_s = now.timestamp()
        recent = self._history.recent(now_s)
        earlier = self._history.approvals.get(p.client_order_id) if p.client_order_id is not None else None

        added = chk.order_added_risk(p, mark)
        halt = self.kill_switch.status()
        checks = (
            chk.halted(halt, reducing, symbol, net, sign, qty),
            chk.drawdown(self.hwm, exposure.equity, limits.max_drawdown, reducing),
            chk.heat(p, exposure, added, mark, limits.max_heat, reducing),
            chk.position_size(p, exposure.equity, if_filled, limits.max_position_fraction, reducing),
            chk.order_notional(p, limits.max_order_notional),
            chk.price_collar(p, mark, limits.price_collar),
            chk.bracket(p),
            chk.quantity(p),
            chk.fields(p),
            chk.tick_size(p),
            chk.universe(symbol, self.universe),
            chk.duplicate_id(p, earlier, retry_of, self._history_problem),
            chk.rate_limit(recent, limits.max_orders_per_minute),
            chk.buying_power(p, exposure.buying_power, exposure.pending_buying_power, reducing),
        )
        context = {"equity": exposure.equity, "buying_power": exposure.buying_power,
                   "position_qty": exposure.held(symbol) if symbol is not None else None, "last_price": mark,
                   "reducing": reducing, "net_position_qty": net if symbol is not None else None,
                   "open_entry_qty": exposure.pending_qty.get(symbol, 0) if symbol is not None else None,
                   "retry_of": retry_of}

        def approve() -> None:
            typed = {"client_order_id": p.client_order_id, "symbol": symbol, "side": side.value, "qty": qty,
                     "entry": p.entry, "stop": p.stop, "take_profit": p.take_profit,
                     "order_type": p.order_type.value if p.order_type is not None else None}
            self._history.add(p.client_order_id, Approval(decision_id, now.isoformat(), typed), now_s)
            exposure.add_approval(symbol, sign, qty, p.entry, added, reducing)

        return checks, context, approve

    def _exposure_of(self, book: Book) -> BookExposure:
        exposure = self._exposure
        if exposure is None or exposure.book is not book:
            exposure = BookExposure.of(book)
            self._exposure = exposure
        return exposure

