"""The book an intent is judged against, and the gate's decisions.

Intents, sides and order types are the order vocabulary's (`kobe_pipelines.orders`), re-exported
here for the risk package's readers. Conventions: prices are USD per share; quantities are whole
shares, always positive on an intent (the side carries the direction); a position's `qty` is
signed (+ long, - short).
A `Decision` can only be made by the policy gate (`kobe_pipelines.risk.gate`): it carries a
seal over the exact intent it approved, and brokers refuse anything else.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from kobe_pipelines.errors import KobeError
from kobe_pipelines.orders.intent import OrderIntent, OrderType, Side, SignalLineage

__all__ = ["Book", "CheckResult", "Decision", "FrozenDict", "OpenOrder", "OrderIntent", "OrderType", "Position", "Side",
           "SignalLineage", "UnapprovedOrderError", "require_decision"]


class FrozenDict(dict):
    """A dict that refuses changes after construction (still a dict: JSON, pickle, asdict work)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a Book is a snapshot and cannot be changed; build a new Book")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


@dataclass(frozen=True)
class Position:
    """An open position. `qty` is signed: positive long, negative short. `stop`: the stop that
    protects it at the broker (None: unprotected, its whole market value is at risk)."""

    symbol: str
    qty: int
    avg_entry: float
    stop: float | None = None


@dataclass(frozen=True)
class OpenOrder:
    """An entry order that has not filled yet: working at the broker, or approved and not yet
    there. The gate counts it as if filled at `price` (its limit, or the expected price of a
    market order), with its `stop`. `qty` is the unfilled shares (positive; `side` carries the
    direction). `reserved`: the book's buying power already excludes its notional (the broker
    reserved it); False for an approval the broker has not seen yet."""

    client_order_id: str
    symbol: str
    side: Side
    qty: int
    price: float
    stop: float | None = None
    reserved: bool = True


@dataclass(frozen=True)
class Book:
    """The account as the gate sees it at decision time.

    `last_prices` holds the latest mark (last close or trade) per symbol, USD. `open_orders`: the
    entries not filled yet (`OpenOrder`), counted in heat, position size and buying power as if
    filled. `exit_legs`: per symbol, the signed shares the working exit orders would trade
    (a long's sell stop of 100 sh is -100); an order reduces a position only after netting them.
    `stale_marks`: symbol -> the session of its last bar, for marks older than the book's session
    (valued at that mark, and named in the heat check's detail).
    """

    equity: float
    cash: float
    buying_power: float
    positions: Mapping[str, Position] = field(default_factory=dict)
    last_prices: Mapping[str, float] = field(default_factory=dict)
    open_orders: tuple[OpenOrder, ...] = ()
    exit_legs: Mapping[str, int] = field(default_factory=dict)
    stale_marks: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A Book is a snapshot: keep read-only copies, so nobody can change it under the gate
        # (which measures each Book object once and caches the result).
        object.__setattr__(self, "positions", FrozenDict(self.positions))
        object.__setattr__(self, "last_prices", FrozenDict(self.last_prices))
        object.__setattr__(self, "open_orders", tuple(self.open_orders))
        object.__setattr__(self, "exit_legs", FrozenDict(self.exit_legs))
        object.__setattr__(self, "stale_marks", FrozenDict(self.stale_marks))

    def position_qty(self, symbol: str) -> int:
        pos = self.positions.get(symbol)
        return pos.qty if pos is not None else 0


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    reason: str


class UnapprovedOrderError(KobeError):
    """Raised by a broker handed anything but an approved, untampered gate decision."""


# The seal key lives only in this process: a decision cannot be forged from outside the gate,
# nor survive a restart (a restarted process must ask the gate again).
_SEAL_KEY = secrets.token_bytes(32)
_GATE_TOKEN = object()
# Built once: json.dumps with options builds a new encoder per call (the gate seals every decision).
_SEAL_ENCODER = json.JSONEncoder(sort_keys=True, default=str)


def _seal(intent: OrderIntent, approved: bool, decision_id: str) -> str:
    payload = _SEAL_ENCODER.encode({"intent": intent.to_dict(), "approved": approved, "id": decision_id})
    return hmac.new(_SEAL_KEY, payload.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on one intent, with every check's outcome (not only the first failure)."""

    decision_id: str
    intent: OrderIntent
    approved: bool
    checks: tuple[CheckResult, ...]
    decided_at: dt.datetime
    seal: str = field(repr=False, default="")

    @classmethod
    def _from_gate(
        cls, token: object, decision_id: str, intent: OrderIntent, checks: tuple[CheckResult, ...], decided_at: dt.datetime
    ) -> "Decision":
        if token is not _GATE_TOKEN:
            raise UnapprovedOrderError("only the policy gate may create decisions")
        approved = all(c.passed for c in checks)
        return cls(decision_id, intent, approved, checks, decided_at, _seal(intent, approved, decision_id))

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def reason(self) -> str:
        if self.approved:
            return "approved"
        return "; ".join(f"{c.name}: {c.reason}" for c in self.failures)

    def require_approved(self, intent: OrderIntent | None = None) -> OrderIntent:
        """Return the approved intent, or raise `UnapprovedOrderError`.

        Brokers call this before sending anything. It fails when the decision was rejected,
        was not made by the gate in this process, was altered after the fact, or is for
        another order than `intent`.
        """
        if not isinstance(self, Decision) or not hmac.compare_digest(
            self.seal or "", _seal(self.intent, self.approved, self.decision_id)
        ):
            raise UnapprovedOrderError("decision was not made by the policy gate or was altered")
        if not self.approved:
            raise UnapprovedOrderError(f"order {self.intent.client_order_id} was rejected: {self.reason}")
        if intent is not None and intent != self.intent:
            raise UnapprovedOrderError(
                f"decision {self.decision_id} approved order {self.intent.client_order_id}, not {intent.client_order_id}"
            )
        return self.intent

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "intent": self.intent.to_dict(),
            "approved": self.approved,
            "checks": [asdict(c) for c in self.checks],
            "decided_at": self.decided_at.isoformat(),
        }


def require_decision(decision: Any, intent: OrderIntent | None = None) -> OrderIntent:
    """Module-level form of `Decision.require_approved` that also rejects non-Decision objects."""
    if not isinstance(decision, Decision):
        raise UnapprovedOrderError(f"expected an approved gate Decision, got {type(decision).__name__}")
    return decision.require_approved(intent)
